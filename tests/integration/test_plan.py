#!/usr/bin/env python3
"""Plan, status and validate against a real PostgreSQL 15 (SPEC §1, §4, §5, §7).

The history table is written by the TEST (SPEC §5 columns, rows inserted by
hand), so every state a migration can be in is set up exactly, without
trusting pgboot's own writer: applied, pending, running, failed, missing,
changed and future. Then:

  * `status` (text and `--output json`, the exact §7 shape) lists every state;
  * `validate` names each finding (exit 6), a future version only warns (exit 0),
    `--out-of-order` accepts an out-of-order pending version;
  * `status --fail-on-pending` exits 1;
  * `migrate --dry-run` prints the SQL with `file:line` headers, changes nothing
    (catalog snapshots) and takes no lock (it succeeds while the test holds it);
  * reading history where there is no table creates nothing;
  * `--target` errors and notices; parse errors (exit 8, file:line, nothing applied);
  * a non-default `--history-table "Custom Schema"."Hist"`.
"""

import hashlib
import json
import os
import re
import unittest

from harness.server import new_database, url
from harness.sql import PsqlSession, admin_sql, lit, table_exists
from harness.proc import run
from harness.files import temp_dir, temp_migrations
from harness.logs import events
from harness.case import PgbootTestCase


ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


# ---- helpers ------------------------------------------------------------------------

def native(up, down=None, up_opts=""):
    """A native (dbmate) file: its text and the SPEC §4 checksum of its up section."""
    text = "-- migrate:up%s\n%s" % ((" " + up_opts) if up_opts else "", up)
    if down is not None:
        text += "-- migrate:down\n" + down
    return text


def checksum_of(text):
    """SPEC §4 checksum computed independently: BOM dropped, CRLF -> LF, the lines after
    the up marker up to the down marker (or the whole file without markers)."""
    data = text.encode("utf-8")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    data = data.replace(b"\r\n", b"\n")
    lines = data.split(b"\n")
    keep = lines
    for i, line in enumerate(lines):
        if line.startswith(b"-- migrate:up"):
            rest = lines[i + 1:]
            for j, l2 in enumerate(rest):
                if l2.startswith(b"-- migrate:down"):
                    rest = rest[:j] + [b""]
                    break
            keep = rest
            break
    return hashlib.sha256(b"\n".join(keep)).hexdigest()


def lock_key_sql(schema, table):
    return ("hashtextextended('pgboot:' || quote_ident(%s) || '.' || quote_ident(%s), 0)"
            % (lit(schema), lit(table)))


def create_history(db, table='public.pgboot_history', schema=None):
    """The SPEC §5 history table, made by the test (not by pgboot)."""
    sql = ""
    if schema:
        sql += "CREATE SCHEMA IF NOT EXISTS %s;\n" % schema
    sql += ("CREATE TABLE %s (version text PRIMARY KEY, name text, checksum text, status text, "
            "applied_at timestamptz, execution_ms integer, applied_by text, batch integer);"
            % table)
    admin_sql(sql, db)


def insert_row(db, version, name, checksum, status="applied",
               applied_at="2026-01-02 03:04:05.678+00", ms=41, batch=1,
               table="public.pgboot_history"):
    admin_sql("INSERT INTO %s VALUES (%s, %s, %s, %s, %s, %s, 'by hand', %d)"
              % (table, lit(version), lit(name), lit(checksum), lit(status), lit(applied_at),
                 "NULL" if ms is None else int(ms), batch), db)


def catalog_snapshot(db):
    """Every schema and relation made after initdb (oid >= 16384: user objects, their
    toast tables, indexes and sequences), plus the object counts of pg_namespace and
    pg_class, for before/after comparisons."""
    return admin_sql(
        "SELECT 'count', (SELECT count(*) FROM pg_namespace)::text, "
        "(SELECT count(*) FROM pg_class)::text, '' "
        "UNION ALL SELECT 'ns', oid::text, nspname, '' FROM pg_namespace WHERE oid >= 16384 "
        "UNION ALL SELECT 'rel', c.oid::text, n.nspname || '.' || c.relname, c.relkind::text "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid >= 16384 "
        "ORDER BY 1, 2", db)


def status_json(cp):
    try:
        return json.loads(cp.stdout)
    except ValueError as e:
        raise AssertionError("status --output json printed no JSON (%s):\n%s\n--- stderr ---\n%s"
                             % (e, cp.stdout, cp.stderr)) from None


