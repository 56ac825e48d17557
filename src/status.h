// Status and Result<T>: how errors travel between modules (no exceptions cross a module).
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace pgboot {

// What went wrong, as the module that saw it knows it. The process's exit code
// is not decided here: entrypoint/exit_code.h maps a kind to the codes of
// docs/reference.md ("Exit codes") in one place.
enum class StatusKind {
  kOk,
  kInternal,          // pgboot's own fault, or its bookkeeping on its tables failed
  kFindings,          // the command ran and reports trouble (pending work, doctor findings)
  kUsage,             // usage or configuration error
  kTimeout,           // a deadline passed (the database not ready within --wait-timeout)
  kConnectRejected,   // the server refused the login for good (authentication, missing database)
  kSql,               // SQL the server rejected, or that broke the section's rules
  kConnectionLost,    // the session went away while pgboot used it
  kPrecondition,      // validation or a command's precondition failed
  kLockTimeout,       // the migration lock was not had within --lock-timeout
  kInvalidFiles,      // the migration files cannot be read or parsed
  kInterrupted,       // a terminating signal ended pgboot's work
  kAppNotFound,       // APP could not be started: not found
  kAppNotExecutable,  // APP could not be started: found, not executable
  kAppExited,         // APP ended unsuccessfully: its own exit status travels in app_status()
  kHookFailed,        // a --before-migrate/--after-migrate hook failed or cannot run
};

// A Status is ok() or carries a kind, a one-line message and payload fields:
// for errors the server reported, its SQLSTATE and error position (1-based
// characters, 0 = none); for kInterrupted the signal; for kAppExited APP's
// own exit status (kept apart from pgboot's codes, which it may equal).
class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Internal(std::string msg) { return Status(StatusKind::kInternal, std::move(msg)); }
  static Status Findings(std::string msg) { return Status(StatusKind::kFindings, std::move(msg)); }
  static Status Usage(std::string msg) { return Status(StatusKind::kUsage, std::move(msg)); }
  static Status Timeout(std::string msg) { return Status(StatusKind::kTimeout, std::move(msg)); }
  static Status ConnectRejected(std::string msg, std::string sqlstate) {
    return Status(StatusKind::kConnectRejected, std::move(msg)).WithSql(std::move(sqlstate));
  }
  static Status Precondition(std::string msg) {
    return Status(StatusKind::kPrecondition, std::move(msg));
  }
  static Status LockTimeout(std::string msg) {
    return Status(StatusKind::kLockTimeout, std::move(msg));
  }
  static Status InvalidFiles(std::string msg) {
    return Status(StatusKind::kInvalidFiles, std::move(msg));
  }
  // An error the server reported while running SQL (or SQL that broke a rule
  // of its section, with an empty SQLSTATE).
  static Status Sql(std::string msg, std::string sqlstate, int position = 0) {
    return Status(StatusKind::kSql, std::move(msg)).WithSql(std::move(sqlstate), position);
  }
  static Status ConnectionLost(std::string msg, std::string sqlstate = "08006") {
    return Status(StatusKind::kConnectionLost, std::move(msg)).WithSql(std::move(sqlstate));
  }
  // Interrupted by signal `signo`.
  static Status Signal(int signo) {
    Status s(StatusKind::kInterrupted, "interrupted by signal " + std::to_string(signo));
    s.signal_ = signo;
    return s;
  }
  static Status AppNotFound(std::string msg) {
    return Status(StatusKind::kAppNotFound, std::move(msg));
  }
  static Status AppNotExecutable(std::string msg) {
    return Status(StatusKind::kAppNotExecutable, std::move(msg));
  }
  static Status HookFailed(std::string msg) {
    return Status(StatusKind::kHookFailed, std::move(msg));
  }
  // APP exited with `exit_status` (not 0), or was killed by `signo` (then
  // exit_status is 128 + signo).
  static Status AppExited(int exit_status, std::string msg, int signo = 0) {
    Status s(StatusKind::kAppExited, std::move(msg));
    s.app_status_ = exit_status;
    s.signal_ = signo;
    return s;
  }

  bool ok() const { return kind_ == StatusKind::kOk; }
  StatusKind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  const std::string& sqlstate() const { return sqlstate_; }
  int position() const { return position_; }
  // The signal number for Signal() statuses (and an APP killed by one), else 0.
  int signal() const { return signal_; }
  // Whether a terminating signal ended pgboot's own work.
  bool is_signal() const { return kind_ == StatusKind::kInterrupted; }
  // APP's exit status for kAppExited, else 0.
  int app_status() const { return app_status_; }

  // Returns a copy whose message is `prefix + ": " + message()`.
  Status Wrap(const std::string& prefix) const {
    Status s = *this;
    s.message_ = prefix + ": " + message_;
    return s;
  }
  // Returns a copy of another kind, with the same message and payload.
  Status As(StatusKind kind) const {
    Status s = *this;
    s.kind_ = kind;
    return s;
  }
  // Returns a copy with `message` instead (payload kept).
  Status WithMessage(std::string message) const {
    Status s = *this;
    s.message_ = std::move(message);
    return s;
  }

 private:
  Status(StatusKind kind, std::string msg) : kind_(kind), message_(std::move(msg)) {}
  Status WithSql(std::string sqlstate, int position = 0) && {
    sqlstate_ = std::move(sqlstate);
    position_ = position;
    return std::move(*this);
  }
  StatusKind kind_ = StatusKind::kOk;
  std::string message_;
  std::string sqlstate_;
  int position_ = 0;
  int signal_ = 0;
  int app_status_ = 0;
};

// A value or the Status that explains why there is none. Built from an OK
// status it holds an Internal error instead: "no value, no error" cannot exist.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status)                          // NOLINT: implicit by design
      : status_(status.ok() ? Status::Internal("internal error: a Result was built from an OK "
                                               "status, without a value")
                            : std::move(status)) {}
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
