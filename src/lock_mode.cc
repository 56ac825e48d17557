#include "lock_mode.h"

#include <atomic>

#include "log.h"

namespace pgboot {
namespace {

struct Setting {
  const char* name;
  const char* value;
  int since_version;  // server_version_num that first knows it
};
constexpr Setting kSettings[] = {
    {"standard_conforming_strings", "on", 0},
    {"client_connection_check_interval", "'1s'", 140000},
};

std::vector<std::string> Sets(const char* set, int server_version_num) {
  std::vector<std::string> out;
  for (const Setting& s : kSettings) {
    if (server_version_num >= s.since_version) {
      out.push_back(std::string(set) + s.name + " = " + s.value);
    }
  }
  return out;
}

}  // namespace

const char* LockModeName(LockMode mode) {
  switch (mode) {
    case LockMode::kAuto:
      return "auto";
    case LockMode::kSession:
      return "session";
    case LockMode::kTransaction:
      return "transaction";
  }
  return "auto";
}

LockModeVerdict DecideLockMode(LockMode requested, int client_pid, int server_pid) {
  LockModeVerdict v;
  // PgBouncer's key is random 32 bits, negative half the time: only 0 is "unknown".
  const bool unknown = client_pid == 0 || server_pid <= 0;
  v.pooled = unknown || client_pid != server_pid;
  std::string check;
  if (!v.pooled) {
    check = "libpq's backend pid is the server's pg_backend_pid() " + std::to_string(server_pid) +
            ": a direct connection";
  } else if (unknown) {
    check = "the backend pid is unknown (libpq " + std::to_string(client_pid) + ", server " +
            std::to_string(server_pid) + "): taken as pooled";
  } else {
    check = "libpq's backend pid " + std::to_string(client_pid) +
            " is not the server's pg_backend_pid() " + std::to_string(server_pid) +
            ": a connection pooler is in between";
  }
  switch (requested) {
    case LockMode::kAuto:
      v.mode = v.pooled ? LockMode::kTransaction : LockMode::kSession;
      v.reason = "auto: " + check;
      break;
    case LockMode::kSession:
      v.mode = LockMode::kSession;
      v.warn = v.pooled;
      v.reason = v.pooled ? "--lock-mode session, but " + check +
                                "; session mode behind a transaction pooler is not exactly once"
                          : "--lock-mode session: " + check;
      break;
    case LockMode::kTransaction:
      v.mode = LockMode::kTransaction;
      v.reason = "--lock-mode transaction: " + check;
      break;
  }
  return v;
}

void LogLockModeOnce(const LockModeVerdict& verdict) {
  static std::atomic<bool> logged{false};
  if (logged.exchange(true)) return;
  LogFields fields = {{"mode", LockModeName(verdict.mode)}, {"reason", verdict.reason}};
  if (verdict.warn) {
    LogWarn("lock.mode", fields);
  } else {
    LogInfo("lock.mode", fields);
  }
}

std::vector<std::string> SessionSettings(int server_version_num) {
  return Sets("SET ", server_version_num);
}

std::vector<std::string> LocalSettings(int server_version_num) {
  return Sets("SET LOCAL ", server_version_num);
}

std::vector<std::string> BeginStatements(LockMode mode, int server_version_num) {
  if (mode != LockMode::kTransaction) return {"BEGIN"};
  std::vector<std::string> out = {"BEGIN ISOLATION LEVEL READ COMMITTED"};
  for (std::string& s : LocalSettings(server_version_num)) out.push_back(std::move(s));
  return out;
}

}  // namespace pgboot
