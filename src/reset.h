// `reset`: development only — roll back every applied migration, then migrate again
// (docs/reference.md, "reset").
#pragma once

#include <vector>

#include "clock.h"
#include "config.h"
#include "database.h"
#include "migration_files.h"

namespace pgboot {

// Refused (exit 6) under PGBOOT_ENV=production, with no override, and before anything
// runs when a version to roll back has no down (file or stored). Without `yes` prints
// the plan and exits 1. With it: rollback of every applied version, highest first (downs
// as for `rollback`), then `migrate` of every file.
Status Reset(Database& db, const Config& cfg, const std::vector<Migration>& files, bool yes,
             Clock& clock);

// The production guard alone, so that it refuses before pgboot even waits for the database.
Status CheckResetGuard(const Config& cfg);

}  // namespace pgboot
