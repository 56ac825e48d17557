// Operator commands that rewrite history on purpose: repair, baseline, and what rollback shares.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "clock.h"
#include "config.h"
#include "database.h"
#include "migration_files.h"
#include "plan.h"

namespace pgboot {

// Shared by rollback, repair and baseline. ----------------------------------

// Under the lock, a `failed` or `running` row means a transaction:false
// migration stopped part-way: Validation (exit 6) naming them, telling the
// operator to fix the database and run `repair`. Ok when there is none.
Status RefuseUnfinished(const std::vector<HistoryRow>& rows, const std::string& command);

// The file of canonical `version` in `files` (sorted, as LoadMigrations returns
// them), or null.
const Migration* FindMigration(const std::vector<Migration>& files, const std::string& version);

// `parts` joined by `sep`, for messages that name several versions.
std::string Join(const std::vector<std::string>& parts, const std::string& sep);

// One change `repair` makes.
struct RepairAction {
  enum Kind { kRealign, kDelete } kind = kRealign;
  const HistoryRow* row = nullptr;
  const Migration* file = nullptr;  // null when a deleted row's file is gone
};

// Pure: realign the checksum (and name) of every applied row whose file
// differs; delete every `failed` or `running` row. Ascending by version.
std::vector<RepairAction> PlanRepair(const std::vector<Migration>& files,
                                     const std::vector<HistoryRow>& history);

// One line saying what `action` does.
std::string DescribeRepair(const RepairAction& action);

// `repair`: without `yes` prints the plan and exits 1 (0 when there is nothing
// to repair); with it, applies the plan under the lock in one transaction, one
// `repaired` audit row per change with the old and new values.
Status Repair(Database& db, const Config& cfg, const std::vector<Migration>& files, bool yes,
              Clock& clock);

// Pure: the files <= `version` that have no history row. Usage (exit 2) when
// `version` names no migration file; Validation (exit 6) when history has rows
// and not `force`, or when a row is `failed`/`running` (repair first).
Result<std::vector<const Migration*>> SelectBaseline(const std::vector<Migration>& files,
                                                     const std::vector<HistoryRow>& history,
                                                     const std::string& version, bool force);

// `baseline V`: records the selection as applied (execution_ms 0, one batch,
// a `baselined` audit row each) under the lock, without running anything.
Status Baseline(Database& db, const Config& cfg, const std::vector<Migration>& files,
                const std::string& version, bool force, Clock& clock);

}  // namespace pgboot
