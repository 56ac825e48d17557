#include "lock_mode.h"

#include <doctest/doctest.h>

namespace pgboot {

TEST_CASE("auto: session only when libpq's backend pid is the server's own") {
  const LockModeVerdict direct = DecideLockMode(LockMode::kAuto, 4242, 4242);
  CHECK(direct.mode == LockMode::kSession);
  CHECK_FALSE(direct.pooled);
  CHECK_FALSE(direct.warn);
  CHECK(direct.reason.find("direct") != std::string::npos);

  // PgBouncer hands out a backend key of its own.
  const LockModeVerdict pooled = DecideLockMode(LockMode::kAuto, 1897654321, 4242);
  CHECK(pooled.mode == LockMode::kTransaction);
  CHECK(pooled.pooled);
  CHECK_FALSE(pooled.warn);
  CHECK(pooled.reason.find("1897654321") != std::string::npos);
  CHECK(pooled.reason.find("4242") != std::string::npos);
  CHECK(pooled.reason.find("pooler") != std::string::npos);
  // Half of PgBouncer's keys read as negative pids.
  const LockModeVerdict negative = DecideLockMode(LockMode::kAuto, -446355584, 4242);
  CHECK(negative.mode == LockMode::kTransaction);
  CHECK(negative.reason.find("pooler") != std::string::npos);
}

TEST_CASE("auto: unsure means pooled") {
  CHECK(DecideLockMode(LockMode::kAuto, 0, 4242).mode == LockMode::kTransaction);
  CHECK(DecideLockMode(LockMode::kAuto, 4242, 0).mode == LockMode::kTransaction);
  CHECK(DecideLockMode(LockMode::kAuto, -1, -1).mode == LockMode::kTransaction);
  CHECK(DecideLockMode(LockMode::kAuto, 0, 0).mode == LockMode::kTransaction);
}

TEST_CASE("session asked for: the user's choice, with a warning when the check says pooled") {
  const LockModeVerdict pooled = DecideLockMode(LockMode::kSession, 77, 4242);
  CHECK(pooled.mode == LockMode::kSession);
  CHECK(pooled.warn);
  CHECK(pooled.reason.find("--lock-mode session") != std::string::npos);
  CHECK(pooled.reason.find("pooler") != std::string::npos);

  const LockModeVerdict direct = DecideLockMode(LockMode::kSession, 4242, 4242);
  CHECK(direct.mode == LockMode::kSession);
  CHECK_FALSE(direct.warn);
}

TEST_CASE("transaction asked for: transaction, whatever the connection") {
  for (int client : {4242, 77, 0}) {
    const LockModeVerdict v = DecideLockMode(LockMode::kTransaction, client, 4242);
    CHECK(v.mode == LockMode::kTransaction);
    CHECK_FALSE(v.warn);
    CHECK(v.reason.find("--lock-mode transaction") != std::string::npos);
  }
}

TEST_CASE("settings: client_connection_check_interval only from server 14 on") {
  const std::vector<std::string> v15 = {"SET standard_conforming_strings = on",
                                        "SET client_connection_check_interval = '1s'"};
  CHECK(SessionSettings(150004) == v15);
  CHECK(SessionSettings(140000).size() == 2);
  CHECK(SessionSettings(130012) ==
        std::vector<std::string>{"SET standard_conforming_strings = on"});
  CHECK(LocalSettings(150004) ==
        std::vector<std::string>{"SET LOCAL standard_conforming_strings = on",
                                 "SET LOCAL client_connection_check_interval = '1s'"});
  CHECK(LocalSettings(139999) ==
        std::vector<std::string>{"SET LOCAL standard_conforming_strings = on"});
}

TEST_CASE("a transaction of pgboot's opens with its SET LOCALs in transaction mode only") {
  CHECK(BeginStatements(LockMode::kSession, 150004) == std::vector<std::string>{"BEGIN"});
  const std::vector<std::string> txn = BeginStatements(LockMode::kTransaction, 150004);
  REQUIRE(txn.size() == 3);
  CHECK(txn[0] == "BEGIN ISOLATION LEVEL READ COMMITTED");
  CHECK(txn[1] == "SET LOCAL standard_conforming_strings = on");
  CHECK(txn[2] == "SET LOCAL client_connection_check_interval = '1s'");
  CHECK(BeginStatements(LockMode::kTransaction, 130000).size() == 2);
}

}  // namespace pgboot
