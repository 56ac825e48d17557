"""Peak memory of a pgboot run, and migrations big enough to measure it.

    write_single_statement(path, 200 * MB)      # one SELECT over one long literal
    code, peak, stderr = peak_rss(["status", ...])

peak_rss reports the larger of /proc/PID/status VmHWM, read every few milliseconds
while pgboot runs, and wait4's ru_maxrss (the kernel's peak, read as it exits: the
last VmHWM read may miss the final growth). Both would count Python's own pages,
which the child holds between fork and exec and which the kernel keeps in
ru_maxrss across the exec: VmHWM is read only once the process is pgboot, and
ru_maxrss counts only when it exceeds this Python process's own peak (then it
can only be pgboot's).
"""

import os
import resource
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

    name = os.path.basename(binary or pgboot_bin())[:15]  # /proc's Name: is the comm

    def poll():
        while not done.is_set():
            try:
                with open("/proc/%d/status" % p.pid) as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
                if fields.get("Name", "").strip() == name and "VmHWM" in fields:
                    hwm[0] = max(hwm[0], int(fields["VmHWM"].split()[0]) * 1024)
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
    child = rusage.ru_maxrss * 1024
    if hwm[0] and child <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024:
        child = 0  # possibly the pre-exec copy of this process (never 0 for a run it saw)
    return p.returncode, max(hwm[0], child), err.decode("utf-8", "replace")
