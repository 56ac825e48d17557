// History: the history and audit tables (docs/reference.md, "Tables") read and written through
// Database.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config.h"
#include "database.h"
#include "plan.h"

namespace pgboot {

struct AuditEvent {
  int64_t id = 0;
  std::string at;  // ISO 8601 UTC
  std::string event;
  std::string version;
  std::string by;
  std::string detail;  // JSON text
};

// SQL for the history table `name` and its `<name>_log` audit table. Reading
// takes no lock and writes nothing; Create() runs only under the migration lock
// (concurrent CREATE TABLE IF NOT EXISTS races on the catalog).
class History {
 public:
  History(Database& db, QualifiedName name);

  const std::string& table() const { return table_; }  // quoted, for SQL
  const std::string& log_table() const { return log_table_; }

  // Whether the history table exists (a missing one means everything is pending).
  Result<bool> Exists();
  // Every row; empty when the table does not exist.
  Result<std::vector<HistoryRow>> Read();
  // Creates the schema (if missing) and both tables if missing.
  Status Create();
  // The audit log, newest first.
  Result<std::vector<AuditEvent>> ReadAudit();
  // The next batch number (max + 1).
  Result<int64_t> NextBatch();

  // Statements that record a transactional migration as applied; they run in the
  // migration's own transaction, so execution_ms is measured by the server
  // (clock_timestamp() - now()).
  std::string InsertAppliedSql(const Migration& m, int64_t batch, const std::string& by) const;
  std::string AuditSql(const std::string& event, const std::string& version, const std::string& by,
                       const std::string& detail_json) const;

  // The advisory-lock key expression (docs/reference.md, "The lock"), computed by the server.
  std::string LockKeySql() const;
  // A query for the session holding that lock in this database: pid,
  // application_name and session start (ISO UTC); no row when it is free.
  // pg_locks shows a bigint advisory key as classid (high 32 bits) and objid.
  std::string LockHolderSql() const;

 private:
  Database& db_;
  QualifiedName name_;
  std::string table_;
  std::string log_table_;
};

// A failure on pgboot's own tables is not a migration's SQL failing: kInternal
// with `what` in front, keeping the SQLSTATE (a signal stays a signal).
Status HistoryError(const Status& s, const std::string& what);

// to_char() format of a timestamp AT TIME ZONE 'UTC' as ISO 8601 with
// milliseconds, as every report prints times (a quoted SQL literal).
inline constexpr char kIsoUtcFormat[] = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'";

// SQL string literal of `s` ('...' with quotes doubled; E'' never needed since
// standard_conforming_strings is on in every supported server).
std::string SqlLiteral(const std::string& s);

// "pgboot <version> on <hostname>".
std::string AppliedBy();

}  // namespace pgboot
