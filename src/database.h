// Database: the narrow door to PostgreSQL — an interface with no libpq types, so tests can fake it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lock_mode.h"
#include "status.h"

namespace pgboot {

using SqlParam = std::optional<std::string>;  // nullopt is SQL NULL
using SqlRow = std::vector<std::optional<std::string>>;

struct QueryResult {
  std::vector<std::string> columns;
  std::vector<uint32_t> column_types;  // type OIDs, one per column (16 is boolean)
  std::vector<SqlRow> rows;
  int64_t affected = 0;  // rows affected by INSERT/UPDATE/DELETE
};

// Column `col` of `row` as text: "" for NULL or a missing column.
inline std::string Cell(const SqlRow& row, size_t col) {
  return col < row.size() && row[col] ? *row[col] : std::string();
}
// Row `row`, column `col` of `r` as text: "" for NULL or out of range.
inline std::string Cell(const QueryResult& r, size_t row = 0, size_t col = 0) {
  return row < r.rows.size() ? Cell(r.rows[row], col) : std::string();
}

// A connected session. Every call waits through the EventLoop: a terminating
// signal cancels the running statement on the server (PQcancel), waits for it
// to end, and returns Status::Signal. SQL errors return Status::Sql with the
// SQLSTATE and the server's position (characters, 1-based; 0 when none); a
// session that went away returns Status::ConnectionLost.
class Database {
 public:
  virtual ~Database() = default;

  // Runs `sql` (one statement when params are given; the simple protocol otherwise).
  virtual Result<QueryResult> Exec(std::string_view sql,
                                   const std::vector<SqlParam>& params = {}) = 0;

  // Runs statements in order, pipelined (one round trip) where the
  // implementation can; stops at the first failure. On failure `*failed_index`
  // (when given) is the index of the failing statement.
  // The statements are borrowed, not copied, and each must be followed by a
  // '\0' just past its end (a std::string's or a literal's, or a section's
  // statement inside a TerminatedStatements guard): a migration's statements are
  // handed to libpq where the file is held (docs/reference.md, "Inputs pgboot
  // refuses": the memory bound).
  virtual Status ExecSequence(const std::vector<std::string_view>& statements,
                              size_t* failed_index = nullptr) = 0;

  // While a call waits for the server, `tick` runs every `interval_ms` (0 turns
  // it off): the migrator logs migration.progress this way.
  virtual void SetTicker(int64_t interval_ms, std::function<void()> tick) {
    (void)interval_ms;
    (void)tick;
  }

  // Waits up to `timeout_ms` (< 0: no limit) for notifications on the channels
  // this session LISTENs to (LISTEN is an ordinary Exec) and returns their
  // payloads: those that arrived during earlier calls at once, none on timeout.
  // A terminating signal returns Status::Signal (nothing runs, so nothing is
  // cancelled); a session that dropped, a lost-connection status (08006). The
  // schema gate waits this way (docs/reference.md "The schema gate").
  virtual Result<std::vector<std::string>> WaitForNotifications(int64_t timeout_ms) {
    (void)timeout_ms;
    return Status::Internal("this session cannot wait for notifications");
  }

  // Whether the session is inside a transaction block (open or aborted).
  virtual bool InTransaction() { return false; }

  // How this session takes the migration lock and sends its settings
  // (docs/reference.md, "Lock modes"): kSession or kTransaction, decided once
  // after connecting.
  virtual LockMode lock_mode() { return LockMode::kSession; }

  // The server's backend pid of this session.
  virtual int BackendPid() = 0;
  // The target database's name as the server reports it.
  virtual std::string DatabaseName() = 0;
  // Server version number as PQserverVersion gives it (e.g. 150004).
  virtual int ServerVersion() = 0;
};

// The statements that open one of pgboot's own transactions on `db`: BEGIN,
// and in transaction lock mode the isolation level and SET LOCAL settings.
inline std::vector<std::string> BeginStatements(Database& db) {
  return BeginStatements(db.lock_mode(), db.ServerVersion());
}

// Views of `owned` for ExecSequence; `owned` must outlive them.
inline std::vector<std::string_view> Views(const std::vector<std::string>& owned) {
  return {owned.begin(), owned.end()};
}

}  // namespace pgboot
