#include "migration_files.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "exit_code.h"
#include "sha256.h"

namespace pgboot {
namespace {

// A scratch migrations directory, removed with its files at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pgboot_files_XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  void Write(const std::string& file, std::string_view content) const {
    std::ofstream out(path_ + "/" + file, std::ios::binary);
    out << content;
  }

 private:
  std::string path_;
};

// Loads `dir`, which must fail with exit 8; returns the message with the directory
// prefix removed, so that checks can read "1_x.sql:3: ...".
std::string LoadError(const TempDir& dir) {
  auto r = LoadMigrations(dir.path());
  REQUIRE_FALSE(r.ok());
  CHECK(ExitCodeFor(r.status()) == kExitInvalidFiles);
  std::string message = r.status().message();
  std::string prefix = dir.path() + "/";
  for (size_t at; (at = message.find(prefix)) != std::string::npos;)
    message.erase(at, prefix.size());
  return message;
}

// The error for a directory holding only `file`.
std::string ErrorFor(const std::string& file, std::string_view content) {
  TempDir dir;
  dir.Write(file, content);
  return LoadError(dir);
}

bool Contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

std::vector<Migration> Load(const TempDir& dir) {
  auto r = LoadMigrations(dir.path());
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  return *r;
}

// Checksums pinned with coreutils: the up bytes, normalised by sed, piped to sha256sum.
constexpr const char* kTableChecksum =
    "05b292aedd5baaac7a762dd9beb610526f3f4f76341f3aca240d4ce048db2f6c";  // "CREATE ...;\n\n"

TEST_CASE("checksums follow docs/reference.md exactly") {
  TempDir dir;
  dir.Write("1_bom_crlf.sql",
            "\xEF\xBB\xBF-- migrate:up\r\nCREATE TABLE t (id int);\r\n\r\n-- migrate:down\r\n"
            "DROP TABLE t;\r\n");
  dir.Write(
      "2_bom.sql",
      "\xEF\xBB\xBF-- migrate:up\nCREATE TABLE t (id int);\n\n-- migrate:down\nDROP TABLE t;\n");
  dir.Write(
      "3_crlf.sql",
      "-- migrate:up\r\nCREATE TABLE t (id int);\r\n\r\n-- migrate:down\r\nDROP TABLE t;\r\n");
  dir.Write("4_plain.sql",
            "-- migrate:up\nCREATE TABLE t (id int);\n\n-- migrate:down\nDROP TABLE t;\n");
  dir.Write("5_no_down.sql", "-- migrate:up\nCREATE TABLE t (id int);\n\n");
  dir.Write("6_down_changed.sql",
            "-- migrate:up\nCREATE TABLE t (id int);\n\n-- migrate:down\nDROP TABLE t CASCADE;\n");
  dir.Write("7_trailing_space.sql",
            "-- migrate:up\nCREATE TABLE t (id int); \n\n-- migrate:down\nDROP TABLE t;\n");
  dir.Write("8_no_marker.sql", "-- create t\nCREATE TABLE t (id int);\n");
  dir.Write("9_pairs.up.sql",
            "-- pgboot:transaction:false\nCREATE INDEX CONCURRENTLY i ON t (id);\n");
  dir.Write("9_pairs.down.sql", "DROP INDEX CONCURRENTLY i;\n");
  dir.Write("10_lone_cr.sql", "-- migrate:up\nCREATE TABLE t (id int);\r\n\r");

  auto ms = Load(dir);
  REQUIRE(ms.size() == 10);
  CHECK(ms[0].checksum == kTableChecksum);  // BOM + CRLF
  CHECK(ms[1].checksum == kTableChecksum);  // BOM only
  CHECK(ms[2].checksum == kTableChecksum);  // CRLF only
  CHECK(ms[3].checksum == kTableChecksum);  // with a down section
  CHECK(ms[4].checksum == kTableChecksum);  // without a down section
  CHECK(ms[5].checksum == kTableChecksum);  // only the down section differs
  CHECK(ms[6].checksum == "e1d0243f27457f871f9cbd8faa5d41803f7f73862f311ae3750e7bb834eba0bb");
  CHECK(ms[7].checksum == "5c42f77074b596ce46621fb572ec8fce673a6fd1458aabcdd150d324d265cf68");
  CHECK(ms[8].checksum == "b51219fe93ca16ca9c338b62f2663d2f428d23b8e2e6259edbf39ab92def15b6");
  CHECK(ms[0].up.sql == "CREATE TABLE t (id int);\n\n");
  // A CR not followed by LF is not normalised.
  CHECK(ms[9].up.sql == "CREATE TABLE t (id int);\n\r");
  CHECK(ms[9].checksum != kTableChecksum);
}

