// Rollback's engine on FakeDatabase and FakeClock: order, one transaction per
// version, no 55P03 retry, failure attribution with direction down.
#include "rollback.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "exit_code.h"
#include "fakes.h"
#include "log.h"

namespace pgboot {
namespace {

bool Has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

SqlRow AppliedRow(const std::string& v, const std::string& batch = "1") {
  return {v, "m" + v, "sum" + v, "applied", "2026-01-01T00:00:00.000Z", "5", "pgboot", batch};
}

struct Engine {
  Engine() {
    LogInit(LogFormat::kText, LogLevel::kInfo);
    db.Answer("to_regclass", {"t", "t", "t"});
    db.AnswerRows("SELECT version, name, checksum",
                  {AppliedRow("1"), AppliedRow("2"), AppliedRow("3", "2")});
    files = {
        FakeMigration("1", "CREATE TABLE a (id int);", true, "DROP TABLE a;"),
        FakeMigration("2", "CREATE TABLE b (id int);", true, "DROP TABLE b;"),
        FakeMigration("3", "CREATE TABLE c (id int);", true, "DELETE FROM c;\n  DROP TABLE c;")};
  }
  Status Rollback(RollbackOptions o) { return pgboot::Rollback(db, cfg, files, o, clock); }
  FakeDatabase db;
  FakeClock clock;
  Config cfg;
  std::vector<Migration> files;
};

TEST_CASE("rollback runs downs highest first, each with its row's deletion and audit row") {
  Engine e;
  e.cfg.ddl_lock_timeout_ms = 100;  // migrate's setting: rollback sets no lock_timeout
  RollbackOptions o;
  o.steps = 2;
  REQUIRE(e.Rollback(o).ok());
  const auto downs = e.db.SequencesWith("'rolled_back'");
  REQUIRE(downs.size() == 2);
  const char* drops[] = {"DROP TABLE c", "DROP TABLE b"};
  const char* versions[] = {"'3'", "'2'"};
  for (size_t i = 0; i < 2; ++i) {
    const auto& st = downs[i].statements;
    CHECK(st.front() == "BEGIN");
    CHECK(st.back() == "COMMIT");
    bool drop = false, lock_timeout = false, async = false;
    for (const std::string& s : st) {
      drop |= Has(s, drops[i]);
      lock_timeout |= Has(s, "lock_timeout");
      async |= Has(s, "synchronous_commit");
    }
    CHECK(drop);
    CHECK_FALSE(lock_timeout);
    CHECK_FALSE(async);
    CHECK(Has(st[st.size() - 3], std::string("DELETE FROM \"public\".\"pgboot_history\" WHERE "
                                             "version = ") +
                                     versions[i]));
  }
  CHECK(e.db.Count("DROP TABLE a") == 0);
}

TEST_CASE("rollback does not retry 55P03: it fails at once naming file:line, direction down") {
  Engine e;
  e.cfg.ddl_lock_timeout_ms = 100;
  e.cfg.ddl_retries = 5;
  e.db.Fail("DROP TABLE c", Status::Sql("canceling statement due to lock timeout", "55P03"));
  StderrCapture log;
  Status s = e.Rollback(RollbackOptions{});
  std::vector<std::string> failed = log.Lines("rollback.failed");
  CHECK(ExitCodeFor(s) == kExitMigrationFailed);
  CHECK(e.db.SequencesWith("DROP TABLE c").size() == 1);
  CHECK(e.clock.sleeps.empty());
  CHECK(log.Lines("migration.retry").empty());
  CHECK(Has(s.message(), "rollback of 3 (m3) failed at migrations/3_m3.down.sql:2"));
  REQUIRE(failed.size() == 1);
  CHECK(Has(failed[0], "statement=2"));
  CHECK(e.db.Count("'direction', 'down'") == 1);
  CHECK(e.db.Count("DELETE FROM \"public\".\"pgboot_history\"") ==
        1);  // only in the rolled-back pipeline
}

}  // namespace
}  // namespace pgboot
