#!/usr/bin/env python3
"""pgboot behind a real PgBouncer 1.18 in its default configuration (docs/pooler.md).

Connecting (nothing in the startup packet that PgBouncer refuses, its 08P01
errors classified by message), the lock-mode verdict (`lock.mode`), the
settings of each mode (SET after connecting in session mode, SET LOCAL in each
transaction in transaction mode) and PGBOOT_DATABASE_URL (pooled URL for the
app, direct URL for pgboot).
"""

import os
import signal
import threading
import unittest

from harness.pgbouncer import PGBOUNCER, start_pgbouncer
from harness.case import PgbootTestCase, skip_loudly, time_limit
from harness.files import temp_dir, temp_migrations, up
from harness.logs import events
from harness.proc import StartBarrier, run, spawn, wait_until
from harness.server import closed_url, conninfo, new_database, url
from harness.sql import admin_sql, advisory_locks, audit, history, table_exists


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

    def test_transaction_mode_sets_them_local_in_the_migrations_transaction(self):
        cp = self.pgboot(["migrate", "--migrations-dir", self.mig], env={"DATABASE_URL": self.pooled})
        self.assertExit(cp, 0)
        self.assertEqual(self.lock_mode(cp)["mode"], "transaction")
        self.assertEqual(self.seen(), "on 1s \\x")

    def test_a_quoted_failure_message_still_leaves_its_failed_audit_row(self):
        mig = temp_migrations(self, {"1_ok.sql": up("CREATE TABLE ok (id int);"),
                                     "2_bad.sql": up('SELECT * FROM "no\\such table";')})
        cp = self.pgboot(["migrate", "--migrations-dir", mig], env={"DATABASE_URL": self.pooled})
        self.assertExit(cp, 5)
        failed = [a for a in audit(self.db) if a[0] == "failed"]
        self.assertEqual(len(failed), 1, audit(self.db))
        self.assertEqual(failed[0][1], "2")
        self.assertIn('"no\\such table"', failed[0][2]["message"])
        self.assertEqual(history(self.db), {"1": "applied"})

    def test_session_mode_sets_them_after_connecting(self):
        cp = self.pgboot(["migrate", "--migrations-dir", self.mig], env={"DATABASE_URL": self.direct})
        self.assertExit(cp, 0)
        self.assertEqual(self.lock_mode(cp)["mode"], "session")
        self.assertEqual(self.seen(), "on 1s \\x")


def slow_set(n=30, slow=(7, 15, 23), sleep=0.3):
    """n migrations, each creating a table and inserting a row; a few sleep."""
    files = {}
    for i in range(1, n + 1):
        body = "CREATE TABLE m%d (id int);\nINSERT INTO m%d VALUES (%d);" % (i, i, i)
        if i in slow:
            body += "\nSELECT pg_sleep(%s);" % sleep
        files["%03d_m%d.sql" % (i, i)] = up(body)
    return files


class ConcurrencyTest(PoolerCase):
    """16 replicas start together through the pooler: each migration exactly once."""

    racers = 16

    def race(self, env_extra=None, during=None):
        mig = temp_migrations(self, slow_set())
        barrier = StartBarrier(self.racers, test=self)
        env = {"DATABASE_URL": self.pooled, "PGBOOT_WAIT_TIMEOUT": "60s",
               "PGBOOT_LOCK_LOG_INTERVAL": "200ms"}
        env.update(env_extra or {})
        procs = [spawn(["migrate", "--migrations-dir", mig], env=env, test=self, barrier=barrier)
                 for _ in range(self.racers)]
        barrier.release()
        seen = during() if during else None
        results = [p.finish(timeout=time_limit(110)) for p in procs]
        for cp in results:
            self.assertExit(cp, 0)
            self.assertEqual(self.lock_mode(cp)["mode"], "transaction")
        self.assertEqual(history(self.db), {str(i): "applied" for i in range(1, 31)})
        applied = [a[1] for a in audit(self.db) if a[0] == "applied"]
        self.assertEqual(sorted(applied, key=int), [str(i) for i in range(1, 31)])
        for i in range(1, 31):
            self.assertEqual(admin_sql("SELECT count(*) FROM m%d" % i, self.db).strip(), "1")
        self.assertEqual(advisory_locks(self.db), 0)
        return results, seen

    def test_sixteen_racers_pool_size_5_apply_each_migration_once(self):
        results, _ = self.race()
        waiting = sum(len(events(cp.stderr, "lock.waiting")) for cp in results)
        self.assertGreater(waiting, 0, "the racers never overlapped")
        skipped = sum(len(events(cp.stderr, "migration.skipped")) for cp in results)
        applied = sum(len(events(cp.stderr, "migration.applied")) for cp in results)
        self.assertEqual(applied, 30)
        self.assertGreater(skipped, 0)


