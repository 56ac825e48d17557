"""A real PgBouncer (Debian's 1.18, /usr/sbin/pgbouncer) in front of the shared server (or of a cluster of your own).

    bouncer = start_pgbouncer(self, pool_mode="transaction", default_pool_size=1)
    run(["migrate", "--database-url", bouncer.url(db)], ...)
    bouncer.cl_waiting(db)      # clients queued for a server connection (SHOW POOLS)

PgBouncer refuses to run as root, so as root it runs as `postgres` (runuser), like the
server. It listens on 127.0.0.1 on a free port, without a Unix socket, with
`auth_type = plain` and an auth_file holding the shared server's superuser (and any
`users` given), and routes every database name to the same database of the shared
server (`* = host=... port=...`). The admin console (database `pgbouncer`) is open to
ADMIN_USER. It is stopped by the pid in its pidfile by the test's cleanup, also when the
test fails, and at exit.

Note: with these defaults PgBouncer refuses a startup packet that carries `options`
("unsupported startup parameter: options"); `extra=["ignore_startup_parameters =
options"]` is how a test allows it.
"""

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time

from harness.server import BIN_DIR, PASSWORD, USER, free_port, pg, url as _server_url

PGBOUNCER = os.environ.get("PGBOOT_PGBOUNCER", "/usr/sbin/pgbouncer")
ADMIN_USER = "pgbouncer_admin"
ADMIN_PASSWORD = "Adm1n-Pw!"


def _quote(s):
    return '"' + str(s).replace('"', '""') + '"'


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


