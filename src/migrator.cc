#include "migrator.h"

#include <algorithm>
#include <cmath>

#include "lock_mode.h"
#include "log.h"
#include "migrate_dry_run.h"
#include "migration_lock.h"
#include "resume.h"
#include "run_stats.h"
#include "section_runner.h"
#include "transaction_migrate.h"

namespace pgboot {
namespace {

// Logs every validation finding; returns exit 6 when one is an error. Unfinished
// (running/failed) rows count only when `count_unfinished` (under the lock).
Status ReportFindings(const Plan& plan, bool count_unfinished) {
  std::string errors;
  for (const Finding& f : plan.findings) {
    if (!f.error) {
      LogWarn("validate.warning", {{"version", f.version}, {"reason", f.message}});
    } else if (count_unfinished || !f.unfinished) {
      LogError("validate.error", {{"version", f.version}, {"reason", f.message}});
      errors += (errors.empty() ? "" : "; ") + f.message;
    }
  }
  if (errors.empty()) return Status::Ok();
  return Status::Precondition("validation failed: " + errors);
}

// The pending migrations up to and including `target` (all when empty).
std::vector<const Migration*> UpTo(const std::vector<const Migration*>& pending,
                                   const std::string& target) {
  std::vector<const Migration*> out;
  for (const Migration* m : pending) {
    if (target.empty() || CompareVersions(m->version, target) <= 0) out.push_back(m);
  }
  return out;
}

// Runs up sections through the SectionRunner: one transaction per migration
// (or one for all with --single-transaction), transaction:false ones statement
// by statement between a `running` and an `applied` row.
class Applier {
 public:
  Applier(Database& db, const Config& cfg, History& history, Clock& clock, int64_t batch)
      : history_(history), batch_(batch), runner_(db, history, clock, UpRunnerOptions(cfg)) {}

  // Applies one migration. `last` marks the run's final commit, the only one
  // that must wait for the WAL flush: each migration stays atomic, so a server
  // crash can only lose whole migrations with their history rows, which are
  // then simply pending again.
  Status Apply(const Migration& m, bool last, const Resumable* resume = nullptr) {
    SectionRun run = Run(m);
    return runner_.Ticked(run, [&] {
      if (!m.up.transactional) return ApplyNonTransactional(m, run, resume);
      return runner_.RunInTransaction({run}, /*synchronous_commit=*/last);
    });
  }

  // All of `ms` in one transaction (--single-transaction); --ddl-lock-timeout
  // retries it from its start, as it retries each migration's own transaction.
  Status ApplyAllInOne(const std::vector<const Migration*>& ms, Clock& clock) {
    std::vector<SectionRun> runs;
    for (const Migration* m : ms) {
      LogInfo("migration.start",
              {{"version", m->version}, {"name", m->name}, {"transaction", true}});
      runs.push_back(Run(*m));
    }
    const int64_t start = clock.NowMs();
    Status s = runner_.RunInTransaction(runs, /*synchronous_commit=*/true);
    if (!s.ok()) return s;
    for (const Migration* m : ms) {
      const int64_t elapsed = clock.NowMs() - start;  // the one transaction's, for each
      LogInfo("migration.applied", {{"version", m->version}, {"name", m->name}, {"ms", elapsed}});
      NoteApplied(m->version, elapsed);
    }
    return s;
  }

 private:
  SectionRun Run(const Migration& m) const { return UpRun(history_, m, batch_); }

