#include "log.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace pgboot {

TEST_CASE("redaction of every password form") {
  CHECK(Redact("postgres://app:hunter2@db:5432/app") == "postgres://app:***@db:5432/app");
  CHECK(Redact("postgresql://app:hunter2@db/app?sslmode=disable") ==
        "postgresql://app:***@db/app?sslmode=disable");
  CHECK(Redact("POSTGRES://app:p%40ss@db/app") == "POSTGRES://app:***@db/app");
  // An unescaped @ in the password: the last @ before the path ends the userinfo.
  CHECK(Redact("postgres://app:p@ss@db/app") == "postgres://app:***@db/app");
  CHECK(Redact("postgres://app@db/app") == "postgres://app@db/app");
  // What libpq quotes when it cannot parse the URI: the password may hold ?, #, spaces.
  CHECK(Redact("invalid: \"postgres://u:pa?ss#w rd@[::1/db\"") ==
        "invalid: \"postgres://u:***@[::1/db\"");
  CHECK(Redact("postgres://db/app") == "postgres://db/app");
  CHECK(Redact("host=db password=hunter2 user=app") == "host=db password=*** user=app");
  CHECK(Redact("host=db password = 'hun ter\\'2' user=app") == "host=db password = *** user=app");
  CHECK(Redact("PASSWORD=hunter2") == "PASSWORD=***");
  CHECK(Redact("postgres://db/app?password=hunter2&sslmode=require") ==
        "postgres://db/app?password=***&sslmode=require");
  CHECK(Redact("postgres://db/app?sslmode=require&password=hunter2") ==
        "postgres://db/app?sslmode=require&password=***");
  CHECK(Redact("connecting to \"postgres://u:hunter2@h/db\" failed") ==
        "connecting to \"postgres://u:***@h/db\" failed");
  CHECK(Redact("password authentication failed for user \"app\"") ==
        "password authentication failed for user \"app\"");
  // Two URIs on a line: the first one's userinfo runs to the line's last '@', so
  // the second is hidden with it (a raw password may hold a scheme, below).
  CHECK(Redact("two: postgres://a:x1@h/d and postgresql://b:x2@h/d") ==
        "two: postgres://a:***@h/d");
  CHECK(Redact("two: postgres://a:x1@h/d\nand postgresql://b:x2@h/d") ==
        "two: postgres://a:***@h/d\nand postgresql://b:***@h/d");
  CHECK(Redact("from postgres://db:5432/app to postgres://u:pw12@h/db") ==
        "from postgres://db:***@h/db");
  // A raw password holding a scheme (found by fuzz_redact's campaign), before or
  // after an '@' of its own, with or without a blank before it.
  CHECK(Redact("postgresql://5:rr 1%opostgresql://5:***@db:111/app?x ^ |0@db:111/app") ==
        "postgresql://5:***@db:111/app");
  CHECK(Redact("postgres://u:Leakpostgres://@h/db") == "postgres://u:***@h/db");
  CHECK(Redact("postgres://app:x@hijkpostgres://zzzz@db:1/app") == "postgres://app:***@db:1/app");
  CHECK(Redact("postgres://app:x@hijk postgres://zzzz@db:1/app") == "postgres://app:***@db:1/app");
  // Many URIs without userinfo on one long line: one pass, unchanged.
  std::string many;
  for (int i = 0; i < 20000; ++i) many += "('postgres://h/db'),";
  CHECK(Redact(many) == many);
}

TEST_CASE("a raw '/' in a URI password is redacted with the rest of it") {
  // The URI as a log field or an "invalid value" error shows it (fuzz_redact's
  // uri-raw-password-slash): libpq's '/' rule would leave "Sl4sh" or all of it.
  CHECK(Redact("postgres://u:Leak/Sl4sh@h/db") == "postgres://u:***@h/db");
  CHECK(Redact("postgresql://app:/+8Z@db:13356/app") == "postgresql://app:***@db:13356/app");
  CHECK(Redact("postgres://u:a/b c@h/db") == "postgres://u:***@h/db");
  CHECK(Redact("\"postgres://u:Le@k/At@h/db\" is invalid") ==
        "\"postgres://u:***@h/db\" is invalid");
  // A password may hold blanks and '@': an '@' after the URI hides the text up to it too.
  CHECK(Redact("postgres://u:pw12@h/db failed for ops@example.com") ==
        "postgres://u:***@example.com");
  CHECK(Redact("postgres://h/db for ops@example.com") == "postgres://h/db for ops@example.com");
}

