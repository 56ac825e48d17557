#include "pg_database.h"

#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>

#include "event_loop.h"
#include "log.h"

// src/static/pq_sqlstate.c: the SQLSTATE of a failed connection, which has no
// PGresult to read it from ("" when the server sent none).
extern "C" const char* pgboot_conn_last_sqlstate(const PGconn* conn);

namespace pgboot {
namespace {

// After a terminating signal: how long to wait for the cancelled statement to
// end (the runtime's grace period is 10-30 s), and how often to cancel again
// (a cancel that reaches the server between two statements cancels nothing).
constexpr int64_t kDrainMs = 5000;
constexpr int64_t kRecancelMs = 1000;

constexpr char kConnectionCheck[] = "-c client_connection_check_interval=1s";
constexpr char kStandardStrings[] = "-c standard_conforming_strings=on";

// Whether a conninfo string may carry a password (a URI with userinfo, or a
// password key or parameter).
bool MayHoldPassword(std::string_view conninfo) {
  std::string lower(conninfo);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower.find("password") != std::string::npos ||
         (lower.find("://") != std::string::npos && lower.find('@') != std::string::npos);
}

// libpq's parser quotes the piece it could not parse, which may be (part of)
// the password: `invalid percent-encoded token: "s3cr%t"`, `missing "=" after
// "secret"`. Every quoted piece becomes "***".
std::string MaskQuoted(std::string_view text) {
  std::string out;
  bool in_quote = false;
  for (char c : text) {
    if (c == '"') {
      out += c;
      if (!in_quote) out += "***";
      in_quote = !in_quote;
    } else if (!in_quote) {
      out += c;
    }
  }
  return out;
}

// libpq messages are multi-line ("...failed: Connection refused\n\tIs the
// server running on that host..."): one line for logs and Status messages,
// without libpq's generic hints, and redacted (they may quote the conninfo).
std::string OneLine(std::string_view text) {
  std::string out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) {
      line.remove_suffix(1);
    }
    if (!line.empty() && !line.starts_with("Is the server running")) {
      if (!out.empty()) out += "; ";
      out.append(line);
    }
    pos = end + 1;
  }
  return Redact(out);
}

std::string Hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "unknown";
  return buf;
}

const char* Field(const PGresult* res, int code) {
  const char* v = PQresultErrorField(res, code);
  return v != nullptr ? v : "";
}

// Status::Sql from an error result: the server's primary message with DETAIL
// and HINT appended, its SQLSTATE, and the statement position in characters.
Status SqlError(const PGresult* res) {
  std::string msg = Field(res, PG_DIAG_MESSAGE_PRIMARY);
  if (msg.empty()) msg = PQresultErrorMessage(res);
  if (const char* detail = Field(res, PG_DIAG_MESSAGE_DETAIL); *detail) {
    msg += std::string("; DETAIL: ") + detail;
  }
  if (const char* hint = Field(res, PG_DIAG_MESSAGE_HINT); *hint) {
    msg += std::string("; HINT: ") + hint;
  }
  const int position = std::atoi(Field(res, PG_DIAG_STATEMENT_POSITION));
  return Status::Sql(kExitMigrationFailed, OneLine(msg), Field(res, PG_DIAG_SQLSTATE), position);
}

QueryResult ToQueryResult(const PGresult* res) {
  QueryResult out;
  const int fields = PQnfields(res);
  const int tuples = PQntuples(res);
  out.columns.reserve(fields);
  for (int f = 0; f < fields; ++f) out.columns.emplace_back(PQfname(res, f));
  out.rows.reserve(tuples);
  for (int t = 0; t < tuples; ++t) {
    std::vector<std::optional<std::string>> row;
    row.reserve(fields);
    for (int f = 0; f < fields; ++f) {
      if (PQgetisnull(res, t, f)) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(std::string(PQgetvalue(res, t, f), PQgetlength(res, t, f)));
      }
    }
    out.rows.push_back(std::move(row));
  }
  const char* affected = PQcmdTuples(const_cast<PGresult*>(res));
  if (affected != nullptr && *affected != '\0') out.affected = std::strtoll(affected, nullptr, 10);
  return out;
}

bool IsError(ExecStatusType st) {
  return st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR;
}

