#include "rollback.h"

#include <algorithm>
#include <cctype>

#include "history.h"
#include "log.h"
#include "migrator.h"
#include "operator.h"

namespace pgboot {
namespace {

// execution_ms measured by the server inside the transaction, as migrate records it.
constexpr const char* kServerMs = "(extract(epoch FROM clock_timestamp() - now()) * 1000)::integer";

// Runs down sections, one version at a time.
class Downer {
 public:
  Downer(Database& db, const Config& cfg, History& history, Clock& clock)
      : db_(db), cfg_(cfg), history_(history), clock_(clock), by_(AppliedBy()) {}

  Status Run(const RollbackStep& step) {
    const Migration& m = *step.file;
    LogInfo("rollback.start",
            {{"version", m.version}, {"name", m.name}, {"transaction", m.down->transactional}});
    const int64_t start = clock_.NowMs();
    db_.SetTicker(cfg_.progress_interval_ms, [&m, start, this] {
      LogInfo("rollback.progress",
              {{"version", m.version}, {"name", m.name}, {"elapsed_ms", clock_.NowMs() - start}});
    });
    Status s = m.down->transactional ? RunTransactional(step) : RunNonTransactional(step);
    db_.SetTicker(0, nullptr);
    if (s.ok()) {
      LogInfo("migration.rolled_back",
              {{"version", m.version}, {"name", m.name}, {"ms", clock_.NowMs() - start}});
    }
    return s;
  }

 private:
  std::string DeleteSql(const RollbackStep& step) const {
    return "DELETE FROM " + history_.table() + " WHERE version = " + SqlLiteral(step.row->version);
  }

  std::string AuditSql(const RollbackStep& step, const std::string& ms_expr) const {
    const HistoryRow& r = *step.row;
    return history_.AuditSql("rolled_back", r.version, by_,
                             "jsonb_build_object('execution_ms', " + ms_expr + ", 'name', " +
                                 SqlLiteral(r.name) + ", 'checksum', " + SqlLiteral(r.checksum) +
                                 ", 'batch', " + std::to_string(r.batch) + ", 'applied_at', " +
                                 SqlLiteral(r.applied_at) + ", 'transaction', " +
                                 (step.file->down->transactional ? "true" : "false") + ")");
  }

  // The down statements, the history row's deletion and the audit row commit
  // together, so a failure leaves the version applied and untouched.
  Status RunTransactional(const RollbackStep& step) {
    const Section& down = *step.file->down;
    std::vector<std::string> stmts = {"BEGIN"};
    if (cfg_.statement_timeout_ms > 0) {
      stmts.push_back("SET LOCAL statement_timeout = '" +
                      std::to_string(cfg_.statement_timeout_ms) + "ms'");
    }
    const size_t first = stmts.size();
    for (const SqlStatement& st : down.statements) stmts.push_back(st.text);
    stmts.push_back(DeleteSql(step));
    stmts.push_back(AuditSql(step, kServerMs));
    stmts.push_back("COMMIT");
    size_t failed = 0;
    Status s = db_.ExecSequence(stmts, &failed);
    if (s.ok()) return s;
    (void)db_.Exec("ROLLBACK");
    if (!s.is_signal() && (failed < first || failed >= first + down.statements.size())) {
      return Status::Sql("rollback of " + VersionLabel(step.row->version, step.row->name) +
                             " could not be recorded: " + s.message(),
                         s.sqlstate());
    }
    return Failed(step, s, failed >= first ? failed - first : 0);
  }

  // transaction:false: each statement commits on its own (CREATE/DROP INDEX
  // CONCURRENTLY); the row goes only when all of them succeeded.
  Status RunNonTransactional(const RollbackStep& step) {
    const int64_t start = clock_.NowMs();
    size_t failed = 0;
    Status s =
        RunStatementsOneByOne(db_, step.file->down->statements, cfg_.statement_timeout_ms, &failed);
    if (!s.ok()) return Failed(step, s, failed);
    Status rec =
        db_.ExecSequence({"BEGIN", DeleteSql(step),
                          AuditSql(step, std::to_string(clock_.NowMs() - start)), "COMMIT"},
                         nullptr);
    if (!rec.ok()) {
      (void)db_.Exec("ROLLBACK");
      return HistoryError(rec, "the down section of " +
                                   VersionLabel(step.row->version, step.row->name) +
                                   " ran but its history row could not be deleted (it is still "
                                   "recorded as applied)");
    }
    return Status::Ok();
  }

