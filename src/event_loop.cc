#include "event_loop.h"

#include <errno.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <string>

#include "clock.h"

namespace pgboot {
namespace {

// The highest signal number the tables below hold (SIGRTMAX is 64 on Linux).
constexpr int kMaxSignal = 64;

}  // namespace

bool EventLoop::HandledSignal(int signo) {
  if (signo < 1 || signo > SIGRTMAX || signo > kMaxSignal) return false;
  if (signo == SIGKILL || signo == SIGSTOP || signo == SIGTTIN || signo == SIGTTOU) return false;
  // glibc reserves the signals between the 31 classic ones and SIGRTMIN (cancellation, setxid).
  return signo < 32 || signo >= SIGRTMIN;
}

EventLoop& EventLoop::Get() {
  static EventLoop loop;
  return loop;
}

Status EventLoop::Install() {
  EventLoop& l = Get();
  if (l.sfd_ >= 0) return Status::Ok();
  // Blocking everything (as tini does) is what keeps a stray SIGALRM, SIGUSR1 or
  // SIGRTMIN+3 from killing pgboot before APP exists, PID 1 or not (docs/init-mode.md).
  sigemptyset(&l.handled_);
  for (int s = 1; s <= kMaxSignal; ++s) {
    if (HandledSignal(s)) sigaddset(&l.handled_, s);
  }
  if (sigprocmask(SIG_BLOCK, &l.handled_, &l.original_mask_) != 0) {
    return Status::Internal(std::string("sigprocmask: ") + strerror(errno));
  }
  for (int s = 1; s <= kMaxSignal; ++s) {
    if (HandledSignal(s)) l.saved_[s] = sigaction(s, nullptr, &l.original_actions_[s]) == 0;
  }
  // A background pgboot must not stop when it touches the terminal, nor die
  // writing a log line to a closed stderr (EPIPE is enough); APP gets the
  // inherited dispositions back before exec.
  for (int s : {SIGTTIN, SIGTTOU, SIGPIPE}) {
    struct sigaction ign = {};
    ign.sa_handler = SIG_IGN;
    l.saved_[s] = sigaction(s, &ign, &l.original_actions_[s]) == 0;
  }
  l.sfd_ = signalfd(-1, &l.handled_, SFD_CLOEXEC | SFD_NONBLOCK);
  if (l.sfd_ < 0) return Status::Internal(std::string("signalfd: ") + strerror(errno));
  return Status::Ok();
}

bool EventLoop::IsTerminating(int signo) const {
  if (signo != SIGTERM && signo != SIGINT && signo != SIGHUP && signo != SIGQUIT) return false;
  // An inherited SIG_IGN (e.g. nohup, or a parent that ignores SIGINT) stays ignored.
  return !(saved_[signo] && original_actions_[signo].sa_handler == SIG_IGN);
}

int EventLoop::PendingTerminatingSignal() {
  if (pending_ != 0) return pending_;
  Wake w = WaitImpl(-1, 0, 0, /*any=*/false);
  if (w.kind == Wake::kSignal) {
    pending_ = w.signo;
    return w.signo;
  }
  return 0;
}

EventLoop::Wake EventLoop::Wait(int fd, short events, int64_t timeout_ms) {
  if (pending_ != 0) {
    Wake w;
    w.kind = Wake::kSignal;
    w.signo = pending_;
    pending_ = 0;
    return w;
  }
  return WaitImpl(fd, events, timeout_ms, /*any=*/false);
}

EventLoop::Wake EventLoop::WaitAny(int fd, short events, int64_t timeout_ms) {
  return WaitImpl(fd, events, timeout_ms, /*any=*/true);
}

EventLoop::Wake EventLoop::WaitImpl(int fd, short events, int64_t timeout_ms, bool any) {
  const int64_t deadline = timeout_ms < 0 ? -1 : MonotonicNowMs() + timeout_ms;
  for (;;) {
    pollfd fds[2];
    int n = 0;
    if (sfd_ >= 0) fds[n++] = {sfd_, POLLIN, 0};
    const int fd_index = n;
    if (fd >= 0) fds[n++] = {fd, events, 0};
    int wait_ms = -1;
    if (deadline >= 0) {
      int64_t left = deadline - MonotonicNowMs();
      wait_ms = left < 0 ? 0 : static_cast<int>(left > 1 << 30 ? 1 << 30 : left);
    }
    int r = poll(fds, n, wait_ms);
    if (r < 0) {
      if (errno == EINTR) continue;
      Wake w;
      w.kind = Wake::kReady;  // let the caller's own I/O surface the error
      w.revents = POLLERR;
      return w;
    }
    if (sfd_ >= 0 && (fds[0].revents & POLLIN)) {
      signalfd_siginfo si;
      while (read(sfd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        int signo = static_cast<int>(si.ssi_signo);
        if (any || IsTerminating(signo)) {
          Wake w;
          w.kind = Wake::kSignal;
          w.signo = signo;
          // A write to a closed pipe raises SIGPIPE as if pgboot had sent it to itself
          // (SI_USER, its own pid); pid numbers are those of pgboot's PID namespace.
          const int code = si.ssi_code;
          w.from_self = (code == SI_USER || code == SI_TKILL || code == SI_QUEUE) &&
                        static_cast<pid_t>(si.ssi_pid) == getpid();
          return w;
        }
        // Not ours to act on before APP exists (SIGCHLD, SIGALRM, SIGUSR1...): consumed,
        // i.e. ignored, so no default action can end pgboot (docs/init-mode.md).
      }
    }
    if (fd >= 0 && fds[fd_index].revents != 0) {
      Wake w;
      w.kind = Wake::kReady;
      w.revents = fds[fd_index].revents;
      return w;
    }
    if (deadline >= 0 && MonotonicNowMs() >= deadline) return Wake{};
  }
}

void EventLoop::RestoreForExec() {
  for (int s = 1; s <= kMaxSignal; ++s) {
    if (saved_[s]) sigaction(s, &original_actions_[s], nullptr);
  }
  if (sfd_ >= 0) {
    close(sfd_);
    sfd_ = -1;
  }
  sigprocmask(SIG_SETMASK, &original_mask_, nullptr);
}

}  // namespace pgboot
