"""A real PgBouncer 1.18 (Debian `pgbouncer`) in front of a PostgreSQL server, for tests.

    b = new_bouncer(test, server, pool_mode="transaction", pool_size=1)
    b.url(db)             # postgresql://user:password@127.0.0.1:PORT/db through the pooler
    b.show_pools(db)      # SHOW POOLS on the admin console, rows as dicts (cl_waiting, ...)
    b.restart()           # SIGTERM (immediate shutdown: every client dropped), start again
    b.stop()

`server` is a dict with host, port, user, password (the shared server's pg.json,
or a second cluster's attributes). PgBouncer refuses to run as root, so as root
it runs as `postgres` (runuser), in a temporary directory owned by it, with a
generated ini and a plain auth file; it listens on 127.0.0.1 on a free port and
on no Unix socket. Its configuration is PgBouncer's default but for what a
fixture must set: no `ignore_startup_parameters`, so a client sending `options`
is refused as it would be in production.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse

PGBOUNCER = os.environ.get("PGBOOT_PGBOUNCER", "/usr/sbin/pgbouncer")
PSQL = os.path.join(os.environ.get("PGBOOT_PG_BIN_DIR", "/usr/lib/postgresql/15/bin"), "psql")


def available():
    """Whether the pgbouncer binary exists (scripts/setup.sh installs it)."""
    return os.access(PGBOUNCER, os.X_OK)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _q(s):
    return urllib.parse.quote(str(s), safe="")


class Bouncer:
    def __init__(self, server, pool_mode="transaction", pool_size=5, extra=None):
        self.server = server
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        self.extra = dict(extra or {})
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.user = server["user"]
        self.password = server["password"]
        self.run_as = "postgres" if os.geteuid() == 0 else None
        self.dir = tempfile.mkdtemp(prefix="pgboot-bouncer-")
        self.ini = os.path.join(self.dir, "pgbouncer.ini")
        self.log_file = os.path.join(self.dir, "pgbouncer.log")
        self.pid_file = os.path.join(self.dir, "pgbouncer.pid")
        self._write_config()

    def _write_config(self):
        auth = os.path.join(self.dir, "users.txt")
        with open(auth, "w") as f:
            f.write('"%s" "%s"\n' % (self.user.replace('"', '""'),
                                     self.password.replace('"', '""')))
        settings = {
            "listen_addr": self.host,
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "auth_type": "plain",
            "auth_file": auth,
            "admin_users": self.user,
            "pool_mode": self.pool_mode,
            "default_pool_size": str(self.pool_size),
            "max_client_conn": "200",
            "logfile": self.log_file,
            "pidfile": self.pid_file,
        }
        settings.update(self.extra)
        with open(self.ini, "w") as f:
            f.write("[databases]\n* = host=%s port=%s\n\n[pgbouncer]\n"
                    % (self.server["host"], self.server["port"]))
            for k, v in settings.items():
                f.write("%s = %s\n" % (k, v))
        os.chmod(self.dir, 0o755)
        os.chmod(auth, 0o600)
        if self.run_as:
            for p in (self.dir, self.ini, auth):
                shutil.chown(p, user=self.run_as, group=self.run_as)

    def _cmd(self, cmd):
        return (["runuser", "-u", self.run_as, "--"] + cmd) if self.run_as else cmd

    def pid(self):
        try:
            with open(self.pid_file) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def _alive(self, pid):
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def start(self, timeout=20):
        """Starts PgBouncer daemonized (-d) and waits until its port accepts connections."""
        p = subprocess.run(self._cmd([PGBOUNCER, "-d", self.ini]), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError("pgbouncer failed to start (exit %d): %s\n%s"
                               % (p.returncode, p.stdout, self.log_tail()))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("pgbouncer did not listen on %d within %ds\n%s"
                           % (self.port, timeout, self.log_tail()))

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """SIGTERM (immediate shutdown) by the pid in its pidfile; waits until it is gone.
        Never raises."""
        pid = self.pid()
        if pid is None or not self._alive(pid):
            return
        try:
            os.kill(pid, sig)
        except OSError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._alive(pid):
            time.sleep(0.02)
        if self._alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        # The port must be free again before a restart binds it.
        while time.monotonic() < deadline + 5:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    time.sleep(0.02)
            except OSError:
                return

    def restart(self):
        """Drops every client and server connection at once, then serves again on the same port."""
        self.stop()
        try:
            os.unlink(self.pid_file)
        except OSError:
            pass
        return self.start()

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, db, user=None, password=None, params=None):
        user = self.user if user is None else user
        password = self.password if password is None else password
        u = "postgresql://%s:%s@%s:%d/%s" % (_q(user), _q(password), self.host, self.port, _q(db))
        if params:
            u += "?" + urllib.parse.urlencode(params)
        return u

    def admin(self, command):
        """Runs a command on the admin console (database `pgbouncer`); rows as dicts."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGPASSWORD": self.password,
               "PGCONNECT_TIMEOUT": "5"}
        p = subprocess.run([PSQL, "-X", "-A", "-F", "\t", "-P", "footer=off", "-c", command,
                            "host=%s port=%d user=%s dbname=pgbouncer"
                            % (self.host, self.port, self.user)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                           timeout=10)
        if p.returncode != 0:
            raise RuntimeError("pgbouncer admin %r failed: %s" % (command, p.stderr))
        lines = [l for l in p.stdout.splitlines() if l]
        if not lines:
            return []
        header = lines[0].split("\t")
        return [dict(zip(header, l.split("\t"))) for l in lines[1:]]

    def show_pools(self, db=None):
        rows = self.admin("SHOW POOLS")
        return [r for r in rows if db is None or r.get("database") == db]

    def log_tail(self, n=30):
        try:
            with open(self.log_file, errors="replace") as f:
                return "--- %s (tail) ---\n%s" % (self.log_file, "".join(f.readlines()[-n:]))
        except OSError:
            return ""


def new_bouncer(test, server, pool_mode="transaction", pool_size=5, extra=None):
    """Starts a PgBouncer in front of `server`; with a TestCase, addCleanup stops it and
    removes its directory (pass None to own the cleanup, e.g. in setUpClass)."""
    b = Bouncer(server, pool_mode=pool_mode, pool_size=pool_size, extra=extra)
    if test is not None:
        test.addCleanup(b.destroy)
    try:
        b.start()
    except Exception:
        if test is None:
            b.destroy()
        raise
    return b
