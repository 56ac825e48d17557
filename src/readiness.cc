#include "readiness.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "log.h"

namespace pgboot {
namespace {

// How the deadline reads in the final message: "60s", or "1500ms" when it is
// not whole seconds (the way the user most likely wrote it).
std::string FormatTimeout(int64_t ms) {
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

bool Contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

template <size_t N>
bool ContainsAny(std::string_view text, const std::string_view (&parts)[N]) {
  for (std::string_view part : parts) {
    if (Contains(text, part)) return true;
  }
  return false;
}

// libpq's "invalid <option> value: ...", "invalid integer value ... for
// connection option ...", "invalid value ... for minimum SSL protocol version".
bool CallsAValueInvalid(std::string_view message) {
  for (size_t at = message.find("invalid "); at != std::string_view::npos;
       at = message.find("invalid ", at + 1)) {
    std::string_view rest = message.substr(at + 8);
    std::string_view words = rest.substr(0, rest.find_first_of(":\"\n"));
    while (!words.empty() && words.back() == ' ') words.remove_suffix(1);
    if (words.size() <= 40 && words.ends_with("value")) return true;
  }
  return false;
}

// PgBouncer 1.18 sends SQLSTATE 08P01 for every error of its own; its fixed
// English messages tell them apart (docs/reference.md, "Behind a connection pooler").
AnswerKind ClassifyPoolerError(std::string_view message) {
  static constexpr std::string_view kFatal[] = {
      "password authentication failed",
      "SASL authentication failed",
      "no such user",
      "no such database",
  };
  if (ContainsAny(message, kFatal)) return AnswerKind::kFatal;
  // The pool is full: like the server's own 53300, back off up to --wait-max-interval.
  if (Contains(message, "no more connections allowed")) return AnswerKind::kTooManyConnections;
  // "query_wait_timeout", "server login has been failing, try again later", and
  // anything not known: retried until the deadline.
  return AnswerKind::kTransient;
}

}  // namespace

bool IsUnmendableTlsFailure(std::string_view message) {
  // libpq 15 with OpenSSL 3, in the C locale.
  static constexpr std::string_view kMarkers[] = {
      // The server's certificate: signed by a CA the root file does not hold
      // (or expired), or issued for another name than the host.
      "certificate verify failed",
      "does not match host name",
      // sslmode=require/verify-* against a server without TLS.
      "server does not support SSL, but SSL was required",
      // verify-ca/verify-full without a root certificate file.
      "root certificate file",
      // The server refused the client's certificate.
      "alert unknown ca",
      // Client certificate or key files that exist but cannot be used.
      "could not open certificate file",
      "could not read certificate file",
      "could not load private key file",
      "certificate present, but not private key file",
      "has group or world access",
  };
  return ContainsAny(message, kMarkers);
}

AnswerKind ClassifyConnectFailure(std::string_view sqlstate, std::string_view message) {
  if (sqlstate == "08P01") return ClassifyPoolerError(message);
  if (!sqlstate.empty()) {
    if (sqlstate == "28P01" || sqlstate == "28000" || sqlstate == "3D000" || sqlstate == "42501") {
      return AnswerKind::kFatal;
    }
    if (sqlstate == "57P03") return AnswerKind::kNoServer;
    if (sqlstate == "53300") return AnswerKind::kTooManyConnections;
    return AnswerKind::kTransient;
  }
  // The server said nothing: these are libpq's own words.
  if (Contains(message, "invalid port number") || CallsAValueInvalid(message) ||
      Contains(message, "invalid SSL protocol version range") ||
      Contains(message, "could not match ") || Contains(message, "service file") ||
      Contains(message, "definition of service") ||
      // No user in the URL and the process's uid has no passwd entry (e.g. a
      // FROM scratch image run as 65532): only configuration can fix it.
      Contains(message, "could not look up local user ID")) {
    return AnswerKind::kConfig;
  }
  // The server demanded a password and none is configured: retrying cannot help.
  if (Contains(message, "fe_sendauth: no password supplied")) return AnswerKind::kFatal;
  // Before "nothing answers": with several addresses (localhost is ::1 and
  // 127.0.0.1) one may be refused while the other fails TLS.
  if (IsUnmendableTlsFailure(message)) return AnswerKind::kFatal;
  // "connection to server ... failed: <strerror>" and getaddrinfo's words.
  static constexpr std::string_view kNothingAnswers[] = {
      "failed: Connection refused",
      "failed: No such file or directory",
      "failed: No route to host",
      "failed: Network is unreachable",
      "could not translate host name",
      "Name or service not known",
      "Temporary failure in name resolution",
  };
  for (std::string_view marker : kNothingAnswers) {
    if (Contains(message, marker)) return AnswerKind::kNoServer;
  }
  return AnswerKind::kTransient;
}

const char* AnswerKindName(AnswerKind kind) {
  switch (kind) {
    case AnswerKind::kReady:
      return "ready";
    case AnswerKind::kNoServer:
      return "no_server";
    case AnswerKind::kTooManyConnections:
      return "too_many_connections";
    case AnswerKind::kTransient:
      return "transient";
    case AnswerKind::kFatal:
      return "fatal";
    case AnswerKind::kConfig:
      return "config";
    case AnswerKind::kSignal:
      return "signal";
  }
  return "transient";
}

int64_t WaitBackoff::CapFor(AnswerKind kind) const {
  return kind == AnswerKind::kNoServer ? kNoServerCapMs : max_interval_ms_;
}

int64_t WaitBackoff::Next(AnswerKind kind, double u01) {
  if (!started_ || kind != last_) backoff_.Restart();
  started_ = true;
  last_ = kind;
  backoff_.set_cap(CapFor(kind));
  return backoff_.Next(u01);
}

Result<std::unique_ptr<Database>> WaitWithBackoff(const WaitOptions& opts, Clock& clock,
                                                  const Attempter& attempt, const Sleeper& sleep) {
  const int64_t start = clock.NowMs();
  const int64_t deadline = opts.timeout_ms > 0 ? start + opts.timeout_ms : -1;
  WaitBackoff backoff(opts.max_interval_ms);
  int64_t attempts = 0;
  std::string last_reason;
  int64_t next_summary = start + opts.summary_interval_ms;

  auto not_ready = [&]() {
    return Status::Timeout("database not ready within " + FormatTimeout(opts.timeout_ms) + ": " +
                           Redact(last_reason));
  };

  for (;;) {
    AttemptOutcome out = attempt(deadline);
    ++attempts;
    switch (out.kind) {
      case AnswerKind::kReady:
        LogInfo("wait.ready", {{"ms", clock.NowMs() - start}, {"attempts", attempts}});
        return std::move(out.db);
      case AnswerKind::kFatal:
        return Status::ConnectRejected(Redact(out.reason), out.sqlstate);
      case AnswerKind::kConfig:
        return Status::Usage(Redact(out.reason));
      case AnswerKind::kSignal:
        return Status::Signal(out.signo);
      case AnswerKind::kNoServer:
      case AnswerKind::kTooManyConnections:
      case AnswerKind::kTransient:
        break;
    }
    last_reason = out.reason;
    if (opts.give_up) {
      Status stop = opts.give_up();
      if (!stop.ok()) return stop;
    }

    const int64_t now = clock.NowMs();
    if (deadline >= 0 && now >= deadline) return not_ready();
    int64_t sleep_ms = backoff.Next(out.kind, clock.Uniform01());
    if (deadline >= 0) sleep_ms = std::min(sleep_ms, deadline - now);

    LogFields fields = {{"attempt", attempts}, {"kind", AnswerKindName(out.kind)}};
    if (!out.sqlstate.empty()) fields.emplace_back("sqlstate", out.sqlstate);
    fields.emplace_back("reason", last_reason);
    fields.emplace_back("sleep_ms", sleep_ms);
    LogDebug("wait.retry", fields);
    if (opts.summary_interval_ms > 0 && now >= next_summary) {
      LogInfo("wait.retry",
              {{"attempts", attempts}, {"elapsed_ms", now - start}, {"reason", last_reason}});
      while (next_summary <= now) next_summary += opts.summary_interval_ms;
    }

    // Sleep even for 0 ms: it is where a signal that arrived during a quick
    // attempt (a refused connect never waits) is noticed.
    Status slept = sleep(sleep_ms);
    if (!slept.ok()) return slept;
    if (deadline >= 0 && clock.NowMs() >= deadline) return not_ready();
  }
}

}  // namespace pgboot
