#!/usr/bin/env python3
"""Fault suite: the server restarted (fast and immediate shutdown) while pgboot waits
for it, while it waits for the lock and while it migrates, transactional and
transaction:false migrations both (invariants in faults.py).

Each class runs its own throw-away cluster (harness.server.new_cluster), so restarting it
never disturbs the suites sharing the main server.
"""

import signal
import sys
import time
import unittest
import uuid

import faults  # this suite's invariants, next to it
from harness.case import PgbootTestCase, time_limit
from harness.files import temp_migrations, up
from harness.logs import events
from harness.proc import run, spawn, wait_until
from harness.server import new_cluster
from harness.sql import PsqlSession


def pg_ctl(cluster, *args):
    """pg_ctl on the cluster as the server's user (the harness's own runner)."""
    return cluster._pg("pg_ctl", "-D", cluster.data_dir, *args, timeout=120)


def stop(cluster, mode):
    pg_ctl(cluster, "-m", mode, "-w", "-t", "60", "stop")


class RestartBase(PgbootTestCase):
    """One cluster per class (initdb is the slow part); one database per test."""

    @classmethod
    def setUpClass(cls):
        cls.c = new_cluster(None)
        try:
            cls.c.start()
        except Exception:
            cls.c.destroy()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()

    def setUp(self):
        if not self.c.is_running():
            self.c.start()
        self.db = "fault_%s" % uuid.uuid4().hex[:12]
        self.c.admin_sql("CREATE DATABASE %s" % self.db)
        self.sql = lambda sql, db=self.db: self.c.admin_sql(sql, db)

    def args(self, cmd, mig=None, *extra):
        a = [cmd, "--database-url", self.c.url(self.db), "--wait-timeout", "30s",
             "--lock-timeout", "60s", "--log-level", "debug"]
        if mig is not None:
            a += ["--migrations-dir", mig]
        return a + list(extra)

    def gated_set(self):
        """Migration 3 sleeps 60 s while the table sleep_gate exists."""
        files = faults.ledger_migrations(4)
        files["3_m3.sql"] = up(
            "CREATE TABLE m_3 (id int);\nINSERT INTO ledger VALUES (3);\n"
            "SELECT pg_sleep(60) FROM pg_class WHERE relname = 'sleep_gate';\n")
        self.sql("CREATE TABLE sleep_gate (id int)")
        return temp_migrations(self, files)

    def restart_mid_migration(self, mode):
        """Restarts the server while migration 3 runs; checks the invariants after the run
        and after a rerun (which must succeed); returns the interrupted run's result."""
        mig = self.gated_set()
        p = spawn(self.args("migrate", mig), test=self)
        p.wait_for_line(r"migration\.start version=3\b", timeout=time_limit(15))
        # Dropped before the restart: the statement already sleeping keeps sleeping,
        # but the same run, reconnected within milliseconds, must not sleep again.
        self.sql("DROP TABLE sleep_gate")
        stop(self.c, mode)
        self.c.start()
        cp = p.finish(time_limit(40))
        sys.stderr.write("restart (%s) mid-migration: exit %d\n" % (mode, cp.returncode))
        faults.assert_consistent(self, self.sql, self.db, 4, complete=cp.returncode == 0,
                                 what="restart (%s) mid-migration" % mode)
        rerun = run(self.args("migrate", mig), timeout=time_limit(30))
        self.assertExit(rerun, 0, "the rerun after the restart")
        faults.assert_consistent(self, self.sql, self.db, 4, complete=True, what="rerun")
        return cp

    def while_waiting_for_the_lock(self, mode):
        # The lock holder is a second pgboot stuck in a sleeping migration.
        self.sql("CREATE TABLE sleep_gate (id int)")
        files = faults.ledger_migrations(3)
        files["2_m2.sql"] = up(
            "CREATE TABLE m_2 (id int);\nINSERT INTO ledger VALUES (2);\n"
            "SELECT pg_sleep(60) FROM pg_class WHERE relname = 'sleep_gate';\n")
        mig = temp_migrations(self, files)
        env = {"PGBOOT_LOCK_LOG_INTERVAL": "200ms"}
        holder = spawn(self.args("migrate", mig), env=env, test=self)
        holder.wait_for_line(r"migration\.start version=2\b", timeout=time_limit(15))
        waiter = spawn(self.args("migrate", mig), env=env, test=self)
        waiter.wait_for_line(r"lock\.waiting\b", timeout=time_limit(15))
        self.sql("DROP TABLE sleep_gate")  # before the restart, as above
        stop(self.c, mode)
        self.c.start()
        hcp, wcp = holder.finish(time_limit(40)), waiter.finish(time_limit(40))
        # Both lost their connection; both reconnect and finish (docs/after-a-crash.md).
        sys.stderr.write("restart (%s) while waiting for the lock: holder exit %d, waiter exit %d\n"
                         % (mode, hcp.returncode, wcp.returncode))
        for cp in (hcp, wcp):
            self.assertExit(cp, 0)
        faults.assert_consistent(self, self.sql, self.db, 3, complete=True,
                                 what="restart (%s) while waiting for the lock" % mode)
        self.assertExit(run(self.args("migrate", mig), timeout=time_limit(30)), 0)
        faults.assert_consistent(self, self.sql, self.db, 3, complete=True, what="rerun")
        return hcp, wcp


