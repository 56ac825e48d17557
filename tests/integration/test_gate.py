#!/usr/bin/env python3
"""The schema gate (docs/gate.md, docs/reference.md "The schema gate") against a
real PostgreSQL 15: --wait-for-migrations in `wait` and in run mode waits after
readiness until the history holds every file with its checksum; woken by the
NOTIFY that `migrate` sends; the fail-fast exits 6, the deadline's exit 3, signals,
a restarted server, a role without the grant.

Waiting tests wait for log lines (gate.waiting, gate.reconnect), never sleep
blindly; PGBOOT_GATE_LOG_INTERVAL is shortened so that a repeated gate.waiting
proves the gate is still waiting.
"""

import os
import re
import signal
import sys
import time
import unittest

from harness.case import PgbootTestCase, time_limit
from harness.files import temp_dir, temp_migrations
from harness.logs import events
from harness.pgbouncer import start_pgbouncer
from harness.proc import run, spawn
from harness.server import new_cluster, new_database, new_role, url
from harness.sql import PsqlSession, admin_sql

FILES = {
    "1_users.sql": "-- migrate:up\nCREATE TABLE users (id int PRIMARY KEY);\n"
                   "-- migrate:down\nDROP TABLE users;\n",
    "2_orders.sql": "-- migrate:up\nCREATE TABLE orders (id int PRIMARY KEY, user_id int);\n"
                    "-- migrate:down\nDROP TABLE orders;\n",
    "3_items.sql": "-- migrate:up\nCREATE TABLE items (id int PRIMARY KEY);\n"
                   "-- migrate:down\nDROP TABLE items;\n",
}
FUTURE = {"4_more.sql": "-- migrate:up\nCREATE TABLE more (id int);\n"}
GATE_ENV = {"PGBOOT_GATE_LOG_INTERVAL": "300ms"}



def subset(*names, extra=None):
    files = {n: c for n, c in FILES.items() if n.split("_")[0] in names}
    files.update(extra or {})
    return files


class GateBase(PgbootTestCase):
    def setUp(self):
        self.db = new_database(self, "gate")
        self.dir = temp_migrations(self, FILES)

    def gate_args(self, *extra, db=None, dir=None, command="wait", timeout="20s", u=None):
        return [command, "--wait-for-migrations", "--database-url", u or url(db or self.db),
                "--migrations-dir", str(dir or self.dir), "--wait-timeout", "10s",
                "--migrations-wait-timeout", timeout] + list(extra)

    def migrate(self, dir=None, db=None, *extra, u=None):
        cp = run(["migrate", "--database-url", u or url(db or self.db),
                              "--migrations-dir", str(dir or self.dir), "--wait-timeout", "10s"]
                             + list(extra))
        self.assertExit(cp, 0)
        return cp

    def sql(self, text, db=None):
        return admin_sql(text, db or self.db)

    def spawn_gate(self, *extra, env=None, **kw):
        return spawn(self.gate_args(*extra, **kw), env=dict(GATE_ENV, **(env or {})), test=self)

    def reason(self, cp):
        """The exit event's reason, unescaped."""
        exits = events(cp.stderr, "exit")
        self.assertEqual(len(exits), 1, cp.stderr)
        return exits[0]["reason"]

    def assertFailsAtOnce(self, cp, *needles):
        self.assertExit(cp, 6)
        self.assertLess(cp.elapsed, time_limit(3.0),
                        "exit 6 must come at once, not after the deadline")
        for n in needles:
            self.assertIn(n, self.reason(cp))
        self.assertEqual(events(cp.stderr, "gate.open"), [], cp.stderr)


