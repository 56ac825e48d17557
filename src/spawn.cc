#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "event_loop.h"

namespace pgboot {
namespace {

// The child side of the fork; never returns. Mirrors tini's spawn(): its own
// process group, the terminal's foreground when asked and pgboot had it, the
// inherited signal mask and dispositions, exec. The exec's errno goes back to
// the parent through `report_fd` (close-on-exec: a successful exec closes it
// unwritten). Only async-signal-safe calls: everything was built before fork.
[[noreturn]] void ExecChild(char* const* argv, char* const* envp, const SpawnOptions& o,
                            int report_fd) {
  // tini's isolate_child(): the child leads its own process group, so a
  // terminal's ^C reaches it once (from the terminal, or forwarded by pgboot)
  // instead of twice. Unlike tini, take the foreground only when pgboot's
  // group has it: a pgboot started in the background must not steal the
  // terminal from the shell. SIGTTOU is still ignored here, so tcsetpgrp
  // cannot stop us.
  const bool foreground = o.take_terminal && tcgetpgrp(STDIN_FILENO) == getpgrp();
  setpgid(0, 0);
  if (foreground) (void)tcsetpgrp(STDIN_FILENO, getpgrp());
  if (o.quiet_stdio) {
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) {
      dup2(null_fd, STDIN_FILENO);
      if (null_fd != STDIN_FILENO) close(null_fd);
    }
    dup2(STDERR_FILENO, STDOUT_FILENO);
  }
  EventLoop::Get().RestoreForExec();
  if (envp != nullptr) {
    execvpe(argv[0], argv, envp);
  } else {
    execvp(argv[0], argv);
  }
  const int err = errno;
  ssize_t ignored = write(report_fd, &err, sizeof err);
  (void)ignored;
  _exit(err == ENOENT || err == ENOTDIR ? 127 : 126);  // as a shell says it; the parent reads err
}

std::vector<char*> Pointers(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

Result<pid_t> Spawn(const std::vector<std::string>& args, const SpawnOptions& options) {
  std::vector<char*> argv = Pointers(args);
  std::vector<char*> envp;
  if (options.env != nullptr) envp = Pointers(*options.env);
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0)
    return Status::Internal(std::string("pipe: ") + strerror(errno));
  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(report[0]);
    close(report[1]);
    return Status::Internal(std::string("fork: ") + strerror(err));
  }
  if (pid == 0) {
    close(report[0]);
    ExecChild(argv.data(), options.env != nullptr ? envp.data() : nullptr, options, report[1]);
  }
  close(report[1]);
  int err = 0;
  ssize_t n;
  do {
    n = read(report[0], &err, sizeof err);
  } while (n < 0 && errno == EINTR);
  close(report[0]);
  if (n != static_cast<ssize_t>(sizeof err)) return pid;  // exec succeeded
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  std::string why = "cannot execute " + args.front() + ": " + strerror(err);
  if (err == ENOENT || err == ENOTDIR) return Status::AppNotFound(why);
  return Status::AppNotExecutable(why);
}

int ExitCodeFromWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return 1;  // stopped/continued: waitpid without WUNTRACED never reports these
}

std::string SignalName(int signo) {
  // sigabbrev_np names the classic signals only; real-time ones read as tini's do.
  if (signo >= SIGRTMIN && signo <= SIGRTMAX) {
    return signo == SIGRTMIN ? "SIGRTMIN" : "SIGRTMIN+" + std::to_string(signo - SIGRTMIN);
  }
  const char* abbrev = sigabbrev_np(signo);
  return abbrev ? std::string("SIG") + abbrev : std::to_string(signo);
}

}  // namespace pgboot
