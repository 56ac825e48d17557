#include "run_stats.h"

#include <algorithm>

#include "plan.h"

namespace pgboot {

RunStats& CurrentRunStats() {
  static RunStats stats;
  return stats;
}

void NoteConnecting() { CurrentRunStats().tried_database = true; }

void NoteWait(int64_t ms) { CurrentRunStats().wait_ms += std::max<int64_t>(ms, 0); }

void NoteLockWait(int64_t ms) { CurrentRunStats().lock_wait_ms += std::max<int64_t>(ms, 0); }

void NotePlan(const Plan& plan) {
  std::vector<std::string> unapplied;
  for (const PlanRow& row : plan.rows) {
    if (row.file == nullptr) continue;  // missing or future: nothing this release applies
    if (row.state == MigrationState::kPending || row.state == MigrationState::kRunning ||
        row.state == MigrationState::kFailed) {
      unapplied.push_back(row.version);
    }
  }
  CurrentRunStats().unapplied = std::move(unapplied);
}

void NoteNoLongerPending(const std::string& version) {
  auto& unapplied = CurrentRunStats().unapplied;
  if (!unapplied) return;
  unapplied->erase(std::remove(unapplied->begin(), unapplied->end(), version), unapplied->end());
}

void NoteApplied(const std::string& version, int64_t ms) {
  CurrentRunStats().applied.emplace_back(version, std::max<int64_t>(ms, 0));
  NoteNoLongerPending(version);
}

}  // namespace pgboot
