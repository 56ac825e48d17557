#include "section_runner.h"

#include <string_view>
#include <utility>

#include "backoff.h"
#include "lock_mode.h"
#include "log.h"
#include "resume.h"
#include "run_stats.h"
#include "sql_split.h"

namespace pgboot {
namespace {

// The pause before a retry: full jitter from 200 ms doubling to 5 s, so the DDL
// does not queue in lockstep with whoever blocks it.
constexpr int64_t kRetryBaseMs = 200;
constexpr int64_t kRetryCapMs = 5000;

std::string Label(const SectionRun& run) { return VersionLabel(run.version, run.name); }

// While it lives, every statement of `runs` ends in '\0' in place: the byte
// after a statement's text in its section's sql (its ';', a blank, or the
// string's own terminator) is overwritten and put back afterwards. So the
// statements go to ExecSequence as views of the file as it is held, not as
// copies (docs/reference.md, "Inputs pgboot refuses": the memory bound). The
// sections are the loaded files' own (never const objects), and nothing reads
// a section's whole sql while a statement is on its way.
class TerminatedStatements {
 public:
  explicit TerminatedStatements(const std::vector<SectionRun>& runs) {
    for (const SectionRun& run : runs) {
      for (const SqlStatement& st : run.section->statements) {
        char* end = const_cast<char*>(st.text.data() + st.text.size());
        saved_.emplace_back(end, *end);
        *end = '\0';
      }
    }
  }
  ~TerminatedStatements() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) *it->first = it->second;
  }
  TerminatedStatements(const TerminatedStatements&) = delete;
  TerminatedStatements& operator=(const TerminatedStatements&) = delete;

 private:
  std::vector<std::pair<char*, char>> saved_;
};

}  // namespace

std::string FailureLocation(const std::string& path, const SqlStatement& st, int position) {
  if (position > 0) {
    auto [line, col] = PositionToLineColumn(st, position);
    return path + ":" + std::to_string(line) + ":" + std::to_string(col);
  }
  return path + ":" + std::to_string(st.line);
}

RunnerOptions BaseRunnerOptions(const Config& cfg, const RunnerEvents& events, std::string what) {
  RunnerOptions o;
  o.start_event = events.start;
  o.progress_event = events.progress;
  o.done_event = events.done;
  o.failed_event = events.failed;
  o.what = std::move(what);
  o.progress_interval_ms = cfg.progress_interval_ms;
  o.statement_timeout_ms = cfg.statement_timeout_ms;
  return o;
}

RunnerOptions UpRunnerOptions(const Config& cfg) {
  RunnerOptions o = BaseRunnerOptions(
      cfg, {"migration.start", "migration.progress", "migration.applied", "migration.failed"},
      "migration");
  o.lock_timeout_ms = cfg.ddl_lock_timeout_ms;
  o.retry.lock_timeout = cfg.ddl_lock_timeout_ms > 0;
  o.retry.max_retries = cfg.ddl_retries;
  o.note_applied = true;
  return o;
}

AuditEntry AppliedAudit(const Migration& m, const SqlValue& ms, int64_t batch) {
  return {"applied",
          m.version,
          {{"execution_ms", ms},
           {"checksum", SqlValue::Text(m.checksum)},
           {"name", SqlValue::Text(m.name)},
           {"batch", SqlValue::Int(batch)}}};
}

SectionRun UpRun(const History& history, const Migration& m, int64_t batch) {
  SectionRun run{m.version, m.name, m.up_path, &m.up, {}, nullptr, ""};
  if (m.verify) {
    run.verify = &*m.verify;
    run.verify_path = m.verify_path;
  }
  if (m.up.statements.empty()) {
    LogWarn("migration.empty", {{"version", m.version}, {"name", m.name}, {"file", m.up_path}});
  }
  if (m.up.transactional) {
    const SqlValue ms = SqlValue::ServerElapsedMs();
    run.record = {history.RecordApplied(m, batch, ms), history.Audit(AppliedAudit(m, ms, batch)),
                  history.Notify()};
  }
  return run;
}

SectionRunner::SectionRunner(Database& db, const History& history, Clock& clock,
                             RunnerOptions options)
    : db_(db), history_(history), clock_(clock), options_(std::move(options)) {}

Status SectionRunner::Ticked(const SectionRun& run, const std::function<Status()>& body) {
  LogInfo(
      options_.start_event,
      {{"version", run.version}, {"name", run.name}, {"transaction", run.section->transactional}});
  const int64_t start = clock_.NowMs();
  db_.SetTicker(options_.progress_interval_ms, [&run, start, this] {
    LogInfo(options_.progress_event,
            {{"version", run.version}, {"name", run.name}, {"elapsed_ms", clock_.NowMs() - start}});
  });
  Status s = body();
  db_.SetTicker(0, nullptr);
  if (s.ok()) {
    const int64_t ms = clock_.NowMs() - start;
    LogInfo(options_.done_event, {{"version", run.version}, {"name", run.name}, {"ms", ms}});
    if (options_.note_applied) NoteApplied(run.version, ms);
  }
  return s;
}

