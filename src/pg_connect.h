// Connecting over libpq: one readiness attempt at a time, and the production wait for the database.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "clock.h"
#include "database.h"
#include "readiness.h"
#include "status.h"

namespace pgboot {

struct ConnectOptions {
  // A postgres:// URI or a libpq key=value string; empty: libpq's PG*
  // variables and defaults.
  std::string conninfo;
  // Send `-c client_connection_check_interval=1s`. Turned off only for servers
  // older than 14, which reject the setting at startup.
  bool connection_check = true;
};

// Makes readiness attempts (docs/reference.md, "Waiting for the database")
// against one server, and remembers what it learned from it between attempts:
// a server before 14 refuses the whole startup packet over
// client_connection_check_interval, so after the first such refusal the
// connector leaves the setting out.
class PgConnector {
 public:
  PgConnector(ConnectOptions opts, Clock& clock) : opts_(std::move(opts)), clock_(clock) {}

  // One attempt, never running past `deadline_ms` on the clock (< 0: no
  // deadline): PQconnectStartParams + PQconnectPoll through the EventLoop, then
  // an authenticated SELECT 1. Every connection carries
  // application_name=pgboot@<hostname>, TCP keepalives (idle 10 s, interval
  // 5 s, count 3; the user's string may tune them), standard_conforming_strings=on
  // and client_connection_check_interval=1s appended to the user's `options`.
  AttemptOutcome Attempt(int64_t deadline_ms);

 private:
  ConnectOptions opts_;
  Clock& clock_;
};

// The production wait: PgConnector attempts, EventLoop sleeps, the real clock
// (WaitWithBackoff in readiness.h is the loop). pgboot uses one connection per
// run, so the caller keeps the returned one for its work.
Result<std::unique_ptr<Database>> WaitForDatabase(const WaitOptions& opts);

}  // namespace pgboot