// Server NOTICEs and WARNINGs become log events: libpq's default prints them
// raw to stderr, which would break the JSON log format.
void OnNotice(void* /*arg*/, const PGresult* res) {
  std::string severity = Field(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (severity.empty()) severity = Field(res, PG_DIAG_SEVERITY);
  LogFields fields = {{"severity", severity},
                      {"sqlstate", Field(res, PG_DIAG_SQLSTATE)},
                      {"message", OneLine(Field(res, PG_DIAG_MESSAGE_PRIMARY))}};
  if (severity == "WARNING") {
    LogWarn("db.notice", fields);
  } else if (severity == "NOTICE" || severity == "INFO") {
    LogInfo("db.notice", fields);
  } else {
    LogDebug("db.notice", fields);
  }
}

// The connection parameters of one attempt. Tunable defaults go before the
// user's string (expanded from `dbname`) so that it can override them;
// pgboot's own settings go after it and win. See PQconnectdbParams.
class ConnectParams {
 public:
  // Fails with the parser's message when libpq cannot parse `conninfo`.
  static Result<ConnectParams> Build(const ConnectOptions& opts) {
    ConnectParams p;
    std::optional<std::string> user_options;
    if (!opts.conninfo.empty()) {
      char* err = nullptr;
      PQconninfoOption* parsed = PQconninfoParse(opts.conninfo.c_str(), &err);
      if (parsed == nullptr) {
        std::string why = err != nullptr ? err : "out of memory";
        PQfreemem(err);
        if (MayHoldPassword(opts.conninfo)) why = MaskQuoted(why);
        return Status::Usage("invalid database URL: " + OneLine(why));
      }
      for (PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
        if (std::strcmp(o->keyword, "options") == 0 && o->val != nullptr) user_options = o->val;
      }
      PQconninfoFree(parsed);
    }
    // Setting `options` ourselves hides PGOPTIONS from libpq: carry it over.
    if (!user_options) {
      if (const char* env = std::getenv("PGOPTIONS")) user_options = env;
    }
    std::string options = user_options.value_or("");
    // The statement lexer and every literal pgboot writes assume standard
    // strings; a role or database set to off would otherwise turn a backslash
    // in a file name into SQL.
    if (!options.empty()) options += ' ';
    options += kStandardStrings;
    if (opts.connection_check) {
      if (!options.empty()) options += ' ';
      options += kConnectionCheck;
    }

    p.Add("keepalives_idle", "10");
    p.Add("keepalives_interval", "5");
    p.Add("keepalives_count", "3");
    if (!opts.conninfo.empty()) p.Add("dbname", opts.conninfo);
    p.Add("application_name", "pgboot@" + Hostname());
    p.Add("keepalives", "1");
    if (!options.empty()) p.Add("options", options);
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

AttemptOutcome AttemptOnce(const ConnectOptions& opts, int64_t deadline_ms, Clock& clock) {
  Result<ConnectParams> params = ConnectParams::Build(opts);
  if (!params.ok()) return Outcome(AnswerKind::kConfig, params.status().message());
  params->Seal();
  const int64_t started = clock.NowMs();

  ConnPtr conn(PQconnectStartParams(params->keywords(), params->values(), /*expand_dbname=*/1));
  if (!conn) return Outcome(AnswerKind::kTransient, "out of memory starting a connection");
  PQsetNoticeReceiver(conn.get(), OnNotice, nullptr);

  // Per libpq's protocol, behave as if PQconnectPoll had asked for writing.
  // A connection refused at once is CONNECTION_BAD already: PQconnectPoll
  // answers FAILED for it.
  PostgresPollingStatusType poll_status =
      PQstatus(conn.get()) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
  auto timed_out = [&]() {
    return Outcome(AnswerKind::kTransient, "timed out after " +
                                               std::to_string(clock.NowMs() - started) +
                                               " ms connecting to " + ServerName(conn.get()));
  };
  while (poll_status != PGRES_POLLING_OK) {
    if (poll_status == PGRES_POLLING_FAILED) return FailedConnection(conn.get());
    const int sock = PQsocket(conn.get());  // may change as libpq moves between hosts
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
    poll_status = PQconnectPoll(conn.get());
  }

  auto db = std::make_unique<PgDatabase>(conn.release(), clock);
  Result<QueryResult> probe = db->ExecUntil("SELECT 1", {}, deadline_ms);
  if (probe.ok()) {
    AttemptOutcome out;
    out.kind = AnswerKind::kReady;
    out.db = std::move(db);
    return out;
  }
  const Status& s = probe.status();
  if (s.is_signal()) return SignalOutcome(s.signal());
  if (s.code() == kExitNotReady) {
    return Outcome(
        AnswerKind::kTransient,
        "timed out after " + std::to_string(clock.NowMs() - started) + " ms waiting for SELECT 1");
  }
  return Outcome(ClassifyConnectFailure(s.sqlstate(), s.message()), "SELECT 1: " + s.message(),
                 s.sqlstate());
}

}  // namespace

// ---- PgDatabase ----------------------------------------------------------

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
  return Status::Sql(kExitMigrationFailed,
                     "lost the database connection" + (why.empty() ? "" : ": " + why), "08006");
}

Status PgDatabase::SendFailed() {
  if (PQstatus(conn_) == CONNECTION_BAD) return Lost();
  return Status::Sql(kExitMigrationFailed,
                     "could not send the statement: " + OneLine(PQerrorMessage(conn_)), "");
}

Status PgDatabase::Usable() {
  if (!broken_ && PQstatus(conn_) == CONNECTION_OK) return Status::Ok();
  return Status::Sql(kExitMigrationFailed, "the database connection is no longer usable", "08006");
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
      return Status::WithCode(kExitNotReady, "timed out waiting for the server");
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
      return Status::WithCode(kExitNotReady, "timed out waiting for the server");
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
      return Status::Sql(kExitMigrationFailed, "COPY BOTH (replication) is not supported", "");
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
  if (error && !s.is_signal()) return *error;
  if (!s.ok()) return s;
  return out;
}

Status PgDatabase::ExecSequence(const std::vector<std::string>& statements, size_t* failed_index) {
  if (statements.empty()) return Status::Ok();
  if (Status s = Usable(); !s.ok()) return s;
  if (PQenterPipelineMode(conn_) != 1) {
    return Status::Sql(kExitMigrationFailed,
                       "could not enter pipeline mode: " + OneLine(PQerrorMessage(conn_)), "");
  }
  for (const std::string& stmt : statements) {
    // Zero parameters, but the extended protocol: one statement per message.
    // The flush request makes the server send each statement's result as it
    // ends instead of at the Sync, so an interruption knows which statement ran.
    if (!PQsendQueryParams(conn_, stmt.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) ||
        !PQsendFlushRequest(conn_)) {
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
    s = Status::Sql(kExitMigrationFailed,
                    "could not leave pipeline mode: " + OneLine(PQerrorMessage(conn_)), "");
  }
  if (error && !s.is_signal()) {
    if (failed_index != nullptr) *failed_index = error_index;
    return *error;
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

// ---- readiness -------------------------------------------------------------

AttemptOutcome PgAttemptConnect(const ConnectOptions& opts, int64_t deadline_ms, Clock& clock) {
  // Servers before 14 do not know client_connection_check_interval and refuse
  // the whole startup packet over it: connect without it rather than never,
  // and remember (pgboot talks to one server per run).
  static bool unsupported = false;
  ConnectOptions effective = opts;
  if (unsupported) effective.connection_check = false;
  AttemptOutcome out = AttemptOnce(effective, deadline_ms, clock);
  if (effective.connection_check && out.sqlstate == "42704" &&
      out.reason.find("client_connection_check_interval") != std::string::npos) {
    LogWarn("db.connection_check_unsupported", {{"reason", out.reason}});
    unsupported = true;
    effective.connection_check = false;
    out = AttemptOnce(effective, deadline_ms, clock);
  }
  return out;
}

Result<std::unique_ptr<Database>> WaitForDatabase(const WaitOptions& opts) {
  Clock& clock = RealClock();
  const ConnectOptions connect{opts.conninfo};
  auto attempt = [&connect, &clock](int64_t deadline_ms) {
    return PgAttemptConnect(connect, deadline_ms, clock);
  };
  auto sleep = [](int64_t ms) -> Status {
    const EventLoop::Wake wake = EventLoop::Get().Wait(-1, 0, ms);
    if (wake.kind == EventLoop::Wake::kSignal) return Status::Signal(wake.signo);
    return Status::Ok();
  };
  return WaitWithBackoff(opts, clock, attempt, sleep);
}

}  // namespace pgboot
