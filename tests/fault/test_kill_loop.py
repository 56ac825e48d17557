#!/usr/bin/env python3
"""Fault suite: the kill loop (docs/after-a-crash.md). Each round starts `migrate` on a
fresh schema over a mixed set — transactional migrations, transaction:false ones with
CREATE INDEX CONCURRENTLY, one with its own BEGIN … COMMIT block — sends it one SIGKILL
or SIGTERM at an event it logs, then reruns it: the rerun must exit 0 with every
migration applied exactly once (history, audit and the schema's own effects), no invalid
index and no advisory lock left.

The kill is aimed at a line the victim logs (lock.acquired, migration.start,
migration.progress or migration.applied of a random version), never at a blind instant;
the event kinds take turns so every kind is hit. PGBOOT_KILL_ROUNDS (default 30) sets the
number of rounds; the seed is printed and PGBOOT_FAULT_SEED replays a run.
"""

import json
import os
import signal
import sys
import time
import unittest

import faults  # this suite's invariants, next to it
from harness.case import PgbootTestCase, time_limit
from harness.files import temp_migrations, up
from harness.logs import events
from harness.proc import run, spawn
from harness.server import new_database, url
from harness.sql import admin_sql

ROUNDS = int(os.environ.get("PGBOOT_KILL_ROUNDS") or 30)
SLEEP = "0.15"  # server-side pauses, so that kills also land mid-statement
TICK = "40ms"  # PGBOOT_PROGRESS_INTERVAL: migration.progress lines during those pauses

FILES = {
    "1_base.sql": up("CREATE TABLE ledger (version int NOT NULL, step int NOT NULL);\n"
                     "CREATE TABLE items (id int NOT NULL, v int NOT NULL);\n"
                     "INSERT INTO items SELECT g, g % 97 FROM generate_series(1, 20000) g;\n"
                     "INSERT INTO ledger VALUES (1, 1);\n"
                     # An index build that takes 0.2 s: kills land inside CREATE INDEX
                     # CONCURRENTLY and leave its invalid leftover for the resume to drop.
                     "CREATE TABLE slow (id int);\nINSERT INTO slow VALUES (1), (2), (3), (4);\n"
                     "CREATE FUNCTION slow_key(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS "
                     "$$ BEGIN PERFORM pg_sleep(0.05); RETURN i; END $$;\n"),
    "2_orders.sql": up("CREATE TABLE m_2 (id int);\nINSERT INTO ledger VALUES (2, 1);\n"
                       "SELECT pg_sleep(%s);\n" % SLEEP),
    # transaction:false: every statement outside a block is safe to run again.
    "3_items_idx.sql": up("SET search_path = public;\n"
                          "CREATE INDEX CONCURRENTLY IF NOT EXISTS slow_key_idx ON slow "
                          "(slow_key(id));\n"
                          "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_id_idx ON items (id);\n"
                          "SELECT pg_sleep(%s);\n"
                          "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS items_id_v_idx "
                          "ON items (id, v);\n" % SLEEP, "transaction:false"),
    # A block's INSERTs are not safe to run twice: a resume must run the block whole, once,
    # whether the kill lands inside it (first pause) or after its COMMIT (second pause).
    "4_block.sql": up("CREATE TABLE IF NOT EXISTS m_4 (id int);\nBEGIN;\n"
                      "INSERT INTO ledger VALUES (4, 1);\nSELECT pg_sleep(%s);\n"
                      "INSERT INTO ledger VALUES (4, 2);\nCOMMIT;\nSELECT pg_sleep(%s);\n"
                      "CREATE INDEX CONCURRENTLY IF NOT EXISTS m_4_id_idx ON m_4 (id);\n" % (SLEEP, SLEEP),
                      "transaction:false"),
    "5_accounts.sql": up("CREATE TABLE m_5 (id int);\nINSERT INTO ledger VALUES (5, 1);\n"
                         "SELECT pg_sleep(%s);\n" % SLEEP),
    "6_v_idx.sql": up("CREATE INDEX CONCURRENTLY IF NOT EXISTS items_v_idx ON items (v);\n"
                      "SELECT pg_sleep(%s);\n" % SLEEP, "transaction:false"),
    "7_last.sql": up("CREATE TABLE m_7 (id int);\nINSERT INTO ledger VALUES (7, 1);\n"),
}
VERSIONS = [1, 2, 3, 4, 5, 6, 7]
TRANSACTIONAL = {1, 2, 5, 7}
# Where a progress kill aims: (version, ms into the migration where a slow statement
# starts): 3's slow index build and its pause, 4's pause inside its block and the one
# after its COMMIT. Progress rounds take these in turn, 0-100 ms into each.
PROGRESS_POINTS = [(2, 0), (3, 0), (3, 200), (4, 0), (4, 150), (5, 0), (6, 0)]
LEDGER = {"1:1": 1, "2:1": 1, "4:1": 1, "4:2": 1, "5:1": 1, "7:1": 1}
TABLES = {"ledger", "items", "slow", "m_2", "m_4", "m_5", "m_7"}
INDEXES = {"slow_key_idx", "items_id_idx", "items_id_v_idx", "m_4_id_idx", "items_v_idx"}