class PoolSizeOneTest(ConcurrencyTest):
    pool_size = 1

    def test_sixteen_racers_pool_size_5_apply_each_migration_once(self):
        pass  # the pool-size-1 variant below

    def test_sixteen_racers_pool_size_1_queue_in_the_pooler(self):
        stop = threading.Event()
        peak = [0]

        def watch():
            while not stop.is_set():
                try:
                    peak[0] = max(peak[0], self.bouncer.cl_waiting(self.db))
                except RuntimeError:
                    pass
                stop.wait(0.05)

        t = threading.Thread(target=watch, daemon=True)

        def during():
            t.start()

        try:
            self.race(during=during)
        finally:
            stop.set()
            t.join(5)
        self.assertGreater(peak[0], 0, "SHOW POOLS never showed a waiting client")


class KillTest(PoolerCase):
    def test_a_racer_killed_mid_migration_leaves_no_lock_and_the_others_finish(self):
        mig = temp_migrations(self, {
            "1_a.sql": up("CREATE TABLE a (id int);"),
            "2_slow.sql": up("CREATE TABLE slow (id int);\nSELECT pg_sleep(3);"),
            "3_c.sql": up("CREATE TABLE c (id int);")})
        env = {"DATABASE_URL": self.pooled, "PGBOOT_LOCK_LOG_INTERVAL": "200ms"}
        victim = spawn(["migrate", "--migrations-dir", mig], env=env, test=self)
        victim.wait_for_line(r"migration\.start.*version=2", timeout=time_limit(20))
        others = [spawn(["migrate", "--migrations-dir", mig], env=env, test=self)
                  for _ in range(3)]
        for p in others:
            p.wait_for_line(r"lock\.waiting", timeout=time_limit(20))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        for p in others:
            self.assertExit(p.finish(timeout=time_limit(40)), 0)
        self.assertEqual(history(self.db), {"1": "applied", "2": "applied", "3": "applied"})
        self.assertEqual(admin_sql("SELECT count(*) FROM pgboot_history_log WHERE event = "
                                   "'applied' AND version = '2'", self.db).strip(), "1")
        wait_until(lambda: advisory_locks(self.db) == 0, time_limit(10),
                   "no advisory lock left on any server connection")


class RefusalTest(PoolerCase):
    def test_transaction_false_is_refused_through_the_pooler_and_nothing_runs(self):
        mig = temp_migrations(self, {
            "1_a.sql": up("CREATE TABLE a (id int);"),
            "2_idx.sql": up("CREATE INDEX CONCURRENTLY a_id ON a (id);", "transaction:false")})
        cp = self.pgboot(["migrate", "--migrations-dir", mig], env={"DATABASE_URL": self.pooled})
        self.assertExit(cp, 2)
        self.assertIn("--lock-mode session", cp.stderr)
        self.assertIn("PGBOOT_DATABASE_URL", cp.stderr)
        self.assertIn("2_idx.sql", cp.stderr)
        self.assertFalse(table_exists(self.db, "pgboot_history"))
        self.assertFalse(table_exists(self.db, "a"))

        cp = self.pgboot(["migrate", "--migrations-dir", mig],
                         env={"DATABASE_URL": self.pooled, "PGBOOT_DATABASE_URL": self.direct})
        self.assertExit(cp, 0)
        self.assertEqual(history(self.db), {"1": "applied", "2": "applied"})

    def test_a_running_row_once_holding_the_lock_is_exit_2_with_the_way_out(self):
        mig = temp_migrations(self, {"1_a.sql": up("CREATE TABLE a (id int);"),
                                     "2_b.sql": up("CREATE TABLE b (id int);")})
        self.assertExit(self.pgboot(["migrate", "--migrations-dir", mig, "--target", "1"],
                                    env={"DATABASE_URL": self.direct}), 0)
        admin_sql("INSERT INTO pgboot_history (version, name, checksum, status, applied_by, batch) "
                  "VALUES ('2', 'b', 'x', 'running', 'test', 9)", self.db)
        cp = self.pgboot(["migrate", "--migrations-dir", mig], env={"DATABASE_URL": self.pooled})
        self.assertExit(cp, 2)
        self.assertIn("running", cp.stderr)
        self.assertIn("--lock-mode session", cp.stderr)
        self.assertFalse(table_exists(self.db, "b"))


