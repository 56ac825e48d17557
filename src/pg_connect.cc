#include "pg_connect.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "event_loop.h"
#include "hostname.h"
#include "log.h"
#include "pg_database.h"
#include "pg_result.h"
#include "pg_tls_files.h"

// src/static/pq_sqlstate.c: the SQLSTATE of a failed connection, which has no
// PGresult to read it from ("" when the server sent none).
extern "C" const char* pgboot_conn_last_sqlstate(const PGconn* conn);

namespace pgboot {
namespace {

// The connection parameters of one attempt. Tunable defaults go before the
// user's string (expanded from `dbname`) so that it can override them;
// pgboot's own settings go after it and win. See PQconnectdbParams.
class ConnectParams {
 public:
  // Fails with the parser's message when libpq cannot parse `conninfo`.
  static Result<ConnectParams> Build(const ConnectOptions& opts) {
    ConnectParams p;
    if (!opts.conninfo.empty()) {
      char* err = nullptr;
      PQconninfoOption* parsed = PQconninfoParse(opts.conninfo.c_str(), &err);
      if (parsed == nullptr) {
        std::string why = err != nullptr ? err : "out of memory";
        PQfreemem(err);
        return Status::Usage("invalid database URL: " +
                             OneLine(MaskConninfoError(opts.conninfo, why)));
      }
      PQconninfoFree(parsed);
    }
    // No `options` of pgboot's own: PgBouncer refuses the startup packet over
    // it ("unsupported startup parameter: options"). The user's own `options`
    // (or PGOPTIONS) still reach libpq: the user chose them.
    p.Add("keepalives_idle", "10");
    p.Add("keepalives_interval", "5");
    p.Add("keepalives_count", "3");
    if (!opts.conninfo.empty()) p.Add("dbname", opts.conninfo);
    p.Add("application_name", "pgboot@" + Hostname());
    p.Add("keepalives", "1");
    return p;
  }

  // Builds the null-terminated arrays for PQconnectStartParams. Call after
  // the last move of *this (moving the strings may move their characters).
  void Seal() {
    keyword_ptrs_.clear();
    value_ptrs_.clear();
    for (size_t i = 0; i < keys_.size(); ++i) {
      keyword_ptrs_.push_back(keys_[i].c_str());
      value_ptrs_.push_back(values_[i].c_str());
    }
    keyword_ptrs_.push_back(nullptr);
    value_ptrs_.push_back(nullptr);
  }
  const char* const* keywords() const { return keyword_ptrs_.data(); }
  const char* const* values() const { return value_ptrs_.data(); }

 private:
  void Add(std::string key, std::string value) {
    keys_.push_back(std::move(key));
    values_.push_back(std::move(value));
  }

