// History's in-place upgrade (docs/reference.md, "Upgrading pgboot") on the scripted
// FakeDatabase: one column list for Create and the upgrade; reads never alter.
#include "history.h"

#include <doctest/doctest.h>

#include "fakes.h"
#include "log.h"

namespace pgboot {
namespace {

bool Has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

QualifiedName Table() {
  QualifiedName n;
  n.schema = "public";
  n.table = "pgboot_history";
  return n;
}

}  // namespace

TEST_CASE("Create makes the table from every column of kHistoryColumns") {
  LogInit(LogFormat::kText, LogLevel::kInfo);
  FakeDatabase db;  // default: nothing exists
  History h(db, Table());
  REQUIRE(h.Create().ok());
  std::string create;
  for (const std::string& s : db.Statements()) {
    if (Has(s, "CREATE TABLE IF NOT EXISTS \"public\".\"pgboot_history\" (")) create = s;
  }
  REQUIRE_FALSE(create.empty());
  for (const HistoryColumn& c : kHistoryColumns) {
    CAPTURE(c.name);
    CHECK(Has(create, std::string("\n  ") + c.name + " " + c.ddl));
  }
  CHECK(db.Count("ALTER TABLE") == 0);
}

TEST_CASE("Create on an older table adds exactly the columns it lacks, nullable") {
  LogInit(LogFormat::kText, LogLevel::kInfo);
  FakeDatabase db;
  db.Answer("to_regnamespace", {"t", "t", "t", "down_sql,down_options"});
  History h(db, Table());
  REQUIRE(h.Create().ok());
  CHECK(db.Count("CREATE TABLE") == 0);
  CHECK(db.Count("ALTER TABLE \"public\".\"pgboot_history\" ADD COLUMN IF NOT EXISTS down_sql "
                 "text") == 1);
  CHECK(db.Count("ADD COLUMN IF NOT EXISTS down_options text") == 1);
  CHECK(db.Count("ALTER TABLE") == 2);
  for (const HistoryColumn& c : kHistoryColumns) {
    CAPTURE(c.name);
    // An older pgboot names its columns in every INSERT: a new one must take NULL.
    if (!c.since_0_1) CHECK_FALSE(Has(c.ddl, "NOT NULL"));
  }

  FakeDatabase current;  // nothing missing: nothing altered
  current.Answer("to_regnamespace", {"t", "t", "t", ""});
  History h2(current, Table());
  REQUIRE(h2.Create().ok());
  CHECK(current.Count("ALTER TABLE") == 0);
}

TEST_CASE("a table lacking a column every pgboot table has is not a history table") {
  LogInit(LogFormat::kText, LogLevel::kInfo);
  FakeDatabase db;
  db.Answer("to_regnamespace", {"t", "t", "t", "checksum,down_sql"});
  History h(db, Table());
  Status s = h.Create();
  REQUIRE_FALSE(s.ok());
  CHECK(s.kind() == StatusKind::kPrecondition);
  CHECK(Has(s.message(), "lacks column checksum"));
  CHECK(db.Count("ALTER TABLE") == 0);
}

TEST_CASE("Read of an older table reads the missing columns as NULL and alters nothing") {
  LogInit(LogFormat::kText, LogLevel::kInfo);
  FakeDatabase db;
  db.Answer("SELECT to_regclass($1) IS NOT NULL, (SELECT", {"t", "down_sql,down_options"});
  db.AnswerRows("SELECT version, name, checksum",
                {{"1", "a", "sum1", "applied", "2026-01-01T00:00:00.000Z", "5", "pgboot 0.1.0", "1",
                  std::nullopt, std::nullopt}});
  History h(db, Table());
  auto rows = h.Read();
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 1);
  CHECK_FALSE((*rows)[0].down_sql.has_value());
  const auto st = db.Statements();
  REQUIRE(st.size() == 2);
  CHECK(Has(st[1], "batch, NULL::text, NULL::text, statements_done::integer FROM"));
  CHECK(db.Count("ALTER") == 0);

  FakeDatabase upgraded;
  upgraded.Answer("SELECT to_regclass($1) IS NOT NULL, (SELECT", {"t", ""});
  upgraded.AnswerRows("SELECT version, name, checksum",
                      {{"1", "a", "sum1", "applied", "2026-01-01T00:00:00.000Z", "5", "pgboot", "1",
                        "DROP TABLE a;", "transaction:false"}});
  History h2(upgraded, Table());
  rows = h2.Read();
  REQUIRE(rows.ok());
  CHECK(Has(upgraded.Statements()[1],
            "batch, down_sql, down_options, statements_done::integer FROM"));
  CHECK((*rows)[0].down_sql == std::optional<std::string>("DROP TABLE a;"));
  CHECK((*rows)[0].down_options == std::optional<std::string>("transaction:false"));
}

TEST_CASE("RecordApplied stores the down section and its options, NULL when none") {
  FakeDatabase db;
  History h(db, Table());
  Migration with = FakeMigration("1", "CREATE TABLE a (id int);", true, "DROP TABLE a;");
  with.down->options = "transaction:false";
  std::string sql = h.RecordApplied(with, 3, SqlValue::Int(0));
  CHECK(Has(sql, "down_sql, down_options)"));
  CHECK(Has(sql, ", 'DROP TABLE a;', 'transaction:false')"));
  Migration without = FakeMigration("2", "CREATE TABLE b (id int);");
  CHECK(Has(h.RecordApplied(without, 3, SqlValue::Int(0)), ", NULL, NULL)"));
  Migration empty = FakeMigration("3", "SELECT 1;");
  empty.down = Section{};  // an explicit no-op down is '' (not NULL)
  CHECK(Has(h.RecordRunning(empty, 3), ", '', NULL, 0 WHERE EXISTS"));
}

}  // namespace pgboot
