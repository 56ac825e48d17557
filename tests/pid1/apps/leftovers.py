"""APP for tests/pid1: leaves two stubborn descendants behind and exits.

    leftovers.py DIR CODE

APP starts B, which ignores SIGTERM and starts C. C handles SIGTERM by
appending "C got SIGTERM" to DIR/log and carrying on. When both run, B's and
C's pids are in DIR/b and DIR/c and APP exits with CODE. B becomes an orphan
(the reaper's child); C, whose parent B lives, becomes only a grandchild of the
reaper: it is found only by walking the process tree.
"""

import os
import signal
import sys
import time

DIR, CODE = sys.argv[1], int(sys.argv[2])


def write_atomic(name, text):
    tmp = os.path.join(DIR, "." + name)
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(DIR, name))


def c_on_term(_signo, _frame):
    with open(os.path.join(DIR, "log"), "a") as f:
        f.write("C got SIGTERM\n")


if os.fork() == 0:  # B
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    c = os.fork()
    if c == 0:  # C
        signal.signal(signal.SIGTERM, c_on_term)
        write_atomic("c", "%d\n" % os.getpid())
        while True:
            signal.pause()
    write_atomic("b", "%d\n" % os.getpid())
    while True:
        signal.pause()

deadline = time.monotonic() + 20
while not (os.path.exists(os.path.join(DIR, "b")) and os.path.exists(os.path.join(DIR, "c"))):
    if time.monotonic() > deadline:
        sys.exit("B and C did not start")
    time.sleep(0.005)
sys.exit(CODE)