class GateWaitsThenOpens(GateBase):
    def test_waits_while_nothing_is_migrated_then_opens_right_after_migrate(self):
        p = self.spawn_gate()
        first = p.wait_for_line(r"gate\.waiting pending=3 next=1\b", timeout=15)
        self.assertTrue(first)
        # Still waiting, and saying so again: the repeated line is the proof.
        p.err.wait_for(r"gate\.waiting pending=3 next=1 .*ms=[1-9]", timeout=10)
        self.assertIsNone(p.poll(), "the gate opened with nothing migrated")
        cp = self.migrate()
        migrated_at = time.monotonic()
        done = p.finish(timeout=15)
        self.assertExit(done, 0)
        lag = p.exited_at - migrated_at
        sys.stderr.write("[gate exit - migrate exit: %+.3fs] " % lag)
        self.assertLess(lag, time_limit(0.5), "the gate opened %.3fs after migrate finished" % lag)
        [opened] = events(done.stderr, "gate.open")
        # migrate logs migration.applied only after its COMMIT returns, so a gate woken by
        # that commit may log gate.open a millisecond earlier; the start of the last
        # migration is the event it cannot precede.
        last_started = events(cp.stderr, "migration.start")[-1]
        self.assertEqual(last_started["version"], "3")
        self.assertGreaterEqual(opened["ts"], last_started["ts"], "opened before the last migration began")
        self.assertEqual(events(done.stderr, "migration.applied"), [], "the gate never migrates")

    def test_notification_wakes_it_at_once(self):
        # Versions 1 and 2 are applied; 3 is pending. The debug line gate.notified
        # says the notification, not a poll, woke it.
        self.migrate(temp_migrations(self, subset("1", "2")))
        p = self.spawn_gate("--log-level", "debug")
        p.wait_for_line(r"gate\.waiting pending=1 next=3\b", timeout=15)
        t0 = time.monotonic()
        self.migrate()
        done = p.finish(timeout=15)
        self.assertExit(done, 0)
        self.assertLess(p.exited_at - t0, time_limit(0.8), done.stderr)
        notified = events(done.stderr, "gate.notified")
        self.assertTrue(notified, done.stderr)
        self.assertEqual(notified[0]["payload"], "public.pgboot_history")
        names = [e["event"] for e in events(done.stderr)]
        self.assertLess(names.index("gate.notified"), names.index("gate.open"))

    def test_migrate_notifies_channel_pgboot_with_the_quoted_table(self):
        listener = PsqlSession(self, self.db)
        listener.execute("LISTEN pgboot")
        self.migrate(None, None, "--history-table", '"Odd Schema"."My History"')
        got = listener.execute("SELECT 1")
        notes = [l for l in listener.err.lines + listener.out.lines if "notification" in l]
        text = "\n".join(notes)
        self.assertEqual(text.count('"pgboot"'), 3, "one per migration:\n%s\n%s" % (text, got))
        self.assertIn('payload ""Odd Schema"."My History""', text)

    def test_run_mode_execs_the_app_after_the_gate(self):
        self.migrate()
        cp = run(self.gate_args(command="run") + ["--", "sh", "-c", "echo app ran"],
                             env=GATE_ENV)
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout, "app ran\n")
        names = [e["event"] for e in events(cp.stderr)]
        self.assertLess(names.index("wait.ready"), names.index("gate.open"))
        self.assertLess(names.index("gate.open"), names.index("exec"))

    def test_wait_gates_whatever_run_migrations_says(self):
        cp = run(self.gate_args(timeout="1s"), env=dict(GATE_ENV, RUN_MIGRATIONS="true"))
        self.assertExit(cp, 3)
        self.assertEqual(self.sql("SELECT to_regclass('public.pgboot_history') IS NULL").strip(), "t")

    def test_future_versions_open_it(self):
        self.migrate(temp_migrations(self, dict(FILES, **FUTURE)))
        cp = run(self.gate_args(), env=GATE_ENV)
        self.assertExit(cp, 0)
        self.assertTrue(events(cp.stderr, "gate.open"), cp.stderr)
        self.assertEqual(events(cp.stderr, "gate.waiting"), [])

    def test_empty_migrations_dir_opens_at_once(self):
        cp = run(self.gate_args(dir=temp_migrations(self, {})), env=GATE_ENV)
        self.assertExit(cp, 0)
        self.assertTrue(events(cp.stderr, "gate.open"), cp.stderr)