class MixedModesTest(PoolerCase):
    def test_session_and_transaction_runners_exclude_each_other(self):
        mig = temp_migrations(self, {
            "1_slow.sql": up("CREATE TABLE s (id int);\nSELECT pg_sleep(1.5);"),
            "2_b.sql": up("CREATE TABLE b (id int);")})
        env = {"PGBOOT_LOCK_LOG_INTERVAL": "200ms"}
        session = spawn(["migrate", "--migrations-dir", mig],
                        env=dict(env, DATABASE_URL=self.direct), test=self)
        session.wait_for_line(r"migration\.start.*version=1", timeout=time_limit(20))
        txn = spawn(["migrate", "--migrations-dir", mig],
                    env=dict(env, DATABASE_URL=self.pooled), test=self)
        txn.wait_for_line(r"lock\.waiting", timeout=time_limit(20))
        s_cp, t_cp = session.finish(time_limit(30)), txn.finish(time_limit(30))
        self.assertExit(s_cp, 0)
        self.assertExit(t_cp, 0)
        self.assertEqual(self.lock_mode(s_cp)["mode"], "session")
        self.assertEqual(self.lock_mode(t_cp)["mode"], "transaction")
        self.assertEqual(history(self.db), {"1": "applied", "2": "applied"})
        self.assertEqual(len([a for a in audit(self.db) if a[0] == "applied"]), 2)

    def test_a_transaction_runner_holds_off_a_session_runner(self):
        mig = temp_migrations(self, {
            "1_slow.sql": up("CREATE TABLE s (id int);\nSELECT pg_sleep(1.5);"),
            "2_b.sql": up("CREATE TABLE b (id int);")})
        env = {"PGBOOT_LOCK_LOG_INTERVAL": "200ms"}
        txn = spawn(["migrate", "--migrations-dir", mig],
                    env=dict(env, DATABASE_URL=self.pooled), test=self)
        txn.wait_for_line(r"migration\.start.*version=1", timeout=time_limit(20))
        session = spawn(["migrate", "--migrations-dir", mig],
                        env=dict(env, DATABASE_URL=self.direct), test=self)
        session.wait_for_line(r"lock\.waiting", timeout=time_limit(20))
        self.assertExit(txn.finish(time_limit(30)), 0)
        self.assertExit(session.finish(time_limit(30)), 0)
        self.assertEqual(history(self.db), {"1": "applied", "2": "applied"})
        self.assertEqual(len([a for a in audit(self.db) if a[0] == "applied"]), 2)


