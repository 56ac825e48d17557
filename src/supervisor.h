// Supervisor: hands the process over to APP — exec (APP becomes PID 1) or --init (fork, forward, reap).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "status.h"

namespace pgboot {

// Restores the inherited signal mask and dispositions and execvp()s `app` with
// argv and environment untouched. Returns only on failure: 127 when APP is not
// found, 126 when it is found but cannot be executed.
Status ExecApp(const std::vector<std::string>& app);

// --init: forks APP (with the inherited mask and dispositions), forwards
// SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH and SIGCONT to
// APP's pid, reaps every zombie, and when APP exits sends the remaining
// processes SIGTERM, then SIGKILL after `grace_ms`. Becomes a child subreaper
// when it is not PID 1. Returns APP's exit code, or 128+N when a signal N
// killed APP (as Status::WithCode; ok() when APP exited 0).
Status SuperviseApp(const std::vector<std::string>& app, int64_t grace_ms);

}  // namespace pgboot
