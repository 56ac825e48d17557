#!/usr/bin/env python3
"""--metrics-file against a real PostgreSQL 15 (docs/reference.md, "Metrics").

Every file a run writes is checked by `promtool check metrics` (Debian package
prometheus) and parsed, and its values are asserted: after success, a failing
migration, a lock timeout, a wrong password (exit 4), an unreachable server
(exit 3), in run mode before exec (APP reads the file), after an exec failure,
and for status. A path in a missing directory is a warning, never another exit
code.
"""

import os
import re
import shutil
import subprocess
import time
import unittest

from harness.case import PgbootTestCase, skip_loudly
from harness.files import temp_dir, temp_migrations, up
from harness.logs import events
from harness.pgbouncer import PGBOUNCER, start_pgbouncer
from harness.proc import run
from harness.server import closed_url, new_database, url
from harness.sql import PsqlSession

KEY_SQL = ("hashtextextended('pgboot:' || quote_ident('public') || '.' || "
           "quote_ident('pgboot_history'), 0)")

GAUGES = ["pgboot_info", "pgboot_last_run_success", "pgboot_last_run_timestamp_seconds",
          "pgboot_last_run_exit_code", "pgboot_wait_seconds", "pgboot_lock_wait_seconds",
          "pgboot_migrations_applied", "pgboot_migrations_pending",
          "pgboot_migration_duration_seconds"]

SAMPLE = re.compile(r'^([a-z_]+)(?:\{([a-z_]+)="((?:[^"\\]|\\.)*)"\})? (\S+)$')


