#!/usr/bin/env python3
"""Verify sections against a real PostgreSQL 15 (docs/reference.md, "Verify sections").

A failing check rolls its migration back (exit 5, file:line); a non-boolean
check names its type; `pgboot verify` reports a check a later manual change
broke (exit 6) and doctor reports it as a `verify` finding; adding a verify
section to an applied file is not drift; misplaced and repeated markers are
exit 8; an orphan .verify.sql is a files.orphan warning.
"""

import json
import os
import unittest

from harness.case import PgbootTestCase, skip_loudly
from harness.files import temp_migrations
from harness.logs import events
from harness.pgbouncer import PGBOUNCER, start_pgbouncer
from harness.proc import run, spawn, wait_until
from harness.server import new_database, url
from harness.sql import (admin_sql, advisory_locks, audit, backends_running, history,
                         history_rows, table_exists)

ORDERS = ("-- migrate:up\nCREATE TABLE orders (id int PRIMARY KEY, total int NOT NULL);\n"
          "-- migrate:verify\n"
          "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE tablename = 'orders');\n"
          "SELECT count(*) = 0 FROM orders;\n"
          "-- migrate:down\nDROP TABLE orders;\n")


class VerifyTest(PgbootTestCase):
    def pgboot(self, db, mig, *args, env=None):
        e = {"DATABASE_URL": url(db), "PGBOOT_MIGRATIONS_DIR": mig, "PGBOOT_WAIT_TIMEOUT": "10s"}
        e.update(env or {})
        return run([str(a) for a in args], env=e)

    def test_passing_checks_apply_and_verify_reports_them(self):
        db = new_database(self, "vf")
        mig = temp_migrations(self, {"1_orders.sql": ORDERS})
        self.assertExit(self.pgboot(db, mig, "migrate"), 0)
        self.assertEqual(list(history_rows(db)), ["1"])
        cp = self.pgboot(db, mig, "verify", "--output", "json")
        self.assertExit(cp, 0)
        out = json.loads(cp.stdout)
        self.assertEqual(out["failed"], 0)
        self.assertEqual([(c["version"], c["line"], c["ok"]) for c in out["checks"]],
                         [("1", 4, True), ("1", 5, True)])

    def test_failing_check_rolls_back_with_file_line(self):
        db = new_database(self, "vf")
        text = ORDERS.replace("SELECT count(*) = 0", "SELECT count(*) = 1")
        mig = temp_migrations(self, {"1_orders.sql": text})
        cp = self.pgboot(db, mig, "migrate")
        self.assertExit(cp, 5)
        self.assertFalse(table_exists(db, "orders"))
        self.assertEqual(dict(history_rows(db)), {})
        ev = events(cp.stderr, "migration.verify_failed")
        self.assertEqual(len(ev), 1, cp.stderr)
        self.assertEqual(ev[0]["file"], "%s:5" % (mig / "1_orders.sql"))
        self.assertIn("returned false", cp.stderr)
        self.assertEqual([(e, v, d.get("verify")) for e, v, d in audit(db)], [("failed", "1", True)])

    def test_non_boolean_check_names_its_type(self):
        db = new_database(self, "vf")
        text = ORDERS.replace("SELECT count(*) = 0 FROM orders", "SELECT count(*) FROM orders")
        mig = temp_migrations(self, {"1_orders.sql": text})
        cp = self.pgboot(db, mig, "migrate")
        self.assertExit(cp, 5)
        self.assertIn("first column is bigint, not boolean", cp.stderr)
        self.assertFalse(table_exists(db, "orders"))

    def test_erroring_check_fails_and_a_check_cannot_change_data(self):
        db = new_database(self, "vf")
        text = ORDERS.replace("SELECT count(*) = 0 FROM orders;",
                              "INSERT INTO orders VALUES (1, 1);\nSELECT count(*) = 1 FROM orders;")
        mig = temp_migrations(self, {"1_orders.sql": text})
        self.assertExit(self.pgboot(db, mig, "migrate"), 0)
        # The insert ran behind the savepoint and was rolled back with it.
        self.assertEqual(admin_sql("SELECT count(*) FROM orders", db).strip(), "0")
        db2 = new_database(self, "vf")
        mig2 = temp_migrations(self, {"1_orders.sql": ORDERS.replace(
            "SELECT count(*) = 0 FROM orders", "SELECT nope FROM orders")})
        cp = self.pgboot(db2, mig2, "migrate")
        self.assertExit(cp, 5)
        self.assertIn("42703", cp.stderr)

    def test_transaction_false_failing_check_marks_failed(self):
        db = new_database(self, "vf")
        text = ("-- migrate:up transaction:false\nCREATE TABLE t (id int);\n"
                "-- migrate:verify\nSELECT false;\n")
        mig = temp_migrations(self, {"1_t.sql": text})
        cp = self.pgboot(db, mig, "migrate")
        self.assertExit(cp, 5)
        self.assertTrue(table_exists(db, "t"))
        self.assertEqual(admin_sql("SELECT status FROM pgboot_history", db).strip(), "failed")
        self.assertEqual(events(cp.stderr, "migration.verify_failed")[0]["file"],
                         "%s:4" % (mig / "1_t.sql"))

    def test_a_resumed_transaction_false_migration_runs_its_checks_before_applied(self):
        # Killed while its second statement runs, the row stays running; the next run
        # resumes it, and its checks decide between applied and failed.
        body = ("-- migrate:up transaction:false\nCREATE TABLE IF NOT EXISTS r (id int);\n"
                "SELECT pg_sleep(30) FROM pg_class WHERE relname = 'sleep_gate';\n"
                "INSERT INTO r VALUES (1);\n")
        for check, code, state in (("SELECT count(*) = 1 FROM r;\n", 0, "applied"),
                                   ("SELECT count(*) = 2 FROM r;\n", 5, "failed")):
            with self.subTest(state=state):
                db = new_database(self, "vf")
                admin_sql("CREATE TABLE sleep_gate (id int)", db)
                mig = temp_migrations(self, {"1_r.sql": body})
                p = spawn(["migrate", "--database-url", url(db), "--migrations-dir", str(mig),
                           "--wait-timeout", "10s"], test=self)
                wait_until(lambda: backends_running(db, "pg_sleep(30)") == 1, 20,
                           "the sleep runs on the server")
                p.kill()
                p.finish(timeout=10)
                wait_until(lambda: advisory_locks(db) == 0, 10, "the lock is free")
                self.assertEqual(history(db), {"1": "running"})
                admin_sql("DROP TABLE sleep_gate", db)
                # Adding the verify section now is not drift: the resume goes ahead.
                with open(mig / "1_r.sql", "a") as f:
                    f.write("-- migrate:verify\n" + check)
                cp = self.pgboot(db, mig, "migrate")
                self.assertExit(cp, code)
                self.assertEqual([e["statement"] for e in events(cp.stderr, "migration.resume")],
                                 ["2"])
                self.assertEqual(history(db), {"1": state})
                failed = events(cp.stderr, "migration.verify_failed")
                self.assertEqual([e["file"] for e in failed],
                                 [] if code == 0 else ["%s:6" % (mig / "1_r.sql")])

    def test_verify_and_doctor_report_a_check_broken_later(self):
        db = new_database(self, "vf")
        mig = temp_migrations(self, {
            "1_orders.sql": ORDERS,
            "2_users.up.sql": "CREATE TABLE users (id int);\n",
            "2_users.verify.sql": "SELECT to_regclass('users') IS NOT NULL;\nSELECT 1/0 = 1;\n"
                                  "SELECT true;\n",
        })
        cp = self.pgboot(db, mig, "migrate")
        self.assertExit(cp, 5)  # the division by zero
        with open(mig / "2_users.verify.sql", "w") as f:
            f.write("SELECT to_regclass('users') IS NOT NULL;\nSELECT true;\n")
        self.assertExit(self.pgboot(db, mig, "migrate"), 0)
        admin_sql("INSERT INTO orders VALUES (1, 10); DROP TABLE users", db)
        cp = self.pgboot(db, mig, "verify")
        self.assertExit(cp, 6)
        self.assertIn("%s:5" % (mig / "1_orders.sql"), cp.stderr)
        self.assertIn("%s:1" % (mig / "2_users.verify.sql"), cp.stderr)
        self.assertIn("2 failed", cp.stdout)
        js = json.loads(self.pgboot(db, mig, "verify", "--output", "json").stdout)
        self.assertEqual(js["failed"], 2)
        self.assertEqual([(c["version"], c["line"], c["ok"]) for c in js["checks"]],
                         [("1", 4, True), ("1", 5, False), ("2", 1, False), ("2", 2, True)])
        cp = self.pgboot(db, mig, "doctor", "--output", "json")
        self.assertExit(cp, 1)
        f = [x for x in json.loads(cp.stdout)["findings"] if x["kind"] == "verify"]
        self.assertEqual([(x["version"], x["line"]) for x in f], [("1", 5), ("2", 1)])

    def test_adding_a_verify_section_is_not_drift(self):
        db = new_database(self, "vf")
        plain = "-- migrate:up\nCREATE TABLE t (id int);\n-- migrate:down\nDROP TABLE t;\n"
        mig = temp_migrations(self, {"1_t.sql": plain})
        self.assertExit(self.pgboot(db, mig, "migrate"), 0)
        with open(mig / "1_t.sql", "w") as f:
            f.write(plain.replace("-- migrate:down", "-- migrate:verify\nSELECT true;\n"
                                  "-- migrate:down"))
        self.assertExit(self.pgboot(db, mig, "validate"), 0)
        with open(mig / "1_t.sql", "a") as f:
            f.write("-- migrate:verify\nSELECT false;\n")
        cp = self.pgboot(db, mig, "validate")
        self.assertExit(cp, 8)
        self.assertIn("repeated -- migrate:verify marker", cp.stderr)

    def test_misplaced_marker_and_orphan(self):
        db = new_database(self, "vf")
        mig = temp_migrations(self, {"1_t.sql": "-- migrate:verify\nSELECT true;\n"
                                                "-- migrate:up\nCREATE TABLE t (id int);\n"})
        cp = self.pgboot(db, mig, "migrate")
        self.assertExit(cp, 8)
        self.assertIn("1_t.sql:1: -- migrate:verify marker before the -- migrate:up marker",
                      cp.stderr)
        mig2 = temp_migrations(self, {"1_t.up.sql": "CREATE TABLE t (id int);\n",
                                      "2_x.verify.sql": "SELECT true;\n"})
        cp = self.pgboot(db, mig2, "migrate")
        self.assertExit(cp, 0)
        ev = events(cp.stderr, "files.orphan")
        self.assertEqual([e["path"] for e in ev], [str(mig2 / "2_x.verify.sql")])