class RestartTest(RestartBase):
    def _while_waiting(self, mode):
        stop(self.c, mode)
        p = spawn(self.args("wait"), test=self)
        p.wait_for_line(r"wait\.retry\b", timeout=time_limit(10))
        self.c.start()
        ready_at = time.monotonic()
        cp = p.finish(time_limit(30))
        self.assertExit(cp, 0, "ready once the server is back")
        self.assertLess(p.exited_at - ready_at, time_limit(2.0),
                        "ready within 2 s of the restarted server accepting")

    def test_restart_fast_while_waiting_for_the_server(self):
        self._while_waiting("fast")

    def test_restart_immediate_while_waiting_for_the_server(self):
        self._while_waiting("immediate")

    def test_restart_fast_while_waiting_for_the_lock(self):
        self.while_waiting_for_the_lock("fast")

    def test_restart_immediate_while_waiting_for_the_lock(self):
        self.while_waiting_for_the_lock("immediate")

    def test_sigterm_is_answered_while_the_server_restarts(self):
        stop(self.c, "immediate")
        p = spawn(self.args("wait"), test=self)
        p.wait_for_line(r"wait\.retry\b", timeout=time_limit(10))
        self.c.start(wait=False)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        cp = p.finish(time_limit(10))
        if cp.returncode != 0:  # it may have become ready just before the signal
            self.assertExit(cp, 143)
        self.assertLess(p.exited_at - t0, time_limit(1.0), "SIGTERM answered within 1 s")


class ReconnectTest(RestartBase):
    """SPEC §5: a connection lost while migrating is not an SQL failure; the same run
    reconnects and finishes (issue 15 item 3)."""

    def test_restart_fast_mid_migration_the_same_run_finishes(self):
        self.assertExit(self.restart_mid_migration("fast"), 0)

    def test_restart_immediate_mid_migration_the_same_run_finishes(self):
        self.assertExit(self.restart_mid_migration("immediate"), 0)

    def restart_during_create_index_concurrently(self, mode):
        """Restarts the server while a transaction:false migration's CREATE INDEX
        CONCURRENTLY waits, its index already in the catalog, invalid: the same run
        reconnects, drops that leftover, builds the index and finishes."""
        files = faults.ledger_migrations(4)
        files["3_m3.sql"] = up(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ledger_version_idx ON ledger (version);\n"
            "INSERT INTO ledger SELECT 3 WHERE NOT EXISTS "
            "(SELECT 1 FROM ledger WHERE version = 3);\n"
            "CREATE TABLE IF NOT EXISTS m_3 (id int);\n", "transaction:false")
        mig = temp_migrations(self, files)
        # As on a production server (the harness turns it off for speed): a commit
        # survives an immediate shutdown, so the `running` row and the index's catalog
        # entry are there to resume from.
        self.sql("ALTER DATABASE %s SET synchronous_commit = on" % self.db)
        # An open snapshot makes the build wait (for older snapshots) before it can
        # mark the index valid; the restart ends that snapshot's session too.
        holder = PsqlSession(self, self.db, url=self.c.url(self.db))
        holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        holder.execute("SELECT 1")
        p = spawn(self.args("migrate", mig, "--log-format", "json"), test=self)
        wait_until(lambda: self.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
            "query LIKE 'CREATE INDEX CONCURRENTLY%'").strip() == "1", time_limit(15),
            "CREATE INDEX CONCURRENTLY waits for the open snapshot")
        self.assertEqual(self.sql("SELECT indisvalid FROM pg_index WHERE indexrelid = "
                                  "'ledger_version_idx'::regclass").strip(), "f")
        stop(self.c, mode)
        self.c.start()
        cp = p.finish(time_limit(40))
        self.assertExit(cp, 0, "the same run reconnects and finishes")
        self.assertGreaterEqual(len(events(cp.stderr, "migrate.reconnect")), 1, cp.stderr)
        self.assertEqual([(e["version"], e["statement"], e.get("dropped_index"))
                          for e in events(cp.stderr, "migration.resume")],
                         [("3", 1, None), ("3", 1, "public.ledger_version_idx")], cp.stderr)
        faults.assert_consistent(self, self.sql, self.db, 4, complete=True,
                                 what="restart (%s) during CREATE INDEX CONCURRENTLY" % mode)
        self.assertEqual(self.sql("SELECT count(*) FROM pg_index WHERE NOT indisvalid").strip(),
                         "0", "no invalid index is left")
        self.assertEqual(self.sql("SELECT indisvalid FROM pg_index WHERE indexrelid = "
                                  "'ledger_version_idx'::regclass").strip(), "t")

    def test_restart_fast_during_a_transaction_false_migration_the_same_run_finishes(self):
        self.restart_during_create_index_concurrently("fast")

    def test_restart_immediate_during_a_transaction_false_migration_the_same_run_finishes(self):
        self.restart_during_create_index_concurrently("immediate")


if __name__ == "__main__":
    unittest.main()
