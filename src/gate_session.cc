#include "gate_session.h"

#include <algorithm>

#include "history.h"
#include "log.h"

namespace pgboot {

std::string GateGrants(const QualifiedName& table, const std::string& role) {
  const std::string r = QuoteIdent(role);
  return "GRANT USAGE ON SCHEMA " + QuoteIdent(table.schema) + " TO " + r + "; GRANT SELECT ON " +
         table.Quoted() + " TO " + r + ";";
}

GateSession::GateSession(std::unique_ptr<Database> db, const Config& cfg,
                         GateSessionOptions options, Clock& clock)
    : db_(std::move(db)), cfg_(cfg), options_(std::move(options)), clock_(clock) {}

Status GateSession::Listen() {
  // The payload migrate sends, spelled by the server so that both sides agree.
  auto r = db_->Exec("SELECT quote_ident($1) || '.' || quote_ident($2)",
                     {cfg_.history_table.schema, cfg_.history_table.table});
  if (!r.ok()) return r.status();
  payload_ = Cell(*r);
  auto listened = db_->Exec("LISTEN pgboot");
  if (!listened.ok()) return listened.status();
  listening_ = true;
  return Status::Ok();
}

Status GateSession::PermissionError(const Status& s) {
  std::string role = "the app's role";
  if (auto who = db_->Exec("SELECT current_user"); who.ok()) role = Cell(*who);
  return Status::Precondition("the gate cannot read the history table " +
                              cfg_.history_table.Quoted() + " (" + s.message() +
                              "); the role needs: " + GateGrants(cfg_.history_table, role));
}

Result<std::vector<HistoryRow>> GateSession::ReadHistory() {
  if (options_.listen && !listening_ && db_->lock_mode() == LockMode::kSession) {
    if (Status s = Listen(); !s.ok()) return s;
  }
  History history(*db_, cfg_.history_table);
  auto rows = history.Read();
  if (!rows.ok() && rows.status().sqlstate() == "42501") return PermissionError(rows.status());
  return rows;
}

Status GateSession::Wait(int64_t ms) {
  if (!listening_) return options_.sleep(ms);
  const int64_t until = clock_.NowMs() + ms;
  for (;;) {
    auto got = db_->WaitForNotifications(std::max<int64_t>(0, until - clock_.NowMs()));
    if (!got.ok()) return got.status();
    if (got->empty()) return Status::Ok();  // the poll is due
    for (const std::string& p : *got) {
      if (p == payload_) {
        LogDebug("gate.notified", {{"payload", p}});
        return Status::Ok();
      }
      LogDebug("gate.notification", {{"payload", p}, {"ignored", true}});
    }
  }
}

Status GateSession::Reconnect(int64_t deadline_ms) {
  db_.reset();  // one connection at a time
  listening_ = false;
  auto db = options_.connect(deadline_ms);
  if (!db.ok()) return db.status();
  db_ = std::move(*db);
  return Status::Ok();
}

}  // namespace pgboot
