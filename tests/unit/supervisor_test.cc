#include "supervisor.h"

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "event_loop.h"

namespace pgboot {
namespace {

// The wait status of a real child that ran `body`.
template <typename F>
int WaitStatusOf(F body) {
  const pid_t pid = fork();
  if (pid == 0) {
    body();
    _exit(99);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return st;
}

std::vector<int> Pids(const std::vector<ProcStat>& procs) {
  std::vector<int> out;
  for (const ProcStat& p : procs) out.push_back(p.pid);
  std::sort(out.begin(), out.end());
  return out;
}

ProcStat P(int pid, int ppid, char state = 'S') {
  ProcStat p;
  p.pid = pid;
  p.ppid = ppid;
  p.state = state;
  return p;
}

}  // namespace

TEST_CASE("exit code of a wait status: the code, or 128+signal") {
  for (int code : {0, 1, 2, 127, 128, 254, 255}) {
    CHECK(ExitCodeFromWaitStatus(WaitStatusOf([code] { _exit(code); })) == code);
  }
  for (int sig : {SIGTERM, SIGUSR1, SIGKILL}) {
    CHECK(ExitCodeFromWaitStatus(WaitStatusOf([sig] {
            signal(sig, SIG_DFL);
            raise(sig);
          })) == 128 + sig);
  }
}

TEST_CASE("ParseProcStat reads pid, state, ppid and start time") {
  const char* line =
      "4242 (sleep) S 17 4242 17 0 -1 4194304 90 0 0 0 0 0 0 0 20 0 1 0 123456789 2265088 "
      "128 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
  auto p = ParseProcStat(line);
  REQUIRE(p.has_value());
  CHECK(p->pid == 4242);
  CHECK(p->state == 'S');
  CHECK(p->ppid == 17);
  CHECK(p->start_time == 123456789u);
}

TEST_CASE("ParseProcStat counts fields from the last ')' of the command name") {
  // A program may call itself anything, ") Z 1 " included.
  auto p =
      ParseProcStat("77 (evil) Z 1 (x) y) R 5 77 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 999 0 0 0 0");
  REQUIRE(p.has_value());
  CHECK(p->pid == 77);
  CHECK(p->state == 'R');
  CHECK(p->ppid == 5);
  CHECK(p->start_time == 999u);
}

TEST_CASE("ParseProcStat rejects what is not a stat line") {
  CHECK_FALSE(ParseProcStat("").has_value());
  CHECK_FALSE(ParseProcStat("12 (cut) S 1 2").has_value());
  CHECK_FALSE(
      ParseProcStat("x (a) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20").has_value());
  CHECK_FALSE(
      ParseProcStat("12 (a) S one 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19").has_value());
}

TEST_CASE("ParseProcStat reads this process's own /proc entry") {
  FILE* f = fopen("/proc/self/stat", "r");
  REQUIRE(f != nullptr);
  char buf[1024] = {};
  const size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  auto p = ParseProcStat(std::string_view(buf, n));
  REQUIRE(p.has_value());
  CHECK(p->pid == getpid());
  CHECK(p->ppid == getppid());
  CHECK(p->start_time > 0u);
}

TEST_CASE("Descendants follows parents down from the root, skipping zombies and strangers") {
  const std::vector<ProcStat> procs = {
      P(1, 0),        P(10, 1),   // pgboot's parent and pgboot (root 10)
      P(11, 10),      P(12, 10),  // children
      P(13, 11),      P(14, 13),  // grand- and great-grandchild
      P(15, 12, 'Z'),             // a zombie child of 12: not signalled
      P(20, 1),       P(21, 20),  // a stranger and its child
  };
  CHECK(Pids(Descendants(10, procs)) == std::vector<int>{11, 12, 13, 14});
  CHECK(Descendants(21, procs).empty());
  CHECK(Pids(Descendants(20, procs)) == std::vector<int>{21});
}

TEST_CASE("Descendants stops on a corrupt parent cycle below the root") {
  // /proc is read one process at a time, so a snapshot can be inconsistent. Here pid 11
  // shows up twice: as the root's child and, after its pid was reused, as the child of
  // its own child 12. Following parents down then cycles 11 -> 12 -> 11 for ever; the
  // bound on the walk must end it once every process could have been listed.
  const std::vector<ProcStat> procs = {P(10, 1), P(11, 10), P(12, 11), P(11, 12)};
  const std::vector<int> pids = Pids(Descendants(10, procs));
  CHECK(pids.size() <= procs.size());
  CHECK(pids.size() >= 3);  // the walk went round the cycle: 11, 12, then 11 again
  CHECK(std::count(pids.begin(), pids.end(), 11) >= 2);
}

TEST_CASE("--init forwards every catchable signal tini forwards, and nothing else") {
  // tini's list: all but SIGCHLD, SIGTTIN, SIGTTOU and the synchronous faults.
  for (int s :
       {SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGSTKFLT, SIGCONT,
        SIGTSTP, SIGURG, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGWINCH, SIGIO, SIGPWR}) {
    CAPTURE(s);
    CHECK(ForwardedSignal(s));
    CHECK(EventLoop::HandledSignal(s));
  }
  for (int s = SIGRTMIN; s <= SIGRTMAX; ++s) {
    CAPTURE(s);
    CHECK(ForwardedSignal(s));
  }
  for (int s : {SIGCHLD, SIGTTIN, SIGTTOU, SIGFPE, SIGILL, SIGSEGV, SIGBUS, SIGABRT, SIGTRAP,
                SIGSYS, SIGKILL, SIGSTOP, 0, 32, 33, SIGRTMAX + 1}) {
    CAPTURE(s);
    CHECK_FALSE(ForwardedSignal(s));
  }
  // Read from the signalfd (so never default-fatal) but not forwarded.
  for (int s : {SIGCHLD, SIGSEGV, SIGABRT, SIGSYS}) CHECK(EventLoop::HandledSignal(s));
  // Cannot be blocked, are ignored, or belong to glibc.
  for (int s : {SIGKILL, SIGSTOP, SIGTTIN, SIGTTOU, 32, 33})
    CHECK_FALSE(EventLoop::HandledSignal(s));
}

}  // namespace pgboot
