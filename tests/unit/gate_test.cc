#include "gate.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <deque>
#include <string>
#include <vector>

#include "log.h"

namespace pgboot {
namespace {

Migration File(const std::string& version, const std::string& checksum = "") {
  Migration m;
  m.version = version;
  m.name = "m" + version;
  m.up_path = "migrations/" + version + "_m" + version + ".sql";
  m.checksum = checksum.empty() ? "sum" + version : checksum;
  return m;
}

HistoryRow Row(const std::string& version, const std::string& status = "applied",
               const std::string& checksum = "") {
  HistoryRow r;
  r.version = version;
  r.name = "m" + version;
  r.checksum = checksum.empty() ? "sum" + version : checksum;
  r.status = status;
  return r;
}

using Kind = GateVerdict::Kind;
const std::vector<Migration> kFiles = {File("1"), File("2"), File("3")};

TEST_CASE("the gate opens when every file is applied with its checksum") {
  GateVerdict v = DecideGate(kFiles, {Row("1"), Row("2"), Row("3")}, false);
  CHECK(v.kind == Kind::kOpen);
  CHECK(v.pending.empty());
  CHECK(DecideGate({}, {}, false).kind == Kind::kOpen);  // nothing to wait for
}

TEST_CASE("a missing (empty) history and pending versions keep it waiting, lowest next") {
  GateVerdict empty = DecideGate(kFiles, {}, false);
  CHECK(empty.kind == Kind::kWait);
  CHECK(empty.pending == std::vector<std::string>{"1", "2", "3"});
  GateVerdict some = DecideGate(kFiles, {Row("1")}, false);
  CHECK(some.kind == Kind::kWait);
  CHECK(some.pending == std::vector<std::string>{"2", "3"});
  CHECK(some.running.empty());
}

TEST_CASE("a running row of a file here keeps it waiting and is named") {
  GateVerdict v = DecideGate(kFiles, {Row("1"), Row("2", "running")}, false);
  CHECK(v.kind == Kind::kWait);
  CHECK(v.pending == std::vector<std::string>{"2", "3"});
  CHECK(v.running == "2");
}

TEST_CASE("future versions, whatever their status, do not keep it shut") {
  CHECK(DecideGate(kFiles, {Row("1"), Row("2"), Row("3"), Row("4")}, false).kind == Kind::kOpen);
  CHECK(DecideGate(kFiles, {Row("1"), Row("2"), Row("3"), Row("4", "running")}, false).kind ==
        Kind::kOpen);
  CHECK(DecideGate(kFiles, {Row("1"), Row("2"), Row("3"), Row("5", "failed")}, false).kind ==
        Kind::kOpen);
}

TEST_CASE("drift fails at once, for an applied and for a running row") {
  GateVerdict applied = DecideGate(kFiles, {Row("1", "applied", "other")}, false);
  CHECK(applied.kind == Kind::kFail);
  CHECK(applied.reason.find("1 (m1) was changed after it was applied") != std::string::npos);
  GateVerdict running = DecideGate(kFiles, {Row("1"), Row("2", "running", "other")}, false);
  CHECK(running.kind == Kind::kFail);
  CHECK(running.reason.find("2 (m2) was changed") != std::string::npos);
}

TEST_CASE("a failed row fails at once and says repair") {
  GateVerdict v = DecideGate(kFiles, {Row("1"), Row("2", "failed")}, false);
  CHECK(v.kind == Kind::kFail);
  CHECK(v.reason.find("2 (m2) is marked failed") != std::string::npos);
  CHECK(v.reason.find("pgboot repair") != std::string::npos);
}

TEST_CASE("a deleted version fails at once, applied or running") {
  std::vector<Migration> files = {File("1"), File("3")};
  GateVerdict applied = DecideGate(files, {Row("1"), Row("2"), Row("3")}, false);
  CHECK(applied.kind == Kind::kFail);
  CHECK(applied.reason.find("file is missing") != std::string::npos);
  GateVerdict running = DecideGate(files, {Row("1"), Row("2", "running")}, false);
  CHECK(running.kind == Kind::kFail);
  CHECK(running.reason.find("2 (m2) is marked running but its file is missing") !=
        std::string::npos);
}

TEST_CASE("a pending version below the newest applied fails unless out of order") {
  std::vector<HistoryRow> rows = {Row("1"), Row("3")};
  GateVerdict strict = DecideGate(kFiles, rows, false);
  CHECK(strict.kind == Kind::kFail);
  CHECK(strict.reason.find("--out-of-order") != std::string::npos);
  GateVerdict allowed = DecideGate(kFiles, rows, true);
  CHECK(allowed.kind == Kind::kWait);
  CHECK(allowed.pending == std::vector<std::string>{"2"});
}

TEST_CASE("ListVersions names at most `limit` versions") {
  CHECK(ListVersions({}) == "");
  CHECK(ListVersions({"3", "4"}) == "3, 4");
  CHECK(ListVersions({"1", "2", "3", "4"}, 2) == "1, 2 and 2 more");
}

TEST_CASE("IsConnectionLost: class 08 and the server going away") {
  CHECK(IsConnectionLost(Status::ConnectionLost("gone")));
  CHECK(IsConnectionLost(Status::Sql("gone", "08006").As(StatusKind::kInternal)));
  CHECK(IsConnectionLost(Status::Sql("admin shutdown", "57P01")));
  CHECK_FALSE(IsConnectionLost(Status::Sql("denied", "42501")));
  CHECK_FALSE(IsConnectionLost(Status::Signal(15)));
}

// ---- the loop ---------------------------------------------------------------

class FakeClock : public Clock {
 public:
  int64_t NowMs() override { return now; }
  // 1.0 is outside [0,1) on purpose: Backoff clamps it to its ceiling, so sleeps are exact.
  double Uniform01() override { return 1.0; }
  Status Sleep(int64_t ms) override {
    now += ms;
    return Status::Ok();
  }
  int64_t now = 5000;
};

// Plays a script of history reads; each Wait advances the clock by what it was asked.
class FakeSource : public GateSource {
 public:
  explicit FakeSource(FakeClock& clock) : clock_(clock) {}
  Result<std::vector<HistoryRow>> ReadHistory() override {
    ++reads;
    if (reads_left_lost > 0) {
      --reads_left_lost;
      return Status::ConnectionLost("server closed the connection");
    }
    if (!errors.empty()) {
      Status s = errors.front();
      errors.pop_front();
      return s;
    }
    const auto& rows = script[std::min(script_at, script.size() - 1)];
    ++script_at;
    return rows;
  }
  Status Wait(int64_t ms) override {
    waits.push_back(ms);
    if (signal_after_waits >= 0 && static_cast<int64_t>(waits.size()) > signal_after_waits) {
      return Status::Signal(15);
    }
    clock_.now += notify ? std::min<int64_t>(ms, 1) : ms;
    return Status::Ok();
  }
  Status Reconnect(int64_t deadline_ms) override {
    reconnect_deadlines.push_back(deadline_ms);
    if (reconnect_fails) {
      if (deadline_ms >= 0) clock_.now = deadline_ms;
      return Status::Timeout("database not ready: refused");
    }
    clock_.now += 100;
    return Status::Ok();
  }

