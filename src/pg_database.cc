#include "pg_database.h"

#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "event_loop.h"
#include "log.h"
#include "pg_result.h"

// Defined only in the static binary (src/static/pq_query_copy.c, with -Wl,--wrap=strdup):
// the query text given next is not duplicated by libpq. Elsewhere the weak reference is null.
extern "C" void pgboot_skip_query_copy(const char* query) __attribute__((weak));

namespace pgboot {
namespace {

// After a terminating signal: how long to wait for the cancelled statement to
// end (the runtime's grace period is 10-30 s), and how often to cancel again
// (a cancel that reaches the server between two statements cancels nothing).
constexpr int64_t kDrainMs = 5000;
constexpr int64_t kRecancelMs = 1000;

}  // namespace

struct PgDatabase::Io {
  enum Kind { kOk, kTimeout, kSignal, kLost } kind = kOk;
  int signo = 0;
};

PgDatabase::PgDatabase(pg_conn* conn, Clock& clock) : conn_(conn), clock_(clock) {
  PQsetNoticeReceiver(conn_, OnNotice, nullptr);
  // Non-blocking sends: every wait, including for a full socket buffer, goes
  // through the EventLoop, where SIGTERM is seen.
  if (PQsetnonblocking(conn_, 1) != 0) broken_ = true;
}

PgDatabase::~PgDatabase() { PQfinish(conn_); }

bool PgDatabase::InTransaction() {
  const PGTransactionStatusType t = PQtransactionStatus(conn_);
  return t == PQTRANS_INTRANS || t == PQTRANS_INERROR;
}

void PgDatabase::SetTicker(int64_t interval_ms, std::function<void()> tick) {
  tick_interval_ms_ = interval_ms;
  tick_ = std::move(tick);
  next_tick_ms_ = clock_.NowMs() + interval_ms;
}

int64_t PgDatabase::Remaining(int64_t deadline_ms) {
  if (deadline_ms < 0) return -1;
  return std::max<int64_t>(0, deadline_ms - clock_.NowMs());
}

Status PgDatabase::Lost() {
  broken_ = true;
  std::string why = OneLine(PQerrorMessage(conn_));
  return Status::ConnectionLost("lost the database connection" + (why.empty() ? "" : ": " + why));
}

// An error the server sent as it ended the session (shutdown, crash, a
// terminated backend, a network failure) is a lost connection, not SQL that
// failed: migrate reconnects and resumes (docs/reference.md, "After a crash").
Status PgDatabase::SessionEnded(const Status& error) {
  const std::string& st = error.sqlstate();
  const bool ending = st.rfind("08", 0) == 0 || st == "57P01" || st == "57P02" || st == "57P03";
  if (!ending && PQstatus(conn_) != CONNECTION_BAD) return error;
  broken_ = true;
  return Status::ConnectionLost("lost the database connection: " + error.message(),
                                st.empty() ? "08006" : st);
}

Status PgDatabase::SendFailed() {
  if (PQstatus(conn_) == CONNECTION_BAD) return Lost();
  return Status::Sql("could not send the statement: " + OneLine(PQerrorMessage(conn_)), "");
}

Status PgDatabase::Usable() {
  if (!broken_ && PQstatus(conn_) == CONNECTION_OK) return Status::Ok();
  return Status::ConnectionLost("the database connection is no longer usable");
}

// Waits until PQgetResult will not block, flushing pending output meanwhile
// (the non-blocking protocol of PQflush: on read-ready consume, then flush again).
PgDatabase::Io PgDatabase::AwaitResult(int64_t deadline_ms) {
  for (;;) {
    const int flushed = PQflush(conn_);
    if (flushed < 0) return {Io::kLost};
    if (!PQisBusy(conn_)) return {Io::kOk};
    const int sock = PQsocket(conn_);
    if (sock < 0 || PQstatus(conn_) == CONNECTION_BAD) return {Io::kLost};
    const short events = static_cast<short>(POLLIN | (flushed == 1 ? POLLOUT : 0));
    int64_t wait_ms = Remaining(deadline_ms);
    const bool ticking = tick_ && tick_interval_ms_ > 0;
    if (ticking) {
      const int64_t to_tick = std::max<int64_t>(next_tick_ms_ - clock_.NowMs(), 0);
      if (wait_ms < 0 || to_tick < wait_ms) wait_ms = to_tick;
    }
    const EventLoop::Wake wake = EventLoop::Get().Wait(sock, events, wait_ms);
    if (wake.kind == EventLoop::Wake::kSignal) return {Io::kSignal, wake.signo};
    if (ticking && clock_.NowMs() >= next_tick_ms_) {
      next_tick_ms_ = clock_.NowMs() + tick_interval_ms_;
      tick_();
    }
    if (wake.kind == EventLoop::Wake::kTimeout) {
      if (deadline_ms < 0 || clock_.NowMs() < deadline_ms) continue;  // only a tick
      return {Io::kTimeout};
    }
    if ((wake.revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) && !PQconsumeInput(conn_)) {
      // The server may have said why before it closed (e.g. 57P01): let the
      // caller read that result first.
      if (!PQisBusy(conn_)) return {Io::kOk};
      return {Io::kLost};
    }
  }
}

PgDatabase::Io PgDatabase::AwaitReadable(int64_t deadline_ms) {
  const int sock = PQsocket(conn_);
  if (sock < 0) return {Io::kLost};
  const EventLoop::Wake wake = EventLoop::Get().Wait(sock, POLLIN, Remaining(deadline_ms));
  if (wake.kind == EventLoop::Wake::kSignal) return {Io::kSignal, wake.signo};
  if (wake.kind == EventLoop::Wake::kTimeout) return {Io::kTimeout};
  if (!PQconsumeInput(conn_)) return {Io::kLost};
  return {Io::kOk};
}

Result<std::vector<std::string>> PgDatabase::WaitForNotifications(int64_t timeout_ms) {
  Status usable = Usable();
  if (!usable.ok()) return usable;
  const int64_t deadline = timeout_ms < 0 ? -1 : clock_.NowMs() + timeout_ms;
  std::vector<std::string> payloads;
  for (;;) {
    while (PGnotify* n = PQnotifies(conn_)) {
      payloads.emplace_back(n->extra ? n->extra : "");
      PQfreemem(n);
    }
    if (!payloads.empty()) return payloads;
    // No statement runs: the socket only becomes readable for a notification,
    // the server's goodbye (57P01 on shutdown, read as a notice) or its EOF.
    const Io io = AwaitReadable(deadline);
    if (io.kind == Io::kSignal) return Status::Signal(io.signo);
    if (io.kind == Io::kLost || PQstatus(conn_) == CONNECTION_BAD) return Lost();
    if (io.kind == Io::kTimeout) return payloads;
  }
}

void PgDatabase::SendCancel() {
  PGcancel* cancel = PQgetCancel(conn_);
  if (cancel == nullptr) return;
  char err[256] = {};
  if (!PQcancel(cancel, err, sizeof err)) LogWarn("db.cancel_failed", {{"reason", OneLine(err)}});
  PQfreeCancel(cancel);
}

// Cancels the running statement and reads what is left of the command, so
// that the session is idle again for the caller's ROLLBACK and unlock. A
// second signal or a dead server stops the wait: the session is then
// unusable and pgboot's exit closes it.
Status PgDatabase::Interrupt(int signo, bool pipeline) {
  LogDebug("db.cancel", {{"signal", signo}});
  SendCancel();
  const int64_t give_up = clock_.NowMs() + kDrainMs;
  int64_t recancel = clock_.NowMs() + kRecancelMs;
  for (;;) {
    const Io io = AwaitResult(std::min(give_up, recancel));
    if (io.kind == Io::kTimeout) {
      if (clock_.NowMs() >= give_up) {
        broken_ = true;
        break;
      }
      SendCancel();
      recancel = clock_.NowMs() + kRecancelMs;
      continue;
    }
    if (io.kind != Io::kOk) {
      broken_ = true;
      break;
    }
    PGresult* res = PQgetResult(conn_);
    if (res == nullptr) {
      if (!pipeline) break;
      if (PQstatus(conn_) == CONNECTION_BAD) {
        broken_ = true;
        break;
      }
      continue;
    }
    const ExecStatusType st = PQresultStatus(res);
    PQclear(res);
    if (st == PGRES_COPY_IN) {
      PQputCopyEnd(conn_, "interrupted by a signal");
    } else if (st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
      broken_ = true;  // not worth draining a COPY TO STDOUT on the way out
      break;
    } else if (pipeline && st == PGRES_PIPELINE_SYNC) {
      break;
    }
  }
  if (pipeline && !broken_ && PQexitPipelineMode(conn_) != 1) broken_ = true;
  return Status::Signal(signo);
}

// pgboot has no data to feed COPY FROM STDIN and no use for COPY TO STDOUT;
// a migration containing one gets a clear error (in), or its output is dropped (out).
Status PgDatabase::DiscardCopyOut(int64_t deadline_ms, bool pipeline) {
  for (;;) {
    char* buf = nullptr;
    const int n = PQgetCopyData(conn_, &buf, /*async=*/1);
    if (buf != nullptr) PQfreemem(buf);
    if (n > 0) continue;
    if (n == -1) return Status::Ok();  // done; the command's result follows
    if (n == -2) return Lost();
    const Io io = AwaitReadable(deadline_ms);
    if (io.kind == Io::kSignal) return Interrupt(io.signo, pipeline);
    if (io.kind == Io::kLost) return Lost();
    if (io.kind == Io::kTimeout) {
      broken_ = true;
      return Status::Timeout("timed out waiting for the server");
    }
  }
}

Status PgDatabase::Drive(int64_t deadline_ms, bool pipeline,
                         const std::function<void(const pg_result*, size_t)>& on_result,
                         size_t* progress) {
  size_t index = 0;
  if (progress != nullptr) *progress = 0;
  for (;;) {
    const Io io = AwaitResult(deadline_ms);
    if (io.kind == Io::kSignal) return Interrupt(io.signo, pipeline);
    if (io.kind == Io::kLost) return Lost();
    if (io.kind == Io::kTimeout) {
      broken_ = true;
      return Status::Timeout("timed out waiting for the server");
    }
    PGresult* res = PQgetResult(conn_);
    if (res == nullptr) {
      if (!pipeline) return Status::Ok();
      if (PQstatus(conn_) == CONNECTION_BAD) return Lost();
      ++index;  // in a pipeline, NULL ends one statement's results
      if (progress != nullptr) *progress = index;
      continue;
    }
    const ExecStatusType st = PQresultStatus(res);
    if (pipeline && st == PGRES_PIPELINE_SYNC) {
      PQclear(res);
      return Status::Ok();
    }
    if (st == PGRES_COPY_IN) {
      PQclear(res);
      PQputCopyEnd(conn_, "pgboot cannot feed COPY FROM STDIN; load data with SQL instead");
      continue;  // the server answers with an error result
    }
    if (st == PGRES_COPY_OUT) {
      PQclear(res);
      Status s = DiscardCopyOut(deadline_ms, pipeline);
      if (!s.ok()) return s;
      continue;
    }
    if (st == PGRES_COPY_BOTH) {
      PQclear(res);
      broken_ = true;
      return Status::Sql("COPY BOTH (replication) is not supported", "");
    }
    on_result(res, index);
    PQclear(res);
  }
}

Result<QueryResult> PgDatabase::Exec(std::string_view sql, const std::vector<SqlParam>& params) {
  return ExecUntil(sql, params, -1);
}

Result<QueryResult> PgDatabase::ExecUntil(std::string_view sql, const std::vector<SqlParam>& params,
                                          int64_t deadline_ms) {
  if (Status s = Usable(); !s.ok()) return s;
  const std::string text(sql);
  int sent;
  if (params.empty()) {
    // The simple protocol: the text may hold several statements.
    sent = PQsendQuery(conn_, text.c_str());
  } else {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const SqlParam& p : params) values.push_back(p ? p->c_str() : nullptr);
    sent = PQsendQueryParams(conn_, text.c_str(), static_cast<int>(values.size()), nullptr,
                             values.data(), nullptr, nullptr, /*resultFormat=*/0);
  }
  if (!sent) return SendFailed();

