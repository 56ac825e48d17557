// Migrator: plan and apply pending migrations under the database-wide advisory lock
// (docs/migrations.md).
#pragma once

#include <string>
#include <vector>

#include "clock.h"
#include "config.h"
#include "database.h"
#include "history.h"
#include "migration_files.h"
#include "plan.h"

namespace pgboot {

struct MigrateOptions {
  std::string target;    // apply up to and including this version; empty = all
  bool dry_run = false;  // print the SQL that would run; no lock, no writes
};

// The session-level advisory lock every writing command takes. Polls
// pg_try_advisory_lock with backoff (no transaction held while waiting), logs
// lock.waiting with the holder at once and then every lock_log_interval, and
// gives up after lock_timeout (exit 7). Released by Release() or the destructor.
class MigrationLock {
 public:
  MigrationLock(Database& db, const History& history, const Config& cfg, Clock& clock);
  ~MigrationLock();
  Status Acquire();
  void Release();

 private:
  void LogHolder(int64_t waited_ms);
  Database& db_;
  const History& history_;
  const Config& cfg_;
  Clock& clock_;
  std::string key_;
  bool held_ = false;
};

// What every writing command does before it decides again: takes the lock,
// creates the tables if missing (only ever under the lock: concurrent CREATE
// TABLE IF NOT EXISTS races on the catalog) and re-reads history, which
// another pgboot may have changed while this one waited.
Result<std::vector<HistoryRow>> LockAndReadHistory(MigrationLock& lock, History& history);

// `migrate`: connect is done by the caller; this reads history, validates, takes
// the lock only when something is pending, creates the tables, re-reads and
// re-validates under the lock, and applies what is still pending.
Status Migrate(Database& db, const Config& cfg, const std::vector<Migration>& files,
               const MigrateOptions& options, Clock& clock);

// Checks that `target` (when not empty) names a migration file: a usage error
// (exit 2) otherwise, before anything waits for the database.
Status CheckTarget(const std::vector<Migration>& files, const std::string& target,
                   const std::string& dir);

// `statement` followed by its ';' and a newline, as --dry-run prints it.
std::string Terminated(const std::string& statement);

// Formats the location of a failing statement: `path:line` or `path:line:column`
// when the server gave a position.
std::string FailureLocation(const std::string& path, const SqlStatement& st, int position);

// Runs `statements` of a transaction:false section one by one (no transaction
// of pgboot's), under `statement_timeout_ms` when > 0. On failure `*failed` is
// the index of the failing statement. A section that opened a transaction of
// its own and failed in it, or left one open, has it rolled back, so the
// caller can still record the outcome and release the lock.
Status RunStatementsOneByOne(Database& db, const std::vector<SqlStatement>& statements,
                             int64_t statement_timeout_ms, size_t* failed);

}  // namespace pgboot
