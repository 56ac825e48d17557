// SectionRunner: runs sections of migration files and records their outcome — the engine of migrate
// and rollback.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backoff.h"
#include "clock.h"
#include "config.h"
#include "database.h"
#include "history.h"
#include "migration_files.h"
#include "verify.h"

namespace pgboot {

// Which failures a transactional section is run again after, from BEGIN.
struct RetryPolicy {
  // Retry when a statement hit lock_timeout (SQLSTATE 55P03), at most
  // `max_retries` times, with a jittered pause (Backoff) between attempts.
  bool lock_timeout = false;
  int64_t max_retries = 0;
};

// What differs between running up sections (migrate) and down sections
// (rollback): event names, words, settings and the retry policy.
struct RunnerOptions {
  std::string start_event;     // migration.start
  std::string progress_event;  // migration.progress, every progress_interval_ms
  std::string done_event;      // migration.applied
  std::string failed_event;    // migration.failed
  std::string retry_event = "migration.retry";
  std::string what;  // "migration" / "rollback of": messages say "<what> 3 (name) failed at ..."
  // Added to every `failed` audit row (rollback: direction=down).
  std::vector<std::pair<std::string, SqlValue>> failed_audit_fields;
  int64_t progress_interval_ms = 0;
  int64_t statement_timeout_ms = 0;  // 0: the server's setting
  int64_t lock_timeout_ms = 0;       // SET LOCAL lock_timeout in transactions; 0: not set
  RetryPolicy retry;
  bool note_applied = false;  // each success counts in RunStats (migrate's up sections)
};

// The events a direction logs: <start>, <progress>, <done>, <failed>.
struct RunnerEvents {
  std::string start, progress, done, failed;
};

// Options from the configuration every direction shares (progress interval,
// statement timeout), with no lock_timeout and no retry: callers add theirs.
RunnerOptions BaseRunnerOptions(const Config& cfg, const RunnerEvents& events, std::string what);

// One section to run: its statements, where they come from, and (for a
// transactional section) the history writes that commit with it.
struct SectionRun {
  std::string version;
  std::string name;
  std::string path;  // file of the section, for file:line:col
  const Section* section = nullptr;
  std::vector<std::string> record;  // History SQL, after the statements, same transaction
  // The migration's verify checks (docs/reference.md, "Verify sections"), or null.
  const Section* verify = nullptr;
  std::string verify_path;
};

// The options of up sections, the same in both lock modes: the migration.*
// events, SET LOCAL lock_timeout from --ddl-lock-timeout and its --ddl-retries.
RunnerOptions UpRunnerOptions(const Config& cfg);

// The audit row of an applied migration, its time `ms`.
AuditEntry AppliedAudit(const Migration& m, const SqlValue& ms, int64_t batch);

// m's up section (migration.empty logged when it has no statements: recorded
// like any other, docs/reference.md "Migration files", but maybe forgotten).
// A transactional one commits with its applied row, its audit row and NOTIFY
// pgboot, timed by the server; a transaction:false one records its own rows.
SectionRun UpRun(const History& history, const Migration& m, int64_t batch);

// Where a failure happened: which run, which of its statements (index), and
// the error. `in_statements` is false when it was pgboot's own SQL (BEGIN,
// settings, the record statements, COMMIT).
struct SectionFailure {
  const SectionRun* run = nullptr;
  size_t index = 0;
  bool in_statements = false;
  Status error;
};

// `path:line` or `path:line:column` when the server gave a position.
std::string FailureLocation(const std::string& path, const SqlStatement& st, int position);

// How a transaction:false section is stepped through: migrate starts a
// resumed one part-way and records statements_done after each statement.
struct SectionSteps {
  size_t first = 0;                // the statement to start at
  std::vector<size_t> prelude;     // run before it (a resume's earlier settings)
  std::function<Status()> before;  // after the prelude, before statement `first`
  // Runs right after statement i completed, with i + 1, on the same session;
  // an error stops the section there.
  std::function<Status(size_t done)> after;
};

class SectionRunner {
 public:
  SectionRunner(Database& db, const History& history, Clock& clock, RunnerOptions options);

