// Doctor: a preflight report of what would slow or trip a migration right now (docs/operations.md,
// "doctor").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config.h"
#include "database.h"
#include "migration_files.h"

namespace pgboot {

// One problem a migration would trip on (or wait behind).
struct DoctorFinding {
  std::string kind;  // idle_in_transaction, long_running, lock_wait, invalid_index, history
  std::string message;
  std::optional<int64_t> pid;
  // More JSON members, in order: the name and an already-encoded JSON value.
  std::vector<std::pair<std::string, std::string>> fields;
};

struct DoctorReport {
  std::string server_version;
  int64_t connections = 0;
  int64_t max_connections = 0;
  int64_t database_size_bytes = 0;
  int64_t pending = 0;
  std::vector<DoctorFinding> findings;
  // Information worth a line in the text report that is not a finding.
  std::vector<std::string> notes;
};

// Pure formatting (docs/reference.md's JSON shape; the text one for people).
std::string FormatDoctorText(const DoctorReport& report);
std::string FormatDoctorJson(const DoctorReport& report);

// Gathers the report (read-only: no lock, nothing created) and prints it.
// Exit 1 when there is a finding.
Status Doctor(Database& db, const Config& cfg, const std::vector<Migration>& files, bool json);

}  // namespace pgboot
