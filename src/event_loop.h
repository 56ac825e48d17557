// EventLoop: the one place that waits — poll() over a signalfd, one file descriptor and a timeout.
#pragma once

#include <poll.h>
#include <signal.h>

#include <cstdint>

#include "status.h"

namespace pgboot {

// Signals are blocked at the very start of main and read through a signalfd, so
// that every wait in pgboot (connecting, backoff sleeps, the lock, a running
// statement, --init supervision) answers SIGTERM the same way. There is one
// process-wide instance because signal masks are process-wide.
class EventLoop {
 public:
  struct Wake {
    enum Kind { kReady, kTimeout, kSignal } kind = kTimeout;
    int signo = 0;           // for kSignal
    bool from_self = false;  // for kSignal: pgboot itself caused it (SIGPIPE of its own write)
    short revents = 0;       // for kReady
  };

  // Blocks every signal that can be blocked and caught (see HandledSignal), ignores
  // SIGTTIN/SIGTTOU/SIGPIPE, remembers the inherited mask and dispositions, and opens
  // the signalfd. Call first thing in main, before any thread starts.
  static Status Install();
  static EventLoop& Get();

  // Waits until `fd` (ignored when < 0) reports one of `events`, `timeout_ms`
  // passes (< 0 waits forever), or a terminating signal arrives (see
  // IsTerminating). Other signals are consumed and the wait goes on.
  Wake Wait(int fd, short events, int64_t timeout_ms);

  // Like Wait, but returns on every handled signal (SIGCHLD included): the
  // supervisor forwards and reaps.
  Wake WaitAny(int fd, short events, int64_t timeout_ms);

  // A terminating signal that arrived and was not consumed yet, else 0. Does not block.
  int PendingTerminatingSignal();

  // Whether `signo` ends pgboot's own work: SIGTERM, SIGINT, SIGHUP, SIGQUIT,
  // unless pgboot inherited it as ignored (then it stays ignored).
  bool IsTerminating(int signo) const;

  // Restores the inherited signal mask and dispositions and closes the signalfd
  // (call in a forked child or right before exec).
  void RestoreForExec();

  // Whether pgboot reads `signo` from its signalfd rather than letting the kernel act:
  // every signal from 1 to SIGRTMAX but SIGKILL, SIGSTOP (which cannot be caught),
  // SIGTTIN/SIGTTOU (ignored) and glibc's two internal ones. A synchronous fault
  // (SIGSEGV, ...) still kills: the kernel unblocks it. docs/init-mode.md "Signals".
  static bool HandledSignal(int signo);

 private:
  EventLoop() = default;
  Wake WaitImpl(int fd, short events, int64_t timeout_ms, bool any);
  int sfd_ = -1;
  int pending_ = 0;
  sigset_t handled_{};
  sigset_t original_mask_{};
  struct sigaction original_actions_[65] = {};
  bool saved_[65] = {};
};

}  // namespace pgboot
