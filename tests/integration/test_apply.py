#!/usr/bin/env python3
"""Applying migrations against a real PostgreSQL 15 (SPEC §1, §5, §6, §7).

The lock protocol under concurrency, signals (SIGKILL, SIGTERM, SIGINT) in the
middle of a statement, failure reporting (file:line[:column], SQLSTATE),
transaction:false migrations, DDL lock timeouts with retries, statement
timeouts, drift, run mode with RUN_MIGRATIONS, --single-transaction,
migration.progress, the lock timeout, JSON logs and the repository's example
migrations.

Every wait is on an event (a log line, a row in pg_stat_activity or pg_locks),
never a blind sleep; statements that sleep on the server are how the tests
hold pgboot in a known place.
"""

import json
import os
import re
import signal
import time
import unittest

from harness.server import closed_url, new_database, pg, url
from harness.sql import (PsqlSession, admin_sql, advisory_locks, audit, backends_running, history,
                         q1, quote_ident, table_exists)
from harness.proc import StartBarrier, run, source_dir, spawn, wait_until
from harness.files import temp_dir, temp_migrations, up
from harness.logs import events, parse_json_lines
from harness.case import PgbootTestCase


DEFAULT_KEY_SQL = ("hashtextextended('pgboot:' || quote_ident('public') || '.' || "
                   "quote_ident('pgboot_history'), 0)")


# ---- helpers ------------------------------------------------------------------------

class Base(PgbootTestCase):
    def args(self, cmd, db, mig, *extra):
        return [cmd, "--database-url", url(db), "--migrations-dir", mig,
                "--wait-timeout", "10s"] + [str(e) for e in extra]

    def migrate(self, db, mig, *extra, env=None, timeout=30):
        return run(self.args("migrate", db, mig, *extra), env=env, timeout=timeout)

    def spawn_migrate(self, db, mig, *extra, env=None, barrier=None):
        return spawn(self.args("migrate", db, mig, *extra), env=env, barrier=barrier, test=self)

    def assertLocation(self, text, path, line, column=None):
        """text names path:line (and :column when given, else no column at all)."""
        loc = "%s:%d" % (path, line) + ("" if column is None else ":%d" % column)
        self.assertRegex(text, re.escape(loc) + r"(?!\d|:\d)",
                         "expected the location %s in:\n%s" % (loc, text))


# ---- the lock under concurrency -------------------------------------------------------

