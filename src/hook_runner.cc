#include "hook_runner.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "clock.h"
#include "event_loop.h"
#include "log.h"
#include "spawn.h"

extern char** environ;

namespace pgboot {
namespace {

// How long pgboot waits for a SIGKILLed hook to be gone before it exits
// anyway (a process in uninterruptible sleep dies only when its I/O ends).
constexpr int64_t kKillWaitMs = 2000;

std::string NameOf(const std::string& entry) { return entry.substr(0, entry.find('=')); }

// How the hook ended: its wait status, and the first terminating signal
// pgboot got meanwhile (0: none).
struct HookEnd {
  bool reaped = false;
  int wait_status = 0;
  int signo = 0;
};

// Waits for the hook `pid` (the leader of its process group) to end. A
// terminating signal is passed to the group; `grace_ms` after the first, the
// group is SIGKILLed.
HookEnd WaitForHook(pid_t pid, int64_t grace_ms) {
  EventLoop& loop = EventLoop::Get();
  HookEnd end;
  int64_t kill_at = -1;     // when the grace ends (after a signal)
  int64_t give_up_at = -1;  // when a SIGKILLed hook is left behind
  for (;;) {
    int st = 0;
    const pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      end.reaped = true;
      end.wait_status = st;
      break;
    }
    if (r < 0 && errno != EINTR) break;  // ECHILD: not ours to wait for any more
    const int64_t now = MonotonicNowMs();
    if (kill_at >= 0 && give_up_at < 0 && now >= kill_at) {
      LogWarn("hook.kill", {{"pgid", pid}, {"signal", "SIGKILL"}, {"grace_ms", grace_ms}});
      kill(-pid, SIGKILL);
      give_up_at = now + kKillWaitMs;
    }
    if (give_up_at >= 0 && now >= give_up_at) break;
    const int64_t until = give_up_at >= 0 ? give_up_at : kill_at;
    // SIGCHLD wakes this wait when the hook ends: it is blocked and read from the signalfd.
    EventLoop::Wake w = loop.WaitAny(-1, 0, until < 0 ? -1 : std::max<int64_t>(until - now, 0));
    if (w.kind != EventLoop::Wake::kSignal || !loop.IsTerminating(w.signo)) continue;
    if (end.signo == 0) {
      end.signo = w.signo;
      kill_at = MonotonicNowMs() + grace_ms;
    }
    kill(-pid, w.signo);
    LogInfo("hook.signal", {{"pgid", pid}, {"signal", SignalName(w.signo)}});
  }
  // What is left of the group after its leader ended (a background job of
  // the hook) would outlive the signal pgboot was told to stop by.
  if (end.signo != 0) kill(-pid, SIGKILL);
  return end;
}

std::string Pending(const std::vector<std::string>& versions) {
  std::string out;
  for (const std::string& v : versions) out += (out.empty() ? "" : " ") + v;
  return out;
}

}  // namespace

const char* HookName(HookKind kind) {
  return kind == HookKind::kBeforeMigrate ? "before_migrate" : "after_migrate";
}

const char* HookFlag(HookKind kind) {
  return kind == HookKind::kBeforeMigrate ? "--before-migrate" : "--after-migrate";
}

Status CheckHookShell(const char* shell) {
  struct stat st;
  if (stat(shell, &st) != 0) {
    return Status::HookFailed(std::string("a hook is configured, but ") + shell +
                              " cannot be used to run it: " + strerror(errno) +
                              " (an image for hooks needs a shell: docs/reference.md, \"Hooks\")");
  }
  if (!S_ISREG(st.st_mode) || access(shell, X_OK) != 0) {
    return Status::HookFailed(std::string("a hook is configured, but ") + shell +
                              " is not an executable file (an image for hooks needs a shell: "
                              "docs/reference.md, \"Hooks\")");
  }
  return Status::Ok();
}

std::vector<std::string> HookEnvironment(const std::vector<std::string>& base,
                                         const EnvPairs& libpq, HookKind kind,
                                         const std::vector<std::string>& versions) {
  EnvPairs set = libpq;
  set.emplace_back("PGBOOT_HOOK", HookName(kind));
  set.emplace_back("PGBOOT_PENDING", std::to_string(versions.size()));
  set.emplace_back("PGBOOT_PENDING_VERSIONS", Pending(versions));
  std::vector<std::string> out;
  for (const std::string& entry : base) {
    const std::string name = NameOf(entry);
    const bool replaced =
        std::any_of(set.begin(), set.end(), [&](const auto& kv) { return kv.first == name; });
    if (!replaced) out.push_back(entry);
  }
  for (const auto& [name, value] : set) out.push_back(name + "=" + value);
  return out;
}

std::vector<std::string> ProcessEnvironment() {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) out.emplace_back(*e);
  return out;
}

Status RunHook(const HookRun& run) {
  EventLoop& loop = EventLoop::Get();
  if (int sig = loop.PendingTerminatingSignal()) return Status::Signal(sig);
  const char* name = HookName(run.kind);
  const std::string what = std::string(HookFlag(run.kind)) + " hook";
  auto failed = [&](const Status& s, int64_t ms, LogFields fields) {
    fields.insert(fields.begin(), {"hook", name});
    fields.emplace_back("ms", ms);
    fields.emplace_back("reason", s.message());
    LogError("hook.failed", fields);
    return s;
  };
  if (Status s = CheckHookShell(run.shell); !s.ok()) return failed(s, 0, {});
  // An inherited SIGCHLD SIG_IGN would make the kernel reap the hook behind
  // our back and lose its exit code; Spawn gives the hook the inherited one.
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGCHLD, &dfl, nullptr);

  const std::vector<std::string> env =
      HookEnvironment(ProcessEnvironment(), run.libpq, run.kind, run.versions);
  SpawnOptions options;
  options.quiet_stdio = true;
  options.env = &env;
  const int64_t start = MonotonicNowMs();
  auto pid = Spawn({run.shell, "-c", run.command}, options);
  if (!pid.ok()) return failed(Status::HookFailed(what + ": " + pid.status().message()), 0, {});
  LogInfo("hook.start",
          {{"hook", name}, {"pid", *pid}, {"pending", static_cast<int64_t>(run.versions.size())}});

  const HookEnd end = WaitForHook(*pid, run.grace_ms);
  const int64_t ms = MonotonicNowMs() - start;
  if (end.signo != 0) {
    const Status s = Status::Signal(end.signo);
    (void)failed(s.WithMessage(what + " stopped: pgboot got " + SignalName(end.signo) +
                               ", passed to the hook's process group"),
                 ms, {{"signal", SignalName(end.signo)}});
    return s;
  }
  if (!end.reaped) {
    return failed(Status::HookFailed(what + " could not be waited for"), ms, {});
  }
  const int code = ExitCodeFromWaitStatus(end.wait_status);
  if (WIFSIGNALED(end.wait_status)) {
    const std::string sig = SignalName(WTERMSIG(end.wait_status));
    return failed(Status::HookFailed(what + " was killed by " + sig), ms,
                  {{"code", code}, {"signal", sig}});
  }
  if (code != 0) {
    std::string why = what + " exited with code " + std::to_string(code);
    if (code == 127) why += " (the shell found no such command)";
    return failed(Status::HookFailed(why), ms, {{"code", code}});
  }
  LogInfo("hook.done", {{"hook", name}, {"ms", ms}, {"code", 0}});
  return Status::Ok();
}

}  // namespace pgboot
