// MigrateReconnecting (declared in migrator.h): migrate again after a lost
// connection, within the bound docs/reference.md ("After a crash") states.
#include <optional>
#include <string>

#include "log.h"
#include "migrator.h"

namespace pgboot {
namespace {

// What the history says about progress: each row's version, status and
// statements_done. Any change between two reconnects is progress, whoever made it.
Result<std::string> HistoryProgress(Database& db, const Config& cfg) {
  History history(db, cfg.history_table);
  auto rows = history.Read();
  if (!rows.ok()) return rows.status();
  std::string out;
  for (const HistoryRow& r : *rows) {
    out += r.version + " " + r.status + " " +
           (r.statements_done ? std::to_string(*r.statements_done) : "-") + "\n";
  }
  return out;
}

Status GaveUp(const Status& lost, int times) {
  return Status::ConnectionLost("the connection was lost " + std::to_string(times) +
                                    " times in a row with no progress in the history between "
                                    "them, so pgboot stops reconnecting (does a statement end the "
                                    "server's session every time?); the last time: " +
                                    lost.message(),
                                lost.sqlstate());
}

}  // namespace

Status MigrateReconnecting(std::unique_ptr<Database> db, const Reconnect& reconnect,
                           const Config& cfg, const std::vector<Migration>& files,
                           const MigrateOptions& options, Clock& clock) {
  Status s = Migrate(*db, cfg, files, options, clock);
  std::optional<std::string> before;  // the history as the previous reconnect found it
  int stalled = 0;                    // lost connections since progress was last seen
  for (int64_t attempt = 1; s.kind() == StatusKind::kConnectionLost; ++attempt) {
    ++stalled;
    LogWarn("migrate.reconnect", {{"attempt", attempt}, {"reason", Redact(s.message())}});
    db.reset();  // the old session is gone; its lock went with it
    auto again = reconnect();
    if (!again.ok()) return again.status();
    db = std::move(*again);
    auto now = HistoryProgress(*db, cfg);
    if (!now.ok()) {
      // Lost again before the history could be read: one more loss, no news.
      if (now.status().kind() != StatusKind::kConnectionLost) return now.status();
      if (stalled >= kLostWithoutProgress) return GaveUp(now.status(), stalled);
      s = now.status();
      continue;
    }
    if (before && *now != *before) stalled = 1;  // progress before this loss
    before = std::move(*now);
    if (stalled >= kLostWithoutProgress) return GaveUp(s, stalled);
    s = Migrate(*db, cfg, files, options, clock);
  }
  return s;
}

}  // namespace pgboot
