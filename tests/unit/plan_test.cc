#include "plan.h"

#include <doctest/doctest.h>

#include "commands.h"

namespace pgboot {
namespace {

// What the migrator stops on (ReportFindings): an error finding, counting
// running/failed rows only under the lock.
bool HasErrors(const Plan& plan, bool count_unfinished) {
  for (const Finding& f : plan.findings) {
    if (f.error && (count_unfinished || !f.unfinished)) return true;
  }
  return false;
}

Migration File(const std::string& version, const std::string& checksum = "") {
  Migration m;
  m.version = version;
  m.name = "m" + version;
  m.up_path = "migrations/" + version + "_m" + version + ".sql";
  m.checksum = checksum.empty() ? "sum" + version : checksum;
  return m;
}

HistoryRow Row(const std::string& version, const std::string& status = "applied",
               const std::string& checksum = "") {
  HistoryRow r;
  r.version = version;
  r.name = "m" + version;
  r.checksum = checksum.empty() ? "sum" + version : checksum;
  r.status = status;
  r.applied_at = "2026-11-24T09:00:00.000Z";
  r.execution_ms = 41;
  r.batch = 1;
  return r;
}

const PlanRow& RowOf(const Plan& p, const std::string& version) {
  for (const PlanRow& r : p.rows) {
    if (r.version == version) return r;
  }
  FAIL("no row for " << version);
  return p.rows.front();
}

}  // namespace

TEST_CASE("every state") {
  std::vector<Migration> files = {File("1"), File("2", "new"), File("4"),
                                  File("5"), File("6"),        File("10")};
  std::vector<HistoryRow> history = {
      Row("1"), Row("2"), Row("3"), Row("5", "failed"), Row("6", "running"), Row("9"), Row("11")};
  Plan p = BuildPlan(files, history, false);
  CHECK(RowOf(p, "1").state == MigrationState::kApplied);
  CHECK(RowOf(p, "2").state == MigrationState::kChanged);
  CHECK(RowOf(p, "3").state == MigrationState::kMissing);
  CHECK(RowOf(p, "4").state == MigrationState::kPending);
  CHECK(RowOf(p, "5").state == MigrationState::kFailed);
  CHECK(RowOf(p, "6").state == MigrationState::kRunning);
  CHECK(RowOf(p, "9").state == MigrationState::kMissing);  // below the newest file (10)
  CHECK(RowOf(p, "10").state == MigrationState::kPending);
  CHECK(RowOf(p, "11").state == MigrationState::kFuture);
  // Numeric order, not text order.
  std::vector<std::string> order;
  for (const PlanRow& r : p.rows) order.push_back(r.version);
  CHECK(order == std::vector<std::string>{"1", "2", "3", "4", "5", "6", "9", "10", "11"});
  CHECK(p.newest_applied == "11");
  CHECK(p.applied_count == 5);
  REQUIRE(p.pending.size() == 2);
  CHECK(p.pending[0]->version == "4");
  // 4 and 10 are both below 11, the newest applied: out of order.
  CHECK(HasErrors(p, false));
  CHECK(p.HasUnfinished());
}

TEST_CASE("future versions only warn; running rows wait for the lock") {
  std::vector<Migration> files = {File("1"), File("2")};
  std::vector<HistoryRow> ahead = {Row("1"), Row("2"), Row("3")};
  Plan future = BuildPlan(files, ahead, false);
  CHECK_FALSE(HasErrors(future, true));
  REQUIRE(future.findings.size() == 1);
  CHECK_FALSE(future.findings[0].error);
  CHECK(future.pending.empty());

  std::vector<HistoryRow> unfinished = {Row("1"), Row("2", "running")};
  Plan running = BuildPlan(files, unfinished, false);
  CHECK_FALSE(HasErrors(running, false));  // before the lock: somebody else is migrating
  CHECK(HasErrors(running, true));         // under the lock: stuck until repair
}

TEST_CASE("out of order is an error unless allowed") {
  std::vector<Migration> files = {File("1"), File("2"), File("3")};
  std::vector<HistoryRow> history = {Row("1"), Row("3")};
  Plan strict = BuildPlan(files, history, false);
  CHECK(HasErrors(strict, true));
  CHECK(strict.findings[0].message.find("out of order") != std::string::npos);
  Plan relaxed = BuildPlan(files, history, true);
  CHECK_FALSE(HasErrors(relaxed, true));
  REQUIRE(relaxed.pending.size() == 1);
  CHECK(relaxed.pending[0]->version == "2");
}

TEST_CASE("an empty history makes everything pending") {
  std::vector<Migration> files = {File("20260101000000"), File("20260101000100")};
  std::vector<HistoryRow> none;
  Plan p = BuildPlan(files, none, false);
  CHECK(p.pending.size() == 2);
  CHECK(p.findings.empty());
  CHECK(p.newest_applied.empty());
}

TEST_CASE("status JSON has exactly the fields of docs/reference.md") {
  std::vector<Migration> files = {File("1"), File("2")};
  std::vector<HistoryRow> history = {Row("1")};
  Plan p = BuildPlan(files, history, false);
  CHECK(FormatStatusJson(p, "app", "public.pgboot_history") ==
        "{\"database\":\"app\",\"history_table\":\"public.pgboot_history\",\"migrations\":["
        "{\"version\":\"1\",\"name\":\"m1\",\"state\":\"applied\",\"applied_at\":\"2026-11-24T09:"
        "00:00.000Z\",\"execution_ms\":41,\"checksum\":\"sum1\",\"rollback\":\"none\"},"
        "{\"version\":\"2\",\"name\":\"m2\",\"state\":\"pending\",\"applied_at\":null,"
        "\"execution_ms\":null,\"checksum\":\"sum2\",\"rollback\":null}],\"pending\":1,"
        "\"applied\":1}\n");
}

TEST_CASE("status text is an aligned table") {
  std::vector<Migration> files = {File("1"), File("10")};
  std::vector<HistoryRow> history = {Row("1")};
  Plan p = BuildPlan(files, history, false);
  std::string t = FormatStatusText(p);
  CHECK(t ==
        "VERSION  NAME  STATE    APPLIED_AT                EXECUTION\n"
        "1        m1    applied  2026-11-24T09:00:00.000Z  41 ms\n"
        "10       m10   pending  -                         -\n"
        "2 migration(s): 1 applied, 1 pending\n");
}

TEST_CASE("audit JSON") {
  AuditEvent e{7,   "2026-11-24T09:00:00.000Z", "applied",
               "3", "pgboot 0.1.0 on h",        "{\"execution_ms\": 41}"};
  CHECK(FormatAuditJson({e}) ==
        "{\"events\":[{\"id\":7,\"at\":\"2026-11-24T09:00:00.000Z\",\"event\":\"applied\","
        "\"version\":\"3\",\"by\":\"pgboot 0.1.0 on h\",\"detail\":{\"execution_ms\": 41}}]}\n");
}

}  // namespace pgboot