# ---- fixtures -------------------------------------------------------------------------

# Versions and what the test puts in files and history for each state.
F1 = native("CREATE TABLE plan_one (id int);\n")                       # applied
F2 = native("CREATE TABLE plan_two (id int);\n")                       # changed (row has another checksum)
F4 = native("CREATE TABLE plan_four (id int);\n", up_opts="transaction:false")  # running
F5 = native("CREATE TABLE plan_five (id int);\n", up_opts="transaction:false")  # failed
F6 = native("CREATE TABLE plan_six (id int);\n")                       # pending, below newest applied
F7 = native("CREATE TABLE plan_seven (id int);\n")                     # applied (the newest file)

ALL_STATES = {"1": "applied", "2": "changed", "3": "missing", "4": "running", "5": "failed",
              "6": "pending", "7": "applied", "100": "future"}


class Base(PgbootTestCase):
    def args(self, cmd, db, mig, *extra):
        return [cmd, "--database-url", url(db), "--migrations-dir", mig,
                "--wait-timeout", "10s"] + list(extra)

    def assertNothingChanged(self, db, before, what):
        self.assertEqual(catalog_snapshot(db), before, "%s changed the catalog" % what)


class AllStatesTest(Base):
    """One database in which every state of §7 exists at once."""

    def setUp(self):
        self.db = new_database(self, "plan")
        self.mig = temp_migrations(self, {
            "1_one.sql": F1, "2_two.sql": F2, "4_four.sql": F4, "5_five.sql": F5,
            "6_six.sql": F6, "7_seven.sql": F7})
        create_history(self.db)
        insert_row(self.db, "1", "one", checksum_of(F1), ms=11)
        insert_row(self.db, "2", "two", "0" * 64, ms=12)
        insert_row(self.db, "3", "three", "3" * 64, ms=13)
        insert_row(self.db, "4", "four", checksum_of(F4), status="running", ms=None)
        insert_row(self.db, "5", "five", checksum_of(F5), status="failed", ms=None)
        insert_row(self.db, "7", "seven", checksum_of(F7), ms=17,
                   applied_at="2026-03-04 05:06:07.089+00")
        insert_row(self.db, "100", "hundred", "a" * 64, ms=100)

    def test_status_json_exact_shape_and_every_state(self):
        cp = run(self.args("status", self.db, self.mig, "--output", "json"))
        self.assertExit(cp, 0)
        doc = status_json(cp)
        self.assertEqual(set(doc), {"database", "history_table", "migrations", "pending",
                                    "applied"}, "top-level keys of §7")
        self.assertEqual(doc["database"], self.db)
        self.assertEqual(doc["history_table"], "public.pgboot_history")
        migs = doc["migrations"]
        for m in migs:
            self.assertEqual(set(m), {"version", "name", "state", "applied_at", "execution_ms",
                                      "checksum", "rollback"}, "keys of a migration row: %r" % m)
            # Where rollback's down would come from; null exactly for pending rows.
            self.assertEqual(m["rollback"] is None, m["state"] == "pending", m)
            self.assertIn(m["rollback"], (None, "file", "stored", "empty", "none"), m)
            self.assertIsInstance(m["version"], str)
        self.assertEqual([m["version"] for m in migs], ["1", "2", "3", "4", "5", "6", "7", "100"],
                         "one row per version, in numeric order")
        self.assertEqual({m["version"]: m["state"] for m in migs}, ALL_STATES)
        by = {m["version"]: m for m in migs}
        self.assertEqual(by["3"]["name"], "three", "a missing file's name comes from history")
        self.assertEqual(by["100"]["name"], "hundred")
        self.assertEqual(by["6"]["name"], "six")
        # pending: null applied_at and execution_ms (§7)
        self.assertIsNone(by["6"]["applied_at"])
        self.assertIsNone(by["6"]["execution_ms"])
        # applied rows carry the recorded values, applied_at as ISO 8601 UTC
        self.assertEqual(by["7"]["applied_at"], "2026-03-04T05:06:07.089Z")
        self.assertEqual(by["1"]["applied_at"], "2026-01-02T03:04:05.678Z")
        self.assertEqual(by["1"]["execution_ms"], 11)
        self.assertEqual(by["7"]["execution_ms"], 17)
        self.assertIsInstance(by["7"]["execution_ms"], int)
        self.assertIsNone(by["4"]["execution_ms"], "a running row has no execution time")
        # checksums: the file's for rows with a file (the independent §4 computation)
        self.assertEqual(by["1"]["checksum"], checksum_of(F1))
        self.assertEqual(by["6"]["checksum"], checksum_of(F6))
        self.assertEqual(by["2"]["checksum"], checksum_of(F2),
                         "a changed row shows the file's (current) checksum")
        self.assertEqual(by["3"]["checksum"], "3" * 64, "no file: the recorded checksum")
        for v, m in by.items():
            self.assertRegex(m["checksum"], r"^[0-9a-f]{64}$", v)
            if m["applied_at"] is not None:
                self.assertRegex(m["applied_at"], ISO_UTC.pattern, v)
        self.assertEqual(doc["pending"], 1)
        # "applied": the migrations recorded as applied. Rows 1, 2 (changed), 3 (missing),
        # 7 and 100 (future) have status 'applied' in history; 1 and 7 are in state applied.
        self.assertIn(doc["applied"], (2, 5), "applied count %r" % doc["applied"])
        self.assertNotIn("validate.error", cp.stderr, "status is a report, not a validation")

    def test_status_text_lists_every_state(self):
        cp = run(self.args("status", self.db, self.mig))
        self.assertExit(cp, 0)
        rows = {}
        for line in cp.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0].isdigit() and not parts[1].startswith("migration"):
                rows[parts[0]] = parts
        self.assertEqual(set(rows), set(ALL_STATES), cp.stdout)
        for v, state in ALL_STATES.items():
            self.assertIn(state, rows[v], "row %s of:\n%s" % (v, cp.stdout))
        self.assertIn("2026-03-04T05:06:07.089Z", " ".join(rows["7"]))
        self.assertIn("17", " ".join(rows["7"]), "execution time of version 7")
        self.assertEqual(cp.stderr.count("\n"), len(cp.stderr.splitlines()))
        self.assertNotIn("\x1b[", cp.stdout, "no colour codes in a plain pipe")

    def test_status_fail_on_pending_exits_1(self):
        cp = run(self.args("status", self.db, self.mig, "--fail-on-pending"))
        self.assertExit(cp, 1)
        self.assertIn("pending", cp.stdout)
        cp = run(self.args("status", self.db, self.mig, "--fail-on-pending", "--output", "json"))
        self.assertExit(cp, 1)
        self.assertEqual(status_json(cp)["pending"], 1)

    def test_validate_names_every_finding(self):
        before = catalog_snapshot(self.db)
        cp = run(self.args("validate", self.db, self.mig))
        self.assertExit(cp, 6)
        out = cp.stdout + cp.stderr
        lines = out.splitlines()

        def finding(version, *words):
            rx = re.compile(r"\b%s\b" % re.escape(version))
            hits = [l for l in lines if rx.search(l) and all(w in l.lower() for w in words)]
            self.assertTrue(hits, "no finding naming version %s with %r in:\n%s"
                            % (version, words, out))

        finding("2", "chang")                # drift
        finding("3", "missing")              # deleted below the newest file
        finding("6", "out of order")         # pending below newest applied
        finding("5", "failed")
        finding("4", "running")
        finding("100", "newer")              # future: a warning
        future = [l for l in lines if re.search(r"version 100\b", l)
                  and not re.search(r"version (?!100\b)\d+", l)]
        self.assertTrue(future, out)
        self.assertTrue(all("error" not in l.lower() for l in future),
                        "the future version must only warn:\n%s" % "\n".join(future))
        self.assertFalse([l for l in lines if re.search(r"\b(1|7)\b.*(error|chang|missing)", l)
                          and not re.search(r"\b(2|3|4|5|6|100)\b", l)],
                         "clean versions 1 and 7 are not findings:\n%s" % out)
        self.assertNothingChanged(self.db, before, "validate")

    def test_migrate_refuses_with_these_findings_before_anything_runs(self):
        cp = run(self.args("migrate", self.db, self.mig, "--lock-timeout", "2s"))
        self.assertExit(cp, 6)
        self.assertFalse(table_exists(self.db, "plan_six"))
        self.assertFalse(table_exists(self.db, "public.pgboot_history_log"),
                         "validation fails before the lock: no audit table is created")

    def test_dry_run_refuses_unfinished_rows(self):
        cp = run(self.args("migrate", self.db, self.mig, "--dry-run"))
        self.assertExit(cp, 6)


