// Fakes for unit tests: a scripted, recording Database, a Clock whose time only moves when told,
// and helpers.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <deque>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "clock.h"
#include "database.h"
#include "migration_files.h"
#include "sql_split.h"
#include "status.h"

namespace pgboot {

// Time moves only through Sleep (or the test). Sleeps are recorded; `on_sleep`
// runs after each one (the test changes the world meanwhile); sleep number
// `signal_on` (1-based) is cut short by signal `signo`.
class FakeClock : public Clock {
 public:
  int64_t NowMs() override { return now; }
  double Uniform01() override {
    if (draws.empty()) return default_draw;
    double d = draws.front();
    draws.pop_front();
    return d;
  }
  Status Sleep(int64_t ms) override {
    sleeps.push_back(ms);
    now += ms;
    if (on_sleep) on_sleep(sleeps.size());
    if (static_cast<int>(sleeps.size()) == signal_on) return Status::Signal(signo);
    return Status::Ok();
  }

  int64_t now = 1000000;
  std::deque<double> draws;  // scripted draws first, then default_draw
  double default_draw = 0.5;
  std::vector<int64_t> sleeps;
  std::function<void(size_t)> on_sleep;
  int signal_on = 0;
  int signo = 15;
};

// A Database that answers by script and records every statement it is sent.
// Rules match a substring of the SQL; the first rule with uses left wins
// (`times` < 0: forever). Unmatched statements succeed with no rows; a few
// of pgboot's own queries have defaults (no history table yet, lock free).
class FakeDatabase : public Database {
 public:
  struct Rule {
    std::string match;
    Status error;  // not ok: the statement fails with it
    QueryResult result;
    int times = -1;
  };
  // Each ExecSequence call's statements as given (views, not copies).
  std::vector<std::vector<std::string_view>> sequence_views;
  // One ExecSequence call (a pipelined round trip) or one Exec.
  struct Call {
    bool sequence = false;
    std::vector<std::string> statements;
  };

  FakeDatabase() {
    Rule guarded{"l.pid = pg_backend_pid()", Status::Ok(), {}, -1};
    guarded.result.affected = 1;  // the lock is still held
    defaults_ = {
        // History's writes conditional on holding the lock (History::HoldsLockSql)
        // write their row: before the holder query, which also reads pg_locks.
        guarded,
        // Before the key: the holder query computes the key too.
        Answer1("FROM pg_locks", {"777", "other-pgboot", "2026-01-01T00:00:00.000Z"}),
        Answer1("to_regclass", {"f"}),
        Answer1("SELECT greatest(", {"1"}),
        Answer1("hashtextextended", {"4242"}),
        Answer1("pg_try_advisory_lock", {"t"}),
        Answer1("pg_advisory_unlock", {"t"}),
    };
  }

  // `match` answers one row of `cells`, `times` times.
  void Answer(const std::string& match, std::vector<std::string> cells, int times = -1) {
    rules.push_back(Answer1(match, std::move(cells), times));
  }
  void AnswerRows(const std::string& match, std::vector<SqlRow> rows, int times = -1) {
    Rule r{match, Status::Ok(), {}, times};
    r.result.rows = std::move(rows);
    rules.push_back(std::move(r));
  }
  // `match` fails with `error`, `times` times.
  void Fail(const std::string& match, Status error, int times = -1) {
    rules.push_back({match, std::move(error), {}, times});
  }
  // `match` succeeds affecting `affected` rows (an UPDATE's count), `times` times.
  void Affect(const std::string& match, int64_t affected, int times = -1) {
    Rule r{match, Status::Ok(), {}, times};
    r.result.affected = affected;
    rules.push_back(std::move(r));
  }

  Result<QueryResult> Exec(std::string_view sql, const std::vector<SqlParam>& params) override {
    last_params = params;
    calls.push_back({false, {std::string(sql)}});
    return Run(std::string(sql));
  }

  Status ExecSequence(const std::vector<std::string_view>& statements, size_t* failed) override {
    // The contract of Database::ExecSequence, which libpq relies on.
    for (std::string_view st : statements) {
      if (st.data()[st.size()] != '\0')
        return Status::Internal("not NUL-terminated: " + std::string(st));
    }
    calls.push_back({true, {statements.begin(), statements.end()}});
    sequence_views.push_back(statements);
    for (size_t i = 0; i < statements.size(); ++i) {
      auto r = Run(std::string(statements[i]));
      if (!r.ok()) {
        if (failed) *failed = i;
        return r.status();
      }
    }
    return Status::Ok();
  }