  // transaction:false: a committed `running` row first (or the row of the
  // run it resumes), then each statement on its own with statements_done
  // recorded after it, then `applied`. An SQL error leaves `failed` until
  // `repair`; a signal or a lost connection leave `running`, to be resumed.
  Status ApplyNonTransactional(const Migration& m, const SectionRun& run, const Resumable* resume) {
    SectionSteps steps;
    int64_t batch = batch_;
    if (resume) {
      batch = resume->row->batch;
      steps.first = resume->point.next;
      steps.prelude = resume->point.prelude;
      steps.before = [&] { return ResumeAt(m, steps.first); };
    } else {
      auto ins = db().Exec(history_.RecordRunning(m, batch_));
      if (!ins.ok()) {
        return HistoryError(
            ins.status(), "recording migration " + VersionLabel(m.version, m.name) + " as running");
      }
      if (ins->affected != 1) return LockReleased(m, 0);
    }
    bool bookkeeping = false;  // the error is pgboot's own write, not a statement's
    steps.after = [&](size_t done) -> Status {
      auto r = db().Exec(history_.MarkStatementsDone(m.version, static_cast<int64_t>(done)));
      bookkeeping = !r.ok() || r->affected != 1;
      if (!r.ok()) return HistoryError(r.status(), "recording the progress of " + m.up_path);
      return r->affected == 1 ? Status::Ok() : LockReleased(m, done);
    };
    const int64_t start = clock().NowMs();
    size_t failed = 0;
    Status s = runner_.RunStatementByStatement(run, &failed, steps);
    if (!s.ok()) {
      if (bookkeeping || s.kind() == StatusKind::kConnectionLost ||
          s.kind() == StatusKind::kInternal) {
        return s;
      }
      if (s.is_signal()) return Interrupted(run, failed, s);
      return runner_.Failed({&run, failed, true, s}, {history_.MarkFailed(m.version)});
    }
    // Its verify checks (docs/reference.md, "Verify sections") run after its
    // statements, resumed or not, before `applied`; a failing one marks it failed.
    s = runner_.RunChecksApart(run, {history_.MarkFailed(m.version)});
    if (!s.ok()) return s;
    return MarkApplied(m, clock().NowMs() - start, batch, m.up.statements.size());
  }

  // Logs migration.resume and drops the invalid leftover of an interrupted
  // CREATE INDEX CONCURRENTLY that statement `next` builds again.
  Status ResumeAt(const Migration& m, size_t next) {
    LogInfo(
        "migration.resume",
        {{"version", m.version}, {"name", m.name}, {"statement", static_cast<int64_t>(next + 1)}});
    if (next >= m.up.statements.size()) return Status::Ok();
    auto dropped = DropInvalidIndex(db(), m.up.statements[next].text);
    if (!dropped.ok()) return dropped.status();
    if (!dropped->empty()) {
      LogInfo("migration.resume", {{"version", m.version},
                                   {"name", m.name},
                                   {"statement", static_cast<int64_t>(next + 1)},
                                   {"dropped_index", *dropped}});
    }
    return Status::Ok();
  }

  // A signal cancelled statement `index`: the row stays `running` with
  // statements_done where it was, and the next run resumes it.
  Status Interrupted(const SectionRun& run, size_t index, const Status& s) {
    const std::vector<SqlStatement>& st = run.section->statements;
    LogWarn("migration.interrupted",
            {{"version", run.version},
             {"name", run.name},
             {"file", index < st.size() ? FailureLocation(run.path, st[index], 0) : run.path},
             {"statement", static_cast<int64_t>(index + 1)},
             {"reason", s.message() + "; the row stays running and the next run resumes it"}});
    return s;
  }

  // `applied` and its audit row in one transaction, only while this session
  // still holds the lock.
  Status MarkApplied(const Migration& m, int64_t ms, int64_t batch, size_t statements) {
    const std::string what = "migration " + VersionLabel(m.version, m.name) +
                             " ran but could not be marked applied (its row stays 'running')";
    auto begin = db().Exec("BEGIN");
    if (!begin.ok()) return HistoryError(begin.status(), what);
    auto u = db().Exec(history_.MarkApplied(m.version, ms));
    if (!u.ok() || u->affected != 1) {
      (void)db().Exec("ROLLBACK");
      return u.ok() ? LockReleased(m, statements) : HistoryError(u.status(), what);
    }
    AuditEntry audit = AppliedAudit(m, SqlValue::Int(ms), batch);
    audit.fields.push_back({"transaction", SqlValue::Bool(false)});
    Status s = db().ExecSequence({history_.Audit(audit), history_.Notify(), "COMMIT"}, nullptr);
    if (s.ok()) return s;
    (void)db().Exec("ROLLBACK");
    return HistoryError(s, what);
  }

  // No history row written: the section released pgboot's lock (statement
  // `done`, 1-based; 0: before its first), and another runner may own the
  // run now. Stop at once, exit 1 (docs/reference.md, "Resume").
  static Status LockReleased(const Migration& m, size_t done) {
    const std::string who = done == 0 ? "an earlier migration of this run"
                                      : m.up_path + " statement " + std::to_string(done);
    return Status::Internal(who +
                            " released the migration lock (DISCARD ALL or "
                            "pg_advisory_unlock_all() in a migration); migration " +
                            VersionLabel(m.version, m.name) +
                            " stops here and its row stays running");
  }

