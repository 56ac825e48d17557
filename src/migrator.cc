#include "migrator.h"

#include <algorithm>
#include <cmath>

#include "event_loop.h"
#include "log.h"

namespace pgboot {
namespace {

// Sleeps `ms` through the event loop so a terminating signal ends the wait.
Status Sleep(int64_t ms) {
  EventLoop::Wake w = EventLoop::Get().Wait(-1, 0, ms);
  if (w.kind == EventLoop::Wake::kSignal) return Status::Signal(w.signo);
  return Status::Ok();
}

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

std::string FailureDetail(const Status& s, size_t statement_index, const std::string& location) {
  return "{\"sqlstate\":" + JsonQuote(s.sqlstate()) +
         ",\"statement\":" + std::to_string(statement_index + 1) +
         ",\"location\":" + JsonQuote(location) + ",\"message\":" + JsonQuote(Redact(s.message())) +
         "}";
}

class Applier {
 public:
  Applier(Database& db, const Config& cfg, History& history, Clock& clock, int64_t batch)
      : db_(db), cfg_(cfg), history_(history), clock_(clock), batch_(batch), by_(AppliedBy()) {}

  // Applies one migration. `last` marks the run's final commit, the only one
  // that must wait for the WAL flush (see ApplyTransactional).
  Status Apply(const Migration& m, bool last) {
    LogInfo("migration.start",
            {{"version", m.version}, {"name", m.name}, {"transaction", m.up.transactional}});
    const int64_t start = clock_.NowMs();
    db_.SetTicker(cfg_.progress_interval_ms, [&m, start, this] {
      LogInfo("migration.progress",
              {{"version", m.version}, {"name", m.name}, {"elapsed_ms", clock_.NowMs() - start}});
    });
    Status s = m.up.transactional ? ApplyTransactional(m, last) : ApplyNonTransactional(m);
    db_.SetTicker(0, nullptr);
    if (s.ok()) {
      LogInfo("migration.applied",
              {{"version", m.version}, {"name", m.name}, {"ms", clock_.NowMs() - start}});
    }
    return s;
  }

  // All of `ms` in one transaction (--single-transaction).
  Status ApplyAllInOne(const std::vector<const Migration*>& ms) {
    std::vector<std::string> stmts = {"BEGIN"};
    AddSettings(&stmts);
    struct Span {
      const Migration* m;
      size_t first;
    };
    std::vector<Span> spans;
    for (const Migration* m : ms) {
      LogInfo("migration.start",
              {{"version", m->version}, {"name", m->name}, {"transaction", true}});
      spans.push_back({m, stmts.size()});
      for (const SqlStatement& st : m->up.statements) stmts.push_back(st.text);
      stmts.push_back(history_.InsertAppliedSql(*m, batch_, by_));
      stmts.push_back(AppliedAudit(*m));
    }
    stmts.push_back("COMMIT");
    const int64_t start = clock_.NowMs();
    for (int64_t attempt = 1;; ++attempt) {
      size_t failed = 0;
      Status s = db_.ExecSequence(stmts, &failed);
      if (s.ok()) {
        for (const Migration* m : ms) {
          LogInfo("migration.applied",
                  {{"version", m->version}, {"name", m->name}, {"ms", clock_.NowMs() - start}});
        }
        return s;
      }
      Rollback();
      const Span* span = nullptr;
      for (auto it = spans.rbegin(); it != spans.rend() && !span; ++it) {
        if (failed >= it->first) span = &*it;
      }
      // --ddl-lock-timeout retries the whole transaction from its start, as it
      // retries each migration's own transaction without --single-transaction.
      if (!s.is_signal() && span && RetryableLockTimeout(s, attempt)) {
        Status slept = RetryPause(*span->m, s, attempt);
        if (!slept.ok()) return slept;
        continue;
      }
      if (span) return Failed(*span->m, s, failed - span->first, /*audit=*/!s.is_signal());
      return s.is_signal() ? s
                           : Status::Sql("single transaction failed: " + s.message(), s.sqlstate());
    }
  }

 private:
  void AddSettings(std::vector<std::string>* stmts) {
    if (cfg_.ddl_lock_timeout_ms > 0) {
      stmts->push_back("SET LOCAL lock_timeout = '" + std::to_string(cfg_.ddl_lock_timeout_ms) +
                       "ms'");
    }
    if (cfg_.statement_timeout_ms > 0) {
      stmts->push_back("SET LOCAL statement_timeout = '" +
                       std::to_string(cfg_.statement_timeout_ms) + "ms'");
    }
  }

