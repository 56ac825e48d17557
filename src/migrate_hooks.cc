#include "migrate_hooks.h"

#include "transaction_lock.h"

namespace pgboot {
namespace {

const std::string& Command(const Config& cfg, HookKind kind) {
  return kind == HookKind::kBeforeMigrate ? cfg.before_migrate : cfg.after_migrate;
}

}  // namespace

bool HookConfigured(const HookRunner& runner, const Config& cfg, HookKind kind) {
  return runner && !Command(cfg, kind).empty();
}

Status RefuseHooks(Database& db, const Config& cfg, const HookRunner& runner, bool dry_run) {
  if (dry_run || db.lock_mode() != LockMode::kTransaction) return Status::Ok();
  for (HookKind kind : {HookKind::kBeforeMigrate, HookKind::kAfterMigrate}) {
    if (HookConfigured(runner, cfg, kind)) {
      return RefuseInTransactionMode(std::string("the ") + HookFlag(kind) + " hook");
    }
  }
  return Status::Ok();
}

Status RunMigrateHook(const HookRunner& runner, const Config& cfg, HookKind kind,
                      const std::vector<std::string>& versions) {
  if (!HookConfigured(runner, cfg, kind)) return Status::Ok();
  Status s = runner(kind, Command(cfg, kind), versions);
  if (s.ok() || s.is_signal()) return s;
  return s.WithMessage(s.message() + (kind == HookKind::kBeforeMigrate
                                          ? "; nothing was applied"
                                          : "; the migrations stay applied"));
}

}  // namespace pgboot
