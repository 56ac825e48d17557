#include "commands.h"

#include <algorithm>

#include "log.h"
#include "run_stats.h"

namespace pgboot {

std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string FormatStatusText(const Plan& plan) {
  std::vector<std::vector<std::string>> rows = {
      {"VERSION", "NAME", "STATE", "APPLIED_AT", "EXECUTION"}};
  int64_t pending = 0;
  for (const PlanRow& r : plan.rows) {
    if (r.state == MigrationState::kPending) ++pending;
    bool has_row = r.row != nullptr;
    rows.push_back(
        {r.version, r.name, StateName(r.state), has_row ? r.row->applied_at : "-",
         has_row && r.row->execution_ms ? std::to_string(*r.row->execution_ms) + " ms" : "-"});
  }
  std::string out = FormatTable(rows);
  out += std::to_string(plan.rows.size()) + " migration(s): " + std::to_string(plan.applied_count) +
         " applied, " + std::to_string(pending) + " pending\n";
  return out;
}

std::string FormatStatusJson(const Plan& plan, const std::string& database,
                             const std::string& history_table) {
  std::string out = "{\"database\":" + JsonQuote(database) +
                    ",\"history_table\":" + JsonQuote(history_table) + ",\"migrations\":[";
  int64_t pending = 0;
  for (size_t i = 0; i < plan.rows.size(); ++i) {
    const PlanRow& r = plan.rows[i];
    if (r.state == MigrationState::kPending) ++pending;
    out += i ? "," : "";
    out += "{\"version\":" + JsonQuote(r.version) + ",\"name\":" + JsonQuote(r.name) +
           ",\"state\":\"" + StateName(r.state) +
           "\",\"applied_at\":" + (r.row ? JsonQuote(r.row->applied_at) : "null") +
           ",\"execution_ms\":" +
           (r.row && r.row->execution_ms ? std::to_string(*r.row->execution_ms) : "null") +
           ",\"checksum\":" + JsonQuote(r.checksum) + ",\"rollback\":" +
           (r.row ? std::string("\"") + RollbackSource(r.file, *r.row) + "\"" : "null") + "}";
  }
  out += "],\"pending\":" + std::to_string(pending) +
         ",\"applied\":" + std::to_string(plan.applied_count) + "}\n";
  return out;
}

std::string FormatAuditText(const std::vector<AuditEvent>& events) {
  std::vector<std::vector<std::string>> rows = {{"ID", "AT", "EVENT", "VERSION", "BY", "DETAIL"}};
  for (const AuditEvent& e : events) {
    rows.push_back(
        {std::to_string(e.id), e.at, e.event, e.version.empty() ? "-" : e.version, e.by, e.detail});
  }
  return FormatTable(rows);
}

std::string FormatAuditJson(const std::vector<AuditEvent>& events) {
  std::string out = "{\"events\":[";
  for (size_t i = 0; i < events.size(); ++i) {
    const AuditEvent& e = events[i];
    out += i ? "," : "";
    out += "{\"id\":" + std::to_string(e.id) + ",\"at\":" + JsonQuote(e.at) +
           ",\"event\":" + JsonQuote(e.event) +
           ",\"version\":" + (e.version.empty() ? "null" : JsonQuote(e.version)) +
           ",\"by\":" + JsonQuote(e.by) + ",\"detail\":" + (e.detail.empty() ? "{}" : e.detail) +
           "}";
  }
  return out + "]}\n";
}

Status ShowStatus(Database& db, const Config& cfg, const std::vector<Migration>& files,
                  const StatusOptions& options) {
  History history(db, cfg.history_table);
  if (options.history) {
    auto events = history.ReadAudit();
    if (!events.ok()) return events.status();
    PrintResult(options.json ? FormatAuditJson(*events) : FormatAuditText(*events));
    return Status::Ok();
  }
  auto rows = history.Read();
  if (!rows.ok()) return rows.status();
  Plan plan = BuildPlan(files, *rows, cfg.out_of_order);
  NotePlan(plan);
  PrintResult(options.json ? FormatStatusJson(plan, db.DatabaseName(), cfg.history_table_text)
                           : FormatStatusText(plan));
  if (options.fail_on_pending && !plan.pending.empty()) {
    return Status::Findings(std::to_string(plan.pending.size()) + " migration(s) pending");
  }
  return Status::Ok();
}

Status Validate(Database& db, const Config& cfg, const std::vector<Migration>& files) {
  History history(db, cfg.history_table);
  auto rows = history.Read();
  if (!rows.ok()) return rows.status();
  Plan plan = BuildPlan(files, *rows, cfg.out_of_order);
  NotePlan(plan);
  std::string out;
  int errors = 0;
  for (const Finding& f : plan.findings) {
    out += std::string(f.error ? "error: " : "warning: ") + f.message + "\n";
    if (f.error) ++errors;
  }
  out += errors ? std::to_string(errors) + " problem(s) found\n"
                : "ok: " + std::to_string(files.size()) + " file(s) agree with the history\n";
  PrintResult(out);
  if (errors)
    return Status::Precondition("validate found " + std::to_string(errors) + " problem(s)");
  return Status::Ok();
}

}  // namespace pgboot
