#include "doctor.h"

#include <cstdio>

#include "history.h"
#include "log.h"
#include "plan.h"
#include "run_stats.h"
#include "verify.h"

namespace pgboot {
namespace {

// Idle-in-transaction sessions hold their locks and the xmin horizon; past this
// they are a finding whatever --long-running says (docs/reference.md, "Doctor").
constexpr int64_t kIdleInTransactionMs = 5000;

int64_t Number(const std::string& s) {
  try {
    return s.empty() ? 0 : std::stoll(s);
  } catch (...) {
    return 0;
  }
}

std::string Seconds(int64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms) / 1000.0);
  return buf;
}

std::string Bytes(int64_t n) {
  const char* units[] = {"bytes", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[48];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%lld bytes", static_cast<long long>(n));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s (%lld bytes)", v, units[u], static_cast<long long>(n));
  }
  return buf;
}

std::string Who(const std::string& pid, const std::string& app) {
  return "pid " + pid + (app.empty() ? "" : " (" + app + ")");
}

Status Sessions(Database& db, const Config& cfg, DoctorReport* report) {
  auto r = db.Exec(
      std::string("SELECT pid, coalesce(application_name, ''), coalesce(usename::text, ''), "
                  "state, to_char(state_change AT TIME ZONE 'UTC', ") +
          kIsoUtcFormat + "), coalesce(to_char(query_start AT TIME ZONE 'UTC', " + kIsoUtcFormat +
          "), ''), coalesce(to_char(xact_start AT TIME ZONE 'UTC', " + kIsoUtcFormat +
          "), ''), (extract(epoch FROM clock_timestamp() - state_change) * 1000)::bigint, "
          "(extract(epoch FROM clock_timestamp() - query_start) * 1000)::bigint "
          "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
          "AND backend_type = 'client backend' AND ("
          "(state IN ('idle in transaction', 'idle in transaction (aborted)') AND state_change < "
          "clock_timestamp() - $1::bigint * interval '1 millisecond') OR "
          "(state = 'active' AND query_start < clock_timestamp() - $2::bigint * interval '1 "
          "millisecond')) ORDER BY pid",
      {std::to_string(kIdleInTransactionMs), std::to_string(cfg.long_running_ms)});
  if (!r.ok()) return r.status().Wrap("reading pg_stat_activity");
  for (const auto& row : r->rows) {
    const std::string pid = Cell(row, 0), app = Cell(row, 1), user = Cell(row, 2);
    const std::string state = Cell(row, 3), state_change = Cell(row, 4);
    const std::string query_start = Cell(row, 5), xact_start = Cell(row, 6);
    const bool idle = state != "active";
    const int64_t ms = Number(Cell(row, idle ? 7 : 8));
    DoctorFinding f;
    f.kind = idle ? "idle_in_transaction" : "long_running";
    f.pid = Number(pid);
    if (idle) {
      f.message = Who(pid, app) + " has been " + state + " for " + Seconds(ms) + " (since " +
                  state_change + ", transaction started " + xact_start +
                  "): it keeps its locks, so a migration's DDL queues behind it, and a CREATE "
                  "INDEX CONCURRENTLY waits for it to end";
    } else {
      f.message = Who(pid, app) + " has been running one query for " + Seconds(ms) + " (since " +
                  query_start + ", over --long-running " + FormatDuration(cfg.long_running_ms) +
                  "): a migration that needs a lock on what it reads waits for it";
    }
    f.fields = {{"application_name", JsonQuote(app)},
                {"user", JsonQuote(user)},
                {"state", JsonQuote(state)},
                {"since", JsonQuote(idle ? state_change : query_start)},
                {"query_start", query_start.empty() ? "null" : JsonQuote(query_start)},
                {"xact_start", xact_start.empty() ? "null" : JsonQuote(xact_start)},
                {"duration_ms", std::to_string(ms)}};
    report->findings.push_back(std::move(f));
  }
  return Status::Ok();
}

