"""APP for tests/pid1: orphans N processes that then all exit at the same instant.

    orphans.py N DIR

Each of N short-lived children forks a grandchild and exits at once, so every
grandchild is re-parented to the reaper (pgboot). The grandchildren block
reading one pipe; once all of them exist, APP closes the pipe's write end and
they all exit together, so their SIGCHLDs to pgboot coalesce. APP then writes
their pids (as this PID namespace numbers them) to DIR/released and waits for a
signal (SIGTERM ends it).
"""

import os
import signal
import sys

n = int(sys.argv[1])
out = sys.argv[2]
release_r, release_w = os.pipe()
pids = []
for _ in range(n):
    pid_r, pid_w = os.pipe()
    child = os.fork()
    if child == 0:
        grandchild = os.fork()
        if grandchild == 0:
            os.close(release_w)
            os.close(pid_r)
            os.close(pid_w)
            os.read(release_r, 1)  # EOF when APP closes the write end
            os._exit(0)
        os.write(pid_w, b"%d" % grandchild)
        os._exit(0)
    os.close(pid_w)
    pids.append(int(os.read(pid_r, 32)))
    os.close(pid_r)
    os.waitpid(child, 0)  # the middle process is APP's to reap; the grandchild is orphaned
os.close(release_w)
tmp = os.path.join(out, ".released")
with open(tmp, "w") as f:
    f.write(" ".join(map(str, pids)) + "\n")
os.rename(tmp, os.path.join(out, "released"))
while True:
    signal.pause()
