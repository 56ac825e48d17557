"""Shared helpers for pgboot's black-box suites (integration, pid1, apply, operator).

Import it from a suite with:

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
    import common

The suites run under CTest with PGBOOT_BIN (the binary), PGBOOT_TEST_STATE (the
directory holding pg.json of the shared server, see pg.py) and
PGBOOT_SOURCE_DIR. To run one by hand:

    python3 tests/harness/pg.py start /tmp/st
    PGBOOT_BIN=/tmp/build/pgboot PGBOOT_TEST_STATE=/tmp/st python3 tests/integration/test_x.py -v
    python3 tests/harness/pg.py stop /tmp/st

API overview (details in each docstring):
    pg()                      the shared server's pg.json as a dict
    pgboot_bin()              path of the binary under test
    PASSWORD, USER            the superuser's credentials (password has special characters)
    url(db, ...)              postgresql:// URI with percent-encoding
    conninfo(db, ...)         libpq key=value string
    admin_sql(sql, db)        run SQL as superuser over the socket, return stdout
    new_database(test)        CREATE a uniquely named database, dropped by test.addCleanup
    drop_database(name)
    new_role(test, ...)       CREATE ROLE with a unique name (LOGIN PASSWORD), dropped on cleanup
    run(args, env, ...)       run pgboot (clean environment), -> CompletedProcess (+ .elapsed)
    spawn(args, env, ...)     Popen subclass with line readers on stdout/stderr
    wait_for_line(src, re)    block until a matching log line appears (never sleep blindly)
    free_port()               a TCP port nobody listens on
    closed_url(db)            a URL to 127.0.0.1 on a port nobody listens on
    temp_dir(test) / temp_migrations(files, test)
    parse_json_lines(text)    every non-empty line must be a JSON object
    parse_text_lines(text)    text log lines -> dicts like the JSON ones
    events(text)              either format -> list of dicts (ts, level, event, fields...)
    StartBarrier(n)           start N processes at the same instant (FIFO release)
    new_cluster(test)         a second, initdb'd, not started cluster (start()/stop())
    PgbootTestCase            unittest.TestCase with the above bound to self
"""

import fcntl
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import unittest
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pg as _pg  # noqa: E402  (the harness's cluster engine)

USER = _pg.USER
PASSWORD = _pg.PASSWORD
BIN_DIR = _pg.BIN_DIR

# ---- the shared server ------------------------------------------------------------

_pg_info = None


def pg():
    """The shared server's pg.json (host, port, user, password, socket_dir, data_dir,
    log_file, bin_dir, base_dir, url template). Fails loudly when there is none."""
    global _pg_info
    if _pg_info is None:
        state = os.environ.get("PGBOOT_TEST_STATE")
        if not state:
            raise RuntimeError("PGBOOT_TEST_STATE is not set: run the suite through ctest, or "
                               "start a server with `python3 tests/harness/pg.py start DIR` and "
                               "export PGBOOT_TEST_STATE=DIR")
        path = os.path.join(state, _pg.STATE_FILE)
        try:
            with open(path) as f:
                info = json.load(f)
        except FileNotFoundError:
            raise RuntimeError("%s does not exist: the pg.start fixture did not run or failed"
                               % path) from None
        if not info.get("ready"):
            raise RuntimeError("%s says the server is not ready (pg.start half-failed)" % path)
        _pg_info = info
    return _pg_info


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


def _q(s):
    return urllib.parse.quote(str(s), safe="")


def url(db="postgres", user=None, password=None, host=None, port=None, params=None):
    """postgresql://user:password@host:port/db[?params] for the shared server (TCP, scram),
    every part percent-encoded. password="" gives no password; params is a dict."""
    info = pg()
    user = info["user"] if user is None else user
    password = info["password"] if password is None else password
    userinfo = _q(user) + (":" + _q(password) if password != "" else "")
    u = "postgresql://%s@%s:%s/%s" % (userinfo, host or info["host"], port or info["port"], _q(db))
    if params:
        u += "?" + urllib.parse.urlencode(params)
    return u


