// Commands: the read-only reports (status, validate) and their text/JSON formatting.
#pragma once

#include <string>
#include <vector>

#include "config.h"
#include "database.h"
#include "history.h"
#include "migration_files.h"
#include "plan.h"

namespace pgboot {

struct StatusOptions {
  bool json = false;
  bool fail_on_pending = false;
  bool history = false;  // the audit log instead of the migrations
};

// `status`: one row per version; exit 1 with --fail-on-pending when something is pending.
Status ShowStatus(Database& db, const Config& cfg, const std::vector<Migration>& files,
                  const StatusOptions& options);

// `validate`: every finding named; exit 6 when one is an error.
Status Validate(Database& db, const Config& cfg, const std::vector<Migration>& files);

// Pure formatting, unit-tested.
std::string FormatStatusText(const Plan& plan);
std::string FormatStatusJson(const Plan& plan, const std::string& database,
                             const std::string& history_table);
std::string FormatAuditText(const std::vector<AuditEvent>& events);
std::string FormatAuditJson(const std::vector<AuditEvent>& events);

// Lays out rows as left-aligned columns separated by two spaces.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

}  // namespace pgboot