TEST_CASE("LoadMigrations parses native and pairs files") {
  TempDir dir;
  dir.Write("0010_add_orders.sql",
            "-- Orders.\n\n/* block comments are fine too */\n"
            "-- migrate:up\n"
            "CREATE TABLE orders (id int);\n"
            "\n"
            "  CREATE INDEX o ON orders (id);\n"
            "-- migrate:down transaction:false\n"
            "DROP INDEX CONCURRENTLY o;\n"
            "DROP TABLE orders;\n");
  dir.Write("9_users.sql", "CREATE TABLE users (id int);");
  dir.Write("000_zero.up.sql", "SELECT 0;\n");
  dir.Write("20240101000000_big.up.sql", "-- pgboot:transaction:true\nSELECT 1;\n");
  dir.Write("20240101000000_big.down.sql", "-- pgboot:transaction:false\nSELECT 2;\n");
  dir.Write("11_empty_down.sql", "-- migrate:up\nSELECT 1;\n-- migrate:down\n-- nothing\n");
  // Ignored: hidden files, other extensions, directories not named like a migration.
  dir.Write(".5_hidden.sql", "garbage '");
  dir.Write("README.md", "garbage '");
  dir.Write("12_x.sql.bak", "garbage '");
  std::filesystem::create_directory(dir.path() + "/archive.sql");

  auto ms = Load(dir);
  REQUIRE(ms.size() == 5);
  CHECK(ms[0].version == "0");
  CHECK(ms[0].name == "zero");
  CHECK(ms[0].down_path == dir.path() + "/000_zero.down.sql");  // looked for, absent
  CHECK_FALSE(ms[0].down.has_value());

  const Migration& users = ms[1];
  CHECK(users.version == "9");
  CHECK(users.up_path == dir.path() + "/9_users.sql");
  CHECK(users.down_path == users.up_path);
  CHECK(users.up.first_line == 1);
  CHECK(users.up.statements.size() == 1);
  CHECK_FALSE(users.down.has_value());

  const Migration& orders = ms[2];
  CHECK(orders.version == "10");
  CHECK(orders.name == "add_orders");
  CHECK(orders.up.transactional);
  CHECK(orders.up.first_line == 5);
  REQUIRE(orders.up.statements.size() == 2);
  CHECK(orders.up.statements[0].line == 5);
  CHECK(orders.up.statements[1].line == 7);
  CHECK(orders.up.statements[1].column == 3);
  REQUIRE(orders.down.has_value());
  CHECK_FALSE(orders.down->transactional);
  CHECK(orders.down->first_line == 9);
  REQUIRE(orders.down->statements.size() == 2);
  CHECK(orders.down->statements[1].line == 10);
  CHECK(orders.down->statements[1].text == "DROP TABLE orders");

  CHECK(ms[3].version == "11");
  // A down marker followed by only comments is an explicit no-op rollback, not a missing down.
  REQUIRE(ms[3].down.has_value());
  CHECK(ms[3].down->statements.empty());

  const Migration& big = ms[4];
  CHECK(big.version == "20240101000000");
  CHECK(big.name == "big");
  CHECK(big.up.transactional);
  CHECK(big.down_path == dir.path() + "/20240101000000_big.down.sql");
  REQUIRE(big.down.has_value());
  CHECK_FALSE(big.down->transactional);
  CHECK(big.down->statements.at(0).line == 2);
}