def conninfo(db="postgres", user=None, password=None, host=None, port=None, **extra):
    """A libpq key=value string for the shared server, values single-quoted and escaped."""
    info = pg()
    kv = {"host": host or info["host"], "port": port or info["port"],
          "user": info["user"] if user is None else user,
          "password": info["password"] if password is None else password, "dbname": db}
    kv.update(extra)
    esc = lambda v: "'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'"
    return " ".join("%s=%s" % (k, esc(v)) for k, v in kv.items())


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on (bound to 0, read, closed)."""
    return _pg.free_port()


def closed_url(db="postgres", password=None):
    """A URL to a port where nothing listens (connection refused at once)."""
    return url(db, password=password, port=free_port())


def admin_sql(sql, db="postgres", check=True):
    """Runs SQL (one or many statements) as the superuser over the Unix socket with
    `psql -X -A -t -v ON_ERROR_STOP=1`; returns stdout (rows '|'-separated).
    Raises RuntimeError with psql's stderr when a statement fails and check is true."""
    info = pg()
    cmd = [os.path.join(info["bin_dir"], "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
           "-h", info["socket_dir"], "-p", str(info["port"]), "-U", info["user"], "-d", db,
           "-f", "-"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGCONNECT_TIMEOUT": "10"}
    p = subprocess.run(cmd, input=sql, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, env=env, timeout=120)
    if check and p.returncode != 0:
        raise RuntimeError("admin_sql failed (exit %d) in %s: %s\n%s"
                           % (p.returncode, db, sql, p.stderr))
    return p.stdout


def quote_ident(name):
    return '"' + name.replace('"', '""') + '"'


def drop_database(name):
    """DROP DATABASE ... WITH (FORCE): ends leftover sessions first. Never raises."""
    try:
        admin_sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % quote_ident(name))
    except Exception as e:  # noqa: BLE001 - cleanup must not mask the test's own failure
        print("warning: could not drop database %s: %s" % (name, e), file=sys.stderr)


_db_counter = 0


def new_database(test=None, prefix="t"):
    """CREATEs a uniquely named, empty database and returns its name. With a
    unittest.TestCase, it is dropped by test.addCleanup (after tearDown)."""
    global _db_counter
    _db_counter += 1
    name = "%s_%d_%d_%s" % (prefix, os.getpid(), _db_counter, uuid.uuid4().hex[:6])
    admin_sql("CREATE DATABASE %s" % quote_ident(name))
    if test is not None:
        test.addCleanup(drop_database, name)
    return name


_role_counter = 0


def drop_role(name):
    """DROP ROLE IF EXISTS (its sessions are ended first). Never raises."""
    try:
        admin_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '%s';"
                  "DROP ROLE IF EXISTS %s" % (name.replace("'", "''"), quote_ident(name)))
    except Exception as e:  # noqa: BLE001 - cleanup must not mask the test's own failure
        print("warning: could not drop role %s: %s" % (name, e), file=sys.stderr)


def new_role(test=None, password="R0le-Pw!", options="LOGIN", prefix="r"):
    """CREATE ROLE <unique> WITH <options> PASSWORD <password> and return its name.
    Roles are cluster-wide: with a TestCase it is dropped by addCleanup (register
    it after the databases it has privileges on, or revoke them first)."""
    global _role_counter
    _role_counter += 1
    name = "%s_%d_%d_%s" % (prefix, os.getpid(), _role_counter, uuid.uuid4().hex[:6])
    pw = "" if password is None else " PASSWORD '%s'" % password.replace("'", "''")
    admin_sql("CREATE ROLE %s WITH %s%s" % (quote_ident(name), options, pw))
    if test is not None:
        test.addCleanup(drop_role, name)
    return name


# ---- running pgboot -----------------------------------------------------------------

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


# ---- files ----------------------------------------------------------------------

class TempDir(os.PathLike):
    """A temporary directory: str()/os.fspath() give its path; removed by close(),
    at the end of a `with`, or by the test's cleanup."""

    def __init__(self, prefix="pgboot-test-"):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def __fspath__(self):
        return self.path

    def __str__(self):
        return self.path

    def __truediv__(self, name):
        return os.path.join(self.path, name)

    def write(self, name, content, mode=None):
        """Writes a file (str as UTF-8, bytes as is) and returns its path."""
        path = os.path.join(self.path, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content.encode("utf-8") if isinstance(content, str) else content)
        if mode is not None:
            os.chmod(path, mode)
        return path

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def temp_dir(test=None, prefix="pgboot-test-"):
    """A TempDir, removed by test.addCleanup when a TestCase is given."""
    d = TempDir(prefix)
    if test is not None:
        test.addCleanup(d.close)
    return d


def temp_migrations(files, test=None):
    """A TempDir holding migration files: {"1_init.sql": "-- migrate:up\\n...", ...}
    (str written as UTF-8, bytes verbatim). Use as `with temp_migrations({...}) as d:`
    or pass a TestCase to have it removed by addCleanup."""
    d = temp_dir(test, prefix="pgboot-migrations-")
    for name, content in files.items():
        d.write(name, content)
    return d


# ---- logs -----------------------------------------------------------------------

