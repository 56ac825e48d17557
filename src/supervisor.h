// Supervisor: hands the process over to APP — exec (APP becomes PID 1) or --init (fork, forward,
// reap).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "spawn.h"  // ExitCodeFromWaitStatus, which the pieces below share
#include "status.h"

namespace pgboot {

// Restores the inherited signal mask and dispositions and execvp()s `app` with
// argv and environment untouched. Returns only on failure: 127 when APP is not
// found, 126 when it is found but cannot be executed.
Status ExecApp(const std::vector<std::string>& app);

// --init: forks APP (with the inherited mask and dispositions), forwards every
// ForwardedSignal another process sends pgboot to APP's pid (to its process
// group when `group`, as tini -g), reaps every zombie, and when APP exits sends the remaining
// processes SIGTERM, then SIGKILL after `grace_ms`. Becomes a child subreaper
// when it is not PID 1. Returns ok() when APP exited 0, else a Status whose
// code is APP's exit code, or 128+N (is_signal()) when signal N killed APP. APP
// that cannot be executed gives 127/126, as in exec mode. docs/init-mode.md
// has the details and the differences from tini.
Status SuperviseApp(const std::vector<std::string>& app, int64_t grace_ms, bool group);

// ---- pure pieces of --init, exposed for unit tests ----------------------------

// Whether --init passes `signo` on to APP: every signal tini forwards, i.e. every
// catchable one but SIGCHLD, SIGTTIN, SIGTTOU and the synchronous faults (SIGFPE,
// SIGILL, SIGSEGV, SIGBUS, SIGABRT, SIGTRAP, SIGSYS).
bool ForwardedSignal(int signo);

// The fields of /proc/PID/stat that --init needs to find its descendants.
struct ProcStat {
  int pid = 0;
  int ppid = 0;
  char state = '?';         // R, S, D, Z, T, ...
  uint64_t start_time = 0;  // clock ticks after boot: with pid, names one process for good
};

// Parses the text of /proc/PID/stat. The command name is in parentheses and may
// itself hold spaces and parentheses, so fields are counted from the last ')'.
std::optional<ProcStat> ParseProcStat(std::string_view text);

// The processes whose chain of parents leads to `root` (root excluded), in
// breadth-first order. Zombies are left out: they are dead already and their
// parent reaps them.
std::vector<ProcStat> Descendants(int root, const std::vector<ProcStat>& procs);

}  // namespace pgboot
