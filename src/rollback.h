// `rollback`: select applied versions, check them all, run their down sections under the lock
// (docs/operations.md).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "clock.h"
#include "config.h"
#include "database.h"
#include "migration_files.h"
#include "plan.h"

namespace pgboot {

struct RollbackOptions {
  std::optional<int64_t> steps;   // the N highest applied versions
  std::optional<std::string> to;  // every applied version above this one
  bool batch = false;             // every version of the newest batch
  bool future = false;            // every applied version above the newest file
  bool all = false;               // every applied version (reset; no flag of its own)
  bool dry_run = false;
  bool allow_production = false;
};

// One version to roll back: its history row and the down section to run — the
// file's when the file has the recorded checksum and a down, else the stored
// copy (docs/reference.md, "Stored downs").
struct RollbackStep {
  const Migration* file = nullptr;  // null when the version has no file here
  const HistoryRow* row = nullptr;
  const Section* down = nullptr;  // the file's, or *stored
  std::shared_ptr<const Section> stored;
  std::string source;  // "file" or "stored"
  std::string path;    // for file:line: the file, or "stored down of version V"
};

// Whether PGBOOT_ENV names production (any case).
bool IsProduction(const std::string& env);

// Refuses (exit 6) a rollback when PGBOOT_ENV is `production` (any case) and
// --allow-production is not given. A dry run changes nothing and passes.
Status CheckProductionGuard(const Config& cfg, const RollbackOptions& options);

// Which applied versions `options` select, highest first. Every selected version
// is checked before anything runs: a version whose down is neither in a file
// with the recorded checksum nor stored is a Precondition error (exit 6)
// naming all of them. --future with nothing above the newest file is an empty
// selection. --steps N (and the default, N = 1) or --batch with fewer applied
// versions than asked is exit 6 too; --to V with nothing above V is an empty
// selection (already there). --to V naming neither an applied version nor a
// file is a Usage error (exit 2). Rows that are not `applied` are not selected
// (the caller refuses them under the lock).
Result<std::vector<RollbackStep>> SelectRollback(const std::vector<Migration>& files,
                                                 const std::vector<HistoryRow>& history,
                                                 const RollbackOptions& options);

// `rollback`: selects and checks without the lock, then takes the migration
// lock, re-reads and re-checks, and runs each down section highest first, each
// in its own transaction with the deletion of its history row and a
// `rolled_back` audit row (a transaction:false down runs statement by
// statement, then records). A failing down is exit 5 naming file:line.
Status Rollback(Database& db, const Config& cfg, const std::vector<Migration>& files,
                const RollbackOptions& options, Clock& clock);

}  // namespace pgboot