Status LockWaits(Database& db, DoctorReport* report) {
  // pg_locks.waitstart exists from PostgreSQL 14 on.
  const std::string since =
      db.ServerVersion() >= 140000 ? "coalesce(w.waitstart, a.query_start)" : "a.query_start";
  auto r = db.Exec(
      "SELECT DISTINCT ON (w.pid) w.pid, coalesce(a.application_name, ''), w.locktype, w.mode, "
      "CASE WHEN w.relation IS NOT NULL THEN w.relation::regclass::text ELSE '' END, "
      "coalesce(to_char(" +
      since + " AT TIME ZONE 'UTC', " + kIsoUtcFormat +
      "), ''), "
      "coalesce((extract(epoch FROM clock_timestamp() - " +
      since +
      ") * 1000)::bigint, 0), "
      "array_to_string(pg_blocking_pids(w.pid), ','), "
      "coalesce((SELECT string_agg('pid ' || b.pid || ' (' || coalesce(nullif("
      "b.application_name, ''), '-') || ', ' || coalesce(b.state, '-') || ')', ', ' ORDER BY "
      "b.pid) FROM pg_stat_activity b WHERE b.pid = ANY(pg_blocking_pids(w.pid))), '') "
      "FROM pg_locks w JOIN pg_stat_activity a ON a.pid = w.pid "
      "WHERE NOT w.granted AND a.datname = current_database() AND w.pid <> pg_backend_pid() "
      "ORDER BY w.pid");
  if (!r.ok()) return r.status().Wrap("reading pg_locks");
  for (const auto& row : r->rows) {
    const std::string pid = Cell(row, 0), app = Cell(row, 1), locktype = Cell(row, 2);
    const std::string mode = Cell(row, 3), relation = Cell(row, 4), waitstart = Cell(row, 5);
    const std::string blockers = Cell(row, 7), who_blocks = Cell(row, 8);
    DoctorFinding f;
    f.kind = "lock_wait";
    f.pid = Number(pid);
    f.message = Who(pid, app) + " has waited " + Seconds(Number(Cell(row, 6))) + " for " + mode +
                " on " + (relation.empty() ? locktype : locktype + " " + relation) +
                (who_blocks.empty() ? "" : ", blocked by " + who_blocks);
    f.fields = {{"application_name", JsonQuote(app)},
                {"locktype", JsonQuote(locktype)},
                {"mode", JsonQuote(mode)},
                {"relation", relation.empty() ? "null" : JsonQuote(relation)},
                {"since", waitstart.empty() ? "null" : JsonQuote(waitstart)},
                {"blocked_by", "[" + blockers + "]"}};
    report->findings.push_back(std::move(f));
  }
  return Status::Ok();
}

Status InvalidIndexes(Database& db, DoctorReport* report) {
  // An index being built right now by CREATE INDEX CONCURRENTLY is invalid
  // until it finishes: that is work in progress, not a leftover.
  auto r = db.Exec(
      "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), "
      "quote_ident(tn.nspname) || '.' || quote_ident(t.relname) "
      "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
      "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_class t ON t.oid = i.indrelid "
      "JOIN pg_namespace tn ON tn.oid = t.relnamespace WHERE NOT i.indisvalid AND NOT EXISTS "
      "(SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid) "
      "ORDER BY 1");
  if (!r.ok()) return r.status().Wrap("reading pg_index");
  for (const auto& row : r->rows) {
    const std::string index = Cell(row, 0), table = Cell(row, 1);
    DoctorFinding f;
    f.kind = "invalid_index";
    f.message = "index " + index + " on " + table +
                " is INVALID (left by a failed CREATE INDEX CONCURRENTLY or REINDEX "
                "CONCURRENTLY): queries ignore it but every write still maintains it, and "
                "CREATE INDEX ... IF NOT EXISTS skips it; DROP INDEX CONCURRENTLY " +
                index + " before running the migration again";
    f.fields = {{"index", JsonQuote(index)}, {"table", JsonQuote(table)}};
    report->findings.push_back(std::move(f));
  }
  return Status::Ok();
}

Status HistoryFindings(Database& db, const Config& cfg, const std::vector<Migration>& files,
                       DoctorReport* report) {
  History history(db, cfg.history_table);
  auto rows = history.Read();
  if (!rows.ok()) return rows.status();
  Plan plan = BuildPlan(files, *rows, cfg.out_of_order);
  NotePlan(plan);
  report->pending = static_cast<int64_t>(plan.pending.size());

  // A `running` row whose runner still holds the lock is a migration in
  // progress, not a leftover.
  std::string holder;
  auto lock = db.Exec(history.LockHolderSql());
  if (lock.ok() && !lock->rows.empty()) holder = Cell(lock->rows[0], 0);

  for (const Finding& fd : plan.findings) {
    const HistoryRow* row = nullptr;
    for (const HistoryRow& r : *rows) {
      if (r.version == fd.version) row = &r;
    }
    if (!fd.error) {
      report->notes.push_back(fd.message);
      continue;
    }
    if (row && row->status == "running" && !holder.empty()) {
      report->notes.push_back("version " + fd.version + " is being applied now by pid " + holder +
                              " (it holds the migration lock)");
      continue;
    }
    DoctorFinding f;
    f.kind = "history";
    f.message = fd.message;
    f.fields = {{"version", JsonQuote(fd.version)},
                {"status", row ? JsonQuote(row->status) : "null"}};
    report->findings.push_back(std::move(f));
  }
  return Status::Ok();
}

