// Plan: migration files + history rows -> each version's state, what is pending, what is wrong
// (docs/reference.md, "Validation").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "migration_files.h"

namespace pgboot {

// One row of the history table (docs/reference.md, "History table").
struct HistoryRow {
  std::string version;
  std::string name;
  std::string checksum;
  std::string status;      // applied, running or failed
  std::string applied_at;  // ISO 8601 UTC
  std::optional<int64_t> execution_ms;
  std::string applied_by;
  int64_t batch = 0;
  // The down section as applied (docs/reference.md, "Stored downs"): nullopt when the
  // file had none or an older pgboot wrote the row; "" for an explicit no-op down.
  std::optional<std::string> down_sql;
  std::optional<std::string> down_options;  // nullopt when none
  // transaction:false rows: statements completed so far; NULL (nullopt) for
  // other rows and for rows written by pgboot 0.1.
  std::optional<int64_t> statements_done;
};

// Whether `r` stores exactly the down section (text and options) that `m` has now.
bool StoredDownMatches(const Migration& m, const HistoryRow& r);

// What `rollback` of applied row `r` would run (docs/reference.md, "Stored downs"):
// "file" (a file with the recorded checksum and a down with statements), "stored" (no such
// file, and a stored down with statements), "empty" (the down it would use is an explicit
// no-op), "none" (it would refuse). `m` is the row's file, or nullptr.
const char* RollbackSource(const Migration* m, const HistoryRow& r);

// "3 (add_orders)", or "3" when the name is unknown: how messages name a version.
std::string VersionLabel(const std::string& version, const std::string& name);

enum class MigrationState { kApplied, kPending, kRunning, kFailed, kMissing, kChanged, kFuture };
const char* StateName(MigrationState s);

struct PlanRow {
  std::string version;
  std::string name;
  MigrationState state = MigrationState::kPending;
  const Migration* file = nullptr;  // null for missing/future rows
  const HistoryRow* row = nullptr;  // null for pending rows
  std::string checksum;             // the file's, else the recorded one
};

// A validation finding. Errors fail `validate` (exit 6) and block `migrate`;
// warnings (future versions) are only logged.
struct Finding {
  std::string version;
  std::string message;
  bool error = true;
  // running/failed rows: before the lock they mean "in progress elsewhere" (wait
  // for the lock); under the lock they are errors until `repair`.
  bool unfinished = false;
};

struct Plan {
  std::vector<PlanRow> rows;              // every version, ascending
  std::vector<const Migration*> pending;  // to apply, ascending
  std::vector<Finding> findings;
  std::string newest_applied;  // empty when nothing is applied
  int64_t applied_count = 0;   // versions recorded as applied in the database

  bool HasUnfinished() const;
};

// Compares files with history. `out_of_order` allows pending versions below the
// newest applied one. Both inputs must outlive the plan (it points into them).
Plan BuildPlan(const std::vector<Migration>& files, const std::vector<HistoryRow>& history,
               bool out_of_order);

}  // namespace pgboot
