#!/usr/bin/env python3
"""Fault suite: PgBouncer restarted in the middle of a `migrate` run through it
(docs/pooler.md, docs/after-a-crash.md). The restart cuts every client and server
connection; the same run reconnects through the restarted PgBouncer and finishes with
exit 0, each migration exactly once (invariants in faults.py), no advisory lock left on
any server connection.

Transaction pooling with the `auto` lock mode (transaction-scoped locks: the cut
transaction is rolled back and retried) and session pooling with `--lock-mode session`
(the session lock goes with the server session; a transaction:false row is resumed).
"""

import os
import sys
import unittest

import faults  # this suite's invariants, next to it
from harness.case import PgbootTestCase, skip_loudly, time_limit
from harness.files import temp_migrations, up
from harness.logs import events
from harness.pgbouncer import PGBOUNCER, start_pgbouncer
from harness.proc import spawn, wait_until
from harness.server import new_database
from harness.sql import admin_sql, backends_running

# While the table sleep_gate exists, migration 3 sleeps 60 s on the server: only the
# interrupted run meets it (the test drops the table before the restart).
GATED_SLEEP = "SELECT pg_sleep(60) FROM pg_class WHERE relname = 'sleep_gate';\n"


class PoolerRestartBase(PgbootTestCase):
    pool_mode = "transaction"
    lock_args = []

    def setUp(self):
        if not os.access(PGBOUNCER, os.X_OK):
            skip_loudly(self, "pgbouncer is not installed (scripts/setup.sh installs it)")
        self.db = new_database(self, "fault")
        self.bouncer = start_pgbouncer(self, pool_mode=self.pool_mode, default_pool_size=2)

    def restart_mid_migration(self, third, event_version="3"):
        """Runs ledger_migrations(4) with `third` as migration 3 through PgBouncer,
        restarts PgBouncer while migration 3 sleeps on the server, and returns the
        run's result after checking the invariants."""
        files = faults.ledger_migrations(4)
        files["3_m3.sql"] = third
        mig = temp_migrations(self, files)
        admin_sql("CREATE TABLE sleep_gate (id int)", self.db)
        p = spawn(["migrate", "--database-url", self.bouncer.url(self.db),
                   "--migrations-dir", mig, "--wait-timeout", "30s", "--lock-timeout", "60s",
                   "--log-format", "json"] + self.lock_args, test=self)
        p.wait_for_line(r'"event":"migration\.start","version":"%s"' % event_version,
                        timeout=time_limit(15))
        wait_until(lambda: backends_running(self.db, "pg_sleep(60)") == 1, time_limit(10),
                   "migration 3 sleeps on the server")
        # Dropped before the restart: the statement already sleeping keeps sleeping
        # until the server notices its client is gone; the retry must not sleep.
        admin_sql("DROP TABLE sleep_gate", self.db)
        self.bouncer.restart()
        cp = p.finish(time_limit(60))
        sys.stderr.write("PgBouncer (%s pooling) restarted mid-migration: exit %d, reconnect "
                         "reasons %r, %d lock.waiting\n" % (
                             self.pool_mode, cp.returncode,
                             [e["reason"] for e in events(cp.stderr, "migrate.reconnect")],
                             len(events(cp.stderr, "lock.waiting"))))
        self.assertExit(cp, 0, "the same run reconnects through the restarted PgBouncer")
        self.assertGreaterEqual(len(events(cp.stderr, "migrate.reconnect")), 1, cp.stderr)
        faults.assert_consistent(self, admin_sql, self.db, 4, complete=True,
                                 what="PgBouncer (%s pooling) restarted mid-migration"
                                 % self.pool_mode)
        self.assertEqual(backends_running(self.db, "pg_sleep(60)"), 0,
                         "the cut statement ended on the server")
        return cp

    def lock_mode(self, cp):
        return [e["mode"] for e in events(cp.stderr, "lock.mode")]


class TransactionPoolingRestartTest(PoolerRestartBase):
    def test_restart_mid_migration_in_transaction_lock_mode_retries_and_finishes(self):
        cp = self.restart_mid_migration(up("CREATE TABLE m_3 (id int);\n"
                                           "INSERT INTO ledger VALUES (3);\n" + GATED_SLEEP))
        self.assertEqual(self.lock_mode(cp), ["transaction"], cp.stderr)
        # The server rolled the cut transaction back: migration 3 was started twice
        # and applied once (assert_consistent).
        starts = [e for e in events(cp.stderr, "migration.start") if e["version"] == "3"]
        self.assertEqual(len(starts), 2, cp.stderr)


class SessionPoolingRestartTest(PoolerRestartBase):
    pool_mode = "session"
    lock_args = ["--lock-mode", "session"]

    def test_restart_mid_migration_in_session_lock_mode_takes_the_lock_again(self):
        cp = self.restart_mid_migration(up("CREATE TABLE m_3 (id int);\n"
                                           "INSERT INTO ledger VALUES (3);\n" + GATED_SLEEP))
        self.assertEqual(self.lock_mode(cp), ["session"], cp.stderr)
        self.assertGreaterEqual(len(events(cp.stderr, "lock.acquired")), 2, cp.stderr)

    def test_restart_mid_transaction_false_migration_resumes_it(self):
        # Statement 3 sleeps; statements 1 and 2 are done and recorded, and safe to run
        # again anyway (docs/after-a-crash.md).
        cp = self.restart_mid_migration(up(
            "CREATE TABLE IF NOT EXISTS m_3 (id int);\n"
            "INSERT INTO ledger SELECT 3 WHERE NOT EXISTS (SELECT 1 FROM ledger "
            "WHERE version = 3);\n" + GATED_SLEEP, "transaction:false"))
        self.assertEqual([(e["version"], e["statement"])
                          for e in events(cp.stderr, "migration.resume")], [("3", 3)], cp.stderr)


if __name__ == "__main__":
    unittest.main()
