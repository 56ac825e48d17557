// Connecting over libpq: one readiness attempt at a time, and the production wait for the database.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "clock.h"
#include "database.h"
#include "readiness.h"
#include "status.h"

namespace pgboot {

struct ConnectOptions {
  // A postgres:// URI or a libpq key=value string; empty: libpq's PG*
  // variables and defaults.
  std::string conninfo;
  // As configured; kAuto asks the connection whether a pooler is in between.
  LockMode lock_mode = LockMode::kAuto;
};

// Makes readiness attempts (docs/reference.md, "Waiting for the database")
// against one server.
class PgConnector {
 public:
  PgConnector(ConnectOptions opts, Clock& clock) : opts_(std::move(opts)), clock_(clock) {}

  // One attempt, never running past `deadline_ms` on the clock (< 0: no
  // deadline): PQconnectStartParams + PQconnectPoll through the EventLoop,
  // then an authenticated SELECT 1 and, in the same round trip, SELECT
  // pg_backend_pid() for the lock-mode verdict (lock_mode.h). The startup
  // packet carries only what a pooler accepts: application_name=pgboot@<hostname>
  // and TCP keepalives (idle 10 s, interval 5 s, count 3; the user's string
  // may tune them), plus whatever the user's own string sets. pgboot's server
  // settings follow the verdict: SET once here in session mode, SET LOCAL in
  // each transaction in transaction mode (BeginStatements), never a session
  // SET then.
  AttemptOutcome Attempt(int64_t deadline_ms);

 private:
  ConnectOptions opts_;
  Clock& clock_;
};

// The libpq environment variables that say what `conninfo` says (PGHOST,
// PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGSSLMODE, ... for each key it
// sets), so that a hook's `pg_dump` or `psql` reaches the same database with
// no arguments (docs/reference.md, "Hooks"). Empty for an empty conninfo: the
// hook inherits pgboot's own PG* variables. A Usage error when libpq cannot
// parse it.
Result<std::vector<std::pair<std::string, std::string>>> LibpqEnvironment(
    const std::string& conninfo);

// The production wait: PgConnector attempts, EventLoop sleeps, the real clock
// (WaitWithBackoff in readiness.h is the loop). pgboot uses one connection per
// run, so the caller keeps the returned one for its work.
Result<std::unique_ptr<Database>> WaitForDatabase(const WaitOptions& opts);

}  // namespace pgboot
