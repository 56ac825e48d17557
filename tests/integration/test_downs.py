#!/usr/bin/env python3
"""Rollback from any release on a real PostgreSQL 15 (docs/reference.md, "Stored
downs", "Rolling back a deploy"): release N+1 applied 4 and 5, release N (files
1-3) runs `rollback --future` from the stored downs; edited downs; stored downs that
fail; a stored transaction:false down refused through PgBouncer in transaction lock
mode; `status` "rollback"; repair of downs; `reset`; and the real-world file shapes
(no-op ups and downs, orphan downs, directories and non-UTF-8 names).
"""

import json
import os
import unittest

from harness.case import PgbootTestCase, skip_loudly
from harness.files import temp_migrations
from harness.logs import events
from harness.pgbouncer import PGBOUNCER, start_pgbouncer
from harness.proc import run
from harness.server import new_database, url
from harness.sql import admin_sql, audit, history, q1, tables


def simple(n, down=True):
    text = "-- migrate:up\nCREATE TABLE t%d (id int);\n" % n
    if down:
        text += "\n-- migrate:down\nDROP TABLE t%d;\n" % n
    return text


INDEX_5 = ("-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i5 ON t4 (id);\n\n"
           "-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY i5;\n")


def release(n):
    """The files of release n: 1-3, plus 4 and 5 (an index built and dropped
    CONCURRENTLY) from release 2 on."""
    files = {"%d_t%d.sql" % (i, i): simple(i) for i in (1, 2, 3)}
    if n >= 2:
        files["4_t4.sql"] = simple(4)
        files["5_i5.sql"] = INDEX_5
    return files


class Base(PgbootTestCase):
    def env(self, db, mig, **extra):
        e = {"DATABASE_URL": url(db), "PGBOOT_MIGRATIONS_DIR": str(mig),
             "PGBOOT_WAIT_TIMEOUT": "10s", "PGBOOT_LOCK_MODE": "session"}
        e.update(extra)
        return e

    def pgboot(self, db, mig, *args, **extra):
        return run(list(args), env=self.env(db, mig, **extra))

    def ok(self, db, mig, *args, **extra):
        cp = self.pgboot(db, mig, *args, **extra)
        self.assertExit(cp, 0)
        return cp

    def status(self, db, mig):
        cp = self.ok(db, mig, "status", "--output", "json")
        return {m["version"]: (m["state"], m["rollback"])
                for m in json.loads(cp.stdout)["migrations"]}