class ValidateTest(Base):
    def test_clean_database_validates(self):
        db = new_database(self, "plan")
        mig = temp_migrations(self, {"1_a.sql": F1, "7_b.sql": F7})
        create_history(db)
        insert_row(db, "1", "a", checksum_of(F1))
        cp = run(self.args("validate", db, mig))
        self.assertExit(cp, 0)
        self.assertNotRegex(cp.stdout + cp.stderr, r"(?i)\berror\b")

    def test_future_version_only_warns(self):
        db = new_database(self, "plan")
        mig = temp_migrations(self, {"1_a.sql": F1})
        create_history(db)
        insert_row(db, "1", "a", checksum_of(F1))
        insert_row(db, "20990101000000", "from_next_release", "b" * 64)
        cp = run(self.args("validate", db, mig))
        self.assertExit(cp, 0)
        self.assertRegex(cp.stdout + cp.stderr, r"(?i)warn.*20990101000000|20990101000000.*newer")
        cp = run(self.args("status", db, mig, "--output", "json"))
        self.assertExit(cp, 0)
        states = {m["version"]: m["state"] for m in status_json(cp)["migrations"]}
        self.assertEqual(states, {"1": "applied", "20990101000000": "future"})
        # and migrate has nothing to do (no error, no lock needed)
        cp = run(self.args("migrate", db, mig))
        self.assertExit(cp, 0)
        self.assertEqual(events(cp.stderr, "lock.acquired"), [])

    def test_out_of_order_refused_then_accepted(self):
        db = new_database(self, "plan")
        mig = temp_migrations(self, {"1_a.sql": F1, "6_six.sql": F6, "7_b.sql": F7})
        create_history(db)
        insert_row(db, "1", "a", checksum_of(F1))
        insert_row(db, "7", "b", checksum_of(F7))
        admin_sql("CREATE TABLE plan_one (id int); CREATE TABLE plan_seven (id int);", db)
        cp = run(self.args("validate", db, mig))
        self.assertExit(cp, 6)
        self.assertRegex(cp.stdout + cp.stderr, r"\b6\b.*(?i:out of order)")
        cp = run(self.args("validate", db, mig, "--out-of-order"))
        self.assertExit(cp, 0)
        cp = run(self.args("migrate", db, mig))
        self.assertExit(cp, 6)
        self.assertFalse(table_exists(db, "plan_six"))
        cp = run(self.args("migrate", db, mig, "--out-of-order"))
        self.assertExit(cp, 0)
        self.assertTrue(table_exists(db, "plan_six"))
        self.assertEqual(admin_sql("SELECT status FROM pgboot_history WHERE version = '6'", db)
                         .strip(), "applied")
        cp = run(self.args("validate", db, mig))
        self.assertExit(cp, 0, "once applied, out-of-order is no longer a finding")

    def test_deleted_file_above_newest_file_is_future_not_missing(self):
        db = new_database(self, "plan")
        mig = temp_migrations(self, {"1_a.sql": F1, "5_e.sql": F5})
        create_history(db)
        insert_row(db, "1", "a", checksum_of(F1))
        insert_row(db, "3", "c", "c" * 64)   # below the newest file: missing (error)
        insert_row(db, "9", "i", "9" * 64)   # above every file: future (warning)
        cp = run(self.args("status", db, mig, "--output", "json"))
        states = {m["version"]: m["state"] for m in status_json(cp)["migrations"]}
        self.assertEqual(states, {"1": "applied", "3": "missing", "5": "pending", "9": "future"})
        cp = run(self.args("validate", db, mig))
        self.assertExit(cp, 6)
        self.assertRegex(cp.stdout + cp.stderr, r"\b3\b.*(?i:missing)")


