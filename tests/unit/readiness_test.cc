#include "readiness.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <deque>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "exit_code.h"
#include "log.h"

namespace pgboot {
namespace {

// Time moves only when the test (or a fake attempt or sleep) moves it.
class FakeClock : public Clock {
 public:
  int64_t NowMs() override { return now; }
  double Uniform01() override {
    if (!draws.empty()) {
      double d = draws.front();
      draws.pop_front();
      return d;
    }
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  }
  Status Sleep(int64_t ms) override {
    now += ms;
    return Status::Ok();
  }
  int64_t now = 100000;
  std::deque<double> draws;  // scripted draws first, then pseudo-random ones
  std::mt19937_64 rng{20260101};
};

class FakeDb : public Database {
 public:
  Result<QueryResult> Exec(std::string_view, const std::vector<SqlParam>&) override {
    return QueryResult{};
  }
  Status ExecSequence(const std::vector<std::string_view>&, size_t*) override {
    return Status::Ok();
  }
  int BackendPid() override { return 42; }
  std::string DatabaseName() override { return "app"; }
  int ServerVersion() override { return 150000; }
};

struct Step {
  AnswerKind kind;
  int64_t cost_ms = 3;  // how long the attempt takes
  std::string reason = "connection refused";
  std::string sqlstate = "";
  int signo = 0;
};

// Plays `steps` in order (the last one repeats) and records what it was given.
struct FakeAttempter {
  AttemptOutcome operator()(int64_t deadline_ms) {
    deadlines.push_back(deadline_ms);
    const Step& s = steps[std::min(calls, steps.size() - 1)];
    ++calls;
    clock->now += s.cost_ms;
    if (deadline_ms >= 0 && clock->now > deadline_ms) clock->now = deadline_ms;  // never past it
    AttemptOutcome out;
    out.kind = s.kind;
    out.reason = s.reason;
    out.sqlstate = s.sqlstate;
    out.signo = s.signo;
    if (s.kind == AnswerKind::kReady) out.db = std::make_unique<FakeDb>();
    return out;
  }
  FakeClock* clock;
  std::vector<Step> steps;
  size_t calls = 0;
  std::vector<int64_t> deadlines;
};

// Advances the clock by each sleep; returns a signal on call number `signal_on` (1-based).
struct FakeSleeper {
  Status operator()(int64_t ms) {
    sleeps.push_back(ms);
    ends.push_back(clock->now + ms);
    if (static_cast<int>(sleeps.size()) == signal_on) return Status::Signal(signo);
    clock->now += ms;
    return Status::Ok();
  }
  FakeClock* clock;
  int signal_on = 0;
  int signo = 15;
  std::vector<int64_t> sleeps;
  std::vector<int64_t> ends;  // when each sleep would end
};

struct Harness {
  explicit Harness(std::vector<Step> steps) {
    attempter.clock = &clock;
    attempter.steps = std::move(steps);
    sleeper.clock = &clock;
  }
  Result<std::unique_ptr<Database>> Run(const WaitOptions& opts) {
    start = clock.now;
    return WaitWithBackoff(
        opts, clock, [this](int64_t d) { return attempter(d); },
        [this](int64_t ms) { return sleeper(ms); });
  }
  FakeClock clock;
  FakeAttempter attempter;
  FakeSleeper sleeper;
  int64_t start = 0;
};

// Collects what is written to stderr (where the logger writes) while it lives.
class StderrCapture {
 public:
  StderrCapture() {
    std::fflush(stderr);
    saved_ = dup(2);
    FILE* f = std::fopen(path_.c_str(), "w");
    REQUIRE(f != nullptr);
    dup2(fileno(f), 2);
    std::fclose(f);
  }
  ~StderrCapture() { Restore(); }
  std::string Text() {
    Restore();
    std::ifstream in(path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  void Restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    dup2(saved_, 2);
    close(saved_);
    saved_ = -1;
  }
  std::string path_ = "/tmp/pgboot-readiness-test-" + std::to_string(getpid()) + ".log";
  int saved_ = -1;
};

size_t Count(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("backoff draws stay within [0, min(cap, base*2^n)]") {
  FakeClock clock;
  for (AnswerKind kind :
       {AnswerKind::kNoServer, AnswerKind::kTooManyConnections, AnswerKind::kTransient}) {
    WaitBackoff b(1000);
    const int64_t cap = kind == AnswerKind::kNoServer ? 100 : 1000;
    CHECK(b.CapFor(kind) == cap);
    int64_t max_seen = 0;
    for (int i = 0; i < 20000; ++i) {
      const int64_t sleep = b.Next(kind, clock.Uniform01());
      CHECK(sleep >= 0);
      CHECK(sleep <= b.Ceiling());
      CHECK(b.Ceiling() <= cap);
      max_seen = std::max(max_seen, sleep);
    }
    CHECK(b.Ceiling() == cap);
    CHECK(max_seen > cap * 9 / 10);  // the jitter really spans the range
  }
}

TEST_CASE("backoff ceiling doubles from 50 ms up to the cap") {
  WaitBackoff b(1000);
  std::vector<int64_t> ceilings;
  for (int i = 0; i < 7; ++i) {
    b.Next(AnswerKind::kTooManyConnections, 0.5);
    ceilings.push_back(b.Ceiling());
  }
  CHECK(ceilings == std::vector<int64_t>{50, 100, 200, 400, 800, 1000, 1000});

  WaitBackoff none(1000);
  ceilings.clear();
  for (int i = 0; i < 4; ++i) {
    none.Next(AnswerKind::kNoServer, 0.5);
    ceilings.push_back(none.Ceiling());
  }
  CHECK(ceilings == std::vector<int64_t>{50, 100, 100, 100});

  // Both ends of the range are reachable.
  WaitBackoff ends(1000);
  CHECK(ends.Next(AnswerKind::kTransient, 0.0) == 0);
  CHECK(ends.Next(AnswerKind::kTransient, 0.999999) == 100);
  // Many doublings never overflow.
  WaitBackoff big(int64_t{1} << 40);
  for (int i = 0; i < 200; ++i) big.Next(AnswerKind::kTooManyConnections, 0.5);
  CHECK(big.Ceiling() == int64_t{1} << 40);
}

TEST_CASE("backoff: the cap follows the kind of answer and n restarts when it changes") {
  WaitBackoff b(1000);
  b.Next(AnswerKind::kNoServer, 0.5);
  b.Next(AnswerKind::kNoServer, 0.5);
  b.Next(AnswerKind::kNoServer, 0.5);
  CHECK(b.Exponent() == 2);
  CHECK(b.Ceiling() == 100);

  b.Next(AnswerKind::kTooManyConnections, 0.5);
  CHECK(b.Exponent() == 0);
  CHECK(b.Ceiling() == 50);
  for (int i = 0; i < 5; ++i) b.Next(AnswerKind::kTooManyConnections, 0.5);
  CHECK(b.Exponent() == 5);
  CHECK(b.Ceiling() == 1000);

  b.Next(AnswerKind::kNoServer, 0.999);
  CHECK(b.Exponent() == 0);
  CHECK(b.Ceiling() == 50);

  b.Next(AnswerKind::kTransient, 0.5);
  CHECK(b.Exponent() == 0);
  b.Next(AnswerKind::kTooManyConnections, 0.5);
  CHECK(b.Exponent() == 0);  // transient and 53300 share a cap but are different answers
}

TEST_CASE("wait: ready after some refusals returns the connection") {
  Harness h({{AnswerKind::kNoServer}, {AnswerKind::kNoServer}, {AnswerKind::kReady}});
  auto r = h.Run(WaitOptions{});
  REQUIRE(r.ok());
  CHECK(r.value() != nullptr);
  CHECK(h.attempter.calls == 3);
  REQUIRE(h.sleeper.sleeps.size() == 2);
  for (int64_t s : h.sleeper.sleeps) CHECK((s >= 0 && s <= 100));
  // Every attempt got the same overall deadline.
  for (int64_t d : h.attempter.deadlines) CHECK(d == h.start + 60000);
}

TEST_CASE("wait: the deadline is never passed and the last reason is reported") {
  Harness h({{AnswerKind::kNoServer, 7, "connection refused"},
             {AnswerKind::kTooManyConnections, 7, "sorry, too many clients already", "53300"}});
  WaitOptions opts;
  opts.timeout_ms = 3000;
  opts.max_interval_ms = 1000;
  auto r = h.Run(opts);
  REQUIRE_FALSE(r.ok());
  CHECK(ExitCodeFor(r.status()) == kExitNotReady);
  CHECK(r.status().message() == "database not ready within 3s: sorry, too many clients already");
  const int64_t deadline = h.start + 3000;
  CHECK(h.clock.now == deadline);
  for (int64_t end : h.sleeper.ends) CHECK(end <= deadline);
  for (int64_t d : h.attempter.deadlines) CHECK(d == deadline);
  // Capped at max_interval while the server is full.
  for (size_t i = 1; i < h.sleeper.sleeps.size(); ++i) CHECK(h.sleeper.sleeps[i] <= 1000);
}

TEST_CASE("wait: an attempt cut short by the deadline ends the wait without a sleep") {
  Harness h({{AnswerKind::kTransient, 10000, "timed out after 1500 ms connecting to server"}});
  WaitOptions opts;
  opts.timeout_ms = 1500;
  auto r = h.Run(opts);
  REQUIRE_FALSE(r.ok());
  CHECK(ExitCodeFor(r.status()) == kExitNotReady);
  CHECK(r.status().message() ==
        "database not ready within 1500ms: timed out after 1500 ms connecting to server");
  CHECK(h.attempter.calls == 1);
  CHECK(h.sleeper.sleeps.empty());
}

TEST_CASE("wait: a sleep is clipped to the time left") {
  Harness h({{AnswerKind::kTooManyConnections, 0, "too many", "53300"}});
  h.clock.draws = {0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99};
  WaitOptions opts;
  opts.timeout_ms = 1000;
  opts.max_interval_ms = 800;
  auto r = h.Run(opts);
  REQUIRE_FALSE(r.ok());
  // 50 + 99 + 198 + 396 = 743 ms, then 792 would pass the deadline: 257 ms instead.
  CHECK(h.sleeper.sleeps.back() == 257);
  CHECK(h.sleeper.ends.back() == h.start + 1000);
}

TEST_CASE("wait: fatal answers stop at once with exit 4 and the SQLSTATE") {
  for (const char* state : {"28P01", "28000", "3D000", "42501"}) {
    Harness h({{AnswerKind::kFatal, 2, "password authentication failed for user \"app\"", state}});
    auto r = h.Run(WaitOptions{});
    REQUIRE_FALSE(r.ok());
    CHECK(ExitCodeFor(r.status()) == kExitFatalConnect);
    CHECK(r.status().sqlstate() == state);
    CHECK(h.attempter.calls == 1);
    CHECK(h.sleeper.sleeps.empty());
  }
}

TEST_CASE("wait: a configuration error exits 2 at once, redacted") {
  Harness h({{AnswerKind::kConfig, 0, "invalid database URL: bad in postgres://u:secret@h/db"}});
  auto r = h.Run(WaitOptions{});
  REQUIRE_FALSE(r.ok());
  CHECK(ExitCodeFor(r.status()) == kExitUsage);
  CHECK(r.status().message().find("secret") == std::string::npos);
  CHECK(h.attempter.calls == 1);
}

TEST_CASE("wait: a signal during a sleep ends the wait with that signal") {
  Harness h({{AnswerKind::kNoServer}});
  h.sleeper.signal_on = 3;
  h.sleeper.signo = 15;
  auto r = h.Run(WaitOptions{});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().is_signal());
  CHECK(ExitCodeFor(r.status()) == 143);
  CHECK(h.attempter.calls == 3);
}

TEST_CASE("wait: a signal during an attempt ends the wait with that signal") {
  Harness h({{AnswerKind::kNoServer}, {AnswerKind::kSignal, 1, "", "", 2}});
  auto r = h.Run(WaitOptions{});
  REQUIRE_FALSE(r.ok());
  CHECK(ExitCodeFor(r.status()) == 130);
  CHECK(h.attempter.calls == 2);
}

TEST_CASE("wait: timeout 0 waits forever") {
  std::vector<Step> steps(5000, Step{AnswerKind::kNoServer, 20});
  steps.push_back({AnswerKind::kReady});
  Harness h(steps);
  WaitOptions opts;
  opts.timeout_ms = 0;
  opts.summary_interval_ms = 0;  // no summaries: keeps the test output short
  auto r = h.Run(opts);
  REQUIRE(r.ok());
  CHECK(h.attempter.calls == 5001);
  CHECK(h.clock.now - h.start > 60000);  // well past the default timeout
  CHECK(h.attempter.deadlines.front() < 0);
}

TEST_CASE("wait: a sleep is attempted even when the draw is 0, so signals are seen") {
  Harness h({{AnswerKind::kNoServer, 0}});
  h.clock.draws = {0.0};
  h.sleeper.signal_on = 1;
  auto r = h.Run(WaitOptions{});
  CHECK(ExitCodeFor(r.status()) == 143);
  REQUIRE(h.sleeper.sleeps.size() == 1);
  CHECK(h.sleeper.sleeps[0] == 0);
}

TEST_CASE("wait: every attempt is logged at debug, a summary at info every interval") {
  // Attempts of 100 ms plus sleeps of at most 100 ms for 5 s: about 30 attempts.
  Harness h({{AnswerKind::kNoServer, 100, "connection refused"}});
  WaitOptions opts;
  opts.timeout_ms = 5000;
  opts.summary_interval_ms = 1000;
  LogInit(LogFormat::kText, LogLevel::kDebug);
  StderrCapture capture;
  auto r = h.Run(opts);
  std::string text = capture.Text();
  LogInit(LogFormat::kText, LogLevel::kInfo);
  CHECK(ExitCodeFor(r.status()) == kExitNotReady);
  CHECK(Count(text, "DEBUG wait.retry attempt=") == h.attempter.calls);
  CHECK(Count(text, "sleep_ms=") == h.attempter.calls);
  // Summaries at 1 s, 2 s, 3 s, 4 s (and perhaps the last moment before 5 s).
  const size_t summaries = Count(text, "INFO  wait.retry attempts=");
  CHECK(summaries >= 4);
  CHECK(summaries <= 5);
  CHECK(Count(text, "reason=\"connection refused\"") == h.attempter.calls + summaries);
}

TEST_CASE("wait: wait.ready reports the elapsed time and attempts") {
  Harness h({{AnswerKind::kNoServer, 30}, {AnswerKind::kReady, 12}});
  h.clock.draws = {0.5};
  StderrCapture capture;
  auto r = h.Run(WaitOptions{});
  std::string text = capture.Text();
  REQUIRE(r.ok());
  // 30 ms attempt + 25 ms sleep + 12 ms attempt.
  CHECK(text.find("INFO  wait.ready ms=67 attempts=2") != std::string::npos);
}

TEST_CASE("classifying failed connections") {
  CHECK(ClassifyConnectFailure("28P01", "") == AnswerKind::kFatal);
  CHECK(ClassifyConnectFailure("28000", "") == AnswerKind::kFatal);
  CHECK(ClassifyConnectFailure("3D000", "") == AnswerKind::kFatal);
  CHECK(ClassifyConnectFailure("42501", "") == AnswerKind::kFatal);
  CHECK(ClassifyConnectFailure("57P03", "the database system is starting up") ==
        AnswerKind::kNoServer);
  CHECK(ClassifyConnectFailure("53300", "sorry, too many clients already") ==
        AnswerKind::kTooManyConnections);
  CHECK(ClassifyConnectFailure("57P01", "terminating connection") == AnswerKind::kTransient);
  // A SQLSTATE wins over words that look like something else.
  CHECK(ClassifyConnectFailure("22023", "invalid value for parameter") == AnswerKind::kTransient);

  // PgBouncer 1.18 says 08P01 for all of its own errors: its words decide.
  CHECK(ClassifyConnectFailure("08P01", "ERROR:  password authentication failed") ==
        AnswerKind::kFatal);
  CHECK(ClassifyConnectFailure("08P01", "FATAL:  SASL authentication failed") ==
        AnswerKind::kFatal);
  CHECK(ClassifyConnectFailure("08P01", "ERROR:  no such user: ghost") == AnswerKind::kFatal);
  CHECK(ClassifyConnectFailure("08P01", "ERROR:  no such database: nodb") == AnswerKind::kFatal);
  CHECK(ClassifyConnectFailure("08P01", "ERROR:  no more connections allowed (max_client_conn)") ==
        AnswerKind::kTooManyConnections);
  CHECK(ClassifyConnectFailure("08P01", "ERROR:  query_wait_timeout") == AnswerKind::kTransient);
  CHECK(ClassifyConnectFailure("08P01",
                               "ERROR:  server login has been failing, try again later "
                               "(server_login_retry)") == AnswerKind::kTransient);
  CHECK(ClassifyConnectFailure("08P01", "ERROR:  unsupported startup parameter: options") ==
        AnswerKind::kTransient);
  // Those words under another SQLSTATE are the server's, classified by the code.
  CHECK(ClassifyConnectFailure("57P01", "no such database") == AnswerKind::kTransient);

  CHECK(ClassifyConnectFailure(
            "", "connection to server at \"127.0.0.1\", port 1 failed: Connection refused") ==
        AnswerKind::kNoServer);
  CHECK(ClassifyConnectFailure("",
                               "connection to server on socket \"/tmp/.s.PGSQL.5432\" failed: No "
                               "such file or directory") == AnswerKind::kNoServer);
  CHECK(ClassifyConnectFailure("",
                               "could not translate host name \"db\" to address: Name or "
                               "service not known") == AnswerKind::kNoServer);
  CHECK(ClassifyConnectFailure("",
                               "could not translate host name \"db\" to address: Temporary "
                               "failure in name resolution") == AnswerKind::kNoServer);
  CHECK(ClassifyConnectFailure(
            "", "connection to server at \"10.0.0.9\", port 5432 failed: No route to host") ==
        AnswerKind::kNoServer);

  CHECK(ClassifyConnectFailure("", "invalid sslmode value: \"sometimes\"") == AnswerKind::kConfig);
  CHECK(ClassifyConnectFailure("", "invalid port number: \"abc\"") == AnswerKind::kConfig);
  CHECK(ClassifyConnectFailure("",
                               "could not look up local user ID 65532: No such file or "
                               "directory") == AnswerKind::kConfig);
  CHECK(ClassifyConnectFailure(
            "", "invalid integer value \"x\" for connection option \"keepalives\"") ==
        AnswerKind::kConfig);
  CHECK(ClassifyConnectFailure("", "invalid value \"TLSv9\" for minimum SSL protocol version") ==
        AnswerKind::kConfig);
  CHECK(ClassifyConnectFailure("", "could not match 2 port numbers to 3 hosts") ==
        AnswerKind::kConfig);
  CHECK(ClassifyConnectFailure("", "definition of service \"x\" not found") == AnswerKind::kConfig);

  CHECK(ClassifyConnectFailure("",
                               "connection to server at \"h\", port 5432 failed: "
                               "fe_sendauth: no password supplied") == AnswerKind::kFatal);
  CHECK(ClassifyConnectFailure("", "server closed the connection unexpectedly") ==
        AnswerKind::kTransient);
  CHECK(ClassifyConnectFailure("", "SSL SYSCALL error: EOF detected") == AnswerKind::kTransient);
  CHECK(ClassifyConnectFailure("", "SSL error: invalid certificate chain") ==
        AnswerKind::kTransient);
}

TEST_CASE("TLS failures no retry can mend are fatal, whatever else the message says") {
  // libpq 15 with OpenSSL 3, as the TLS suite (tests/integration/test_tls.py) sees them.
  for (const char* message : {
           "connection to server at \"localhost\" (127.0.0.1), port 5433 failed: SSL error: "
           "certificate verify failed",
           "connection to server at \"wrong.example\" (127.0.0.1), port 5433 failed: server "
           "certificate for \"localhost\" (and 1 other name) does not match host name "
           "\"wrong.example\"",
           "connection to server at \"127.0.0.1\", port 5432 failed: server does not support "
           "SSL, but SSL was required",
           "connection to server at \"localhost\" (::1), port 5433 failed: Connection refused; "
           "connection to server at \"localhost\" (127.0.0.1), port 5433 failed: root "
           "certificate file \"/root/.postgresql/root.crt\" does not exist",
           "connection to server at \"h\", port 5432 failed: SSL error: tlsv1 alert unknown ca",
           "could not open certificate file \"/x/c.crt\": Permission denied",
           "private key file \"/x/c.key\" has group or world access",
       }) {
    INFO(message);
    CHECK(IsUnmendableTlsFailure(message));
    CHECK(ClassifyConnectFailure("", message) == AnswerKind::kFatal);
  }
  CHECK_FALSE(IsUnmendableTlsFailure("SSL SYSCALL error: EOF detected"));
  CHECK_FALSE(IsUnmendableTlsFailure("server closed the connection unexpectedly"));
}

}  // namespace pgboot