class PgBouncer:
    """One PgBouncer process: start(), stop(), restart(), url(), show_pools()."""

    def __init__(self, pool_mode="transaction", default_pool_size=1, extra=(), users=None,
                 backend=None):
        self.pool_mode = pool_mode
        self.default_pool_size = default_pool_size
        self.extra = list(extra)
        self.backend = backend
        self.users = {backend.user: backend.password} if backend else {USER: PASSWORD}
        self.users.update(users or {})
        self.run_as = "postgres" if os.geteuid() == 0 else None
        self.host = "127.0.0.1"
        self.port = None
        self.dir = tempfile.mkdtemp(prefix="pgboot-pgbouncer-")
        os.chmod(self.dir, 0o755)
        self.ini = os.path.join(self.dir, "pgbouncer.ini")
        self.auth_file = os.path.join(self.dir, "userlist.txt")
        self.log_file = os.path.join(self.dir, "pgbouncer.log")
        self.pid_file = os.path.join(self.dir, "pgbouncer.pid")
        if self.run_as:
            shutil.chown(self.dir, user=self.run_as, group=self.run_as)
        atexit.register(self.destroy)

    # ---- files ---------------------------------------------------------------

    def _write(self, path, text, mode=0o600):
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        if self.run_as:
            shutil.chown(path, user=self.run_as, group=self.run_as)

    def _write_config(self):
        if self.backend is not None:
            target = (self.backend.host, self.backend.port)
        else:
            target = (pg()["host"], pg()["port"])
        users = dict(self.users)
        users[ADMIN_USER] = ADMIN_PASSWORD
        self._write(self.auth_file, "".join("%s %s\n" % (_quote(u), _quote(p))
                                            for u, p in users.items()))
        lines = ["[databases]",
                 "* = host=%s port=%s" % target,
                 "",
                 "[pgbouncer]",
                 "listen_addr = %s" % self.host,
                 "listen_port = %d" % self.port,
                 "unix_socket_dir =",
                 "auth_type = plain",
                 "auth_file = %s" % self.auth_file,
                 "admin_users = %s" % ADMIN_USER,
                 "pool_mode = %s" % self.pool_mode,
                 "default_pool_size = %d" % self.default_pool_size,
                 "logfile = %s" % self.log_file,
                 "pidfile = %s" % self.pid_file]
        self._write(self.ini, "\n".join(lines + self.extra) + "\n", mode=0o644)

    # ---- lifecycle -----------------------------------------------------------

    def pid(self):
        """The pid in the pidfile, or None."""
        try:
            with open(self.pid_file) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def is_running(self):
        pid = self.pid()
        return pid is not None and _alive(pid)

    def log(self):
        try:
            with open(self.log_file, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _admin_login_ok(self):
        return self._psql_admin("SHOW VERSION", check=False).returncode == 0

    def start(self, timeout=20):
        """Writes the ini (on a new free port unless it has one) and starts PgBouncer
        daemonized (-d); returns once its admin console answers. RuntimeError with its
        log when it does not."""
        if self.port is None:
            self.port = free_port()
        self._write_config()
        cmd = [PGBOUNCER, "-d", self.ini]
        if self.run_as:
            cmd = ["runuser", "-u", self.run_as, "--"] + cmd
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=timeout, cwd=self.dir)
        if p.returncode != 0:
            raise RuntimeError("%s failed (exit %d):\n%s\n--- %s ---\n%s"
                               % (" ".join(cmd), p.returncode, p.stdout, self.log_file, self.log()))
        deadline = time.monotonic() + timeout
        while not (self.is_running() and self._admin_login_ok()):
            if time.monotonic() > deadline:
                raise RuntimeError("pgbouncer on port %d did not answer within %ss:\n%s"
                                   % (self.port, timeout, self.log()))
            time.sleep(0.02)
        return self

    def stop(self, timeout=10):
        """SIGTERM to the pid in the pidfile (immediate shutdown), SIGKILL if it lingers;
        returns once the process is gone. Never raises."""
        pid = self.pid()
        if pid is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not _alive(pid):
                break
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.01)
        try:
            os.unlink(self.pid_file)  # a SIGKILLed pgbouncer leaves it behind
        except OSError:
            pass

    def restart(self):
        """stop() and start() on the same port: every client and server connection is cut."""
        self.stop()
        return self.start()

    def destroy(self):
        """stop() and remove its directory. Never raises."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- connecting ----------------------------------------------------------

    def url(self, db="postgres", user=None, password=None, params=None):
        """postgresql:// URI of `db` through PgBouncer (default: the backend's superuser)."""
        if self.backend is not None:
            user = self.backend.user if user is None else user
            password = self.backend.password if password is None else password
        return _server_url(db, user=user, password=password, host=self.host, port=self.port,
                           params=params)

    def _psql_admin(self, sql, check=True):
        cmd = [os.path.join(BIN_DIR, "psql"), "-X", "-A", "-F", "\t", "-P", "footer=off",
               "-c", sql, "host=%s port=%d dbname=pgbouncer user=%s"
               % (self.host, self.port, ADMIN_USER)]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGPASSWORD": ADMIN_PASSWORD,
               "PGCONNECT_TIMEOUT": "5"}
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env, timeout=30)
        if check and p.returncode != 0:
            raise RuntimeError("pgbouncer admin console: %s failed (exit %d): %s\n%s"
                               % (sql, p.returncode, p.stderr, self.log()[-3000:]))
        return p

    def admin(self, command):
        """A command on the admin console (SHOW ..., RELOAD, PAUSE ...): rows as dicts."""
        lines = self._psql_admin(command).stdout.splitlines()
        if not lines:
            return []
        header = lines[0].split("\t")
        return [dict(zip(header, line.split("\t"))) for line in lines[1:]]

    def show_pools(self):
        """SHOW POOLS: one dict per (database, user) pool, values as text."""
        return self.admin("SHOW POOLS")

    def cl_waiting(self, db, user=None):
        """Clients of `db` (and `user`, if given) waiting for a server connection."""
        return sum(int(row["cl_waiting"]) for row in self.show_pools()
                   if row["database"] == db and (user is None or row["user"] == user))


def start_pgbouncer(test, pool_mode="transaction", default_pool_size=1, extra=(), users=None,
                    backend=None):
    """A started PgBouncer (see PgBouncer) that test.addCleanup stops and removes (test=None:
    call destroy() yourself; it also runs at exit). `extra` lines go to [pgbouncer];
    `users` ({name: password}) are added to the auth_file beside the superuser. `backend`
    (a cluster from server.new_cluster(), started or not) replaces the shared server, e.g.
    to stop the server behind a running PgBouncer."""
    for attempt in range(3):  # the free port can be taken between probe and bind
        bouncer = PgBouncer(pool_mode, default_pool_size, extra, users, backend)
        try:
            bouncer.start()
        except RuntimeError:
            bouncer.destroy()
            if attempt == 2:
                raise
            continue
        if test is not None:
            test.addCleanup(bouncer.destroy)
        return bouncer