class OrderTest(Base):
    def test_versions_order_numerically_and_drop_leading_zeros(self):
        db = new_database(self, "plan")
        mig = temp_migrations(self, {
            "20260101000000_c.sql": native("CREATE TABLE ord_c (id int);\n"),
            "9_a.sql": native("CREATE TABLE ord_a (id int);\n"),
            "0010_b.sql": native("CREATE TABLE ord_b (id int);\n"),
            "0_zero.sql": native("CREATE TABLE ord_z (id int);\n"),
        })
        cp = run(self.args("status", db, mig, "--output", "json"))
        self.assertExit(cp, 0)
        self.assertEqual([(m["version"], m["name"]) for m in status_json(cp)["migrations"]],
                         [("0", "zero"), ("9", "a"), ("10", "b"), ("20260101000000", "c")])
        cp = run(self.args("migrate", db, mig, "--log-format", "json"))
        self.assertExit(cp, 0)
        self.assertEqual([e["version"] for e in events(cp.stderr, "migration.start")],
                         ["0", "9", "10", "20260101000000"])
        self.assertEqual(set(admin_sql("SELECT version FROM pgboot_history", db).split()),
                         {"0", "9", "10", "20260101000000"}, "canonical versions are stored")
        ids = admin_sql("SELECT string_agg(version, ',' ORDER BY id) FROM pgboot_history_log",
                        db).strip()
        self.assertEqual(ids, "0,9,10,20260101000000", "applied in numeric order")