TEST_CASE("libpq's words about a conninfo keep everything but the password's pieces") {
  const std::string err = "invalid percent-encoded token: \"s3cr%t\"";
  CHECK(MaskConninfoError("postgres://app:s3cr%t@db/app", err) ==
        "invalid percent-encoded token: \"***\"");
  CHECK(MaskConninfoError("host=db PASSWORD=s3cr%t", err) ==
        "invalid percent-encoded token: \"***\"");
  CHECK(MaskConninfoError("postgres://db/app?password=x", "missing \"=\" after \"x\"") ==
        "missing \"=\" after \"***\"");
  // A scheme typo: the parser quotes the whole string; only the password goes.
  CHECK(MaskConninfoError("postgre://u:secretpw@h/db",
                          "missing \"=\" after \"postgre://u:secretpw@h/db\" in connection "
                          "info string") ==
        "missing \"=\" after \"postgre://u:***@h/db\" in connection info string");
  // A '"' in the password: libpq's quote holds quotes of the password's own.
  CHECK(MaskConninfoError("postgres://u:ab\"1a%zz\"cd@h/db",
                          "invalid percent-encoded token: \"ab\"1a%zz\"cd\"") ==
        "invalid percent-encoded token: \"***\"");
  // Nothing secret in it: the parser's quote is the user's best clue.
  CHECK(MaskConninfoError("postgres://db/a%zz", "invalid percent-encoded token: \"a%zz\"") ==
        "invalid percent-encoded token: \"a%zz\"");
}

TEST_CASE("an unescaped '/', '@' or ':' in a URI password leaves no piece of it in libpq's words") {
  // What libpq 15 says about each (it parses pieces of the password as port, host or dbname).
  CHECK(MaskConninfoError("postgres://u:Leak/Sl4sh@h/db",
                          "invalid integer value \"Leak\" for connection option \"port\"") ==
        "invalid integer value \"***\" for connection option \"port\"");
  CHECK(MaskConninfoError("postgres://u:Le@kAtt4ck@h/db",
                          "could not translate host name \"kAtt4ck@h\" to address: Name or "
                          "service not known") ==
        "could not translate host name \"***@h\" to address: Name or service not known");
  // Runs shorter than 4 characters stay (docs/reference.md): "kAt" of "Le@kAt".
  CHECK(MaskConninfoError("postgres://u:Le@kAt@h/db", "host \"kAt@h\"") == "host \"kAt@h\"");
  CHECK(MaskConninfoError("postgres://u:ab/cd:ef@127.0.0.1/db",
                          "could not connect: database \"cd:ef@127.0.0.1/db\"") ==
        "could not connect: database \"***@127.0.0.1/db\"");
  CHECK(MaskConninfoError("postgres://u:p%40ss%2Fword@h/db", "host \"p@ss/word\"") ==
        "host \"***\"");
  // A short password: the whole of it, wherever libpq quotes it.
  CHECK(MaskConninfoError("postgres://u:a/b@h/db", "port \"a\", db \"b@h/db\"") ==
        "port \"a\", db \"b@h/db\"");
  CHECK(MaskConninfoError("postgres://u:a/b@h/db", "value \"a/b\"") == "value \"***\"");
}

TEST_CASE("an unquoted key/value password with a space is masked up to the next key") {
  CHECK(MaskConninfoError("host=127.0.0.1 password=my secret",
                          "invalid connection option \"secret\"") ==
        "invalid connection option \"***\"");
  CHECK(MaskConninfoError("password=hunter2 host = h1", "host \"h1\" and \"hunter2\"") ==
        "host \"h1\" and \"***\"");
  CHECK(MaskConninfoError("password='it\\'s x' host=h", "\"it's x\" at \"h\"") ==
        "\"***\" at \"h\"");
}

TEST_CASE("JSON quoting escapes control characters") {
  CHECK(JsonQuote("a\"b\\c\n\t\x01") == "\"a\\\"b\\\\c\\n\\t\\u0001\"");
  CHECK(JsonQuote("héllo") == "\"héllo\"");
}

TEST_CASE("JSON strings are valid UTF-8 whatever the bytes") {
  CHECK(JsonQuote("a\xff"
                  "b") == "\"a\\ufffdb\"");
  CHECK(JsonQuote("\xc3") == "\"\\ufffd\"");                        // truncated sequence
  CHECK(JsonQuote("\xc0\xaf") == "\"\\ufffd\\ufffd\"");             // overlong '/'
  CHECK(JsonQuote("\xed\xa0\x80") == "\"\\ufffd\\ufffd\\ufffd\"");  // a surrogate
  CHECK(JsonQuote("\xf0\x9f\x98\x80 \xe2\x82\xac") == "\"\xf0\x9f\x98\x80 \xe2\x82\xac\"");
}

TEST_CASE("termination log is written only when the file exists, one redacted line") {
  char path[] = "/tmp/pgboot-termlog-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  WriteTerminationLog(path, "cannot connect to postgres://u:hunter2@h/db\nsecond line");
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  CHECK(ss.str() == "cannot connect to postgres://u:***@h/db second line\n");
  unlink(path);

  const std::string missing = std::string(path) + "-missing";
  WriteTerminationLog(missing, "reason");
  CHECK(access(missing.c_str(), F_OK) != 0);
}

}  // namespace pgboot