std::vector<std::string> SectionRunner::Settings(bool synchronous_commit) const {
  std::vector<std::string> out;
  // Every commit but a run's last may skip waiting for the WAL flush: the
  // last, synchronous commit's flush covers all earlier ones (WAL order).
  if (!synchronous_commit) out.push_back("SET LOCAL synchronous_commit = off");
  if (options_.lock_timeout_ms > 0) {
    out.push_back("SET LOCAL lock_timeout = '" + std::to_string(options_.lock_timeout_ms) + "ms'");
  }
  if (options_.statement_timeout_ms > 0) {
    out.push_back("SET LOCAL statement_timeout = '" +
                  std::to_string(options_.statement_timeout_ms) + "ms'");
  }
  return out;
}

bool SectionRunner::Retryable(const Status& s, int64_t attempt) const {
  return options_.retry.lock_timeout && !s.is_signal() && s.sqlstate() == "55P03" &&
         attempt <= options_.retry.max_retries;
}

Status SectionRunner::RetryPause(const SectionRun& run, const Status& s, int64_t attempt,
                                 Backoff& backoff) {
  LogWarn(options_.retry_event, {{"version", run.version},
                                 {"name", run.name},
                                 {"attempt", attempt + 1},
                                 {"sqlstate", s.sqlstate()},
                                 {"reason", s.message()}});
  return clock_.Sleep(backoff.Next(clock_.Uniform01()));
}

SectionFailure SectionRunner::Attribute(const std::vector<SectionRun>& runs,
                                        const std::vector<size_t>& firsts, size_t failed,
                                        Status error) const {
  SectionFailure f;
  f.error = std::move(error);
  for (size_t i = runs.size(); i-- > 0 && !f.run;) {
    if (failed >= firsts[i]) {
      f.run = &runs[i];
      f.index = failed - firsts[i];
      f.in_statements = f.index < runs[i].section->statements.size();
    }
  }
  return f;
}

Status SectionRunner::RunInTransaction(const std::vector<SectionRun>& runs, bool synchronous_commit,
                                       const std::function<Result<bool>()>& reopen) {
  TransactionPipeline p;
  if (!reopen) {
    for (std::string& s : BeginStatements(db_)) p.Add(std::move(s));
  }
  for (std::string& s : Settings(synchronous_commit)) p.Add(std::move(s));
  std::vector<size_t> firsts;
  for (const SectionRun& run : runs) {
    firsts.push_back(p.size);
    for (const SqlStatement& st : run.section->statements) p.Borrow(st.text);
    if (run.verify != nullptr) {
      // Behind a savepoint rolled back to after the checks: a check cannot change data.
      p.Add("SAVEPOINT pgboot_verify");
      p.checks.push_back(&run);
      p.parts.emplace_back();
      p.Add("ROLLBACK TO SAVEPOINT pgboot_verify");
      p.Add("RELEASE SAVEPOINT pgboot_verify");
    }
    for (const std::string& w : run.record) p.Borrow(w);
  }
  p.Add("COMMIT");
  Backoff backoff(kRetryBaseMs, kRetryCapMs);
  for (int64_t attempt = 1;; ++attempt) {
    if (reopen && attempt > 1) {
      Result<bool> go = reopen();
      if (!go.ok()) return go.status();
      if (!*go) return Status::Ok();
    }
    size_t failed = 0;
    std::optional<CheckOutcome> check_failed;
    const SectionRun* check_run = nullptr;
    Status s;
    {
      TerminatedStatements terminated(runs);
      s = ExecWithChecks(p, &failed, &check_failed, &check_run);
    }
    if (s.ok()) return s;
    (void)db_.Exec("ROLLBACK");
    if (check_failed) return VerifyFailed(*check_run, *check_failed, {});
    SectionFailure f = Attribute(runs, firsts, failed, s);
    if (s.kind() == StatusKind::kConnectionLost) {
      // Not the SQL's fault: the server rolled it back; the caller reconnects.
      const SectionRun& lost = f.run ? *f.run : runs.front();
      return s.WithMessage(options_.what + " " + Label(lost) + " was interrupted: " + s.message());
    }
    if (f.run && Retryable(s, attempt)) {
      Status slept = RetryPause(*f.run, s, attempt, backoff);
      if (!slept.ok()) return slept;
      continue;
    }
    if (!f.run && runs.size() == 1 && s.is_signal()) f.run = &runs.front();
    // A signal cut whatever ran, and with several runs the failing one is
    // named even when its record failed: say where.
    if (f.run && (f.in_statements || s.is_signal() || runs.size() > 1)) return Failed(f, {});
    if (s.is_signal()) return s;
    if (runs.size() == 1) {
      return s.WithMessage(options_.what + " " + Label(runs.front()) +
                           " could not be recorded: " + s.message());
    }
    return s.WithMessage("single transaction failed: " + s.message());
  }
}

