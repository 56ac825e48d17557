// Rollback from the stored downs (docs/reference.md, "Stored downs"): which down runs,
// --future, and the status "rollback" field, on the scripted FakeDatabase.
#include <doctest/doctest.h>

#include "exit_code.h"
#include "fakes.h"
#include "log.h"
#include "plan.h"
#include "rollback.h"

namespace pgboot {
namespace {

bool Has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

HistoryRow Row(const std::string& v, std::optional<std::string> down = std::nullopt,
               std::optional<std::string> options = std::nullopt) {
  HistoryRow r;
  r.version = v;
  r.name = "m" + v;
  r.checksum = "sum" + v;
  r.status = "applied";
  r.batch = 1;
  r.down_sql = std::move(down);
  r.down_options = std::move(options);
  return r;
}

SqlRow Cells(const HistoryRow& r) {
  return {r.version,
          r.name,
          r.checksum,
          r.status,
          "2026-01-01T00:00:00.000Z",
          "5",
          "pgboot",
          std::to_string(r.batch),
          r.down_sql,
          r.down_options};
}

}  // namespace

TEST_CASE("the file's down when it matches, else the stored one, else a refusal") {
  std::vector<Migration> files = {
      FakeMigration("1", "CREATE TABLE a (id int);", true, "DROP TABLE a;"),
      FakeMigration("2", "CREATE TABLE b (id int);", true, "DROP TABLE b;"),
      FakeMigration("3", "CREATE TABLE c (id int);")};
  files[1].checksum = "drifted";
  std::vector<HistoryRow> rows = {
      Row("1", "DROP TABLE a CASCADE;"), Row("2", "DROP TABLE b;"), Row("3", "-- nothing\n"),
      Row("4", "DROP INDEX CONCURRENTLY i;", "transaction:false"), Row("5")};
  RollbackOptions all;
  all.to = "0";
  files.insert(files.begin(), FakeMigration("0", "SELECT 1;"));
  rows.pop_back();
  auto steps = SelectRollback(files, rows, all);
  REQUIRE_MESSAGE(steps.ok(), steps.status().message());
  REQUIRE(steps->size() == 4);
  const RollbackStep& four = (*steps)[0];
  CHECK(four.source == "stored");
  CHECK_FALSE(four.down->transactional);
  CHECK(four.path == "stored down of version 4");
  CHECK((*steps)[1].source == "stored");  // 3: the file has no down, the row an empty one
  CHECK((*steps)[1].down->statements.empty());
  CHECK((*steps)[2].source == "stored");  // 2: drifted
  CHECK((*steps)[3].source == "file");    // 1: matching (its stored copy differs)
  CHECK((*steps)[3].down == &*files[1].down);

  CHECK(std::string(RollbackSource(&files[1], rows[0])) == "file");
  CHECK(std::string(RollbackSource(&files[2], rows[1])) == "stored");
  CHECK(std::string(RollbackSource(&files[3], rows[2])) == "empty");
  CHECK(std::string(RollbackSource(nullptr, rows[3])) == "stored");
  CHECK(std::string(RollbackSource(nullptr, Row("5"))) == "none");

  rows.push_back(Row("5"));
  auto refused = SelectRollback(files, rows, all);
  REQUIRE_FALSE(refused.ok());
  CHECK(ExitCodeFor(refused.status()) == kExitValidation);
  CHECK(Has(refused.status().message(), "version 5 (m5) has no migration file here"));
  CHECK(Has(refused.status().message(), "no stored down"));
}

TEST_CASE("--future undoes the versions above the newest file from the stored downs") {
  LogInit(LogFormat::kText, LogLevel::kInfo);
  FakeDatabase db;
  FakeClock clock;
  Config cfg;
  db.Answer("to_regclass", {"t", "t", "t"});
  db.AnswerRows("SELECT version, name, checksum",
                {Cells(Row("1", "DROP TABLE a;")), Cells(Row("2", "DROP TABLE b;")),
                 Cells(Row("3", "DROP TABLE c;"))});
  std::vector<Migration> files = {
      FakeMigration("1", "CREATE TABLE a (id int);", true, "DROP TABLE a;")};
  RollbackOptions future;
  future.future = true;
  REQUIRE(Rollback(db, cfg, files, future, clock).ok());
  const auto downs = db.SequencesWith("'rolled_back'");
  REQUIRE(downs.size() == 2);
  CHECK(db.Count("DROP TABLE c") == 1);
  CHECK(db.Count("DROP TABLE b") == 1);
  CHECK(db.Count("DROP TABLE a") == 0);
  CHECK(db.Count("'source', 'stored'") == 2);
  CHECK(db.Count("'empty_down', false") == 2);

  FakeDatabase none;  // nothing above the newest file: nothing to do, no lock
  none.Answer("to_regclass", {"t", "t", "t"});
  none.AnswerRows("SELECT version, name, checksum", {Cells(Row("1", "DROP TABLE a;"))});
  REQUIRE(Rollback(none, cfg, files, future, clock).ok());
  CHECK(none.Count("pg_try_advisory_lock") == 0);
  CHECK(none.Count("DROP TABLE") == 0);
}

TEST_CASE("StoredDownMatches compares the text and the options") {
  Migration m = FakeMigration("1", "SELECT 1;", true, "DROP TABLE a;");
  CHECK(StoredDownMatches(m, Row("1", "DROP TABLE a;")));
  CHECK_FALSE(StoredDownMatches(m, Row("1", "DROP TABLE a;", "transaction:false")));
  CHECK_FALSE(StoredDownMatches(m, Row("1")));
  m.down->options = "transaction:false";
  CHECK(StoredDownMatches(m, Row("1", "DROP TABLE a;", "transaction:false")));
  Migration none = FakeMigration("2", "SELECT 1;");
  CHECK(StoredDownMatches(none, Row("2")));
  CHECK_FALSE(StoredDownMatches(none, Row("2", "")));
}

}  // namespace pgboot