class NoTableTest(Base):
    def test_reading_history_without_table_creates_nothing(self):
        db = new_database(self, "plan")
        mig = temp_migrations(self, {"1_a.sql": F1, "2_b.sql": F2})
        for table in (None, '"Reader Schema"."Hist"'):
            with self.subTest(history_table=table):
                extra = ["--history-table", table] if table else []
                before = catalog_snapshot(db)
                cp = run(self.args("status", db, mig, "--output", "json", *extra))
                self.assertExit(cp, 0)
                doc = status_json(cp)
                self.assertEqual([m["state"] for m in doc["migrations"]], ["pending", "pending"])
                self.assertEqual((doc["pending"], doc["applied"]), (2, 0))
                self.assertExit(run(self.args("status", db, mig, *extra)), 0)
                self.assertExit(run(self.args("status", db, mig, "--history", *extra)), 0)
                cp = run(self.args("status", db, mig, "--history", "--output", "json", *extra))
                self.assertExit(cp, 0)
                self.assertEqual(json.loads(cp.stdout), {"events": []})
                self.assertExit(run(self.args("validate", db, mig, *extra)), 0)
                self.assertExit(run(self.args("status", db, mig, "--fail-on-pending", *extra)), 1)
                self.assertExit(run(self.args("migrate", db, mig, "--dry-run", *extra)), 0)
                self.assertNothingChanged(db, before, "reading history")
                self.assertEqual(admin_sql("SELECT count(*) FROM pg_namespace WHERE nspname = "
                                           "'Reader Schema'", db).strip(), "0")


