// The migrator driven on FakeDatabase and FakeClock: ordering, pipelines, 55P03
// retries, failure attribution and --single-transaction, without a server.
#include "migrator.h"

#include <doctest/doctest.h>

#include <algorithm>
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

Status Lock55P03() { return Status::Sql("canceling statement due to lock timeout", "55P03"); }

struct Engine {
  Engine() { LogInit(LogFormat::kText, LogLevel::kInfo); }
  Status Migrate() { return pgboot::Migrate(db, cfg, files, MigrateOptions{}, clock); }
  FakeDatabase db;
  FakeClock clock;
  Config cfg;
  std::vector<Migration> files;
};

TEST_CASE("migrate applies pending versions in version order, one round trip each") {
  Engine e;
  e.files = {FakeMigration("2", "CREATE TABLE b (id int);"),
             FakeMigration("10", "CREATE TABLE c (id int);\nINSERT INTO c VALUES (1);"),
             FakeMigration("1", "CREATE TABLE a (id int);")};
  std::sort(e.files.begin(), e.files.end(), [](const Migration& x, const Migration& y) {
    return CompareVersions(x.version, y.version) < 0;
  });
  REQUIRE(e.Migrate().ok());

  std::vector<FakeDatabase::Call> applied = e.db.SequencesWith("'applied'");
  REQUIRE(applied.size() == 3);
  const char* tables[] = {"TABLE a", "TABLE b", "TABLE c"};
  for (size_t i = 0; i < 3; ++i) {
    const std::vector<std::string>& st = applied[i].statements;
    CHECK(st.front() == "BEGIN");
    CHECK(st.back() == "COMMIT");
    bool has_ddl = false;
    for (const std::string& s : st) has_ddl |= Has(s, tables[i]);
    CHECK(has_ddl);
    // The history row, the audit row and the gate's notification commit with the
    // migration.
    CHECK(Has(st[st.size() - 4], "INSERT INTO \"public\".\"pgboot_history\""));
    CHECK(Has(st[st.size() - 3], "INSERT INTO \"public\".\"pgboot_history_log\""));
    CHECK(st[st.size() - 2] ==
          "SELECT pg_notify('pgboot', quote_ident('public') || '.' || "
          "quote_ident('pgboot_history'))");
    // Only the run's last commit waits for the WAL flush.
    const bool async = st[1] == "SET LOCAL synchronous_commit = off";
    CHECK(async == (i < 2));
  }
  // Under the lock, released at the end; tables created only after taking it.
  const std::vector<std::string> all = e.db.Statements();
  size_t lock = 0, create = 0, unlock = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (Has(all[i], "pg_try_advisory_lock")) lock = i;
    if (Has(all[i], "CREATE TABLE IF NOT EXISTS")) create = create ? create : i;
    if (Has(all[i], "pg_advisory_unlock")) unlock = i;
  }
  CHECK(lock < create);
  CHECK(create < unlock);
  CHECK(e.clock.sleeps.empty());
}

TEST_CASE(
    "a migration's statements go to the session in place, not copied, and the file is intact") {
  Engine e;
  e.files = {FakeMigration("1", "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);SELECT 2")};
  const std::string before = e.files[0].up.sql;
  REQUIRE(e.Migrate().ok());
  const std::string& sql = e.files[0].up.sql;
  CHECK(sql == before);  // every '\0' written for libpq was put back
  int borrowed = 0;
  for (const std::vector<std::string_view>& call : e.db.sequence_views) {
    for (std::string_view st : call) {
      // A view into the section itself (the fake checked its '\0' at the call).
      if (st.data() >= sql.data() && st.data() < sql.data() + sql.size()) ++borrowed;
    }
  }
  CHECK(borrowed == 3);
}

