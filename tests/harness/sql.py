"""SQL as the superuser and what tests read back from a database: literals,
one value, whether a table exists, pgboot's history and audit rows, locks and
sessions, and a psql session kept open (to hold locks and transactions).

Every function takes the database name first and runs over the shared server's
Unix socket (see server.py), trusted, so it works whatever pgboot did to roles.
"""

import json
import os
import subprocess

from harness.proc import LineReader


def _pg():
    from harness.server import pg  # server imports this module: resolve at call time
    return pg()


def admin_sql(sql, db="postgres", check=True):
    """Runs SQL (one or many statements) as the superuser over the Unix socket with
    `psql -X -A -t -v ON_ERROR_STOP=1`; returns stdout (rows '|'-separated).
    Raises RuntimeError with psql's stderr when a statement fails and check is true."""
    info = _pg()
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
    """An SQL identifier, double-quoted."""
    return '"' + name.replace('"', '""') + '"'



def lit(s):
    """An SQL string literal (single quotes doubled)."""
    return "'" + str(s).replace("'", "''") + "'"


def q1(db, sql):
    """First column of the first row, as text ('' when no row)."""
    return admin_sql(sql, db).strip()


def table_exists(db, name):
    """to_regclass(name) IS NOT NULL; name may be schema-qualified."""
    return q1(db, "SELECT to_regclass(%s) IS NOT NULL" % lit(name)) == "t"


def history(db, table="public.pgboot_history"):
    """{version: status} of the history table ({} when it does not exist)."""
    if not table_exists(db, table):
        return {}
    out = {}
    for line in admin_sql("SELECT version, status FROM %s" % table, db).split():
        v, s = line.split("|")
        out[v] = s
    return out


def history_rows(db, table="public.pgboot_history"):
    """{version: (status, batch, execution_ms)} of the history table, batch an int and
    execution_ms text ('' for NULL); {} when the table does not exist."""
    if not table_exists(db, table):
        return {}
    out = {}
    for line in admin_sql("SELECT version, status, batch, coalesce(execution_ms::text, '') "
                          "FROM %s" % table, db).split():
        v, s, b, ms = line.split("|")
        out[v] = (s, int(b), ms)
    return out


def audit(db, table="public.pgboot_history_log"):
    """[(event, version, detail dict)] in id order ([] when there is no table)."""
    if not table_exists(db, table):
        return []
    rows = []
    for line in admin_sql("SELECT event, coalesce(version, ''), detail::text FROM %s ORDER BY id"
                          % table, db).splitlines():
        if line:
            e, v, d = line.split("|", 2)
            rows.append((e, v, json.loads(d)))
    return rows


def tables(db, prefix, schema="public"):
    """Sorted names of the tables in `schema` whose name starts with `prefix`."""
    return sorted(admin_sql("SELECT tablename FROM pg_tables WHERE schemaname = %s AND "
                            "tablename LIKE %s" % (lit(schema), lit(prefix + "%")), db).split())


def advisory_locks(db):
    """Advisory locks held or awaited in `db` (any session)."""
    return int(q1(db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                      "(SELECT oid FROM pg_database WHERE datname = current_database())"))


def backends_running(db, needle):
    """Sessions of `db` whose current query contains `needle` and that are active."""
    return int(q1(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                      "AND pid <> pg_backend_pid() AND state = 'active' AND position(%s in query) > 0"
                  % lit(needle)))


class PsqlSession:
    """A psql process kept open (stdin pipe): holds locks, transactions and advisory locks
    for a test, and is closed by the test's cleanup. It logs in as the superuser over the
    shared server's socket, or with `url` (e.g. through a PgBouncer) when given."""

    def __init__(self, test, db, appname="pgboot-test-holder", url=None):
        info = _pg()
        cmd = [os.path.join(info["bin_dir"], "psql"), "-X", "-A", "-t", "-q",
               "-v", "ON_ERROR_STOP=1"]
        cmd += [url] if url else ["-h", info["socket_dir"], "-p", str(info["port"]),
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

