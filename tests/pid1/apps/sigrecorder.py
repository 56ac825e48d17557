"""APP for tests/pid1: records every forwarded signal it receives.

    sigrecorder.py DIR

Appends the name of each signal pgboot forwards (HUP INT QUIT USR1 USR2 WINCH
CONT TERM) to DIR/signals, one per line. On SIGTERM it also writes DIR/term and
exits 0. DIR/ready appears once every handler is installed, so a test that
waits for it cannot signal too early.
"""

import os
import signal
import sys

DIR = sys.argv[1]
FORWARDED = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCONT", "SIGTERM")


def write_atomic(name, text):
    tmp = os.path.join(DIR, "." + name)
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(DIR, name))


def handler(signo, _frame):
    name = signal.Signals(signo).name
    fd = os.open(os.path.join(DIR, "signals"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, (name + "\n").encode())
    os.close(fd)
    if signo == signal.SIGTERM:
        write_atomic("term", "%d\n" % os.getpid())
        os._exit(0)


for s in FORWARDED:
    signal.signal(getattr(signal, s), handler)
write_atomic("ready", "%d\n" % os.getpid())
while True:
    signal.pause()
