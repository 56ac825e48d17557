#include "gate_session.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace pgboot {
namespace {

class FakeClock : public Clock {
 public:
  int64_t NowMs() override { return now; }
  double Uniform01() override { return 0.5; }
  Status Sleep(int64_t ms) override {
    now += ms;
    return Status::Ok();
  }
  int64_t now = 1000;
};

// Records every statement; answers the few the gate sends.
class FakeDb : public Database {
 public:
  explicit FakeDb(FakeClock& clock) : clock_(clock) {}
  Result<QueryResult> Exec(std::string_view sql, const std::vector<SqlParam>& params) override {
    log.emplace_back(sql);
    QueryResult r;
    if (sql.find("quote_ident($1)") != std::string_view::npos) {
      r.rows.push_back({"\"" + *params.at(0) + "\"." + *params.at(1)});
    } else if (sql.find("to_regclass") != std::string_view::npos) {
      if (!denied.empty()) return Status::Sql(denied, "42501");
      r.rows.push_back({"f"});  // no table yet
    } else if (sql == "SELECT current_user") {
      r.rows.push_back({"app"});
    }
    return r;
  }
  Status ExecSequence(const std::vector<std::string_view>&, size_t*) override {
    return Status::Ok();
  }
  Result<std::vector<std::string>> WaitForNotifications(int64_t timeout_ms) override {
    waits.push_back(timeout_ms);
    if (notes.empty()) {
      clock_.now += timeout_ms;
      return std::vector<std::string>{};
    }
    clock_.now += 10;
    std::vector<std::string> n = notes.front();
    notes.pop_front();
    return n;
  }
  int BackendPid() override { return 7; }
  std::string DatabaseName() override { return "app"; }
  int ServerVersion() override { return 150000; }
  LockMode lock_mode() override { return mode; }

  std::vector<std::string> log;
  std::vector<int64_t> waits;
  std::deque<std::vector<std::string>> notes;
  std::string denied;  // the 42501 message the history read gets, if any
  LockMode mode = LockMode::kSession;

 private:
  FakeClock& clock_;
};

struct Fixture {
  Fixture() {
    cfg.history_table = {"My Schema", "hist"};
    auto owned = std::make_unique<FakeDb>(clock);
    db = owned.get();
    GateSessionOptions o;
    o.connect = [this](int64_t) -> Result<std::unique_ptr<Database>> {
      ++connects;
      auto again = std::make_unique<FakeDb>(clock);
      db = again.get();
      return std::unique_ptr<Database>(std::move(again));
    };
    o.sleep = [this](int64_t ms) {
      sleeps.push_back(ms);
      return Status::Ok();
    };
    options = o;
    first = std::move(owned);
  }
  GateSession Make(bool listen) {
    options.listen = listen;
    return GateSession(std::move(first), cfg, options, clock);
  }
  FakeClock clock;
  Config cfg;
  FakeDb* db = nullptr;
  std::unique_ptr<FakeDb> first;
  GateSessionOptions options;
  int connects = 0;
  std::vector<int64_t> sleeps;
};

TEST_CASE("GateSession LISTENs before its first read, once per session") {
  Fixture f;
  GateSession s = f.Make(true);
  REQUIRE(s.ReadHistory().ok());
  REQUIRE(s.ReadHistory().ok());
  std::vector<std::string>& log = f.db->log;
  auto listen = std::find(log.begin(), log.end(), "LISTEN pgboot");
  REQUIRE(listen != log.end());
  CHECK(std::count(log.begin(), log.end(), "LISTEN pgboot") == 1);
  CHECK(listen - log.begin() < 2);  // before the history is read
  REQUIRE(s.Reconnect(-1).ok());
  CHECK(f.connects == 1);
  REQUIRE(s.ReadHistory().ok());
  CHECK(std::count(f.db->log.begin(), f.db->log.end(), "LISTEN pgboot") == 1);
}

TEST_CASE("GateSession without LISTEN only polls: no LISTEN, sleeps instead of waiting") {
  Fixture f;
  GateSession s = f.Make(false);
  REQUIRE(s.ReadHistory().ok());
  REQUIRE(s.Wait(250).ok());
  for (const std::string& sql : f.db->log) CHECK(sql.find("LISTEN") == std::string::npos);
  CHECK(f.sleeps == std::vector<int64_t>{250});
  CHECK(f.db->waits.empty());
}

TEST_CASE("a session in transaction lock mode never LISTENs: it polls") {
  Fixture f;
  f.first->mode = LockMode::kTransaction;
  GateSession s = f.Make(true);
  REQUIRE(s.ReadHistory().ok());
  REQUIRE(s.Wait(300).ok());
  for (const std::string& sql : f.db->log) CHECK(sql.find("LISTEN") == std::string::npos);
  CHECK(f.sleeps == std::vector<int64_t>{300});
}

TEST_CASE("a notification for this table ends the wait; others do not") {
  Fixture f;
  GateSession s = f.Make(true);
  REQUIRE(s.ReadHistory().ok());
  f.db->notes = {{"\"other\".hist"}, {"\"My Schema\".hist"}};
  const int64_t start = f.clock.now;
  REQUIRE(s.Wait(2000).ok());
  CHECK(f.clock.now - start == 20);  // two notifications, 10 ms each
  CHECK(f.db->waits.size() == 2);
  CHECK(f.db->waits[1] == 1990);  // the rest of the same wait
  REQUIRE(s.Wait(500).ok());      // none: the poll is due after the full time
  CHECK(f.db->waits.back() == 500);
}

TEST_CASE("42501 on the history is exit 6 naming the role and the grants") {
  Fixture f;
  GateSession s = f.Make(false);
  f.db->denied = "permission denied for schema My Schema";
  auto rows = s.ReadHistory();
  REQUIRE_FALSE(rows.ok());
  CHECK(rows.status().kind() == StatusKind::kPrecondition);
  const std::string& m = rows.status().message();
  CHECK(m.find("permission denied for schema My Schema") != std::string::npos);
  CHECK(m.find("GRANT USAGE ON SCHEMA \"My Schema\" TO \"app\"; GRANT SELECT ON \"My "
               "Schema\".\"hist\" TO \"app\";") != std::string::npos);
}

}  // namespace
}  // namespace pgboot