  QueryResult out;
  std::optional<Status> error;
  Status s = Drive(
      deadline_ms, /*pipeline=*/false,
      [&](const pg_result* res, size_t) {
        const ExecStatusType st = PQresultStatus(res);
        if (IsError(st)) {
          if (!error) error = SqlError(res);
        } else if (!error) {
          out = ToQueryResult(res);  // of several statements, the last one's rows
        }
      },
      nullptr);
  if (error && !s.is_signal()) return SessionEnded(*error);
  if (!s.ok()) return s;
  return out;
}

Status PgDatabase::ExecSequence(const std::vector<std::string_view>& statements,
                                size_t* failed_index) {
  if (statements.empty()) return Status::Ok();
  if (Status s = Usable(); !s.ok()) return s;
  for (std::string_view stmt : statements) {
    // Borrowed where it lies (Database::ExecSequence): the '\0' past its end
    // ends it for libpq, which copies it once, into its output buffer.
    if (stmt.data()[stmt.size()] != '\0') {
      return Status::Internal("a statement for ExecSequence is not NUL-terminated");
    }
  }
  if (PQenterPipelineMode(conn_) != 1) {
    return Status::Sql("could not enter pipeline mode: " + OneLine(PQerrorMessage(conn_)), "");
  }
  for (std::string_view stmt : statements) {
    if (pgboot_skip_query_copy != nullptr) pgboot_skip_query_copy(stmt.data());
    // Zero parameters, but the extended protocol: one statement per message.
    // The flush request makes the server send each statement's result as it
    // ends instead of at the Sync, so an interruption knows which statement ran.
    const int sent =
        PQsendQueryParams(conn_, stmt.data(), 0, nullptr, nullptr, nullptr, nullptr, 0);
    if (pgboot_skip_query_copy != nullptr) pgboot_skip_query_copy(nullptr);
    if (!sent || !PQsendFlushRequest(conn_)) {
      broken_ = true;  // half a pipeline is queued: the session cannot be trusted
      return SendFailed();
    }
  }
  if (!PQpipelineSync(conn_)) {
    broken_ = true;
    return SendFailed();
  }

  std::optional<Status> error;
  size_t error_index = 0;
  size_t progress = 0;
  Status s = Drive(
      -1, /*pipeline=*/true,
      [&](const pg_result* res, size_t index) {
        if (!error && IsError(PQresultStatus(res))) {
          error = SqlError(res);
          error_index = index;
        }
      },
      &progress);
  if (s.ok() && PQexitPipelineMode(conn_) != 1) {
    broken_ = true;
    s = Status::Sql("could not leave pipeline mode: " + OneLine(PQerrorMessage(conn_)), "");
  }
  if (error && !s.is_signal()) {
    if (failed_index != nullptr) *failed_index = error_index;
    return SessionEnded(*error);
  }
  if (!s.ok() && failed_index != nullptr) {
    *failed_index = std::min(progress, statements.size() - 1);
  }
  return s;
}

int PgDatabase::BackendPid() { return PQbackendPID(conn_); }

int PgDatabase::ServerVersion() { return PQserverVersion(conn_); }

std::string PgDatabase::DatabaseName() {
  if (!database_name_.empty()) return database_name_;
  Result<QueryResult> r = Exec("SELECT current_database()");
  if (r.ok() && !r->rows.empty() && r->rows[0][0]) {
    database_name_ = *r->rows[0][0];
  } else {
    const char* db = PQdb(conn_);
    return db != nullptr ? db : "";
  }
  return database_name_;
}

}  // namespace pgboot