TEST_CASE("55P03 under --ddl-lock-timeout retries the migration's transaction from BEGIN") {
  Engine e;
  e.cfg.ddl_lock_timeout_ms = 100;
  e.cfg.ddl_retries = 3;
  e.files = {FakeMigration("1", "ALTER TABLE t ADD COLUMN x int;")};
  e.db.Fail("ALTER TABLE t", Lock55P03(), /*times=*/2);
  StderrCapture log;
  REQUIRE(e.Migrate().ok());
  std::vector<std::string> retries = log.Lines("migration.retry");

  const std::vector<FakeDatabase::Call> tries = e.db.SequencesWith("ALTER TABLE t");
  REQUIRE(tries.size() == 3);
  for (const auto& t : tries) {
    CHECK(t.statements.front() == "BEGIN");
    CHECK(t.statements[1] == "SET LOCAL lock_timeout = '100ms'");
  }
  CHECK(e.db.Count("ROLLBACK") == 2);
  // Two jittered pauses, growing: [0, 200] then [0, 400] ms at draw 0.5.
  REQUIRE(e.clock.sleeps.size() == 2);
  CHECK(e.clock.sleeps[0] == 100);
  CHECK(e.clock.sleeps[1] == 200);
  REQUIRE(retries.size() == 2);
  CHECK(Has(retries[0], "attempt=2"));
  CHECK(Has(retries[1], "attempt=3"));
  CHECK(Has(retries[0], "sqlstate=55P03"));
}

TEST_CASE("55P03 past --ddl-retries fails with exit 5, and no retry without --ddl-lock-timeout") {
  Engine e;
  e.cfg.ddl_lock_timeout_ms = 100;
  e.cfg.ddl_retries = 1;
  e.files = {FakeMigration("1", "ALTER TABLE t ADD COLUMN x int;")};
  e.db.Fail("ALTER TABLE t", Lock55P03());
  Status s = e.Migrate();
  CHECK(ExitCodeFor(s) == kExitMigrationFailed);
  CHECK(e.db.SequencesWith("ALTER TABLE t").size() == 2);
  CHECK(e.clock.sleeps.size() == 1);

  Engine off;
  off.files = {FakeMigration("1", "ALTER TABLE t ADD COLUMN x int;")};
  off.db.Fail("ALTER TABLE t", Lock55P03());
  CHECK(ExitCodeFor(off.Migrate()) == kExitMigrationFailed);
  CHECK(off.db.SequencesWith("ALTER TABLE t").size() == 1);
  CHECK(off.clock.sleeps.empty());
}

TEST_CASE("a failure in the middle of a pipeline names file:line:col and SQLSTATE, rolls back") {
  Engine e;
  e.files = {FakeMigration("1",
                           "CREATE TABLE a (id int);\n\n-- the bad one\nSELECT nope FROM a;\n"
                           "CREATE TABLE z (id int);"),
             FakeMigration("2", "CREATE TABLE b (id int);")};
  // Position 8 of "SELECT nope FROM a" is the 'n' of nope: line 4, column 8.
  e.db.Fail("SELECT nope", Status::Sql("column \"nope\" does not exist", "42703", 8));
  StderrCapture log;
  Status s = e.Migrate();
  std::vector<std::string> failed = log.Lines("migration.failed");
  CHECK(ExitCodeFor(s) == kExitMigrationFailed);
  CHECK(s.sqlstate() == "42703");
  CHECK(Has(s.message(), "migrations/1_m1.sql:4:8"));
  CHECK(Has(s.message(), "SQLSTATE 42703"));
  REQUIRE(failed.size() == 1);
  CHECK(Has(failed[0], "file=migrations/1_m1.sql:4:8"));
  CHECK(Has(failed[0], "statement=2"));
  // The pipeline stopped at the failing statement; it was rolled back and the
  // `failed` audit row written on its own; migration 2 never ran.
  CHECK(e.db.Count("CREATE TABLE z") == 1);  // queued in the pipeline, not run past the failure
  CHECK(e.db.Count("ROLLBACK") == 1);
  CHECK(e.db.Count("VALUES ('failed'") == 1);
  CHECK(e.db.Count("'42703'") == 1);
  CHECK(e.db.Count("CREATE TABLE b") == 0);
}

