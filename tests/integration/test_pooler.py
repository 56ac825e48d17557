#!/usr/bin/env python3
"""pgboot behind a real PgBouncer 1.18 in its default configuration (docs/pooler.md).

Connecting (nothing in the startup packet that PgBouncer refuses, its 08P01
errors classified by message), the lock-mode verdict (`lock.mode`), the
settings of each mode (SET after connecting in session mode, SET LOCAL in each
transaction in transaction mode) and PGBOOT_DATABASE_URL (pooled URL for the
app, direct URL for pgboot).
"""

import os
import unittest

from harness.pgbouncer import PGBOUNCER, start_pgbouncer
from harness.case import PgbootTestCase, skip_loudly, time_limit
from harness.files import temp_dir, temp_migrations, up
from harness.logs import events
from harness.proc import run
from harness.server import closed_url, conninfo, new_database, url
from harness.sql import admin_sql


class PoolerCase(PgbootTestCase):
    pool_mode = "transaction"
    pool_size = 5

    def setUp(self):
        if not os.access(PGBOUNCER, os.X_OK):
            skip_loudly(self, "pgbouncer is not installed (scripts/setup.sh installs it)")
        self.db = new_database(self)
        self.bouncer = start_pgbouncer(self, pool_mode=self.pool_mode,
                                       default_pool_size=self.pool_size)
        self.pooled = self.bouncer.url(self.db)
        self.direct = url(self.db)

    def pgboot(self, args, env=None, **kw):
        e = {"PGBOOT_WAIT_TIMEOUT": "10s"}
        e.update(env or {})
        return run(args, env=e, **kw)

    def lock_mode(self, cp):
        modes = events(cp.stderr, "lock.mode")
        self.assertEqual(len(modes), 1, cp.stderr)
        return modes[0]


class ConnectTest(PoolerCase):
    def test_default_pgbouncer_accepts_pgboot(self):
        # Before 0.2 pgboot sent `options` and PgBouncer answered "unsupported
        # startup parameter: options" until --wait-timeout.
        cp = self.pgboot(["wait"], env={"DATABASE_URL": self.pooled})
        self.assertExit(cp, 0)
        self.assertNotIn("unsupported startup parameter", cp.stderr)
        self.assertLess(cp.elapsed, time_limit(5), cp.stderr)

    def test_wrong_password_through_the_pooler_is_exit_4_at_once(self):
        cp = self.pgboot(["wait"], env={"DATABASE_URL": self.bouncer.url(self.db, password="nope"),
                                        "PGBOOT_WAIT_TIMEOUT": "30s"})
        self.assertExit(cp, 4)
        self.assertLess(cp.elapsed, time_limit(3), cp.stderr)
        self.assertIn("password authentication failed", cp.stderr)
        self.assertNoPassword(cp.stderr, "nope")

    def test_unknown_user_through_the_pooler_is_exit_4_at_once(self):
        cp = self.pgboot(["wait"], env={"DATABASE_URL": self.bouncer.url(self.db, user="ghost"),
                                        "PGBOOT_WAIT_TIMEOUT": "30s"})
        self.assertExit(cp, 4)
        self.assertLess(cp.elapsed, time_limit(3), cp.stderr)

    def test_unreachable_pooler_is_retried_and_named(self):
        cp = self.pgboot(["wait"], env={"DATABASE_URL": closed_url(self.db),
                                        "PGBOOT_WAIT_TIMEOUT": "1s"})
        self.assertExit(cp, 3)
        self.assertIn("Connection refused", cp.stderr)

    def test_users_own_options_still_reach_the_server_directly(self):
        # The user's `options` is the user's choice: sent as given (here to the server).
        mig = temp_migrations(self, {"1_t.sql": up(
            "CREATE TABLE seen AS SELECT current_setting('work_mem') AS wm;")})
        cp = self.pgboot(["migrate", "--migrations-dir", mig],
                         env={"DATABASE_URL": conninfo(self.db, options="-c work_mem=7MB")})
        self.assertExit(cp, 0)
        self.assertEqual(admin_sql("SELECT wm FROM seen", self.db).strip(), "7MB")


