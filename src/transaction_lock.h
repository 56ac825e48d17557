// TransactionLock: the migration lock of transaction lock mode, held by one transaction at a time
// (docs/reference.md, "Lock modes").
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "clock.h"
#include "config.h"
#include "database.h"
#include "history.h"

namespace pgboot {

// Behind a transaction pooler only a transaction is a session: the lock is
// pg_try_advisory_xact_lock on the same key as session mode's, so runners of
// either mode exclude each other, and COMMIT or ROLLBACK frees it.
class TransactionLock {
 public:
  TransactionLock(Database& db, const History& history, const Config& cfg, Clock& clock);

  // Opens a transaction that holds the lock: BEGIN ISOLATION LEVEL READ
  // COMMITTED, the SET LOCAL settings and the try-lock in one round trip. While
  // another runner holds the lock: ROLLBACK (no transaction is held while
  // waiting), lock.waiting with the holder at once and every
  // lock_log_interval, a backoff sleep, again; LockTimeout after --lock-timeout
  // of this one wait. On success the caller's next statement is a fresh
  // snapshot that sees everything committed before the lock was granted.
  Status Open();
  // Ends the open transaction, freeing the lock.
  void Rollback();
  // Commits the open transaction (and frees the lock); `what` names it on failure.
  Status Commit(const std::string& what);

 private:
  Database& db_;
  const History& history_;
  const Config& cfg_;
  Clock& clock_;
  bool logged_acquired_ = false;
};

// The writes of a one-transaction command (repair, baseline), planned from
// the history as re-read under the lock; empty: nothing to do.
using PlanWrites =
    std::function<Result<std::vector<std::string>>(const std::vector<HistoryRow>& rows)>;

// Runs `plan`'s writes under the migration lock in either lock mode: session
// mode takes the session lock, creates the tables and re-reads history, then
// commits the writes in one transaction; transaction mode does the same inside
// one transaction that holds the transaction lock. `what` names a failure.
Status WriteUnderLock(Database& db, History& history, const Config& cfg, Clock& clock,
                      const PlanWrites& plan, const std::string& what);

// The refusal of what only session lock mode can do (a transaction:false
// section, hooks, resuming a `running` row): exit 2, naming the way out.
Status RefuseInTransactionMode(std::string_view what);

}  // namespace pgboot
