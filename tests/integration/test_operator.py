#!/usr/bin/env python3
"""The operator's commands against a real PostgreSQL 15 (SPEC §1, §5, §7).

rollback (selection, checks before anything runs, failures, the production
guard, the lock), repair (the transaction:false story end to end, checksum
realignment), baseline (adopting a database built by plain SQL), new (the next
free second, never overwriting, no database) and doctor (idle transactions,
lock waits with their blocker, invalid indexes, history findings).

Every wait is on the server's state (pg_stat_activity, pg_locks) or a log
line, never a blind sleep.
"""

import datetime
import json
import os
import re
import unittest

from harness.server import closed_url, new_database, url
from harness.sql import PsqlSession, admin_sql, audit, history_rows, lit, q1, table_exists, tables
from harness.proc import run, wait_until
from harness.files import temp_migrations
from harness.logs import events
from harness.case import PgbootTestCase


LOCK_KEY_SQL = ("hashtextextended('pgboot:' || quote_ident('public') || '.' || "
                "quote_ident('pgboot_history'), 0)")


# ---- helpers ------------------------------------------------------------------------

def versions(db):
    return sorted(history_rows(db), key=int)


def simple(n, down=True):
    """A migration creating table t<n>, whose down drops it."""
    text = "-- migrate:up\nCREATE TABLE t%d (id int);\n" % n
    if down:
        text += "\n-- migrate:down\nDROP TABLE t%d;\n" % n
    return text


def five(**overrides):
    files = {"%d_t%d.sql" % (i, i): simple(i) for i in range(1, 6)}
    files.update(overrides)
    return files


class NamedSession(PsqlSession):
    """The shared kept-open psql session, under its own application_name, plus
    send() for SQL that blocks on the server; close() ends its backend first so
    a blocked statement cannot hold the cleanup."""

    def __init__(self, test, db, appname):
        self.appname = appname
        super().__init__(test, db, appname=appname)

    def send(self, sql):
        """Sends SQL without waiting for it (it may block on the server)."""
        self.p.stdin.write((sql.rstrip().rstrip(";") + ";\n").encode())
        self.p.stdin.flush()

    def pid(self):
        found = []

        def check():
            out = admin_sql("SELECT pid FROM pg_stat_activity WHERE application_name = %s"
                            % lit(self.appname)).split()
            found[:] = out
            return bool(out)
        wait_until(check, 10, "a session named %s" % self.appname)
        return int(found[0])

    def close(self):
        if self.p.poll() is None:
            admin_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                      "application_name = %s" % lit(self.appname), check=False)
        super().close()


class Base(PgbootTestCase):
    def pgboot(self, db, mig, *args, env=None, timeout=30):
        e = {"DATABASE_URL": url(db), "PGBOOT_MIGRATIONS_DIR": mig, "PGBOOT_WAIT_TIMEOUT": "10s"}
        e.update(env or {})
        return run([str(a) for a in args], env=e, timeout=timeout)

    def ok(self, db, mig, *args, env=None):
        cp = self.pgboot(db, mig, *args, env=env)
        self.assertExit(cp, 0)
        return cp

    def hold_lock(self, db):
        """A session holding the migration lock; returns its pid."""
        s = NamedSession(self, db, "lock-holder-%d" % os.getpid())
        s.send("SELECT pg_advisory_lock(%s)" % LOCK_KEY_SQL)
        wait_until(lambda: q1(db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                  "AND granted AND database = (SELECT oid FROM pg_database "
                                  "WHERE datname = current_database())") == "1",
                   10, "the test holds the lock")
        return s, s.pid()


# ---- rollback -------------------------------------------------------------------------