class FutureTest(Base):
    def setUp(self):
        self.db = new_database(self, "fu")
        self.new = temp_migrations(self, release(2))
        self.old = temp_migrations(self, release(1))
        self.ok(self.db, self.new, "migrate")
        self.assertEqual(tables(self.db, "t"), ["t1", "t2", "t3", "t4"])

    def test_the_previous_release_undoes_the_newer_one_from_the_stored_downs(self):
        self.assertEqual(self.status(self.db, self.old),
                         {"1": ("applied", "file"), "2": ("applied", "file"),
                          "3": ("applied", "file"), "4": ("future", "stored"),
                          "5": ("future", "stored")})
        cp = self.ok(self.db, self.old, "rollback", "--future")
        self.assertEqual([e["version"] for e in events(cp.stderr, "migration.rolled_back")],
                         ["5", "4"])
        self.assertEqual(sorted(history(self.db)), ["1", "2", "3"])
        self.assertEqual(tables(self.db, "t"), ["t1", "t2", "t3"])
        self.assertEqual(q1(self.db, "SELECT to_regclass('i5') IS NULL"), "t")
        rolled = [(v, d) for e, v, d in audit(self.db) if e == "rolled_back"]
        self.assertEqual([v for v, _ in rolled], ["5", "4"])
        self.assertEqual([d["source"] for _, d in rolled], ["stored", "stored"])
        self.assertEqual([d["transaction"] for _, d in rolled], [False, True])
        self.assertEqual([d["empty_down"] for _, d in rolled], [False, False])
        # Nothing future any more: nothing to do, exit 0.
        cp = self.ok(self.db, self.old, "rollback", "--future")
        self.assertTrue(events(cp.stderr, "rollback.nothing_to_do"))
        self.assertEqual(sorted(history(self.db)), ["1", "2", "3"])
        # The newer release migrates again.
        self.ok(self.db, self.new, "migrate")
        self.assertEqual(sorted(history(self.db)), ["1", "2", "3", "4", "5"])

    def test_dry_run_prints_the_stored_down(self):
        cp = self.ok(self.db, self.old, "rollback", "--future", "--dry-run")
        self.assertIn("stored down of version 5:1\nDROP INDEX CONCURRENTLY i5;", cp.stdout)
        self.assertIn("down from the stored copy", cp.stdout)
        self.assertEqual(sorted(history(self.db)), ["1", "2", "3", "4", "5"])

    def test_a_stored_transaction_false_down_is_refused_in_transaction_lock_mode(self):
        # Version 5's file is gone, so its down comes from the stored copy, and that
        # copy is transaction:false: only session lock mode can run it (docs/pooler.md).
        if not os.access(PGBOUNCER, os.X_OK):
            skip_loudly(self, "pgbouncer is not installed (scripts/setup.sh installs it)")
        bouncer = start_pgbouncer(self, pool_mode="transaction", default_pool_size=2)
        before = audit(self.db)
        cp = self.pgboot(self.db, self.old, "rollback", "--future",
                         DATABASE_URL=bouncer.url(self.db), PGBOOT_LOCK_MODE="auto")
        self.assertExit(cp, 2)
        self.assertEqual([e["mode"] for e in events(cp.stderr, "lock.mode")], ["transaction"])
        self.assertIn("rolling back 5 (i5) (its down section is transaction:false)", cp.stderr)
        self.assertIn("--lock-mode session", cp.stderr)
        # Refused before anything ran: 4's transactional down did not run either.
        self.assertFalse(events(cp.stderr, "migration.rolled_back"))
        self.assertEqual(sorted(history(self.db)), ["1", "2", "3", "4", "5"])
        self.assertEqual(tables(self.db, "t"), ["t1", "t2", "t3", "t4"])
        self.assertEqual(q1(self.db, "SELECT to_regclass('i5') IS NOT NULL"), "t")
        self.assertEqual(audit(self.db), before)
        # The way out the message names: a session on the server runs it.
        self.ok(self.db, self.old, "rollback", "--future")
        self.assertEqual(sorted(history(self.db)), ["1", "2", "3"])

    def test_future_with_another_selection_is_a_usage_error(self):
        for other in (["--steps", "1"], ["--to", "3"], ["--batch"]):
            cp = self.pgboot(self.db, self.old, "rollback", "--future", *other)
            self.assertExit(cp, 2, other)
            self.assertIn("at most one of", cp.stderr)
        self.assertEqual(len(history(self.db)), 5)

    def test_production_guard(self):
        cp = self.pgboot(self.db, self.old, "rollback", "--future", PGBOOT_ENV="production")
        self.assertExit(cp, 6)
        self.assertIn("--allow-production", cp.stderr)
        self.assertEqual(len(history(self.db)), 5)
        self.ok(self.db, self.old, "rollback", "--future", "--allow-production",
                PGBOOT_ENV="production")
        self.assertEqual(sorted(history(self.db)), ["1", "2", "3"])

    def test_a_stored_down_that_fails_exits_5_naming_version_and_line(self):
        admin_sql("UPDATE public.pgboot_history SET down_sql = E'SELECT 1;\\nDROP TABLE nope;\\n' "
                  "WHERE version = '4'", self.db)
        cp = self.pgboot(self.db, self.old, "rollback", "--future")
        self.assertExit(cp, 5)
        self.assertIn("stored down of version 4:2", cp.stderr)
        self.assertIn("42P01", cp.stderr)
        # 5 was undone first; 4 rolled back as a whole and stays applied.
        self.assertEqual(sorted(history(self.db)), ["1", "2", "3", "4"])
        self.assertEqual(tables(self.db, "t"), ["t1", "t2", "t3", "t4"])

    def test_a_row_without_file_or_stored_down_refuses_before_anything_runs(self):
        admin_sql("UPDATE public.pgboot_history SET down_sql = NULL WHERE version = '4'", self.db)
        cp = self.pgboot(self.db, self.old, "rollback", "--future")
        self.assertExit(cp, 6)
        self.assertIn("version 4 (t4) has no migration file here", cp.stderr)
        self.assertIn("no stored down", cp.stderr)
        self.assertEqual(len(history(self.db)), 5, "5 not undone either")
        self.assertEqual(self.status(self.db, self.old)["4"], ("future", "none"))