  bool RetryableLockTimeout(const Status& s, int64_t attempt) const {
    return s.sqlstate() == "55P03" && cfg_.ddl_lock_timeout_ms > 0 && attempt <= cfg_.ddl_retries;
  }

  // Logs migration.retry and sleeps before attempt `attempt + 1`.
  Status RetryPause(const Migration& m, const Status& s, int64_t attempt) {
    LogWarn("migration.retry", {{"version", m.version},
                                {"name", m.name},
                                {"attempt", attempt + 1},
                                {"sqlstate", s.sqlstate()},
                                {"reason", s.message()}});
    // Full jitter, so the DDL does not queue in lockstep with whoever blocks it.
    int64_t cap = std::min<int64_t>(5000, 100 * (int64_t{1} << std::min<int64_t>(attempt, 6)));
    return Sleep(static_cast<int64_t>(clock_.Uniform01() * static_cast<double>(cap)));
  }

  std::string AppliedAudit(const Migration& m) {
    return history_.AuditSql("applied", m.version, by_,
                             "jsonb_build_object('execution_ms', (extract(epoch FROM "
                             "clock_timestamp() - now()) * 1000)::integer, 'checksum', " +
                                 SqlLiteral(m.checksum) + ", 'name', " + SqlLiteral(m.name) +
                                 ", 'batch', " + std::to_string(batch_) + ")");
  }

  // The whole migration, its history row and its audit row go to the server in
  // one pipelined round trip and commit together. Every commit but the run's
  // last skips waiting for the WAL flush: the last, synchronous commit's flush
  // covers all earlier ones (WAL order), and each migration stays atomic — a
  // server crash can only lose whole migrations with their history rows, which
  // are then simply pending again.
  Status ApplyTransactional(const Migration& m, bool last) {
    for (int64_t attempt = 1;; ++attempt) {
      std::vector<std::string> stmts = {"BEGIN"};
      if (!last) stmts.push_back("SET LOCAL synchronous_commit = off");
      AddSettings(&stmts);
      const size_t first = stmts.size();
      for (const SqlStatement& st : m.up.statements) stmts.push_back(st.text);
      stmts.push_back(history_.InsertAppliedSql(m, batch_, by_));
      stmts.push_back(AppliedAudit(m));
      stmts.push_back("COMMIT");
      size_t failed = 0;
      Status s = db_.ExecSequence(stmts, &failed);
      if (s.ok()) return s;
      Rollback();
      if (s.is_signal()) return Failed(m, s, failed >= first ? failed - first : 0, false);
      if (RetryableLockTimeout(s, attempt)) {
        Status slept = RetryPause(m, s, attempt);
        if (!slept.ok()) return slept;
        continue;
      }
      if (failed < first || failed >= first + m.up.statements.size()) {
        return Status::Sql("migration " + VersionLabel(m.version, m.name) +
                               " could not be recorded: " + s.message(),
                           s.sqlstate());
      }
      return Failed(m, s, failed - first, true);
    }
  }

  // transaction:false: a committed `running` row first, then each statement on
  // its own, then `applied`; a failure leaves `failed` until `repair`.
  Status ApplyNonTransactional(const Migration& m) {
    auto ins =
        db_.Exec("INSERT INTO " + history_.table() +
                     " (version, name, checksum, status, applied_at, execution_ms, applied_by, "
                     "batch) VALUES ($1, $2, $3, 'running', now(), NULL, $4, $5)",
                 {m.version, m.name, m.checksum, by_, std::to_string(batch_)});
    if (!ins.ok())
      return HistoryError(ins.status(),
                          "recording migration " + VersionLabel(m.version, m.name) + " as running");
    const int64_t start = clock_.NowMs();
    size_t failed = 0;
    Status s = RunStatementsOneByOne(db_, m.up.statements, cfg_.statement_timeout_ms, &failed);
    if (!s.ok()) {
      if (!s.is_signal()) {
        (void)db_.Exec("UPDATE " + history_.table() + " SET status = 'failed' WHERE version = $1",
                       {m.version});
      }
      return Failed(m, s, failed, true);
    }
    const int64_t ms = clock_.NowMs() - start;
    std::vector<std::string> done = {
        "BEGIN",
        "UPDATE " + history_.table() + " SET status = 'applied', execution_ms = " +
            std::to_string(ms) + " WHERE version = " + SqlLiteral(m.version),
        history_.AuditSql("applied", m.version, by_,
                          "jsonb_build_object('execution_ms', " + std::to_string(ms) +
                              ", 'checksum', " + SqlLiteral(m.checksum) + ", 'name', " +
                              SqlLiteral(m.name) + ", 'batch', " + std::to_string(batch_) +
                              ", 'transaction', false)"),
        "COMMIT"};
    Status rec = db_.ExecSequence(done, nullptr);
    if (!rec.ok()) {
      Rollback();
      return HistoryError(rec, "migration " + VersionLabel(m.version, m.name) +
                                   " ran but could not be marked applied (its row "
                                   "stays 'running'; check, then `pgboot repair`)");
    }
    return Status::Ok();
  }

