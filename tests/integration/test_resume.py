#!/usr/bin/env python3
"""Resuming interrupted transaction:false migrations (docs/after-a-crash.md,
docs/reference.md "Resume") against a real PostgreSQL 15.

Every kill waits for the event or the server-side statement it interrupts.
"""

import signal
import unittest

from harness.server import new_database, url
from harness.sql import PsqlSession, admin_sql, advisory_locks, backends_running, history, q1, table_exists
from harness.proc import StartBarrier, run, spawn, wait_until
from harness.files import temp_migrations, up
from harness.logs import events
from harness.case import PgbootTestCase


class Base(PgbootTestCase):
    def args(self, cmd, db, mig, *extra):
        return [cmd, "--database-url", url(db), "--migrations-dir", mig,
                "--wait-timeout", "10s", "--lock-timeout", "20s"] + [str(e) for e in extra]

    def migrate(self, db, mig, *extra, env=None):
        return run(self.args("migrate", db, mig, *extra), env=env, timeout=30)

    def kill_at(self, db, mig, statement_text, signo=signal.SIGKILL):
        """Starts migrate, waits until `statement_text` runs on the server, signals it."""
        p = spawn(self.args("migrate", db, mig), test=self)
        wait_until(lambda: backends_running(db, statement_text) == 1, 10,
                   "%r runs on the server" % statement_text)
        p.send_signal(signo)
        p.finish(timeout=10)
        wait_until(lambda: advisory_locks(db) == 0, 3.0, "the lock is free")
        return p