TEST_CASE("--single-transaction: one pipeline, a failure attributed to its migration") {
  Engine e;
  e.cfg.single_transaction = true;
  e.files = {FakeMigration("1", "CREATE TABLE a (id int);"),
             FakeMigration("2", "CREATE TABLE b (id int);\nCREATE TABLE bad (id int);"),
             FakeMigration("3", "CREATE TABLE c (id int);")};
  e.db.Fail("TABLE bad", Status::Sql("relation \"bad\" already exists", "42P07"));
  StderrCapture log;
  Status s = e.Migrate();
  std::vector<std::string> failed = log.Lines("migration.failed");
  CHECK(ExitCodeFor(s) == kExitMigrationFailed);
  CHECK(Has(s.message(), "migration 2 (m2) failed at migrations/2_m2.sql:2"));
  const auto one = e.db.SequencesWith("TABLE a");
  REQUIRE(one.size() == 1);
  CHECK(e.db.SequencesWith("TABLE c").size() == 1);  // the same single pipeline
  CHECK(one[0].statements.front() == "BEGIN");
  CHECK(one[0].statements.back() == "COMMIT");
  REQUIRE(failed.size() == 1);
  CHECK(Has(failed[0], "version=2"));
  CHECK(Has(failed[0], "statement=2"));
}

TEST_CASE("--single-transaction retries the whole transaction on 55P03") {
  Engine e;
  e.cfg.single_transaction = true;
  e.cfg.ddl_lock_timeout_ms = 50;
  e.files = {FakeMigration("1", "CREATE TABLE a (id int);"),
             FakeMigration("2", "ALTER TABLE a ADD COLUMN x int;")};
  e.db.Fail("ALTER TABLE a", Lock55P03(), 1);
  REQUIRE(e.Migrate().ok());
  CHECK(e.db.SequencesWith("CREATE TABLE a").size() == 2);
  CHECK(e.clock.sleeps.size() == 1);
}

TEST_CASE("transaction:false: a running row, statements one by one, then applied or failed") {
  Engine e;
  e.files = {FakeMigration("1", "CREATE INDEX CONCURRENTLY i ON t (x);\nSELECT 2;", false)};
  REQUIRE(e.Migrate().ok());
  const std::vector<std::string> all = e.db.Statements();
  size_t running = 0, index = 0, applied = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    // The INSERT of the running row (later writes name 'running' in their WHERE).
    if (Has(all[i], "'running', now()")) running = i;
    if (Has(all[i], "CREATE INDEX CONCURRENTLY")) index = i;
    if (Has(all[i], "SET status = 'applied'")) applied = i;
  }
  CHECK(running > 0);
  CHECK(running < index);
  CHECK(index < applied);
  CHECK(e.db.SequencesWith("CREATE INDEX").empty());  // never pipelined into a transaction
  // statements_done right after each statement, on its own (no BEGIN of pgboot's).
  CHECK(Has(all[index + 1], "SET statements_done = 1 "));
  CHECK(Has(all[index + 3], "SET statements_done = 2 "));

  Engine f;
  f.files = {FakeMigration("1", "SELECT 1;\nCREATE INDEX CONCURRENTLY i ON t (x);", false)};
  f.db.Fail("CREATE INDEX", Status::Sql("boom", "XX000"));
  Status s = f.Migrate();
  CHECK(ExitCodeFor(s) == kExitMigrationFailed);
  CHECK(Has(s.message(), "migrations/1_m1.sql:2"));
  CHECK(f.db.Count("SET status = 'failed'") == 1);
  CHECK(f.db.Count("SET status = 'applied'") == 0);
}

}  // namespace
}  // namespace pgboot