  // Logs start_event, runs `body` with the progress ticker on and logs
  // done_event (with ms) when it succeeds.
  Status Ticked(const SectionRun& run, const std::function<Status()>& body);

  // The runs' statements and records in one transaction, in one pipelined
  // round trip: BEGIN, SET LOCAL settings (synchronous_commit = off unless
  // `synchronous_commit`), each run's statements then its record, COMMIT.
  // Retried from BEGIN per the policy. On failure everything is rolled back;
  // a failing statement is attributed to its run (Failed), a failure of
  // pgboot's own SQL says the run could not be recorded.
  //
  // In transaction lock mode the caller opens each attempt's transaction
  // itself (BEGIN, SET LOCALs, the lock, the re-check: TransactionLock):
  // with `reopen` given, the first attempt's transaction is already open, and
  // `reopen` opens the next attempt's; it answers false when another runner
  // did the work meanwhile (its transaction rolled back): nothing is left to do.
  Status RunInTransaction(const std::vector<SectionRun>& runs, bool synchronous_commit,
                          const std::function<Result<bool>()>& reopen = nullptr);

  // transaction:false: each statement on its own, under statement_timeout;
  // after a RESET or DISCARD statement pgboot's own settings are sent again.
  // On failure `*failed` is the failing statement's index. A transaction the
  // section opened and left open (or failed in) is rolled back.
  Status RunStatementByStatement(const SectionRun& run, size_t* failed,
                                 const SectionSteps& steps = {});

  // A transaction:false section's verify checks, after its statements, in a
  // transaction that is rolled back. A failing check is reported as
  // VerifyFailed with `writes` (e.g. History::MarkFailed). Ok without checks.
  Status RunChecksApart(const SectionRun& run, const std::vector<std::string>& writes);

  // Reports a failed check of `run`: logs migration.verify_failed with its
  // file:line, runs `writes`, writes a `failed` audit row (verify: true), and
  // returns the SQL error (exit 5) naming the check.
  Status VerifyFailed(const SectionRun& run, const CheckOutcome& check,
                      const std::vector<std::string>& writes);

  // Runs `writes` in a transaction of their own (opened by BeginStatements,
  // so it carries the SET LOCALs in transaction lock mode); on failure rolls
  // back and returns an Internal error naming `what`.
  Status Record(const std::vector<std::string>& writes, const std::string& what);

  // Reports a failed section: logs failed_event with file:line[:col], runs
  // `writes` (e.g. History::MarkFailed), then a `failed` audit row — unless a
  // signal interrupted a transactional section, whose rollback left nothing
  // to explain. Returns the error to exit with: the signal, or the SQL error
  // with the location in front (and `note` after).
  Status Failed(const SectionFailure& f, const std::vector<std::string>& writes,
                const std::string& note = "");

  const RunnerOptions& options() const { return options_; }
  Database& db() { return db_; }
  Clock& clock() { return clock_; }

 private:
  std::vector<std::string> Settings(bool synchronous_commit) const;
  Status SendOwnSettings();
  bool Retryable(const Status& s, int64_t attempt) const;
  Status RetryPause(const SectionRun& run, const Status& s, int64_t attempt, Backoff& backoff);
  // One transaction's statements, pipelined in parts: the verify checks of
  // checks[i] run after parts[i], whose last statement sets their savepoint.
  // pgboot's own statements are owned here (a deque keeps them in place); a
  // section's are borrowed, terminated in place while they are sent.
  struct TransactionPipeline {
    std::vector<std::vector<std::string_view>> parts{1};
    std::vector<const SectionRun*> checks;
    std::deque<std::string> own;
    size_t size = 0;  // statements in all parts
    void Add(std::string s) { Borrow(own.emplace_back(std::move(s))); }
    void Borrow(std::string_view s) {
      parts.back().push_back(s);
      ++size;
    }
  };
  Status ExecWithChecks(const TransactionPipeline& p, size_t* failed,
                        std::optional<CheckOutcome>* check_failed, const SectionRun** check_run);
  SectionFailure Attribute(const std::vector<SectionRun>& runs, const std::vector<size_t>& firsts,
                           size_t failed, Status error) const;

  Database& db_;
  const History& history_;
  Clock& clock_;
  RunnerOptions options_;
};

}  // namespace pgboot
