// migrate in transaction lock mode: one locked transaction per migration, re-checked under the lock
// (docs/reference.md, "Lock modes").
#pragma once

#include <string>
#include <vector>

#include "clock.h"
#include "config.h"
#include "database.h"
#include "history.h"
#include "migration_files.h"

namespace pgboot {

// What transaction mode cannot run, refused before anything runs (exit 2
// naming the way out): a transaction:false section in `todo`.
Status RefuseNonTransactional(const std::vector<const Migration*>& todo, const char* what);

// Applies `todo` (validated without the lock by the caller) in transaction
// lock mode: the tables are created under the lock first; then each
// migration runs in its own transaction that holds the lock and re-reads, in
// a later statement, that version's row and the highest applied version:
// applied with the same checksum is skipped; another status, another
// checksum, or a higher version applied without --out-of-order is exit 6
// (a `running` row left by a session-mode run: exit 2, only session mode
// resumes it); else the section commits with its history and audit rows.
// The batch is chosen in each locked transaction: the run's while it is still
// the highest recorded, else max + 1. --single-transaction takes the lock
// once for everything.
Status MigrateInTransactionMode(Database& db, const Config& cfg, History& history,
                                const std::vector<Migration>& files,
                                const std::vector<const Migration*>& todo,
                                const std::string& target, Clock& clock);

}  // namespace pgboot