class RollbackTest(Base):
    def test_steps_then_to(self):
        db = new_database(self, "rb")
        mig = temp_migrations(self, five())
        self.ok(db, mig, "migrate")
        self.assertEqual(tables(db, "t"), ["t1", "t2", "t3", "t4", "t5"])

        cp = self.ok(db, mig, "rollback", "--steps", "2")
        self.assertEqual(tables(db, "t"), ["t1", "t2", "t3"])
        self.assertEqual(versions(db), ["1", "2", "3"])
        rolled = [(v, d) for e, v, d in audit(db) if e == "rolled_back"]
        self.assertEqual([v for v, _ in rolled], ["5", "4"], "highest first")
        for v, d in rolled:
            self.assertEqual(d["name"], "t" + v)
            self.assertEqual(d["batch"], 1)
            self.assertIn("execution_ms", d)
            self.assertRegex(d["checksum"], "^[0-9a-f]{64}$")
        self.assertEqual([e["version"] for e in events(cp.stderr, "migration.rolled_back")],
                         ["5", "4"])

        self.ok(db, mig, "rollback", "--to", "1")
        self.assertEqual(tables(db, "t"), ["t1"])
        self.assertEqual(versions(db), ["1"])
        self.assertEqual([v for e, v, _ in audit(db) if e == "rolled_back"], ["5", "4", "3", "2"])

        # Already at 1: nothing to do, exit 0.
        self.ok(db, mig, "rollback", "--to", "1")
        self.assertEqual(versions(db), ["1"])
        # And migrate brings everything back.
        self.ok(db, mig, "migrate")
        self.assertEqual(tables(db, "t"), ["t1", "t2", "t3", "t4", "t5"])

    def test_default_is_the_highest_applied_version_only(self):
        db = new_database(self, "rb")
        mig = temp_migrations(self, five())
        self.ok(db, mig, "migrate", "--target", "3")
        self.ok(db, mig, "rollback")
        self.assertEqual(versions(db), ["1", "2"])
        self.assertEqual(tables(db, "t"), ["t1", "t2"])

    def test_batch_undoes_exactly_the_newest_batch(self):
        db = new_database(self, "rb")
        mig = temp_migrations(self, five())
        self.ok(db, mig, "migrate", "--target", "2")   # batch 1: 1, 2
        self.ok(db, mig, "migrate", "--target", "3")   # batch 2: 3
        self.ok(db, mig, "migrate")                    # batch 3: 4, 5
        self.assertEqual({v: b for v, (_, b, _) in history_rows(db).items()},
                         {"1": 1, "2": 1, "3": 2, "4": 3, "5": 3})
        self.ok(db, mig, "rollback", "--batch")
        self.assertEqual(versions(db), ["1", "2", "3"])
        self.assertEqual(tables(db, "t"), ["t1", "t2", "t3"])
        # Re-applying gets a new batch number: the rolled-back batch 3 stays
        # unambiguous in the audit log.
        self.ok(db, mig, "migrate")
        self.assertEqual({v: b for v, (_, b, _) in history_rows(db).items()},
                         {"1": 1, "2": 1, "3": 2, "4": 4, "5": 4})
        self.ok(db, mig, "rollback", "--batch")
        self.assertEqual(versions(db), ["1", "2", "3"])
        self.ok(db, mig, "rollback", "--batch")
        self.assertEqual(versions(db), ["1", "2"])
        self.ok(db, mig, "rollback", "--batch")
        self.assertEqual(versions(db), [])
        cp = self.pgboot(db, mig, "rollback", "--batch")
        self.assertExit(cp, 6)
        self.assertIn("nothing to roll back", cp.stderr)

    def test_a_version_without_down_stops_before_anything_runs(self):
        db = new_database(self, "rb")
        mig = temp_migrations(self, five(**{"3_t3.sql": simple(3, down=False)}))
        self.ok(db, mig, "migrate")
        before = audit(db)
        cp = self.pgboot(db, mig, "rollback", "--steps", "3")
        self.assertExit(cp, 6)
        self.assertIn("version 3 (t3)", cp.stderr)
        self.assertIn("has no down section", cp.stderr)
        self.assertEqual(tables(db, "t"), ["t1", "t2", "t3", "t4", "t5"], "4 and 5 untouched")
        self.assertEqual(versions(db), ["1", "2", "3", "4", "5"])
        self.assertEqual(audit(db), before)
        self.assertEqual(events(cp.stderr, "rollback.start"), [])
        # Two steps do not reach 3.
        self.ok(db, mig, "rollback", "--steps", "2")
        self.assertEqual(versions(db), ["1", "2", "3"])

    def test_a_missing_or_drifted_file_without_a_stored_down_stops_before_anything_runs(self):
        db = new_database(self, "rb")
        mig = temp_migrations(self, five())
        self.ok(db, mig, "migrate")
        # Rows as an older pgboot wrote them: no stored down to fall back on (a stored
        # one would run instead: tests/integration/test_downs.py).
        admin_sql("UPDATE public.pgboot_history SET down_sql = NULL, down_options = NULL", db)
        with open(mig / "4_t4.sql", "a") as f:
            f.write("-- edited after it was applied\n")
        with open(mig / "4_t4.sql") as f:
            edited = f.read()
        # The comment lands in the down section: the up checksum is unchanged.
        self.ok(db, mig, "rollback", "--steps", "2", "--dry-run")
        with open(mig / "4_t4.sql", "w") as f:
            f.write(edited.replace("CREATE TABLE t4 (id int);", "CREATE TABLE t4 (id bigint);"))
        cp = self.pgboot(db, mig, "rollback", "--steps", "2")
        self.assertExit(cp, 6)
        self.assertIn("version 4 (t4)", cp.stderr)
        self.assertIn("changed after it was applied", cp.stderr)
        os.unlink(mig / "5_t5.sql")
        cp = self.pgboot(db, mig, "rollback")
        self.assertExit(cp, 6)
        self.assertIn("version 5 (t5) has no migration file", cp.stderr)
        self.assertEqual(versions(db), ["1", "2", "3", "4", "5"])
        self.assertEqual(tables(db, "t"), ["t1", "t2", "t3", "t4", "t5"])
        self.assertFalse([e for e, _, _ in audit(db) if e == "rolled_back"])

    def test_a_failing_down_exits_5_with_file_line(self):
        db = new_database(self, "rb")
        bad = "-- migrate:up\nCREATE TABLE t4 (id int);\n\n-- migrate:down\nDROP TABLE t4;\nDROP TABLE nope;\n"
        mig = temp_migrations(self, five(**{"4_t4.sql": bad}))
        self.ok(db, mig, "migrate")
        cp = self.pgboot(db, mig, "rollback", "--steps", "2")
        self.assertExit(cp, 5)
        self.assertRegex(cp.stderr, re.escape(os.path.join(str(mig), "4_t4.sql")) + r":6\b")
        self.assertIn("42P01", cp.stderr)
        # 5 went (its own transaction); 4's down rolled back whole: t4 is still there.
        self.assertEqual(versions(db), ["1", "2", "3", "4"])
        self.assertEqual(tables(db, "t"), ["t1", "t2", "t3", "t4"])
        failed = [(v, d) for e, v, d in audit(db) if e == "failed"]
        self.assertEqual(len(failed), 1)
        self.assertEqual(failed[0][0], "4")
        self.assertEqual(failed[0][1]["direction"], "down")
        self.assertEqual(failed[0][1]["sqlstate"], "42P01")
        self.assertEqual(failed[0][1]["statement"], 2)

    def test_transaction_false_down_runs_statement_by_statement(self):
        db = new_database(self, "rb")
        mig = temp_migrations(self, {
            "1_t.sql": "-- migrate:up\nCREATE TABLE t (v int);\n-- migrate:down\nDROP TABLE t;\n",
            "2_idx.sql": ("-- migrate:up transaction:false\n"
                          "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_v_idx ON t (v);\n"
                          "-- migrate:down transaction:false\n"
                          "DROP INDEX CONCURRENTLY IF EXISTS t_v_idx;\n"),
        })
        self.ok(db, mig, "migrate")
        self.assertTrue(table_exists(db, "t_v_idx"))
        self.ok(db, mig, "rollback")
        self.assertFalse(table_exists(db, "t_v_idx"))
        self.assertEqual(versions(db), ["1"])
        d = [d for e, v, d in audit(db) if e == "rolled_back"][0]
        self.assertIs(d["transaction"], False)

    def test_production_guard(self):
        db = new_database(self, "rb")
        mig = temp_migrations(self, five())
        self.ok(db, mig, "migrate")
        cp = self.pgboot(db, mig, "rollback", env={"PGBOOT_ENV": "production"})
        self.assertExit(cp, 6)
        self.assertIn("--allow-production", cp.stderr)
        self.assertEqual(versions(db), ["1", "2", "3", "4", "5"])
        # Refused before connecting: an unreachable database does not matter.
        cp = run(["rollback"], env={"DATABASE_URL": closed_url(), "PGBOOT_ENV": "production",
                                    "PGBOOT_MIGRATIONS_DIR": mig, "PGBOOT_WAIT_TIMEOUT": "20s"})
        self.assertExit(cp, 6)
        self.assertLess(cp.elapsed, 5)
        # A dry run changes nothing: allowed.
        cp = self.ok(db, mig, "rollback", "--dry-run", env={"PGBOOT_ENV": "production"})
        self.assertIn("DROP TABLE t5", cp.stdout)
        self.ok(db, mig, "rollback", "--allow-production", env={"PGBOOT_ENV": "production"})
        self.assertEqual(versions(db), ["1", "2", "3", "4"])

    def test_dry_run_prints_the_down_sql_and_changes_nothing(self):
        db = new_database(self, "rb")
        mig = temp_migrations(self, five())
        self.ok(db, mig, "migrate")
        cp = self.ok(db, mig, "rollback", "--steps", "2", "--dry-run")
        self.assertLess(cp.stdout.index("DROP TABLE t5;"), cp.stdout.index("DROP TABLE t4;"))
        self.assertIn("-- %s:5\n" % os.path.join(str(mig), "5_t5.sql"), cp.stdout)
        self.assertEqual(versions(db), ["1", "2", "3", "4", "5"])
        self.assertEqual(events(cp.stderr, "lock.acquired"), [])

    def test_takes_the_migrate_lock(self):
        db = new_database(self, "rb")
        mig = temp_migrations(self, five())
        self.ok(db, mig, "migrate")
        holder, pid = self.hold_lock(db)
        cp = self.pgboot(db, mig, "rollback", "--lock-timeout", "1s")
        self.assertExit(cp, 7)
        waiting = events(cp.stderr, "lock.waiting")
        self.assertTrue(waiting)
        self.assertEqual(str(waiting[0]["holder_pid"]), str(pid))
        self.assertEqual(versions(db), ["1", "2", "3", "4", "5"])
        holder.close()
        self.ok(db, mig, "rollback")
        self.assertEqual(versions(db), ["1", "2", "3", "4"])

    def test_usage_and_nothing_applied(self):
        db = new_database(self, "rb")
        mig = temp_migrations(self, five())
        cp = self.pgboot(db, mig, "rollback")
        self.assertExit(cp, 6)
        self.assertIn("nothing to roll back", cp.stderr)
        self.ok(db, mig, "rollback", "--to", "3")
        self.assertFalse(table_exists(db, "public.pgboot_history"), "no tables without the lock")
        self.assertExit(self.pgboot(db, mig, "rollback", "--to", "9"), 2)
        self.assertExit(self.pgboot(db, mig, "rollback", "--to", "1", "--steps", "1"), 2)
        self.assertExit(self.pgboot(db, mig, "down", "--steps", "0"), 2)

    def test_refused_while_a_row_is_failed(self):
        db = new_database(self, "rb")
        mig = temp_migrations(self, {
            "1_t1.sql": simple(1),
            "2_bad.sql": "-- migrate:up transaction:false\nSELECT 1;\nSELECT 1/0;\n",
        })
        self.assertExit(self.pgboot(db, mig, "migrate"), 5)
        cp = self.pgboot(db, mig, "rollback")
        self.assertExit(cp, 6)
        self.assertIn("repair", cp.stderr)
        self.assertEqual(tables(db, "t"), ["t1"])