  void Rollback() { (void)db_.Exec("ROLLBACK"); }

  // Reports a failed statement (file:line[:column], SQLSTATE, message) and
  // records a `failed` audit row in its own transaction.
  Status Failed(const Migration& m, const Status& s, size_t index, bool audit) {
    const SqlStatement* st = index < m.up.statements.size() ? &m.up.statements[index] : nullptr;
    std::string loc = st ? FailureLocation(m.up_path, *st, s.position()) : m.up_path;
    if (s.is_signal()) {
      LogWarn("migration.failed",
              {{"version", m.version},
               {"name", m.name},
               {"file", loc},
               {"reason", "interrupted by signal " + std::to_string(s.signal())}});
      if (!m.up.transactional) {
        // The statements before this one are committed: the row says so.
        (void)db_.Exec("UPDATE " + history_.table() + " SET status = 'failed' WHERE version = $1",
                       {m.version});
        (void)db_.Exec(history_.AuditSql("failed", m.version, by_,
                                         SqlLiteral("{\"signal\":" + std::to_string(s.signal()) +
                                                    ",\"statement\":" + std::to_string(index + 1) +
                                                    ",\"location\":" + JsonQuote(loc) + "}") +
                                             "::jsonb"));
      }
      return s;
    }
    LogError("migration.failed", {{"version", m.version},
                                  {"name", m.name},
                                  {"file", loc},
                                  {"sqlstate", s.sqlstate()},
                                  {"statement", static_cast<int64_t>(index + 1)},
                                  {"error", s.message()}});
    if (audit) {
      (void)db_.Exec(history_.AuditSql("failed", m.version, by_,
                                       SqlLiteral(FailureDetail(s, index, loc)) + "::jsonb"));
    }
    return Status::Sql("migration " + VersionLabel(m.version, m.name) + " failed at " + loc + ": " +
                           (s.sqlstate().empty() ? "" : "SQLSTATE " + s.sqlstate() + ": ") +
                           s.message(),
                       s.sqlstate(), s.position());
  }