class MetricsTest(PgbootTestCase):
    @classmethod
    def setUpClass(cls):
        if shutil.which("promtool") is None:
            raise AssertionError("promtool is missing: scripts/setup.sh installs prometheus")

    def setUp(self):
        self.dir = temp_dir(self)
        self.path = os.path.join(str(self.dir), "pgboot.prom")

    def pgboot(self, *args, db=None, u=None, env=None):
        e = {"PGBOOT_METRICS_FILE": self.path, "PGBOOT_WAIT_TIMEOUT": "10s"}
        if u is not None or db is not None:
            e["DATABASE_URL"] = u if u is not None else url(db)
        e.update(env or {})
        return run([str(a) for a in args], env=e, timeout=60)

    def read(self, text=None):
        """promtool-checked samples of the file (or `text`): {(name, label): value}."""
        if text is None:
            self.assertFalse(os.path.exists(self.path + ".tmp"), "PATH.tmp left behind")
            with open(self.path) as f:
                text = f.read()
        check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                               capture_output=True, timeout=30)
        self.assertEqual(check.returncode, 0, "promtool: %s%s\n%s" % (check.stdout, check.stderr,
                                                                      text))
        samples = {}
        for family in GAUGES:  # every family, whether or not it has a sample
            self.assertIn("# HELP %s " % family, text)
            self.assertIn("# TYPE %s gauge\n" % family, text)
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            m = SAMPLE.match(line)
            self.assertIsNotNone(m, "unparsed line %r" % line)
            samples[(m.group(1), m.group(3))] = float(m.group(4))
        return samples

    def assertOutcome(self, s, code, applied, pending, before):
        self.assertEqual(s[("pgboot_last_run_exit_code", None)], code)
        self.assertEqual(s[("pgboot_last_run_success", None)], 1 if code == 0 else 0)
        self.assertEqual(s[("pgboot_migrations_applied", None)], applied)
        self.assertEqual(s.get(("pgboot_migrations_pending", None)), pending)
        ts = s[("pgboot_last_run_timestamp_seconds", None)]
        self.assertGreaterEqual(ts, before - 1)  # the wall clock, to the millisecond
        self.assertLessEqual(ts, time.time() + 1)

    def durations(self, s):
        return {label: v for (name, label), v in s.items()
                if name == "pgboot_migration_duration_seconds"}

    def test_success_then_nothing_to_do_then_a_target(self):
        db = new_database(self, "met")
        mig = temp_migrations(self, {"1_a.sql": up("CREATE TABLE a (id int);\n"),
                                     "002_b.sql": up("SELECT pg_sleep(0.3);\n")})
        before = time.time()
        cp = self.pgboot("migrate", "--migrations-dir", mig, db=db)
        self.assertExit(cp, 0)
        s = self.read()
        self.assertOutcome(s, 0, 2, 0, before)
        version = self.pgboot("version").stdout.split()[1]
        self.assertEqual(s[("pgboot_info", version)], 1)
        d = self.durations(s)
        self.assertEqual(sorted(d), ["1", "2"])  # canonical versions
        self.assertGreaterEqual(d["2"], 0.3)
        self.assertLess(d["1"], 30)
        self.assertLess(s[("pgboot_lock_wait_seconds", None)], 5)
        self.assertLess(s[("pgboot_wait_seconds", None)], 10)

        cp = self.pgboot("migrate", "--migrations-dir", mig, db=db)
        self.assertExit(cp, 0)
        s = self.read()
        self.assertOutcome(s, 0, 0, 0, before)
        self.assertEqual(self.durations(s), {})
        self.assertEqual(s[("pgboot_lock_wait_seconds", None)], 0)  # nothing to do: no lock

        with open(os.path.join(str(mig), "3_c.sql"), "w") as f:
            f.write(up("SELECT 3;\n"))
        with open(os.path.join(str(mig), "4_d.sql"), "w") as f:
            f.write(up("SELECT 4;\n"))
        cp = self.pgboot("migrate", "--migrations-dir", mig, "--target", "3", db=db)
        self.assertExit(cp, 0)
        s = self.read()
        self.assertOutcome(s, 0, 1, 1, before)  # 4 stays pending
        self.assertEqual(sorted(self.durations(s)), ["3"])

        cp = self.pgboot("status", "--migrations-dir", mig, db=db)
        self.assertExit(cp, 0)
        self.assertOutcome(self.read(), 0, 0, 1, before)

    def test_failing_migration(self):
        db = new_database(self, "met")
        mig = temp_migrations(self, {"1_a.sql": up("CREATE TABLE a (id int);\n"),
                                     "2_b.sql": up("SELECT 1/0;\n"),
                                     "3_c.sql": up("SELECT 3;\n")})
        before = time.time()
        cp = self.pgboot("migrate", "--migrations-dir", mig, db=db)
        self.assertExit(cp, 5)
        s = self.read()
        self.assertOutcome(s, 5, 1, 2, before)
        self.assertEqual(sorted(self.durations(s)), ["1"])

    def test_lock_timeout(self):
        db = new_database(self, "met")
        mig = temp_migrations(self, {"1_a.sql": up("SELECT 1;\n")})
        holder = PsqlSession(self, db)
        holder.execute("SELECT pg_advisory_lock(%s)" % KEY_SQL)
        before = time.time()
        cp = self.pgboot("migrate", "--migrations-dir", mig, "--lock-timeout", "1s", db=db)
        self.assertExit(cp, 7)
        s = self.read()
        self.assertOutcome(s, 7, 0, 1, before)
        self.assertGreaterEqual(s[("pgboot_lock_wait_seconds", None)], 1.0)
        self.assertLess(s[("pgboot_lock_wait_seconds", None)], 30)

    def test_wrong_password_and_unreachable(self):
        db = new_database(self, "met")
        mig = temp_migrations(self, {"1_a.sql": up("SELECT 1;\n")})
        before = time.time()
        cp = self.pgboot("migrate", "--migrations-dir", mig, u=url(db, password="wrong-pw"))
        self.assertExit(cp, 4)
        s = self.read()
        self.assertOutcome(s, 4, 0, None, before)  # no history read: pending unknown
        self.assertLess(s[("pgboot_wait_seconds", None)], 5)
        with open(self.path) as f:
            self.assertNotIn("wrong-pw", f.read())

        cp = self.pgboot("migrate", "--migrations-dir", mig, u=closed_url(db),
                         env={"PGBOOT_WAIT_TIMEOUT": "1s"})
        self.assertExit(cp, 3)
        s = self.read()
        self.assertOutcome(s, 3, 0, None, before)
        self.assertGreaterEqual(s[("pgboot_wait_seconds", None)], 1.0)
        self.assertLess(s[("pgboot_wait_seconds", None)], 30)

    def test_run_mode_writes_before_exec_and_again_when_exec_fails(self):
        db = new_database(self, "met")
        mig = temp_migrations(self, {"1_a.sql": up("CREATE TABLE a (id int);\n")})
        before = time.time()
        # APP prints the file: it was complete before APP started.
        cp = self.pgboot("--migrations-dir", mig, "--", "/bin/sh", "-c", 'cat "$0"', self.path,
                         db=db, env={"RUN_MIGRATIONS": "true"})
        self.assertExit(cp, 0)
        s = self.read(cp.stdout)
        self.assertOutcome(s, 0, 1, 0, before)
        self.assertEqual(sorted(self.durations(s)), ["1"])

        cp = self.pgboot("--migrations-dir", mig, "--", "/nonexistent/app", db=db,
                         env={"RUN_MIGRATIONS": "true"})
        self.assertExit(cp, 127)
        self.assertOutcome(self.read(), 127, 0, 0, before)

    def test_a_missing_directory_is_a_warning_at_the_end(self):
        db = new_database(self, "met")
        mig = temp_migrations(self, {"1_a.sql": up("SELECT 1;\n")})
        missing = os.path.join(str(self.dir), "no", "such", "dir", "pgboot.prom")
        for u, code in ((url(db), 0), (url(db, password="wrong-pw"), 4)):
            cp = self.pgboot("migrate", "--migrations-dir", mig, u=u,
                             env={"PGBOOT_METRICS_FILE": missing})
            self.assertExit(cp, code)
            warned = events(cp.stderr, "metrics.write_failed")
            self.assertEqual([e["path"] for e in warned], [missing], cp.stderr)
            self.assertEqual(events(cp.stderr)[-1]["event"], "metrics.write_failed")
            self.assertFalse(os.path.exists(os.path.dirname(missing)))

    def test_new_and_version_write_nothing(self):
        mig = temp_dir(self)
        self.assertExit(self.pgboot("new", "x", "--migrations-dir", mig), 0)
        self.assertExit(self.pgboot("version"), 0)
        self.assertFalse(os.path.exists(self.path))

    def test_transaction_lock_mode_through_the_pooler(self):
        # Each migration takes its own locked transaction: every one counts once, and a
        # wait for one of those locks adds to pgboot_lock_wait_seconds.
        if not os.access(PGBOUNCER, os.X_OK):
            skip_loudly(self, "pgbouncer is not installed (scripts/setup.sh installs it)")
        db = new_database(self, "metp")
        bouncer = start_pgbouncer(self, pool_mode="transaction", default_pool_size=2)
        mig = temp_migrations(self, {"1_a.sql": up("CREATE TABLE a (id int);\n"),
                                     "2_b.sql": up("CREATE TABLE b (id int);\n"),
                                     "3_c.sql": up("SELECT 3;\n")})
        holder = PsqlSession(self, db)
        holder.execute("SELECT pg_advisory_lock(%s)" % KEY_SQL)
        before = time.time()
        cp = self.pgboot("migrate", "--migrations-dir", mig, "--lock-timeout", "1s",
                         u=bouncer.url(db))
        self.assertExit(cp, 7)
        self.assertEqual([e["mode"] for e in events(cp.stderr, "lock.mode")], ["transaction"])
        s = self.read()
        self.assertOutcome(s, 7, 0, 3, before)
        self.assertGreaterEqual(s[("pgboot_lock_wait_seconds", None)], 1.0)
        holder.close()
        cp = self.pgboot("migrate", "--migrations-dir", mig, "--target", "2", u=bouncer.url(db))
        self.assertExit(cp, 0)
        s = self.read()
        self.assertOutcome(s, 0, 2, 1, before)
        self.assertEqual(sorted(self.durations(s)), ["1", "2"])
        self.assertLess(s[("pgboot_lock_wait_seconds", None)], 30)


if __name__ == "__main__":
    unittest.main()
