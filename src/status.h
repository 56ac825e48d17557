// Status and Result<T>: how errors travel between modules (no exceptions cross a module).
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace pgboot {

// Exit codes of SPEC §6. A Status carries the code the process would exit with.
enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,
  kExitUsage = 2,
  kExitNotReady = 3,
  kExitFatalConnect = 4,
  kExitMigrationFailed = 5,
  kExitValidation = 6,
  kExitLockTimeout = 7,
  kExitInvalidFiles = 8,
  kExitNotExecutable = 126,
  kExitNotFound = 127,
};

// A Status is ok() or carries an exit code, a one-line message and, for errors the
// server reported, its SQLSTATE and error position (1-based characters, 0 = none).
class Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Internal(std::string msg) { return Status(kExitInternal, std::move(msg)); }
  static Status Usage(std::string msg) { return Status(kExitUsage, std::move(msg)); }
  static Status NotReady(std::string msg) { return Status(kExitNotReady, std::move(msg)); }
  static Status FatalConnect(std::string msg) { return Status(kExitFatalConnect, std::move(msg)); }
  static Status MigrationFailed(std::string msg) {
    return Status(kExitMigrationFailed, std::move(msg));
  }
  static Status Validation(std::string msg) { return Status(kExitValidation, std::move(msg)); }
  static Status LockTimeout(std::string msg) { return Status(kExitLockTimeout, std::move(msg)); }
  static Status InvalidFiles(std::string msg) { return Status(kExitInvalidFiles, std::move(msg)); }
  // Interrupted by signal `signo`: exits 128 + signo.
  static Status Signal(int signo) {
    Status s(128 + signo, "interrupted by signal " + std::to_string(signo));
    s.signal_ = signo;
    return s;
  }
  // An error the server reported while running SQL (exit code decided by the caller).
  static Status Sql(int code, std::string msg, std::string sqlstate, int position = 0) {
    Status s(code, std::move(msg));
    s.sqlstate_ = std::move(sqlstate);
    s.position_ = position;
    return s;
  }
  static Status WithCode(int code, std::string msg) { return Status(code, std::move(msg)); }

  bool ok() const { return code_ == kExitOk; }
  int code() const { return code_; }
  const std::string& message() const { return message_; }
  const std::string& sqlstate() const { return sqlstate_; }
  int position() const { return position_; }
  // The signal number for Signal() statuses, else 0.
  int signal() const { return signal_; }
  bool is_signal() const { return signal_ != 0; }

  // Returns a copy whose message is `prefix + ": " + message()`.
  Status Wrap(const std::string& prefix) const {
    Status s = *this;
    s.message_ = prefix + ": " + message_;
    return s;
  }

 private:
  Status(int code, std::string msg) : code_(code), message_(std::move(msg)) {}
  int code_ = kExitOk;
  std::string message_;
  std::string sqlstate_;
  int position_ = 0;
  int signal_ = 0;
};

// A value or the Status that explains why there is none.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace pgboot