class ConcurrencyTest(Base):
    N_PROCS = 8
    N_MIGRATIONS = 50

    def test_eight_runners_fifty_migrations_each_applied_once(self):
        db = new_database(self, "apply")
        files = {}
        for i in range(1, self.N_MIGRATIONS + 1):
            sql = "CREATE TABLE conc_%d (id int);\nINSERT INTO conc_%d VALUES (%d);\n" % (i, i, i)
            if i == 1:
                sql += "SELECT pg_sleep(0.5);\n"  # the winner holds the lock long enough
            files["%04d_conc_%d.sql" % (i, i)] = up(sql)
        mig = temp_migrations(self, files)
        barrier = StartBarrier(self.N_PROCS, test=self)
        procs = [self.spawn_migrate(db, mig, "--log-format", "json", "--lock-timeout", "60s",
                                    barrier=barrier) for _ in range(self.N_PROCS)]
        barrier.release()
        results = [p.finish(timeout=45) for p in procs]
        for cp in results:
            self.assertExit(cp, 0)
        evs = [parse_json_lines(cp.stderr) for cp in results]
        waiting = [e for es in evs for e in es if e.get("event") == "lock.waiting"]
        self.assertTrue(waiting, "at least one runner must have waited for the lock")
        for e in waiting:
            for field in ("holder_pid", "holder_application_name", "holder_since"):
                self.assertIn(field, e)
            self.assertRegex(str(e["holder_pid"]), r"^\d+$", e)
            self.assertTrue(str(e["holder_application_name"]).startswith("pgboot@"), e)
            self.assertRegex(str(e["holder_since"]), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", e)
        starts = [e["version"] for es in evs for e in es if e.get("event") == "migration.start"]
        self.assertEqual(sorted(starts, key=int), [str(i) for i in range(1, 51)],
                         "every version started exactly once across all runners")
        acquired = sum(1 for es in evs for e in es if e.get("event") == "lock.acquired")
        self.assertGreaterEqual(acquired, 1)
        # history, audit and catalog agree
        self.assertEqual(history(db), {str(i): "applied" for i in range(1, 51)})
        self.assertEqual(q1(db, "SELECT count(DISTINCT batch) FROM pgboot_history"), "1")
        applied = [v for e, v, _ in audit(db) if e == "applied"]
        self.assertEqual(sorted(applied, key=int), [str(i) for i in range(1, 51)])
        self.assertEqual([e for e, _, _ in audit(db) if e != "applied"], [])
        self.assertEqual(q1(db, "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname "
                                "LIKE 'conc\\_%' AND relnamespace = 'public'::regnamespace"), "50")
        total = " + ".join("(SELECT count(*) FROM conc_%d)" % i for i in range(1, 51))
        self.assertEqual(q1(db, "SELECT %s" % total), "50", "each INSERT ran once")
        self.assertEqual(advisory_locks(db), 0, "every runner released the lock")


# ---- signals ----------------------------------------------------------------------------

class KillTest(Base):
    def test_sigkill_mid_statement_leaves_nothing_and_frees_the_lock(self):
        db = new_database(self, "apply")
        admin_sql("CREATE TABLE sleep_gate (id int)", db)  # while it exists, 2 sleeps 30 s
        mig = temp_migrations(self, {
            "1_a.sql": up("CREATE TABLE kill_a (id int);\n"),
            "2_sleep.sql": up("CREATE TABLE kill_b (id int);\n"
                              "SELECT pg_sleep(30) FROM pg_class WHERE relname = 'sleep_gate';\n"),
            "3_c.sql": up("CREATE TABLE kill_c (id int);\n"),
        })
        p = self.spawn_migrate(db, mig)
        p.wait_for_line(r"migration\.start version=2\b", timeout=10)
        wait_until(lambda: backends_running(db, "pg_sleep(30)") == 1, 5,
                   "the sleeping statement runs on the server")
        p.kill()
        p.wait(5)
        t0 = time.monotonic()
        wait_until(lambda: advisory_locks(db) == 0, 3.0,
                   "the advisory lock of a SIGKILLed pgboot is released within 3 s")
        took = time.monotonic() - t0
        self.assertLess(took, 3.0)
        wait_until(lambda: backends_running(db, "pg_sleep(30)") == 0, 1.0,
                   "no backend left running the statement")
        self.assertEqual(history(db), {"1": "applied"})
        self.assertFalse(table_exists(db, "kill_b"), "nothing of the killed migration committed")
        self.assertFalse(table_exists(db, "kill_c"))
        self.assertTrue(table_exists(db, "kill_a"))
        self.assertEqual([v for _, v, _ in audit(db)], ["1"])
        admin_sql("DROP TABLE sleep_gate", db)
        cp = self.migrate(db, mig, "--lock-timeout", "5s")
        self.assertExit(cp, 0)
        self.assertEqual(history(db), {"1": "applied", "2": "applied", "3": "applied"})
        self.assertTrue(table_exists(db, "kill_b") and table_exists(db, "kill_c"))

    def _interrupt(self, signo, expected_code):
        db = new_database(self, "apply")
        mig = temp_migrations(self, {
            "1_a.sql": up("CREATE TABLE term_a (id int);\n"),
            "2_sleep.sql": up("CREATE TABLE term_b (id int);\nSELECT pg_sleep(600);\n"),
        })
        p = self.spawn_migrate(db, mig)
        p.wait_for_line(r"migration\.start version=2\b", timeout=10)
        wait_until(lambda: backends_running(db, "pg_sleep(600)") == 1, 5,
                   "pg_sleep(600) runs on the server")
        t0 = time.monotonic()
        p.send_signal(signo)
        cp = p.finish(timeout=10)
        self.assertExit(cp, expected_code)
        self.assertLess(p.exited_at - t0, 1.0, "exit within 1 s of the signal")
        # The statement was cancelled, not left running on the server.
        wait_until(lambda: backends_running(db, "pg_sleep(600)") == 0, 0.5,
                   "no backend still running pg_sleep(600)")
        wait_until(lambda: advisory_locks(db) == 0, 0.5, "the lock is free")
        self.assertEqual(history(db), {"1": "applied"})
        self.assertFalse(table_exists(db, "term_b"), "nothing of migration 2 committed")
        self.assertEqual([(e, v) for e, v, _ in audit(db)], [("applied", "1")])
        return cp

    def test_sigterm_mid_statement_exits_143(self):
        self._interrupt(signal.SIGTERM, 143)

    def test_sigint_mid_statement_exits_130(self):
        self._interrupt(signal.SIGINT, 130)

    def test_sigterm_while_waiting_for_the_lock_exits_143(self):
        db = new_database(self, "apply")
        mig = temp_migrations(self, {"1_a.sql": up("CREATE TABLE wait_a (id int);\n")})
        holder = PsqlSession(self, db)
        holder.execute("SELECT pg_advisory_lock(%s)" % DEFAULT_KEY_SQL)
        p = self.spawn_migrate(db, mig, "--lock-timeout", "60s")
        p.wait_for_line(r"lock\.waiting", timeout=10)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        cp = p.finish(timeout=10)
        self.assertExit(cp, 143)
        self.assertLess(p.exited_at - t0, 1.0)
        self.assertFalse(table_exists(db, "wait_a"))


# ---- failures name file:line -----------------------------------------------------------

class FailureTest(Base):
    def test_failing_statement_on_line_12(self):
        db = new_database(self, "apply")
        fail = ("-- migrate:up\n"                                  # 1
                "-- a comment\n"                                   # 2
                "CREATE TABLE fail_c (id int);\n"                  # 3
                "\n"                                               # 4
                "-- more\n"                                        # 5
                "INSERT INTO fail_c VALUES (1);\n"                 # 6
                "\n"                                               # 7
                "/* a block\n"                                     # 8
                "   comment */\n"                                  # 9
                "\n"                                               # 10
                "-- the next statement fails\n"                    # 11
                "SELECT 1 / (SELECT count(*) - 1 FROM fail_c);\n"  # 12
                "CREATE TABLE fail_after (id int);\n")             # 13
        mig = temp_migrations(self, {
            "1_a.sql": up("CREATE TABLE fail_a (id int);\n"),
            "2_b.sql": up("CREATE TABLE fail_b (id int);\n"),
            "3_fail.sql": fail,
            "4_d.sql": up("CREATE TABLE fail_d (id int);\n"),
        })
        term = temp_dir(self).write("termination-log", "")
        cp = self.migrate(db, mig, "--termination-log", term)
        self.assertExit(cp, 5)
        path = os.path.join(str(mig), "3_fail.sql")
        self.assertLocation(cp.stderr, path, 12)
        self.assertIn("22012", cp.stderr)
        self.assertIn("division by zero", cp.stderr)
        failed = events(cp.stderr, "migration.failed")
        self.assertEqual(len(failed), 1, cp.stderr)
        self.assertEqual(failed[0].get("version"), "3")
        with open(term) as f:
            reason = f.read()
        self.assertLocation(reason, path, 12)
        self.assertIn("22012", reason)
        self.assertEqual(reason.strip().count("\n"), 0, "one line in the termination log")
        # earlier migrations stay applied; nothing of 3; 4 never ran
        self.assertEqual(history(db), {"1": "applied", "2": "applied"})
        self.assertTrue(table_exists(db, "fail_a") and table_exists(db, "fail_b"))
        self.assertFalse(table_exists(db, "fail_c"))
        self.assertFalse(table_exists(db, "fail_d"))
        rows = [(e, v, d) for e, v, d in audit(db) if e == "failed"]
        self.assertEqual(len(rows), 1, audit(db))
        self.assertEqual(rows[0][1], "3")
        self.assertEqual(rows[0][2].get("sqlstate"), "22012")
        self.assertEqual(rows[0][2].get("statement"), 3, "the failing statement's number")

    def test_unique_violation_has_no_column(self):
        db = new_database(self, "apply")
        mig = temp_migrations(self, {
            "1_a.sql": up("CREATE TABLE uv (id int PRIMARY KEY);\nINSERT INTO uv VALUES (1);\n"),
            "2_dup.sql": ("-- migrate:up\n"            # 1
                          "INSERT INTO uv VALUES (2);\n"  # 2
                          "\n"                            # 3
                          "INSERT INTO uv\n"              # 4
                          "  VALUES (1);\n"),             # 5
        })
        cp = self.migrate(db, mig)
        self.assertExit(cp, 5)
        self.assertLocation(cp.stderr, os.path.join(str(mig), "2_dup.sql"), 4)
        self.assertIn("23505", cp.stderr)
        self.assertIn("duplicate key", cp.stderr)
        self.assertEqual(q1(db, "SELECT string_agg(id::text, ',') FROM uv"), "1",
                         "the migration's first INSERT was rolled back")
        self.assertEqual(history(db), {"1": "applied"})

    def test_server_position_counts_characters(self):
        cases = [
            # the error on the statement's second line, after 4 multi-byte characters
            ("-- migrate:up\n"
             "CREATE TABLE mb (id int);\n"
             "SELECT 'ü' AS a,\n"
             "       'äöü€' || nosuchcol AS b FROM mb;\n", 4, 18),
            # the statement starts mid-line (column 11), a multi-byte character before the error
            ("-- migrate:up\n"
             "CREATE TABLE mb (id int);\n"
             "SELECT 1; SELECT 'é' || nosuchcol FROM mb;\n", 3, 25),
        ]
        for text, line, column in cases:
            with self.subTest(line=line, column=column):
                db = new_database(self, "apply")
                mig = temp_migrations(self, {"1_mb.sql": text})
                cp = self.migrate(db, mig)
                self.assertExit(cp, 5)
                self.assertLocation(cp.stderr, os.path.join(str(mig), "1_mb.sql"), line, column)
                self.assertIn("42703", cp.stderr)
                self.assertIn("nosuchcol", cp.stderr)
                self.assertFalse(table_exists(db, "mb"))


# ---- transaction:false ------------------------------------------------------------------

class NonTransactionalTest(Base):
    def test_create_index_concurrently_while_another_runner_waits(self):
        db = new_database(self, "apply")
        mig = temp_migrations(self, {
            "1_t.sql": up("CREATE TABLE cic (id int);\n"
                          "INSERT INTO cic SELECT generate_series(1, 1000);\n"),
            "2_idx.sql": up("SELECT pg_advisory_lock(4242);\n"
                            "SELECT pg_advisory_unlock(4242);\n"
                            "CREATE INDEX CONCURRENTLY cic_id_idx ON cic (id);\n",
                            "transaction:false"),
        })
        gate = PsqlSession(self, db)
        gate.execute("SELECT pg_advisory_lock(4242)")
        a = self.spawn_migrate(db, mig, "--log-format", "json")
        a.wait_for_line(r'"event":"migration\.start".*"version":"2"', timeout=10)
        b = self.spawn_migrate(db, mig, "--log-format", "json", "--lock-timeout", "30s")
        b.wait_for_line(r'"event":"lock\.waiting"', timeout=10)
        t0 = time.monotonic()
        gate.execute("SELECT pg_advisory_unlock(4242)")  # A goes on to CREATE INDEX CONCURRENTLY
        ca = a.finish(timeout=20)
        self.assertExit(ca, 0)
        self.assertLess(a.exited_at - t0, 10, "CONCURRENTLY must not wait for the waiting runner")
        cb = b.finish(timeout=20)
        self.assertExit(cb, 0)
        self.assertGreaterEqual(b.exited_at, a.exited_at, "B waited for A's lock throughout")
        self.assertEqual(events(cb.stderr, "migration.start"), [])
        self.assertEqual(q1(db, "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                                "'cic_id_idx'::regclass"), "t")
        self.assertEqual(history(db), {"1": "applied", "2": "applied"})
        details = {v: d for e, v, d in audit(db) if e == "applied"}
        self.assertEqual(set(details), {"1", "2"})

    def test_killed_mid_way_leaves_running_row_that_the_next_run_resumes(self):
        # Issue 15: the rerun used to exit 6 on the running row; it resumes it now at
        # statement 2 (statements_done = 1), and every other assertion stays.
        db = new_database(self, "apply")
        mig = temp_migrations(self, {
            "1_ntx.sql": up("CREATE TABLE ntx_one (id int);\n"
                            "SELECT pg_sleep(30) FROM pg_class WHERE relname = 'sleep_gate';\n"
                            "CREATE TABLE ntx_two (id int);\n", "transaction:false"),
            "2_later.sql": up("CREATE TABLE ntx_later (id int);\n"),
        })
        admin_sql("CREATE TABLE sleep_gate (id int)", db)
        p = self.spawn_migrate(db, mig)
        wait_until(lambda: backends_running(db, "pg_sleep(30)") == 1, 10,
                   "the 2nd statement runs")
        p.kill()
        p.wait(5)
        wait_until(lambda: advisory_locks(db) == 0, 3.0, "the lock is free within 3 s")
        self.assertEqual(history(db), {"1": "running"})
        self.assertEqual(q1(db, "SELECT statements_done FROM pgboot_history"), "1")
        self.assertTrue(table_exists(db, "ntx_one"), "statement 1 committed on its own")
        self.assertFalse(table_exists(db, "ntx_two"))
        cp = run(self.args("status", db, mig, "--output", "json"))
        self.assertExit(cp, 0)
        self.assertEqual([m["state"] for m in json.loads(cp.stdout)["migrations"]],
                         ["running", "pending"])
        self.assertExit(run(self.args("validate", db, mig)), 6)
        admin_sql("DROP TABLE sleep_gate", db)
        cp = self.migrate(db, mig, "--lock-timeout", "5s")
        self.assertExit(cp, 0)
        self.assertEqual([(e["version"], e["statement"]) for e in events(cp.stderr, "migration.resume")],
                         [("1", "2")])
        self.assertEqual(history(db), {"1": "applied", "2": "applied"})
        self.assertTrue(table_exists(db, "ntx_two") and table_exists(db, "ntx_later"))
        self.assertEqual(q1(db, "SELECT statements_done FROM pgboot_history WHERE version = '1'"),
                         "3")

    def test_sigterm_mid_way_leaves_running_then_resumes(self):
        # Issue 15 changes this test (it was test_sigterm_mid_way_marks_failed): SIGTERM
        # is a stop, not an SQL error, so the row stays running with statements_done
        # unchanged and no failed audit row; the next run resumes at statement 2.
        db = new_database(self, "apply")
        mig = temp_migrations(self, {
            "1_ntx.sql": up("CREATE TABLE ntxs_one (id int);\n"
                            "SELECT pg_sleep(600) FROM pg_class WHERE relname = 'sleep_gate';\n"
                            "CREATE TABLE ntxs_two (id int);\n", "transaction:false"),
        })
        admin_sql("CREATE TABLE sleep_gate (id int)", db)
        p = self.spawn_migrate(db, mig)
        wait_until(lambda: backends_running(db, "pg_sleep(600)") == 1, 10, "statement 2 runs")
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        cp = p.finish(timeout=10)
        self.assertExit(cp, 143)
        self.assertLess(p.exited_at - t0, 1.0)
        self.assertEqual(backends_running(db, "pg_sleep(600)"), 0)
        self.assertEqual(history(db), {"1": "running"})
        self.assertEqual(q1(db, "SELECT statements_done FROM pgboot_history"), "1")
        self.assertFalse(table_exists(db, "ntxs_two"))
        self.assertEqual([e for e, v, d in audit(db) if e == "failed"], [], audit(db))
        self.assertEqual([e["statement"] for e in events(cp.stderr, "migration.interrupted")], ["2"])
        admin_sql("DROP TABLE sleep_gate", db)
        cp = self.migrate(db, mig)
        self.assertExit(cp, 0)
        self.assertEqual([e["statement"] for e in events(cp.stderr, "migration.resume")], ["2"])
        self.assertEqual(history(db), {"1": "applied"})
        self.assertTrue(table_exists(db, "ntxs_two"))

    def test_failing_statement_marks_failed_and_blocks_later_runs(self):
        db = new_database(self, "apply")
        mig = temp_migrations(self, {
            "1_ntx.sql": ("-- migrate:up transaction:false\n"    # 1
                          "CREATE TABLE ntf_one (id int);\n"      # 2
                          "\n"                                    # 3
                          "SELECT id,\n"                          # 4
                          "  nosuchcol FROM ntf_one;\n"           # 5
                          "CREATE TABLE ntf_two (id int);\n"),    # 6
            "2_later.sql": up("CREATE TABLE ntf_later (id int);\n"),
        })
        cp = self.migrate(db, mig)
        self.assertExit(cp, 5)
        self.assertIn("42703", cp.stderr)
        self.assertLocation(cp.stderr, os.path.join(str(mig), "1_ntx.sql"), 5, 3)
        self.assertEqual(history(db), {"1": "failed"})
        self.assertTrue(table_exists(db, "ntf_one"), "statement 1 stays committed")
        self.assertFalse(table_exists(db, "ntf_two"))
        failed = [d for e, v, d in audit(db) if e == "failed"]
        self.assertEqual(len(failed), 1, audit(db))
        self.assertEqual((failed[0].get("statement"), failed[0].get("sqlstate")), (2, "42703"))
        cp = self.migrate(db, mig)
        self.assertExit(cp, 6)
        self.assertRegex(cp.stderr, r"\b1\b.*failed")
        self.assertEqual(events(cp.stderr, "migration.start"), [])
        self.assertFalse(table_exists(db, "ntf_later"))

    def test_success_records_execution_time(self):
        db = new_database(self, "apply")
        mig = temp_migrations(self, {
            "1_ntx.sql": up("CREATE TABLE nts (id int);\nSELECT pg_sleep(0.2);\n"
                            "CREATE INDEX CONCURRENTLY nts_idx ON nts (id);\n",
                            "transaction:false"),
        })
        self.assertExit(self.migrate(db, mig), 0)
        row = q1(db, "SELECT status, execution_ms FROM pgboot_history WHERE version = '1'")
        status, ms = row.split("|")
        self.assertEqual(status, "applied")
        self.assertGreaterEqual(int(ms), 200)
        self.assertEqual([(e, v) for e, v, _ in audit(db)], [("applied", "1")])

    def test_running_row_seen_before_the_lock_waits_for_it(self):
        # SPEC §5: a running row before the lock means "in progress elsewhere": wait for
        # the lock; only under the lock is it an error (exit 6).
        db = new_database(self, "apply")
        mig = temp_migrations(self, {"1_a.sql": up("CREATE TABLE rr_a (id int);\n")})
        self.assertExit(self.migrate(db, mig), 0)
        mig.write("2_b.sql", up("CREATE INDEX CONCURRENTLY rr_idx ON rr_a (id);\n",
                                "transaction:false"))
        admin_sql("INSERT INTO pgboot_history VALUES ('2', 'b', 'x', 'running', now(), NULL, "
                  "'another pgboot', 2)", db)
        holder = PsqlSession(self, db)
        holder.execute("SELECT pg_advisory_lock(%s)" % DEFAULT_KEY_SQL)
        p = self.spawn_migrate(db, mig, "--lock-timeout", "20s")
        p.wait_for_line(r"lock\.waiting", timeout=10)
        self.assertIsNone(p.poll(), "it waits for the lock instead of failing at once")
        holder.close()
        cp = p.finish(timeout=20)
        self.assertExit(cp, 6)
        self.assertRegex(cp.stderr, r"\b2\b.*running")


# ---- timeouts -------------------------------------------------------------------------

class TimeoutTest(Base):
    def _locked_table(self, db):
        admin_sql("CREATE TABLE ddl_t (id int)", db)
        holder = PsqlSession(self, db)
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE ddl_t IN ACCESS EXCLUSIVE MODE")
        return holder

    def test_ddl_lock_timeout_retries_then_fails_55P03(self):
        db = new_database(self, "apply")
        mig = temp_migrations(self, {"1_alter.sql": up("ALTER TABLE ddl_t ADD COLUMN c int;\n")})
        self._locked_table(db)
        cp = self.migrate(db, mig, "--ddl-lock-timeout", "200ms", "--ddl-retries", "2",
                          "--log-format", "json")
        self.assertExit(cp, 5)
        retries = events(cp.stderr, "migration.retry")
        self.assertEqual(len(retries), 2, cp.stderr)
        self.assertEqual([int(e["attempt"]) for e in retries], [2, 3])
        self.assertTrue(all(e["sqlstate"] == "55P03" for e in retries), retries)
        self.assertIn("55P03", [e.get("sqlstate") for e in events(cp.stderr, "migration.failed")])
        self.assertLess(cp.elapsed, 10)
        self.assertEqual(q1(db, "SELECT count(*) FROM pg_attribute WHERE attrelid = "
                                "'ddl_t'::regclass AND attname = 'c'"), "0")
        self.assertEqual(history(db), {})

    def test_ddl_lock_released_in_time_succeeds(self):
        db = new_database(self, "apply")
        mig = temp_migrations(self, {"1_alter.sql": up("ALTER TABLE ddl_t ADD COLUMN c int;\n")})
        holder = self._locked_table(db)
        p = self.spawn_migrate(db, mig, "--ddl-lock-timeout", "200ms", "--ddl-retries", "5")
        p.wait_for_line(r"migration\.retry\b.*attempt=2", timeout=10)
        holder.execute("ROLLBACK")
        cp = p.finish(timeout=20)
        self.assertExit(cp, 0)
        self.assertEqual(history(db), {"1": "applied"})
        self.assertEqual(q1(db, "SELECT count(*) FROM pg_attribute WHERE attrelid = "
                                "'ddl_t'::regclass AND attname = 'c'"), "1")

    def test_statement_timeout_cancels_57014(self):
        for opts in ("", "transaction:false"):
            with self.subTest(section=opts or "transactional"):
                db = new_database(self, "apply")
                mig = temp_migrations(self, {
                    "1_slow.sql": up("CREATE TABLE slow_t (id int);\nSELECT pg_sleep(10);\n", opts),
                })
                cp = self.migrate(db, mig, "--statement-timeout", "500ms")
                self.assertExit(cp, 5)
                self.assertIn("57014", cp.stderr)
                self.assertLocation(cp.stderr, os.path.join(str(mig), "1_slow.sql"), 3)
                self.assertLess(cp.elapsed, 5)
                self.assertEqual(history(db), {"1": "failed"} if opts else {})
                self.assertEqual(table_exists(db, "slow_t"), bool(opts))

    def test_lock_timeout_exit_7_names_the_holder(self):
        db = new_database(self, "apply")
        mig = temp_migrations(self, {"1_a.sql": up("CREATE TABLE lt_a (id int);\n")})
        holder = PsqlSession(self, db, appname="the-lock-holder")
        holder_pid = holder.backend_pid()
        holder.execute("SELECT pg_advisory_lock(%s)" % DEFAULT_KEY_SQL)
        # Every spelling of the default table takes the same key (SPEC §5).
        for table in (None, "pgboot_history", '"public"."pgboot_history"', "PUBLIC.PGBOOT_HISTORY"):
            with self.subTest(history_table=table):
                extra = ["--history-table", table] if table else []
                cp = self.migrate(db, mig, "--lock-timeout", "1s", "--log-format", "json",
                                  *extra, env={"PGBOOT_LOCK_LOG_INTERVAL": "200ms"})
                self.assertExit(cp, 7)
                self.assertGreaterEqual(cp.elapsed, 1.0)
                self.assertLess(cp.elapsed, 3.0)
                waits = events(cp.stderr, "lock.waiting")
                self.assertGreaterEqual(len(waits), 3, "at once, then every 200 ms:\n" + cp.stderr)
                self.assertLessEqual(len(waits), 8, cp.stderr)
                for w in waits:
                    self.assertEqual(str(w.get("holder_pid")), str(holder_pid), w)
                    self.assertEqual(w.get("holder_application_name"), "the-lock-holder", w)
                    self.assertRegex(str(w.get("holder_since")), r"^\d{4}-\d\d-\d\dT", w)
                self.assertFalse(table_exists(db, "lt_a"))
        self.assertFalse(table_exists(db, "public.pgboot_history"),
                         "the tables are only ever created under the lock")

    def test_the_lock_is_per_database(self):
        other = new_database(self, "apply")
        db = new_database(self, "apply")
        holder = PsqlSession(self, other)
        holder.execute("SELECT pg_advisory_lock(%s)" % DEFAULT_KEY_SQL)
        mig = temp_migrations(self, {"1_a.sql": up("CREATE TABLE pd_a (id int);\n")})
        cp = self.migrate(db, mig, "--lock-timeout", "1s")
        self.assertExit(cp, 0)
        self.assertEqual(events(cp.stderr, "lock.waiting"), [])
        self.assertEqual(history(db), {"1": "applied"})

    def test_progress_is_logged_during_a_long_migration(self):
        db = new_database(self, "apply")
        mig = temp_migrations(self, {"1_slow.sql": up("SELECT pg_sleep(1);\n")})
        cp = self.migrate(db, mig, "--log-format", "json",
                          env={"PGBOOT_PROGRESS_INTERVAL": "200ms"})
        self.assertExit(cp, 0)
        progress = events(cp.stderr, "migration.progress")
        self.assertGreaterEqual(len(progress), 2, "migration.progress every 200 ms:\n" + cp.stderr)
        self.assertLessEqual(len(progress), 8, cp.stderr)
        self.assertTrue(all(e.get("version") == "1" for e in progress), progress)


# ---- validation blocks migrate --------------------------------------------------------

class TargetBeforeWaitTest(Base):
    def test_target_naming_no_file_fails_before_waiting(self):
        # A usage error is known from the files alone: it must not wait for the server
        # first (and then report "not ready", exit 3, instead of exit 2).
        mig = temp_migrations(self, {"1_a.sql": up("SELECT 1;\n")})
        cp = run(["migrate", "--database-url", closed_url("nodb"), "--migrations-dir", mig,
                  "--wait-timeout", "3s", "--target", "99"])
        self.assertExit(cp, 2)
        self.assertLess(cp.elapsed, 1.5)
        self.assertIn("99", cp.stderr)


class DriftTest(Base):
    def test_edited_applied_file_blocks_migrate_before_anything_runs(self):
        db = new_database(self, "apply")
        mig = temp_migrations(self, {"1_a.sql": up("CREATE TABLE drift_a (id int);\n"),
                                     "2_b.sql": up("CREATE TABLE drift_b (id int);\n")})
        self.assertExit(self.migrate(db, mig), 0)
        mig.write("1_a.sql", up("CREATE TABLE drift_a (id bigint);\n"))
        mig.write("3_c.sql", up("CREATE TABLE drift_c (id int);\n"))
        cp = self.migrate(db, mig)
        self.assertExit(cp, 6)
        self.assertRegex(cp.stderr, r"\b1\b.*(?i:chang|drift|checksum)")
        self.assertEqual(events(cp.stderr, "lock.acquired"), [])
        self.assertEqual(events(cp.stderr, "migration.start"), [])
        self.assertFalse(table_exists(db, "drift_c"))
        self.assertEqual(history(db), {"1": "applied", "2": "applied"})


# ---- run mode -------------------------------------------------------------------------

class RunModeTest(Base):
    def app(self, db, sql):
        info = pg()
        return [os.path.join(info["bin_dir"], "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", info["socket_dir"], "-p", str(info["port"]), "-U", info["user"], "-d", db,
                "-c", sql]

    def test_run_migrations_true_migrates_then_execs_app(self):
        db = new_database(self, "apply")
        mig = temp_migrations(self, {"1_a.sql": up("CREATE TABLE run_t (id int);\n"
                                                   "INSERT INTO run_t VALUES (7);\n")})
        cp = run(["--database-url", url(db), "--migrations-dir", mig, "--wait-timeout", "10s",
                  "--"] + self.app(db, "SELECT 'app saw ' || sum(id) FROM run_t"),
                 env={"RUN_MIGRATIONS": "true"})
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout.strip(), "app saw 7")
        self.assertEqual(history(db), {"1": "applied"})

    def test_run_migrations_false_leaves_the_schema_alone(self):
        db = new_database(self, "apply")
        mig = temp_migrations(self, {"1_a.sql": up("CREATE TABLE run_t (id int);\n")})
        cp = run(["--database-url", url(db), "--migrations-dir", mig, "--wait-timeout", "10s",
                  "--"] + self.app(db, "SELECT to_regclass('public.run_t') IS NULL"),
                 env={"RUN_MIGRATIONS": "false"})
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout.strip(), "t")
        self.assertFalse(table_exists(db, "public.pgboot_history"))
        self.assertFalse(table_exists(db, "public.pgboot_history_log"))
        self.assertFalse(table_exists(db, "run_t"))

    def test_failed_migration_does_not_start_the_app(self):
        db = new_database(self, "apply")
        mig = temp_migrations(self, {"1_a.sql": up("SELECT 1/0;\n")})
        marker = os.path.join(str(temp_dir(self)), "app-ran")
        cp = run(["--database-url", url(db), "--migrations-dir", mig, "--wait-timeout", "10s",
                  "--", "/bin/sh", "-c", "touch %s" % marker], env={"RUN_MIGRATIONS": "1"})
        self.assertExit(cp, 5)
        self.assertFalse(os.path.exists(marker))


# ---- --single-transaction ---------------------------------------------------------------

class SingleTransactionTest(Base):
    def test_failure_in_third_leaves_none_applied(self):
        db = new_database(self, "apply")
        mig = temp_migrations(self, {
            "1_a.sql": up("CREATE TABLE st_a (id int);\n"),
            "2_b.sql": up("CREATE TABLE st_b (id int);\n"),
            "3_c.sql": up("CREATE TABLE st_c (id int);\nSELECT 1/0;\n"),
        })
        cp = self.migrate(db, mig, "--single-transaction")
        self.assertExit(cp, 5)
        self.assertLocation(cp.stderr, os.path.join(str(mig), "3_c.sql"), 3)
        self.assertIn("22012", cp.stderr)
        for t in ("st_a", "st_b", "st_c"):
            self.assertFalse(table_exists(db, t), t)
        self.assertEqual(history(db), {})
        self.assertEqual([e for e, _, _ in audit(db) if e == "applied"], [])

    def test_all_or_nothing_success(self):
        db = new_database(self, "apply")
        mig = temp_migrations(self, {
            "1_a.sql": up("CREATE TABLE st_a (id int);\n"),
            "2_b.sql": up("CREATE TABLE st_b (id int);\n"),
        })
        cp = self.migrate(db, mig, "--single-transaction")
        self.assertExit(cp, 0)
        self.assertEqual(history(db), {"1": "applied", "2": "applied"})
        self.assertEqual(len(events(cp.stderr, "migration.applied")), 2)

    def test_ddl_lock_timeout_retries_the_whole_transaction(self):
        # SPEC §2: with --ddl-lock-timeout a transactional migration is retried from its
        # start on 55P03; with --single-transaction that start is the one transaction's.
        db = new_database(self, "apply")
        admin_sql("CREATE TABLE st_locked (id int)", db)
        mig = temp_migrations(self, {
            "1_a.sql": up("CREATE TABLE st_first (id int);\n"),
            "2_b.sql": up("ALTER TABLE st_locked ADD COLUMN c int;\n"),
        })
        holder = PsqlSession(self, db)
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE st_locked IN ACCESS EXCLUSIVE MODE")
        p = self.spawn_migrate(db, mig, "--single-transaction", "--ddl-lock-timeout", "200ms",
                               "--ddl-retries", "5")
        p.wait_for_line(r"migration\.retry\b.*attempt=2.*55P03", timeout=10)
        holder.execute("ROLLBACK")
        cp = p.finish(timeout=20)
        self.assertExit(cp, 0)
        self.assertEqual(history(db), {"1": "applied", "2": "applied"})
        self.assertEqual(q1(db, "SELECT count(DISTINCT batch) FROM pgboot_history"), "1")

    def test_pending_transaction_false_is_refused_before_anything_runs(self):
        db = new_database(self, "apply")
        mig = temp_migrations(self, {
            "1_a.sql": up("CREATE TABLE stf_a (id int);\n"),
            "2_b.sql": up("CREATE INDEX CONCURRENTLY stf_idx ON stf_a (id);\n",
                          "transaction:false"),
        })
        cp = self.migrate(db, mig, "--single-transaction")
        self.assertExit(cp, 2)
        self.assertIn("2_b.sql", cp.stderr)
        self.assertEqual(events(cp.stderr, "lock.acquired"), [])
        self.assertFalse(table_exists(db, "stf_a"))
        self.assertFalse(table_exists(db, "public.pgboot_history"))


# ---- logs and the examples ------------------------------------------------------------

class LogsAndExamplesTest(Base):
    def test_json_logs_carry_the_apply_events(self):
        db = new_database(self, "apply")
        mig = temp_migrations(self, {"1_add_orders.sql": up("CREATE TABLE jl (id int);\n")})
        cp = self.migrate(db, mig, "--log-format", "json")
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout, "")
        evs = parse_json_lines(cp.stderr)
        names = [e.get("event") for e in evs]
        for name in ("lock.acquired", "migration.start", "migration.applied"):
            self.assertIn(name, names)
        self.assertLess(names.index("lock.acquired"), names.index("migration.start"))
        self.assertLess(names.index("migration.start"), names.index("migration.applied"))
        applied = evs[names.index("migration.applied")]
        self.assertEqual(applied["version"], "1")
        self.assertEqual(applied["name"], "add_orders")
        self.assertIsInstance(applied["ms"], int)
        self.assertEqual(applied["level"], "info")
        self.assertRegex(applied["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        start = evs[names.index("migration.start")]
        self.assertEqual((start["version"], start["name"]), ("1", "add_orders"))
        row = admin_sql("SELECT name, checksum, status, applied_by, batch, execution_ms >= 0, "
                        "applied_at <= now() FROM pgboot_history WHERE version = '1'", db).strip()
        name, checksum, status, by, batch, ms_ok, at_ok = row.split("|")
        self.assertEqual((name, status, batch, ms_ok, at_ok), ("add_orders", "applied", "1", "t", "t"))
        self.assertRegex(checksum, r"^[0-9a-f]{64}$")
        self.assertRegex(by, r"^pgboot \S+ on \S+$", "applied_by is 'pgboot <version> on <host>'")
        (event, version, detail), = audit(db)
        self.assertEqual((event, version), ("applied", "1"))
        self.assertEqual(detail.get("checksum"), checksum)
        self.assertEqual(q1(db, "SELECT by FROM pgboot_history_log"), by)
        self.assertTrue(all(e.get("event") != "db.notice" for e in evs),
                        "no server notices on a clean first run:\n" + cp.stderr)

    def test_repository_examples_apply_and_roll_forward_idempotently(self):
        db = new_database(self, "apply")
        mig = os.path.join(source_dir(), "migrations")
        versions = sorted(f.split("_", 1)[0].lstrip("0") or "0"
                          for f in os.listdir(mig) if f.endswith(".sql") and not f.startswith("."))
        self.assertTrue(versions, "the repository has example migrations")
        cp = self.migrate(db, mig)
        self.assertExit(cp, 0)
        self.assertEqual(history(db), {v: "applied" for v in versions})
        self.assertExit(run(self.args("validate", db, mig)), 0)
        invalid = q1(db, "SELECT count(*) FROM pg_index WHERE NOT indisvalid")
        self.assertEqual(invalid, "0")
        snapshot = admin_sql("SELECT * FROM pgboot_history ORDER BY version", db)
        # Second run: nothing to do, and the lock is not taken — even while someone holds it.
        holder = PsqlSession(self, db)
        holder.execute("SELECT pg_advisory_lock(%s)" % DEFAULT_KEY_SQL)
        cp = self.migrate(db, mig, "--lock-timeout", "1s")
        self.assertExit(cp, 0)
        self.assertEqual(events(cp.stderr, "lock.acquired"), [])
        self.assertEqual(events(cp.stderr, "lock.waiting"), [])
        self.assertEqual(events(cp.stderr, "migration.start"), [])
        self.assertLess(cp.elapsed, 1.0)
        self.assertEqual(admin_sql("SELECT * FROM pgboot_history ORDER BY version", db), snapshot)
        cp = run(self.args("status", db, mig, "--fail-on-pending"))
        self.assertExit(cp, 0)


# ---- privileges -----------------------------------------------------------------------

class PrivilegeTest(Base):
    def test_role_without_create_on_database_can_migrate_into_public(self):
        # A typical app/migration role: may create tables in schema public, may not create
        # schemas. Making the history table must not need CREATE on the database.
        role = "pgboot_mig_%d_%d" % (os.getpid(), int(time.monotonic() * 1000) % 100000)
        admin_sql("CREATE ROLE %s LOGIN PASSWORD 'mig-pw'" % role)
        self.addCleanup(admin_sql, "DROP ROLE IF EXISTS %s" % role, "postgres", False)
        db = new_database(self, "apply")
        admin_sql("REVOKE CREATE ON DATABASE %s FROM PUBLIC; GRANT CONNECT ON DATABASE %s TO %s"
                  % (quote_ident(db), quote_ident(db), role))
        admin_sql("GRANT USAGE, CREATE ON SCHEMA public TO %s" % role, db)
        self.addCleanup(admin_sql, "DROP OWNED BY %s" % role, db, False)
        mig = temp_migrations(self, {"1_a.sql": up("CREATE TABLE priv_a (id int);\n")})
        cp = run(["migrate", "--database-url", url(db, user=role, password="mig-pw"),
                  "--migrations-dir", mig, "--wait-timeout", "10s"])
        self.assertExit(cp, 0)
        self.assertEqual(history(db), {"1": "applied"})
        self.assertEqual(q1(db, "SELECT tableowner FROM pg_tables WHERE tablename = 'priv_a'"),
                         role)


if __name__ == "__main__":
    unittest.main()