  void SetTicker(int64_t interval_ms, std::function<void()> tick) override {
    ticker_ms = interval_ms;
    (void)tick;
  }
  bool InTransaction() override { return in_transaction_; }
  LockMode lock_mode() override { return mode; }
  int BackendPid() override { return 4242; }
  std::string DatabaseName() override { return "app"; }
  int ServerVersion() override { return 150000; }

  // Every statement sent, in order, flattened over calls.
  std::vector<std::string> Statements() const {
    std::vector<std::string> out;
    for (const Call& c : calls) out.insert(out.end(), c.statements.begin(), c.statements.end());
    return out;
  }
  // How many statements sent contain `needle`.
  int Count(const std::string& needle) const {
    int n = 0;
    for (const std::string& s : Statements()) n += s.find(needle) != std::string::npos;
    return n;
  }
  // The pipelined round trips (ExecSequence calls) whose statements include `needle`.
  std::vector<Call> SequencesWith(const std::string& needle) const {
    std::vector<Call> out;
    for (const Call& c : calls) {
      if (!c.sequence) continue;
      for (const std::string& s : c.statements) {
        if (s.find(needle) != std::string::npos) {
          out.push_back(c);
          break;
        }
      }
    }
    return out;
  }

  std::vector<Rule> rules;
  std::vector<Call> calls;
  LockMode mode = LockMode::kSession;  // as the connection's verdict would say
  std::vector<SqlParam> last_params;   // of the latest Exec (on_statement can read them)
  int64_t ticker_ms = 0;
  // Runs before each statement is answered (a test changes the script meanwhile).
  std::function<void(const std::string&)> on_statement;

 private:
  static Rule Answer1(const std::string& match, std::vector<std::string> cells, int times = -1) {
    Rule r{match, Status::Ok(), {}, times};
    SqlRow row;
    for (std::string& c : cells) row.push_back(std::move(c));
    r.result.rows.push_back(std::move(row));
    return r;
  }

  Result<QueryResult> Run(const std::string& sql) {
    if (on_statement) on_statement(sql);
    Rule* rule = Find(rules, sql);
    if (!rule) rule = Find(defaults_, sql);
    const bool fails = rule && !rule->error.ok();
    if (sql.rfind("BEGIN", 0) == 0) in_transaction_ = true;
    if (sql == "COMMIT" || sql == "ROLLBACK") in_transaction_ = false;
    if (fails) return rule->error;
    return rule ? rule->result : QueryResult{};
  }

  static Rule* Find(std::vector<Rule>& list, const std::string& sql) {
    for (Rule& r : list) {
      if (r.times != 0 && sql.find(r.match) != std::string::npos) {
        if (r.times > 0) --r.times;
        return &r;
      }
    }
    return nullptr;
  }

  std::vector<Rule> defaults_;
  bool in_transaction_ = false;
};

// A migration built from SQL text as the lexer splits it, so positions map to
// real lines and columns. `path` is its file.
inline Migration FakeMigration(const std::string& version, const std::string& up_sql,
                               bool transactional = true, const std::string& down_sql = "") {
  Migration m;
  m.version = version;
  m.name = "m" + version;
  m.up_path = "migrations/" + version + "_m" + version + ".sql";
  m.checksum = "sum" + version;
  m.up.sql = up_sql;
  m.up.transactional = transactional;
  auto st = SplitSql(m.up.sql, 1);  // slices of the section's own sql, not of the argument
  REQUIRE(st.ok());
  m.up.statements = *st;
  if (!down_sql.empty()) {
    Section d;
    d.sql = down_sql;
    auto ds = SplitSql(d.sql, 1);
    REQUIRE(ds.ok());
    d.statements = *ds;
    m.down = d;
    m.down_path = "migrations/" + version + "_m" + version + ".down.sql";
  }
  return m;
}

// Captures what pgboot logs to stderr while it lives.
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
  // The lines of event `event` (text format: the event name follows the level).
  std::vector<std::string> Lines(const std::string& event) {
    std::vector<std::string> out;
    std::istringstream in(Text());
    for (std::string line; std::getline(in, line);) {
      const std::string tail = " " + event;
      const bool ends = line.size() >= tail.size() &&
                        line.compare(line.size() - tail.size(), std::string::npos, tail) == 0;
      if (ends || line.find(tail + " ") != std::string::npos) {
        out.push_back(line);
      }
    }
    return out;
  }

 private:
  void Restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    dup2(saved_, 2);
    close(saved_);
    saved_ = -1;
  }
  std::string path_ = "/tmp/pgboot-unit-fakes-" + std::to_string(getpid()) + ".log";
  int saved_ = -1;
};

}  // namespace pgboot
