// Spawn: forking a program with pgboot's inherited signal state, shared by --init's APP and the
// hooks.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "status.h"

namespace pgboot {

struct SpawnOptions {
  // Give the terminal's foreground to the child's process group when
  // pgboot's group has it (APP under --init, as tini does).
  bool take_terminal = false;
  // stdin from /dev/null and stdout onto pgboot's stderr (a hook's output is
  // log material, and it must never wait on a terminal: docs/reference.md, "Hooks").
  bool quiet_stdio = false;
  // The child's whole environment as KEY=VALUE; null keeps pgboot's.
  const std::vector<std::string>* env = nullptr;
};

// Forks `argv` (argv[0] searched in PATH unless it holds a '/') as the leader
// of a new process group, with the signal mask and dispositions pgboot
// inherited, and returns its pid once it runs the program. When the exec
// fails, the child is reaped and the Status is AppNotFound (ENOENT, ENOTDIR)
// or AppNotExecutable, naming argv[0].
Result<pid_t> Spawn(const std::vector<std::string>& argv, const SpawnOptions& options);

// The code a shell would report for a waitpid() status: the exit code, or
// 128+N when signal N ended the process.
int ExitCodeFromWaitStatus(int wait_status);

// "SIGTERM", "SIGRTMIN+3", or the number when the signal has no name.
std::string SignalName(int signo);

}  // namespace pgboot
