"""Running processes: the binary under test, run() and spawn() with a clean
environment, line readers that wait for log lines, wait_until() for any other
state, and StartBarrier to start racers at the same instant.
"""

import fcntl
import os
import re
import shutil
import struct
import subprocess
import tempfile
import termios
import threading
import time


def pgboot_bin():
    """The binary under test (PGBOOT_BIN)."""
    b = os.environ.get("PGBOOT_BIN")
    if not b:
        raise RuntimeError("PGBOOT_BIN is not set (ctest sets it to the built pgboot)")
    if not os.access(b, os.X_OK):
        raise RuntimeError("PGBOOT_BIN=%s is not an executable file" % b)
    return b



def source_dir():
    """The repository root (PGBOOT_SOURCE_DIR, else derived from this file)."""
    return os.environ.get("PGBOOT_SOURCE_DIR") or os.path.abspath(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def is_root():
    return os.geteuid() == 0


_quiet_cwd = None


def quiet_cwd():
    """An empty directory used as the default working directory, so that no
    stray ./pgboot.toml or ./migrations changes what pgboot does."""
    global _quiet_cwd
    if _quiet_cwd is None or not os.path.isdir(_quiet_cwd):
        _quiet_cwd = tempfile.mkdtemp(prefix="pgboot-cwd-")
        import atexit
        atexit.register(shutil.rmtree, _quiet_cwd, True)
    return _quiet_cwd


def clean_env(env=None):
    """The explicit environment pgboot runs with: PATH plus `env`. Nothing else is
    inherited (no DATABASE_URL, PG*, PGBOOT_*, HOME). A value of None removes a key."""
    out = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")}
    for k, v in (env or {}).items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = str(v)
    return out


def _argv(args):
    args = [str(a) for a in args]
    return [pgboot_bin()] + args


def run(args, env=None, timeout=30, input=None, cwd=None, binary=None, **kw):
    """Runs `pgboot ARGS` (or `binary ARGS`) with clean_env(env) in quiet_cwd() and
    returns a CompletedProcess with text stdout/stderr and `.elapsed` (seconds).
    If it does not exit within `timeout` it is killed and AssertionError is raised
    with everything it printed (a hung pgboot is a test failure, not a hung suite)."""
    cmd = ([binary] + [str(a) for a in args]) if binary else _argv(args)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=clean_env(env), cwd=cwd or quiet_cwd(),
                         stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         encoding="utf-8", errors="surrogateescape", **kw)
    try:
        out, err = p.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError("%s did not exit within %ss\n--- stdout ---\n%s\n--- stderr ---\n%s"
                             % (cmd, timeout, out, err)) from None
    cp = subprocess.CompletedProcess(cmd, p.returncode, out, err)
    cp.elapsed = time.monotonic() - t0
    return cp


class LineReader:
    """Drains a binary pipe in a thread, keeping every line (decoded, without the
    newline). wait_for() blocks until a line matches, so tests wait for events."""

    def __init__(self, stream, name="stream"):
        self.name = name
        self.lines = []
        self.eof = False
        self._partial = b""
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream):
        fd = stream.fileno()
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                with self._cond:
                    data = self._partial + chunk
                    *complete, self._partial = data.split(b"\n")
                    self.lines.extend(c.decode("utf-8", "surrogateescape") for c in complete)
                    self._cond.notify_all()
        except OSError:
            pass
        finally:
            with self._cond:
                if self._partial:
                    self.lines.append(self._partial.decode("utf-8", "surrogateescape"))
                    self._partial = b""
                self.eof = True
                self._cond.notify_all()
            try:
                stream.close()
            except OSError:
                pass

    def text(self):
        with self._cond:
            return "".join(line + "\n" for line in self.lines)

    def wait_for(self, regex, timeout=10, start=0):
        """Returns the re.Match of the first line (from index `start`) matching
        `regex`. Raises AssertionError with all output on timeout or EOF."""
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        i = start
        with self._cond:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return m
                    i += 1
                if self.eof:
                    raise AssertionError("%s ended without a line matching %r:\n%s"
                                         % (self.name, regex, "\n".join(self.lines)))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no line matching %r in %s within %ss:\n%s"
                                         % (regex, self.name, timeout, "\n".join(self.lines)))
                self._cond.wait(left)

    def join(self, timeout=10):
        self._thread.join(timeout)
        return not self._thread.is_alive()