TEST_CASE("markers are recognised as dbmate recognises them") {
  TempDir dir;
  dir.Write("1_a.sql", "--migrate:up\nSELECT 1;\n--migrate:down\nSELECT 2;\n");
  dir.Write("2_b.sql", "--   migrate:up   \t\nSELECT 1;\n--\tmigrate:down transaction:false  \n");
  dir.Write("3_c.sql", "-- migrate:up transaction:false\nSELECT 1;\n");
  dir.Write("4_d.sql", "-- migrate:upgrade is a comment\nSELECT 1;\n");
  dir.Write("5_e.sql", "-- migrate:up transaction:false transaction:true\nSELECT 1;\n");
  auto ms = Load(dir);
  REQUIRE(ms.size() == 5);
  CHECK(ms[0].up.sql == "SELECT 1;\n");
  REQUIRE(ms[0].down.has_value());
  CHECK(ms[0].down->sql == "SELECT 2;\n");
  CHECK(ms[1].up.transactional);
  REQUIRE(ms[1].down.has_value());  // present, empty: a no-op rollback
  CHECK(ms[1].down->statements.empty());
  CHECK_FALSE(ms[1].down->transactional);
  CHECK(ms[1].down->options == "transaction:false");
  CHECK_FALSE(ms[2].up.transactional);
  CHECK(ms[3].up.first_line == 1);  // No marker: the whole file is the up section.
  CHECK(ms[3].up.sql == "-- migrate:upgrade is a comment\nSELECT 1;\n");
  CHECK(ms[4].up.transactional);
}

TEST_CASE("CanonicalVersion and CompareVersions") {
  CHECK(CanonicalVersion("007") == "7");
  CHECK(CanonicalVersion("000") == "0");
  CHECK(CanonicalVersion("0") == "0");
  CHECK(CanonicalVersion("20240101000000") == "20240101000000");
  CHECK(CompareVersions("9", "10") < 0);
  CHECK(CompareVersions("10", "9") > 0);
  CHECK(CompareVersions("0", "0") == 0);
  CHECK(CompareVersions("20240101000000", "99999999") > 0);
  CHECK(CompareVersions("123456789012345678901234567890", "123456789012345678901234567891") < 0);
}

TEST_CASE("a missing migrations directory is exit 8 naming the directory") {
  auto r = LoadMigrations("/nonexistent/pgboot/migrations");
  REQUIRE_FALSE(r.ok());
  CHECK(ExitCodeFor(r.status()) == kExitInvalidFiles);
  CHECK(Contains(r.status().message(), "/nonexistent/pgboot/migrations"));
}

TEST_CASE("parse error: unreadable file") {
  TempDir dir;
  REQUIRE(symlink("/nonexistent/target.sql", (dir.path() + "/1_dangling.sql").c_str()) == 0);
  CHECK(Contains(LoadError(dir), "1_dangling.sql:1: cannot read file: No such file or directory"));
  if (geteuid() != 0) {  // root reads anything
    TempDir locked;
    locked.Write("2_locked.sql", "SELECT 1;");
    chmod((locked.path() + "/2_locked.sql").c_str(), 0);
    CHECK(Contains(LoadError(locked), "2_locked.sql:1: cannot read file: Permission denied"));
  }
}

TEST_CASE("parse error: invalid UTF-8 names its line") {
  CHECK(Contains(ErrorFor("1_x.sql", "-- migrate:up\nSELECT 1;\nSELECT '\xC3\x28';\n"),
                 "1_x.sql:3: invalid UTF-8"));
  CHECK(
      Contains(ErrorFor("1_x.sql", "SELECT '\xC0\xAF';"), "1_x.sql:1: invalid UTF-8"));  // overlong
  CHECK(Contains(ErrorFor("1_x.sql", "\nSELECT '\xED\xA0\x80';"), "1_x.sql:2: invalid UTF-8"));
  CHECK(
      Contains(ErrorFor("1_x.sql", "\n\nSELECT '\xF4\x90\x80\x80';"), "1_x.sql:3: invalid UTF-8"));
  CHECK(Contains(ErrorFor("1_x.sql", std::string_view("SELECT 1;\0", 10)),
                 "1_x.sql:1: invalid UTF-8"));
  CHECK(Contains(ErrorFor("1_x.up.sql", "SELECT 1;\n\xFF"), "1_x.up.sql:2: invalid UTF-8"));
}

TEST_CASE("parse error: down marker before or without the up marker") {
  CHECK(Contains(ErrorFor("1_x.sql", "-- migrate:down\nDROP TABLE t;\n-- migrate:up\nSELECT 1;\n"),
                 "1_x.sql:1: -- migrate:down marker before the -- migrate:up marker"));
  CHECK(Contains(ErrorFor("1_x.sql", "SELECT 1;\n-- migrate:down\nSELECT 2;\n"),
                 "1_x.sql:2: -- migrate:down marker without a -- migrate:up marker"));
}

