#include "sql_split.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "exit_code.h"

namespace pgboot {
namespace {

std::vector<std::string> Texts(std::string_view sql) {
  auto r = SplitSql(sql, 1);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  std::vector<std::string> texts;
  for (const SqlStatement& st : *r) texts.emplace_back(st.text);
  return texts;
}

using Strings = std::vector<std::string>;

TEST_CASE("SplitSql splits on top-level semicolons and trims") {
  CHECK(Texts("SELECT 1; SELECT 2;") == Strings{"SELECT 1", "SELECT 2"});
  CHECK(Texts("  SELECT 1 ;\n\n  SELECT\n  2  \n") == Strings{"SELECT 1", "SELECT\n  2"});
  CHECK(Texts("SELECT 1;\nSELECT 2 -- no semicolon at the end") ==
        Strings{"SELECT 1", "SELECT 2 -- no semicolon at the end"});
  CHECK(Texts(";;SELECT 1;;; ;\n;SELECT 2") == Strings{"SELECT 1", "SELECT 2"});
}

TEST_CASE("SplitSql yields nothing for blank and comment-only sections") {
  CHECK(Texts("").empty());
  CHECK(Texts("  \n\t\n").empty());
  CHECK(Texts("-- just a comment\n/* and a block\n   comment */\n-- it's fine\n").empty());
  CHECK(Texts("SELECT 1;\n-- trailing comment\n").size() == 1);
}

TEST_CASE("SplitSql honours dollar quoting") {
  CHECK(Texts("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql; SELECT 2") ==
        Strings{"CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql", "SELECT 2"});
  // $$ and other tags inside $a$ are just text.
  CHECK(Texts("DO $a$ BEGIN PERFORM $$x;$$; RAISE NOTICE '$b$;'; END $a$; SELECT 2") ==
        Strings{"DO $a$ BEGIN PERFORM $$x;$$; RAISE NOTICE '$b$;'; END $a$", "SELECT 2"});
  CHECK(Texts("SELECT $body$ ; $bod$ ; $Body$ ; $body$; SELECT 2") ==
        Strings{"SELECT $body$ ; $bod$ ; $Body$ ; $body$", "SELECT 2"});
  CHECK(Texts("SELECT $_t1$;'\"$_t1$; SELECT 2") == Strings{"SELECT $_t1$;'\"$_t1$", "SELECT 2"});
  // Quotes and comments inside a dollar body do not open anything.
  CHECK(Texts("SELECT $$ it's /* -- $$; SELECT 2") ==
        Strings{"SELECT $$ it's /* -- $$", "SELECT 2"});
}

TEST_CASE("SplitSql treats $1 as a parameter and $ inside identifiers as a letter") {
  CHECK(Texts("PREPARE q AS SELECT $1::int + $2; SELECT 3") ==
        Strings{"PREPARE q AS SELECT $1::int + $2", "SELECT 3"});
  CHECK(Texts("SELECT a$b$ FROM t; SELECT 2") == Strings{"SELECT a$b$ FROM t", "SELECT 2"});
  CHECK(Texts("SELECT $1$; SELECT 2").size() == 2);
}

TEST_CASE("SplitSql honours standard and escape strings") {
  CHECK(Texts("SELECT 'it''s; fine'; SELECT 2") == Strings{"SELECT 'it''s; fine'", "SELECT 2"});
  CHECK(Texts("SELECT E'\\''; SELECT e'a\\\\'; SELECT 2") ==
        Strings{"SELECT E'\\''", "SELECT e'a\\\\'", "SELECT 2"});
  CHECK(Texts("SELECT E'x\\';'; SELECT 2") == Strings{"SELECT E'x\\';'", "SELECT 2"});
  // standard_conforming_strings: a backslash in '' is literal, so the string ends at the quote.
  CHECK(Texts("SELECT 'back\\'; SELECT 2") == Strings{"SELECT 'back\\'", "SELECT 2"});
  // Only a lone E (or e) prefixes an escape string; "typee" is an identifier.
  CHECK(Texts("SELECT typee'a\\'; SELECT 2") == Strings{"SELECT typee'a\\'", "SELECT 2"});
  CHECK(Texts("SELECT U&'a\\'; SELECT N'x;'; SELECT 2") ==
        Strings{"SELECT U&'a\\'", "SELECT N'x;'", "SELECT 2"});
}

TEST_CASE("SplitSql honours comments") {
  CHECK(Texts("SELECT 1 /* a /* b */ ; */ + 1; SELECT 2") ==
        Strings{"SELECT 1 /* a /* b */ ; */ + 1", "SELECT 2"});
  CHECK(Texts("SELECT 1 -- ; it's a comment\n+ 1; SELECT 2") ==
        Strings{"SELECT 1 -- ; it's a comment\n+ 1", "SELECT 2"});
  CHECK(Texts("/* it's */ SELECT 1") == Strings{"SELECT 1"});
  CHECK(Texts("SELECT 2 */* c; */ 3") == Strings{"SELECT 2 */* c; */ 3"});
}

TEST_CASE("SplitSql honours quoted identifiers") {
  CHECK(Texts("CREATE TABLE \"we;ird\"\"t\" (\"a'b\" int); SELECT 2") ==
        Strings{"CREATE TABLE \"we;ird\"\"t\" (\"a'b\" int)", "SELECT 2"});
}

TEST_CASE("SplitSql keeps parenthesised semicolons together, as psql does") {
  CHECK(Texts("CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b "
              "VALUES (2)); SELECT 1") ==
        Strings{"CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b "
                "VALUES (2))",
                "SELECT 1"});
  CHECK(Texts("SELECT 1); SELECT 2") == Strings{"SELECT 1)", "SELECT 2"});
}

TEST_CASE("SplitSql keeps BEGIN ATOMIC bodies whole") {
  const char* sql =
      "CREATE FUNCTION f(x int) RETURNS text LANGUAGE sql\n"
      "BEGIN ATOMIC\n"
      "  SELECT CASE WHEN x > 0 THEN 'pos' ELSE CASE WHEN x < 0 THEN 'neg' END END;\n"
      "  SELECT 'end;';\n"
      "END;\n"
      "create or replace procedure p() language sql begin atomic insert into t values (1); end;\n"
      "SELECT 1 AS begin; SELECT 2";
  auto texts = Texts(sql);
  REQUIRE(texts.size() == 4);
  CHECK(texts[0].starts_with("CREATE FUNCTION"));
  CHECK(texts[0].ends_with("SELECT 'end;';\nEND"));
  CHECK(texts[1] ==
        "create or replace procedure p() language sql begin atomic insert into t values (1); end");
  CHECK(texts[2] == "SELECT 1 AS begin");
  CHECK(texts[3] == "SELECT 2");
  // Outside CREATE FUNCTION / PROCEDURE, BEGIN is an ordinary statement.
  CHECK(Texts("BEGIN; SELECT 1; END;") == Strings{"BEGIN", "SELECT 1", "END"});
}

TEST_CASE("SplitSql reports each statement's line and column") {
  auto r = SplitSql("-- header\n\n  SELECT 1;  /* c */ SELECT 2;\n\tSELECT\n3", 10);
  REQUIRE(r.ok());
  REQUIRE(r->size() == 3);
  CHECK((*r)[0].line == 12);
  CHECK((*r)[0].column == 3);
  CHECK((*r)[1].line == 12);
  CHECK((*r)[1].column == 22);
  CHECK((*r)[2].line == 13);
  CHECK((*r)[2].column == 2);
  CHECK((*r)[2].text == "SELECT\n3");
}

TEST_CASE("SplitSql columns count characters, not bytes") {
  // é is 2 bytes, € 3, 😀 4: SELECT 2 starts at byte 20 but character column 15.
  auto r = SplitSql("SELECT 'é€😀'; SELECT 2", 1);
  REQUIRE(r.ok());
  REQUIRE(r->size() == 2);
  CHECK((*r)[1].line == 1);
  CHECK((*r)[1].column == 15);
}

TEST_CASE("PositionToLineColumn maps server positions across lines and multibyte characters") {
  SqlStatement st;
  st.text = "SELECT 'é',\n  nosuch";
  st.line = 5;
  st.column = 3;
  using LC = std::pair<int, int>;
  CHECK(PositionToLineColumn(st, 1) == LC{5, 3});
  CHECK(PositionToLineColumn(st, 0) == LC{5, 3});
  CHECK(PositionToLineColumn(st, 9) == LC{5, 11});   // é
  CHECK(PositionToLineColumn(st, 10) == LC{5, 12});  // the quote after é
  CHECK(PositionToLineColumn(st, 12) == LC{5, 14});  // the newline itself
  CHECK(PositionToLineColumn(st, 15) == LC{6, 3});   // nosuch
  CHECK(PositionToLineColumn(st, 1000) == LC{6, 9});

  auto r = SplitSql("-- x\n  SELECT '😀', nosuch", 7);
  REQUIRE(r.ok());
  // "SELECT '😀', " is 12 characters, so nosuch is position 13.
  CHECK(PositionToLineColumn(r->at(0), 13) == LC{8, 15});
}

void CheckUnterminated(std::string_view sql, int line, std::string_view what) {
  int error_line = 0;
  auto r = SplitSql(sql, 10, &error_line);
  REQUIRE_FALSE(r.ok());
  CHECK(ExitCodeFor(r.status()) == kExitInvalidFiles);
  CHECK(error_line == line);
  std::string expected =
      "unterminated " + std::string(what) + " starting at line " + std::to_string(line);
  CHECK(r.status().message() == expected);
}

TEST_CASE("SplitSql names the line where an unterminated token starts") {
  CheckUnterminated("SELECT 1;\nSELECT 'abc;\n\n", 11, "quoted string");
  CheckUnterminated("SELECT 1;\n\nSELECT E'\\';", 12, "quoted string");
  CheckUnterminated("SELECT \"abc;", 10, "quoted identifier");
  CheckUnterminated("SELECT 1;\nDO $x$ BEGIN END $y$;\nSELECT $$;$$;", 11, "dollar-quoted string");
  CheckUnterminated("SELECT 1;\n/* a /* b */\nSELECT 2;", 11, "/* comment");
  CHECK(Texts("SELECT 1 / -") == Strings{"SELECT 1 / -"});  // No comment opened.
}

TEST_CASE("IsTransactionControl recognises top-level transaction statements") {
  for (const char* sql :
       {"BEGIN", "begin work", "BEGIN TRANSACTION ISOLATION LEVEL SERIALIZABLE", "Begin -- c",
        "START TRANSACTION", "start transaction read only", "COMMIT", "commit and chain", "END",
        "end transaction", "ABORT", "ROLLBACK", "rollback work", "ROLLBACK AND CHAIN",
        "PREPARE TRANSACTION 'x'", "COMMIT PREPARED 'x'", "ROLLBACK PREPARED 'x'",
        "/* c */ COMMIT"}) {
    CAPTURE(sql);
    CHECK(IsTransactionControl(sql));
  }
  for (const char* sql :
       {"ROLLBACK TO SAVEPOINT a", "rollback to a", "ROLLBACK TRANSACTION TO SAVEPOINT a",
        "ROLLBACK WORK /* c */ TO a", "BEGIN ATOMIC SELECT 1; END", "begin /* x */ atomic",
        "SAVEPOINT a", "RELEASE SAVEPOINT a", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "PREPARE q AS SELECT 1", "SELECT 'COMMIT'", "ENDX", "committed", "START", "\"commit\"",
        "CREATE TABLE begin (id int)"}) {
    CAPTURE(sql);
    CHECK_FALSE(IsTransactionControl(sql));
  }
  auto r = SplitSql("BEGIN; SELECT 1; SAVEPOINT s; ROLLBACK TO s; COMMIT", 1);
  REQUIRE(r.ok());
  REQUIRE(r->size() == 5);
  CHECK((*r)[0].is_transaction_control);
  CHECK_FALSE((*r)[1].is_transaction_control);
  CHECK_FALSE((*r)[2].is_transaction_control);
  CHECK_FALSE((*r)[3].is_transaction_control);
  CHECK((*r)[4].is_transaction_control);
}

}  // namespace
}  // namespace pgboot
