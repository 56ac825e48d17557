// Migrate's hooks: when the configured --before-migrate/--after-migrate commands run, and when they
// are refused (docs/reference.md, "Hooks").
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "config.h"
#include "database.h"
#include "hook_runner.h"
#include "status.h"

namespace pgboot {

// Runs the configured hook `command` of `kind` with `versions` as
// PGBOOT_PENDING_VERSIONS (RunHook in production, a recorder in unit tests).
using HookRunner = std::function<Status(HookKind kind, const std::string& command,
                                        const std::vector<std::string>& versions)>;

// Whether a hook is set for `kind` in `cfg` and `runner` runs hooks at all.
bool HookConfigured(const HookRunner& runner, const Config& cfg, HookKind kind);

// Exit 2 naming the way out when a hook is configured and `db` is in
// transaction lock mode: that mode holds the lock only inside each
// migration's transaction, so there is no "under the lock, before the first
// migration" to run a hook in. Not for a dry run, which runs no hooks.
Status RefuseHooks(Database& db, const Config& cfg, const HookRunner& runner, bool dry_run);

// Runs the hook of `kind` when configured (Ok when not). A failure's message
// says what it means for the migrations: none applied before, all of them
// still applied after.
Status RunMigrateHook(const HookRunner& runner, const Config& cfg, HookKind kind,
                      const std::vector<std::string>& versions);

}  // namespace pgboot