TEST_CASE("parse error: repeated marker") {
  std::string e = ErrorFor("1_x.sql",
                           "-- migrate:up\nSELECT 1;\n-- migrate:up\nSELECT 2;\n"
                           "-- migrate:down\nSELECT 3;\n-- migrate:down\nSELECT 4;\n");
  CHECK(Contains(e, "1_x.sql:3: repeated -- migrate:up marker (first at line 1)"));
  CHECK(Contains(e, "1_x.sql:7: repeated -- migrate:down marker (first at line 5)"));
}

TEST_CASE("parse error: unknown marker option") {
  CHECK(Contains(ErrorFor("1_x.sql", "-- migrate:up transaction:FALSE\nSELECT 1;\n"),
                 "1_x.sql:1: unknown marker option 'transaction:FALSE'"));
  CHECK(
      Contains(ErrorFor("1_x.sql", "-- migrate:up\nSELECT 1;\n-- migrate:down foo:bar\nSELECT 2;"),
               "1_x.sql:3: unknown marker option 'foo:bar'"));
  CHECK(Contains(ErrorFor("1_x.up.sql", "-- pgboot:transactional:false\nSELECT 1;\n"),
                 "1_x.up.sql:1: unknown option 'pgboot:transactional:false'"));
}

TEST_CASE("an empty or comment-only up section is a no-op migration, not a parse error") {
  TempDir dir;
  dir.Write("1_a.sql", "-- hello\n-- migrate:up\n-- nothing\n;\n-- migrate:down\nDROP TABLE t;\n");
  dir.Write("2_b.sql", "");
  dir.Write("3_c.sql", "-- migrate:up");
  dir.Write("4_d.up.sql", "-- pgboot:transaction:false\n");
  dir.Write("5_e.up.sql", "-- data is migrated in code.\n");
  dir.Write("5_e.down.sql", "");
  auto ms = Load(dir);
  REQUIRE(ms.size() == 5);
  for (const Migration& m : ms) {
    CAPTURE(m.up_path);
    CHECK(m.up.statements.empty());
  }
  REQUIRE(ms[0].down.has_value());
  CHECK(ms[0].down->statements.size() == 1);
  CHECK_FALSE(ms[3].up.transactional);
  CHECK(ms[3].up.options == "transaction:false");
  REQUIRE(ms[4].down.has_value());  // an empty .down.sql: a no-op rollback
  CHECK(ms[4].down->statements.empty());
  CHECK(ms[4].checksum == Sha256Hex("-- data is migrated in code.\n"));
}

TEST_CASE("a directory or other non-regular file named like a migration is exit 8") {
  for (const char* name : {"13_dir.sql", "13_dir.up.sql", "13_dir.down.sql"}) {
    CAPTURE(name);
    TempDir dir;
    dir.Write("1_a.sql", "SELECT 1;");
    std::filesystem::create_directory(dir.path() + "/" + name);
    CHECK(LoadError(dir) == std::string(name) + ":1: a directory, not a migration file");
  }
  TempDir dir;  // after following a symlink
  std::filesystem::create_directory(dir.path() + "/real");
  REQUIRE(symlink((dir.path() + "/real").c_str(), (dir.path() + "/2_link.sql").c_str()) == 0);
  CHECK(LoadError(dir) == "2_link.sql:1: a directory, not a migration file");
  TempDir fifo;
  REQUIRE(mkfifo((fifo.path() + "/3_pipe.sql").c_str(), 0600) == 0);
  CHECK(LoadError(fifo) == "3_pipe.sql:1: not a regular file");
}

TEST_CASE("a file name that is not UTF-8 is exit 8, its bytes escaped in the message") {
  TempDir dir;
  dir.Write("1_caf\xE9.sql", "SELECT 1;");
  dir.Write("2_ok.sql", "SELECT 1;");
  CHECK(LoadError(dir) == "1_caf\\xe9.sql:1: file name is not valid UTF-8");
}

TEST_CASE("ParseStoredDown splits a stored down with its stored options") {
  auto s = ParseStoredDown("DROP INDEX CONCURRENTLY i;\n\nDROP TABLE t;\n", "transaction:false");
  REQUIRE(s.ok());
  CHECK_FALSE(s->transactional);
  REQUIRE(s->statements.size() == 2);
  CHECK(s->statements[1].line == 3);
  auto bad = ParseStoredDown("SELECT 1;\nSELECT 'x;\n", "");
  REQUIRE_FALSE(bad.ok());
  CHECK(Contains(bad.status().message(), "stored down:2: unterminated quoted string"));
  CHECK(Contains(ParseStoredDown("COMMIT;", "").status().message(), "stored down:1: COMMIT"));
  CHECK(Contains(ParseStoredDown("SELECT 1;", "bogus").status().message(), "'bogus'"));
  auto empty = ParseStoredDown("-- nothing\n", "");
  REQUIRE(empty.ok());
  CHECK(empty->statements.empty());
}