def parse_json_lines(text):
    """Every non-empty line must be one JSON object; returns them in order.
    AssertionError names the first line that is not."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise AssertionError("line %d is not JSON (%s): %r" % (n, e, line)) from None
        if not isinstance(obj, dict):
            raise AssertionError("line %d is JSON but not an object: %r" % (n, line))
        out.append(obj)
    return out


_TEXT_LINE = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\dT[\d:.]+Z)\s+(?P<level>[A-Z]+)\s+(?P<event>\S+)(?P<rest>.*)$")
_TEXT_FIELD = re.compile(r'\s+([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_text_lines(text):
    """Text log lines (`TS LEVEL event k=v k="quoted"`) -> dicts shaped like the JSON
    lines (ts, level in lower case, event, fields as strings). Lines that are not log
    lines are returned as {"raw": line}."""
    out = []
    for line in text.splitlines():
        m = _TEXT_LINE.match(line)
        if not m:
            if line.strip():
                out.append({"raw": line})
            continue
        d = {"ts": m.group("ts"), "level": m.group("level").lower(), "event": m.group("event")}
        for k, v in _TEXT_FIELD.findall(m.group("rest")):
            if v.startswith('"'):
                try:
                    v = json.loads(v)
                except ValueError:
                    pass
            d[k] = v
        out.append(d)
    return out


def events(text, name=None):
    """Log events from stderr in either format; only those called `name` if given."""
    first = next((l for l in text.splitlines() if l.strip()), "")
    evs = parse_json_lines(text) if first.lstrip().startswith("{") else parse_text_lines(text)
    return [e for e in evs if name is None or e.get("event") == name]


# ---- concurrency ------------------------------------------------------------------

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


# ---- a second cluster -----------------------------------------------------------

class TestCluster(_pg.Cluster):
    """A throw-away cluster (pg.Cluster) with the shared server's auth setup and
    credentials, on its own free port and socket. start(wait=False) returns at once
    so a test can have pgboot waiting before the server accepts anything."""

    def admin_sql(self, sql, db="postgres", check=True):
        return self.psql(sql, db=db, check=check)


def new_cluster(test=None):
    """initdb's a new cluster (not started) on a free port and returns it; with a
    TestCase, addCleanup stops it and removes its directory. Methods: start(wait=True),
    stop(), destroy(), url(db, user=, password=, host=, port=), admin_sql(sql, db),
    tcp_login_ok(db), is_running(); attributes host, port, socket_dir, data_dir, log_file."""
    c = TestCluster(prefix="pgboot-pg2-")
    if test is not None:
        test.addCleanup(c.destroy)
    try:
        c.init()
    except Exception:
        if test is None:
            c.destroy()
        raise
    return c


# ---- unittest glue ----------------------------------------------------------------

class PgbootTestCase(unittest.TestCase):
    """A TestCase with the helpers bound to the test (cleanups registered for you)."""

    maxDiff = None

    def new_database(self, prefix="t"):
        return new_database(self, prefix)

    def new_role(self, password="R0le-Pw!", options="LOGIN"):
        return new_role(self, password, options)

    def temp_dir(self):
        return temp_dir(self)

    def temp_migrations(self, files):
        return temp_migrations(files, self)

    def new_cluster(self):
        return new_cluster(self)

    def spawn(self, args, env=None, **kw):
        return spawn(args, env=env, test=self, **kw)

    def run_pgboot(self, args, env=None, **kw):
        return run(args, env=env, **kw)

    def assertExit(self, cp, code, msg=""):
        """assertEqual on the exit code, showing stdout/stderr when it differs."""
        if cp.returncode != code:
            self.fail("%sexpected exit %d, got %d from %s\n--- stdout ---\n%s\n--- stderr ---\n%s"
                      % (msg + ": " if msg else "", code, cp.returncode, cp.args,
                         cp.stdout, cp.stderr))

    def assertNoPassword(self, text, *passwords):
        """Neither the passwords nor their percent-encoded forms appear in text."""
        for p in passwords or (PASSWORD,):
            for form in {p, _q(p), urllib.parse.quote(p)}:
                self.assertNotIn(form, text, "password %r (as %r) leaked:\n%s" % (p, form, text))


def is_root():
    return os.geteuid() == 0


def skip_loudly(test, reason):
    """Skips with a banner on stderr, so a skip is never silent in CTest output."""
    sys.stderr.write("\n" + "!" * 72 + "\nSKIPPED %s: %s\n" % (test.id(), reason) + "!" * 72 + "\n")
    raise unittest.SkipTest(reason)


class PsqlSession:
    """A psql process kept open (stdin pipe): holds locks, transactions and advisory locks
    for a test, and is closed by the test's cleanup."""

    def __init__(self, test, db, appname="pgboot-test-holder"):
        info = pg()
        cmd = [os.path.join(info["bin_dir"], "psql"), "-X", "-A", "-t", "-q",
               "-v", "ON_ERROR_STOP=1", "-h", info["socket_dir"], "-p", str(info["port"]),
               "-U", info["user"], "-d", db]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGAPPNAME": appname}
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        self.out = LineReader(self.p.stdout, "psql stdout")
        self.err = LineReader(self.p.stderr, "psql stderr")
        self.n = 0
        test.addCleanup(self.close)

    def execute(self, sql, timeout=10):
        """Runs SQL, waits for it, returns its output lines."""
        self.n += 1
        marker = "__pgboot_test_done_%d__" % self.n
        start = len(self.out.lines)
        self.p.stdin.write(("%s;\n\\echo %s\n" % (sql.rstrip().rstrip(";"), marker)).encode())
        self.p.stdin.flush()
        try:
            self.out.wait_for("^%s$" % marker, timeout)
        except AssertionError as e:
            raise AssertionError("%s\n--- psql stderr ---\n%s" % (e, self.err.text())) from None
        lines = self.out.lines[start:]
        return lines[:lines.index(marker)]

    def backend_pid(self):
        return int(self.execute("SELECT pg_backend_pid()")[0])

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
            except OSError:
                pass
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