class GateKeepsWaiting(GateBase):
    def test_missing_history_table_waits_until_the_deadline_naming_what_is_pending(self):
        cp = run(self.gate_args(timeout="1500ms"), env=GATE_ENV)
        self.assertExit(cp, 3)
        self.assertGreaterEqual(cp.elapsed, 1.5)
        self.assertLess(cp.elapsed, time_limit(5.0))
        self.assertIn("migrations not applied within 1500ms (--migrations-wait-timeout): "
                      "3 pending: 1, 2, 3", self.reason(cp))
        waiting = events(cp.stderr, "gate.waiting")
        self.assertGreaterEqual(len(waiting), 3, "at once, then every 300ms")
        self.assertEqual((waiting[0]["pending"], waiting[0]["next"]), ("3", "1"))

    def test_deadline_counts_from_readiness_not_from_the_start(self):
        cluster = new_cluster(self)
        p = spawn(self.gate_args(u=cluster.url("postgres"), timeout="1s"), env=GATE_ENV, test=self)
        time.sleep(1.5)  # the server comes later than the gate's whole deadline
        self.assertIsNone(p.poll())
        cluster.start()
        done = p.finish(timeout=20)
        self.assertExit(done, 3)
        names = [e["event"] for e in events(done.stderr)]
        self.assertIn("wait.ready", names)
        self.assertIn("gate.waiting", names)

    def test_a_running_row_keeps_it_waiting(self):
        self.migrate()
        self.sql("UPDATE pgboot_history SET status = 'running' WHERE version = '3'")
        p = self.spawn_gate()
        p.wait_for_line(r"gate\.waiting pending=1 next=3 running=3\b", timeout=15)
        p.err.wait_for(r"gate\.waiting pending=1 next=3 running=3 ms=[1-9]", timeout=10)
        self.assertIsNone(p.poll())
        self.sql("UPDATE pgboot_history SET status = 'applied' WHERE version = '3'")
        self.assertExit(p.finish(timeout=10), 0)

    def test_a_running_row_of_a_future_version_does_not(self):
        self.migrate(temp_migrations(self, dict(FILES, **FUTURE)))
        self.sql("UPDATE pgboot_history SET status = 'running' WHERE version = '4'")
        self.assertExit(run(self.gate_args(), env=GATE_ENV), 0)

    def test_out_of_order_allowed_waits_for_the_gap(self):
        self.migrate(temp_migrations(self, subset("1", "3")))
        cp = run(self.gate_args("--out-of-order", timeout="1s"), env=GATE_ENV)
        self.assertExit(cp, 3)
        self.assertIn("1 pending: 2", self.reason(cp))


class GateFailsAtOnce(GateBase):
    def test_drift(self):
        self.migrate()
        self.dir.write("2_orders.sql", FILES["2_orders.sql"].replace("user_id int", "uid int"))
        cp = run(self.gate_args(), env=GATE_ENV)
        self.assertFailsAtOnce(cp, "the gate cannot open", "2 (orders) was changed")

    def test_a_failed_row(self):
        self.migrate()
        self.sql("UPDATE pgboot_history SET status = 'failed' WHERE version = '2'")
        cp = run(self.gate_args(), env=GATE_ENV)
        self.assertFailsAtOnce(cp, "2 (orders) is marked failed", "pgboot repair")

    def test_a_deleted_version(self):
        self.migrate()
        cp = run(self.gate_args(dir=temp_migrations(self, subset("1", "3"))),
                             env=GATE_ENV)
        self.assertFailsAtOnce(cp, "2 (orders) is applied but its file is missing")

    def test_an_out_of_order_pending_version(self):
        self.migrate(temp_migrations(self, subset("1", "3")))
        cp = run(self.gate_args(), env=GATE_ENV)
        self.assertFailsAtOnce(cp, "2 (orders) is pending but older than", "--out-of-order")

    def test_a_role_without_select_on_the_history_table_is_told_the_grant(self):
        self.migrate()
        role = new_role(self)
        cp = run(self.gate_args(u=url(self.db, user=role, password="R0le-Pw!")),
                             env=GATE_ENV)
        self.assertFailsAtOnce(cp, "permission denied for table pgboot_history",
                               'GRANT SELECT ON "public"."pgboot_history" TO "%s";' % role)
        self.sql('GRANT SELECT ON public.pgboot_history TO "%s"' % role)
        self.addCleanup(self.sql, 'REVOKE ALL ON public.pgboot_history FROM "%s"' % role)
        self.assertExit(run(self.gate_args(u=url(self.db, user=role,
                                                              password="R0le-Pw!")),
                                        env=GATE_ENV), 0)

    def test_a_role_without_usage_on_the_history_schema_is_told_the_grant(self):
        self.migrate(None, None, "--history-table", "ops.hist")
        role = new_role(self)
        cp = run(self.gate_args("--history-table", "ops.hist",
                                            u=url(self.db, user=role, password="R0le-Pw!")),
                             env=GATE_ENV)
        self.assertFailsAtOnce(cp, "permission denied for schema ops",
                               'GRANT USAGE ON SCHEMA "ops" TO "%s";' % role)