class OperatorTest(PoolerCase):
    """rollback, repair and baseline through the pooler, each under the transaction lock."""

    def files(self):
        return {"1_a.sql": "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n",
                "2_b.sql": "-- migrate:up\nCREATE TABLE b (id int);\n-- migrate:down\nDROP TABLE b;\n",
                "3_c.sql": "-- migrate:up\nCREATE TABLE c (id int);\n-- migrate:down\nDROP TABLE c;\n"}

    def test_rollback_through_the_pooler(self):
        mig = temp_migrations(self, self.files())
        env = {"DATABASE_URL": self.pooled}
        self.assertExit(self.pgboot(["migrate", "--migrations-dir", mig], env=env), 0)
        cp = self.pgboot(["rollback", "--steps", "2", "--migrations-dir", mig], env=env)
        self.assertExit(cp, 0)
        self.assertEqual(self.lock_mode(cp)["mode"], "transaction")
        self.assertEqual(history(self.db), {"1": "applied"})
        self.assertFalse(table_exists(self.db, "c"))
        self.assertFalse(table_exists(self.db, "b"))
        self.assertEqual([a[1] for a in audit(self.db) if a[0] == "rolled_back"], ["3", "2"])

    def test_rollback_refuses_a_transaction_false_down_through_the_pooler(self):
        files = self.files()
        files["3_c.sql"] = ("-- migrate:up\nCREATE TABLE c (id int);\n"
                            "-- migrate:down transaction:false\nDROP TABLE c;\n")
        mig = temp_migrations(self, files)
        self.assertExit(self.pgboot(["migrate", "--migrations-dir", mig],
                                    env={"DATABASE_URL": self.direct}), 0)
        cp = self.pgboot(["rollback", "--migrations-dir", mig], env={"DATABASE_URL": self.pooled})
        self.assertExit(cp, 2)
        self.assertIn("--lock-mode session", cp.stderr)
        self.assertTrue(table_exists(self.db, "c"))

    def test_repair_through_the_pooler(self):
        mig = temp_migrations(self, self.files())
        env = {"DATABASE_URL": self.pooled}
        self.assertExit(self.pgboot(["migrate", "--migrations-dir", mig], env=env), 0)
        admin_sql("UPDATE pgboot_history SET checksum = 'old' WHERE version = '2'", self.db)
        admin_sql("INSERT INTO pgboot_history (version, name, checksum, status, applied_by, batch) "
                  "VALUES ('4', 'd', 'x', 'failed', 'test', 9)", self.db)
        cp = self.pgboot(["repair", "--yes", "--migrations-dir", mig], env=env)
        self.assertExit(cp, 0)
        self.assertEqual(history(self.db), {"1": "applied", "2": "applied", "3": "applied"})
        repaired = [a[1] for a in audit(self.db) if a[0] == "repaired"]
        self.assertEqual(sorted(repaired), ["2", "4"])
        self.assertExit(self.pgboot(["validate", "--migrations-dir", mig], env=env), 0)

    def test_baseline_through_the_pooler(self):
        mig = temp_migrations(self, self.files())
        env = {"DATABASE_URL": self.pooled}
        cp = self.pgboot(["baseline", "2", "--migrations-dir", mig], env=env)
        self.assertExit(cp, 0)
        self.assertEqual(history(self.db), {"1": "applied", "2": "applied"})
        self.assertFalse(table_exists(self.db, "a"))
        self.assertExit(self.pgboot(["migrate", "--migrations-dir", mig], env=env), 0)
        self.assertEqual(history(self.db), {"1": "applied", "2": "applied", "3": "applied"})


class RunModeTest(PoolerCase):
    def test_run_mode_migrates_through_the_pooler_then_execs(self):
        mig = temp_migrations(self, slow_set(5, slow=()))
        cp = self.pgboot(["--migrations-dir", mig, "--", "/bin/sh", "-c", "echo app-ran"],
                         env={"DATABASE_URL": self.pooled, "RUN_MIGRATIONS": "true"})
        self.assertExit(cp, 0)
        self.assertIn("app-ran", cp.stdout)
        self.assertEqual(len(history(self.db)), 5)

    def test_single_transaction_through_the_pooler(self):
        mig = temp_migrations(self, slow_set(5, slow=()))
        cp = self.pgboot(["migrate", "--migrations-dir", mig, "--single-transaction"],
                         env={"DATABASE_URL": self.pooled})
        self.assertExit(cp, 0)
        self.assertEqual(len(history(self.db)), 5)
        batches = set(admin_sql("SELECT DISTINCT batch FROM pgboot_history", self.db).split())
        self.assertEqual(batches, {"1"})


if __name__ == "__main__":
    unittest.main()