  Database& db() { return runner_.db(); }
  Clock& clock() { return runner_.clock(); }

  History& history_;
  int64_t batch_;
  SectionRunner runner_;
};

}  // namespace

Status CheckTarget(const std::vector<Migration>& files, const std::string& target,
                   const std::string& dir) {
  if (target.empty()) return Status::Ok();
  const bool digits = IsVersionText(target);
  const std::string canonical = digits ? CanonicalVersion(target) : "";
  bool found = digits && std::any_of(files.begin(), files.end(),
                                     [&](const Migration& m) { return m.version == canonical; });
  if (!found) return Status::Usage("--target " + target + " names no migration file in " + dir);
  return Status::Ok();
}

std::string Terminator(std::string_view statement) {
  // A statement may end in a -- comment (the lexer keeps it): then the ';'
  // goes on a line of its own, or piping the output into psql would merge
  // this statement with the next.
  const size_t last_line = statement.rfind('\n');
  const bool comment = statement.find("--", last_line == std::string_view::npos ? 0 : last_line) !=
                       std::string_view::npos;
  return comment ? "\n;\n" : ";\n";
}

std::string Terminated(std::string_view statement) {
  return std::string(statement) + Terminator(statement);
}

namespace {

// Under the lock: running rows are resumed (session mode only), every other
// finding that is an error blocks.
Result<std::vector<Resumable>> CheckUnderLock(Database& db, Plan& plan, const std::string& target) {
  auto resumables = FindResumables(plan, target);
  if (!resumables.ok()) return resumables.status();
  if (!resumables->empty() && db.lock_mode() == LockMode::kTransaction) {
    return Status::Usage("version " + resumables->front().migration->version +
                         " is marked running: only session lock mode can resume it; " +
                         kSessionModeWayOut);
  }
  Status s = ReportFindings(plan, /*count_unfinished=*/true);
  if (!s.ok()) return s;
  return resumables;
}

Status ApplyAll(Applier& applier, const Config& cfg, const std::vector<Resumable>& resumables,
                const std::vector<const Migration*>& todo, Clock& clock) {
  for (size_t i = 0; i < resumables.size(); ++i) {
    const bool last = todo.empty() && i + 1 == resumables.size();
    Status s = applier.Apply(*resumables[i].migration, last, &resumables[i]);
    if (!s.ok()) return s;
  }
  if (cfg.single_transaction && !todo.empty()) return applier.ApplyAllInOne(todo, clock);
  for (size_t i = 0; i < todo.size(); ++i) {
    Status s = applier.Apply(*todo[i], i + 1 == todo.size());
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

// What is left to do under the lock: running rows to resume, then pending
// versions up to the target.
struct Work {
  Plan plan;
  std::vector<Resumable> resumables;
  std::vector<const Migration*> todo;
  bool Empty() const { return todo.empty() && resumables.empty(); }
  // In the order they run, as PGBOOT_PENDING_VERSIONS lists them.
  std::vector<std::string> Versions() const {
    std::vector<std::string> out;
    for (const Resumable& r : resumables) out.push_back(r.migration->version);
    for (const Migration* m : todo) out.push_back(m->version);
    return out;
  }
};

Result<Work> WorkUnderLock(Database& db, const std::vector<Migration>& files,
                           const std::vector<HistoryRow>& rows, const Config& cfg,
                           const std::string& target) {
  Work w{BuildPlan(files, rows, cfg.out_of_order), {}, {}};
  NotePlan(w.plan);
  auto resumables = CheckUnderLock(db, w.plan, target);
  if (!resumables.ok()) return resumables.status();
  w.resumables = std::move(*resumables);
  w.todo = UpTo(w.plan.pending, target);
  return w;
}

Status NothingLeft(const Plan& plan) {
  LogInfo("migrate.nothing_to_do",
          {{"applied", plan.applied_count}, {"pending", 0}, {"reason", "applied by another run"}});
  return Status::Ok();
}

// Session lock mode: under the lock, the tables are created and history is
// read and validated again; the before-migrate hook runs when there is work
// (and history is read again after it), the after-migrate hook once
// everything committed, while the lock is still held.
Status MigrateUnderSessionLock(Database& db, const Config& cfg, History& history,
                               const std::vector<Migration>& files, const std::string& target,
                               const MigrateOptions& options, Clock& clock) {
  MigrationLock lock(db, history, cfg, clock);
  auto rows = LockAndReadHistory(lock, history);
  if (!rows.ok()) return rows.status();
  auto work = WorkUnderLock(db, files, *rows, cfg, target);
  if (!work.ok()) return work.status();
  if (work->Empty()) return NothingLeft(work->plan);
  if (HookConfigured(options.run_hook, cfg, HookKind::kBeforeMigrate)) {
    Status h = RunMigrateHook(options.run_hook, cfg, HookKind::kBeforeMigrate, work->Versions());
    if (!h.ok()) return h;
    // The hook's backup must be the state being migrated: whatever changed
    // while it ran is read and validated again, on the same session.
    rows = history.Read();
    if (!rows.ok()) return rows.status();
    work = WorkUnderLock(db, files, *rows, cfg, target);
    if (!work.ok()) return work.status();
    if (work->Empty()) return NothingLeft(work->plan);
  }
  auto batch = history.NextBatch();
  if (!batch.ok()) return batch.status();

  const int64_t start = clock.NowMs();
  Applier applier(db, cfg, history, clock, *batch);
  Status s = ApplyAll(applier, cfg, work->resumables, work->todo, clock);
  if (!s.ok()) return s;
  const std::vector<std::string> applied = work->Versions();
  LogInfo("migrate.done", {{"applied", static_cast<int64_t>(applied.size())},
                           {"batch", *batch},
                           {"ms", clock.NowMs() - start}});
  return RunMigrateHook(options.run_hook, cfg, HookKind::kAfterMigrate, applied);
}

}  // namespace

Status Migrate(Database& db, const Config& cfg, const std::vector<Migration>& files,
               const MigrateOptions& options, Clock& clock) {
  Status checked = CheckTarget(files, options.target, cfg.migrations_dir);
  if (!checked.ok()) return checked;
  const std::string target = options.target.empty() ? "" : CanonicalVersion(options.target);
  // Whether or not anything is pending: a configuration that cannot work
  // fails on its first run, not on the first day a migration is added.
  if (Status refused = RefuseHooks(db, cfg, options.run_hook, options.dry_run); !refused.ok()) {
    return refused;
  }
  History history(db, cfg.history_table);

  auto rows = history.Read();
  if (!rows.ok()) return rows.status();
  Plan plan = BuildPlan(files, *rows, cfg.out_of_order);
  NotePlan(plan);
  if (options.dry_run) {
    // No lock: a running row is printed from where a resume would go on.
    auto resumables = FindResumables(plan, target);
    if (!resumables.ok()) return resumables.status();
    Status v = ReportFindings(plan, /*count_unfinished=*/true);
    if (!v.ok()) return v;
    return DryRun(*resumables, UpTo(plan.pending, target));
  }
  Status v = ReportFindings(plan, /*count_unfinished=*/false);
  if (!v.ok()) return v;
  if (!target.empty() && !plan.newest_applied.empty() && !plan.HasUnfinished() &&
      CompareVersions(target, plan.newest_applied) <= 0) {
    LogInfo("migrate.nothing_to_do",
            {{"reason", "target " + target + " is at or below the newest applied version " +
                            plan.newest_applied}});
    return Status::Ok();
  }
  std::vector<const Migration*> todo = UpTo(plan.pending, target);
  if (todo.empty() && !plan.HasUnfinished()) {
    LogInfo("migrate.nothing_to_do", {{"applied", plan.applied_count}, {"pending", 0}});
    return Status::Ok();
  }

  if (cfg.single_transaction) {
    for (const Migration* m : todo) {
      if (!m->up.transactional) {
        return Status::Usage("--single-transaction cannot include " + m->up_path +
                             ", whose up section is transaction:false");
      }
    }
  }

  if (db.lock_mode() == LockMode::kTransaction) {
    return MigrateInTransactionMode(db, cfg, history, files, todo, target, clock);
  }
  return MigrateUnderSessionLock(db, cfg, history, files, target, options, clock);
}

}  // namespace pgboot