  Database& db_;
  const Config& cfg_;
  History& history_;
  Clock& clock_;
  int64_t batch_;
  std::string by_;
};

Status DryRun(const std::vector<const Migration*>& todo) {
  std::string out = "-- pgboot dry run: " + std::to_string(todo.size()) +
                    " pending migration(s); nothing is changed\n";
  for (const Migration* m : todo) {
    out += "\n-- version " + m->version + " " + m->name + " (" +
           (m->up.transactional ? "one transaction" : "transaction:false, statement by statement") +
           ")\n";
    for (const SqlStatement& st : m->up.statements) {
      out += "-- " + m->up_path + ":" + std::to_string(st.line) + "\n" + Terminated(st.text);
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

std::string Terminated(const std::string& statement) {
  // A statement may end in a -- comment (the lexer keeps it): then the ';'
  // goes on a line of its own, or piping the output into psql would merge
  // this statement with the next.
  const size_t last_line = statement.rfind('\n');
  const bool comment =
      statement.find("--", last_line == std::string::npos ? 0 : last_line) != std::string::npos;
  return statement + (comment ? "\n;\n" : ";\n");
}

std::string FailureLocation(const std::string& path, const SqlStatement& st, int position) {
  if (position > 0) {
    auto [line, col] = PositionToLineColumn(st, position);
    return path + ":" + std::to_string(line) + ":" + std::to_string(col);
  }
  return path + ":" + std::to_string(st.line);
}

Status RunStatementsOneByOne(Database& db, const std::vector<SqlStatement>& statements,
                             int64_t statement_timeout_ms, size_t* failed) {
  if (failed) *failed = 0;
  if (statement_timeout_ms > 0) {
    auto set = db.Exec("SET statement_timeout = '" + std::to_string(statement_timeout_ms) + "ms'");
    if (!set.ok()) return set.status();
  }
  Status result;
  for (size_t i = 0; i < statements.size() && result.ok(); ++i) {
    auto r = db.Exec(statements[i].text);
    if (!r.ok()) {
      if (failed) *failed = i;
      result = r.status();
    }
  }
  if (db.InTransaction()) {
    (void)db.Exec("ROLLBACK");
    if (result.ok()) {
      if (failed) *failed = statements.empty() ? 0 : statements.size() - 1;
      result = Status::Sql(
          "the section ended inside a transaction it opened (BEGIN without COMMIT); it was "
          "rolled back",
          "");
    }
  }
  if (statement_timeout_ms > 0) (void)db.Exec("RESET statement_timeout");
  return result;
}

Result<std::vector<HistoryRow>> LockAndReadHistory(MigrationLock& lock, History& history) {
  Status s = lock.Acquire();
  if (!s.ok()) return s;
  s = history.Create();
  if (!s.ok()) return s;
  return history.Read();
}

MigrationLock::MigrationLock(Database& db, const History& history, const Config& cfg, Clock& clock)
    : db_(db), history_(history), cfg_(cfg), clock_(clock) {}

MigrationLock::~MigrationLock() { Release(); }

Status MigrationLock::Acquire() {
  auto key = db_.Exec("SELECT " + history_.LockKeySql());
  if (!key.ok()) return HistoryError(key.status(), "computing the migration lock key");
  key_ = Cell(*key);
  const int64_t start = clock_.NowMs();
  int64_t next_log = start;
  for (int n = 0;; ++n) {
    auto r = db_.Exec("SELECT pg_try_advisory_lock($1::bigint)", {key_});
    if (!r.ok()) return HistoryError(r.status(), "taking the migration lock");
    const int64_t now = clock_.NowMs();
    if (Cell(*r) == "t") {
      held_ = true;
      LogInfo("lock.acquired", {{"key", key_}, {"waited_ms", now - start}});
      return Status::Ok();
    }
    if (now >= next_log) {
      LogHolder(now - start);
      next_log = now + std::max<int64_t>(cfg_.lock_log_interval_ms, 1);
    }
    const bool forever = cfg_.lock_timeout_ms == 0;
    if (!forever && now - start >= cfg_.lock_timeout_ms) {
      return Status::LockTimeout("could not get the migration lock within " +
                                 FormatDuration(cfg_.lock_timeout_ms) +
                                 " (another pgboot is migrating; see lock.waiting for the holder)");
    }
    // Full jitter up to 500 ms: waiting is cheap, but replicas should not poll in step.
    int64_t cap = std::min<int64_t>(500, 50 * (int64_t{1} << std::min(n, 4)));
    int64_t sleep = static_cast<int64_t>(clock_.Uniform01() * static_cast<double>(cap)) + 1;
    if (!forever) sleep = std::min(sleep, std::max<int64_t>(start + cfg_.lock_timeout_ms - now, 1));
    sleep = std::min(sleep, std::max<int64_t>(next_log - now, 1));
    Status s = Sleep(sleep);
    if (!s.ok()) return s;
  }
}

void MigrationLock::LogHolder(int64_t waited_ms) {
  auto h = db_.Exec(history_.LockHolderSql());
  LogFields f;
  if (h.ok() && !h->rows.empty()) {
    const std::string pid = Cell(*h, 0, 0);
    f = {{"holder_pid", static_cast<int64_t>(IsVersionText(pid) ? std::stoll(pid) : 0)},
         {"holder_application_name", Cell(*h, 0, 1)},
         {"holder_since", Cell(*h, 0, 2)}};
  } else {
    // The holder let go between our try and this query: 0, so the field keeps its type.
    f = {{"holder_pid", static_cast<int64_t>(0)},
         {"holder_application_name", ""},
         {"holder_since", ""}};
  }
  f.push_back({"waited_ms", waited_ms});
  LogInfo("lock.waiting", f);
}

void MigrationLock::Release() {
  if (!held_) return;
  held_ = false;
  auto r = db_.Exec("SELECT pg_advisory_unlock($1::bigint)", {key_});
  if (r.ok()) LogDebug("lock.released", {{"key", key_}});
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
    s = applier.ApplyAllInOne(todo);
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
