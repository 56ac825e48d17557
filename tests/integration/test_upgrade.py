#!/usr/bin/env python3
"""pgboot's own tables upgraded in place (docs/reference.md, "Upgrading pgboot"),
between the previous release (tests/previous_release.json, built by
harness.previous_release) and this binary, on a real PostgreSQL 15:

- the previous release migrates; status, validate and doctor of this binary work
  on its table and leave it exactly as it was;
- the first writing command of this binary adds down_sql, down_options and
  statements_done;
- the previous release still runs status, migrate (nothing to do) and rollback on
  the upgraded table.
"""

import json
import unittest

from harness.case import PgbootTestCase
from harness.files import temp_migrations
from harness.logs import events
from harness.previous_release import previous_pgboot
from harness.proc import run
from harness.server import new_database, url
from harness.sql import admin_sql, audit, history, q1


def migration(n):
    return ("-- migrate:up\nCREATE TABLE t%d (id int);\n\n-- migrate:down\nDROP TABLE t%d;\n"
            % (n, n))


def columns(db):
    return admin_sql("SELECT attname FROM pg_attribute WHERE attrelid = "
                     "'public.pgboot_history'::regclass AND attnum > 0 AND NOT attisdropped "
                     "ORDER BY attnum", db).split()


def catalog(db):
    """What a read-only command must not change: the history table's definition and rows."""
    return (columns(db), admin_sql("SELECT * FROM public.pgboot_history ORDER BY version", db),
            admin_sql("SELECT count(*) FROM public.pgboot_history_log", db))


OLD_COLUMNS = ["version", "name", "checksum", "status", "applied_at", "execution_ms",
               "applied_by", "batch"]
# What 0.2 adds: the stored down (stored downs) and the resume point (resume).
NEW_COLUMNS = ["down_sql", "down_options", "statements_done"]


class UpgradeTest(PgbootTestCase):
    @classmethod
    def setUpClass(cls):
        cls.old = previous_pgboot()

    def setUp(self):
        self.db = new_database(self)
        self.mig = temp_migrations(self, {"%d_t%d.sql" % (i, i): migration(i) for i in (1, 2, 3)})
        self.env = {"DATABASE_URL": url(self.db), "PGBOOT_MIGRATIONS_DIR": str(self.mig),
                    "PGBOOT_WAIT_TIMEOUT": "10s"}
        self.assertExit(run(["migrate"], env=self.env, binary=self.old), 0)
        self.assertEqual(columns(self.db), OLD_COLUMNS)

    def test_the_old_binary_is_the_previous_release(self):
        cp = run(["--version"], binary=self.old)
        self.assertExit(cp, 0)
        self.assertIn("0.1.0", cp.stdout)

    def test_read_only_commands_work_on_the_old_table_and_never_alter_it(self):
        before = catalog(self.db)
        cp = run(["status", "--output", "json"], env=self.env)
        self.assertExit(cp, 0)
        doc = json.loads(cp.stdout)
        self.assertEqual([m["state"] for m in doc["migrations"]], ["applied"] * 3)
        # Rows the previous release wrote store no down: rollback comes from the files.
        self.assertEqual([m["rollback"] for m in doc["migrations"]], ["file"] * 3)
        self.assertExit(run(["status"], env=self.env), 0)
        self.assertExit(run(["validate"], env=self.env), 0)
        self.assertExit(run(["doctor", "--output", "json"], env=self.env), 0)
        self.assertExit(run(["rollback", "--dry-run"], env=self.env), 0)
        self.assertEqual(catalog(self.db), before)

    def test_the_first_writing_command_adds_the_columns(self):
        self.mig.write("4_t4.sql", migration(4))
        cp = run(["migrate"], env=self.env)
        self.assertExit(cp, 0)
        self.assertEqual(columns(self.db), OLD_COLUMNS + NEW_COLUMNS)
        added = [e["column"] for e in events(cp.stderr, "history.upgrade")]
        self.assertEqual(added, NEW_COLUMNS)
        # Old rows keep NULL (no stored down); the new one stores its down.
        self.assertEqual(admin_sql("SELECT version, coalesce(rtrim(down_sql, E'\\n'), '<null>') FROM "
                                   "public.pgboot_history ORDER BY version::int", self.db)
                         .splitlines(),
                         ["1|<null>", "2|<null>", "3|<null>", "4|DROP TABLE t4;"])
        # Once upgraded, nothing more to add.
        self.mig.write("5_t5.sql", migration(5))
        cp = run(["migrate"], env=self.env)
        self.assertExit(cp, 0)
        self.assertEqual(events(cp.stderr, "history.upgrade"), [])

    def test_a_writing_command_with_nothing_to_do_under_the_lock_upgrades_too(self):
        # rollback takes the lock: the table is upgraded before its down runs.
        cp = run(["rollback"], env=self.env)
        self.assertExit(cp, 0)
        self.assertIn("down_sql", columns(self.db))
        self.assertEqual(sorted(history(self.db)), ["1", "2"])
        self.assertEqual(audit(self.db)[-1][2]["source"], "file")

    def test_the_old_binary_keeps_working_on_the_upgraded_table(self):
        self.mig.write("4_t4.sql", migration(4))
        self.assertExit(run(["migrate"], env=self.env), 0)
        self.assertIn("down_options", columns(self.db))
        cp = run(["status", "--output", "json"], env=self.env, binary=self.old)
        self.assertExit(cp, 0)
        self.assertEqual([m["state"] for m in json.loads(cp.stdout)["migrations"]],
                         ["applied"] * 4)
        cp = run(["migrate"], env=self.env, binary=self.old)
        self.assertExit(cp, 0)
        self.assertEqual(sorted(history(self.db), key=int), ["1", "2", "3", "4"])
        cp = run(["rollback", "--steps", "2"], env=self.env, binary=self.old)
        self.assertExit(cp, 0)
        self.assertEqual(sorted(history(self.db), key=int), ["1", "2"])
        self.assertEqual(q1(self.db, "SELECT to_regclass('t4') IS NULL AND "
                                     "to_regclass('t3') IS NULL"), "t")
        # And the old binary's migrate on the upgraded table writes rows this one reads.
        self.assertExit(run(["migrate"], env=self.env, binary=self.old), 0)
        cp = run(["status", "--output", "json"], env=self.env)
        self.assertExit(cp, 0)
        self.assertEqual([m["state"] for m in json.loads(cp.stdout)["migrations"]],
                         ["applied"] * 4)


if __name__ == "__main__":
    unittest.main()