class DryRunTest(Base):
    FILES = {
        "1_first.sql": "-- migrate:up\nCREATE TABLE dry_one (id int);\n"
                       "-- migrate:down\nDROP TABLE dry_one;\n",
        # line 1 comment, 2 marker, 3 blank, 4 comment, 5-7 a statement, 8 another
        "2_second.sql": "-- a header comment\n-- migrate:up\n\n-- a comment\n"
                        "CREATE TABLE dry_two (\n  id int\n);\nINSERT INTO dry_two VALUES (1);\n",
        "3_third.sql": "-- migrate:up transaction:false\n"
                       "CREATE INDEX CONCURRENTLY dry_two_idx ON dry_two (id);\n",
    }

    def test_dry_run_prints_sql_with_locations_changes_nothing_takes_no_lock(self):
        db = new_database(self, "plan")
        mig = temp_migrations(self, self.FILES)
        before = catalog_snapshot(db)
        # Hold the lock pgboot would take: a dry run must not even try it.
        holder = PsqlSession(self, db)
        holder.execute("SELECT pg_advisory_lock(%s)" % lock_key_sql("public", "pgboot_history"))
        cp = run(self.args("migrate", db, mig, "--dry-run", "--lock-timeout", "1s"), timeout=20)
        self.assertExit(cp, 0)
        self.assertEqual(events(cp.stderr, "lock.waiting"), [])
        self.assertEqual(events(cp.stderr, "lock.acquired"), [])
        self.assertEqual(events(cp.stderr, "migration.start"), [])
        out = cp.stdout
        p1, p2, p3 = (os.path.join(str(mig), n) for n in sorted(self.FILES))
        for header in ("%s:2" % p1, "%s:5" % p2, "%s:8" % p2, "%s:2" % p3):
            self.assertRegex(out, r"(?m)^--.*%s\b" % re.escape(header), "header %s" % header)
        self.assertNotRegex(out, r"%s:[1-4]\b" % re.escape(p2),
                            "the header names the statement's first token, not its comments")
        for stmt in ("CREATE TABLE dry_one (id int)", "CREATE TABLE dry_two (\n  id int\n)",
                     "INSERT INTO dry_two VALUES (1)",
                     "CREATE INDEX CONCURRENTLY dry_two_idx ON dry_two (id)"):
            self.assertIn(stmt, out)
        self.assertNotIn("DROP TABLE", out, "the down section is not part of migrate")
        self.assertLess(out.index("dry_one"), out.index("dry_two ("))
        self.assertLess(out.index("INSERT INTO dry_two"), out.index("CONCURRENTLY"))
        self.assertNothingChanged(db, before, "migrate --dry-run")
        self.assertFalse(table_exists(db, "public.pgboot_history"))
        self.assertNotIn("dry_one", cp.stderr.replace(out, ""), "SQL goes to stdout only")

    def test_dry_run_prints_only_what_is_pending(self):
        db = new_database(self, "plan")
        mig = temp_migrations(self, self.FILES)
        cp = run(self.args("migrate", db, mig, "--target", "1"))
        self.assertExit(cp, 0)
        before = catalog_snapshot(db)
        history_before = admin_sql("SELECT * FROM pgboot_history ORDER BY version", db)
        cp = run(self.args("migrate", db, mig, "--dry-run"))
        self.assertExit(cp, 0)
        self.assertNotIn("dry_one", cp.stdout)
        self.assertIn("dry_two", cp.stdout)
        self.assertIn("CONCURRENTLY", cp.stdout)
        self.assertNothingChanged(db, before, "migrate --dry-run")
        self.assertEqual(admin_sql("SELECT * FROM pgboot_history ORDER BY version", db),
                         history_before)
        cp = run(self.args("migrate", db, mig, "--dry-run", "--target", "2"))
        self.assertExit(cp, 0)
        self.assertIn("dry_two", cp.stdout)
        self.assertNotIn("CONCURRENTLY", cp.stdout, "--target limits the dry run too")


class TargetTest(Base):
    FILES = {"1_a.sql": native("CREATE TABLE tgt_a (id int);\n"),
             "2_b.sql": native("CREATE TABLE tgt_b (id int);\n"),
             "3_c.sql": native("CREATE TABLE tgt_c (id int);\n")}

    def test_target_applies_up_to_and_including(self):
        db = new_database(self, "plan")
        mig = temp_migrations(self, self.FILES)
        cp = run(self.args("migrate", db, mig, "--target", "002"))  # canonical form: 2
        self.assertExit(cp, 0)
        self.assertTrue(table_exists(db, "tgt_b"))
        self.assertFalse(table_exists(db, "tgt_c"))
        self.assertEqual(admin_sql("SELECT string_agg(version, ',' ORDER BY version) FROM "
                                   "pgboot_history", db).strip(), "1,2")

    def test_target_naming_no_file_is_usage_error(self):
        db = new_database(self, "plan")
        mig = temp_migrations(self, self.FILES)
        before = catalog_snapshot(db)
        for target in ("4", "0", "abc", "2x", "-1"):
            with self.subTest(target=target):
                cp = run(self.args("migrate", db, mig, "--target", target))
                self.assertExit(cp, 2)
                self.assertIn(target, cp.stderr)
                cp = run(self.args("migrate", db, mig, "--target", target, "--dry-run"))
                self.assertExit(cp, 2)
        self.assertNothingChanged(db, before, "migrate with a bad --target")

    def test_empty_target_is_usage_error(self):
        # `--target ""` names no migration file either (SPEC §1): it must not mean "all".
        db = new_database(self, "plan")
        mig = temp_migrations(self, self.FILES)
        before = catalog_snapshot(db)
        cp = run(self.args("migrate", db, mig, "--target", ""))
        self.assertExit(cp, 2)
        self.assertNothingChanged(db, before, "migrate --target ''")

    def test_target_at_or_below_newest_applied_is_a_notice(self):
        db = new_database(self, "plan")
        mig = temp_migrations(self, self.FILES)
        self.assertExit(run(self.args("migrate", db, mig, "--target", "2")), 0)
        before = catalog_snapshot(db)
        for target in ("2", "1"):
            with self.subTest(target=target):
                # The lock is held elsewhere: "nothing to do" must not need it.
                holder = PsqlSession(self, db)
                holder.execute("SELECT pg_advisory_lock(%s)"
                               % lock_key_sql("public", "pgboot_history"))
                cp = run(self.args("migrate", db, mig, "--target", target, "--lock-timeout", "1s"))
                holder.close()
                self.assertExit(cp, 0)
                self.assertEqual(events(cp.stderr, "migration.start"), [])
                self.assertEqual(events(cp.stderr, "lock.waiting"), [])
                self.assertRegex(cp.stderr, r"(?i)(INFO|WARN|NOTICE).*target")
                self.assertNothingChanged(db, before, "migrate --target %s" % target)
        self.assertFalse(table_exists(db, "tgt_c"))


