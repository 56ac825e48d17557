"""APP for tests/pid1/test_signals.py: records every signal --init may forward.

    allsignals.py DIR

Installs a handler for every catchable signal but SIGCHLD (SIGTTIN/SIGTTOU and
the fault signals included, so a wrongly forwarded one shows up too) and
appends each signal's name to DIR/signals, one per line. On SIGTERM it also
exits 0. DIR/ready appears once every handler is
installed, so a test that waits for it cannot signal too early.
"""

import os
import signal
import sys

DIR = sys.argv[1]
UNCATCHABLE = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD}


def name(signo):
    if signal.SIGRTMIN <= signo <= signal.SIGRTMAX:
        return "SIGRTMIN" if signo == signal.SIGRTMIN else "SIGRTMIN+%d" % (signo - signal.SIGRTMIN)
    return signal.Signals(signo).name


def write_atomic(fname, text):
    tmp = os.path.join(DIR, "." + fname)
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(DIR, fname))


def record(signo):
    fd = os.open(os.path.join(DIR, "signals"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, (name(signo) + "\n").encode())
    os.close(fd)


# sigwaitinfo, not handlers: Python runs handlers in signal-number order, which
# would reorder two signals that arrive together; blocking and reading keeps the
# kernel's order and is never interrupted halfway through a record.
catch = [s for s in range(1, signal.SIGRTMAX + 1)
         if s not in UNCATCHABLE and (s < 32 or s >= signal.SIGRTMIN)]
signal.pthread_sigmask(signal.SIG_BLOCK, catch)
write_atomic("ready", "%d\n" % os.getpid())
while True:
    info = signal.sigwaitinfo(catch)
    record(info.si_signo)
    if info.si_signo == signal.SIGTERM:
        write_atomic("term", "%d\n" % os.getpid())
        sys.exit(0)
