#!/usr/bin/env python3
"""One real PostgreSQL 15 server for a whole CTest run (the pg.start/pg.stop fixture).

    PYTHONPATH=tests python3 -m harness.cluster start STATE_DIR   # initdb + start, write STATE_DIR/pg.json
    PYTHONPATH=tests python3 -m harness.cluster stop STATE_DIR    # stop, remove everything, remove pg.json

The server refuses to run as root, so as root every initdb/pg_ctl runs as the
`postgres` user (runuser -u postgres --) in a fresh temporary directory owned
by it; otherwise as the current user. The cluster listens on 127.0.0.1 on a
free port and on a Unix socket in that directory. Host (TCP) connections need
scram-sha-256, so wrong-password tests are real; the local socket trusts
everyone, which is how the harness and the tests administer it.

pg.json (read it through harness.server.pg(), not by hand):
    host, port, user, password, socket_dir, data_dir, log_file, bin_dir,
    base_dir, run_as, postmaster_pid, url ("postgresql://...:PORT/{db}"; fill
    {db} with str.format), ready (false while start is half-way).

The Cluster class is also the engine of harness.server.new_cluster() (a second,
throw-away cluster that a test starts and stops itself) and of harness.tls.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

BIN_DIR = os.environ.get("PGBOOT_PG_BIN_DIR", "/usr/lib/postgresql/15/bin")
USER = "pgboot_test"
PASSWORD = "S3cret-Pw!"  # special characters on purpose: redaction tests need them
STATE_FILE = "pg.json"


def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on right now (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _run_as():
    """The OS user the server must run as: `postgres` when we are root, else None (ourselves)."""
    return "postgres" if os.geteuid() == 0 else None


def _as_server_user(cmd, run_as):
    return (["runuser", "-u", run_as, "--"] + cmd) if run_as else cmd


class Cluster:
    """A PostgreSQL cluster in its own temporary directory.

    Lifecycle: Cluster() -> init() -> start() -> stop() -> destroy(). Every
    step is idempotent enough for cleanup paths: stop() and destroy() never
    raise on a half-made cluster.
    """

    def __init__(self, port=None, base_dir=None, user=USER, password=PASSWORD,
                 bin_dir=BIN_DIR, prefix="pgboot-pg-"):
        self.run_as = _run_as()
        self.bin_dir = bin_dir
        self.user = user
        self.password = password
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.base_dir = base_dir or tempfile.mkdtemp(prefix=prefix)
        self.socket_dir = self.base_dir
        self.data_dir = os.path.join(self.base_dir, "data")
        self.log_file = os.path.join(self.base_dir, "postgres.log")

    @classmethod
    def from_info(cls, info):
        c = cls(port=info["port"], base_dir=info["base_dir"], user=info["user"],
                password=info["password"], bin_dir=info["bin_dir"])
        c.run_as = info.get("run_as")
        return c

    # ---- commands ---------------------------------------------------------

    def _pg(self, tool, *args, check=True, timeout=120):
        cmd = _as_server_user([os.path.join(self.bin_dir, tool)] + list(args), self.run_as)
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=timeout,
                           cwd=self.base_dir)
        if check and p.returncode != 0:
            raise RuntimeError("%s failed (exit %d):\n%s%s" % (
                " ".join(cmd), p.returncode, p.stdout, self._log_tail()))
        return p

    def _log_tail(self, n=30):
        try:
            with open(self.log_file, errors="replace") as f:
                lines = f.readlines()[-n:]
            return "\n--- %s (tail) ---\n%s" % (self.log_file, "".join(lines))
        except OSError:
            return ""

    def init(self):
        """initdb with the harness's auth setup and speed settings; the server is not started."""
        os.makedirs(self.base_dir, exist_ok=True)
        os.chmod(self.base_dir, 0o755)  # the socket must be reachable by any test user
        if self.run_as:
            shutil.chown(self.base_dir, user=self.run_as, group=self.run_as)
        pwfile = os.path.join(self.base_dir, "pwfile")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        if self.run_as:
            shutil.chown(pwfile, user=self.run_as)
        os.chmod(pwfile, 0o600)
        try:
            # The bootstrap superuser is the test role itself; its password is
            # hashed with the default password_encryption (scram-sha-256).
            self._pg("initdb", "-D", self.data_dir, "-U", self.user, "--pwfile", pwfile,
                     "-E", "UTF8", "--locale=C", "--no-sync",
                     "--auth-local=trust", "--auth-host=scram-sha-256")
        finally:
            os.unlink(pwfile)
        with open(os.path.join(self.data_dir, "postgresql.conf"), "a") as f:
            f.write("\n# pgboot test harness\n"
                    "port = %d\n"
                    "listen_addresses = '127.0.0.1'\n"
                    "unix_socket_directories = '%s'\n"
                    "fsync = off\n"
                    "synchronous_commit = off\n"
                    "full_page_writes = off\n"
                    "max_connections = 200\n"
                    "lc_messages = 'C'\n"
                    "log_connections = on\n"  # shows application_name of every login
                    "log_line_prefix = '%%m [%%p] %%q%%a '\n"
                    "password_encryption = 'scram-sha-256'\n"
                    % (self.port, self.socket_dir))
        # Written out in full so nothing depends on initdb's defaults.
        with open(os.path.join(self.data_dir, "pg_hba.conf"), "w") as f:
            f.write("# pgboot test harness: trust the socket (admin), scram over TCP\n"
                    "local all all trust\n"
                    "host  all all 127.0.0.1/32 scram-sha-256\n"
                    "host  all all ::1/128 scram-sha-256\n")
        return self

    def start(self, wait=True, timeout=60):
        """pg_ctl start. wait=False returns at once (-W): the caller detects readiness itself."""
        args = ["-D", self.data_dir, "-l", self.log_file]
        args += ["-w", "-t", str(timeout)] if wait else ["-W"]
        self._pg("pg_ctl", *args, "start", timeout=timeout + 30)
        return self

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def is_running(self):
        pid = self.postmaster_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def stop(self):
        """Fast shutdown, then immediate, then SIGKILL of the postmaster. Never raises."""
        if not os.path.isdir(self.data_dir):
            return
        for mode in ("fast", "immediate"):
            if not self.is_running():
                return
            try:
                p = self._pg("pg_ctl", "-D", self.data_dir, "-m", mode, "-w", "-t", "20",
                             "stop", check=False, timeout=40)
                if p.returncode == 0:
                    return
            except (subprocess.SubprocessError, OSError):
                pass
        pid = self.postmaster_pid()
        if pid and self.is_running():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            for _ in range(100):
                if not self.is_running():
                    break
                time.sleep(0.05)

    def destroy(self):
        """stop() and remove the whole directory. Never raises."""
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    # ---- connecting -------------------------------------------------------

    def url(self, db="postgres", user=None, password=None, host=None, port=None):
        """postgresql:// URI over TCP (scram), percent-encoded."""
        q = lambda s: urllib.parse.quote(str(s), safe="")
        user = self.user if user is None else user
        password = self.password if password is None else password
        return "postgresql://%s:%s@%s:%s/%s" % (q(user), q(password), host or self.host,
                                                port or self.port, q(db))

    def psql(self, sql, db="postgres", check=True, timeout=60):
        """Runs SQL as the superuser over the socket (trust); returns stdout."""
        cmd = [os.path.join(self.bin_dir, "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
               "-h", self.socket_dir, "-p", str(self.port), "-U", self.user, "-d", db, "-f", "-"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGCONNECT_TIMEOUT": "10"}
        p = subprocess.run(cmd, input=sql, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=env, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError("psql failed (exit %d) on %r:\n%s" % (p.returncode, sql, p.stderr))
        return p.stdout

    def tcp_login_ok(self, db="postgres", timeout=5):
        """True when a password (scram) login over TCP answers SELECT 1."""
        cmd = [os.path.join(self.bin_dir, "psql"), "-X", "-A", "-t", "-c", "select 1",
               "host=%s port=%d user=%s dbname=%s" % (self.host, self.port, self.user, db)]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGPASSWORD": self.password,
               "PGCONNECT_TIMEOUT": str(timeout)}
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env, timeout=timeout + 5)
        return p.returncode == 0 and p.stdout.strip() == "1"

    def info(self, ready):
        return {
            "host": self.host, "port": self.port, "user": self.user, "password": self.password,
            "socket_dir": self.socket_dir, "data_dir": self.data_dir, "log_file": self.log_file,
            "bin_dir": self.bin_dir, "base_dir": self.base_dir, "run_as": self.run_as,
            "postmaster_pid": self.postmaster_pid(),
            "url": "postgresql://%s:%s@%s:%d/{db}" % (
                urllib.parse.quote(self.user, safe=""), urllib.parse.quote(self.password, safe=""),
                self.host, self.port),
            "ready": ready,
        }


# ---- the CTest fixture --------------------------------------------------------

def _state_path(state_dir):
    return os.path.join(state_dir, STATE_FILE)


def _write_state(state_dir, info):
    tmp = _state_path(state_dir) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    os.replace(tmp, _state_path(state_dir))


def stop(state_dir):
    path = _state_path(state_dir)
    try:
        with open(path) as f:
            info = json.load(f)
    except FileNotFoundError:
        print("cluster stop: no %s, nothing to stop" % path)
        return 0
    except (OSError, ValueError) as e:
        print("cluster stop: unreadable %s (%s); removing it" % (path, e))
        os.unlink(path)
        return 0
    base = info.get("base_dir")
    if base and os.path.isdir(base):
        Cluster.from_info(info).destroy()
        print("cluster stop: stopped the server on port %s (if it ran) and removed %s"
              % (info.get("port"), base))
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return 0


def start(state_dir):
    os.makedirs(state_dir, exist_ok=True)
    if os.path.exists(_state_path(state_dir)):
        print("cluster start: a previous run left %s; stopping that server first"
              % _state_path(state_dir))
        stop(state_dir)
    last_error = None
    for attempt in range(3):  # the free port can be taken between probe and bind
        cluster = Cluster()
        # Record the directory before anything can fail, so `stop` can clean up.
        _write_state(state_dir, cluster.info(ready=False))
        try:
            t0 = time.monotonic()
            cluster.init()
            cluster.start(wait=True)
            if not cluster.tcp_login_ok():
                raise RuntimeError("the server started but a scram login over TCP failed"
                                   + cluster._log_tail())
            version = cluster.psql("select current_setting('server_version')").strip()
            _write_state(state_dir, cluster.info(ready=True))
            print("cluster start: PostgreSQL %s on 127.0.0.1:%d (socket %s), ready in %.1fs; "
                  "state in %s" % (version, cluster.port, cluster.socket_dir,
                                   time.monotonic() - t0, _state_path(state_dir)))
            return 0
        except Exception as e:  # noqa: BLE001 - report, clean up, retry on a new port
            last_error = e
            print("cluster start: attempt %d failed: %s" % (attempt + 1, e), file=sys.stderr)
            stop(state_dir)
    print("cluster start: giving up: %s" % last_error, file=sys.stderr)
    return 1


def main(argv):
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print("usage: python3 -m harness.cluster start|stop STATE_DIR", file=sys.stderr)
        return 2
    return start(argv[2]) if argv[1] == "start" else stop(argv[2])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