class VerifyThroughPoolerTest(PgbootTestCase):
    """Transaction lock mode (PgBouncer, transaction pooling): the checks run in the
    migration's locked transaction behind the savepoint, and `verify` reads through it."""

    def setUp(self):
        if not os.access(PGBOUNCER, os.X_OK):
            skip_loudly(self, "pgbouncer is not installed (scripts/setup.sh installs it)")
        self.db = new_database(self, "vfp")
        self.bouncer = start_pgbouncer(self, pool_mode="transaction", default_pool_size=2)

    def pgboot(self, mig, *args):
        return run([str(a) for a in args],
                   env={"DATABASE_URL": self.bouncer.url(self.db), "PGBOOT_MIGRATIONS_DIR": mig,
                        "PGBOOT_WAIT_TIMEOUT": "10s"})

    def test_checks_pass_fail_and_verify_through_the_pooler(self):
        failing = ORDERS.replace("1_orders", "2_items").replace("orders", "items").replace(
            "SELECT count(*) = 0", "SELECT count(*) = 1")
        mig = temp_migrations(self, {"1_orders.sql": ORDERS, "2_items.sql": failing})
        cp = self.pgboot(mig, "migrate")
        self.assertExit(cp, 5)
        self.assertEqual([e["mode"] for e in events(cp.stderr, "lock.mode")], ["transaction"])
        self.assertEqual(history(self.db), {"1": "applied"})
        self.assertFalse(table_exists(self.db, "items"))
        self.assertEqual([e["file"] for e in events(cp.stderr, "migration.verify_failed")],
                         ["%s:5" % (mig / "2_items.sql")])
        os.unlink(mig / "2_items.sql")
        admin_sql("INSERT INTO orders VALUES (1, 10)", self.db)
        cp = self.pgboot(mig, "verify", "--output", "json")
        self.assertExit(cp, 6)
        self.assertEqual([(c["line"], c["ok"]) for c in json.loads(cp.stdout)["checks"]],
                         [(4, True), (5, False)])
        self.assertEqual(admin_sql("SELECT count(*) FROM orders", self.db).strip(), "1")


if __name__ == "__main__":
    unittest.main()