class ParseErrorTest(Base):
    def test_parse_errors_exit_8_name_file_line_apply_nothing(self):
        db = new_database(self, "plan")
        mig = temp_migrations(self, {
            "1_good.sql": native("CREATE TABLE parse_good (id int);\n"),
            # line 1 marker, 2 statement, 3 an unterminated quote opens
            "2_quote.sql": native("CREATE TABLE parse_q (id int);\nSELECT 'never closed;\n"),
            # transaction control in a transactional section on line 4
            "3_commit.sql": native("CREATE TABLE parse_c (id int);\n\nCOMMIT;\n"),
            # a repeated marker on line 3
            "4_marker.sql": "-- migrate:up\nSELECT 1;\n-- migrate:up\nSELECT 2;\n",
            # an unknown marker option on line 1
            "5_option.sql": "-- migrate:up transaction:maybe\nSELECT 1;\n",
        })
        before = catalog_snapshot(db)
        for cmd in ("migrate", "status", "validate"):
            with self.subTest(command=cmd):
                extra = ["--dry-run"] if cmd == "migrate" else []
                for args in ([], extra):
                    cp = run(self.args(cmd, db, mig, *args))
                    self.assertExit(cp, 8)
                    err = cp.stderr
                    for loc in ("2_quote.sql:3", "3_commit.sql:4", "4_marker.sql:3",
                                "5_option.sql:1"):
                        self.assertIn(os.path.join(str(mig), loc), err,
                                      "every invalid file named with its line")
                    self.assertNotIn("1_good.sql:", err)
                    self.assertEqual(cp.stdout, "")
        self.assertNothingChanged(db, before, "invalid files")
        self.assertFalse(table_exists(db, "parse_good"))

    def test_missing_directory_exit_8(self):
        db = new_database(self, "plan")
        missing = os.path.join(str(temp_dir(self)), "nope")
        cp = run(self.args("migrate", db, missing))
        self.assertExit(cp, 8)
        self.assertIn(missing, cp.stderr)

    def test_version_collision_exit_8(self):
        db = new_database(self, "plan")
        mig = temp_migrations(self, {"1_a.sql": native("SELECT 1;\n"),
                                     "001_b.sql": native("SELECT 2;\n")})
        cp = run(self.args("status", db, mig))
        self.assertExit(cp, 8)
        self.assertIn("001_b.sql", cp.stderr + cp.stdout)


