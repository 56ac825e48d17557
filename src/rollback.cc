#include "rollback.h"

#include <algorithm>
#include <cctype>

#include "history.h"
#include "log.h"
#include "migrator.h"
#include "operator.h"
#include "section_runner.h"
#include "transaction_lock.h"

namespace pgboot {
namespace {

// Runs down sections through the SectionRunner, one version at a time. Unlike
// migrate, it sets no lock_timeout and never retries: RetryPolicy{} below.
class Downer {
 public:
  Downer(Database& db, const Config& cfg, History& history, Clock& clock)
      : history_(history), clock_(clock), runner_(db, history, clock, Options(cfg)) {}

  // `reopen`: transaction lock mode, the step's transaction is already open
  // (SectionRunner::RunInTransaction).
  Status Run(const RollbackStep& step, const std::function<Result<bool>()>& reopen = nullptr) {
    const HistoryRow& r = *step.row;
    SectionRun run{r.version, r.name, step.path, step.down, {}, nullptr, ""};
    if (step.source == "file" && r.down_sql && !StoredDownMatches(*step.file, r)) {
      // The file is the one that was applied (same checksum), so its down wins; the
      // stored copy is what the next release's rollback would have run.
      LogWarn("rollback.down_changed",
              {{"version", r.version}, {"name", r.name}, {"file", step.path}});
    }
    return runner_.Ticked(run, [&] {
      if (!step.down->transactional) return RunNonTransactional(step, run);
      // The down statements, the history row's deletion and the audit row
      // commit together, so a failure leaves the version applied and untouched.
      run.record = {history_.Delete(step.row->version),
                    history_.Audit(RolledBack(step, SqlValue::ServerElapsedMs()))};
      return runner_.RunInTransaction({run}, /*synchronous_commit=*/true, reopen);
    });
  }

 private:
  static RunnerOptions Options(const Config& cfg) {
    RunnerOptions o = BaseRunnerOptions(
        cfg, {"rollback.start", "rollback.progress", "migration.rolled_back", "rollback.failed"},
        "rollback of");
    o.failed_audit_fields = {{"direction", SqlValue::Text("down")}};
    o.lock_timeout_ms = 0;    // --ddl-lock-timeout is migrate's
    o.retry = RetryPolicy{};  // never retries 55P03, as in 0.1.0: the down fails at once
    return o;
  }

  AuditEntry RolledBack(const RollbackStep& step, const SqlValue& ms) const {
    const HistoryRow& r = *step.row;
    return {"rolled_back",
            r.version,
            {{"execution_ms", ms},
             {"name", SqlValue::Text(r.name)},
             {"checksum", SqlValue::Text(r.checksum)},
             {"batch", SqlValue::Int(r.batch)},
             {"applied_at", SqlValue::Text(r.applied_at)},
             {"transaction", SqlValue::Bool(step.down->transactional)},
             {"source", SqlValue::Text(step.source)},
             {"empty_down", SqlValue::Bool(step.down->statements.empty())}}};
  }

  // transaction:false: each statement commits on its own (CREATE/DROP INDEX
  // CONCURRENTLY); the row goes only when all of them succeeded. A failure
  // leaves the version applied, which the message says when statements ran.
  Status RunNonTransactional(const RollbackStep& step, const SectionRun& run) {
    const int64_t start = clock_.NowMs();
    size_t failed = 0;
    Status s = runner_.RunStatementByStatement(run, &failed);
    if (!s.ok()) {
      const std::string partly =
          failed == 0 ? ""
                      : " (transaction:false: its first " + std::to_string(failed) +
                            " statement(s) stay committed; the version is still recorded as "
                            "applied)";
      return runner_.Failed({&run, failed, true, s}, {}, partly);
    }
    const SqlValue ms = SqlValue::Int(clock_.NowMs() - start);
    return runner_.Record(
        {history_.Delete(step.row->version), history_.Audit(RolledBack(step, ms))},
        "the down section of " + VersionLabel(step.row->version, step.row->name) +
            " ran but its history row could not be deleted (it is still recorded as applied)");
  }

