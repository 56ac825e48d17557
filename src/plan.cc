#include "plan.h"

#include <algorithm>
#include <map>

namespace pgboot {

std::string VersionLabel(const std::string& version, const std::string& name) {
  return version + (name.empty() ? "" : " (" + name + ")");
}

bool StoredDownMatches(const Migration& m, const HistoryRow& r) {
  if (!m.down) return !r.down_sql && !r.down_options;
  const std::string& options = m.down->options;
  return r.down_sql == m.down->sql &&
         (options.empty() ? !r.down_options : r.down_options == options);
}

const char* RollbackSource(const Migration* m, const HistoryRow& r) {
  if (m != nullptr && m->checksum == r.checksum && m->down) {
    return m->down->statements.empty() ? "empty" : "file";
  }
  if (!r.down_sql) return "none";
  auto stored = ParseStoredDown(*r.down_sql, r.down_options.value_or(""));
  // One that does not parse is still what rollback runs: it fails there, naming it.
  return stored.ok() && stored->statements.empty() ? "empty" : "stored";
}

const char* StateName(MigrationState s) {
  switch (s) {
    case MigrationState::kApplied:
      return "applied";
    case MigrationState::kPending:
      return "pending";
    case MigrationState::kRunning:
      return "running";
    case MigrationState::kFailed:
      return "failed";
    case MigrationState::kMissing:
      return "missing";
    case MigrationState::kChanged:
      return "changed";
    case MigrationState::kFuture:
      return "future";
  }
  return "pending";
}

bool Plan::HasUnfinished() const {
  return std::any_of(findings.begin(), findings.end(),
                     [](const Finding& f) { return f.unfinished; });
}

Plan BuildPlan(const std::vector<Migration>& files, const std::vector<HistoryRow>& history,
               bool out_of_order) {
  struct VersionLess {
    bool operator()(const std::string& a, const std::string& b) const {
      return CompareVersions(a, b) < 0;
    }
  };
  std::map<std::string, const Migration*, VersionLess> by_file;
  std::map<std::string, const HistoryRow*, VersionLess> by_row;
  for (const Migration& m : files) by_file[m.version] = &m;
  for (const HistoryRow& r : history) by_row[r.version] = &r;

  Plan plan;
  const std::string newest_file = files.empty() ? "" : by_file.rbegin()->first;
  for (const HistoryRow& r : history) {
    if (r.status == "applied") {
      ++plan.applied_count;
      if (plan.newest_applied.empty() || CompareVersions(r.version, plan.newest_applied) > 0) {
        plan.newest_applied = r.version;
      }
    }
  }

  std::map<std::string, bool, VersionLess> versions;
  for (const auto& [v, m] : by_file) versions[v] = true;
  for (const auto& [v, r] : by_row) versions[v] = true;

  for (const auto& [version, unused] : versions) {
    (void)unused;
    PlanRow row;
    row.version = version;
    auto f = by_file.find(version);
    auto h = by_row.find(version);
    if (f != by_file.end()) {
      row.file = f->second;
      row.name = f->second->name;
      row.checksum = f->second->checksum;
    }
    if (h != by_row.end()) {
      row.row = h->second;
      if (!row.file) {
        row.name = h->second->name;
        row.checksum = h->second->checksum;
      }
    }
    const std::string label = VersionLabel(version, row.name);

    if (row.row && row.row->status != "applied") {
      bool failed = row.row->status == "failed";
      row.state = failed ? MigrationState::kFailed : MigrationState::kRunning;
      Finding fd{version,
                 "version " + label + " is marked " + row.row->status +
                     (failed ? ": a transaction:false migration failed part-way"
                             : ": a transaction:false migration started and did not finish") +
                     "; fix the database by hand, then run `pgboot repair`",
                 true, true};
      plan.findings.push_back(fd);
    } else if (row.row && row.file) {
      if (row.row->checksum == row.file->checksum) {
        row.state = MigrationState::kApplied;
      } else {
        row.state = MigrationState::kChanged;
        plan.findings.push_back(
            {version,
             "version " + label + " was changed after it was applied: " + row.file->up_path +
                 " checksum " + row.file->checksum + ", recorded " + row.row->checksum,
             true, false});
      }
    } else if (row.row) {
      if (!newest_file.empty() && CompareVersions(version, newest_file) < 0) {
        row.state = MigrationState::kMissing;
        plan.findings.push_back(
            {version,
             "version " + label + " is applied but its file is missing (deleted or renamed?)", true,
             false});
      } else {
        row.state = MigrationState::kFuture;
        plan.findings.push_back({version,
                                 "version " + label +
                                     " is applied but newer than every file here (a newer "
                                     "release migrated already; fine during a rolling update)",
                                 false, false});
      }
    } else {
      row.state = MigrationState::kPending;
      plan.pending.push_back(row.file);
      if (!out_of_order && !plan.newest_applied.empty() &&
          CompareVersions(version, plan.newest_applied) < 0) {
        plan.findings.push_back({version,
                                 "version " + label +
                                     " is pending but older than the newest "
                                     "applied version " +
                                     plan.newest_applied +
                                     " (out of order; allow with --out-of-order)",
                                 true, false});
      }
    }
    plan.rows.push_back(std::move(row));
  }
  return plan;
}

}  // namespace pgboot
