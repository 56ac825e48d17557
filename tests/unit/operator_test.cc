#include "operator.h"

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "doctor.h"
#include "exit_code.h"
#include "new_migration.h"
#include "rollback.h"

namespace pgboot {
namespace {

Section Down() {
  Section s;
  s.sql = "DROP TABLE x;";
  s.statements.push_back({"DROP TABLE x", 5, 1, false});
  return s;
}

Migration File(const std::string& version, bool with_down = true) {
  Migration m;
  m.version = version;
  m.name = "m" + version;
  m.up_path = "migrations/" + version + "_m" + version + ".sql";
  m.down_path = m.up_path;
  m.checksum = "sum" + version;
  if (with_down) m.down = Down();
  return m;
}

HistoryRow Row(const std::string& version, int64_t batch = 1,
               const std::string& status = "applied") {
  HistoryRow r;
  r.version = version;
  r.name = "m" + version;
  r.checksum = "sum" + version;
  r.status = status;
  r.batch = batch;
  return r;
}

std::vector<std::string> Versions(const Result<std::vector<RollbackStep>>& r) {
  std::vector<std::string> out;
  REQUIRE(r.ok());
  for (const RollbackStep& s : *r) out.push_back(s.row->version);
  return out;
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("rollback selects the highest applied version by default") {
  std::vector<Migration> files = {File("1"), File("2"), File("10"), File("11")};
  // 11 is pending; 10 is numerically (not textually) the highest applied.
  std::vector<HistoryRow> history = {Row("2"), Row("10"), Row("1")};
  CHECK(Versions(SelectRollback(files, history, {})) == V{"10"});
}

TEST_CASE("rollback --steps N takes the N highest, highest first") {
  std::vector<Migration> files = {File("1"), File("2"), File("3"), File("4"), File("5")};
  std::vector<HistoryRow> history = {Row("1"), Row("2"), Row("3"), Row("4"), Row("5")};
  RollbackOptions o;
  o.steps = 2;
  CHECK(Versions(SelectRollback(files, history, o)) == V{"5", "4"});
  o.steps = 5;
  CHECK(Versions(SelectRollback(files, history, o)) == V{"5", "4", "3", "2", "1"});
  o.steps = 6;
  auto r = SelectRollback(files, history, o);
  REQUIRE_FALSE(r.ok());
  CHECK(ExitCodeFor(r.status()) == kExitValidation);
}

TEST_CASE("rollback with nothing applied refuses, --to with nothing above is empty") {
  std::vector<Migration> files = {File("1"), File("2")};
  auto r = SelectRollback(files, {}, {});
  REQUIRE_FALSE(r.ok());
  CHECK(ExitCodeFor(r.status()) == kExitValidation);
  RollbackOptions o;
  o.batch = true;
  CHECK(ExitCodeFor(SelectRollback(files, {}, o).status()) == kExitValidation);
  o = {};
  o.to = "2";
  CHECK(Versions(SelectRollback(files, {Row("1")}, o)).empty());
}

TEST_CASE("rollback --to V is exclusive and V must be applied or a file") {
  std::vector<Migration> files = {File("1"), File("2"), File("3"), File("5")};
  std::vector<HistoryRow> history = {Row("1"), Row("2"), Row("3"), Row("4", 1), Row("5")};
  RollbackOptions o;
  o.to = "1";
  // 4 is applied without a file: selected, hence refused (below).
  auto r = SelectRollback(files, history, o);
  REQUIRE_FALSE(r.ok());
  CHECK(Contains(r.status().message(), "version 4 (m4) has no migration file"));

  history = {Row("1"), Row("2"), Row("3")};
  CHECK(Versions(SelectRollback(files, history, o)) == V{"3", "2"});
  o.to = "0001";  // canonical form
  CHECK(Versions(SelectRollback(files, history, o)) == V{"3", "2"});
  o.to = "5";  // a file, not applied: nothing above it
  CHECK(Versions(SelectRollback(files, history, o)).empty());
  o.to = "4";  // neither applied nor a file
  CHECK(ExitCodeFor(SelectRollback(files, history, o).status()) == kExitUsage);
  o.to = "x1";
  CHECK(ExitCodeFor(SelectRollback(files, history, o).status()) == kExitUsage);
  // An applied version without a file is a valid --to.
  history = {Row("1"), Row("2"), Row("3"), Row("4")};
  files = {File("1"), File("2"), File("3")};
  o.to = "2";
  CHECK(ExitCodeFor(SelectRollback(files, history, o).status()) == kExitValidation);  // 4: no file
  o.to = "4";
  CHECK(Versions(SelectRollback(files, history, o)).empty());
}

TEST_CASE("rollback --batch takes every version of the newest batch") {
  std::vector<Migration> files = {File("1"), File("2"), File("3"), File("4"), File("5")};
  std::vector<HistoryRow> history = {Row("1", 1), Row("2", 1), Row("3", 2), Row("4", 2),
                                     Row("5", 3, "failed")};
  RollbackOptions o;
  o.batch = true;
  // The failed row is not applied: not selected (the caller refuses it under the lock).
  CHECK(Versions(SelectRollback(files, history, o)) == V{"4", "3"});
}

TEST_CASE("rollback checks every selected version before anything runs") {
  std::vector<Migration> files = {File("1"), File("2", false), File("3"), File("4")};
  files[3].checksum = "edited";
  std::vector<HistoryRow> history = {Row("1"), Row("2"), Row("3"), Row("4"), Row("6")};
  RollbackOptions o;
  o.steps = 4;  // 6, 4, 3, 2
  auto r = SelectRollback(files, history, o);
  REQUIRE_FALSE(r.ok());
  CHECK(ExitCodeFor(r.status()) == kExitValidation);
  const std::string& msg = r.status().message();
  CHECK(Contains(msg, "version 6 (m6) has no migration file"));
  CHECK(Contains(msg, "version 4 (m4): migrations/4_m4.sql changed after it was applied"));
  CHECK(Contains(msg, "version 2 (m2): migrations/2_m2.sql has no down section"));
  CHECK_FALSE(Contains(msg, "version 3"));
  // Only the selection matters: the drifted 4 and the down-less 2 are not selected here.
  o.steps = 1;
  history.pop_back();
  files[3].checksum = "sum4";
  CHECK(Versions(SelectRollback(files, history, o)) == V{"4"});
}

TEST_CASE("the production guard") {
  Config cfg;
  RollbackOptions o;
  CHECK(CheckProductionGuard(cfg, o).ok());
  cfg.env = "staging";
  CHECK(CheckProductionGuard(cfg, o).ok());
  cfg.env = "Production";
  CHECK(ExitCodeFor(CheckProductionGuard(cfg, o)) == kExitValidation);
  o.dry_run = true;
  CHECK(CheckProductionGuard(cfg, o).ok());
  o.dry_run = false;
  o.allow_production = true;
  CHECK(CheckProductionGuard(cfg, o).ok());
}

TEST_CASE("repair realigns drifted and renamed rows and deletes unfinished ones") {
  std::vector<Migration> files = {File("1"), File("2"), File("3"), File("4"), File("5")};
  files[1].checksum = "new2";
  files[2].name = "renamed";
  std::vector<HistoryRow> history = {
      Row("5", 2, "failed"), Row("1"), Row("2"), Row("3"), Row("4", 1, "running"),
      Row("9", 1, "failed")};
  for (HistoryRow& r : history) r.down_sql = Down().sql;  // as this pgboot stores File()'s down
  auto actions = PlanRepair(files, history);
  REQUIRE(actions.size() == 5);
  CHECK(actions[0].row->version == "2");
  CHECK(actions[0].kind == RepairAction::kRealign);
  CHECK(Contains(DescribeRepair(actions[0]), "checksum sum2 -> new2"));
  CHECK(actions[1].row->version == "3");
  CHECK(Contains(DescribeRepair(actions[1]), "name m3 -> renamed"));
  CHECK(actions[2].kind == RepairAction::kDelete);
  CHECK(actions[2].row->version == "4");
  CHECK(Contains(DescribeRepair(actions[2]), "'running' row goes"));
  CHECK(actions[3].row->version == "5");
  CHECK(actions[4].row->version == "9");
  CHECK(actions[4].file == nullptr);
  CHECK(PlanRepair(files, {history[1]}).empty());
  // A row an older pgboot wrote stores no down: repair stores the file's.
  const std::vector<HistoryRow> old = {Row("1")};
  auto fill = PlanRepair(files, old);
  REQUIRE(fill.size() == 1);
  CHECK(fill[0].kind == RepairAction::kRealign);
  CHECK(Contains(DescribeRepair(fill[0]), "stored down added from the file"));
}

TEST_CASE("baseline selection") {
  std::vector<Migration> files = {File("1"), File("2"), File("3"), File("4")};
  auto r = SelectBaseline(files, {}, "3", false);
  REQUIRE(r.ok());
  REQUIRE(r->size() == 3);
  CHECK((*r)[2]->version == "3");
  CHECK(ExitCodeFor(SelectBaseline(files, {}, "7", false).status()) == kExitUsage);
  CHECK(ExitCodeFor(SelectBaseline(files, {}, "v3", false).status()) == kExitUsage);
  CHECK(SelectBaseline(files, {}, "003", false).ok());
  std::vector<HistoryRow> history = {Row("2")};
  CHECK(ExitCodeFor(SelectBaseline(files, history, "3", false).status()) == kExitValidation);
  r = SelectBaseline(files, history, "3", true);
  REQUIRE(r.ok());
  REQUIRE(r->size() == 2);  // 1 and 3; 2 keeps its row
  CHECK((*r)[0]->version == "1");
  CHECK((*r)[1]->version == "3");
  history.push_back(Row("4", 1, "failed"));
  CHECK(ExitCodeFor(SelectBaseline(files, history, "3", true).status()) == kExitValidation);
}

TEST_CASE("new: names and versions") {
  CHECK(ValidMigrationName("add_users_2"));
  CHECK_FALSE(ValidMigrationName(""));
  CHECK_FALSE(ValidMigrationName("AddUsers"));
  CHECK_FALSE(ValidMigrationName("add-users"));
  CHECK_FALSE(ValidMigrationName("../x"));
  CHECK(TimestampVersion(0) == "19700101000000");
  CHECK(TimestampVersion(1795865399) == "20261128112959");
  // The next free *second*, across a minute, hour and day boundary.
  const int64_t t = 1798761599;  // 2026-12-31T23:59:59Z
  CHECK(NextFreeVersion(t, {}) == "20261231235959");
  CHECK(NextFreeVersion(t, {"20261231235959"}) == "20270101000000");
  CHECK(NextFreeVersion(t, {"20261231235959", "20270101000000", "1"}) == "20270101000001");
}

TEST_CASE("new: two calls in the same second give two files that parse") {
  std::string tmpl = (std::filesystem::temp_directory_path() / "pgboot_new_XXXXXX").string();
  REQUIRE(mkdtemp(tmpl.data()) != nullptr);
  const std::string dir = tmpl + "/db/migrations";  // created on demand
  const WallClock frozen = [] { return int64_t{1798761599}; };
  {
    // Someone else's pairs file already owns the first second.
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/20261231235959_other.up.sql") << "SELECT 1;\n";
  }
  auto a = CreateMigration(dir, "add_users", frozen);
  auto b = CreateMigration(dir, "add_users", frozen);
  auto c = CreateMigration(dir, "add_orders", frozen);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(c.ok());
  CHECK(*a == dir + "/20270101000000_add_users.sql");
  CHECK(*b == dir + "/20270101000001_add_users.sql");
  CHECK(*c == dir + "/20270101000002_add_orders.sql");
  CHECK(ExitCodeFor(CreateMigration(dir, "Bad-Name", frozen).status()) == kExitUsage);

  auto loaded = LoadMigrations(dir);
  REQUIRE(loaded.ok());
  REQUIRE(loaded->size() == 4);
  const Migration& m = (*loaded)[1];
  CHECK(m.version == "20270101000000");
  CHECK(m.name == "add_users");
  CHECK(m.up.statements.size() == 1);
  CHECK(Contains(m.up.statements[0].text, "RAISE EXCEPTION"));
  // An unwritten down fails when it runs: a comment-only one would be a no-op rollback.
  REQUIRE(m.down.has_value());
  REQUIRE(m.down->statements.size() == 1);
  CHECK(Contains(m.down->statements[0].text, "RAISE EXCEPTION"));
  std::filesystem::remove_all(tmpl);
}

TEST_CASE("doctor JSON has docs/reference.md's shape") {
  DoctorReport r;
  r.server_version = "15.4";
  r.connections = 12;
  r.max_connections = 100;
  r.database_size_bytes = 123;
  r.pending = 1;
  CHECK(FormatDoctorJson(r) ==
        "{\"info\":{\"server_version\":\"15.4\",\"connections\":12,\"max_connections\":100,"
        "\"database_size_bytes\":123,\"pending\":1},\"findings\":[]}\n");
  r.findings.push_back({"lock_wait", "pid 7 waits", 7, {{"blocked_by", "[3,4]"}}});
  r.findings.push_back({"invalid_index", "index \"x\"", std::nullopt, {}});
  CHECK(Contains(FormatDoctorJson(r),
                 "\"findings\":[{\"kind\":\"lock_wait\",\"message\":\"pid 7 waits\",\"pid\":7,"
                 "\"blocked_by\":[3,4]},{\"kind\":\"invalid_index\",\"message\":\"index "
                 "\\\"x\\\"\",\"pid\":null}]}"));
  CHECK(Contains(FormatDoctorText(r), "2 finding(s):\n  [lock_wait] pid 7 waits\n"));
}

}  // namespace pgboot
