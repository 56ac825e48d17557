"""The shared PostgreSQL server of a CTest run (the pg fixture, see cluster.py):
who it is, URLs to it, throw-away databases and roles on it, and a second cluster.

Suites import names from here, e.g. `from harness.server import new_database, url`.
"""

import json
import os
import sys
import urllib.parse
import uuid

from harness import cluster as _cluster
from harness.sql import admin_sql, quote_ident

USER = _cluster.USER
PASSWORD = _cluster.PASSWORD
BIN_DIR = _cluster.BIN_DIR

_pg_info = None


def pg():
    """The shared server's pg.json (host, port, user, password, socket_dir, data_dir,
    log_file, bin_dir, base_dir, url template). Fails loudly when there is none."""
    global _pg_info
    if _pg_info is None:
        state = os.environ.get("PGBOOT_TEST_STATE")
        if not state:
            raise RuntimeError("PGBOOT_TEST_STATE is not set: run the suite through ctest, or "
                               "start a server with `PYTHONPATH=tests python3 -m harness.cluster start DIR` and "
                               "export PGBOOT_TEST_STATE=DIR")
        path = os.path.join(state, _cluster.STATE_FILE)
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
    return _cluster.free_port()


def closed_url(db="postgres", password=None):
    """A URL to a port where nothing listens (connection refused at once)."""
    return url(db, password=password, port=free_port())


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


class TestCluster(_cluster.Cluster):
    """A throw-away cluster (cluster.Cluster) with the shared server's auth setup and
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

