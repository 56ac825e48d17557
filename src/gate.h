// Gate: wait until the history holds every migration file with a matching checksum
// (docs/reference.md "The schema gate"), for a process that does not migrate itself.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "clock.h"
#include "migration_files.h"
#include "plan.h"
#include "status.h"

namespace pgboot {

// What the history says about this process's files.
struct GateVerdict {
  enum class Kind {
    kOpen,  // every file is applied with its checksum
    kWait,  // some are not, and another process may still apply them
    kFail,  // waiting cannot succeed: a human must act first
  };
  Kind kind = Kind::kWait;
  // Versions with a file here that are not applied yet (running ones included), ascending.
  std::vector<std::string> pending;
  // The lowest pending version whose row is `running` (a transaction:false migration is
  // under way, or its run died and awaits a resume), else empty.
  std::string running;
  // kFail: why, naming the version and what to do.
  std::string reason;
};

// Pure: files + history rows -> the verdict. Fails on drift (an applied or running
// version whose file's checksum differs), a `failed` row, a deleted version (a row
// without a file below the newest file) and a pending version below the newest
// applied one unless `out_of_order`. Rows above every file are a newer release's
// (future): they never keep the gate shut, whatever their status. A history table
// that does not exist is an empty `history`.
GateVerdict DecideGate(const std::vector<Migration>& files, const std::vector<HistoryRow>& history,
                       bool out_of_order);

// The world the gate loop waits on, an interface so that unit tests can replace
// it; GateSession (gate_session.h) is the real one over a Database.
class GateSource {
 public:
  virtual ~GateSource() = default;
  // The history rows (none when the table does not exist yet).
  virtual Result<std::vector<HistoryRow>> ReadHistory() = 0;
  // Waits `ms`, or less when a notification says the history changed. Returns
  // Status::Signal on a terminating signal, a lost-connection status when the
  // session dropped.
  virtual Status Wait(int64_t ms) = 0;
  // Makes a new session (and listens again) before `deadline_ms` on the loop's
  // clock (< 0: no deadline). A Timeout status when the deadline passes first.
  virtual Status Reconnect(int64_t deadline_ms) = 0;
};

struct GateOptions {
  bool out_of_order = false;
  int64_t timeout_ms = 15 * 60 * 1000;  // counted from the call; 0 waits forever
  int64_t log_interval_ms = 10000;      // gate.waiting at once, then this often
  int64_t poll_cap_ms = 2000;           // the backoff cap between re-reads
};

// Whether `s` says the session is gone (kConnectionLost, SQLSTATE class 08, or the
// server shutting down or restarting: 57P01-57P03), so reconnecting may help.
bool IsConnectionLost(const Status& s);

// The gate loop: re-reads the history until DecideGate opens (logs gate.open, Ok)
// or fails (a Precondition status, exit 6), polling with full-jitter backoff capped at poll_cap_ms
// (reset whenever the pending set changes: a migration is under way), woken early by the source's
// notifications; reconnects a lost session within the deadline. Logs gate.waiting (pending, next)
// at once and every log_interval_ms. Past the deadline: a Timeout status (exit 3) naming the
// pending versions.
Status RunGate(GateSource& source, const std::vector<Migration>& files, const GateOptions& options,
               Clock& clock);

// "3, 4, 7": at most `limit` versions, then "and N more".
std::string ListVersions(const std::vector<std::string>& versions, size_t limit = 10);

}  // namespace pgboot
