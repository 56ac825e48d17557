// Lock modes: whether the migration lock lives in a session or in each transaction, and the
// settings each mode sends (docs/reference.md, "Lock modes").
#pragma once

#include <string>
#include <vector>

namespace pgboot {

// How writing commands take the migration lock. kAuto is only ever requested:
// after connecting it becomes kSession (a direct connection) or kTransaction
// (a pooler in between, or unsure).
enum class LockMode { kAuto, kSession, kTransaction };

const char* LockModeName(LockMode mode);

struct LockModeVerdict {
  LockMode mode = LockMode::kTransaction;
  std::string reason;
  bool pooled = true;  // what the check says about the connection
  bool warn = false;   // session mode was asked for, but the check says pooled
};

// The verdict for a session whose backend pid libpq reports as `client_pid`
// (PQbackendPID: a pooler hands out a key of its own) and the server as
// `server_pid` (SELECT pg_backend_pid(); 0 when unknown). Only equal, known
// pids count as direct: a wrong "direct" breaks exactly-once, a wrong
// "pooled" only costs transaction:false sections.
LockModeVerdict DecideLockMode(LockMode requested, int client_pid, int server_pid);

// Logs lock.mode (warn when `verdict.warn`) the first time it is called in
// this process; a reconnect decides again but does not repeat it.
void LogLockModeOnce(const LockModeVerdict& verdict);

// The settings every pgboot session runs with, as SET statements sent once
// after connecting in session mode: standard_conforming_strings=on (the
// statement lexer and every literal pgboot writes assume it) and, on servers
// from 14 on (`server_version_num` >= 140000), client_connection_check_interval=1s
// (a killed pgboot's session, and its lock, end within about a second).
std::vector<std::string> SessionSettings(int server_version_num);
// The same settings as SET LOCAL, which open each transaction in transaction
// mode: a session setting would stay on a pooled connection the app gets next.
std::vector<std::string> LocalSettings(int server_version_num);

// The statements that open one of pgboot's own transactions: BEGIN; in
// transaction mode BEGIN ISOLATION LEVEL READ COMMITTED and the SET LOCALs.
std::vector<std::string> BeginStatements(LockMode mode, int server_version_num);

// The way out named when transaction mode refuses something only session mode can do.
inline constexpr char kSessionModeWayOut[] =
    "use --lock-mode session with a direct connection to the server (PGBOOT_DATABASE_URL) or "
    "through session pooling";

}  // namespace pgboot