  History& history_;
  Clock& clock_;
  SectionRunner runner_;
};

void PrintRollbackDryRun(const std::vector<RollbackStep>& steps, const History& history) {
  std::string out = "-- pgboot dry run: rollback of " + std::to_string(steps.size()) +
                    " version(s), highest first; nothing is changed\n";
  for (const RollbackStep& step : steps) {
    const HistoryRow& r = *step.row;
    out += "\n-- version " + r.version + " " + r.name + " (" +
           (step.down->transactional ? "one transaction"
                                     : "transaction:false, statement by statement") +
           ", down from " + (step.source == "file" ? step.path : "the stored copy") +
           (step.down->statements.empty() ? ", empty: nothing runs" : "") + ")\n";
    for (const SqlStatement& st : step.down->statements) {
      out += "-- " + step.path + ":" + std::to_string(st.line) + "\n" + Terminated(st.text);
    }
    out += "-- then: " + history.DescribeRollbackWrites(r.version) + "\n";
  }
  PrintResult(out);
}

// The problem, in words, when a version has no down section to use.
std::string WhyNoDown(const Migration* m, const HistoryRow& r) {
  const std::string label = "version " + VersionLabel(r.version, r.name);
  const std::string none = ", and its row has no stored down (applied by an older pgboot)";
  if (m == nullptr) {
    return label + " has no migration file here (deleted, renamed, or applied by a newer release)" +
           none;
  }
  if (m->checksum != r.checksum) {
    return label + ": " + m->up_path + " changed after it was applied (checksum " + m->checksum +
           ", recorded " + r.checksum + "), so its down section may not undo what ran" + none;
  }
  // Name the file that lacks it: for pairs the .down.sql looked for, not the .up.sql.
  if (m->down_path != m->up_path) {
    return label + ": " + m->down_path + " does not exist, so there is no down section";
  }
  return label + ": " + m->up_path + " has no down section";
}

// The down section a rollback of `r` runs (docs/reference.md, "Stored downs").
Result<RollbackStep> StepFor(const Migration* m, const HistoryRow& r) {
  RollbackStep step;
  step.file = m;
  step.row = &r;
  if (m != nullptr && m->checksum == r.checksum && m->down) {
    step.down = &*m->down;
    step.source = "file";
    step.path = m->down_path;
    return step;
  }
  if (!r.down_sql) return Status::Precondition(WhyNoDown(m, r));
  step.path = "stored down of version " + r.version;
  auto stored = ParseStoredDown(*r.down_sql, r.down_options.value_or(""));
  if (!stored.ok()) {
    return Status::Precondition("version " + VersionLabel(r.version, r.name) +
                                ": its stored down cannot be run: " + stored.status().message());
  }
  step.stored = std::make_shared<const Section>(std::move(*stored));
  step.down = step.stored.get();
  step.source = "stored";
  return step;
}

}  // namespace

bool IsProduction(const std::string& env) {
  std::string lower;
  for (char c : env) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower == "production";
}

namespace {

// Transaction lock mode: each step in its own locked transaction, which
// first re-checks that its version is still applied with the same checksum
// and still the highest applied; else exit 6 naming it (earlier steps stay done).
Status RollbackInTransactionMode(Database& db, const Config& cfg, History& history,
                                 const std::vector<RollbackStep>& steps, Clock& clock) {
  for (const RollbackStep& step : steps) {
    if (!step.down->transactional) {
      return RefuseInTransactionMode("rolling back " +
                                     VersionLabel(step.row->version, step.row->name) +
                                     " (its down section is transaction:false)");
    }
  }
  TransactionLock lock(db, history, cfg, clock);
  Downer downer(db, cfg, history, clock);
  const int64_t start = clock.NowMs();
  for (const RollbackStep& step : steps) {
    const std::string label = VersionLabel(step.row->version, step.row->name);
    auto open = [&]() -> Result<bool> {
      if (Status s = lock.Open(); !s.ok()) return s;
      auto view = history.ReadUnderLock(step.row->version);
      Status stop = view.ok() ? Status::Ok() : view.status();
      if (stop.ok() && (view->status != "applied" || view->checksum != step.row->checksum ||
                        view->newest_applied != step.row->version)) {
        stop = Status::Precondition(
            "rollback of " + label +
            " refused: another run changed the history meanwhile (it is no longer applied with "
            "checksum " +
            step.row->checksum + " as the highest applied version)");
      }
      if (stop.ok() && !view->unfinished_version.empty()) {
        stop = Status::Precondition("rollback refused: " + view->unfinished_version +
                                    " is marked " + view->unfinished_status +
                                    "; fix the database by hand, then run `pgboot repair`");
      }
      if (!stop.ok()) {
        lock.Rollback();
        return stop;
      }
      return true;
    };
    Result<bool> go = open();
    if (!go.ok()) return go.status();
    if (Status s = downer.Run(step, open); !s.ok()) return s;
  }
  LogInfo("rollback.done",
          {{"rolled_back", static_cast<int64_t>(steps.size())}, {"ms", clock.NowMs() - start}});
  return Status::Ok();
}

}  // namespace

Status CheckProductionGuard(const Config& cfg, const RollbackOptions& options) {
  if (options.dry_run || options.allow_production || !IsProduction(cfg.env)) return Status::Ok();
  return Status::Precondition(
      "rollback refused: PGBOOT_ENV=" + cfg.env +
      " (rolling back production usually drops data); rerun with --allow-production if you "
      "mean it, or see what it would do with --dry-run");
}

Result<std::vector<RollbackStep>> SelectRollback(const std::vector<Migration>& files,
                                                 const std::vector<HistoryRow>& history,
                                                 const RollbackOptions& options) {
  std::vector<const HistoryRow*> applied;
  for (const HistoryRow& r : history) {
    if (r.status == "applied") applied.push_back(&r);
  }
  std::sort(applied.begin(), applied.end(), [](const HistoryRow* a, const HistoryRow* b) {
    return CompareVersions(a->version, b->version) > 0;
  });

  std::vector<const HistoryRow*> chosen;
  if (options.all) {
    chosen = applied;
  } else if (options.future) {
    // What `status` calls future: above the newest file (all of them when there is none).
    for (const HistoryRow* r : applied) {
      if (files.empty() || CompareVersions(r->version, files.back().version) > 0) {
        chosen.push_back(r);
      }
    }
  } else if (options.to) {
    if (!IsVersionText(*options.to)) {
      return Status::Usage("--to needs a version (digits), not '" + *options.to + "'");
    }
    const std::string v = CanonicalVersion(*options.to);
    bool known = FindMigration(files, v) != nullptr ||
                 std::any_of(applied.begin(), applied.end(),
                             [&](const HistoryRow* r) { return r->version == v; });
    if (!known) {
      return Status::Usage("--to " + *options.to +
                           " names neither an applied version nor a migration file");
    }
    for (const HistoryRow* r : applied) {
      if (CompareVersions(r->version, v) > 0) chosen.push_back(r);
    }
  } else {
    if (applied.empty()) return Status::Precondition("nothing to roll back: no version is applied");
    if (options.batch) {
      int64_t newest = 0;
      for (const HistoryRow* r : applied) newest = std::max(newest, r->batch);
      for (const HistoryRow* r : applied) {
        if (r->batch == newest) chosen.push_back(r);
      }
    } else {
      const size_t n = static_cast<size_t>(options.steps.value_or(1));
      if (n > applied.size()) {
        return Status::Precondition("--steps " + std::to_string(n) + " asks for more than the " +
                                    std::to_string(applied.size()) +
                                    " applied version(s); nothing was rolled back");
      }
      chosen.assign(applied.begin(), applied.begin() + static_cast<std::ptrdiff_t>(n));
    }
  }

  std::vector<RollbackStep> steps;
  std::vector<std::string> problems;
  for (const HistoryRow* r : chosen) {
    auto step = StepFor(FindMigration(files, r->version), *r);
    if (step.ok()) {
      steps.push_back(std::move(*step));
    } else {
      problems.push_back(step.status().message());
    }
  }
  if (!problems.empty()) {
    return Status::Precondition("rollback refused before anything ran: " + Join(problems, "; "));
  }
  return steps;
}

Status Rollback(Database& db, const Config& cfg, const std::vector<Migration>& files,
                const RollbackOptions& options, Clock& clock) {
  Status s = CheckProductionGuard(cfg, options);
  if (!s.ok()) return s;
  History history(db, cfg.history_table);
  auto rows = history.Read();
  if (!rows.ok()) return rows.status();
  auto steps = SelectRollback(files, *rows, options);
  if (!steps.ok()) return steps.status();
  if (options.dry_run) {
    s = RefuseUnfinished(*rows, "rollback");
    if (!s.ok()) return s;
    PrintRollbackDryRun(*steps, history);
    return Status::Ok();
  }
  if (steps->empty()) {
    // Only --to, --future and reset's `all` select nothing without an error: the database is
    // already there.
    LogInfo("rollback.nothing_to_do",
            {{"reason", options.future ? std::string("no applied version above the newest file")
                                       : "no applied version above " + options.to.value_or("")}});
    return Status::Ok();
  }

  if (db.lock_mode() == LockMode::kTransaction) {
    s = RefuseUnfinished(*rows, "rollback");
    if (!s.ok()) return s;
    return RollbackInTransactionMode(db, cfg, history, *steps, clock);
  }
  MigrationLock lock(db, history, cfg, clock);
  rows = LockAndReadHistory(lock, history);
  if (!rows.ok()) return rows.status();
  s = RefuseUnfinished(*rows, "rollback");
  if (!s.ok()) return s;
  // Another pgboot may have changed history while we waited for the lock.
  steps = SelectRollback(files, *rows, options);
  if (!steps.ok()) return steps.status();

  const int64_t start = clock.NowMs();
  Downer downer(db, cfg, history, clock);
  for (const RollbackStep& step : *steps) {
    s = downer.Run(step);
    if (!s.ok()) return s;
  }
  LogInfo("rollback.done",
          {{"rolled_back", static_cast<int64_t>(steps->size())}, {"ms", clock.NowMs() - start}});
  return Status::Ok();
}

}  // namespace pgboot