class CustomHistoryTableTest(Base):
    TABLE = '"Custom Schema"."Hist"'

    def test_custom_history_table_end_to_end(self):
        db = new_database(self, "plan")
        files = {"1_a.sql": native("CREATE TABLE cust_a (id int);\n"),
                 "2_b.sql": native("CREATE TABLE cust_b (id int);\n"),
                 "3_c.sql": native("CREATE TABLE cust_c (id int);\n")}
        mig = temp_migrations(self, files)
        # A history the test wrote, in the custom table.
        create_history(db, table=self.TABLE, schema='"Custom Schema"')
        admin_sql('CREATE TABLE "Custom Schema"."Hist_log" (id bigserial PRIMARY KEY, '
                  'at timestamptz NOT NULL DEFAULT now(), event text NOT NULL, version text, '
                  'by text NOT NULL, detail jsonb NOT NULL DEFAULT \'{}\')', db)
        insert_row(db, "1", "a", checksum_of(files["1_a.sql"]), table=self.TABLE)
        admin_sql("CREATE TABLE cust_a (id int)", db)
        extra = ("--history-table", self.TABLE)

        cp = run(self.args("status", db, mig, "--output", "json", *extra))
        self.assertExit(cp, 0)
        doc = status_json(cp)
        self.assertEqual(doc["history_table"], self.TABLE)
        self.assertEqual([m["state"] for m in doc["migrations"]], ["applied", "pending", "pending"])
        self.assertExit(run(self.args("validate", db, mig, *extra)), 0)

        # The lock key is the one of "Custom Schema"."Hist": holding it blocks migrate.
        holder = PsqlSession(self, db)
        holder.execute("SELECT pg_advisory_lock(%s)" % lock_key_sql("Custom Schema", "Hist"))
        cp = run(self.args("migrate", db, mig, "--lock-timeout", "500ms", *extra))
        self.assertExit(cp, 7)
        self.assertFalse(table_exists(db, "cust_b"))
        holder.close()

        # The default table's lock does not block it.
        holder = PsqlSession(self, db)
        holder.execute("SELECT pg_advisory_lock(%s)" % lock_key_sql("public", "pgboot_history"))
        cp = run(self.args("migrate", db, mig, "--lock-timeout", "2s", *extra))
        self.assertExit(cp, 0)
        self.assertTrue(table_exists(db, "cust_c"))
        rows = admin_sql('SELECT version, status, batch FROM "Custom Schema"."Hist" '
                         'ORDER BY version', db).split()
        self.assertEqual(rows, ["1|applied|1", "2|applied|2", "3|applied|2"])
        self.assertEqual(admin_sql('SELECT string_agg(version, \',\' ORDER BY id) FROM '
                                   '"Custom Schema"."Hist_log" WHERE event = \'applied\'', db)
                         .strip(), "2,3")
        self.assertFalse(table_exists(db, "public.pgboot_history"),
                         "the default table is never touched")
        cp = run(self.args("status", db, mig, "--history", "--output", "json", *extra))
        self.assertExit(cp, 0)
        evs = json.loads(cp.stdout)["events"]
        self.assertEqual([e["version"] for e in evs], ["3", "2"], "newest first")
        for e in evs:
            self.assertEqual(set(e), {"id", "at", "event", "version", "by", "detail"})
            self.assertIsInstance(e["id"], int)
            self.assertIsInstance(e["detail"], dict)
            self.assertEqual(e["event"], "applied")
            self.assertRegex(e["at"], ISO_UTC.pattern)
        self.assertGreater(evs[0]["id"], evs[1]["id"])

    def test_custom_table_created_by_migrate(self):
        db = new_database(self, "plan")
        mig = temp_migrations(self, {"1_a.sql": native("CREATE TABLE cust_x (id int);\n")})
        cp = run(self.args("migrate", db, mig, "--history-table", self.TABLE))
        self.assertExit(cp, 0)
        self.assertTrue(table_exists(db, self.TABLE))
        self.assertTrue(table_exists(db, '"Custom Schema"."Hist_log"'))
        self.assertFalse(table_exists(db, "public.pgboot_history"))
        cols = admin_sql("SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod), ',' "
                         "ORDER BY attnum) FROM pg_attribute WHERE attrelid = %s::regclass AND "
                         "attnum > 0 AND NOT attisdropped" % lit(self.TABLE), db).strip()
        self.assertEqual(cols, "version:text,name:text,checksum:text,status:text,"
                               "applied_at:timestamp with time zone,execution_ms:integer,"
                               "applied_by:text,batch:integer,down_sql:text,down_options:text,"
                               "statements_done:integer")
        cols = admin_sql("SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod), ',' "
                         "ORDER BY attnum) FROM pg_attribute WHERE attrelid = "
                         "'\"Custom Schema\".\"Hist_log\"'::regclass AND attnum > 0 AND NOT "
                         "attisdropped", db).strip()
        self.assertEqual(cols, "id:bigint,at:timestamp with time zone,event:text,version:text,"
                               "by:text,detail:jsonb")
        pk = admin_sql("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON "
                       "a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indisprimary "
                       "AND i.indrelid = %s::regclass" % lit(self.TABLE), db).strip()
        self.assertEqual(pk, "version", "version is the primary key (§5)")


if __name__ == "__main__":
    unittest.main()