class GateSignalsAndConnections(GateBase):
    def test_sigterm_while_gated_is_143_at_once(self):
        p = self.spawn_gate()
        p.wait_for_line(r"gate\.waiting", timeout=15)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        done = p.finish(timeout=10)
        self.assertExit(done, 143)
        self.assertLess(p.exited_at - t0, time_limit(1.0))

    def test_server_restarted_while_gated_reconnects_and_still_opens(self):
        cluster = new_cluster(self)
        cluster.start()
        u = cluster.url("postgres")
        p = self.spawn_gate(u=u, timeout="60s")
        p.wait_for_line(r"gate\.waiting pending=3", timeout=15)
        cluster.stop()
        p.wait_for_line(r"gate\.reconnect", timeout=15)
        n = len(p.err.lines)
        cluster.start()
        p.err.wait_for(r"wait\.ready", timeout=20, start=n)  # the session is back
        self.migrate(u=u)
        done = p.finish(timeout=15)
        self.assertExit(done, 0)
        self.assertTrue(events(done.stderr, "gate.open"), done.stderr)

    def test_through_pgbouncer_in_transaction_pooling_it_opens_by_polling(self):
        # The app's replicas reach the database through the pooler; the migrator
        # over a direct connection, as docs/gate.md advises.
        bouncer = start_pgbouncer(self, pool_mode="transaction", default_pool_size=2)
        p = self.spawn_gate("--log-level", "debug", u=bouncer.url(self.db), timeout="30s")
        p.wait_for_line(r"gate\.waiting pending=3", timeout=15)
        self.migrate()
        done = p.finish(timeout=15)
        self.assertExit(done, 0)
        self.assertRegex(done.stderr, r"lock\.mode .*mode=transaction")
        self.assertEqual(events(done.stderr, "gate.notified"), [], "no LISTEN through a pooler")
        self.assertTrue(events(done.stderr, "gate.open"), done.stderr)


class GateSettings(GateBase):
    def test_bad_wait_timeout_is_exit_2_naming_it(self):
        cp = run(self.gate_args(timeout="soon"))
        self.assertExit(cp, 2)
        self.assertIn('invalid value "soon" for --migrations-wait-timeout', self.reason(cp))

    def test_moot_on_migrate_said_once_at_info(self):
        cp = run(["migrate", "--wait-for-migrations", "--database-url", url(self.db),
                              "--migrations-dir", str(self.dir)])
        self.assertExit(cp, 0)
        moot = events(cp.stderr, "gate.moot")
        self.assertEqual(len(moot), 1, cp.stderr)
        self.assertEqual(moot[0]["level"].lower(), "info")
        self.assertEqual(len(events(cp.stderr, "migration.applied")), 3)

    def test_moot_in_run_mode_with_run_migrations(self):
        cp = run(["--wait-for-migrations", "--database-url", url(self.db),
                              "--migrations-dir", str(self.dir), "--", "true"],
                             env={"RUN_MIGRATIONS": "true"})
        self.assertExit(cp, 0)
        self.assertEqual(len(events(cp.stderr, "gate.moot")), 1, cp.stderr)
        self.assertEqual(events(cp.stderr, "gate.waiting"), [])

    def test_env_and_toml_turn_it_on(self):
        env = dict(GATE_ENV, PGBOOT_WAIT_FOR_MIGRATIONS="yes", PGBOOT_MIGRATIONS_WAIT_TIMEOUT="1s")
        base = ["wait", "--database-url", url(self.db), "--migrations-dir", str(self.dir)]
        cp = run(base, env=env)
        self.assertExit(cp, 3)
        d = temp_dir(self)
        toml = d.write("pgboot.toml", "[run]\nwait_for_migrations = true\n"
                                      "migrations_wait_timeout = \"1s\"\n")
        cp = run(base + ["--config", str(toml)], env=GATE_ENV)
        self.assertExit(cp, 3)
        self.assertTrue(events(cp.stderr, "gate.waiting"))


if __name__ == "__main__":
    unittest.main()
