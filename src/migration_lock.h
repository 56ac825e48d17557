// MigrationLock: the database-wide advisory lock every writing command takes (docs/reference.md).
#pragma once

#include <string>
#include <vector>

#include "backoff.h"
#include "clock.h"
#include "config.h"
#include "database.h"
#include "history.h"
#include "plan.h"

namespace pgboot {

// The session-level advisory lock. Polls pg_try_advisory_lock with backoff (no
// transaction held while waiting), logs lock.waiting with the holder at once
// and then every lock_log_interval, and gives up after lock_timeout
// (LockTimeout). Every wait is a Clock::Sleep. Released by Release() or the
// destructor.
class MigrationLock {
 public:
  MigrationLock(Database& db, const History& history, const Config& cfg, Clock& clock);
  ~MigrationLock();
  Status Acquire();
  void Release();

 private:
  Database& db_;
  const History& history_;
  const Config& cfg_;
  Clock& clock_;
  std::string key_;
  bool held_ = false;
};

// The wait between two tries of the migration lock, the same in both lock
// modes: lock.waiting with the holder at once and then every
// lock_log_interval, LockTimeout after lock_timeout, a jittered backoff sleep
// in between. Every wait is a Clock::Sleep.
class LockWait {
 public:
  LockWait(Database& db, const History& history, const Config& cfg, Clock& clock);
  ~LockWait();  // adds the time waited, however it ended, to RunStats
  // When the first try was made (construction), on the clock.
  int64_t start() const { return start_; }
  // After a try that failed at `now`: lock.waiting with the holder, when one is due.
  void LogHolderIfDue(int64_t now);
  // LockTimeout once lock_timeout has passed at `now`; else sleeps, never past
  // that deadline or the next lock.waiting line.
  Status Pause(int64_t now);

 private:
  Database& db_;
  const History& history_;
  const Config& cfg_;
  Clock& clock_;
  const int64_t start_;
  int64_t next_log_;
  Backoff backoff_;
};

// What every writing command does before it decides again: takes the lock,
// creates the tables if missing (only ever under the lock: concurrent CREATE
// TABLE IF NOT EXISTS races on the catalog) and re-reads history, which
// another pgboot may have changed while this one waited.
Result<std::vector<HistoryRow>> LockAndReadHistory(MigrationLock& lock, History& history);

}  // namespace pgboot
