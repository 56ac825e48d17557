#include "exit_code.h"

#include <doctest/doctest.h>

#include "status.h"

namespace pgboot {
namespace {

TEST_CASE("ExitCodeFor: every kind maps to its documented code") {
  CHECK(ExitCodeFor(Status::Ok()) == 0);
  CHECK(ExitCodeFor(Status::Internal("x")) == kExitInternal);
  CHECK(ExitCodeFor(Status::Findings("x")) == kExitInternal);
  CHECK(ExitCodeFor(Status::Usage("x")) == kExitUsage);
  CHECK(ExitCodeFor(Status::Timeout("x")) == kExitNotReady);
  CHECK(ExitCodeFor(Status::ConnectRejected("x", "28P01")) == kExitFatalConnect);
  CHECK(ExitCodeFor(Status::Sql("x", "42P01", 3)) == kExitMigrationFailed);
  CHECK(ExitCodeFor(Status::ConnectionLost("x")) == kExitNotReady);
  CHECK(ExitCodeFor(Status::Precondition("x")) == kExitValidation);
  CHECK(ExitCodeFor(Status::LockTimeout("x")) == kExitLockTimeout);
  CHECK(ExitCodeFor(Status::InvalidFiles("x")) == kExitInvalidFiles);
  CHECK(ExitCodeFor(Status::HookFailed("x")) == 9);
  CHECK(ExitCodeFor(Status::Signal(15)) == 143);
  CHECK(ExitCodeFor(Status::Signal(2)) == 130);
  CHECK(ExitCodeFor(Status::AppNotFound("x")) == kExitNotFound);
  CHECK(ExitCodeFor(Status::AppNotExecutable("x")) == kExitNotExecutable);
}

TEST_CASE("ExitCodeFor: APP's exit status passes through, apart from pgboot's own kinds") {
  const Status app = Status::AppExited(5, "APP exited with code 5");
  CHECK(ExitCodeFor(app) == 5);
  CHECK(app.kind() == StatusKind::kAppExited);
  CHECK(app.app_status() == 5);
  CHECK_FALSE(app.is_signal());
  const Status killed = Status::AppExited(137, "APP was killed by SIGKILL", 9);
  CHECK(ExitCodeFor(killed) == 137);
  CHECK(killed.signal() == 9);
  CHECK_FALSE(killed.is_signal());  // pgboot itself was not interrupted
}

TEST_CASE("Status keeps its payload through Wrap, As and WithMessage") {
  const Status s = Status::Sql("boom", "23505", 7).Wrap("migration 3");
  CHECK(s.message() == "migration 3: boom");
  CHECK(s.sqlstate() == "23505");
  CHECK(s.position() == 7);
  const Status internal = s.As(StatusKind::kInternal).WithMessage("recording: boom");
  CHECK(ExitCodeFor(internal) == kExitInternal);
  CHECK(internal.sqlstate() == "23505");
}

TEST_CASE("Result refuses an OK status: it holds an internal error instead") {
  Result<int> r = Status::Ok();
  CHECK_FALSE(r.ok());
  CHECK(r.status().kind() == StatusKind::kInternal);
  CHECK(ExitCodeFor(r.status()) == kExitInternal);
  Result<int> v = 3;
  CHECK(v.ok());
  CHECK(*v == 3);
}

}  // namespace
}  // namespace pgboot