Status SectionRunner::SendOwnSettings() {
  if (db_.lock_mode() == LockMode::kTransaction) return Status::Ok();  // never a session SET
  std::vector<std::string> sets = SessionSettings(db_.ServerVersion());
  if (options_.statement_timeout_ms > 0) {
    sets.push_back("SET statement_timeout = '" + std::to_string(options_.statement_timeout_ms) +
                   "ms'");
  }
  for (const std::string& set : sets) {
    auto r = db_.Exec(set);
    if (!r.ok()) return r.status();
  }
  return Status::Ok();
}

Status SectionRunner::RunStatementByStatement(const SectionRun& run, size_t* failed,
                                              const SectionSteps& steps) {
  *failed = steps.first;
  if (options_.statement_timeout_ms > 0) {
    auto set = db_.Exec("SET statement_timeout = '" +
                        std::to_string(options_.statement_timeout_ms) + "ms'");
    if (!set.ok()) return set.status();
  }
  const std::vector<SqlStatement>& statements = run.section->statements;
  Status result;
  // A statement that ran; after RESET or DISCARD pgboot's own settings go again.
  auto ran = [&](size_t i) -> Status {
    if (ResetsSettings(statements[i].text)) return SendOwnSettings();
    return Status::Ok();
  };
  for (size_t i : steps.prelude) {
    if (!result.ok()) break;
    auto r = db_.Exec(statements[i].text);
    result = r.ok() ? ran(i) : r.status();
    if (!result.ok()) *failed = i;
  }
  if (result.ok() && steps.before) result = steps.before();
  for (size_t i = steps.first; i < statements.size() && result.ok(); ++i) {
    auto r = db_.Exec(statements[i].text);
    result = r.ok() ? ran(i) : r.status();
    if (result.ok() && steps.after) result = steps.after(i + 1);
    if (!result.ok()) *failed = i;
  }
  if (db_.InTransaction()) {
    (void)db_.Exec("ROLLBACK");
    if (result.ok()) {
      *failed = statements.empty() ? 0 : statements.size() - 1;
      result = Status::Sql(
          "the section ended inside a transaction it opened (BEGIN without COMMIT); it was "
          "rolled back",
          "");
    }
  }
  if (options_.statement_timeout_ms > 0) (void)db_.Exec("RESET statement_timeout");
  return result;
}

Status SectionRunner::Record(const std::vector<std::string>& writes, const std::string& what) {
  std::vector<std::string> stmts = BeginStatements(db_);
  stmts.insert(stmts.end(), writes.begin(), writes.end());
  stmts.push_back("COMMIT");
  Status s = db_.ExecSequence(Views(stmts), nullptr);
  if (s.ok()) return s;
  (void)db_.Exec("ROLLBACK");
  return HistoryError(s, what);
}

Status SectionRunner::Failed(const SectionFailure& f, const std::vector<std::string>& writes,
                             const std::string& note) {
  const SectionRun& run = *f.run;
  const Status& s = f.error;
  const std::vector<SqlStatement>& statements = run.section->statements;
  const SqlStatement* st = f.index < statements.size() ? &statements[f.index] : nullptr;
  const std::string loc = st ? FailureLocation(run.path, *st, s.position()) : run.path;
  AuditEntry audit{"failed", run.version, options_.failed_audit_fields};
  audit.fields.push_back({"statement", SqlValue::Int(static_cast<int64_t>(f.index + 1))});
  audit.fields.push_back({"location", SqlValue::Text(loc)});
  if (s.is_signal()) {
    LogWarn(options_.failed_event,
            {{"version", run.version},
             {"name", run.name},
             {"file", loc},
             {"reason", "interrupted by signal " + std::to_string(s.signal())}});
    if (!run.section->transactional) {
      // The statements before this one are committed: the audit log says so.
      audit.fields.push_back({"signal", SqlValue::Int(s.signal())});
      std::vector<std::string> all = writes;
      all.push_back(history_.Audit(audit));
      (void)Record(all, "recording the interruption");
    }
    return s;
  }
  LogError(options_.failed_event, {{"version", run.version},
                                   {"name", run.name},
                                   {"file", loc},
                                   {"sqlstate", s.sqlstate()},
                                   {"statement", static_cast<int64_t>(f.index + 1)},
                                   {"error", s.message()}});
  audit.fields.push_back({"sqlstate", SqlValue::Text(s.sqlstate())});
  audit.fields.push_back({"message", SqlValue::Text(Redact(s.message()))});
  // In a transaction of its own: in transaction lock mode its SET LOCALs make
  // the quoted message a standard string whatever the database's default.
  std::vector<std::string> all = writes;
  all.push_back(history_.Audit(audit));
  (void)Record(all, "recording the failure");
  return s.WithMessage(options_.what + " " + Label(run) + " failed at " + loc + ": " +
                       (s.sqlstate().empty() ? "" : "SQLSTATE " + s.sqlstate() + ": ") +
                       s.message() + note);
}

}  // namespace pgboot