LEDGER_SQL = ("(SELECT coalesce(json_object_agg(k, n), '{}') FROM (SELECT version || ':' || "
              "step AS k, count(*) AS n FROM ledger GROUP BY 1) s)")
STATE = """SELECT json_build_object(
  'history', (SELECT coalesce(json_object_agg(version, status), '{}') FROM pgboot_history),
  'audit', (SELECT coalesce(json_agg(json_build_array(event, version) ORDER BY id), '[]')
            FROM pgboot_history_log),
  'ledger', %s,
  'tables', (SELECT json_agg(relname) FROM pg_class
             WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace),
  'indexes', (SELECT coalesce(json_agg(c.relname), '[]') FROM pg_index i
              JOIN pg_class c ON c.oid = i.indexrelid
              WHERE c.relnamespace = 'public'::regnamespace AND c.relname NOT LIKE 'pgboot%'),
  'invalid', (SELECT coalesce(json_agg(indexrelid::regclass::text), '[]') FROM pg_index
              WHERE NOT indisvalid OR NOT indisready),
  'locks', (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database =
            (SELECT oid FROM pg_database WHERE datname = current_database())))"""


class KillLoopTest(PgbootTestCase):
    def args(self, db, mig):
        return ["migrate", "--database-url", url(db), "--migrations-dir", mig,
                "--wait-timeout", "20s", "--lock-timeout", "30s", "--log-format", "json"]

    def state(self, db):
        if admin_sql("SELECT to_regclass('pgboot_history_log') IS NOT NULL", db).strip() != "t":
            return None  # killed before the tables existed
        have_ledger = admin_sql("SELECT to_regclass('ledger') IS NOT NULL", db).strip() == "t"
        return json.loads(admin_sql(STATE.replace("%s", LEDGER_SQL if have_ledger else "'{}'::json"),
                                    db))

    def state_without_lock(self, db, what):
        """The state once no advisory lock is held (a SIGKILLed session ends with its
        statement, or within client_connection_check_interval = 1 s)."""
        deadline = time.monotonic() + time_limit(5)
        while True:
            s = self.state(db)
            if s is None or s["locks"] == 0:
                return s
            if time.monotonic() > deadline:
                self.fail("%s: an advisory lock is still held 5 s after the kill: %r" % (what, s))
            time.sleep(0.05)

    def check_after_kill(self, s, what):
        """What holds right after the kill: a kill is never an SQL failure, and only a
        transaction:false migration may be left `running`; what ran of a transactional
        one ran exactly once."""
        ctx = "%s\nstate: %r" % (what, s)
        self.assertEqual([e for e, _ in s["audit"] if e == "failed"], [], ctx)
        self.assertNotIn("failed", s["history"].values(), ctx)
        running = {int(v) for v, st in s["history"].items() if st == "running"}
        self.assertEqual(running & TRANSACTIONAL, set(), "a transactional one is running. " + ctx)
        self.assertLessEqual(len(running), 1, ctx)
        for v in TRANSACTIONAL:
            if s["history"].get(str(v)) == "applied":
                self.assertEqual(s["ledger"].get("%d:1" % v), 1, ctx)
        return running

    def check_complete(self, s, what):
        ctx = "%s\nstate: %r" % (what, s)
        self.assertEqual(s["history"], {str(v): "applied" for v in VERSIONS}, ctx)
        applied = sorted(int(v) for e, v in s["audit"] if e == "applied")
        self.assertEqual(applied, VERSIONS, "one `applied` audit row per version. " + ctx)
        self.assertEqual([e for e, _ in s["audit"] if e == "failed"], [], ctx)
        self.assertEqual(s["ledger"], LEDGER, "every effect exactly once. " + ctx)
        self.assertEqual(set(s["tables"]) - {"pgboot_history", "pgboot_history_log"}, TABLES, ctx)
        self.assertEqual(set(s["indexes"]) & INDEXES, INDEXES, ctx)
        self.assertEqual(s["invalid"], [], "an invalid index is left. " + ctx)
        self.assertEqual(s["locks"], 0, ctx)

    def pick(self, r, round_no):
        """(kind, version, after_ms): the event kinds take turns; a progress kill waits
        for a line at least after_ms into the migration, so it lands anywhere in it."""
        kind = ["lock.acquired", "migration.start", "migration.progress",
                "migration.applied"][round_no % 4]
        if kind == "lock.acquired":
            return kind, None, 0
        if kind == "migration.progress":
            version, start = PROGRESS_POINTS[(self.offset + round_no // 4) % len(PROGRESS_POINTS)]
            return kind, version, start + r.randrange(0, 100)
        return kind, r.choice(VERSIONS), 0

    def wait_for_kill_point(self, p, kind, version, after_ms, what):
        """Waits (reading the victim's log lines as they come) for its event. A progress
        kill also takes the version's migration.applied, should the ticks fall behind on
        a loaded machine: then the kill lands just after the migration, never a hang."""
        deadline = time.monotonic() + time_limit(20)
        seen = 0
        while True:
            lines = list(p.err.lines)
            for line in lines[seen:]:
                e = json.loads(line) if line.startswith("{") else {}
                if version is not None and e.get("version") != str(version):
                    continue
                if e.get("event") == kind and int(e.get("elapsed_ms", 0)) >= after_ms:
                    return e
                if kind == "migration.progress" and e.get("event") == "migration.applied":
                    return e
            seen = len(lines)
            if p.err.eof or time.monotonic() > deadline:
                self.fail("%s: the victim never logged the event:\n%s" % (what, p.err.text()))
            time.sleep(0.002)

    def test_random_kills_then_every_rerun_finishes_exactly_once(self):
        r = faults.rng(self)
        self.offset = r.randrange(len(PROGRESS_POINTS))
        mig = temp_migrations(self, FILES)
        env = {"PGBOOT_PROGRESS_INTERVAL": TICK}
        t0 = time.monotonic()
        resumed = dropped = 0
        db = new_database(self, "kl")
        for round_no in range(ROUNDS):
            # A fresh schema each round (cheaper than a database: DROP DATABASE checkpoints).
            admin_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public", db)
            kind, version, after_ms = self.pick(r, round_no)
            signo = r.choice([signal.SIGKILL, signal.SIGTERM])
            what = "round %d: %s at %s%s%s" % (
                round_no, signal.Signals(signo).name, kind,
                "" if version is None else " version=%d" % version,
                " elapsed_ms>=%d" % after_ms if kind == "migration.progress" else "")
            victim = spawn(self.args(db, mig), env=env, test=self)
            self.wait_for_kill_point(victim, kind, version, after_ms, what)
            victim.send_signal(signo)
            vcp = victim.finish(time_limit(15))
            # A run that logged its last migration.applied may exit 0 before the kill lands.
            self.assertIn(vcp.returncode, (-signal.SIGKILL, 128 + signal.SIGTERM, 0),
                          "%s: the victim's exit\n%s" % (what, vcp.stderr))
            s = self.state_without_lock(db, what)
            running = self.check_after_kill(s, what) if s else set()
            cp = run(self.args(db, mig), env=env, timeout=time_limit(40))
            self.assertExit(cp, 0, what + " (the rerun)")
            resumes = events(cp.stderr, "migration.resume")
            self.assertEqual({int(e["version"]) for e in resumes}, running,
                             "%s: the rerun resumes exactly the running row\n%s" % (what, cp.stderr))
            resumed += bool(resumes)
            dropped += sum(1 for e in resumes if e.get("dropped_index"))
            self.check_complete(self.state_without_lock(db, what), what)
            sys.stderr.write("%s: victim exit %d, resumed %s\n" % (
                what, vcp.returncode, sorted(running) or "nothing"))
        sys.stderr.write("%d rounds in %.1f s: %d reruns resumed a running row, %d dropped an "
                         "invalid index\n" % (ROUNDS, time.monotonic() - t0, resumed, dropped))
        if ROUNDS >= 12:
            # Every fourth round kills during a slow statement, most of them in a
            # transaction:false section: some must have been resumed.
            self.assertGreater(resumed, 0, "no round left a running row to resume")


if __name__ == "__main__":
    unittest.main()
