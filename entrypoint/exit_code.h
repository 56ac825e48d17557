// ExitCodeFor: the one mapping from a Status to the process's exit code (docs/reference.md, "Exit
// codes").
#pragma once

#include "status.h"

namespace pgboot {

// The exit codes of docs/reference.md. Only entrypoint/ decides them; the
// library reports what happened (StatusKind) and never a number.
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
  kExitHookFailed = 9,
  kExitNotExecutable = 126,
  kExitNotFound = 127,
};

// 0 for OK; 128 + N for a signal; APP's own exit status when APP ended
// unsuccessfully; else the code of the status's kind.
int ExitCodeFor(const Status& status);

}  // namespace pgboot
