"""Peak memory of a pgboot run, and migrations big enough to measure it.

    write_single_statement(path, 200 * MB)      # one SELECT over one long literal
    code, peak, stderr = peak_rss(["status", ...])

peak_rss reports the larger of /proc/PID/status VmHWM, read every few milliseconds
while pgboot runs, and wait4's ru_maxrss (the kernel's peak, read as it exits: the
last VmHWM read may miss the final growth).
"""

import os
import subprocess
import threading
import time

from harness.proc import clean_env, pgboot_bin, quiet_cwd

MB = 1 << 20


def write_single_statement(path, size):
    """Writes a migration of `size` bytes: one SELECT over one long string literal."""
    head, tail = b"-- migrate:up\nSELECT length('", b"');\n"
    chunk = b"x" * MB
    with open(path, "wb") as f:
        f.write(head)
        left = size - len(head) - len(tail)
        while left > 0:
            f.write(chunk[:min(left, MB)])
            left -= MB
        f.write(tail)


def peak_rss(args, binary=None, env=None):
    """Runs `pgboot ARGS` (stdout discarded); returns (exit code, peak RSS in bytes, stderr)."""
    p = subprocess.Popen([binary or pgboot_bin()] + [str(a) for a in args], env=clean_env(env),
                         cwd=quiet_cwd(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    hwm = [0]
    done = threading.Event()

    def poll():
        while not done.is_set():
            try:
                with open("/proc/%d/status" % p.pid) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            hwm[0] = max(hwm[0], int(line.split()[1]) * 1024)
            except (OSError, ValueError):
                pass
            time.sleep(0.005)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    err = p.stderr.read()
    p.stderr.close()
    _, status, rusage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    t.join()
    return p.returncode, max(hwm[0], rusage.ru_maxrss * 1024), err.decode("utf-8", "replace")
