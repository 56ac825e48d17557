#include "migrator.h"

#include <algorithm>
#include <cmath>

#include "log.h"
#include "migration_lock.h"
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
      : history_(history), batch_(batch), runner_(db, history, clock, Options(cfg)) {}

  // Applies one migration. `last` marks the run's final commit, the only one
  // that must wait for the WAL flush: each migration stays atomic, so a server
  // crash can only lose whole migrations with their history rows, which are
  // then simply pending again.
  Status Apply(const Migration& m, bool last) {
    SectionRun run = Run(m);
    return runner_.Ticked(run, [&] {
      if (!m.up.transactional) return ApplyNonTransactional(m, run);
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
      LogInfo("migration.applied",
              {{"version", m->version}, {"name", m->name}, {"ms", clock.NowMs() - start}});
    }
    return s;
  }

 private:
  static RunnerOptions Options(const Config& cfg) {
    RunnerOptions o = BaseRunnerOptions(
        cfg, {"migration.start", "migration.progress", "migration.applied", "migration.failed"},
        "migration");
    o.lock_timeout_ms = cfg.ddl_lock_timeout_ms;
    o.retry.lock_timeout = cfg.ddl_lock_timeout_ms > 0;
    o.retry.max_retries = cfg.ddl_retries;
    return o;
  }

  AuditEntry AppliedAudit(const Migration& m, const SqlValue& ms) const {
    return {"applied",
            m.version,
            {{"execution_ms", ms},
             {"checksum", SqlValue::Text(m.checksum)},
             {"name", SqlValue::Text(m.name)},
             {"batch", SqlValue::Int(batch_)}}};
  }

  // A transactional run records its row and audit row in its own transaction,
  // timed by the server.
  SectionRun Run(const Migration& m) const {
    SectionRun run{m.version, m.name, m.up_path, &m.up, {}};
    if (m.up.statements.empty()) {
      // Recorded like any other (docs/reference.md, "Migration files"), but worth a word:
      // an empty file may also be one someone forgot to write.
      LogWarn("migration.empty", {{"version", m.version}, {"name", m.name}, {"file", m.up_path}});
    }
    if (m.up.transactional) {
      const SqlValue ms = SqlValue::ServerElapsedMs();
      run.record = {history_.RecordApplied(m, batch_, ms), history_.Audit(AppliedAudit(m, ms)),
                    history_.Notify()};
    }
    return run;
  }

  // transaction:false: a committed `running` row first, then each statement on
  // its own, then `applied`; a failure leaves `failed` until `repair`.
  Status ApplyNonTransactional(const Migration& m, const SectionRun& run) {
    auto ins = db().Exec(history_.RecordRunning(m, batch_));
    if (!ins.ok()) {
      return HistoryError(ins.status(),
                          "recording migration " + VersionLabel(m.version, m.name) + " as running");
    }
    const int64_t start = clock().NowMs();
    size_t failed = 0;
    Status s = runner_.RunStatementByStatement(run, &failed);
    if (!s.ok()) {
      return runner_.Failed({&run, failed, true, s}, {history_.MarkFailed(m.version)});
    }
    const int64_t ms = clock().NowMs() - start;
    AuditEntry audit = AppliedAudit(m, SqlValue::Int(ms));
    audit.fields.push_back({"transaction", SqlValue::Bool(false)});
    return runner_.Record(
        {history_.MarkApplied(m.version, ms), history_.Audit(audit), history_.Notify()},
        "migration " + VersionLabel(m.version, m.name) +
            " ran but could not be marked applied (its row stays 'running'; "
            "check, then `pgboot repair`)");
  }

  Database& db() { return runner_.db(); }
  Clock& clock() { return runner_.clock(); }

  History& history_;
  int64_t batch_;
  SectionRunner runner_;
};

Status DryRun(const std::vector<const Migration*>& todo) {
  std::string out = "-- pgboot dry run: " + std::to_string(todo.size()) +
                    " pending migration(s); nothing is changed\n";
  for (const Migration* m : todo) {
    out += "\n-- version " + m->version + " " + m->name + " (" +
           (m->up.transactional ? "one transaction" : "transaction:false, statement by statement") +
           ")\n";
    // Statement by statement, never a copy of the whole SQL: peak memory stays
    // within the files' sizes (docs/reference.md, "Inputs pgboot refuses").
    for (const SqlStatement& st : m->up.statements) {
      out += "-- " + m->up_path + ":" + std::to_string(st.line) + "\n";
      PrintResult(out);
      PrintResult(st.text);
      out = Terminator(st.text);
    }
  }
  PrintResult(out);
  return Status::Ok();
}

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

Status Migrate(Database& db, const Config& cfg, const std::vector<Migration>& files,
               const MigrateOptions& options, Clock& clock) {
  Status checked = CheckTarget(files, options.target, cfg.migrations_dir);
  if (!checked.ok()) return checked;
  const std::string target = options.target.empty() ? "" : CanonicalVersion(options.target);
  History history(db, cfg.history_table);

  auto rows = history.Read();
  if (!rows.ok()) return rows.status();
  Plan plan = BuildPlan(files, *rows, cfg.out_of_order);
  Status v = ReportFindings(plan, /*count_unfinished=*/options.dry_run);
  if (!v.ok()) return v;
  if (!target.empty() && !plan.newest_applied.empty() &&
      CompareVersions(target, plan.newest_applied) <= 0) {
    LogInfo("migrate.nothing_to_do",
            {{"reason", "target " + target + " is at or below the newest applied version " +
                            plan.newest_applied}});
    return Status::Ok();
  }
  std::vector<const Migration*> todo = UpTo(plan.pending, target);
  if (options.dry_run) return DryRun(todo);
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
  MigrationLock lock(db, history, cfg, clock);
  rows = LockAndReadHistory(lock, history);
  if (!rows.ok()) return rows.status();
  plan = BuildPlan(files, *rows, cfg.out_of_order);
  Status s = ReportFindings(plan, /*count_unfinished=*/true);
  if (!s.ok()) return s;
  todo = UpTo(plan.pending, target);
  if (todo.empty()) {
    LogInfo(
        "migrate.nothing_to_do",
        {{"applied", plan.applied_count}, {"pending", 0}, {"reason", "applied by another run"}});
    return Status::Ok();
  }
  auto batch = history.NextBatch();
  if (!batch.ok()) return batch.status();

  const int64_t start = clock.NowMs();
  Applier applier(db, cfg, history, clock, *batch);
  if (cfg.single_transaction) {
    s = applier.ApplyAllInOne(todo, clock);
    if (!s.ok()) return s;
  } else {
    for (size_t i = 0; i < todo.size(); ++i) {
      s = applier.Apply(*todo[i], i + 1 == todo.size());
      if (!s.ok()) return s;
    }
  }
  LogInfo("migrate.done", {{"applied", static_cast<int64_t>(todo.size())},
                           {"batch", *batch},
                           {"ms", clock.NowMs() - start}});
  return Status::Ok();
}

}  // namespace pgboot