class Spawned(subprocess.Popen):
    """A Popen whose stdout and stderr are drained by LineReaders (`.out`, `.err`),
    so a chatty child never blocks and tests can wait for a line. `.exited_at`
    is the monotonic time the exit was observed (by a watcher thread, so it is
    accurate whoever calls wait()). Use finish() instead of communicate()."""

    def __init__(self, cmd, **kw):
        super().__init__(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
        self.started_at = time.monotonic()
        self.exited_at = None
        self.out = LineReader(self.stdout, "stdout of %s" % cmd[0])
        self.err = LineReader(self.stderr, "stderr of %s" % cmd[0])
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self):
        # waitid(WNOWAIT) observes the exit without reaping, so Popen.wait()
        # still gets the status.
        try:
            os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass
        self.exited_at = time.monotonic()

    def wait_for_line(self, regex, timeout=10, stream="stderr"):
        return (self.err if stream == "stderr" else self.out).wait_for(regex, timeout)

    def finish(self, timeout=30):
        """Waits for the exit (AssertionError with the output if it does not come), joins the
        readers and returns a CompletedProcess with text stdout/stderr and `.elapsed`."""
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.wait()
            self.out.join(5)
            self.err.join(5)
            raise AssertionError("%s did not exit within %ss\n--- stdout ---\n%s\n--- stderr ---\n%s"
                                 % (self.args, timeout, self.out.text(), self.err.text())) from None
        self._watcher.join(5)
        self.out.join(5)
        self.err.join(5)
        cp = subprocess.CompletedProcess(self.args, self.returncode, self.out.text(),
                                         self.err.text())
        cp.elapsed = (self.exited_at or time.monotonic()) - self.started_at
        return cp

    def communicate(self, input=None, timeout=None):  # noqa: A002 - Popen's signature
        cp = self.finish(timeout if timeout is not None else 30)
        return cp.stdout, cp.stderr

    def kill_quietly(self):
        """SIGKILL if still running, and reap. For cleanups."""
        if self.poll() is None:
            try:
                self.kill()
            except OSError:
                pass
            try:
                self.wait(10)
            except subprocess.TimeoutExpired:
                pass


def spawn(args, env=None, cwd=None, test=None, binary=None, barrier=None, **kw):
    """Starts `pgboot ARGS` (or `binary ARGS`) like run() but returns at once with a
    Spawned (Popen). With a StartBarrier, the process waits at it (same pid) until
    barrier.release(). With a TestCase, a cleanup kills it if the test leaves it running."""
    cmd = ([binary] + [str(a) for a in args]) if binary else _argv(args)
    if barrier is not None:
        cmd = barrier.wrap(cmd)
    p = Spawned(cmd, env=clean_env(env), cwd=cwd or quiet_cwd(), stdin=subprocess.DEVNULL, **kw)
    if test is not None:
        test.addCleanup(p.kill_quietly)
    return p


def wait_for_line(source, regex, timeout=10):
    """Blocks until a line matching `regex` appears; returns the re.Match.
    `source` is a Spawned (its stderr), a LineReader, or a path of a log file
    (polled every 20 ms: it is read, not slept on). AssertionError on timeout."""
    if isinstance(source, Spawned):
        return source.err.wait_for(regex, timeout)
    if isinstance(source, LineReader):
        return source.wait_for(regex, timeout)
    rx = re.compile(regex)
    deadline = time.monotonic() + timeout
    text = ""
    while True:
        try:
            with open(source, errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            text = ""
        for line in text.splitlines():
            m = rx.search(line)
            if m:
                return m
        if time.monotonic() >= deadline:
            raise AssertionError("no line matching %r in %s within %ss:\n%s"
                                 % (regex, source, timeout, text[-4000:]))
        time.sleep(0.02)



def wait_until(check, timeout=10, what="the condition", interval=0.02):
    """Polls check() until it returns something truthy and returns that value;
    AssertionError naming `what` after `timeout` seconds. For state that has no
    log line (a row in pg_locks, a file, /proc); wait for log lines with
    wait_for_line()."""
    t0 = time.monotonic()
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() - t0 > timeout:
            raise AssertionError("not within %.1fs: %s" % (timeout, what))
        time.sleep(interval)


class StartBarrier:
    """Starts N processes at (nearly) the same instant.

        b = StartBarrier(5, test=self)
        procs = [spawn(["wait", ...], barrier=b, test=self) for _ in range(5)]
        b.release()

    Each wrapped command is `sh -c` that appends to a ready file, blocks reading
    one byte from a FIFO, then execs the real command (same pid). release()
    waits until all N are ready, writes N bytes at once and keeps the FIFO open
    until every byte is consumed, so no late reader can miss the start.
    wrap(argv) wraps any full argv (for processes that are not pgboot)."""

    shell = "/bin/sh"
    _SCRIPT = 'echo r >> "$1"; read _ < "$2"; shift 2; exec "$@"'

    def __init__(self, n, test=None):
        self.n = n
        from harness.files import temp_dir
        self.dir = temp_dir(test, prefix="pgboot-barrier-")
        self.ready = os.path.join(self.dir.path, "ready")
        self.fifo = os.path.join(self.dir.path, "go")
        open(self.ready, "w").close()
        os.mkfifo(self.fifo, 0o666)
        os.chmod(self.ready, 0o666)
        os.chmod(self.dir.path, 0o755)

    def wrap(self, argv):
        """Full argv -> argv that waits at the barrier first."""
        return [self.shell, "-c", self._SCRIPT, "sh", self.ready, self.fifo] + [str(a) for a in argv]

    def count_ready(self):
        with open(self.ready) as f:
            return len(f.read().split())

    def release(self, timeout=30):
        """Waits for N ready processes, then lets them all go. Returns the release time."""
        deadline = time.monotonic() + timeout
        while self.count_ready() < self.n:
            if time.monotonic() > deadline:
                raise AssertionError("only %d of %d processes reached the barrier"
                                     % (self.count_ready(), self.n))
            time.sleep(0.005)
        # O_RDWR never blocks on a FIFO and counts as a writer for the readers' open().
        fd = os.open(self.fifo, os.O_RDWR)
        try:
            t = time.monotonic()
            os.write(fd, b"\n" * self.n)
            while True:
                left = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
                if left == 0:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError("%d processes never left the barrier" % left)
                time.sleep(0.002)
        finally:
            os.close(fd)
        return t

    def close(self):
        self.dir.close()

