#include "transaction_migrate.h"

#include "log.h"
#include "plan.h"
#include "run_stats.h"
#include "section_runner.h"
#include "transaction_lock.h"
#include "version.h"

namespace pgboot {
namespace {

// Why the re-check under the lock says stop for `m`; empty: go on.
Status Verdict(const History::LockedView& v, const Migration& m, bool out_of_order) {
  const std::string label = VersionLabel(m.version, m.name);
  auto unfinished = [](const std::string& version, const std::string& status) {
    if (status == "running") {
      return RefuseInTransactionMode("resuming the interrupted migration " + version +
                                     " (its history row is 'running')");
    }
    return Status::Precondition("validation failed: migration " + version + " is recorded as " +
                                status + "; fix the database, then run `pgboot repair`");
  };
  if (!v.status.empty() && v.status != "applied") return unfinished(m.version, v.status);
  if (v.status == "applied") {
    return Status::Precondition("validation failed: migration " + label +
                                " was applied with checksum " + v.checksum +
                                " but its file now has " + m.checksum + " (drift)");
  }
  if (!v.unfinished_version.empty()) return unfinished(v.unfinished_version, v.unfinished_status);
  if (!out_of_order && !v.newest_applied.empty() &&
      CompareVersions(v.newest_applied, m.version) > 0) {
    return Status::Precondition("validation failed: pending migration " + label +
                                " is below the newest applied version " + v.newest_applied +
                                " (--out-of-order applies it)");
  }
  return Status::Ok();
}

class TransactionApplier {
 public:
  TransactionApplier(Database& db, const Config& cfg, History& history, Clock& clock)
      : cfg_(cfg),
        history_(history),
        lock_(db, history, cfg, clock),
        runner_(db, history, clock, UpRunnerOptions(cfg)) {}

  // Creates (or upgrades) pgboot's tables under the lock, in a transaction of their own.
  Status Tables() {
    if (Status s = lock_.Open(); !s.ok()) return s;
    if (Status s = history_.Create(); !s.ok()) {
      lock_.Rollback();
      return s;
    }
    return lock_.Commit("creating the history tables");
  }

  Status Apply(const Migration& m, bool last) {
    Result<bool> go = OpenFor(m);
    if (!go.ok()) return go.status();
    if (!*go) return Status::Ok();
    SectionRun run = Run(m);
    return runner_.Ticked(run, [&] {
      return runner_.RunInTransaction({run}, /*synchronous_commit=*/last,
                                      [&]() -> Result<bool> { return OpenFor(m); });
    });
  }

  // --single-transaction: the lock once, the tables, a fresh plan, everything.
  Status ApplyAll(const std::vector<Migration>& files, const std::string& target) {
    if (Status s = lock_.Open(); !s.ok()) return s;
    Result<std::vector<const Migration*>> todo = PlanUnderLock(files, target);
    if (!todo.ok()) {
      lock_.Rollback();
      return todo.status();
    }
    std::vector<SectionRun> runs;
    for (const Migration* m : *todo) {
      LogInfo("migration.start",
              {{"version", m->version}, {"name", m->name}, {"transaction", true}});
      runs.push_back(Run(*m));
    }
    if (runs.empty()) {
      lock_.Rollback();
      LogInfo("migrate.nothing_to_do", {{"pending", 0}, {"reason", "applied by another run"}});
      return Status::Ok();
    }
    // A retry (--ddl-lock-timeout) plans again under the new lock.
    const int64_t start = runner_.clock().NowMs();
    Status done =
        runner_.RunInTransaction(runs, /*synchronous_commit=*/true, [&]() -> Result<bool> {
          if (Status s = lock_.Open(); !s.ok()) return s;
          Result<std::vector<const Migration*>> again = PlanUnderLock(files, target);
          if (again.ok() && again->size() == runs.size()) return true;
          lock_.Rollback();
          if (!again.ok()) return again.status();
          return Status::Precondition(
              "the pending migrations changed while --single-transaction "
              "waited to retry; run migrate again");
        });
    if (!done.ok()) return done;
    for (const SectionRun& run : runs) NoteApplied(run.version, runner_.clock().NowMs() - start);
    return done;
  }

  // Nothing pending, but a running or failed row was seen without the lock:
  // wait for the lock (a live session-mode run holds it), then judge the row.
  Status Unfinished() {
    if (Status s = lock_.Open(); !s.ok()) return s;
    auto view = history_.ReadUnderLock("");
    lock_.Rollback();
    if (!view.ok()) return view.status();
    if (view->unfinished_status == "running") {
      return RefuseInTransactionMode("resuming the interrupted migration " +
                                     view->unfinished_version + " (its history row is 'running')");
    }
    if (!view->unfinished_status.empty()) {
      return Status::Precondition("validation failed: migration " + view->unfinished_version +
                                  " is recorded as " + view->unfinished_status +
                                  "; fix the database, then run `pgboot repair`");
    }
    LogInfo("migrate.nothing_to_do", {{"pending", 0}, {"reason", "finished by another run"}});
    return Status::Ok();
  }