  // Names file:line[:column], logs rollback.failed and records a `failed`
  // audit row (direction down) in its own transaction. The version stays
  // applied: a transaction:false down may have run part-way, which the exit
  // message says.
  Status Failed(const RollbackStep& step, const Status& s, size_t index) {
    const Migration& m = *step.file;
    const Section& down = *m.down;
    const SqlStatement* st = index < down.statements.size() ? &down.statements[index] : nullptr;
    const std::string& path = m.down_path.empty() ? m.up_path : m.down_path;
    const std::string loc = st ? FailureLocation(path, *st, s.position()) : path;
    const std::string partly =
        down.transactional || index == 0
            ? ""
            : " (transaction:false: its first " + std::to_string(index) +
                  " statement(s) stay committed; the version is still recorded as applied)";
    std::string detail = "{\"direction\":\"down\",\"statement\":" + std::to_string(index + 1) +
                         ",\"location\":" + JsonQuote(loc);
    if (s.is_signal()) {
      LogWarn("rollback.failed",
              {{"version", m.version},
               {"name", m.name},
               {"file", loc},
               {"reason", "interrupted by signal " + std::to_string(s.signal())}});
      if (!down.transactional) {
        detail += ",\"signal\":" + std::to_string(s.signal()) + "}";
        (void)db_.Exec(history_.AuditSql("failed", m.version, by_, SqlLiteral(detail) + "::jsonb"));
      }
      return s;
    }
    LogError("rollback.failed", {{"version", m.version},
                                 {"name", m.name},
                                 {"file", loc},
                                 {"sqlstate", s.sqlstate()},
                                 {"statement", static_cast<int64_t>(index + 1)},
                                 {"error", s.message()}});
    detail += ",\"sqlstate\":" + JsonQuote(s.sqlstate()) +
              ",\"message\":" + JsonQuote(Redact(s.message())) + "}";
    (void)db_.Exec(history_.AuditSql("failed", m.version, by_, SqlLiteral(detail) + "::jsonb"));
    return Status::Sql("rollback of " + VersionLabel(m.version, m.name) + " failed at " + loc +
                           ": " + (s.sqlstate().empty() ? "" : "SQLSTATE " + s.sqlstate() + ": ") +
                           s.message() + partly,
                       s.sqlstate(), s.position());
  }

  Database& db_;
  const Config& cfg_;
  History& history_;
  Clock& clock_;
  std::string by_;
};

void PrintRollbackDryRun(const std::vector<RollbackStep>& steps, const History& history) {
  std::string out = "-- pgboot dry run: rollback of " + std::to_string(steps.size()) +
                    " version(s), highest first; nothing is changed\n";
  for (const RollbackStep& step : steps) {
    const Migration& m = *step.file;
    const std::string& path = m.down_path.empty() ? m.up_path : m.down_path;
    out +=
        "\n-- version " + m.version + " " + m.name + " (" +
        (m.down->transactional ? "one transaction" : "transaction:false, statement by statement") +
        ")\n";
    for (const SqlStatement& st : m.down->statements) {
      out += "-- " + path + ":" + std::to_string(st.line) + "\n" + Terminated(st.text);
    }
    out += "-- then: DELETE FROM " + history.table() + " WHERE version = " + SqlLiteral(m.version) +
           ", and a rolled_back row in " + history.log_table() + "\n";
  }
  PrintResult(out);
}

bool IsProduction(const std::string& env) {
  std::string lower;
  for (char c : env) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower == "production";
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
  if (options.to) {
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
    const Migration* m = FindMigration(files, r->version);
    const std::string label = VersionLabel(r->version, r->name);
    if (m == nullptr) {
      problems.push_back("version " + label +
                         " has no migration file here (deleted, renamed, or applied by a newer "
                         "release), so its down section is unknown");
    } else if (m->checksum != r->checksum) {
      problems.push_back("version " + label + ": " + m->up_path +
                         " changed after it was applied (checksum " + m->checksum + ", recorded " +
                         r->checksum + "), so its down section may not undo what ran");
    } else if (!m->down) {
      problems.push_back("version " + label + ": " + m->up_path + " has no down section");
    } else {
      steps.push_back({m, r});
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
    // Only --to selects nothing without an error: the database is already there.
    LogInfo("rollback.nothing_to_do",
            {{"reason", "no applied version above " + options.to.value_or("")}});
    return Status::Ok();
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
