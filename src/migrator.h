// Migrator: plan and apply pending migrations under the database-wide advisory lock
// (docs/migrations.md).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "clock.h"
#include "config.h"
#include "database.h"
#include "history.h"
#include "migrate_hooks.h"
#include "migration_files.h"
#include "migration_lock.h"
#include "plan.h"

namespace pgboot {

struct MigrateOptions {
  std::string target;    // apply up to and including this version; empty = all
  bool dry_run = false;  // print the SQL that would run; no lock, no writes
  // Runs cfg.before_migrate/after_migrate (docs/reference.md, "Hooks"); empty:
  // no hooks run (reset's migrate).
  HookRunner run_hook;
};

// `migrate`: connect is done by the caller; this reads history, validates, takes
// the lock only when something is pending, creates the tables, re-reads and
// re-validates under the lock, and applies what is still pending. With
// `run_hook`, the before-migrate hook runs under the lock when there is work
// (then history is read and validated again) and the after-migrate hook once
// everything committed, before the lock is released; configured hooks are
// refused in transaction lock mode.
Status Migrate(Database& db, const Config& cfg, const std::vector<Migration>& files,
               const MigrateOptions& options, Clock& clock);

// Opens a new session under a fresh --wait-timeout (what main's Connect does).
using Reconnect = std::function<Result<std::unique_ptr<Database>>()>;

// Lost connections in a row, with no progress in the history between them,
// after which MigrateReconnecting stops reconnecting.
inline constexpr int kLostWithoutProgress = 3;

// Migrate on `db`; when the connection is lost (server restart, network,
// pooler), logs migrate.reconnect, opens a new session with `reconnect` and
// starts again from reading the history: a session lock is taken again and a
// `running` row resumed, a rolled-back transaction retried. A reconnect that
// fails ends it (past --wait-timeout: exit 3), and so does the
// kLostWithoutProgress-th lost connection in a row after which the history
// shows no progress (docs/reference.md, "After a crash"): a statement that
// ends the server's session every time must not loop. Defined in
// migrate_reconnect.cc.
Status MigrateReconnecting(std::unique_ptr<Database> db, const Reconnect& reconnect,
                           const Config& cfg, const std::vector<Migration>& files,
                           const MigrateOptions& options, Clock& clock);

// Checks that `target` (when not empty) names a migration file: a usage error
// (exit 2) otherwise, before anything waits for the database.
Status CheckTarget(const std::vector<Migration>& files, const std::string& target,
                   const std::string& dir);

// `statement` followed by its ';' and a newline, as --dry-run prints it.
std::string Terminated(std::string_view statement);
// What Terminated appends: ";\n", or "\n;\n" after a trailing -- comment.
std::string Terminator(std::string_view statement);

}  // namespace pgboot
