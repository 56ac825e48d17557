#include "reset.h"

#include "history.h"
#include "log.h"
#include "migrator.h"
#include "operator.h"
#include "rollback.h"
#include "transaction_lock.h"
#include "transaction_migrate.h"

namespace pgboot {

Status CheckResetGuard(const Config& cfg) {
  if (!IsProduction(cfg.env)) return Status::Ok();
  // No --allow-production here: a reset drops every table the migrations made.
  return Status::Precondition("reset refused: PGBOOT_ENV=" + cfg.env +
                              "; reset is for development databases and has no override");
}

Status Reset(Database& db, const Config& cfg, const std::vector<Migration>& files, bool yes,
             Clock& clock) {
  Status s = CheckResetGuard(cfg);
  if (!s.ok()) return s;
  History history(db, cfg.history_table);
  auto rows = history.Read();
  if (!rows.ok()) return rows.status();
  s = RefuseUnfinished(*rows, "reset");
  if (!s.ok()) return s;
  RollbackOptions all;
  all.all = true;
  all.allow_production = true;  // CheckResetGuard decided
  auto steps = SelectRollback(files, *rows, all);
  if (!steps.ok()) {
    return steps.status().WithMessage("reset refused (" + steps.status().message() + ")");
  }
  if (!yes) {
    std::string out =
        "reset would roll back " + std::to_string(steps->size()) + " version(s), highest first:\n";
    for (const RollbackStep& step : *steps) {
      out += "  " + VersionLabel(step.row->version, step.row->name) + " (down from " +
             (step.source == "file" ? step.path : std::string("the stored copy")) + ")\n";
    }
    out += "then migrate " + std::to_string(files.size()) + " migration file(s) from " +
           cfg.migrations_dir + "\nnothing was changed; rerun with --yes to do it\n";
    PrintResult(out);
    return Status::Findings("reset needs --yes");
  }
  if (db.lock_mode() == LockMode::kTransaction) {
    // Both halves are refused before either runs (docs/reference.md, "Lock modes").
    for (const RollbackStep& step : *steps) {
      if (!step.down->transactional) {
        return RefuseInTransactionMode("reset: rolling back " +
                                       VersionLabel(step.row->version, step.row->name) +
                                       " (its down section is transaction:false)");
      }
    }
    std::vector<const Migration*> ups;
    for (const Migration& m : files) ups.push_back(&m);
    if (Status r = RefuseNonTransactional(ups, "reset: running"); !r.ok()) return r;
  }
  if (!steps->empty()) {
    s = Rollback(db, cfg, files, all, clock);
    if (!s.ok()) return s;
  }
  s = Migrate(db, cfg, files, MigrateOptions{}, clock);
  if (!s.ok()) return s;
  LogInfo("reset.done", {{"rolled_back", static_cast<int64_t>(steps->size())},
                         {"migrations", static_cast<int64_t>(files.size())}});
  return Status::Ok();
}

}  // namespace pgboot