TEST_CASE("parse error: unterminated quote or comment names where it starts") {
  CHECK(Contains(
      ErrorFor("1_x.sql", "-- migrate:up\nSELECT 1;\nSELECT 'abc;\n-- migrate:down\nSELECT 'x';\n"),
      "1_x.sql:3: unterminated quoted string starting at line 3"));
  CHECK(Contains(
      ErrorFor("1_x.sql", "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 2;\n/* oops\n"),
      "1_x.sql:5: unterminated /* comment starting at line 5"));
  CHECK(Contains(ErrorFor("1_x.sql", "-- migrate:up\nDO $f$ BEGIN END $$;\n"),
                 "1_x.sql:2: unterminated dollar-quoted string starting at line 2"));
  CHECK(Contains(ErrorFor("1_x.up.sql", "SELECT 1;\nSELECT \"x;\n"),
                 "1_x.up.sql:2: unterminated quoted identifier starting at line 2"));
}

TEST_CASE("parse error: statements before the up marker") {
  CHECK(Contains(ErrorFor("1_x.sql", "\n-- c\n/* unterminated\n-- migrate:up\nSELECT 1;\n"),
                 "1_x.sql:3: unterminated /* comment starting at line 3"));
  CHECK(Contains(
      ErrorFor("1_x.sql", "-- fine\n\nCREATE TYPE s AS ENUM ('a');\n-- migrate:up\nSELECT 1;\n"),
      "1_x.sql:3: statement before -- migrate:up"));
}

TEST_CASE("parse error: version collision names both files") {
  TempDir dir;
  dir.Write("1_a.sql", "SELECT 1;");
  dir.Write("001_b.sql", "SELECT 1;");
  dir.Write("2_c.sql", "SELECT 1;");
  dir.Write("02_c.up.sql", "SELECT 1;");
  std::string e = LoadError(dir);
  CHECK(Contains(e, "1_a.sql:1: version 1 is also used by 001_b.sql"));
  CHECK(Contains(e, "2_c.sql:1: version 2 is also used by 02_c.up.sql"));
}

TEST_CASE("parse error: file names") {
  for (const char* file : {"V1__init.sql", "1.sql", "init.sql", "1-init.sql", "x1_init.sql"}) {
    CAPTURE(file);
    CHECK(
        Contains(ErrorFor(file, "SELECT 1;"), std::string(file) + ":1: not a migration file name"));
  }
  // An unreadable up file is reported as such, not as a missing partner of its down file.
  TempDir dir;
  REQUIRE(symlink("/nonexistent/x.sql", (dir.path() + "/4_y.up.sql").c_str()) == 0);
  dir.Write("4_y.down.sql", "SELECT 1;");
  CHECK(LoadError(dir) == "4_y.up.sql:1: cannot read file: No such file or directory");
}

TEST_CASE("a .down.sql without its .up.sql is a files.orphan warning, not an error") {
  TempDir dir;
  dir.Write("1_a.sql", "SELECT 1;");
  dir.Write("3_x.down.sql", "SELECT 1;");
  std::vector<FileWarning> warnings;
  auto r = LoadMigrations(dir.path(), &warnings);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->size() == 1);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].event == "files.orphan");
  CHECK(warnings[0].path == dir.path() + "/3_x.down.sql");
  CHECK(Contains(warnings[0].message, "without " + dir.path() + "/3_x.up.sql"));
  CHECK(LoadMigrations(dir.path()).ok());  // without a warnings sink too
}

TEST_CASE("every error of every file is reported at once, one per line, sorted") {
  TempDir dir;
  dir.Write("1_a.sql", "-- migrate:up\nCOMMIT;\n");
  dir.Write("2_b.sql", "-- migrate:up bogus\nSELECT 1;\nSELECT 'x\n");
  dir.Write("3_c.sql", "SELECT 1;");
  std::string e = LoadError(dir);
  CHECK(e ==
        "1_a.sql:2: COMMIT in a transactional section: pgboot runs the section in its own "
        "transaction; to manage transactions yourself, use '-- migrate:up transaction:false'\n"
        "2_b.sql:1: unknown marker option 'bogus' (known: transaction:false, transaction:true)\n"
        "2_b.sql:3: unterminated quoted string starting at line 3");
}

