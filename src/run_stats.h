// What this pgboot process did, for --metrics-file (docs/reference.md, "Metrics"): noted
// where the engine logs the same facts, read once at exit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pgboot {

struct Plan;

struct RunStats {
  bool tried_database = false;  // a connection was attempted
  int64_t wait_ms = 0;          // waiting for readiness, summed over (re)connections
  int64_t lock_wait_ms = 0;     // waiting for the migration lock, summed over tries
  // Versions not applied as of the last plan this run made (pending, running or
  // failed), minus those applied since; nullopt when no plan was made.
  std::optional<std::vector<std::string>> unapplied;
  // This run's applied migrations in order: canonical version, milliseconds.
  std::vector<std::pair<std::string, int64_t>> applied;
};

// The process-wide record, like the logger: threading a sink through every
// layer would change every signature for one report at exit.
RunStats& CurrentRunStats();

void NoteConnecting();
void NoteWait(int64_t ms);
void NoteLockWait(int64_t ms);
void NotePlan(const Plan& plan);
void NoteApplied(const std::string& version, int64_t ms);
// `version` was applied by another runner meanwhile: no longer pending.
void NoteNoLongerPending(const std::string& version);

}  // namespace pgboot