# ---- repair ---------------------------------------------------------------------------

class RepairTest(Base):
    def test_transaction_false_failure_fixed_by_hand_then_repaired(self):
        db = new_database(self, "rp")
        uidx = ("-- migrate:up transaction:false\n"
                "CREATE TABLE IF NOT EXISTS marker (id int);\n"
                "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_v_key ON t (v);\n")
        mig = temp_migrations(self, {
            "1_t.sql": "-- migrate:up\nCREATE TABLE t (v int);\nINSERT INTO t VALUES (1), (1), (2);\n",
            "2_uidx.sql": uidx,
        })
        cp = self.pgboot(db, mig, "migrate")
        self.assertExit(cp, 5)
        self.assertIn("23505", cp.stderr)
        self.assertEqual(history_rows(db)["2"][0], "failed")
        self.assertEqual(q1(db, "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                                "'t_v_key'::regclass"), "f")
        cp = self.pgboot(db, mig, "migrate")
        self.assertExit(cp, 6)
        self.assertIn("repair", cp.stderr)

        # doctor sees both the failed row and the INVALID index.
        cp = self.pgboot(db, mig, "doctor", "--output", "json")
        self.assertExit(cp, 1)
        kinds = sorted(f["kind"] for f in json.loads(cp.stdout)["findings"])
        self.assertEqual(kinds, ["history", "invalid_index"])

        # The human fix: remove the duplicate and the INVALID index.
        admin_sql("DELETE FROM t WHERE ctid = (SELECT max(ctid) FROM t WHERE v = 1)", db)
        admin_sql("DROP INDEX CONCURRENTLY t_v_key", db)

        cp = self.pgboot(db, mig, "repair")
        self.assertExit(cp, 1)
        self.assertIn("version 2 (uidx)", cp.stdout)
        self.assertIn("--yes", cp.stdout)
        self.assertEqual(history_rows(db)["2"][0], "failed", "without --yes nothing changes")

        cp = self.ok(db, mig, "repair", "--yes")
        self.assertNotIn("2", history_rows(db))
        self.ok(db, mig, "migrate")
        self.assertEqual(history_rows(db)["2"][0], "applied")
        self.assertEqual(q1(db, "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                                "'t_v_key'::regclass"), "t")
        self.ok(db, mig, "repair")  # nothing left to repair

        cp = self.ok(db, mig, "status", "--history", "--output", "json")
        doc = json.loads(cp.stdout)
        self.assertEqual(list(doc), ["events"])
        evs = doc["events"]
        for e in evs:
            self.assertEqual(list(e), ["id", "at", "event", "version", "by", "detail"])
            self.assertRegex(e["at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertTrue(e["by"].startswith("pgboot "))
        self.assertEqual([(e["event"], e["version"]) for e in evs],
                         [("applied", "2"), ("repaired", "2"), ("failed", "2"), ("applied", "1")],
                         "newest first: the whole story")
        self.assertEqual(sorted(e["id"] for e in evs), [e["id"] for e in reversed(evs)])
        failed = evs[2]["detail"]
        self.assertEqual(failed["sqlstate"], "23505")
        self.assertEqual(failed["statement"], 2)
        repaired = evs[1]["detail"]
        self.assertEqual(repaired["action"], "delete")
        self.assertEqual(repaired["old_status"], "failed")
        self.assertIsNone(repaired["new_status"])
        self.assertIs(evs[0]["detail"]["transaction"], False)

    def test_realigns_checksums_with_old_and_new_values(self):
        db = new_database(self, "rp")
        mig = temp_migrations(self, five())
        self.ok(db, mig, "migrate")
        old = q1(db, "SELECT checksum FROM pgboot_history WHERE version = '3'")
        with open(mig / "3_t3.sql", "w") as f:
            f.write(simple(3).replace("CREATE TABLE", "-- reviewed\nCREATE TABLE"))
        self.assertExit(self.pgboot(db, mig, "validate"), 6)
        cp = self.pgboot(db, mig, "repair")
        self.assertExit(cp, 1)
        self.assertIn("checksum %s -> " % old, cp.stdout)
        self.assertEqual(q1(db, "SELECT checksum FROM pgboot_history WHERE version = '3'"), old)
        self.ok(db, mig, "repair", "--yes")
        self.ok(db, mig, "validate")
        new = q1(db, "SELECT checksum FROM pgboot_history WHERE version = '3'")
        self.assertNotEqual(new, old)
        rep = [(v, d) for e, v, d in audit(db) if e == "repaired"]
        self.assertEqual(len(rep), 1)
        self.assertEqual(rep[0][0], "3")
        self.assertEqual(rep[0][1]["action"], "realign")
        self.assertEqual(rep[0][1]["old_checksum"], old)
        self.assertEqual(rep[0][1]["new_checksum"], new)

    def test_nothing_to_repair_creates_nothing(self):
        db = new_database(self, "rp")
        mig = temp_migrations(self, five())
        cp = self.ok(db, mig, "repair", "--yes")
        self.assertIn("nothing to repair", cp.stdout)
        self.assertFalse(table_exists(db, "public.pgboot_history"))

    def test_running_row_is_repaired_only_under_the_lock(self):
        db = new_database(self, "rp")
        mig = temp_migrations(self, five())
        self.ok(db, mig, "migrate", "--target", "2")
        admin_sql("INSERT INTO pgboot_history (version, name, checksum, status, applied_by, batch) "
                  "VALUES ('3', 't3', 'x', 'running', 'a killed pgboot', 2)", db)
        holder, _ = self.hold_lock(db)
        cp = self.pgboot(db, mig, "repair", "--yes", "--lock-timeout", "1s")
        self.assertExit(cp, 7)
        self.assertEqual(history_rows(db)["3"][0], "running")
        holder.close()
        self.ok(db, mig, "repair", "--yes")
        self.assertNotIn("3", history_rows(db))
        self.ok(db, mig, "migrate")
        self.assertEqual(versions(db), ["1", "2", "3", "4", "5"])


# ---- baseline -------------------------------------------------------------------------

class BaselineTest(Base):
    def test_adopts_a_database_built_by_plain_sql(self):
        db = new_database(self, "bl")
        admin_sql("CREATE TABLE t1 (id int); CREATE TABLE t2 (id int); CREATE TABLE t3 (id int);",
                  db)
        mig = temp_migrations(self, five())
        cp = self.ok(db, mig, "baseline", "3")
        self.assertIn("baselined 3 migration(s) up to 3", cp.stdout)
        self.assertEqual(history_rows(db), {"1": ("applied", 1, "0"), "2": ("applied", 1, "0"),
                                            "3": ("applied", 1, "0")})
        bl = [(v, d) for e, v, d in audit(db) if e == "baselined"]
        self.assertEqual([v for v, _ in bl], ["1", "2", "3"])
        self.assertEqual(bl[0][1]["baseline"], "3")
        self.assertEqual(tables(db, "t"), ["t1", "t2", "t3"], "nothing ran")

        cp = self.ok(db, mig, "migrate")
        self.assertEqual([e["version"] for e in events(cp.stderr, "migration.start")], ["4", "5"])
        self.assertEqual(tables(db, "t"), ["t1", "t2", "t3", "t4", "t5"])
        self.ok(db, mig, "validate")

    def test_refuses_when_history_has_rows_unless_forced(self):
        db = new_database(self, "bl")
        mig = temp_migrations(self, five())
        self.ok(db, mig, "migrate", "--target", "1")
        cp = self.pgboot(db, mig, "baseline", "3")
        self.assertExit(cp, 6)
        self.assertIn("--force", cp.stderr)
        self.assertEqual(versions(db), ["1"])
        admin_sql("CREATE TABLE t2 (id int); CREATE TABLE t3 (id int);", db)
        self.ok(db, mig, "baseline", "3", "--force")
        h = history_rows(db)
        self.assertEqual(sorted(h, key=int), ["1", "2", "3"])
        # The row migrate wrote keeps its batch (1); baselined rows get the next
        # one. (Its execution_ms may well be 0 too: a fast CREATE TABLE is.)
        self.assertEqual(h["1"][1], 1, "the row migrate wrote is untouched")
        self.assertEqual((h["2"][1], h["2"][2]), (2, "0"))
        self.assertEqual((h["3"][1], h["3"][2]), (2, "0"))
        cp = self.ok(db, mig, "baseline", "3", "--force")
        self.assertIn("nothing to baseline", cp.stdout)

    def test_version_must_name_a_file_and_the_lock_is_taken(self):
        db = new_database(self, "bl")
        mig = temp_migrations(self, five())
        self.assertExit(self.pgboot(db, mig, "baseline", "7"), 2)
        self.assertExit(self.pgboot(db, mig, "baseline"), 2)
        self.assertFalse(table_exists(db, "public.pgboot_history"))
        holder, _ = self.hold_lock(db)
        self.assertExit(self.pgboot(db, mig, "baseline", "2", "--lock-timeout", "1s"), 7)
        self.assertFalse(table_exists(db, "public.pgboot_history"), "tables only under the lock")


# ---- new ------------------------------------------------------------------------------

class NewTest(Base):
    def new(self, mig, name, env=None):
        e = {"PGBOOT_MIGRATIONS_DIR": mig, "DATABASE_URL": closed_url(),
             "PGBOOT_WAIT_TIMEOUT": "20s"}
        e.update(env or {})
        return run(["new", name], env=e)

    def test_same_second_gives_different_versions_that_parse(self):
        mig = temp_migrations(self, {})
        # Take this second and the next two, with the same name, so `new` has to skip them.
        now = datetime.datetime.now(datetime.timezone.utc)
        sentinel = "-- migrate:up\nSELECT 'mine';\n"
        taken = set()
        for k in range(3):
            v = (now + datetime.timedelta(seconds=k)).strftime("%Y%m%d%H%M%S")
            taken.add(v)
            mig.write("%s_add_users.sql" % v, sentinel)
        a = self.new(mig, "add_users")
        b = self.new(mig, "add_users")
        self.assertExit(a, 0)
        self.assertExit(b, 0)
        pa, pb = a.stdout.strip(), b.stdout.strip()
        self.assertLess(a.elapsed + b.elapsed, 5, "new never waits for a database")
        va = re.match(r"^(\d{14})_add_users\.sql$", os.path.basename(pa)).group(1)
        vb = re.match(r"^(\d{14})_add_users\.sql$", os.path.basename(pb)).group(1)
        self.assertEqual(os.path.dirname(pa), str(mig))
        self.assertNotEqual(va, vb)
        self.assertNotIn(va, taken)
        self.assertNotIn(vb, taken)
        self.assertGreaterEqual(va, now.strftime("%Y%m%d%H%M%S"))
        for v in taken:
            with open(mig / ("%s_add_users.sql" % v)) as f:
                self.assertEqual(f.read(), sentinel, "never overwritten")
        with open(pa) as f:
            text = f.read()
        self.assertTrue(text.startswith("-- migrate:up\n"))
        self.assertIn("\n-- migrate:down\n", text)

        # Both parse with the project's parser: status lists them as pending.
        db = new_database(self, "nw")
        cp = self.ok(db, mig, "status", "--output", "json")
        states = {m["version"]: m["state"] for m in json.loads(cp.stdout)["migrations"]}
        self.assertEqual(states[va], "pending")
        self.assertEqual(states[vb], "pending")
        # An unwritten template never gets recorded as applied...
        cp = self.pgboot(db, mig, "migrate")
        self.assertExit(cp, 5)
        self.assertIn("is not written yet", cp.stderr)

    def test_rollback_of_an_unwritten_down_fails_at_its_placeholder(self):
        mig = temp_migrations(self, {})
        path = self.new(mig, "add_users").stdout.strip()
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:  # the up section written, the down one not
            f.write(re.sub(r"DO \$\$.*\$\$;", "CREATE TABLE users (id int);", text, count=1))
        db = new_database(self, "nw")
        self.ok(db, mig, "migrate")
        cp = self.pgboot(db, mig, "rollback")
        self.assertExit(cp, 5)
        self.assertIn("is not written yet", cp.stderr)
        self.assertEqual(q1(db, "SELECT to_regclass('users') IS NOT NULL"), "t")
        self.assertEqual(list(history_rows(db)), [os.path.basename(path).split("_")[0]])

    def test_bad_names_and_a_missing_directory(self):
        mig = temp_migrations(self, {})
        for name in ("AddUsers", "add-users", "../evil", "add users", ""):
            cp = self.new(mig, name)
            self.assertExit(cp, 2, name)
        self.assertEqual(os.listdir(mig), [])
        self.assertExit(run(["new"], env={"PGBOOT_MIGRATIONS_DIR": mig}), 2)
        self.assertExit(run(["new", "a", "b"], env={"PGBOOT_MIGRATIONS_DIR": mig}), 2)
        deep = os.path.join(str(mig), "db", "migrations")
        cp = self.new(deep, "init")
        self.assertExit(cp, 0)
        self.assertTrue(cp.stdout.strip().startswith(deep + "/"))
        self.assertTrue(os.path.isfile(cp.stdout.strip()))


# ---- doctor ---------------------------------------------------------------------------

class DoctorTest(Base):
    def test_clean_database(self):
        db = new_database(self, "dr")
        mig = temp_migrations(self, five())
        self.ok(db, mig, "migrate", "--target", "3")
        cp = self.ok(db, mig, "doctor", "--output", "json")
        doc = json.loads(cp.stdout)
        self.assertEqual(list(doc), ["info", "findings"])
        self.assertEqual(list(doc["info"]), ["server_version", "connections", "max_connections",
                                             "database_size_bytes", "pending"])
        self.assertRegex(doc["info"]["server_version"], r"^\d+")
        self.assertGreaterEqual(doc["info"]["connections"], 1)
        self.assertEqual(doc["info"]["max_connections"],
                         int(q1(db, "SHOW max_connections")))
        self.assertGreater(doc["info"]["database_size_bytes"], 1000000)
        self.assertEqual(doc["info"]["pending"], 2)
        self.assertEqual(doc["findings"], [])
        cp = self.ok(db, mig, "doctor")
        self.assertIn("no findings", cp.stdout)
        self.assertIn("pending migrations  2", cp.stdout)

    def test_idle_transaction_lock_wait_and_invalid_index(self):
        db = new_database(self, "dr")
        mig = temp_migrations(self, five())
        admin_sql("CREATE TABLE locked (id int); CREATE TABLE dup (v int); "
                  "INSERT INTO dup VALUES (1), (1);", db)
        # A failed CREATE UNIQUE INDEX CONCURRENTLY leaves an INVALID index behind.
        admin_sql("CREATE UNIQUE INDEX CONCURRENTLY dup_v_key ON dup (v)", db, check=False)
        self.assertEqual(q1(db, "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                                "'dup_v_key'::regclass"), "f")

        tag = "%d" % os.getpid()
        holder = NamedSession(self, db, "holder-" + tag)
        holder.send("BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        holder_pid = holder.pid()
        waiter = NamedSession(self, db, "waiter-" + tag)
        waiter.send("SELECT count(*) FROM locked")
        waiter_pid = waiter.pid()
        wait_until(lambda: q1(db, "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = %d"
                              % waiter_pid) == "1", 10, "the waiter waits")
        # Idle in transaction is a finding after 5 s.
        wait_until(lambda: q1(db, "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND "
                                  "state = 'idle in transaction' AND state_change < "
                                  "clock_timestamp() - interval '5.2 seconds'" % holder_pid) == "1",
                   20, "the holder is idle in transaction for over 5 s")

        cp = self.pgboot(db, mig, "doctor", "--output", "json")
        self.assertExit(cp, 1)
        findings = json.loads(cp.stdout)["findings"]
        by_kind = {}
        for f in findings:
            self.assertEqual(list(f)[:3], ["kind", "message", "pid"])
            by_kind.setdefault(f["kind"], []).append(f)
        self.assertEqual(sorted(by_kind), ["idle_in_transaction", "invalid_index", "lock_wait"],
                         findings)
        idle = by_kind["idle_in_transaction"]
        self.assertEqual([f["pid"] for f in idle], [holder_pid])
        self.assertEqual(idle[0]["application_name"], "holder-" + tag)
        self.assertEqual(idle[0]["state"], "idle in transaction")
        self.assertGreaterEqual(idle[0]["duration_ms"], 5000)
        self.assertRegex(idle[0]["since"], r"^\d{4}-\d\d-\d\dT")
        wait = by_kind["lock_wait"]
        self.assertEqual([f["pid"] for f in wait], [waiter_pid])
        self.assertEqual(wait[0]["blocked_by"], [holder_pid])
        self.assertEqual(wait[0]["relation"], "locked")
        self.assertIn("pid %d (holder-%s" % (holder_pid, tag), wait[0]["message"])
        inv = by_kind["invalid_index"]
        self.assertEqual(len(inv), 1)
        self.assertIsNone(inv[0]["pid"])
        self.assertEqual(inv[0]["index"], "public.dup_v_key")
        self.assertIn("DROP INDEX CONCURRENTLY public.dup_v_key", inv[0]["message"])

        cp = self.pgboot(db, mig, "doctor")
        self.assertExit(cp, 1)
        self.assertIn("3 finding(s):", cp.stdout)
        self.assertIn("[idle_in_transaction] pid %d" % holder_pid, cp.stdout)
        self.assertIn("[lock_wait] pid %d" % waiter_pid, cp.stdout)
        self.assertIn("blocked by pid %d" % holder_pid, cp.stdout)
        self.assertIn("[invalid_index] index public.dup_v_key", cp.stdout)

    def test_long_running_query(self):
        db = new_database(self, "dr")
        mig = temp_migrations(self, five())
        s = NamedSession(self, db, "sleeper-%d" % os.getpid())
        s.send("SELECT pg_sleep(60)")
        pid = s.pid()
        wait_until(lambda: q1(db, "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND "
                                  "state = 'active' AND query_start < clock_timestamp() - "
                                  "interval '1.2 seconds'" % pid) == "1", 10, "the query runs")
        self.ok(db, mig, "doctor")  # under the default 60 s
        cp = self.pgboot(db, mig, "doctor", "--output", "json", "--long-running", "1s")
        self.assertExit(cp, 1)
        f = json.loads(cp.stdout)["findings"]
        self.assertEqual([(x["kind"], x["pid"]) for x in f], [("long_running", pid)])

    def test_history_findings(self):
        db = new_database(self, "dr")
        mig = temp_migrations(self, five())
        self.ok(db, mig, "migrate")
        with open(mig / "2_t2.sql", "w") as f:
            f.write(simple(2).replace("(id int)", "(id bigint)"))
        admin_sql("UPDATE pgboot_history SET status = 'failed' WHERE version = '5'", db)
        cp = self.pgboot(db, mig, "doctor", "--output", "json")
        self.assertExit(cp, 1)
        f = json.loads(cp.stdout)["findings"]
        self.assertEqual([(x["kind"], x["version"], x["pid"]) for x in f],
                         [("history", "2", None), ("history", "5", None)])
        self.assertIn("changed after it was applied", f[0]["message"])
        self.assertEqual(f[1]["status"], "failed")


if __name__ == "__main__":
    unittest.main()