TEST_CASE("transaction control is rejected in transactional sections only") {
  for (const char* sql :
       {"BEGIN;", "begin work;", "COMMIT;", "END;", "ABORT;", "START TRANSACTION;", "ROLLBACK;",
        "PREPARE TRANSACTION 'x';", "COMMIT PREPARED 'x';"}) {
    CAPTURE(sql);
    std::string up = std::string("-- migrate:up\nCREATE TABLE t (id int);\n\n  ") + sql + "\n";
    CHECK(Contains(ErrorFor("1_x.sql", up), "1_x.sql:4: "));
    std::string keywords(sql, std::string_view(sql).find_first_of(";'"));
    for (char& c : keywords) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    while (keywords.ends_with(" ")) keywords.pop_back();
    CHECK(Contains(ErrorFor("1_x.sql", up), "1_x.sql:4: " + keywords + " in a transactional"));
    std::string down = std::string("-- migrate:up\nSELECT 1;\n-- migrate:down\n") + sql + "\n";
    CHECK(Contains(ErrorFor("1_x.sql", down), "1_x.sql:4: "));
    CHECK(Contains(ErrorFor("1_x.up.sql", std::string("SELECT 1;\n") + sql), "1_x.up.sql:2: "));
  }

  TempDir dir;
  dir.Write("1_savepoints.sql",
            "-- migrate:up\nSAVEPOINT s;\nSELECT 1;\nROLLBACK TO SAVEPOINT s;\nrollback to s;\n"
            "RELEASE SAVEPOINT s;\n"
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\n");
  dir.Write("2_manual.sql",
            "-- migrate:up transaction:false\nBEGIN;\nSELECT 1;\nCOMMIT;\nSTART TRANSACTION;\n"
            "ABORT;\nBEGIN;\nROLLBACK;\nBEGIN;\nEND;\n"
            "-- migrate:down transaction:false\nBEGIN;\nCOMMIT;\n");
  dir.Write("3_manual.up.sql", "-- pgboot:transaction:false\nBEGIN;\nCOMMIT;\n");
  dir.Write("3_manual.down.sql", "-- pgboot:transaction:false\nBEGIN;\nROLLBACK;\n");
  auto ms = Load(dir);
  REQUIRE(ms.size() == 3);
  CHECK(ms[0].up.statements.size() == 6);
  CHECK(ms[1].up.statements.size() == 9);
  CHECK(ms[1].up.statements[0].is_transaction_control);
  CHECK(ms[1].down->statements.size() == 2);
  CHECK_FALSE(ms[2].up.transactional);
  CHECK_FALSE(ms[2].down->transactional);
}

}  // namespace
}  // namespace pgboot

namespace pgboot {

TEST_CASE("COPY FROM STDIN is a parse error in either kind of section") {
  CHECK(ErrorFor("1_copy.sql",
                 "-- migrate:up\nCREATE TABLE t (a int);\n\ncopy  t (a)\n  from\tstdin;\n")
            .find("1_copy.sql:4: COPY ... FROM STDIN") != std::string::npos);
  CHECK(ErrorFor("2_copy.sql",
                 "-- migrate:up transaction:false\nCOPY t FROM STDIN WITH (FORMAT csv);\n")
            .find("2_copy.sql:2:") != std::string::npos);
  TempDir ok;
  ok.Write("3_copy.sql", "-- migrate:up\nCOPY t TO STDOUT;\nCOPY t FROM '/srv/data.csv';\n");
  CHECK(LoadMigrations(ok.path()).ok());
}

}  // namespace pgboot

