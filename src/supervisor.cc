#include "supervisor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <deque>
#include <map>

#include "clock.h"
#include "event_loop.h"
#include "log.h"
#include "spawn.h"

namespace pgboot {

Status ExecApp(const std::vector<std::string>& app) {
  std::vector<char*> argv;
  for (const std::string& a : app) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // A SIGTERM that came after the last wait must not be lost: once unblocked, a
  // PID 1 without a handler drops it, and APP would start anyway.
  if (int sig = EventLoop::Get().PendingTerminatingSignal()) return Status::Signal(sig);
  LogInfo("exec", {{"app", app.front()}, {"args", static_cast<int64_t>(app.size() - 1)}});
  EventLoop::Get().RestoreForExec();
  execvp(argv[0], argv.data());
  const int err = errno;
  // Still pgboot: take the signals back so a late SIGTERM is handled as before.
  (void)EventLoop::Install();
  std::string why = "cannot execute " + app.front() + ": " + strerror(err);
  if (err == ENOENT || err == ENOTDIR) return Status::AppNotFound(why);
  return Status::AppNotExecutable(why);
}

bool ForwardedSignal(int signo) {
  if (!EventLoop::HandledSignal(signo) || signo == SIGCHLD) return false;
  // Synchronous faults belong to the process that caused them (tini forwards none).
  for (int fault : {SIGFPE, SIGILL, SIGSEGV, SIGBUS, SIGABRT, SIGTRAP, SIGSYS}) {
    if (signo == fault) return false;
  }
  return true;
}

std::optional<ProcStat> ParseProcStat(std::string_view text) {
  ProcStat p;
  const size_t open = text.find(" (");
  const size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return std::nullopt;
  }
  auto number = [](std::string_view s, auto* out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return ec == std::errc() && end == s.data() + s.size();
  };
  if (!number(text.substr(0, open), &p.pid)) return std::nullopt;
  // After the name: field 3 (state), 4 (ppid), ... 22 (starttime).
  std::string_view rest = text.substr(close + 1);
  int field = 2;
  while (!rest.empty() && field < 22) {
    const size_t start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    const size_t len = std::min(rest.find(' '), rest.size());
    const std::string_view tok = rest.substr(0, len);
    rest.remove_prefix(len);
    ++field;
    if (field == 3) {
      if (tok.size() != 1) return std::nullopt;
      p.state = tok[0];
    } else if (field == 4 && !number(tok, &p.ppid)) {
      return std::nullopt;
    } else if (field == 22 && !number(tok, &p.start_time)) {
      return std::nullopt;
    }
  }
  if (field != 22) return std::nullopt;
  return p;
}

std::vector<ProcStat> Descendants(int root, const std::vector<ProcStat>& procs) {
  std::multimap<int, const ProcStat*> children;
  for (const ProcStat& p : procs) {
    if (p.state != 'Z' && p.state != 'X' && p.pid != root) children.emplace(p.ppid, &p);
  }
  std::vector<ProcStat> out;
  std::deque<int> todo = {root};
  while (!todo.empty() && out.size() < procs.size()) {  // the bound stops a corrupt cycle
    auto [first, last] = children.equal_range(todo.front());
    todo.pop_front();
    for (auto it = first; it != last; ++it) {
      out.push_back(*it->second);
      todo.push_back(it->second->pid);
    }
  }
  return out;
}