// Failing verify checks of applied migrations (docs/reference.md, "Verify sections").
Status VerifyFindings(Database& db, const Config& cfg, const std::vector<Migration>& files,
                      DoctorReport* report) {
  auto checks = VerifyApplied(db, cfg, files);
  if (!checks.ok()) return checks.status();
  for (const CheckOutcome& c : *checks) {
    if (c.ok) continue;
    DoctorFinding f;
    f.kind = "verify";
    f.message = "version " + c.version + ": check at " + CheckLocation(c) + " fails: " + c.message;
    f.fields = {{"version", JsonQuote(c.version)},
                {"file", JsonQuote(c.file)},
                {"line", std::to_string(c.line)}};
    report->findings.push_back(std::move(f));
  }
  return Status::Ok();
}

}  // namespace

std::string FormatDoctorText(const DoctorReport& r) {
  std::string out;
  out += "server_version      " + r.server_version + "\n";
  out += "connections         " + std::to_string(r.connections) + " of max_connections " +
         std::to_string(r.max_connections) + "\n";
  out += "database_size       " + Bytes(r.database_size_bytes) + "\n";
  out += "pending migrations  " + std::to_string(r.pending) + "\n";
  for (const std::string& n : r.notes) out += "note: " + n + "\n";
  if (r.findings.empty()) return out + "\nno findings\n";
  out += "\n" + std::to_string(r.findings.size()) + " finding(s):\n";
  for (const DoctorFinding& f : r.findings) out += "  [" + f.kind + "] " + f.message + "\n";
  return out;
}

std::string FormatDoctorJson(const DoctorReport& r) {
  std::string out = "{\"info\":{\"server_version\":" + JsonQuote(r.server_version) +
                    ",\"connections\":" + std::to_string(r.connections) +
                    ",\"max_connections\":" + std::to_string(r.max_connections) +
                    ",\"database_size_bytes\":" + std::to_string(r.database_size_bytes) +
                    ",\"pending\":" + std::to_string(r.pending) + "},\"findings\":[";
  for (size_t i = 0; i < r.findings.size(); ++i) {
    const DoctorFinding& f = r.findings[i];
    out += i ? "," : "";
    out += "{\"kind\":" + JsonQuote(f.kind) + ",\"message\":" + JsonQuote(f.message) +
           ",\"pid\":" + (f.pid ? std::to_string(*f.pid) : "null");
    for (const auto& [key, value] : f.fields) out += "," + JsonQuote(key) + ":" + value;
    out += "}";
  }
  return out + "]}\n";
}

Status Doctor(Database& db, const Config& cfg, const std::vector<Migration>& files, bool json) {
  DoctorReport report;
  auto info = db.Exec(
      "SELECT current_setting('server_version'), (SELECT count(*) FROM pg_stat_activity WHERE "
      "backend_type = 'client backend'), current_setting('max_connections'), "
      "pg_database_size(current_database())");
  if (!info.ok()) {
    return info.status().is_signal()
               ? info.status()
               : Status::Internal("reading server information: " + info.status().message());
  }
  if (!info->rows.empty()) {
    const auto& row = info->rows[0];
    report.server_version = Cell(row, 0);
    report.connections = Number(Cell(row, 1));
    report.max_connections = Number(Cell(row, 2));
    report.database_size_bytes = Number(Cell(row, 3));
  }
  // Every query here is a report, not a migration: an error is exit 1, not 5.
  auto internal = [](const Status& s) { return s.is_signal() ? s : Status::Internal(s.message()); };
  Status s = Sessions(db, cfg, &report);
  if (s.ok()) s = LockWaits(db, &report);
  if (s.ok()) s = InvalidIndexes(db, &report);
  if (s.ok()) s = HistoryFindings(db, cfg, files, &report);
  if (s.ok()) s = VerifyFindings(db, cfg, files, &report);
  if (!s.ok()) return internal(s);
  PrintResult(json ? FormatDoctorJson(report) : FormatDoctorText(report));
  if (report.findings.empty()) return Status::Ok();
  return Status::Findings("doctor: " + std::to_string(report.findings.size()) + " finding(s)");
}

}  // namespace pgboot