namespace pgboot {
namespace {

TEST_CASE("verify sections: native marker after up (before or after down), pairs .verify.sql") {
  TempDir dir;
  dir.Write("1_a.sql",
            "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:verify\nSELECT true;\n"
            "-- migrate:down\nDROP TABLE a;\n");
  dir.Write("2_b.sql",
            "-- migrate:up\nCREATE TABLE b (id int);\n-- migrate:down\nDROP TABLE b;\n"
            "-- migrate:verify\nSELECT true;\nSELECT 1 = 1;\n");
  dir.Write("3_c.up.sql", "CREATE TABLE c (id int);\n");
  dir.Write("3_c.verify.sql", "SELECT true;\n");
  auto ms = LoadMigrations(dir.path());
  REQUIRE(ms.ok());
  REQUIRE(ms->size() == 3);
  const Migration& a = (*ms)[0];
  // The verify section is not part of the checksum: the up section ends at its marker.
  CHECK(a.up.sql == "CREATE TABLE a (id int);\n");
  REQUIRE(a.verify);
  CHECK(a.verify->statements.size() == 1);
  CHECK(a.verify->first_line == 4);
  REQUIRE(a.down);
  CHECK(a.down->sql == "DROP TABLE a;\n");
  const Migration& b = (*ms)[1];
  REQUIRE(b.down);
  CHECK(b.down->sql == "DROP TABLE b;\n");  // the down ends at the verify marker
  REQUIRE(b.verify);
  CHECK(b.verify->statements.size() == 2);
  const Migration& c = (*ms)[2];
  REQUIRE(c.verify);
  CHECK(c.verify_path == dir.path() + "/3_c.verify.sql");
}

TEST_CASE("a verify marker before the up marker or repeated is a parse error") {
  TempDir dir;
  dir.Write("1_a.sql", "-- migrate:verify\nSELECT true;\n-- migrate:up\nSELECT 1;\n");
  dir.Write("2_b.sql",
            "-- migrate:up\nSELECT 1;\n-- migrate:verify\nSELECT true;\n"
            "-- migrate:verify\nSELECT true;\n");
  auto ms = LoadMigrations(dir.path());
  REQUIRE_FALSE(ms.ok());
  CHECK(ms.status().message().find("1_a.sql:1: -- migrate:verify marker before the -- "
                                   "migrate:up marker") != std::string::npos);
  CHECK(ms.status().message().find("2_b.sql:5: repeated -- migrate:verify marker") !=
        std::string::npos);
}

TEST_CASE("a verify section takes no marker options and no transaction control") {
  TempDir dir;
  dir.Write("1_a.sql",
            "-- migrate:up\nSELECT 1;\n-- migrate:verify transaction:false\nSELECT true;\n");
  dir.Write("2_b.sql", "-- migrate:up\nSELECT 1;\n-- migrate:verify\nBEGIN;\nSELECT true;\n");
  dir.Write("3_c.up.sql", "SELECT 1;\n");
  dir.Write("3_c.verify.sql", "-- pgboot:transaction:false\nCOMMIT;\n");
  auto ms = LoadMigrations(dir.path());
  REQUIRE_FALSE(ms.ok());
  const std::string& msg = ms.status().message();
  CHECK(msg.find("1_a.sql:3: unknown marker option 'transaction:false'") != std::string::npos);
  CHECK(msg.find("2_b.sql:4: BEGIN in a transactional section") != std::string::npos);
  CHECK(msg.find("3_c.verify.sql:2: COMMIT in a transactional section") != std::string::npos);
}

TEST_CASE(
    "the in-place cut with CRLF and a BOM: up ends at the verify marker, checksum as before") {
  TempDir dir;
  dir.Write("1_a.sql",
            "\xEF\xBB\xBF-- migrate:up\r\nCREATE TABLE a (id int);\r\n-- migrate:verify\r\n"
            "SELECT true;\r\n-- migrate:down\r\nDROP TABLE a;\r\n");
  dir.Write("2_a.sql", "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n");
  auto ms = LoadMigrations(dir.path());
  REQUIRE(ms.ok());
  const Migration& with = (*ms)[0];
  const Migration& without = (*ms)[1];
  CHECK(with.up.sql == "CREATE TABLE a (id int);\n");
  CHECK(with.checksum == without.checksum);  // adding a verify section is not drift
  REQUIRE(with.verify);
  CHECK(with.verify->statements.front().text == "SELECT true");
  CHECK(with.verify->statements.front().line == 4);
  REQUIRE(with.down);
  CHECK(with.down->sql == "DROP TABLE a;\n");
  // Copied sections keep statements that view their own sql.
  Migration copy = with;
  CHECK(copy.verify->statements.front().text.data() >= copy.verify->sql.data());
  CHECK(copy.verify->statements.front().text.data() <
        copy.verify->sql.data() + copy.verify->sql.size());
}

}  // namespace
}  // namespace pgboot