namespace {

// How long pgboot waits for SIGKILLed leftovers to be gone before it exits
// anyway (a process in uninterruptible sleep dies only when its I/O ends).
constexpr int64_t kKillWaitMs = 2000;

// ---- reaping ------------------------------------------------------------------

// What one sweep of waitpid(-1, WNOHANG) found.
struct Reaped {
  bool children_left = false;  // false once waitpid says ECHILD
  bool app_ended = false;
  int app_wait_status = 0;
};

// Reaps every child that has ended. SIGCHLD coalesces (a hundred children
// ending at once may raise it once), so one wake-up must sweep until waitpid
// has nothing more to give.
Reaped ReapAll(pid_t app) {
  Reaped r;
  for (;;) {
    int st = 0;
    const pid_t p = waitpid(-1, &st, WNOHANG);
    if (p > 0) {
      if (p == app) {
        r.app_ended = true;
        r.app_wait_status = st;
      } else {
        LogDebug("init.reaped", {{"pid", p}, {"code", ExitCodeFromWaitStatus(st)}});
      }
      continue;
    }
    if (p < 0 && errno == EINTR) continue;
    r.children_left = p == 0;  // 0: children that still run; -1/ECHILD: none
    return r;
  }
}

// Forwards signals to APP (its process group with `group`) and reaps until APP
// has ended; returns its wait status.
int SuperviseUntilAppEnds(pid_t app, bool group) {
  EventLoop& loop = EventLoop::Get();
  for (;;) {
    // Reap first: children pgboot inherited may have ended before APP started.
    Reaped r = ReapAll(app);
    if (r.app_ended) return r.app_wait_status;
    EventLoop::Wake w = loop.WaitAny(-1, 0, -1);
    if (w.kind != EventLoop::Wake::kSignal || !ForwardedSignal(w.signo)) continue;
    // E.g. SIGPIPE from pgboot's own log write to a closed stderr: not APP's
    // business. Dropped without a log line, which would raise the next SIGPIPE.
    if (w.from_self) continue;
    // APP is not reaped yet (a zombie at worst), so its pid (and the process group
    // it leads) cannot be reused.
    const pid_t target = group ? -app : app;
    if (kill(target, w.signo) != 0 && errno != ESRCH) {
      LogWarn("init.forward_failed", {{"signal", SignalName(w.signo)}, {"error", strerror(errno)}});
    } else {
      LogDebug("init.forwarded", {{"signal", SignalName(w.signo)}, {group ? "pgid" : "pid", app}});
    }
  }
}

// ---- leftovers ----------------------------------------------------------------

// Reads /proc/PID/stat of one process (its text is under 1 KiB).
std::optional<ProcStat> ReadProcStat(const char* pid_dir) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%s/stat", pid_dir);
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[1024];
  const ssize_t n = read(fd, buf, sizeof buf);
  close(fd);
  if (n <= 0) return std::nullopt;
  return ParseProcStat(std::string_view(buf, static_cast<size_t>(n)));
}

// Every process /proc shows, or nullopt when /proc is not mounted or shows
// another PID namespace than ours (then its pid numbers mean nothing to kill()).
std::optional<std::vector<ProcStat>> ListProcs() {
  char self[32] = {};
  if (readlink("/proc/self", self, sizeof self - 1) <= 0 || std::to_string(getpid()) != self) {
    return std::nullopt;
  }
  DIR* dir = opendir("/proc");
  if (!dir) return std::nullopt;
  std::vector<ProcStat> procs;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    if (auto p = ReadProcStat(e->d_name)) procs.push_back(*p);
  }
  closedir(dir);
  return procs;
}

// Signals one process found in /proc, and not a newcomer that reused its pid
// meanwhile: the pidfd pins the process, the start time proves it is the one we saw.
void SignalProc(const ProcStat& p, int signo) {
  const int fd = static_cast<int>(syscall(SYS_pidfd_open, p.pid, 0));
  if (fd < 0) {
    if (errno == ENOSYS) kill(p.pid, signo);  // kernel before 5.3: accept the tiny race
    return;
  }
  const std::string dir = std::to_string(p.pid);
  const auto now = ReadProcStat(dir.c_str());
  if (now && now->start_time == p.start_time) {
    syscall(SYS_pidfd_send_signal, fd, signo, nullptr, 0);
  }
  close(fd);
}

// Sends `signo` to whatever APP left behind: as PID 1 every other process of
// the namespace (kill(-1)), else pgboot's descendants. Returns how many
// processes were signalled: 0 when none, -1 when some but kill(-1) does not say how many.
int SignalLeftovers(int signo) {
  if (getpid() == 1) {
    if (kill(-1, signo) == 0) return -1;
    return 0;  // ESRCH: nobody left
  }
  auto procs = ListProcs();
  if (!procs) return 0;  // EndLeftovers checked before; /proc went away since
  const std::vector<ProcStat> desc = Descendants(getpid(), *procs);
  for (const ProcStat& p : desc) SignalProc(p, signo);
  return static_cast<int>(desc.size());
}

