// The resume decision (docs/reference.md, "Resume") on its own and through the migrator on
// FakeDatabase: where a running row goes on, what it re-runs first, what refuses.
#include "resume.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "exit_code.h"
#include "fakes.h"
#include "log.h"
#include "migrator.h"

namespace pgboot {
namespace {

bool Has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

HistoryRow Running(const Migration& m, std::optional<int64_t> done) {
  HistoryRow r;
  r.version = m.version;
  r.name = m.name;
  r.checksum = m.checksum;
  r.status = "running";
  r.batch = 3;
  r.statements_done = done;
  return r;
}

TEST_CASE("resume: goes on after statements_done, re-running the earlier session settings") {
  Migration m = FakeMigration("1",
                              "SET search_path = app;\nCREATE TABLE a (id int);\nSET LOCAL x = 1;\n"
                              "SET ROLE owner;\nRESET lock_timeout;\nSET SESSION AUTHORIZATION u;\n"
                              "SET TRANSACTION READ ONLY;\nCREATE INDEX CONCURRENTLY i ON a (id);",
                              false);
  auto p = DecideResume(m, Running(m, 7));
  REQUIRE(p.ok());
  CHECK(p->next == 7);
  CHECK(p->prelude == std::vector<size_t>{0, 3, 4, 5});
  auto zero = DecideResume(m, Running(m, 0));
  REQUIRE(zero.ok());
  CHECK(zero->next == 0);
  CHECK(zero->prelude.empty());
  auto all = DecideResume(m, Running(m, 8));  // every statement ran: only `applied` is left
  REQUIRE(all.ok());
  CHECK(all->next == 8);
}

TEST_CASE("resume: the section's own transaction blocks") {
  Migration m = FakeMigration("1",
                              "CREATE TABLE a (id int);\nBEGIN;\nSET search_path = s;\n"
                              "INSERT INTO a VALUES (1);\nINSERT INTO a VALUES (2);\nCOMMIT;\n"
                              "BEGIN;\nSET role r;\nROLLBACK;\nSELECT 1;",
                              false);
  // Counts inside a block roll back with it, so a count there restarts at its BEGIN.
  auto in = DecideResume(m, Running(m, 4));
  REQUIRE(in.ok());
  CHECK(in->next == 1);
  CHECK(in->prelude.empty());
  // At the COMMIT: the block's last count committed with it, so it is done.
  auto at_commit = DecideResume(m, Running(m, 5));
  REQUIRE(at_commit.ok());
  CHECK(at_commit->next == 6);
  CHECK(at_commit->prelude == std::vector<size_t>{2});
  // A setting of a block that rolled back did not last.
  auto after = DecideResume(m, Running(m, 9));
  REQUIRE(after.ok());
  CHECK(after->next == 9);
  CHECK(after->prelude == std::vector<size_t>{2});
}

TEST_CASE(
    "resume refuses: drift, a row of pgboot 0.1, a count beyond the file, a transactional file") {
  Migration m = FakeMigration("4", "SELECT 1;\nSELECT 2;", false);
  HistoryRow drift = Running(m, 1);
  drift.checksum = "other";
  auto d = DecideResume(m, drift);
  REQUIRE_FALSE(d.ok());
  CHECK(ExitCodeFor(d.status()) == kExitValidation);
  CHECK(Has(d.status().message(), "changed"));
  auto old = DecideResume(m, Running(m, std::nullopt));
  REQUIRE_FALSE(old.ok());
  CHECK(ExitCodeFor(old.status()) == kExitValidation);
  CHECK(Has(old.status().message(), "pgboot repair"));
  auto beyond = DecideResume(m, Running(m, 3));
  REQUIRE_FALSE(beyond.ok());
  CHECK(Has(beyond.status().message(), "pgboot repair"));
  Migration tx = FakeMigration("4", "SELECT 1;\nSELECT 2;", true);
  CHECK_FALSE(DecideResume(tx, Running(tx, 1)).ok());
}

TEST_CASE("statement kinds: session settings, RESET/DISCARD, CREATE INDEX CONCURRENTLY targets") {
  CHECK(IsSessionSetting("set search_path = a"));
  CHECK(IsSessionSetting("/* c */ SET -- x\n ROLE r"));
  CHECK(IsSessionSetting("RESET ALL"));
  CHECK_FALSE(IsSessionSetting("SET LOCAL lock_timeout = 1"));
  CHECK_FALSE(IsSessionSetting("SET CONSTRAINTS ALL DEFERRED"));
  CHECK_FALSE(IsSessionSetting("SELECT set_config('a', 'b', false)"));
  CHECK(ResetsSettings("DISCARD ALL"));
  CHECK(ResetsSettings("reset statement_timeout"));
  CHECK_FALSE(ResetsSettings("SET x = 1"));

  auto a = ParseCreateIndexConcurrently(
      "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"My Idx\" ON ONLY app.\"T\" (id)");
  REQUIRE(a);
  CHECK(a->index == "My Idx");
  CHECK(a->table == "app.\"T\"");
  auto b = ParseCreateIndexConcurrently("create index concurrently Idx_A on t using btree (x)");
  REQUIRE(b);
  CHECK(b->index == "idx_a");
  CHECK(b->table == "t");
  CHECK_FALSE(ParseCreateIndexConcurrently("CREATE INDEX CONCURRENTLY ON t (x)"));
  CHECK_FALSE(ParseCreateIndexConcurrently("CREATE INDEX i ON t (x)"));
  CHECK_FALSE(ParseCreateIndexConcurrently("DROP INDEX CONCURRENTLY i"));
}

// A history table holding one running row of version 1.
void ScriptRunningRow(FakeDatabase& db, const Migration& m, const std::string& done) {
  db.Answer("SELECT to_regclass($1) IS NOT NULL, (SELECT", {"t", ""});  // no column missing
  db.Answer("to_regnamespace", {"t", "t", "t", ""});
  db.AnswerRows("FROM \"public\".\"pgboot_history\"",
                {{m.version, m.name, m.checksum, std::string("running"), std::string(""),
                  std::nullopt, std::string("x"), std::string("3"), std::nullopt, std::nullopt,
                  done.empty() ? std::nullopt : SqlParam(done)}});
}

struct Run {
  Run() { LogInit(LogFormat::kText, LogLevel::kInfo); }
  Status Migrate(bool dry_run = false) {
    MigrateOptions o;
    o.dry_run = dry_run;
    return pgboot::Migrate(db, cfg, files, o, clock);
  }
  FakeDatabase db;
  FakeClock clock;
  Config cfg;
  std::vector<Migration> files;
};

size_t IndexOf(const std::vector<std::string>& all, const std::string& needle, size_t from = 0) {
  for (size_t i = from; i < all.size(); ++i) {
    if (Has(all[i], needle)) return i;
  }
  return all.size();
}

TEST_CASE("migrate resumes a running row: settings, leftover index dropped, then the rest") {
  Run r;
  r.files = {FakeMigration("1",
                           "SET search_path = app;\nCREATE TABLE a (id int);\n"
                           "CREATE INDEX CONCURRENTLY a_idx ON a (id);\nSELECT 4;",
                           false)};
  ScriptRunningRow(r.db, r.files[0], "2");
  r.db.Answer("NOT i.indisvalid", {"app.a_idx"});
  StderrCapture err;
  REQUIRE(r.Migrate().ok());
  const std::vector<std::string> all = r.db.Statements();
  const size_t set = IndexOf(all, "SET search_path = app");
  const size_t drop = IndexOf(all, "DROP INDEX CONCURRENTLY IF EXISTS app.a_idx");
  const size_t create = IndexOf(all, "CREATE INDEX CONCURRENTLY a_idx");
  CHECK(set < drop);
  CHECK(drop < create);
  CHECK(create < all.size());
  CHECK(r.db.Count("CREATE TABLE a") == 0);    // statement 2 is done
  CHECK(r.db.Count("'running', now()") == 0);  // its row exists: no new one
  CHECK(Has(all[create + 1], "SET statements_done = 3 "));
  CHECK(r.db.Count("SET status = 'applied'") == 1);
  auto resumed = err.Lines("migration.resume");
  REQUIRE(resumed.size() == 2);
  CHECK(Has(resumed[0], "version=1 name=m1 statement=3"));
  CHECK(Has(resumed[1], "dropped_index=app.a_idx"));
}

TEST_CASE("migrate: a running row that cannot resume is exit 6, nothing run") {
  Run r;
  r.files = {FakeMigration("1", "SELECT 1;\nSELECT 2;", false)};
  ScriptRunningRow(r.db, r.files[0], "");
  Status s = r.Migrate();
  CHECK(ExitCodeFor(s) == kExitValidation);
  CHECK(Has(s.message(), "pgboot repair"));
  CHECK(r.db.Count("SELECT 2") == 0);
}

TEST_CASE("a history write that finds the lock gone stops the run: exit 1 naming the statement") {
  Run r;
  r.files = {FakeMigration("1", "SELECT pg_advisory_unlock_all();\nSELECT 2;", false)};
  r.db.Affect("SET statements_done = 1 ", 0);
  Status s = r.Migrate();
  CHECK(ExitCodeFor(s) == kExitInternal);
  CHECK(Has(s.message(), "statement 1 released the migration lock"));
  CHECK(r.db.Count("SELECT 2") == 0);
  CHECK(r.db.Count("SET status = 'failed'") == 0);
}

TEST_CASE("a signal leaves the row running; an SQL error marks it failed") {
  Run r;
  r.files = {FakeMigration("1", "SELECT 1;\nSELECT pg_sleep(60);\nSELECT 3;", false)};
  r.db.Fail("pg_sleep", Status::Signal(15));
  Status s = r.Migrate();
  CHECK(ExitCodeFor(s) == 143);
  CHECK(r.db.Count("SET statements_done = 1 ") == 1);
  CHECK(r.db.Count("SET statements_done = 2 ") == 0);
  CHECK(r.db.Count("SET status = 'failed'") == 0);
  CHECK(r.db.Count("INSERT INTO \"public\".\"pgboot_history_log\"") == 0);  // no failed audit row

  Run lost;
  lost.files = r.files;
  lost.db.Fail("pg_sleep", Status::ConnectionLost("server closed the connection"));
  Status l = lost.Migrate();
  CHECK(l.kind() == StatusKind::kConnectionLost);
  CHECK(lost.db.Count("SET status = 'failed'") == 0);
}

TEST_CASE("after RESET or DISCARD pgboot's own settings are sent again") {
  Run r;
  r.cfg.statement_timeout_ms = 5000;
  r.files = {FakeMigration("1", "RESET ALL;\nSELECT 2;", false)};
  REQUIRE(r.Migrate().ok());
  const std::vector<std::string> all = r.db.Statements();
  const size_t reset = IndexOf(all, "RESET ALL");
  REQUIRE(reset < all.size());
  CHECK(Has(all[reset + 1], "standard_conforming_strings"));
  CHECK(IndexOf(all, "SET statement_timeout = '5000ms'", reset) < IndexOf(all, "SELECT 2"));
}

TEST_CASE("dry run with a running row prints from statements_done + 1") {
  Run r;
  r.files = {FakeMigration("1", "SET search_path = s;\nSELECT 2;\nSELECT 3;", false)};
  ScriptRunningRow(r.db, r.files[0], "2");
  REQUIRE(r.Migrate(/*dry_run=*/true).ok());
  CHECK(r.db.Count("pg_try_advisory_lock") == 0);
}

TEST_CASE("a lost connection reconnects and starts again from reading the history") {
  LogInit(LogFormat::kText, LogLevel::kInfo);
  Config cfg;
  FakeClock clock;
  std::vector<Migration> files = {FakeMigration("1", "CREATE TABLE a (id int);")};
  auto first = std::make_unique<FakeDatabase>();
  first->Fail("CREATE TABLE a", Status::ConnectionLost("terminating connection", "57P01"));
  int reconnects = 0, tries = 0, creates = 0;  // on the new session, which the run owns
  Reconnect again = [&]() -> Result<std::unique_ptr<Database>> {
    ++reconnects;
    auto db = std::make_unique<FakeDatabase>();
    db->on_statement = [&](const std::string& sql) {
      tries += Has(sql, "pg_try_advisory_lock");
      creates += Has(sql, "CREATE TABLE a");
    };
    return std::unique_ptr<Database>(std::move(db));
  };
  StderrCapture err;
  Status s = MigrateReconnecting(std::move(first), again, cfg, files, MigrateOptions{}, clock);
  CHECK(s.ok());
  CHECK(reconnects == 1);
  CHECK(tries == 1);
  CHECK(creates == 1);
  CHECK(err.Lines("migrate.reconnect").size() == 1);

  // A reconnect that fails (past --wait-timeout) ends the run with its status.
  auto third = std::make_unique<FakeDatabase>();
  third->Fail("CREATE TABLE a", Status::ConnectionLost("gone"));
  Reconnect never = []() -> Result<std::unique_ptr<Database>> {
    return Status::Timeout("database not ready within 60s");
  };
  Status t = MigrateReconnecting(std::move(third), never, cfg, files, MigrateOptions{}, clock);
  CHECK(ExitCodeFor(t) == kExitNotReady);
}

TEST_CASE(
    "reconnecting stops after kLostWithoutProgress losses in a row with the history unchanged") {
  LogInit(LogFormat::kText, LogLevel::kInfo);
  Config cfg;
  FakeClock clock;
  std::vector<Migration> files = {FakeMigration("1", "SELECT crash();")};
  const Status lost = Status::ConnectionLost("server closed the connection unexpectedly");
  int reconnects = 0, crashes = 0;
  auto crashing = [&]() {
    auto db = std::make_unique<FakeDatabase>();
    db->Fail("crash()", lost);
    db->on_statement = [&](const std::string& sql) { crashes += Has(sql, "crash()"); };
    return db;
  };
  Reconnect again = [&]() -> Result<std::unique_ptr<Database>> {
    ++reconnects;
    return std::unique_ptr<Database>(crashing());
  };
  StderrCapture err;
  Status s = MigrateReconnecting(crashing(), again, cfg, files, MigrateOptions{}, clock);
  CHECK(ExitCodeFor(s) == kExitNotReady);
  CHECK(Has(s.message(), "lost 3 times in a row with no progress"));
  CHECK(Has(s.message(), "server closed the connection unexpectedly"));
  // The statement ran three times, never a fourth.
  CHECK(crashes == kLostWithoutProgress);
  CHECK(reconnects == kLostWithoutProgress);
  CHECK(err.Lines("migrate.reconnect").size() == kLostWithoutProgress);
}

TEST_CASE("progress in the history between lost connections keeps pgboot reconnecting") {
  LogInit(LogFormat::kText, LogLevel::kInfo);
  Config cfg;
  FakeClock clock;
  // Each session gets one statement further before it is lost: 5 losses, then done.
  std::vector<Migration> files = {FakeMigration(
      "1", "SELECT 1;\nSELECT 2;\nSELECT 3;\nSELECT 4;\nSELECT 5;\nSELECT 6;\nSELECT 7;", false)};
  int reconnects = 0;
  auto session = [&](int done) {
    auto db = std::make_unique<FakeDatabase>();
    if (done > 0) ScriptRunningRow(*db, files[0], std::to_string(done));
    if (done < 5) db->Fail("SELECT " + std::to_string(done + 2), Status::ConnectionLost("gone"));
    return db;
  };
  Reconnect again = [&]() -> Result<std::unique_ptr<Database>> {
    ++reconnects;
    return std::unique_ptr<Database>(session(reconnects));
  };
  Status s = MigrateReconnecting(session(0), again, cfg, files, MigrateOptions{}, clock);
  CHECK(s.ok());
  CHECK(reconnects == 5);
}

}  // namespace
}  // namespace pgboot
