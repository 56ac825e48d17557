#include "transaction_lock.h"

#include <algorithm>

#include "backoff.h"
#include "log.h"
#include "migration_lock.h"
#include "version.h"

namespace pgboot {
namespace {

// As session mode's poll: full jitter up to 500 ms.
constexpr int64_t kPollBaseMs = 50;
constexpr int64_t kPollCapMs = 500;

}  // namespace

Status RefuseInTransactionMode(std::string_view what) {
  return Status::Usage(std::string(what) +
                       " needs session lock mode, but this connection uses transaction lock mode "
                       "(--lock-mode, docs/pooler.md): " +
                       kSessionModeWayOut);
}

TransactionLock::TransactionLock(Database& db, const History& history, const Config& cfg,
                                 Clock& clock)
    : db_(db), history_(history), cfg_(cfg), clock_(clock) {}

Status TransactionLock::Open() {
  // The key is computed inside the transaction, after its SET LOCALs: its
  // literals then read the same whatever the database's standard_conforming_strings.
  std::string open;
  for (const std::string& s : BeginStatements(db_)) open += s + "; ";
  open +=
      "SELECT pg_try_advisory_xact_lock(k), k FROM (SELECT " + history_.LockKeySql() + " AS k) key";
  const int64_t start = clock_.NowMs();
  int64_t next_log = start;
  Backoff backoff(kPollBaseMs, kPollCapMs);
  for (;;) {
    auto r = db_.Exec(open);
    if (!r.ok()) {
      Rollback();
      return HistoryError(r.status(), "taking the migration lock");
    }
    const int64_t now = clock_.NowMs();
    if (Cell(*r) == "t") {
      LogFields f = {{"key", Cell(*r, 0, 1)}, {"waited_ms", now - start}, {"mode", "transaction"}};
      if (logged_acquired_) {
        LogDebug("lock.acquired", f);
      } else {
        LogInfo("lock.acquired", f);
        logged_acquired_ = true;
      }
      return Status::Ok();
    }
    if (now >= next_log) {
      LogHolder(now - start);  // still inside the transaction: its SET LOCALs apply
      next_log = now + std::max<int64_t>(cfg_.lock_log_interval_ms, 1);
    }
    Rollback();
    const bool forever = cfg_.lock_timeout_ms == 0;
    if (!forever && now - start >= cfg_.lock_timeout_ms) {
      return Status::LockTimeout("could not get the migration lock within " +
                                 FormatDuration(cfg_.lock_timeout_ms) +
                                 " (another pgboot is migrating; see lock.waiting for the holder)");
    }
    int64_t sleep = backoff.Next(clock_.Uniform01()) + 1;
    if (!forever) sleep = std::min(sleep, std::max<int64_t>(start + cfg_.lock_timeout_ms - now, 1));
    sleep = std::min(sleep, std::max<int64_t>(next_log - now, 1));
    Status s = clock_.Sleep(sleep);
    if (!s.ok()) return s;
  }
}

void TransactionLock::Rollback() { (void)db_.Exec("ROLLBACK"); }

Status TransactionLock::Commit(const std::string& what) {
  auto r = db_.Exec("COMMIT");
  if (r.ok()) return Status::Ok();
  Rollback();
  return HistoryError(r.status(), what);
}

Status WriteUnderLock(Database& db, History& history, const Config& cfg, Clock& clock,
                      const PlanWrites& plan, const std::string& what) {
  if (db.lock_mode() == LockMode::kTransaction) {
    TransactionLock lock(db, history, cfg, clock);
    if (Status s = lock.Open(); !s.ok()) return s;
    Status s = history.Create();
    Result<std::vector<HistoryRow>> rows =
        s.ok() ? history.Read() : Result<std::vector<HistoryRow>>(s);
    Result<std::vector<std::string>> writes = rows.ok() ? plan(*rows) : rows.status();
    if (!writes.ok() || writes->empty()) {
      lock.Rollback();
      return writes.ok() ? Status::Ok() : writes.status();
    }
    if (Status w = db.ExecSequence(*writes, nullptr); !w.ok()) {
      lock.Rollback();
      return HistoryError(w, what);
    }
    return lock.Commit(what);
  }
  MigrationLock lock(db, history, cfg, clock);
  auto rows = LockAndReadHistory(lock, history);
  if (!rows.ok()) return rows.status();
  Result<std::vector<std::string>> writes = plan(*rows);
  if (!writes.ok()) return writes.status();
  if (writes->empty()) return Status::Ok();
  std::vector<std::string> stmts = BeginStatements(db);
  stmts.insert(stmts.end(), writes->begin(), writes->end());
  stmts.push_back("COMMIT");
  if (Status w = db.ExecSequence(stmts, nullptr); !w.ok()) {
    (void)db.Exec("ROLLBACK");
    return HistoryError(w, what);
  }
  return Status::Ok();
}

void TransactionLock::LogHolder(int64_t waited_ms) {
  auto h = db_.Exec(history_.LockHolderSql());
  LogFields f;
  if (h.ok() && !h->rows.empty()) {
    const std::string pid = Cell(*h, 0, 0);
    f = {{"holder_pid", static_cast<int64_t>(IsVersionText(pid) ? std::stoll(pid) : 0)},
         {"holder_application_name", Cell(*h, 0, 1)},
         {"holder_since", Cell(*h, 0, 2)}};
  } else {
    f = {{"holder_pid", static_cast<int64_t>(0)},
         {"holder_application_name", ""},
         {"holder_since", ""}};
  }
  f.push_back({"waited_ms", waited_ms});
  LogInfo("lock.waiting", f);
}

}  // namespace pgboot
