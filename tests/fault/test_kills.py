#!/usr/bin/env python3
"""Fault suite: random SIGKILLs during `migrate`, pg_terminate_backend of the lock
holder while another pgboot waits (invariants in faults.py).

Each kill is aimed at an event the victim logs (lock.acquired, migration.start or
migration.applied of a random version), never at a blind instant; the seed is
printed (PGBOOT_FAULT_SEED replays a run).
"""

import signal
import sys
import time
import unittest

import faults  # this suite's invariants, next to it
from harness.case import PgbootTestCase, time_limit
from harness.files import temp_migrations, up
from harness.proc import StartBarrier, run, spawn
from harness.server import new_database, url
from harness.sql import admin_sql

N = 12  # migrations per set: a full run is about 0.3 s of server time
ROUNDS = 14


class KillTest(PgbootTestCase):
    def args(self, db, mig, *extra):
        return ["migrate", "--database-url", url(db), "--migrations-dir", mig,
                "--wait-timeout", "20s", "--lock-timeout", "30s"] + list(extra)

    def test_random_sigkills_during_migrate(self):
        r = faults.rng(self)
        mig = temp_migrations(self, faults.ledger_migrations(N))
        for round_no in range(ROUNDS):
            db = new_database(self, "fault")
            racers = r.choice([1, 2])
            event = r.choice(["lock.acquired", "migration.start version=%d" % r.randint(1, N),
                              "migration.applied version=%d" % r.randint(1, N)])
            what = "round %d: %d racer(s), SIGKILL at %s" % (round_no, racers, event)
            barrier = StartBarrier(racers, test=self) if racers > 1 else None
            procs = [spawn(self.args(db, mig), test=self, barrier=barrier) for _ in range(racers)]
            if barrier:
                barrier.release()
            victim = faults.first_to_log(procs, r"\b%s\b" % event.replace(".", r"\."), 20)
            self.assertIsNotNone(victim, what + ": nobody logged the event")
            victim.send_signal(signal.SIGKILL)
            rc = victim.finish(time_limit(10)).returncode
            # After the last migration.applied a run may exit 0 before the kill lands.
            self.assertIn(rc, (-signal.SIGKILL, 0), what)
            for p in procs:
                if p is not victim:
                    # The survivor takes the freed lock and finishes the whole set.
                    self.assertExit(p.finish(time_limit(30)), 0, what + " (survivor)")
            s = faults.assert_consistent(self, admin_sql, db, N, complete=racers > 1 or rc == 0,
                                        what=what)
            sys.stderr.write("%s: %d applied before the rerun\n" % (what, len(s["history"])))
            cp = run(self.args(db, mig), timeout=time_limit(30))
            self.assertExit(cp, 0, what + " (rerun)")
            faults.assert_consistent(self, admin_sql, db, N, complete=True, what=what)


class TerminateHolderTest(PgbootTestCase):
    def test_terminating_the_lock_holder_lets_the_waiter_finish(self):
        db = new_database(self, "fault")
        files = faults.ledger_migrations(4)
        # While sleep_gate exists, migration 3 sleeps 60 s: only the holder meets it.
        admin_sql("CREATE TABLE sleep_gate (id int)", db)
        files["3_m3.sql"] = up(
            "CREATE TABLE m_3 (id int);\nINSERT INTO ledger VALUES (3);\n"
            "SELECT pg_sleep(60) FROM pg_class WHERE relname = 'sleep_gate';\n")
        mig = temp_migrations(self, files)
        args = ["migrate", "--database-url", url(db), "--migrations-dir", mig,
                "--wait-timeout", "5s", "--lock-timeout", "30s"]
        env = {"PGBOOT_LOCK_LOG_INTERVAL": "200ms"}
        holder = spawn(args, env=env, test=self)
        holder.wait_for_line(r"migration\.start version=3\b", timeout=time_limit(10))
        waiter = spawn(args, env=env, test=self)
        waiter.wait_for_line(r"lock\.waiting\b", timeout=time_limit(10))
        pid = admin_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND "
            "state = 'active' AND query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()", db).strip()
        self.assertTrue(pid.isdigit(), "the holder's statement runs on the server: %r" % pid)
        admin_sql("DROP TABLE sleep_gate", db)
        t0 = time.monotonic()
        admin_sql("SELECT pg_terminate_backend(%s)" % pid, db)
        cp = waiter.finish(time_limit(30))
        self.assertExit(cp, 0, "the waiter takes the freed lock and applies the rest")
        # The holder lost its connection mid-statement: an exit it chose, never a crash
        # it reconnects, takes the lock again after the waiter and finds nothing to do
        # (issue 15 item 3).
        hcp = holder.finish(time_limit(30))
        self.assertExit(hcp, 0)
        self.assertLess(time.monotonic() - t0, time_limit(20))
        faults.assert_consistent(self, admin_sql, db, 4, complete=True,
                                 what="holder terminated")
        self.assertEqual(run(args).returncode, 0)


if __name__ == "__main__":
    unittest.main()