  std::vector<std::vector<HistoryRow>> script = {{}};
  size_t script_at = 0;
  std::deque<Status> errors;
  int reads_left_lost = 0;
  bool reconnect_fails = false;
  bool notify = false;  // every wait ends at once, as if a notification came
  int64_t signal_after_waits = -1;
  int64_t reads = 0;
  std::vector<int64_t> waits;
  std::vector<int64_t> reconnect_deadlines;

 private:
  FakeClock& clock_;
};

struct Captured {
  Captured() {
    path = "/tmp/pgboot_gate_test_" + std::to_string(getpid()) + ".log";
    fflush(stderr);
    saved = dup(2);
    FILE* f = fopen(path.c_str(), "w");
    dup2(fileno(f), 2);
    fclose(f);
    LogInit(LogFormat::kText, LogLevel::kInfo);
  }
  std::string Text() {
    fflush(stderr);
    FILE* f = fopen(path.c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    fclose(f);
    return out;
  }
  ~Captured() {
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    unlink(path.c_str());
    LogInit(LogFormat::kText, LogLevel::kInfo);
  }
  std::string path;
  int saved = -1;
};

size_t Count(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

TEST_CASE("the loop opens once the history catches up, logging waiting then open") {
  Captured log;
  FakeClock clock;
  FakeSource src(clock);
  src.script = {{}, {Row("1")}, {Row("1"), Row("2"), Row("3")}};
  GateOptions opts;
  Status s = RunGate(src, kFiles, opts, clock);
  CHECK(s.ok());
  CHECK(src.reads == 3);
  std::string text = log.Text();
  CHECK(Count(text, "gate.waiting pending=3 next=1") == 1);  // at once
  CHECK(Count(text, "gate.open") == 1);
}

TEST_CASE("polls back off to the cap, restart when the pending set changes") {
  FakeClock clock;
  FakeSource src(clock);
  std::vector<std::vector<HistoryRow>> script(9, std::vector<HistoryRow>{});
  script.push_back({Row("1")});
  script.push_back({Row("1")});
  script.push_back({Row("1"), Row("2"), Row("3")});
  src.script = script;
  GateOptions opts;
  opts.log_interval_ms = 1000000;
  REQUIRE(RunGate(src, kFiles, opts, clock).ok());
  // Ceilings 50, 100, ... capped at 2000 (the fake draws the ceiling).
  std::vector<int64_t> expect = {50, 100, 200, 400, 800, 1600, 2000, 2000, 2000, 50, 100};
  std::string got;
  for (int64_t w : src.waits) got += std::to_string(w) + " ";
  CHECK_MESSAGE(src.waits == expect, got);
}

TEST_CASE("gate.waiting repeats every log interval; sleeps never overshoot it") {
  Captured log;
  FakeClock clock;
  FakeSource src(clock);
  src.script = {{}};
  GateOptions opts;
  opts.timeout_ms = 35000;
  opts.log_interval_ms = 10000;
  Status s = RunGate(src, kFiles, opts, clock);
  CHECK(s.kind() == StatusKind::kTimeout);
  std::string text = log.Text();
  // At 0, 10, 20 and 30 s.
  CHECK(Count(text, "gate.waiting pending=3 next=1") == 4);
  CHECK(text.find("ms=10000") != std::string::npos);
  CHECK(text.find("ms=30000") != std::string::npos);
}

TEST_CASE("the deadline is exit 3 naming the pending versions, never overshot") {
  FakeClock clock;
  FakeSource src(clock);
  src.script = {{Row("1")}};
  GateOptions opts;
  opts.timeout_ms = 1500;
  const int64_t start = clock.now;
  Status s = RunGate(src, kFiles, opts, clock);
  CHECK(s.kind() == StatusKind::kTimeout);
  CHECK(s.message().find("within 1500ms") != std::string::npos);
  CHECK(s.message().find("2 pending: 2, 3") != std::string::npos);
  CHECK(clock.now == start + 1500);
}

TEST_CASE("a failing verdict is exit 6 at once") {
  FakeClock clock;
  FakeSource src(clock);
  src.script = {{Row("1", "failed")}};
  Status s = RunGate(src, kFiles, GateOptions{}, clock);
  CHECK(s.kind() == StatusKind::kPrecondition);
  CHECK(s.message().find("the gate cannot open: version 1 (m1) is marked failed") == 0);
  CHECK(src.waits.empty());
}

TEST_CASE("a notification wakes the loop at once") {
  FakeClock clock;
  FakeSource src(clock);
  src.notify = true;
  src.script = {{}, {Row("1"), Row("2"), Row("3")}};
  const int64_t start = clock.now;
  REQUIRE(RunGate(src, kFiles, GateOptions{}, clock).ok());
  CHECK(clock.now - start <= 1);
}

TEST_CASE("a lost connection is made again and the gate still opens") {
  Captured log;
  FakeClock clock;
  FakeSource src(clock);
  src.reads_left_lost = 2;
  src.script = {{Row("1"), Row("2"), Row("3")}};
  GateOptions opts;
  opts.timeout_ms = 60000;
  const int64_t start = clock.now;
  REQUIRE(RunGate(src, kFiles, opts, clock).ok());
  REQUIRE(src.reconnect_deadlines.size() == 2);
  CHECK(src.reconnect_deadlines[0] == start + 60000);  // the gate's own deadline
  CHECK(Count(log.Text(), "gate.reconnect") == 2);
}

TEST_CASE("a reconnect that misses the deadline is exit 3 naming what is pending") {
  FakeClock clock;
  FakeSource src(clock);
  src.reads_left_lost = 1;
  src.reconnect_fails = true;
  GateOptions opts;
  opts.timeout_ms = 0;  // forever: the reconnect then has no deadline either
  Status s = RunGate(src, kFiles, opts, clock);
  CHECK(s.kind() == StatusKind::kTimeout);
  CHECK(s.message().find("3 pending: 1, 2, 3") != std::string::npos);
  CHECK(s.message().find("last error: server closed the connection") != std::string::npos);
  CHECK(src.reconnect_deadlines == std::vector<int64_t>{-1});
}

TEST_CASE("other errors and signals end the loop as they are") {
  FakeClock clock;
  SUBCASE("permission") {
    FakeSource src(clock);
    src.errors = {Status::Precondition("grant it")};
    Status s = RunGate(src, kFiles, GateOptions{}, clock);
    CHECK(s.kind() == StatusKind::kPrecondition);
    CHECK(src.reconnect_deadlines.empty());
  }
  SUBCASE("signal while waiting") {
    FakeSource src(clock);
    src.signal_after_waits = 1;
    Status s = RunGate(src, kFiles, GateOptions{}, clock);
    CHECK(s.is_signal());
    CHECK(s.signal() == 15);
    CHECK(src.waits.size() == 2);
  }
}

}  // namespace
}  // namespace pgboot
