#include "history.h"

#include <unistd.h>

#include <algorithm>
#include <optional>

#include "log.h"
#include "version.h"

namespace pgboot {

Status HistoryError(const Status& s, const std::string& what) {
  if (s.ok() || s.is_signal()) return s;
  // A lost session stays one: the caller reconnects (docs/reference.md, "After a crash").
  if (s.kind() == StatusKind::kConnectionLost) return s.WithMessage(what + ": " + s.message());
  return s.As(StatusKind::kInternal).WithMessage(what + ": " + s.message());
}

std::string SqlLiteral(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

std::string AppliedBy() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return std::string("pgboot ") + PGBOOT_VERSION + " on " + (host[0] ? host : "unknown");
}

History::History(Database& db, QualifiedName name)
    : db_(db), name_(std::move(name)), by_(AppliedBy()) {
  table_ = name_.Quoted();
  QualifiedName log = name_;
  log.table += "_log";
  log_table_ = log.Quoted();
}

Result<bool> History::Exists() {
  auto r = db_.Exec("SELECT to_regclass($1) IS NOT NULL", {table_});
  if (!r.ok()) return HistoryError(r.status(), "reading history table " + table_);
  return !r->rows.empty() && Cell(r->rows[0], 0) == "t";
}

namespace {

// Of kHistoryColumns, those `table` (an SQL expression: the quoted name as text) lacks,
// comma-separated, computed by the server; "" when it has them all or does not exist.
std::string MissingColumnsSql(const std::string& table) {
  std::string names;
  for (const HistoryColumn& c : kHistoryColumns) {
    names += std::string(names.empty() ? "" : ", ") + SqlLiteral(c.name);
  }
  return "(SELECT coalesce(string_agg(c, ',' ORDER BY o), '') FROM unnest(ARRAY[" + names +
         "]::text[]) WITH ORDINALITY AS u(c, o) WHERE to_regclass(" + table +
         ") IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = "
         "to_regclass(" +
         table + ") AND attname = c AND attnum > 0 AND NOT attisdropped))";
}

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  for (size_t pos = 0; pos < s.size();) {
    size_t comma = std::min(s.find(',', pos), s.size());
    out.push_back(s.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

bool Has(const std::vector<std::string>& columns, const char* name) {
  return std::find(columns.begin(), columns.end(), name) != columns.end();
}

std::optional<std::string> Optional(const std::vector<std::optional<std::string>>& row, size_t i) {
  return i < row.size() ? row[i] : std::nullopt;
}

}  // namespace

Result<std::vector<HistoryRow>> History::Read() {
  // One round trip says whether the table exists and which columns it lacks.
  auto have = db_.Exec("SELECT to_regclass($1) IS NOT NULL, " + MissingColumnsSql("$1"), {table_});
  if (!have.ok()) return HistoryError(have.status(), "reading history table " + table_);
  std::vector<HistoryRow> rows;
  if (have->rows.empty() || Cell(have->rows[0], 0) != "t") return rows;
  const std::vector<std::string> missing = SplitCommas(Cell(have->rows[0], 1));
  // A column an older pgboot's table lacks reads as NULL, never added here.
  auto column = [&](const char* name) {
    return Has(missing, name) ? std::string("NULL::text") : std::string(name);
  };
  auto r = db_.Exec(std::string("SELECT version, name, checksum, status, to_char(applied_at AT "
                                "TIME ZONE 'UTC', ") +
                    kIsoUtcFormat + "), execution_ms, applied_by, batch, " + column("down_sql") +
                    ", " + column("down_options") + ", " + column("statements_done") +
                    "::integer FROM " + table_);
  if (!r.ok()) return HistoryError(r.status(), "reading history table " + table_);
  for (const auto& row : r->rows) {
    HistoryRow h;
    h.version = Cell(row, 0);
    h.name = Cell(row, 1);
    h.checksum = Cell(row, 2);
    h.status = Cell(row, 3);
    h.applied_at = Cell(row, 4);
    if (row.size() > 5 && row[5]) h.execution_ms = std::stoll(*row[5]);
    h.applied_by = Cell(row, 6);
    h.batch = row.size() > 7 && row[7] ? std::stoll(*row[7]) : 0;
    h.down_sql = Optional(row, 8);
    h.down_options = Optional(row, 9);
    if (row.size() > 10 && row[10]) h.statements_done = std::stoll(*row[10]);
    rows.push_back(std::move(h));
  }
  return rows;
}

Status History::Create() {
  // Only what is missing: IF NOT EXISTS alone would log a NOTICE on every run.
  auto have = db_.Exec(
      "SELECT to_regnamespace($1) IS NOT NULL, to_regclass($2) IS NOT NULL, "
      "to_regclass($3) IS NOT NULL, " +
          MissingColumnsSql("$2"),
      {QuoteIdent(name_.schema), table_, log_table_});
  if (!have.ok()) return HistoryError(have.status(), "checking for " + table_);
  auto present = [&](size_t i) {
    return !have->rows.empty() && have->rows[0].size() > i && have->rows[0][i] == "t";
  };
  std::vector<std::string> ddl;
  if (!present(0)) ddl.push_back("CREATE SCHEMA IF NOT EXISTS " + QuoteIdent(name_.schema));
  if (!present(1)) {
    std::string create = "CREATE TABLE IF NOT EXISTS " + table_ + " (";
    for (const HistoryColumn& c : kHistoryColumns) {
      create += std::string(&c == kHistoryColumns ? "\n  " : ",\n  ") + c.name + " " + c.ddl;
    }
    ddl.push_back(create + "\n)");
  } else {
    // A table an older pgboot made: add what it lacks, in place (docs/reference.md,
    // "Upgrading pgboot").
    const std::vector<std::string> missing =
        SplitCommas(have->rows.empty() ? "" : Cell(have->rows[0], 3));
    for (const HistoryColumn& c : kHistoryColumns) {
      if (!Has(missing, c.name)) continue;
      if (c.since_0_1) {
        return Status::Precondition(table_ + " lacks column " + c.name +
                                    ", which every pgboot history table has: it is not one "
                                    "(choose another --history-table)");
      }
      ddl.push_back("ALTER TABLE " + table_ + " ADD COLUMN IF NOT EXISTS " + c.name + " " + c.ddl);
      LogInfo("history.upgrade", {{"table", table_}, {"column", c.name}});
    }
  }
  if (!present(2)) {
    ddl.push_back("CREATE TABLE IF NOT EXISTS " + log_table_ +
                  " (\n"
                  "  id      bigserial PRIMARY KEY,\n"
                  "  at      timestamptz NOT NULL DEFAULT now(),\n"
                  "  event   text NOT NULL,\n"
                  "  version text,\n"
                  "  by      text NOT NULL,\n"
                  "  detail  jsonb NOT NULL DEFAULT '{}'\n"
                  ")");
  }
  for (const std::string& sql : ddl) {
    auto r = db_.Exec(sql);
    if (!r.ok()) return HistoryError(r.status(), "creating " + table_);
  }
  return Status::Ok();
}

Result<std::vector<AuditEvent>> History::ReadAudit() {
  auto exists = db_.Exec("SELECT to_regclass($1) IS NOT NULL", {log_table_});
  if (!exists.ok()) return HistoryError(exists.status(), "reading audit table " + log_table_);
  std::vector<AuditEvent> events;
  if (exists->rows.empty() || Cell(exists->rows[0], 0) != "t") return events;
  auto r = db_.Exec(std::string("SELECT id, to_char(at AT TIME ZONE 'UTC', ") + kIsoUtcFormat +
                    "), event, version, by, detail::text FROM " + log_table_ + " ORDER BY id DESC");
  if (!r.ok()) return HistoryError(r.status(), "reading audit table " + log_table_);
  for (const auto& row : r->rows) {
    AuditEvent e;
    e.id = std::stoll(Cell(row, 0));
    e.at = Cell(row, 1);
    e.event = Cell(row, 2);
    e.version = Cell(row, 3);
    e.by = Cell(row, 4);
    e.detail = Cell(row, 5);
    events.push_back(std::move(e));
  }
  return events;
}

Result<int64_t> History::NextBatch() {
  // Over the audit log too: after `rollback --batch` a reused number would make
  // the old audit rows of that batch ambiguous.
  auto r = db_.Exec("SELECT greatest((SELECT coalesce(max(batch), 0) FROM " + table_ +
                    "), (SELECT coalesce(max((detail->>'batch')::bigint), 0) FROM " + log_table_ +
                    " WHERE detail->>'batch' ~ '^[0-9]{1,9}$')) + 1");
  if (!r.ok()) return HistoryError(r.status(), "reading the next batch number");
  return std::stoll(Cell(r->rows.at(0), 0));
}

Result<History::LockedView> History::ReadUnderLock(const std::string& version) {
  // Canonical versions have no leading zeros: numeric order is (length, text).
  auto r = db_.Exec(
      "SELECT (SELECT status FROM " + table_ + " WHERE version = $1), (SELECT checksum FROM " +
          table_ + " WHERE version = $1), (SELECT version FROM " + table_ +
          " WHERE status = 'applied' ORDER BY length(version) DESC, version DESC "
          "LIMIT 1), (SELECT version || ' ' || status FROM " +
          table_ + " WHERE status <> 'applied' ORDER BY length(version), version LIMIT 1), " +
          "(SELECT coalesce(max(batch), 0) FROM " + table_ + ")",
      {version});
  if (!r.ok()) return HistoryError(r.status(), "re-reading history table " + table_);
  LockedView v;
  v.status = Cell(*r, 0, 0);
  v.checksum = Cell(*r, 0, 1);
  v.newest_applied = Cell(*r, 0, 2);
  const std::string unfinished = Cell(*r, 0, 3);
  if (const size_t sp = unfinished.rfind(' '); sp != std::string::npos) {
    v.unfinished_version = unfinished.substr(0, sp);
    v.unfinished_status = unfinished.substr(sp + 1);
  }
  const std::string batch = Cell(*r, 0, 4);
  v.max_batch = IsVersionText(batch) ? std::stoll(batch) : 0;
  return v;
}

SqlValue SqlValue::Text(const std::string& s) { return SqlValue(SqlLiteral(s)); }
SqlValue SqlValue::Int(int64_t n) { return SqlValue(std::to_string(n)); }
SqlValue SqlValue::Bool(bool b) { return SqlValue(b ? "true" : "false"); }
SqlValue SqlValue::Null() { return SqlValue("NULL"); }
SqlValue SqlValue::ServerElapsedMs() {
  return SqlValue("(extract(epoch FROM clock_timestamp() - now()) * 1000)::integer");
}

namespace {

// down_sql and down_options of `m`, as SQL literals (docs/reference.md, "Stored downs").
std::pair<std::string, std::string> DownValues(const Migration& m) {
  if (!m.down) return {"NULL", "NULL"};
  return {SqlLiteral(m.down->sql), m.down->options.empty() ? "NULL" : SqlLiteral(m.down->options)};
}

}  // namespace

std::string History::RecordApplied(const Migration& m, int64_t batch,
                                   const SqlValue& execution_ms) const {
  auto [down_sql, down_options] = DownValues(m);
  return "INSERT INTO " + table_ +
         " (version, name, checksum, status, applied_at, execution_ms, applied_by, batch, "
         "down_sql, down_options) VALUES (" +
         SqlLiteral(m.version) + ", " + SqlLiteral(m.name) + ", " + SqlLiteral(m.checksum) +
         ", 'applied', now(), " + execution_ms.sql() + ", " + SqlLiteral(by_) + ", " +
         std::to_string(batch) + ", " + down_sql + ", " + down_options + ")";
}

// The writes of a transaction:false run are conditional on this session still
// holding the migration lock: a section may release it (DISCARD ALL,
// pg_advisory_unlock_all()), and a second runner would then take the run for
// dead and resume it (docs/reference.md, "Resume").
std::string History::HoldsLockSql() const {
  return "EXISTS (SELECT 1 FROM pg_locks l, (SELECT " + LockKeySql() +
         " AS k) key WHERE l.locktype = 'advisory' AND l.granted AND l.pid = pg_backend_pid() AND "
         "l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = "
         "current_database()) AND l.classid = ((k >> 32) & 4294967295)::oid AND l.objid = (k & "
         "4294967295)::oid)";
}

std::string History::RecordRunning(const Migration& m, int64_t batch) const {
  auto [down_sql, down_options] = DownValues(m);
  return "INSERT INTO " + table_ +
         " (version, name, checksum, status, applied_at, execution_ms, applied_by, batch, "
         "down_sql, down_options, statements_done) SELECT " +
         SqlLiteral(m.version) + ", " + SqlLiteral(m.name) + ", " + SqlLiteral(m.checksum) +
         ", 'running', now(), NULL, " + SqlLiteral(by_) + ", " + std::to_string(batch) + ", " +
         down_sql + ", " + down_options + ", 0 WHERE " + HoldsLockSql();
}

std::string History::MarkStatementsDone(const std::string& version, int64_t done) const {
  return "UPDATE " + table_ + " SET statements_done = " + std::to_string(done) +
         " WHERE version = " + SqlLiteral(version) + " AND status = 'running' AND " +
         HoldsLockSql();
}

std::string History::MarkApplied(const std::string& version, int64_t execution_ms) const {
  return "UPDATE " + table_ +
         " SET status = 'applied', execution_ms = " + std::to_string(execution_ms) +
         " WHERE version = " + SqlLiteral(version) + " AND status = 'running' AND " +
         HoldsLockSql();
}

std::string History::Notify() const {
  return "SELECT pg_notify('pgboot', quote_ident(" + SqlLiteral(name_.schema) +
         ") || '.' || quote_ident(" + SqlLiteral(name_.table) + "))";
}

std::string History::MarkFailed(const std::string& version) const {
  return "UPDATE " + table_ + " SET status = 'failed' WHERE version = " + SqlLiteral(version) +
         " AND status = 'running' AND " + HoldsLockSql();
}

std::string History::Delete(const std::string& version, const std::string& only_status) const {
  return "DELETE FROM " + table_ + " WHERE version = " + SqlLiteral(version) +
         (only_status.empty() ? "" : " AND status = " + SqlLiteral(only_status));
}

std::string History::UpdateChecksum(const Migration& m) const {
  auto [down_sql, down_options] = DownValues(m);
  return "UPDATE " + table_ + " SET checksum = " + SqlLiteral(m.checksum) +
         ", name = " + SqlLiteral(m.name) + ", down_sql = " + down_sql +
         ", down_options = " + down_options + " WHERE version = " + SqlLiteral(m.version);
}

std::string History::Audit(const AuditEntry& e) const {
  std::string detail = "jsonb_build_object(";
  for (size_t i = 0; i < e.fields.size(); ++i) {
    detail += (i ? ", " : "") + SqlLiteral(e.fields[i].first) + ", " + e.fields[i].second.sql();
  }
  detail += ")";
  return "INSERT INTO " + log_table_ + " (event, version, by, detail) VALUES (" +
         SqlLiteral(e.event) + ", " + (e.version.empty() ? "NULL" : SqlLiteral(e.version)) + ", " +
         SqlLiteral(by_) + ", " + detail + ")";
}

std::string History::DescribeRollbackWrites(const std::string& version) const {
  return Delete(version) + ", and a rolled_back row in " + log_table_;
}

std::string History::LockKeySql() const {
  return "hashtextextended('pgboot:' || quote_ident(" + SqlLiteral(name_.schema) +
         ") || '.' || quote_ident(" + SqlLiteral(name_.table) + "), 0)";
}

std::string History::LockHolderSql() const {
  return "SELECT a.pid, coalesce(a.application_name, ''), to_char(a.backend_start AT TIME ZONE "
         "'UTC', " +
         std::string(kIsoUtcFormat) +
         ") FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid, (SELECT " + LockKeySql() +
         " AS k) key WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND "
         "l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND "
         "l.classid = ((k >> 32) & 4294967295)::oid AND l.objid = (k & 4294967295)::oid LIMIT 1";
}

}  // namespace pgboot
