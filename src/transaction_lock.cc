#include "transaction_lock.h"

#include <algorithm>

#include "log.h"
#include "migration_lock.h"
#include "version.h"

namespace pgboot {
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
  LockWait wait(db_, history_, cfg_, clock_);
  for (;;) {
    auto r = db_.Exec(open);
    if (!r.ok()) {
      Rollback();
      return HistoryError(r.status(), "taking the migration lock");
    }
    const int64_t now = clock_.NowMs();
    if (Cell(*r) == "t") {
      LogFields f = {
          {"key", Cell(*r, 0, 1)}, {"waited_ms", now - wait.start()}, {"mode", "transaction"}};
      if (logged_acquired_) {
        LogDebug("lock.acquired", f);
      } else {
        LogInfo("lock.acquired", f);
        logged_acquired_ = true;
      }
      return Status::Ok();
    }
    wait.LogHolderIfDue(now);  // still inside the transaction: its SET LOCALs apply
    Rollback();
    if (Status s = wait.Pause(now); !s.ok()) return s;
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
    if (Status w = db.ExecSequence(Views(*writes), nullptr); !w.ok()) {
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
  if (Status w = db.ExecSequence(Views(stmts), nullptr); !w.ok()) {
    (void)db.Exec("ROLLBACK");
    return HistoryError(w, what);
  }
  return Status::Ok();
}

}  // namespace pgboot
