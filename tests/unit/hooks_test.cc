// Hooks on FakeDatabase: when migrate runs them, with which versions, what a failure leaves, and
// the pure pieces of the runner (environment, shell check).
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "exit_code.h"
#include "fakes.h"
#include "hook_runner.h"
#include "log.h"
#include "migrator.h"

namespace pgboot {
namespace {

bool Has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// One call of the hook runner, and how many statements the session had seen by then.
struct HookCall {
  HookKind kind;
  std::string command;
  std::vector<std::string> versions;
  size_t statements_before = 0;
};

struct Hooked {
  Hooked() {
    LogInit(LogFormat::kText, LogLevel::kInfo);
    cfg.before_migrate = "backup";
    cfg.after_migrate = "notify";
    files = {FakeMigration("1", "CREATE TABLE a (id int);"),
             FakeMigration("2", "CREATE TABLE b (id int);")};
  }
  Status Migrate(bool dry_run = false) {
    MigrateOptions o;
    o.dry_run = dry_run;
    o.run_hook = [this](HookKind kind, const std::string& command,
                        const std::vector<std::string>& versions) {
      calls.push_back({kind, command, versions, db.Statements().size()});
      if (on_hook) on_hook(kind);
      return kind == HookKind::kBeforeMigrate ? before_result : after_result;
    };
    return pgboot::Migrate(db, cfg, files, o, clock);
  }
  // Index of the first statement holding `needle`, from `from` on.
  size_t IndexOf(const std::string& needle, size_t from = 0) const {
    const std::vector<std::string> all = db.Statements();
    for (size_t i = from; i < all.size(); ++i) {
      if (Has(all[i], needle)) return i;
    }
    return all.size();
  }
  FakeDatabase db;
  FakeClock clock;
  Config cfg;
  std::vector<Migration> files;
  std::vector<HookCall> calls;
  std::function<void(HookKind)> on_hook;
  Status before_result;
  Status after_result;
};

// The history table exists and holds version 1 as applied.
void ScriptVersionOneApplied(FakeDatabase& db) {
  db.Answer("SELECT to_regclass($1) IS NOT NULL, (SELECT", {"t", ""});
  db.Answer("to_regnamespace", {"t", "t", "t", ""});
  db.AnswerRows("FROM \"public\".\"pgboot_history\"",
                {{std::string("1"), std::string("m1"), std::string("sum1"), std::string("applied"),
                  std::string("2026-01-01T00:00:00.000Z"), std::string("5"), std::string("x"),
                  std::string("1"), std::nullopt, std::nullopt, std::nullopt}});
}

TEST_CASE("hooks: before under the lock ahead of the first migration, after before the unlock") {
  Hooked h;
  REQUIRE(h.Migrate().ok());
  REQUIRE(h.calls.size() == 2);
  CHECK(h.calls[0].kind == HookKind::kBeforeMigrate);
  CHECK(h.calls[0].command == "backup");
  CHECK(h.calls[0].versions == std::vector<std::string>{"1", "2"});
  CHECK(h.calls[1].kind == HookKind::kAfterMigrate);
  CHECK(h.calls[1].command == "notify");
  CHECK(h.calls[1].versions == std::vector<std::string>{"1", "2"});

  const size_t locked = h.IndexOf("pg_try_advisory_lock");
  const size_t first_ddl = h.IndexOf("CREATE TABLE a");
  const size_t last_applied = h.IndexOf("'applied'", h.IndexOf("CREATE TABLE b"));
  const size_t unlocked = h.IndexOf("pg_advisory_unlock");
  CHECK(locked < h.calls[0].statements_before);
  CHECK(h.calls[0].statements_before <= first_ddl);
  CHECK(last_applied < h.calls[1].statements_before);
  CHECK(h.calls[1].statements_before <= unlocked);
  CHECK(unlocked < h.db.Statements().size());
}

TEST_CASE("hooks: history is read and validated again after the before-migrate hook") {
  Hooked h;
  // While the hook runs, version 1 becomes applied (e.g. the hook applied it).
  h.on_hook = [&](HookKind kind) {
    if (kind == HookKind::kBeforeMigrate) ScriptVersionOneApplied(h.db);
  };
  REQUIRE(h.Migrate().ok());
  REQUIRE(h.calls.size() == 2);
  CHECK(h.calls[0].versions == std::vector<std::string>{"1", "2"});
  CHECK(h.db.Count("CREATE TABLE a") == 0);
  CHECK(h.db.Count("CREATE TABLE b") == 1);
  CHECK(h.calls[1].versions == std::vector<std::string>{"2"});
}

TEST_CASE("hooks: everything applied while the hook ran: nothing applied, no after-migrate") {
  Hooked h;
  h.files.pop_back();
  h.on_hook = [&](HookKind) { ScriptVersionOneApplied(h.db); };
  REQUIRE(h.Migrate().ok());
  REQUIRE(h.calls.size() == 1);
  CHECK(h.db.Count("CREATE TABLE a") == 0);
}

TEST_CASE("hooks: a failing before-migrate hook applies nothing and is exit 9") {
  Hooked h;
  h.before_result = Status::HookFailed("--before-migrate hook exited with code 3");
  Status s = h.Migrate();
  CHECK(ExitCodeFor(s) == 9);
  CHECK(Has(s.message(), "exited with code 3; nothing was applied"));
  CHECK(h.calls.size() == 1);
  CHECK(h.db.Count("CREATE TABLE a") == 0);
  CHECK(h.db.Count("pg_advisory_unlock") == 1);
}

TEST_CASE("hooks: a signal during the before-migrate hook ends the run as that signal") {
  Hooked h;
  h.before_result = Status::Signal(15);
  Status s = h.Migrate();
  CHECK(ExitCodeFor(s) == 143);
  CHECK(h.db.Count("CREATE TABLE a") == 0);
}

TEST_CASE("hooks: a failing after-migrate hook is exit 9 and the migrations stay applied") {
  Hooked h;
  h.after_result = Status::HookFailed("--after-migrate hook was killed by SIGKILL");
  Status s = h.Migrate();
  CHECK(ExitCodeFor(s) == 9);
  CHECK(Has(s.message(), "the migrations stay applied"));
  CHECK(h.db.SequencesWith("'applied'").size() == 2);
}

TEST_CASE("hooks: none run when nothing is pending, under --dry-run, or without a runner") {
  SUBCASE("nothing pending") {
    Hooked h;
    h.files = {FakeMigration("1", "CREATE TABLE a (id int);")};
    ScriptVersionOneApplied(h.db);
    REQUIRE(h.Migrate().ok());
    CHECK(h.calls.empty());
  }
  SUBCASE("--target at or below the newest applied version") {
    Hooked h;
    ScriptVersionOneApplied(h.db);
    MigrateOptions o;
    o.target = "1";
    o.run_hook = [&](HookKind, const std::string&, const std::vector<std::string>&) {
      h.calls.push_back({});
      return Status::Ok();
    };
    REQUIRE(pgboot::Migrate(h.db, h.cfg, h.files, o, h.clock).ok());
    CHECK(h.calls.empty());
  }
  SUBCASE("--dry-run") {
    Hooked h;
    REQUIRE(h.Migrate(/*dry_run=*/true).ok());
    CHECK(h.calls.empty());
  }
  SUBCASE("only the after hook configured runs only after") {
    Hooked h;
    h.cfg.before_migrate.clear();
    REQUIRE(h.Migrate().ok());
    REQUIRE(h.calls.size() == 1);
    CHECK(h.calls[0].kind == HookKind::kAfterMigrate);
  }
}

TEST_CASE("hooks: a failed migration runs no after-migrate hook") {
  Hooked h;
  h.db.Fail("CREATE TABLE b", Status::Sql("boom", "42P07"));
  Status s = h.Migrate();
  CHECK(ExitCodeFor(s) == 5);
  REQUIRE(h.calls.size() == 1);
  CHECK(h.calls[0].kind == HookKind::kBeforeMigrate);
}

TEST_CASE("hooks: refused in transaction lock mode, pending or not, before anything runs") {
  for (bool pending : {true, false}) {
    CAPTURE(pending);
    Hooked h;
    h.db.mode = LockMode::kTransaction;
    if (!pending) h.files = {};
    Status s = h.Migrate();
    CHECK(ExitCodeFor(s) == kExitUsage);
    CHECK(Has(s.message(), "--before-migrate hook needs session lock mode"));
    CHECK(Has(s.message(), "--lock-mode session"));
    CHECK(h.calls.empty());
    CHECK(h.db.Statements().empty());
  }
  SUBCASE("an after hook alone is refused too") {
    Hooked h;
    h.db.mode = LockMode::kTransaction;
    h.cfg.before_migrate.clear();
    CHECK(Has(h.Migrate().message(), "--after-migrate hook needs session lock mode"));
  }
  SUBCASE("a dry run in transaction mode prints and runs no hook") {
    Hooked h;
    h.db.mode = LockMode::kTransaction;
    CHECK(h.Migrate(/*dry_run=*/true).ok());
    CHECK(h.calls.empty());
  }
}

TEST_CASE("hooks: reset's migrate (no runner) runs no hook and refuses nothing") {
  Hooked h;
  h.db.mode = LockMode::kTransaction;
  h.files = {};  // with a runner this is exit 2 (above)
  CHECK(pgboot::Migrate(h.db, h.cfg, h.files, MigrateOptions{}, h.clock).ok());
  Hooked session;
  REQUIRE(pgboot::Migrate(session.db, session.cfg, session.files, MigrateOptions{}, session.clock)
              .ok());
  CHECK(session.db.Count("CREATE TABLE b") == 1);
  CHECK(session.calls.empty());
}

TEST_CASE("HookEnvironment: libpq and PGBOOT_* variables replace inherited ones, the rest stays") {
  const std::vector<std::string> base = {"PATH=/usr/bin", "PGHOST=old", "PGBOOT_PENDING=99",
                                         "HOME=/root", "EMPTY="};
  const std::vector<std::string> env =
      HookEnvironment(base, {{"PGHOST", "db.internal"}, {"PGPASSWORD", "s3cr=t"}},
                      HookKind::kBeforeMigrate, {"1", "20260101000000"});
  auto count = [&](const std::string& prefix) {
    return std::count_if(env.begin(), env.end(),
                         [&](const std::string& e) { return e.rfind(prefix, 0) == 0; });
  };
  auto has = [&](const std::string& entry) {
    return std::find(env.begin(), env.end(), entry) != env.end();
  };
  CHECK(has("PATH=/usr/bin"));
  CHECK(has("HOME=/root"));
  CHECK(has("EMPTY="));
  CHECK(has("PGHOST=db.internal"));
  CHECK(count("PGHOST=") == 1);
  CHECK(has("PGPASSWORD=s3cr=t"));
  CHECK(has("PGBOOT_HOOK=before_migrate"));
  CHECK(has("PGBOOT_PENDING=2"));
  CHECK(count("PGBOOT_PENDING=") == 1);
  CHECK(has("PGBOOT_PENDING_VERSIONS=1 20260101000000"));
  const std::vector<std::string> after = HookEnvironment({}, {}, HookKind::kAfterMigrate, {});
  CHECK(std::find(after.begin(), after.end(), "PGBOOT_HOOK=after_migrate") != after.end());
  CHECK(std::find(after.begin(), after.end(), "PGBOOT_PENDING_VERSIONS=") != after.end());
}

TEST_CASE("CheckHookShell: exit 9 unless the shell is an executable regular file") {
  CHECK(CheckHookShell("/bin/sh").ok());
  Status missing = CheckHookShell("/nonexistent/sh");
  CHECK(ExitCodeFor(missing) == 9);
  CHECK(Has(missing.message(), "/nonexistent/sh"));
  CHECK(Has(missing.message(), "No such file or directory"));
  CHECK(ExitCodeFor(CheckHookShell("/")) == 9);  // a directory
  char path[] = "/tmp/pgboot-hook-shell-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  chmod(path, 0644);
  Status plain = CheckHookShell(path);
  CHECK(ExitCodeFor(plain) == 9);
  CHECK(Has(plain.message(), "is not an executable file"));
  chmod(path, 0755);
  CHECK(CheckHookShell(path).ok());
  std::remove(path);
}

}  // namespace
}  // namespace pgboot
