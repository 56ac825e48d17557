#!/usr/bin/env python3
"""Edge cases a review of the engine found: each test failed before its fix.
Passwords inside libpq's own parse errors, a database with
standard_conforming_strings off, a transaction:false section that opens and
fails its own transaction, the dry run's trailing comments, the termination
log of a configuration error, over-long history table names, and the hint for
a boolean flag given with a space."""
import unittest

from harness.server import free_port, new_database, url
from harness.sql import PsqlSession, admin_sql
from harness.proc import run
from harness.files import temp_dir, temp_migrations, up
from harness.logs import parse_json_lines
from harness.case import PgbootTestCase


class Hardening(PgbootTestCase):
    def migrate(self, db, mig, *extra, env=None):
        return run(["migrate", "--database-url", url(db), "--migrations-dir", str(mig),
                    "--wait-timeout", "10s"] + list(extra), env=env)

    def test_libpq_parse_errors_never_quote_the_password(self):
        term = temp_dir(self).write("termination-log", "")
        for bad, secret in [("postgres://u:s3cr%%t@127.0.0.1:%d/db" % free_port(), "s3cr%t"),
                            ("host=127.0.0.1 password=my secret", "secret"),
                            ("postgres://u:pa?ss@[::1/db", "pa?ss")]:
            cp = run(["wait", "--database-url", bad, "--wait-timeout", "1s",
                      "--termination-log", str(term)])
            self.assertExit(cp, 2)
            self.assertNoPassword(cp.stderr + cp.stdout, secret)
            with open(term) as f:
                self.assertNoPassword(f.read(), secret)

    def test_standard_conforming_strings_off_changes_nothing(self):
        db = new_database(self)
        admin_sql("ALTER DATABASE %s SET standard_conforming_strings = off" % db)
        mig = temp_migrations(self, {
            "1_ok.sql": up("CREATE TABLE scs (v text);\nINSERT INTO scs VALUES ('a\\b');\n"),
            "2_x\\y.sql": up("SELECT 1;\n"),
            "3_fails.sql": up("SELECT 1/0;\n"),
        })
        cp = self.migrate(db, mig)
        self.assertExit(cp, 5)
        # The backslash is literal in the file and in the stored name.
        self.assertEqual(admin_sql("SELECT v FROM scs", db).strip(), "a\\b")
        self.assertEqual(admin_sql("SELECT name FROM pgboot_history WHERE version = '2'",
                                   db).strip(), "x\\y")
        failed = admin_sql("SELECT detail->>'sqlstate' FROM pgboot_history_log "
                           "WHERE event = 'failed'", db).split()
        self.assertEqual(failed, ["22012"], "the failed audit row was written")

    def test_a_transaction_false_section_failing_inside_its_own_transaction(self):
        db = new_database(self)
        mig = temp_migrations(self, {
            "1_own_tx.sql": up("CREATE TABLE own1 (id int);\nBEGIN;\nCREATE TABLE own2 (id int);\n"
                               "SELECT 1/0;\nCOMMIT;\n", "transaction:false"),
        })
        cp = self.migrate(db, mig)
        self.assertExit(cp, 5)
        self.assertIn("1_own_tx.sql:5", cp.stderr)
        self.assertEqual(admin_sql("SELECT status FROM pgboot_history", db).split(), ["failed"])
        self.assertEqual(admin_sql("SELECT event FROM pgboot_history_log", db).split(), ["failed"])
        self.assertEqual(admin_sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                   "AND database = (SELECT oid FROM pg_database "
                                   "WHERE datname = current_database())", db).strip(), "0",
                         "the lock was released (pg_locks is cluster-wide: this database only)")
        tables = admin_sql("SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class "
                           "WHERE relname LIKE 'own%'", db).strip()
        self.assertEqual(tables, "own1", "the statement before BEGIN stays, the rest rolled back")

    def test_a_transaction_false_section_leaving_a_transaction_open_fails(self):
        db = new_database(self)
        mig = temp_migrations(self, {
            "1_open.sql": up("BEGIN;\nCREATE TABLE open1 (id int);\n", "transaction:false"),
        })
        cp = self.migrate(db, mig)
        self.assertExit(cp, 5)
        self.assertIn("BEGIN without COMMIT", cp.stderr)
        self.assertEqual(admin_sql("SELECT status FROM pgboot_history", db).split(), ["failed"])
        self.assertEqual(admin_sql("SELECT to_regclass('open1') IS NULL", db).strip(), "t")

    def test_dry_run_keeps_a_trailing_comment_away_from_the_semicolon(self):
        db = new_database(self)
        mig = temp_migrations(self, {"1_c.sql": up("SELECT 1 -- the first\n;\nSELECT 2;\n")})
        cp = self.migrate(db, mig, "--dry-run")
        self.assertExit(cp, 0)
        self.assertIn("SELECT 1 -- the first\n;\n", cp.stdout)
        # The printed SQL runs as the same two statements in psql.
        sql = "\n".join(l for l in cp.stdout.splitlines() if not l.startswith("-- "))
        self.assertEqual(admin_sql(sql, db).split(), ["1", "2"])

    def test_configuration_errors_reach_the_termination_log_from_the_environment(self):
        term = temp_dir(self).write("termination-log", "")
        cp = run(["wait"], env={"PGBOOT_TERMINATION_LOG": str(term), "PGBOOT_WAIT_TIMEOUT": "abc"})
        self.assertExit(cp, 2)
        with open(term) as f:
            self.assertIn("PGBOOT_WAIT_TIMEOUT", f.read())
        cp = run(["wait", "--termination-log", str(term), "--bogus"])
        self.assertExit(cp, 2)

    def test_history_table_names_that_would_truncate_are_refused(self):
        cp = run(["status", "--history-table", "h" * 60, "--database-url", url("postgres")])
        self.assertExit(cp, 2)
        self.assertIn("59 bytes", cp.stderr)

    def test_a_boolean_flag_with_a_space_gets_a_hint(self):
        cp = run(["--run-migrations", "false", "--", "true"])
        self.assertExit(cp, 2)
        self.assertIn("--run-migrations=false", cp.stderr)

    def test_lock_waiting_holder_pid_is_a_number(self):
        db = new_database(self)
        mig = temp_migrations(self, {"1_a.sql": up("SELECT 1;\n")})
        holder = PsqlSession(self, db)
        holder.execute("SELECT pg_advisory_lock(hashtextextended('pgboot:' || quote_ident('public')"
                       " || '.' || quote_ident('pgboot_history'), 0))")
        cp = self.migrate(db, mig, "--lock-timeout", "300ms", "--log-format", "json")
        self.assertExit(cp, 7)
        waiting = [e for e in parse_json_lines(cp.stderr) if e["event"] == "lock.waiting"]
        self.assertTrue(waiting)
        self.assertEqual(waiting[0]["holder_pid"], holder.backend_pid())


if __name__ == "__main__":
    unittest.main()
