// Readiness: backoff with full jitter and the wait-until-the-database-accepts-us loop
// (docs/reference.md, "Waiting for the database").
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "backoff.h"
#include "clock.h"
#include "database.h"
#include "status.h"

namespace pgboot {

// What one connection attempt learned about the server. The kind decides the
// backoff cap; kinds that end the wait (ready, fatal, config, signal) never sleep.
enum class AnswerKind {
  kReady,               // authenticated, SELECT 1 answered
  kNoServer,            // nothing serves yet: refused, no route, unresolvable, no socket, 57P03
  kTooManyConnections,  // 53300
  kTransient,           // anything else: retried until the deadline
  kFatal,               // 28P01, 28000, 3D000, 42501: exit 4 at once
  kConfig,              // the connection string or an option value is invalid: exit 2
  kSignal,              // a terminating signal arrived during the attempt
};

const char* AnswerKindName(AnswerKind kind);

// Sorts a failed connection attempt by the server's SQLSTATE when it sent one,
// else by libpq's own message (pgboot keeps the C locale, so those are English):
// 28P01/28000/3D000/42501 and libpq's "no password supplied" are fatal; 57P03 and
// "nothing answers" (refused, no route, unresolvable, missing socket) mean no
// server yet; 53300 too many connections; libpq calling an option value
// invalid, host/port lists that do not match, or a broken service file are
// configuration errors; anything else is transient. A pooler's generic
// 08P01 is sorted by its message: PgBouncer's "password authentication
// failed", "SASL authentication failed", "no such user", "no such database"
// are fatal, "no more connections allowed" is a full pool (like 53300), and
// the rest ("query_wait_timeout", "server login has been failing") transient.
AnswerKind ClassifyConnectFailure(std::string_view sqlstate, std::string_view message);

// TLS failures no retry can mend (docs/reference.md, "Waiting for the
// database"): the server's certificate fails verification (unknown CA, host
// name mismatch), a sslmode requiring TLS meets a server without it, a root
// certificate file verify-ca/verify-full needs is missing, the server refuses
// the client certificate, or the client's certificate or key file is unusable.
// ClassifyConnectFailure calls them fatal.
bool IsUnmendableTlsFailure(std::string_view message);

struct AttemptOutcome {
  AnswerKind kind = AnswerKind::kTransient;
  std::string reason;            // one line, already redacted; empty when ready
  std::string sqlstate;          // the server's code when it gave one
  int signo = 0;                 // for kSignal
  std::unique_ptr<Database> db;  // for kReady
};

// The wait's backoff: sleep = uniform(0, min(cap, base * 2^n)) (Backoff),
// with n restarting at 0 whenever the kind of answer changes, so a server that
// goes from "refused" to "too many connections" is not punished for the
// refusals. Caps: 100 ms while no server answers (such attempts cost the server
// nothing and keep readiness latency low); max_interval for 53300, so a fleet
// of starters does not hammer a full server; max_interval also for any other
// transient answer, since we do not know what it costs the server.
class WaitBackoff {
 public:
  static constexpr int64_t kBaseMs = 50;
  static constexpr int64_t kNoServerCapMs = 100;

  explicit WaitBackoff(int64_t max_interval_ms)
      : max_interval_ms_(max_interval_ms), backoff_(kBaseMs, max_interval_ms) {}

  // The sleep after an answer of `kind` (one of the retried kinds), drawn with
  // `u01` in [0, 1). Whole milliseconds in [0, Ceiling()].
  int64_t Next(AnswerKind kind, double u01);

  int64_t CapFor(AnswerKind kind) const;
  // min(cap, base * 2^n) of the last Next().
  int64_t Ceiling() const { return backoff_.Ceiling(); }
  // The exponent n used by the last Next().
  int Exponent() const { return backoff_.Exponent(); }

 private:
  int64_t max_interval_ms_;
  bool started_ = false;
  AnswerKind last_ = AnswerKind::kTransient;
  Backoff backoff_;  // the one shared Backoff (backoff.h), its cap set per kind
};

struct WaitOptions {
  std::string conninfo;                  // empty: libpq's PG* variables and defaults
  LockMode lock_mode = LockMode::kAuto;  // as configured (lock_mode.h)
  int64_t timeout_ms = 60000;            // 0 waits forever
  int64_t max_interval_ms = 1000;
  int64_t summary_interval_ms = 5000;  // info-level wait.retry summary period; 0: none
  // Asked after every failed attempt: a non-ok Status ends the wait with it.
  // Lets work done meanwhile (reading the migration files) fail fast while the
  // database is still down.
  std::function<Status()> give_up;
};

// Makes one attempt that must not run past `deadline_ms` (on the loop's Clock;
// < 0 means no deadline).
using Attempter = std::function<AttemptOutcome(int64_t deadline_ms)>;
// Sleeps `ms`; returns Status::Signal when a terminating signal cut the sleep short.
using Sleeper = std::function<Status(int64_t ms)>;

// The wait loop over replaceable parts, so unit tests can drive it on a fake
// clock: attempts until one is ready, sleeping per WaitBackoff in between, under
// one overall deadline (opts.timeout_ms after the start; each attempt gets the
// time remaining, and no sleep runs past it). Returns the ready connection;
// Status::ConnectRejected on a fatal answer, Usage on a
// configuration error, Signal on a terminating signal, and Timeout ("database
// not ready within 60s: <last reason>") at the deadline.
Result<std::unique_ptr<Database>> WaitWithBackoff(const WaitOptions& opts, Clock& clock,
                                                  const Attempter& attempt, const Sleeper& sleep);

}  // namespace pgboot