class ResumeTest(Base):
    def test_killed_inside_the_sections_own_transaction_resumes_at_its_begin(self):
        db = new_database(self, "resume")
        admin_sql("CREATE TABLE sleep_gate (id int)", db)
        mig = temp_migrations(self, {
            "1_tx.sql": up("CREATE TABLE IF NOT EXISTS ra (id int);\nBEGIN;\n"
                           "INSERT INTO ra VALUES (1);\n"
                           "SELECT pg_sleep(30) FROM pg_class WHERE relname = 'sleep_gate';\n"
                           "INSERT INTO ra VALUES (2);\nCOMMIT;\n", "transaction:false"),
        })
        self.kill_at(db, mig, "pg_sleep(30)")
        self.assertEqual(history(db), {"1": "running"})
        # The counts written inside the block rolled back with it: 1 (after CREATE TABLE).
        self.assertEqual(q1(db, "SELECT statements_done FROM pgboot_history"), "1")
        self.assertEqual(q1(db, "SELECT count(*) FROM ra"), "0")
        admin_sql("DROP TABLE sleep_gate", db)
        cp = self.migrate(db, mig)
        self.assertExit(cp, 0)
        self.assertEqual([e["statement"] for e in events(cp.stderr, "migration.resume")], ["2"])
        self.assertEqual(q1(db, "SELECT string_agg(id::text, ',' ORDER BY id) FROM ra"), "1,2")
        self.assertEqual(history(db), {"1": "applied"})

    def test_search_path_then_create_index_concurrently_resumes_in_the_right_schema(self):
        db = new_database(self, "resume")
        admin_sql("CREATE SCHEMA app; CREATE TABLE app.t (id int); CREATE TABLE public.t (id int);"
                  "INSERT INTO app.t SELECT generate_series(1, 1000)", db)
        mig = temp_migrations(self, {
            "1_idx.sql": up("SET search_path = app;\n"
                            "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_id_idx ON t (id);\n",
                            "transaction:false"),
        })
        # An open snapshot makes CREATE INDEX CONCURRENTLY wait, its index already
        # in the catalog, invalid: SIGTERM then cancels it and leaves that leftover.
        holder = PsqlSession(self, db)
        holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        holder.execute("SELECT count(*) FROM public.t")
        self.kill_at(db, mig, "CREATE INDEX CONCURRENTLY", signal.SIGTERM)
        self.assertEqual(history(db), {"1": "running"})
        self.assertEqual(q1(db, "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                                "'app.t_id_idx'::regclass"), "f", "the leftover of the build")
        holder.close()
        cp = self.migrate(db, mig)
        self.assertExit(cp, 0)
        lines = events(cp.stderr, "migration.resume")
        self.assertEqual([(e["statement"], e.get("dropped_index")) for e in lines],
                         [("2", None), ("2", "app.t_id_idx")])
        self.assertEqual(q1(db, "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                                "'app.t_id_idx'::regclass"), "t")
        self.assertEqual(q1(db, "SELECT count(*) FROM pg_index i JOIN pg_class c ON "
                                "c.oid = i.indrelid WHERE c.relname = 't'"), "1",
                         "one index, on app.t, none on public.t")
        self.assertEqual(q1(db, "SELECT count(*) FROM pg_index WHERE NOT indisvalid"), "0")

    def test_a_section_that_releases_the_lock_is_exit_1_and_not_resumed_twice(self):
        db = new_database(self, "resume")
        admin_sql("CREATE TABLE ru (id int)", db)
        mig = temp_migrations(self, {
            "1_unlock.sql": up("INSERT INTO ru VALUES (1);\nSELECT pg_advisory_lock(4711);\n"
                               "SELECT pg_advisory_unlock_all();\nINSERT INTO ru VALUES (2);\n",
                               "transaction:false"),
        })
        # The test holds key 4711, so whoever wins the lock stops at statement 2 until
        # the other has proved, with lock.waiting, that it is racing for the same lock.
        gate = PsqlSession(self, db)
        gate.execute("SELECT pg_advisory_lock(4711)")
        barrier = StartBarrier(2, test=self)
        procs = [spawn(self.args("migrate", db, mig, "--log-format", "json"), test=self,
                       barrier=barrier, env={"PGBOOT_LOCK_LOG_INTERVAL": "100ms"})
                 for _ in range(2)]
        barrier.release()
        waiter = wait_until(lambda: next((p for p in procs if any(
            '"event":"lock.waiting"' in line for line in list(p.err.lines))), None), 20,
            "a racer logs lock.waiting while the other holds the lock")
        winner = procs[1 - procs.index(waiter)]
        wait_until(lambda: backends_running(db, "pg_advisory_lock(4711)") == 1, 10,
                   "the winner waits at statement 2")
        gate.execute("SELECT pg_advisory_unlock(4711)")
        results = {p: p.finish(timeout=30) for p in procs}
        for cp in results.values():
            self.assertExit(cp, 1)
            self.assertIn("statement 3 released the migration lock", cp.stderr)
        self.assertEqual(events(results[winner].stderr, "migration.resume"), [])
        # The waiter took the lock the winner's statement 3 let go, resumed at statement 3
        # and stopped at once after it, never running statements 1, 2 or 4.
        self.assertEqual([e["statement"] for e in events(results[waiter].stderr,
                                                          "migration.resume")], [3])
        self.assertEqual(q1(db, "SELECT string_agg(id::text, ',') FROM ru"), "1",
                         "statement 1 ran once; nothing after the one that released the lock")
        self.assertEqual(history(db), {"1": "running"})

    def test_a_failed_row_still_blocks_until_repair(self):
        db = new_database(self, "resume")
        mig = temp_migrations(self, {
            "1_f.sql": up("CREATE TABLE IF NOT EXISTS rf (id int);\nSELECT 1/0;\n",
                          "transaction:false"),
        })
        self.assertExit(self.migrate(db, mig), 5)
        self.assertEqual(history(db), {"1": "failed"})
        cp = self.migrate(db, mig)
        self.assertExit(cp, 6)
        self.assertEqual(events(cp.stderr, "migration.resume"), [])
        mig.write("1_f.sql", up("CREATE TABLE IF NOT EXISTS rf (id int);\nSELECT 1;\n",
                                "transaction:false"))
        self.assertExit(run(self.args("repair", db, mig, "--yes")), 0)
        self.assertExit(self.migrate(db, mig), 0)
        self.assertEqual(history(db), {"1": "applied"})

    def test_an_older_table_gets_statements_done_by_migrate_only(self):
        db = new_database(self, "resume")
        admin_sql("CREATE TABLE pgboot_history (version text PRIMARY KEY, name text NOT NULL, "
                  "checksum text NOT NULL, status text NOT NULL, applied_at timestamptz NOT NULL "
                  "DEFAULT now(), execution_ms integer, applied_by text NOT NULL, batch integer "
                  "NOT NULL)", db)
        mig = temp_migrations(self, {"1_a.sql": up("SELECT 1;\nSELECT 2;\n", "transaction:false")})
        admin_sql("INSERT INTO pgboot_history VALUES ('1', 'a', 'x', 'running', now(), NULL, "
                  "'pgboot 0.1.0', 1)", db)
        col = ("SELECT count(*) FROM pg_attribute WHERE attrelid = 'pgboot_history'::regclass "
               "AND attname = 'statements_done'")
        self.assertExit(run(self.args("status", db, mig)), 0)
        self.assertEqual(q1(db, col), "0", "status never alters the table")
        admin_sql("UPDATE pgboot_history SET checksum = %s" % (
            "'" + __import__("hashlib").sha256(b"SELECT 1;\nSELECT 2;\n").hexdigest() + "'"), db)
        cp = self.migrate(db, mig)
        self.assertExit(cp, 6)
        self.assertIn("pgboot repair", cp.stderr)
        self.assertIn("older pgboot", cp.stderr)
        self.assertEqual(q1(db, col), "1", "migrate added the column under the lock")


class ReconnectBoundTest(Base):
    def test_a_statement_that_ends_its_session_every_time_runs_three_times_then_exit_3(self):
        # pg_terminate_backend of its own session is 57P01, a lost connection
        # (docs/after-a-crash.md, "A bound on reconnecting").
        db = new_database(self, "resume")
        admin_sql("CREATE TABLE tries (id int)", db)
        mig = temp_migrations(self, {
            "1_ok.sql": up("CREATE TABLE ok1 (id int);\n"),
            "2_die.sql": up("INSERT INTO tries VALUES (1);\n"
                            "SELECT pg_terminate_backend(pg_backend_pid());\n",
                            "transaction:false"),
        })
        cp = self.migrate(db, mig, "--log-format", "json")
        self.assertExit(cp, 3)
        self.assertIn("lost 3 times in a row with no progress", cp.stderr)
        self.assertEqual(len(events(cp.stderr, "migrate.reconnect")), 3, cp.stderr)
        # The first session ran statement 1, recorded it, died at statement 2;
        # each resume ran statement 2 again: three times in all, never a fourth.
        self.assertEqual(q1(db, "SELECT count(*) FROM tries"), "1")
        self.assertEqual(history(db), {"1": "applied", "2": "running"})
        self.assertEqual(q1(db, "SELECT statements_done FROM pgboot_history WHERE version = '2'"),
                         "1")
        self.assertEqual(len(events(cp.stderr, "migration.resume")), 2, cp.stderr)


if __name__ == "__main__":
    unittest.main()
