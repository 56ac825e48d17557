// History: the history and audit tables (docs/reference.md, "Tables"), the only author of SQL on
// them.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
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

// A typed value spliced into SQL as a literal: what History's operations take,
// so no caller writes SQL text on pgboot's tables.
class SqlValue {
 public:
  static SqlValue Text(const std::string& s);
  static SqlValue Int(int64_t n);
  static SqlValue Bool(bool b);
  static SqlValue Null();
  // Milliseconds since the transaction began, measured by the server when the
  // statement runs (clock_timestamp() - now()): a section's execution time
  // when recorded inside its own transaction.
  static SqlValue ServerElapsedMs();
  const std::string& sql() const { return sql_; }

 private:
  explicit SqlValue(std::string sql) : sql_(std::move(sql)) {}
  std::string sql_;
};

// One row of the audit table: `fields` become its jsonb `detail`, in order.
struct AuditEntry {
  std::string event;    // applied, failed, rolled_back, repaired, baselined
  std::string version;  // empty: NULL
  std::vector<std::pair<std::string, SqlValue>> fields;
};

// One column of the history table (docs/reference.md, "History table"). Create()
// makes the table from this list and Create() on an older table adds what it
// lacks from it, so a new column is one row here: nullable, with no default
// (an older pgboot, which names its columns in every INSERT, keeps working on
// the upgraded table) and read as NULL where it is still missing.
struct HistoryColumn {
  const char* name;
  const char* ddl;  // type and constraints, as in CREATE TABLE
  bool since_0_1;   // in every table pgboot 0.1 made; false: added in place
};
inline constexpr HistoryColumn kHistoryColumns[] = {
    {"version", "text PRIMARY KEY", true},
    {"name", "text NOT NULL", true},
    {"checksum", "text NOT NULL", true},
    {"status", "text NOT NULL CHECK (status IN ('applied', 'running', 'failed'))", true},
    {"applied_at", "timestamptz NOT NULL DEFAULT now()", true},
    {"execution_ms", "integer", true},
    {"applied_by", "text NOT NULL", true},
    {"batch", "integer NOT NULL", true},
    {"down_sql", "text", false},
    {"down_options", "text", false},
    {"statements_done", "integer", false},
};

// The history table `name` and its `<name>_log` audit table: the only author
// of SQL on them. Reads run at once; writes are returned as SQL, so that the
// caller can pipeline them with a section's statements into one round trip
// and one transaction. Reading takes no lock and writes nothing; Create() runs
// only under the migration lock (concurrent CREATE TABLE IF NOT EXISTS races
// on the catalog).
class History {
 public:
  History(Database& db, QualifiedName name);

  // Whether the history table exists (a missing one means everything is pending).
  Result<bool> Exists();
  // Every row; empty when the table does not exist. Columns an older pgboot's
  // table lacks read as NULL: reading never alters the table.
  Result<std::vector<HistoryRow>> Read();
  // Creates the schema and both tables if missing, and adds the columns of
  // kHistoryColumns an older pgboot's table lacks (ALTER TABLE ... ADD COLUMN
  // IF NOT EXISTS): only writing commands call it, only under the lock.
  Status Create();
  // The audit log, newest first.
  Result<std::vector<AuditEvent>> ReadAudit();
  // The next batch number (max + 1).
  Result<int64_t> NextBatch();

  // What transaction lock mode re-reads under the lock, in one statement (a
  // fresh snapshot): the row of `version`, the highest applied version, an
  // unfinished (running/failed) row of any version, the highest batch recorded.
  struct LockedView {
    std::string status;    // of `version`; empty: no row
    std::string checksum;  // of `version`
    std::string newest_applied;
    std::string unfinished_version;
    std::string unfinished_status;
    int64_t max_batch = 0;
  };
  Result<LockedView> ReadUnderLock(const std::string& version);

  // Writes, as SQL. -------------------------------------------------------
  // An `applied` row for `m` (execution_ms: ServerElapsedMs() inside the
  // migration's own transaction, or a number).
  std::string RecordApplied(const Migration& m, int64_t batch, const SqlValue& execution_ms) const;
  // The writes of a transaction:false run: each affects one row only while
  // this session still holds the migration lock (HoldsLockSql); none is a
  // sign a section released it. Run them with Exec and check `affected`.
  // A `running` row with statements_done 0, committed before its first statement.
  std::string RecordRunning(const Migration& m, int64_t batch) const;
  // `done` statements of a running row completed: a plain UPDATE, sent right
  // after each statement on the section's own session, so inside a
  // transaction the section opened it commits or rolls back with it.
  std::string MarkStatementsDone(const std::string& version, int64_t done) const;
  // A `running` row becomes `applied` with the execution time measured by pgboot.
  std::string MarkApplied(const std::string& version, int64_t execution_ms) const;
  // A `running` row becomes `failed` (it blocks later runs until `repair`).
  std::string MarkFailed(const std::string& version) const;
  // SQL true while this session holds the migration lock (pg_locks).
  std::string HoldsLockSql() const;
  // Deletes the row of `version` (only when its status is `only_status`, if given).
  std::string Delete(const std::string& version, const std::string& only_status = "") const;
  // Realigns an applied row with its file (repair): checksum, name, down section.
  std::string UpdateChecksum(const Migration& m) const;
  // NOTIFY pgboot with this table's quote_ident(schema).quote_ident(table), as the
  // server spells it: run in the transaction that records a migration applied, it
  // reaches gated processes (docs/gate.md) exactly when that commits.
  std::string Notify() const;
  // One audit row, written by this pgboot (applied_by()).
  std::string Audit(const AuditEntry& entry) const;
  // What a rollback of `version` writes, in words, for --dry-run.
  std::string DescribeRollbackWrites(const std::string& version) const;

  // `pgboot <version> on <hostname>`, as every row and audit row records it.
  const std::string& applied_by() const { return by_; }

  // The advisory-lock key expression (docs/reference.md, "The lock"), computed by the server.
  std::string LockKeySql() const;
  // A query for the session holding that lock in this database: pid,
  // application_name and session start (ISO UTC); no row when it is free.
  // pg_locks shows a bigint advisory key as classid (high 32 bits) and objid.
  std::string LockHolderSql() const;

 private:
  Database& db_;
  QualifiedName name_;
  std::string table_;      // quoted
  std::string log_table_;  // quoted
  std::string by_;
};

// A failure on pgboot's own tables is not a migration's SQL failing: kInternal
// with `what` in front, keeping the SQLSTATE (a signal stays a signal, a lost
// connection a lost connection).
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
