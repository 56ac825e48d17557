#include "supervisor.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "event_loop.h"
#include "log.h"

namespace pgboot {

Status ExecApp(const std::vector<std::string>& app) {
  std::vector<char*> argv;
  for (const std::string& a : app) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  LogInfo("exec", {{"app", app.front()}, {"args", static_cast<int64_t>(app.size() - 1)}});
  EventLoop::Get().RestoreForExec();
  execvp(argv[0], argv.data());
  const int err = errno;
  // Still pgboot: take the signals back so a late SIGTERM is handled as before.
  (void)EventLoop::Install();
  std::string why = "cannot execute " + app.front() + ": " + strerror(err);
  if (err == ENOENT || err == ENOTDIR) return Status::WithCode(kExitNotFound, why);
  return Status::WithCode(kExitNotExecutable, why);
}

Status SuperviseApp(const std::vector<std::string>& app, int64_t grace_ms) {
  (void)grace_ms;
  return Status::Usage("--init is not in this build yet; " + app.front() + " was not started");
}

}  // namespace pgboot
