// PgDatabase: a session over libpq, non-blocking, every wait through the EventLoop.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "clock.h"
#include "database.h"
#include "status.h"

struct pg_conn;    // libpq's PGconn: libpq-fe.h stays inside the pg_* files
struct pg_result;  // libpq's PGresult

namespace pgboot {

// A connected session in non-blocking mode. A terminating signal during a call
// cancels the statement (PQcancel, repeated every second), waits up to 5 s for
// it to end, and returns Status::Signal; the session is then idle (its
// transaction, if any, aborted) and usable for ROLLBACK and unlocking. A lost
// connection reports SQLSTATE 08006.
class PgDatabase : public Database {
 public:
  // Takes ownership of an established connection.
  PgDatabase(pg_conn* conn, Clock& clock);
  ~PgDatabase() override;
  PgDatabase(const PgDatabase&) = delete;
  PgDatabase& operator=(const PgDatabase&) = delete;

  Result<QueryResult> Exec(std::string_view sql, const std::vector<SqlParam>& params = {}) override;

  // One pipeline: each statement is sent with the extended protocol (so each
  // must be a single statement), then one Sync. Without an open transaction
  // the server runs everything up to the Sync as one implicit transaction, so
  // statements that refuse a transaction block (CREATE INDEX CONCURRENTLY,
  // VACUUM) belong in Exec, one at a time. After a failure the server skips
  // the rest (PGRES_PIPELINE_ABORTED).
  Status ExecSequence(const std::vector<std::string_view>& statements,
                      size_t* failed_index = nullptr) override;

  void SetTicker(int64_t interval_ms, std::function<void()> tick) override;
  Result<std::vector<std::string>> WaitForNotifications(int64_t timeout_ms) override;
  bool InTransaction() override;
  int BackendPid() override;
  std::string DatabaseName() override;
  int ServerVersion() override;
  LockMode lock_mode() override { return lock_mode_; }
  void set_lock_mode(LockMode mode) { lock_mode_ = mode; }

  // Exec that gives up at `deadline_ms` on the clock (< 0: never) with a Status of
  // kind kTimeout; the session is then unusable. Readiness's SELECT 1 uses it.
  Result<QueryResult> ExecUntil(std::string_view sql, const std::vector<SqlParam>& params,
                                int64_t deadline_ms);

 private:
  struct Io;
  Io AwaitResult(int64_t deadline_ms);
  Io AwaitReadable(int64_t deadline_ms);
  // Collects results until the command (or, in pipeline mode, the Sync) is
  // done, handing each one to `on_result` with the index of its statement.
  Status Drive(int64_t deadline_ms, bool pipeline,
               const std::function<void(const pg_result*, size_t)>& on_result, size_t* progress);
  Status DiscardCopyOut(int64_t deadline_ms, bool pipeline);
  Status Interrupt(int signo, bool pipeline);
  void SendCancel();
  Status Usable();
  Status Lost();
  Status SessionEnded(const Status& error);
  Status SendFailed();
  int64_t Remaining(int64_t deadline_ms);

  pg_conn* conn_;
  Clock& clock_;
  bool broken_ = false;  // results left unread after a timeout or a failed cancel
  int64_t tick_interval_ms_ = 0;
  int64_t next_tick_ms_ = 0;
  std::function<void()> tick_;
  std::string database_name_;
  LockMode lock_mode_ = LockMode::kSession;
};

}  // namespace pgboot
