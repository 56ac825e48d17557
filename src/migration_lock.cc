#include "migration_lock.h"

#include <algorithm>

#include "backoff.h"
#include "log.h"
#include "run_stats.h"

namespace pgboot {
namespace {

// Full jitter up to 500 ms: waiting is cheap, but replicas should not poll in step.
constexpr int64_t kPollBaseMs = 50;
constexpr int64_t kPollCapMs = 500;

}  // namespace

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
  LockWait wait(db_, history_, cfg_, clock_);
  for (;;) {
    auto r = db_.Exec("SELECT pg_try_advisory_lock($1::bigint)", {key_});
    if (!r.ok()) return HistoryError(r.status(), "taking the migration lock");
    const int64_t now = clock_.NowMs();
    if (Cell(*r) == "t") {
      held_ = true;
      LogInfo("lock.acquired", {{"key", key_}, {"waited_ms", now - wait.start()}});
      return Status::Ok();
    }
    wait.LogHolderIfDue(now);
    if (Status s = wait.Pause(now); !s.ok()) return s;
  }
}

LockWait::LockWait(Database& db, const History& history, const Config& cfg, Clock& clock)
    : db_(db),
      history_(history),
      cfg_(cfg),
      clock_(clock),
      start_(clock.NowMs()),
      next_log_(start_),
      backoff_(kPollBaseMs, kPollCapMs) {}

LockWait::~LockWait() { NoteLockWait(clock_.NowMs() - start_); }

void LockWait::LogHolderIfDue(int64_t now) {
  if (now < next_log_) return;
  next_log_ = now + std::max<int64_t>(cfg_.lock_log_interval_ms, 1);
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
  f.push_back({"waited_ms", now - start_});
  LogInfo("lock.waiting", f);
}

Status LockWait::Pause(int64_t now) {
  const bool forever = cfg_.lock_timeout_ms == 0;
  if (!forever && now - start_ >= cfg_.lock_timeout_ms) {
    return Status::LockTimeout("could not get the migration lock within " +
                               FormatDuration(cfg_.lock_timeout_ms) +
                               " (another pgboot is migrating; see lock.waiting for the holder)");
  }
  // At least 1 ms, and never past the deadline or the next lock.waiting line.
  int64_t sleep = backoff_.Next(clock_.Uniform01()) + 1;
  if (!forever) sleep = std::min(sleep, std::max<int64_t>(start_ + cfg_.lock_timeout_ms - now, 1));
  sleep = std::min(sleep, std::max<int64_t>(next_log_ - now, 1));
  return clock_.Sleep(sleep);
}

void MigrationLock::Release() {
  if (!held_) return;
  held_ = false;
  auto r = db_.Exec("SELECT pg_advisory_unlock($1::bigint)", {key_});
  if (r.ok()) LogDebug("lock.released", {{"key", key_}});
}

}  // namespace pgboot