class StoredDownTest(Base):
    def test_a_file_whose_down_was_edited_after_apply_runs_the_files_down(self):
        db = new_database(self, "sd")
        mig = temp_migrations(self, {"1_t1.sql": simple(1), "2_t2.sql": simple(2)})
        self.ok(db, mig, "migrate")
        mig.write("2_t2.sql", simple(2).replace("DROP TABLE t2;",
                                                "DROP TABLE t2;\nCREATE TABLE t2_gone (id int);"))
        self.assertEqual(self.status(db, mig)["2"], ("applied", "file"))
        cp = self.ok(db, mig, "rollback")
        changed = events(cp.stderr, "rollback.down_changed")
        self.assertEqual([e["version"] for e in changed], ["2"])
        self.assertEqual(tables(db, "t"), ["t1", "t2_gone"])
        self.assertEqual(audit(db)[-1][2]["source"], "file")

    def test_a_drifted_file_rolls_back_from_the_stored_down(self):
        db = new_database(self, "sd")
        mig = temp_migrations(self, {"1_t1.sql": simple(1), "2_t2.sql": simple(2)})
        self.ok(db, mig, "migrate")
        mig.write("2_t2.sql", simple(2).replace("(id int)", "(id bigint)")
                  .replace("DROP TABLE t2;", "SELECT 1/0;"))
        self.assertEqual(self.status(db, mig)["2"], ("changed", "stored"))
        self.ok(db, mig, "rollback")
        self.assertEqual(tables(db, "t"), ["t1"])
        self.assertEqual(audit(db)[-1][2]["source"], "stored")

    def test_repair_realigns_the_stored_down_with_the_file(self):
        db = new_database(self, "sd")
        mig = temp_migrations(self, {"1_t1.sql": simple(1)})
        self.ok(db, mig, "migrate")
        mig.write("1_t1.sql", simple(1).replace("-- migrate:down",
                                                "-- migrate:down transaction:false"))
        cp = self.pgboot(db, mig, "repair")
        self.assertExit(cp, 1)
        self.assertIn("stored down replaced", cp.stdout)
        self.ok(db, mig, "repair", "--yes")
        self.assertEqual(admin_sql("SELECT down_options FROM public.pgboot_history", db).strip(),
                         "transaction:false")
        detail = audit(db)[-1][2]
        self.assertEqual((detail["old_down_options"], detail["new_down_options"]),
                         (None, "transaction:false"))
        self.assertIn("nothing to repair", self.ok(db, mig, "repair").stdout)

    def test_baseline_stores_the_downs(self):
        db = new_database(self, "sd")
        mig = temp_migrations(self, {"1_t1.sql": simple(1), "2_t2.sql": simple(2, down=False)})
        self.ok(db, mig, "baseline", "2")
        self.assertEqual(admin_sql("SELECT version, coalesce(rtrim(down_sql, E'\\n'), '<null>') FROM "
                                   "public.pgboot_history ORDER BY version", db).splitlines(),
                         ["1|DROP TABLE t1;", "2|<null>"])


class ResetTest(Base):
    def setUp(self):
        self.db = new_database(self, "rs")
        self.mig = temp_migrations(self, release(2))
        self.ok(self.db, self.mig, "migrate")
        admin_sql("INSERT INTO t1 VALUES (1)", self.db)

    def test_plan_without_yes_changes_nothing(self):
        cp = self.pgboot(self.db, self.mig, "reset")
        self.assertExit(cp, 1)
        self.assertIn("reset would roll back 5 version(s)", cp.stdout)
        self.assertIn("then migrate 5 migration file(s)", cp.stdout)
        self.assertEqual(q1(self.db, "SELECT count(*) FROM t1"), "1")

    def test_refused_in_production_with_no_override(self):
        for extra in ([], ["--yes"], ["--yes", "--allow-production"]):
            cp = self.pgboot(self.db, self.mig, "reset", *extra, PGBOOT_ENV="Production")
            self.assertExit(cp, 2 if "--allow-production" in extra else 6, extra)
        self.assertEqual(q1(self.db, "SELECT count(*) FROM t1"), "1")

    def test_refused_before_anything_runs_when_a_down_is_missing(self):
        admin_sql("UPDATE public.pgboot_history SET down_sql = NULL WHERE version = '2'", self.db)
        # The same up section (same checksum), its down marker gone.
        self.mig.write("2_t2.sql", "-- migrate:up\nCREATE TABLE t2 (id int);\n\n")
        cp = self.pgboot(self.db, self.mig, "reset", "--yes")
        self.assertExit(cp, 6)
        self.assertIn("has no down section", cp.stderr)
        self.assertEqual(len(history(self.db)), 5)

    def test_yes_rolls_everything_back_then_migrates_again(self):
        cp = self.ok(self.db, self.mig, "reset", "--yes")
        self.assertEqual(len(events(cp.stderr, "migration.rolled_back")), 5)
        self.assertEqual(len(events(cp.stderr, "migration.applied")), 5)
        self.assertEqual(sorted(history(self.db)), ["1", "2", "3", "4", "5"])
        self.assertEqual(q1(self.db, "SELECT count(*) FROM t1"), "0", "a fresh schema")