  std::vector<std::string> keys_;
  std::vector<std::string> values_;
  std::vector<const char*> keyword_ptrs_;
  std::vector<const char*> value_ptrs_;
};

AttemptOutcome Outcome(AnswerKind kind, std::string reason, std::string sqlstate = "") {
  AttemptOutcome out;
  out.kind = kind;
  out.reason = std::move(reason);
  out.sqlstate = std::move(sqlstate);
  return out;
}

AttemptOutcome SignalOutcome(int signo) {
  AttemptOutcome out;
  out.kind = AnswerKind::kSignal;
  out.signo = signo;
  return out;
}

// Frees a PGconn unless ownership moved on.
struct ConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnCloser>;

AttemptOutcome FailedConnection(const PGconn* conn) {
  std::string sqlstate = pgboot_conn_last_sqlstate(conn);
  std::string reason = OneLine(PQerrorMessage(conn));
  if (reason.empty()) reason = "connection failed";
  return Outcome(ClassifyConnectFailure(sqlstate, reason), reason, sqlstate);
}

std::string ServerName(const PGconn* conn) {
  const char* host = PQhost(conn);
  const char* port = PQport(conn);
  std::string where = "server";
  if (host != nullptr && *host != '\0') {
    where += host[0] == '/' ? " on socket " : " at ";
    where += std::string("\"") + host + "\"";
    if (port != nullptr && *port != '\0') where += std::string(", port ") + port;
  }
  return where;
}

// Drives PQconnectPoll through the EventLoop until the connection is made,
// failed, timed out or interrupted. Returns nullopt when `conn` is connected.
std::optional<AttemptOutcome> Handshake(PGconn* conn, int64_t deadline_ms, int64_t started,
                                        Clock& clock) {
  // Per libpq's protocol, behave as if PQconnectPoll had asked for writing.
  // A connection refused at once is CONNECTION_BAD already: PQconnectPoll
  // answers FAILED for it.
  PostgresPollingStatusType poll_status =
      PQstatus(conn) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
  auto timed_out = [&]() {
    return Outcome(AnswerKind::kTransient, "timed out after " +
                                               std::to_string(clock.NowMs() - started) +
                                               " ms connecting to " + ServerName(conn));
  };
  while (poll_status != PGRES_POLLING_OK) {
    if (poll_status == PGRES_POLLING_FAILED) return FailedConnection(conn);
    const int sock = PQsocket(conn);  // may change as libpq moves between hosts
    if (sock < 0) {
      if (deadline_ms >= 0 && clock.NowMs() >= deadline_ms) return timed_out();
    } else {
      int64_t wait_ms = -1;
      if (deadline_ms >= 0) wait_ms = std::max<int64_t>(0, deadline_ms - clock.NowMs());
      const EventLoop::Wake wake = EventLoop::Get().Wait(
          sock, poll_status == PGRES_POLLING_READING ? POLLIN : POLLOUT, wait_ms);
      if (wake.kind == EventLoop::Wake::kSignal) return SignalOutcome(wake.signo);
      if (wake.kind == EventLoop::Wake::kTimeout) return timed_out();
    }
    poll_status = PQconnectPoll(conn);
  }
  return std::nullopt;
}

// A statement of the attempt that failed: timed out, interrupted, or the
// server's (or the pooler's) answer, classified like a failed login.
AttemptOutcome FailedStatement(const Status& s, const std::string& what, int64_t started,
                               Clock& clock) {
  if (s.is_signal()) return SignalOutcome(s.signal());
  if (s.kind() == StatusKind::kTimeout) {
    return Outcome(
        AnswerKind::kTransient,
        "timed out after " + std::to_string(clock.NowMs() - started) + " ms waiting for " + what);
  }
  return Outcome(ClassifyConnectFailure(s.sqlstate(), s.message()), what + ": " + s.message(),
                 s.sqlstate());
}

// After the login: readiness (SELECT 1), the lock-mode verdict from the
// server's own pid in the same round trip, then, in session mode only, the
// session settings. Nothing before the verdict sets anything.
AttemptOutcome ProbeAndSettle(std::unique_ptr<PgDatabase> db, LockMode requested,
                              int64_t deadline_ms, int64_t started, Clock& clock) {
  Result<QueryResult> probe = db->ExecUntil("SELECT 1; SELECT pg_backend_pid()", {}, deadline_ms);
  if (!probe.ok()) return FailedStatement(probe.status(), "SELECT 1", started, clock);
  const LockModeVerdict verdict =
      DecideLockMode(requested, db->BackendPid(), std::atoi(Cell(*probe).c_str()));
  db->set_lock_mode(verdict.mode);
  if (verdict.mode == LockMode::kSession) {
    std::string sets;
    for (const std::string& set : SessionSettings(db->ServerVersion())) sets += set + "; ";
    Result<QueryResult> set = db->ExecUntil(sets, {}, deadline_ms);
    if (!set.ok()) return FailedStatement(set.status(), "SET", started, clock);
  }
  LogLockModeOnce(verdict);
  AttemptOutcome out;
  out.kind = AnswerKind::kReady;
  out.db = std::move(db);
  return out;
}

AttemptOutcome AttemptUnmasked(const ConnectOptions& opts, int64_t deadline_ms, Clock& clock) {
  Result<ConnectParams> params = ConnectParams::Build(opts);
  if (!params.ok()) return Outcome(AnswerKind::kConfig, params.status().message());
  params->Seal();
  const int64_t started = clock.NowMs();

  ConnPtr conn(PQconnectStartParams(params->keywords(), params->values(), /*expand_dbname=*/1));
  if (!conn) return Outcome(AnswerKind::kTransient, "out of memory starting a connection");
  PQsetNoticeReceiver(conn.get(), OnNotice, nullptr);
  if (std::optional<AttemptOutcome> failed = Handshake(conn.get(), deadline_ms, started, clock)) {
    return std::move(*failed);
  }
  return ProbeAndSettle(std::make_unique<PgDatabase>(conn.release(), clock), opts.lock_mode,
                        deadline_ms, started, clock);
}

// libpq's messages quote pieces of the conninfo: a password with an unescaped
// '/', '@' or ':' is parsed in part as port, host or dbname and would reach
// every wait.retry line and the termination log (docs/reference.md, "Passwords").
AttemptOutcome AttemptOnce(const ConnectOptions& opts, int64_t deadline_ms, Clock& clock) {
  AttemptOutcome out = AttemptUnmasked(opts, deadline_ms, clock);
  out.reason = MaskConninfoError(opts.conninfo, out.reason);
  return out;
}

}  // namespace

AttemptOutcome PgConnector::Attempt(int64_t deadline_ms) {
  return AttemptOnce(opts_, deadline_ms, clock_);
}

Result<std::vector<std::pair<std::string, std::string>>> LibpqEnvironment(
    const std::string& conninfo) {
  std::vector<std::pair<std::string, std::string>> out;
  if (conninfo.empty()) return out;
  char* err = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &err);
  if (parsed == nullptr) {
    std::string why = err != nullptr ? err : "out of memory";
    PQfreemem(err);
    return Status::Usage("invalid database URL: " + OneLine(MaskConninfoError(conninfo, why)));
  }
  for (const PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
    // Keys without a variable (keepalives, ...) cannot be handed on this way.
    if (o->envvar != nullptr && o->val != nullptr && *o->val != '\0') {
      out.emplace_back(o->envvar, o->val);
    }
  }
  PQconninfoFree(parsed);
  return out;
}

Result<std::unique_ptr<Database>> WaitForDatabase(const WaitOptions& opts) {
  if (Status s = CheckConfiguredTlsFiles(opts.conninfo); !s.ok()) return s;
  Clock& clock = RealClock();
  PgConnector connector(ConnectOptions{opts.conninfo, opts.lock_mode}, clock);
  auto attempt = [&connector](int64_t deadline_ms) { return connector.Attempt(deadline_ms); };
  auto sleep = [&clock](int64_t ms) { return clock.Sleep(ms); };
  return WaitWithBackoff(opts, clock, attempt, sleep);
}

}  // namespace pgboot