  int64_t batch() const { return batch_; }
  int64_t applied() const { return applied_; }

 private:
  // Opens m's locked transaction and re-checks: true to run it (the
  // transaction stays open), false when another runner applied it (rolled back).
  Result<bool> OpenFor(const Migration& m) {
    if (Status s = lock_.Open(); !s.ok()) return s;
    auto view = history_.ReadUnderLock(m.version);
    Status stop = view.ok() ? Status::Ok() : view.status();
    if (stop.ok() && view->status == "applied" && view->checksum == m.checksum) {
      lock_.Rollback();
      LogInfo("migration.skipped",
              {{"version", m.version}, {"name", m.name}, {"reason", "applied by another run"}});
      NoteNoLongerPending(m.version);
      return false;
    }
    if (stop.ok()) stop = Verdict(*view, m, cfg_.out_of_order);
    if (stop.ok()) stop = ChooseBatch(view->max_batch);
    if (!stop.ok()) {
      lock_.Rollback();
      return stop;
    }
    ++applied_;
    return true;
  }

  // The run's batch while it is still the highest recorded, else max + 1
  // (over the audit log too, as NextBatch counts).
  Status ChooseBatch(int64_t max_recorded) {
    if (batch_ != 0 && max_recorded <= batch_) return Status::Ok();
    auto next = history_.NextBatch();
    if (!next.ok()) return next.status();
    batch_ = *next;
    return Status::Ok();
  }

  Result<std::vector<const Migration*>> PlanUnderLock(const std::vector<Migration>& files,
                                                      const std::string& target) {
    if (Status s = history_.Create(); !s.ok()) return s;
    auto rows = history_.Read();
    if (!rows.ok()) return rows.status();
    Plan plan = BuildPlan(files, *rows, cfg_.out_of_order);
    NotePlan(plan);
    for (const HistoryRow& r : *rows) {
      if (r.status == "running") {
        return RefuseInTransactionMode("resuming the interrupted migration " + r.version +
                                       " (its history row is 'running')");
      }
    }
    std::string errors;
    for (const Finding& f : plan.findings) {
      if (f.error) errors += (errors.empty() ? "" : "; ") + f.message;
    }
    if (!errors.empty()) return Status::Precondition("validation failed: " + errors);
    std::vector<const Migration*> todo;
    for (const Migration* m : plan.pending) {
      if (target.empty() || CompareVersions(m->version, target) <= 0) todo.push_back(m);
    }
    auto next = history_.NextBatch();
    if (!next.ok()) return next.status();
    batch_ = *next;
    applied_ = static_cast<int64_t>(todo.size());
    return todo;
  }

  SectionRun Run(const Migration& m) const { return UpRun(history_, m, batch_); }

  const Config& cfg_;
  History& history_;
  TransactionLock lock_;
  SectionRunner runner_;
  int64_t batch_ = 0;
  int64_t applied_ = 0;
};

}  // namespace

Status RefuseNonTransactional(const std::vector<const Migration*>& todo, const char* what) {
  for (const Migration* m : todo) {
    if (!m->up.transactional) {
      return RefuseInTransactionMode(std::string(what) + " " + m->up_path +
                                     " (its section is transaction:false)");
    }
  }
  return Status::Ok();
}

Status MigrateInTransactionMode(Database& db, const Config& cfg, History& history,
                                const std::vector<Migration>& files,
                                const std::vector<const Migration*>& todo,
                                const std::string& target, Clock& clock) {
  if (Status s = RefuseNonTransactional(todo, "running"); !s.ok()) return s;
  const int64_t start = clock.NowMs();
  TransactionApplier applier(db, cfg, history, clock);
  Status s;
  if (cfg.single_transaction) {
    s = applier.ApplyAll(files, target);
  } else if (todo.empty()) {
    return applier.Unfinished();
  } else {
    s = applier.Tables();
    for (size_t i = 0; s.ok() && i < todo.size(); ++i)
      s = applier.Apply(*todo[i], i + 1 == todo.size());
  }
  if (!s.ok()) return s;
  LogInfo("migrate.done", {{"applied", applier.applied()},
                           {"batch", applier.batch()},
                           {"ms", clock.NowMs() - start},
                           {"lock_mode", "transaction"}});
  return Status::Ok();
}

}  // namespace pgboot
