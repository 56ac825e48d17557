#include "gate.h"

#include <algorithm>

#include "config.h"
#include "log.h"
#include "readiness.h"
#include "run_stats.h"

namespace pgboot {
namespace {

GateVerdict Fail(std::string reason) {
  GateVerdict v;
  v.kind = GateVerdict::Kind::kFail;
  v.reason = std::move(reason);
  return v;
}

const Finding* FindingFor(const Plan& plan, const std::string& version) {
  for (const Finding& f : plan.findings) {
    if (f.version == version && f.error) return &f;
  }
  return nullptr;
}

}  // namespace

GateVerdict DecideGate(const std::vector<Migration>& files, const std::vector<HistoryRow>& history,
                       bool out_of_order) {
  const Plan plan = BuildPlan(files, history, out_of_order);
  NotePlan(plan);
  std::string newest_file;
  for (const Migration& m : files) {
    if (newest_file.empty() || CompareVersions(m.version, newest_file) > 0) newest_file = m.version;
  }
  // A row without a file is a newer release's when above every file (future), else
  // a deleted version's.
  auto future = [&](const std::string& version) {
    return newest_file.empty() || CompareVersions(version, newest_file) > 0;
  };

  GateVerdict v;
  for (const PlanRow& r : plan.rows) {
    const std::string label = VersionLabel(r.version, r.name);
    switch (r.state) {
      case MigrationState::kApplied:
      case MigrationState::kFuture:
        break;
      case MigrationState::kChanged:
      case MigrationState::kMissing:
        return Fail(FindingFor(plan, r.version)->message);
      case MigrationState::kPending:
        if (const Finding* f = FindingFor(plan, r.version)) return Fail(f->message);
        v.pending.push_back(r.version);
        break;
      case MigrationState::kFailed:
        if (r.file || !future(r.version)) {
          return Fail("version " + label +
                      " is marked failed: a transaction:false migration failed part-way; fix "
                      "the database by hand, then run `pgboot repair`");
        }
        break;
      case MigrationState::kRunning:
        if (!r.file) {
          if (future(r.version)) break;
          return Fail("version " + label +
                      " is marked running but its file is missing (deleted or renamed?)");
        }
        if (r.row->checksum != r.file->checksum) {
          return Fail("version " + label +
                      " was changed after its run started: " + r.file->up_path + " checksum " +
                      r.file->checksum + ", recorded " + r.row->checksum);
        }
        v.pending.push_back(r.version);
        if (v.running.empty()) v.running = r.version;
        break;
    }
  }
  v.kind = v.pending.empty() ? GateVerdict::Kind::kOpen : GateVerdict::Kind::kWait;
  return v;
}

bool IsConnectionLost(const Status& s) {
  if (s.kind() == StatusKind::kConnectionLost) return true;
  const std::string& st = s.sqlstate();  // kept when History re-kinds the error
  return st.rfind("08", 0) == 0 || st == "57P01" || st == "57P02" || st == "57P03";
}

std::string ListVersions(const std::vector<std::string>& versions, size_t limit) {
  std::string out;
  for (size_t i = 0; i < versions.size() && i < limit; ++i) out += (i ? ", " : "") + versions[i];
  if (versions.size() > limit) out += " and " + std::to_string(versions.size() - limit) + " more";
  return out;
}

Status RunGate(GateSource& source, const std::vector<Migration>& files, const GateOptions& options,
               Clock& clock) {
  const int64_t start = clock.NowMs();
  const int64_t deadline = options.timeout_ms > 0 ? start + options.timeout_ms : -1;
  std::vector<std::string> pending;  // as last read; every file before the first read
  for (const Migration& m : files) pending.push_back(m.version);
  WaitBackoff backoff(options.poll_cap_ms);
  int64_t next_log = start;
  int64_t reads = 0;
  std::string last_error;

  auto timed_out = [&] {
    std::string why = "migrations not applied within " + FormatDuration(options.timeout_ms) +
                      " (--migrations-wait-timeout): " + std::to_string(pending.size()) +
                      " pending: " + ListVersions(pending);
    if (!last_error.empty()) why += " (last error: " + last_error + ")";
    return Status::Timeout(why);
  };
  // A lost session is made again within the deadline; anything else ends the gate.
  auto recover = [&](const Status& s) -> Status {
    if (!IsConnectionLost(s)) return s;
    last_error = Redact(s.message());
    LogInfo("gate.reconnect", {{"reason", last_error}});
    Status again = source.Reconnect(deadline);
    if (again.kind() == StatusKind::kTimeout) return timed_out();
    if (again.ok()) last_error.clear();
    return again;
  };

  for (;;) {
    auto rows = source.ReadHistory();
    if (!rows.ok()) {
      Status s = recover(rows.status());
      if (!s.ok()) return s;
      continue;
    }
    ++reads;
    GateVerdict v = DecideGate(files, *rows, options.out_of_order);
    const int64_t now = clock.NowMs();
    if (v.kind == GateVerdict::Kind::kOpen) {
      LogInfo("gate.open", {{"ms", now - start}, {"reads", reads}});
      return Status::Ok();
    }
    if (v.kind == GateVerdict::Kind::kFail) {
      return Status::Precondition("the gate cannot open: " + v.reason);
    }
    if (v.pending != pending) backoff = WaitBackoff(options.poll_cap_ms);  // progress: look often
    pending = v.pending;
    if (now >= next_log) {
      LogFields fields = {{"pending", pending.size()}, {"next", pending.front()}};
      if (!v.running.empty()) fields.emplace_back("running", v.running);
      fields.emplace_back("ms", now - start);
      LogInfo("gate.waiting", fields);
      while (next_log <= now) next_log += std::max<int64_t>(1, options.log_interval_ms);
    }
    if (deadline >= 0 && now >= deadline) return timed_out();
    int64_t sleep_ms = backoff.Next(AnswerKind::kTransient, clock.Uniform01());
    sleep_ms = std::min(sleep_ms, next_log - now);
    if (deadline >= 0) sleep_ms = std::min(sleep_ms, deadline - now);
    Status waited = source.Wait(std::max<int64_t>(0, sleep_ms));
    if (!waited.ok()) {
      Status s = recover(waited);
      if (!s.ok()) return s;
    }
  }
}

}  // namespace pgboot
