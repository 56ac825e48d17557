// Transaction lock mode on FakeDatabase and FakeClock: the locked transaction of each migration,
// the re-check under the lock, the refusals, two interleaved runners and the batch rule.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "exit_code.h"
#include "fakes.h"
#include "history.h"
#include "log.h"
#include "migrator.h"
#include "operator.h"

namespace pgboot {
namespace {

bool Has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

constexpr char kTryLock[] = "pg_try_advisory_xact_lock";
constexpr char kRecheck[] = "ORDER BY length(version) DESC";

std::vector<Migration> ThreeFiles() {
  return {FakeMigration("1", "CREATE TABLE a (id int);"),
          FakeMigration("2", "CREATE TABLE b (id int);"),
          FakeMigration("3", "CREATE TABLE c (id int);")};
}

// The database as every runner sees it: who holds the lock, and the history.
struct World {
  bool held_by_other = false;
  std::map<std::string, std::pair<std::string, int64_t>> rows;  // version -> checksum, batch
  std::string unfinished;  // "version status" of a running/failed row, if any
  // Runs when a runner's try-lock is answered (the other runner moves meanwhile).
  std::function<void()> on_try;

  int64_t MaxBatch() const {
    int64_t b = 0;
    for (const auto& [v, r] : rows) b = std::max(b, r.second);
    return b;
  }
  std::string NewestApplied() const {
    std::string n;
    for (const auto& [v, r] : rows) {
      if (n.empty() || CompareVersions(v, n) > 0) n = v;
    }
    return n;
  }
};

// Answers `db`'s lock, re-check and batch queries from `w`, and records its applied rows there.
void Wire(FakeDatabase& db, World& w) {
  db.mode = LockMode::kTransaction;
  db.on_statement = [&db, &w](const std::string& sql) {
    auto answer = [&db](std::vector<std::string> cells) {
      FakeDatabase::Rule r{"", Status::Ok(), {}, 1};
      SqlRow row;
      for (std::string& c : cells) row.push_back(std::move(c));
      r.result.rows.push_back(std::move(row));
      db.rules.insert(db.rules.begin(), std::move(r));
    };
    if (Has(sql, kTryLock)) {
      if (w.on_try) w.on_try();
      answer({w.held_by_other ? "f" : "t"});
    } else if (Has(sql, kRecheck)) {
      const std::string v = db.last_params.empty() || !db.last_params[0] ? "" : *db.last_params[0];
      auto it = w.rows.find(v);
      answer({it == w.rows.end() ? "" : "applied", it == w.rows.end() ? "" : it->second.first,
              w.NewestApplied(), w.unfinished, std::to_string(w.MaxBatch())});
    } else if (Has(sql, "SELECT greatest(")) {
      answer({std::to_string(w.MaxBatch() + 1)});
    } else if (Has(sql, "INSERT INTO \"public\".\"pgboot_history\" (")) {
      const size_t v0 = sql.find("VALUES ('") + 9;
      const std::string version = sql.substr(v0, sql.find('\'', v0) - v0);
      // The batch follows the applied_by literal.
      const std::string by = SqlLiteral(AppliedBy()) + ", ";
      w.rows[version] = {"sum" + version, std::stoll(sql.substr(sql.find(by) + by.size()))};
    }
  };
}

struct Runner {
  explicit Runner(World& w) {
    LogInit(LogFormat::kText, LogLevel::kInfo);
    Wire(db, w);
    files = ThreeFiles();
  }
  Status Migrate() { return pgboot::Migrate(db, cfg, files, MigrateOptions{}, clock); }
  FakeDatabase db;
  FakeClock clock;
  Config cfg;
  std::vector<Migration> files;
};

TEST_CASE("transaction mode: each migration is its own locked transaction, no session state") {
  World w;
  Runner r(w);
  REQUIRE(r.Migrate().ok());
  CHECK(w.rows.size() == 3);

  const std::vector<std::string> all = r.db.Statements();
  int opens = 0;
  for (const std::string& s : all) {
    // Nothing outlives a transaction: no session lock, no unlock, no session SET.
    CHECK_FALSE(Has(s, "pg_try_advisory_lock("));
    CHECK_FALSE(Has(s, "pg_advisory_unlock"));
    CHECK_FALSE((s.rfind("SET ", 0) == 0 && s.rfind("SET LOCAL ", 0) != 0));
    if (Has(s, kTryLock)) {
      ++opens;
      CHECK(s.rfind("BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL standard_conforming_strings = "
                    "on; SET LOCAL client_connection_check_interval = '1s'; SELECT "
                    "pg_try_advisory_xact_lock(k), k FROM (SELECT hashtextextended(",
                    0) == 0);
    }
  }
  CHECK(opens == 4);  // the tables, then one per migration

  // The section runs in the transaction the lock opened: no BEGIN of its own,
  // the re-check came first, in a statement of its own.
  std::vector<FakeDatabase::Call> applied =
      r.db.SequencesWith("INSERT INTO \"public\".\"pgboot_history\" (");
  REQUIRE(applied.size() == 3);
  for (const FakeDatabase::Call& c : applied) {
    CHECK(c.statements.front().rfind("BEGIN", 0) != 0);
    CHECK(c.statements.back() == "COMMIT");
  }
  size_t last_try = 0, recheck = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (Has(all[i], kTryLock)) last_try = i;
    if (Has(all[i], kRecheck)) recheck = i;
  }
  CHECK(last_try + 1 == recheck);
  for (const auto& [v, row] : w.rows) CHECK(row.second == 1);
}

TEST_CASE(
    "transaction mode: a busy lock is rolled back and retried with backoff, lock.waiting logged") {
  World w;
  Runner r(w);
  int tries = 0;
  w.on_try = [&] { w.held_by_other = ++tries <= 2; };
  bool slept_in_transaction = false;
  r.clock.on_sleep = [&](size_t) { slept_in_transaction |= r.db.InTransaction(); };
  StderrCapture log;
  REQUIRE(r.Migrate().ok());
  const std::string text = log.Text();
  CHECK(r.clock.sleeps.size() == 2);
  CHECK(Has(text, "lock.waiting"));
  CHECK(Has(text, "holder_pid=777"));
  // Each false try ends its transaction before the sleep: none is held while waiting.
  CHECK_FALSE(slept_in_transaction);
  CHECK(r.db.Count("ROLLBACK") >= 2);
}

TEST_CASE(
    "transaction mode: an empty migration is applied with migration.empty, as in session mode") {
  World w;
  Runner r(w);
  r.files[1] = FakeMigration("2", "-- nothing yet");
  StderrCapture log;
  REQUIRE(r.Migrate().ok());
  const std::vector<std::string> empty = log.Lines("migration.empty");
  REQUIRE(empty.size() == 1);
  CHECK(Has(empty[0], "version=2"));
  CHECK(w.rows.size() == 3);
}

TEST_CASE("transaction mode: --lock-timeout bounds each wait for one migration (exit 7)") {
  World w;
  w.held_by_other = true;
  Runner r(w);
  r.cfg.lock_timeout_ms = 2000;
  Status s = r.Migrate();
  CHECK(ExitCodeFor(s) == kExitLockTimeout);
  CHECK(w.rows.empty());
  int64_t slept = 0;
  for (int64_t ms : r.clock.sleeps) slept += ms;
  CHECK(slept >= 2000);
  CHECK(slept <= 2600);
}

TEST_CASE("transaction mode: a version applied meanwhile is skipped; drift and order are exit 6") {
  SUBCASE("applied with the same checksum: skipped, rolled back") {
    World w;
    w.rows["1"] = {"sum1", 1};
    Runner r(w);
    // The plan without the lock still saw 2 pending.
    Status s = r.Migrate();
    INFO(s.message());
    REQUIRE(s.ok());
    CHECK(r.db.Count("CREATE TABLE a") == 0);
    CHECK(r.db.Count("CREATE TABLE b") == 1);
    CHECK(r.db.Count("CREATE TABLE c") == 1);
  }
  SUBCASE("applied with another checksum: drift") {
    World w;
    Runner r(w);
    w.on_try = [&] { w.rows["1"] = {"other", 1}; };
    Status s = r.Migrate();
    CHECK(ExitCodeFor(s) == kExitValidation);
    CHECK(Has(s.message(), "drift"));
  }
  SUBCASE("a higher version applied meanwhile without --out-of-order") {
    World w;
    Runner r(w);
    int tries = 0;
    w.on_try = [&] {
      if (++tries == 2) w.rows["3"] = {"sum3", 1};
    };
    Status s = r.Migrate();
    CHECK(ExitCodeFor(s) == kExitValidation);
    CHECK(Has(s.message(), "below the newest applied version 3"));
    CHECK(r.db.Count("CREATE TABLE a") == 0);
  }
}

TEST_CASE("transaction mode: a running row under the lock is exit 2 naming the way out") {
  World w;
  Runner r(w);
  w.unfinished = "1 running";
  Status s = r.Migrate();
  CHECK(ExitCodeFor(s) == kExitUsage);
  CHECK(Has(s.message(), "--lock-mode session"));
  CHECK(Has(s.message(), "PGBOOT_DATABASE_URL"));
  CHECK(r.db.Count("CREATE TABLE a") == 0);
}

TEST_CASE("transaction mode: transaction:false is refused before anything runs") {
  World w;
  Runner r(w);
  r.files.push_back(FakeMigration("4", "CREATE INDEX CONCURRENTLY i ON a (id);", false));
  Status s = r.Migrate();
  CHECK(ExitCodeFor(s) == kExitUsage);
  CHECK(Has(s.message(), "transaction:false"));
  CHECK(Has(s.message(), "--lock-mode session"));
  CHECK(r.db.Count(kTryLock) == 0);
  CHECK(r.db.Count("CREATE") == 0);
}

TEST_CASE("two interleaved runners apply each version once, and the batch rule holds") {
  World w;
  Runner a(w), b(w);
  // b takes version 1 (batch 1); then, while b waits for the lock, a applies
  // 2 (a new batch: 2, the max + 1) and 3; b then finds both applied.
  int b_tries = 0;
  bool a_ran = false;
  auto b_wire = b.db.on_statement;
  b.db.on_statement = [&](const std::string& sql) {
    if (Has(sql, kTryLock) && ++b_tries == 3 && !a_ran) {
      a_ran = true;
      // a stops after version 2: its --target.
      Status s =
          pgboot::Migrate(a.db, a.cfg, a.files, MigrateOptions{"2", false, nullptr}, a.clock);
      REQUIRE(s.ok());
    }
    b_wire(sql);
  };
  REQUIRE(b.Migrate().ok());
  REQUIRE(a_ran);
  REQUIRE(w.rows.size() == 3);
  CHECK(w.rows["1"].second == 1);            // b's batch
  CHECK(w.rows["2"].second == 2);            // a's: 1 was no longer its own, so max + 1
  CHECK(w.rows["3"].second == 3);            // b's batch was overtaken by a's: max + 1 again
  CHECK(b.db.Count("CREATE TABLE b") == 0);  // b skipped what a applied
  CHECK(a.db.Count("CREATE TABLE a") == 0);  // a skipped what b applied
  CHECK(b.db.Count("CREATE TABLE c") == 1);
}

TEST_CASE("the batch stays the run's while it is still the highest recorded") {
  World w;
  w.rows["0"] = {"sum0", 7};
  Runner r(w);
  r.files.insert(r.files.begin(), FakeMigration("0", "SELECT 1;"));
  REQUIRE(r.Migrate().ok());
  CHECK(w.rows["1"].second == 8);
  CHECK(w.rows["2"].second == 8);
  CHECK(w.rows["3"].second == 8);
  CHECK(r.db.Count("SELECT greatest(") == 1);  // chosen once, then kept
}

}  // namespace
}  // namespace pgboot