class VerdictTest(PoolerCase):
    def test_auto_says_transaction_through_transaction_pooling(self):
        cp = self.pgboot(["wait"], env={"DATABASE_URL": self.pooled})
        self.assertExit(cp, 0)
        ev = self.lock_mode(cp)
        self.assertEqual(ev["mode"], "transaction")
        self.assertIn("pooler", ev["reason"])

    def test_auto_says_session_on_a_direct_connection(self):
        cp = self.pgboot(["wait"], env={"DATABASE_URL": self.direct})
        self.assertExit(cp, 0)
        ev = self.lock_mode(cp)
        self.assertEqual(ev["mode"], "session")
        self.assertIn("direct", ev["reason"])

    def test_session_through_a_pooler_is_the_users_choice_with_a_warning(self):
        cp = self.pgboot(["wait", "--lock-mode", "session"], env={"DATABASE_URL": self.pooled})
        self.assertExit(cp, 0)
        ev = self.lock_mode(cp)
        self.assertEqual(ev["mode"], "session")
        self.assertEqual(ev["level"].lower(), "warn")
        self.assertIn("--lock-mode session", ev["reason"])

    def test_transaction_on_a_direct_connection_when_asked(self):
        cp = self.pgboot(["wait"], env={"DATABASE_URL": self.direct,
                                        "PGBOOT_LOCK_MODE": "transaction"})
        self.assertExit(cp, 0)
        self.assertEqual(self.lock_mode(cp)["mode"], "transaction")

    def test_another_lock_mode_is_exit_2_naming_it(self):
        cp = self.pgboot(["wait", "--lock-mode", "pooled"], env={"DATABASE_URL": self.direct})
        self.assertExit(cp, 2)
        self.assertIn("pooled", cp.stderr)
        self.assertIn("--lock-mode", cp.stderr)


class SessionPoolingVerdictTest(PoolerCase):
    pool_mode = "session"

    def test_auto_says_transaction_through_session_pooling_too(self):
        # The check cannot tell session from transaction pooling: pooled is pooled.
        cp = self.pgboot(["wait"], env={"DATABASE_URL": self.pooled})
        self.assertExit(cp, 0)
        self.assertEqual(self.lock_mode(cp)["mode"], "transaction")


class DirectUrlTest(PoolerCase):
    def test_pgboot_database_url_wins_and_the_app_keeps_database_url(self):
        mig = temp_migrations(self, {"1_t.sql": up("CREATE TABLE t (id int);")})
        cp = self.pgboot(["--migrations-dir", mig, "--", "/bin/sh", "-c",
                          'echo "app sees $DATABASE_URL"'],
                         env={"DATABASE_URL": self.pooled, "PGBOOT_DATABASE_URL": self.direct,
                              "RUN_MIGRATIONS": "true"})
        self.assertExit(cp, 0)
        self.assertEqual(self.lock_mode(cp)["mode"], "session")
        self.assertIn("app sees " + self.pooled, cp.stdout)

    def test_pgboot_database_url_file(self):
        d = temp_dir(self)
        d.write("direct", self.direct + "\n")
        cp = self.pgboot(["wait"], env={"DATABASE_URL": self.pooled,
                                        "PGBOOT_DATABASE_URL_FILE": d / "direct"})
        self.assertExit(cp, 0)
        self.assertEqual(self.lock_mode(cp)["mode"], "session")

    def test_a_variable_and_its_file_both_set_is_exit_2(self):
        d = temp_dir(self)
        d.write("direct", self.direct + "\n")
        cp = self.pgboot(["wait"], env={"PGBOOT_DATABASE_URL": self.direct,
                                        "PGBOOT_DATABASE_URL_FILE": d / "direct"})
        self.assertExit(cp, 2)
        self.assertIn("PGBOOT_DATABASE_URL_FILE", cp.stderr)


class SettingsTest(PoolerCase):
    """standard_conforming_strings and client_connection_check_interval reach the
    statements of a migration in both modes, on a database whose default is off."""

    def setUp(self):
        super().setUp()
        admin_sql("ALTER DATABASE %s SET standard_conforming_strings = off" % self.db)
        self.mig = temp_migrations(self, {"1_seen.sql": up(
            "CREATE TABLE seen AS SELECT current_setting('standard_conforming_strings') AS scs, "
            "current_setting('client_connection_check_interval') AS ccci, '\\x' AS backslash;")})

    def seen(self):
        return admin_sql("SELECT scs || ' ' || ccci || ' ' || backslash FROM seen", self.db).strip()

    def test_session_mode_sets_them_after_connecting(self):
        cp = self.pgboot(["migrate", "--migrations-dir", self.mig], env={"DATABASE_URL": self.direct})
        self.assertExit(cp, 0)
        self.assertEqual(self.lock_mode(cp)["mode"], "session")
        self.assertEqual(self.seen(), "on 1s \\x")


if __name__ == "__main__":
    unittest.main()