class FileShapesTest(Base):
    def test_a_no_op_up_is_applied_with_a_warning(self):
        db = new_database(self, "fs")
        mig = temp_migrations(self, {"1_t1.sql": simple(1),
                                     "2_code.up.sql": "-- data is migrated in code.\n"})
        cp = self.ok(db, mig, "migrate")
        self.assertEqual([e["version"] for e in events(cp.stderr, "migration.empty")], ["2"])
        self.assertEqual(history(db), {"1": "applied", "2": "applied"})
        # Its pairs down is missing: rollback names the .down.sql it looked for.
        cp = self.pgboot(db, mig, "rollback")
        self.assertExit(cp, 6)
        self.assertIn(os.path.join(str(mig), "2_code.down.sql") + " does not exist", cp.stderr)
        self.assertEqual(self.status(db, mig)["2"], ("applied", "none"))

    def test_an_explicit_no_op_down_deletes_the_row_and_runs_nothing(self):
        db = new_database(self, "fs")
        mig = temp_migrations(self, {
            "1_t1.sql": simple(1),
            "2_t2.sql": "-- migrate:up\nCREATE TABLE t2 (id int);\n-- migrate:down\n-- kept\n",
            "3_t3.up.sql": "CREATE TABLE t3 (id int);\n", "3_t3.down.sql": ""})
        self.ok(db, mig, "migrate")
        self.assertEqual(self.status(db, mig), {"1": ("applied", "file"),
                                                "2": ("applied", "empty"),
                                                "3": ("applied", "empty")})
        self.ok(db, mig, "rollback", "--steps", "2")
        self.assertEqual(history(db), {"1": "applied"})
        self.assertEqual(tables(db, "t"), ["t1", "t2", "t3"], "no-op downs ran nothing")
        rolled = [d for e, _, d in audit(db) if e == "rolled_back"]
        self.assertEqual([d["empty_down"] for d in rolled], [True, True])

    def test_an_orphan_down_file_is_a_warning(self):
        db = new_database(self, "fs")
        mig = temp_migrations(self, {"1_t1.sql": simple(1), "7_gone.down.sql": "DROP TABLE x;"})
        cp = self.ok(db, mig, "migrate")
        orphans = events(cp.stderr, "files.orphan")
        self.assertEqual([e["path"] for e in orphans], [os.path.join(str(mig), "7_gone.down.sql")])
        self.assertEqual(history(db), {"1": "applied"})

    def test_a_directory_named_like_a_migration_is_exit_8_before_anything(self):
        db = new_database(self, "fs")
        mig = temp_migrations(self, {"1_t1.sql": simple(1)})
        os.mkdir(os.path.join(str(mig), "2_t2.sql"))
        cp = self.pgboot(db, mig, "migrate")
        self.assertExit(cp, 8)
        self.assertIn("2_t2.sql:1: a directory, not a migration file", cp.stderr)
        self.assertEqual(history(db), {})

    def test_a_file_name_that_is_not_utf8_is_exit_8_before_anything(self):
        db = new_database(self, "fs")
        mig = temp_migrations(self, {"1_t1.sql": simple(1)})
        with open(os.path.join(os.fsencode(str(mig)), b"2_caf\xe9.sql"), "w") as f:
            f.write("CREATE TABLE t2 (id int);\n")
        cp = self.pgboot(db, mig, "migrate", PGBOOT_LOG_FORMAT="json")
        self.assertExit(cp, 8)
        self.assertIn("2_caf\\\\xe9.sql:1: file name is not valid UTF-8", cp.stderr)
        self.assertEqual(history(db), {})


if __name__ == "__main__":
    unittest.main()