// After APP ended: SIGTERM (and SIGCONT, so a stopped process can act on it) to
// the leftovers, wait up to `grace_ms` for them to go, then SIGKILL. A
// terminating signal during the grace period cuts it short.
void EndLeftovers(pid_t app, int64_t grace_ms) {
  EventLoop& loop = EventLoop::Get();
  if (!ReapAll(app).children_left) return;  // no child, hence no descendant either
  if (getpid() != 1 && !ListProcs()) {
    // Without a /proc of our PID namespace the descendants cannot be found;
    // waiting would only delay the exit. They go to the next reaper up.
    LogWarn("init.leftovers_unknown",
            {{"reason", "no /proc for this PID namespace: APP's leftovers are not signalled"}});
    return;
  }
  const char* scope = getpid() == 1 ? "all" : "descendants";
  if (grace_ms > 0) {
    LogFields fields = {{"signal", "SIGTERM"}, {"scope", scope}};
    const int n = SignalLeftovers(SIGTERM);
    SignalLeftovers(SIGCONT);
    if (n >= 0) fields.emplace_back("count", n);
    fields.emplace_back("grace_ms", static_cast<int64_t>(grace_ms));
    LogInfo("init.leftovers", fields);
    const int64_t deadline = MonotonicNowMs() + grace_ms;
    for (;;) {
      if (!ReapAll(app).children_left) return;
      const int64_t left = deadline - MonotonicNowMs();
      if (left <= 0) break;
      EventLoop::Wake w = loop.WaitAny(-1, 0, left);
      if (w.kind == EventLoop::Wake::kSignal && loop.IsTerminating(w.signo)) {
        LogInfo("init.grace_cut", {{"signal", SignalName(w.signo)}});
        break;
      }
    }
  }
  // SIGKILL until nothing is left: in a subreaper's /proc walk a process that
  // forks right then could slip through once, so repeat on every wake-up.
  const int64_t deadline = MonotonicNowMs() + kKillWaitMs;
  bool logged = false;
  for (;;) {
    const int n = SignalLeftovers(SIGKILL);
    if (!logged && n != 0) {
      LogFields fields = {{"signal", "SIGKILL"}, {"scope", scope}};
      if (n >= 0) fields.emplace_back("count", n);
      LogWarn("init.leftovers", fields);
      logged = true;
    }
    Reaped r = ReapAll(app);
    if (!r.children_left) return;
    const int64_t left = deadline - MonotonicNowMs();
    if (left <= 0) {
      LogWarn("init.leftovers_remain",
              {{"reason", "processes survived SIGKILL (uninterruptible sleep?); exiting anyway"}});
      return;
    }
    loop.WaitAny(-1, 0, left < 100 ? left : 100);
  }
}

Status AppStatus(const std::string& name, pid_t pid, int wait_status) {
  const std::string who = "APP " + name + " (pid " + std::to_string(pid) + ")";
  if (WIFSIGNALED(wait_status)) {
    const int sig = WTERMSIG(wait_status);
    LogInfo("init.child_exit", {{"pid", pid}, {"signal", SignalName(sig)}, {"code", 128 + sig}});
    return Status::AppExited(128 + sig, who + " was killed by " + SignalName(sig), sig);
  }
  const int code = ExitCodeFromWaitStatus(wait_status);
  LogInfo("init.child_exit", {{"pid", pid}, {"code", code}});
  if (code == 0) return Status::Ok();
  return Status::AppExited(code, who + " exited with code " + std::to_string(code));
}

}  // namespace

Status SuperviseApp(const std::vector<std::string>& app, int64_t grace_ms, bool group) {
  EventLoop& loop = EventLoop::Get();
  // Told to stop between the database wait and now: do not start APP at all.
  if (int sig = loop.PendingTerminatingSignal()) return Status::Signal(sig);

  if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    LogWarn("init.subreaper_failed", {{"error", strerror(errno)}});
  }
  // An inherited SIGCHLD SIG_IGN would make the kernel reap APP behind our
  // back and lose its exit code. APP still gets the inherited disposition:
  // RestoreForExec puts it back in the child.
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGCHLD, &dfl, nullptr);

  SpawnOptions spawn;
  spawn.take_terminal = true;
  Result<pid_t> spawned = Spawn(app, spawn);
  if (!spawned.ok()) return spawned.status();
  const pid_t pid = *spawned;
  LogInfo("init.start", {{"pid", pid},
                         {"app", app.front()},
                         {"args", static_cast<int64_t>(app.size() - 1)},
                         {"pid1", getpid() == 1},
                         {"group", group}});

  const int wait_status = SuperviseUntilAppEnds(pid, group);
  Status result = AppStatus(app.front(), pid, wait_status);
  EndLeftovers(pid, grace_ms);
  return result;
}

}  // namespace pgboot
