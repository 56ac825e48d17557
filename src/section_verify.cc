// SectionRunner's verify checks (docs/reference.md, "Verify sections"): between the pipelined
// parts of a migration's transaction, or apart after a transaction:false section.
#include "history.h"
#include "log.h"
#include "section_runner.h"

namespace pgboot {

// Runs the parts pipelined, the checks between them. A failing check sets
// `*check_failed` and `*check_run` and returns an SQL status; `*failed` is the
// index (over all parts) of the statement that failed, or of the one the
// checks ran before.
Status SectionRunner::ExecWithChecks(const TransactionPipeline& p, size_t* failed,
                                     std::optional<CheckOutcome>* check_failed,
                                     const SectionRun** check_run) {
  size_t offset = 0;
  for (size_t i = 0; i < p.parts.size(); ++i) {
    size_t local = 0;
    Status s = db_.ExecSequence(p.parts[i], &local);
    if (!s.ok()) {
      *failed = offset + local;
      return s;
    }
    offset += p.parts[i].size();
    if (i >= p.checks.size()) continue;
    const SectionRun& run = *p.checks[i];
    auto outcomes = RunChecks(db_, run.version, run.verify_path, *run.verify, false);
    if (!outcomes.ok()) {
      *failed = offset;
      return outcomes.status();
    }
    for (const CheckOutcome& c : *outcomes) {
      if (c.ok) continue;
      *check_failed = c;
      *check_run = &run;
      return Status::Sql(c.message, "");
    }
  }
  return Status::Ok();
}

Status SectionRunner::RunChecksApart(const SectionRun& run,
                                     const std::vector<std::string>& writes) {
  if (run.verify == nullptr) return Status::Ok();
  const std::vector<std::string> begin = BeginStatements(db_);
  Status s = db_.ExecSequence(Views(begin));
  if (!s.ok()) {
    (void)db_.Exec("ROLLBACK");
    return HistoryError(s, "opening the transaction of verify checks");
  }
  auto outcomes = RunChecks(db_, run.version, run.verify_path, *run.verify, false);
  (void)db_.Exec("ROLLBACK");
  if (!outcomes.ok()) return outcomes.status();
  for (const CheckOutcome& c : *outcomes) {
    if (!c.ok) return VerifyFailed(run, c, writes);
  }
  return Status::Ok();
}

Status SectionRunner::VerifyFailed(const SectionRun& run, const CheckOutcome& check,
                                   const std::vector<std::string>& writes) {
  const std::string loc = CheckLocation(check);
  LogError("migration.verify_failed",
           {{"version", run.version}, {"name", run.name}, {"file", loc}, {"error", check.message}});
  AuditEntry audit{"failed", run.version, options_.failed_audit_fields};
  audit.fields.push_back({"verify", SqlValue::Bool(true)});
  audit.fields.push_back({"location", SqlValue::Text(loc)});
  audit.fields.push_back({"message", SqlValue::Text(Redact(check.message))});
  // In a transaction of its own, as Failed writes its rows.
  std::vector<std::string> all = writes;
  all.push_back(history_.Audit(audit));
  (void)Record(all, "recording the verify failure");
  return Status::Sql(options_.what + " " + VersionLabel(run.version, run.name) +
                         " failed its verify check at " + loc + ": " + check.message,
                     "");
}

}  // namespace pgboot
