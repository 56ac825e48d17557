#include "exit_code.h"

namespace pgboot {

int ExitCodeFor(const Status& s) {
  switch (s.kind()) {
    case StatusKind::kOk:
      return kExitOk;
    case StatusKind::kInternal:
    case StatusKind::kFindings:
      return kExitInternal;
    case StatusKind::kUsage:
      return kExitUsage;
    case StatusKind::kTimeout:
      return kExitNotReady;
    case StatusKind::kConnectRejected:
      return kExitFatalConnect;
    case StatusKind::kSql:
      return kExitMigrationFailed;
    // migrate reconnects; what does not (rollback, repair, baseline) or can no
    // longer reach the server ends as a server not ready (docs/reference.md, "After a crash").
    case StatusKind::kConnectionLost:
      return kExitNotReady;
    case StatusKind::kPrecondition:
      return kExitValidation;
    case StatusKind::kLockTimeout:
      return kExitLockTimeout;
    case StatusKind::kInvalidFiles:
      return kExitInvalidFiles;
    case StatusKind::kInterrupted:
      return 128 + s.signal();
    case StatusKind::kHookFailed:
      return kExitHookFailed;
    case StatusKind::kAppNotFound:
      return kExitNotFound;
    case StatusKind::kAppNotExecutable:
      return kExitNotExecutable;
    case StatusKind::kAppExited:
      return s.app_status() != 0 ? s.app_status() : kExitInternal;
  }
  return kExitInternal;
}

}  // namespace pgboot
