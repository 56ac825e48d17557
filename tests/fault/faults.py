"""What every fault case of tests/fault asserts about a database after the fault.

The invariants (docs/reference.md, "Testing for faults"):
  exactly once      every applied version ran once: one `applied` audit row, one
                    ledger row (each migration inserts its version into `ledger`)
  nothing half-done a version's table exists if and only if its history row does,
                    and no transactional migration is left `running` or `failed`
  no lock left      no advisory lock in the database within 3 s (the server ends a
                    killed client's session within about 1 s, SPEC §3)
Each case also asserts the exit code and, where it sends one, how fast SIGTERM is
answered.
"""

import json
import os
import random
import re
import sys
import time

from harness.case import time_limit
from harness.files import up


def rng(test):
    """A seeded random generator; the seed is printed so that a failure can be replayed
    with PGBOOT_FAULT_SEED=<seed>."""
    seed = int(os.environ.get("PGBOOT_FAULT_SEED") or random.SystemRandom().randrange(1 << 30))
    sys.stderr.write("%s: PGBOOT_FAULT_SEED=%d\n" % (test.id(), seed))
    return random.Random(seed)


def ledger_migrations(n, sleep="0.02"):
    """n migrations: 1 creates `ledger`, each k >= 2 creates m_k and inserts k into the
    ledger, then sleeps on the server so that kills also land mid-statement."""
    files = {"1_ledger.sql": up("CREATE TABLE ledger (version int NOT NULL);\n"
                                "INSERT INTO ledger VALUES (1);\n")}
    for k in range(2, n + 1):
        files["%d_m%d.sql" % (k, k)] = up(
            "CREATE TABLE m_%d (id int);\nINSERT INTO ledger VALUES (%d);\n"
            "SELECT pg_sleep(%s);\n" % (k, k, sleep))
    return files


def _exists(sql_fn, db, names):
    row = sql_fn("SELECT %s" % ", ".join("to_regclass('%s') IS NOT NULL" % n for n in names),
                 db).strip()
    return dict(zip(names, [v == "t" for v in row.split("|")]))


def snapshot(sql_fn, db, history="public.pgboot_history"):
    """{history: {version: status}, audit: [[event, version]], ledger: {version: count},
    tables: set of k with a table m_k, locks: advisory locks in db} in one query."""
    have = _exists(sql_fn, db, [history, history + "_log", "public.ledger"])
    parts = [
        "'history', %s" % ("(SELECT coalesce(json_object_agg(version, status), '{}') FROM %s)"
                           % history if have[history] else "'{}'::json"),
        "'audit', %s" % ("(SELECT coalesce(json_agg(json_build_array(event, version) ORDER BY id),"
                         " '[]') FROM %s_log)" % history if have[history + "_log"] else "'[]'::json"),
        "'ledger', %s" % ("(SELECT coalesce(json_object_agg(version, n), '{}') FROM (SELECT version,"
                          " count(*) AS n FROM ledger GROUP BY 1) s)" if have["public.ledger"]
                          else "'{}'::json"),
        "'tables', (SELECT coalesce(json_agg(substr(relname, 3)::int), '[]') FROM pg_class "
        "WHERE relkind = 'r' AND relname ~ '^m_[0-9]+$')",
        "'locks', (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database()))",
    ]
    s = json.loads(sql_fn("SELECT json_build_object(%s)" % ", ".join(parts), db))
    s["tables"] = set(s["tables"])
    return s


def wait_no_lock(test, sql_fn, db, timeout=3.0):
    """Waits (polling the server, never sleeping blindly) until db holds no advisory lock."""
    deadline = time.monotonic() + time_limit(timeout)
    while True:
        s = snapshot(sql_fn, db)
        if s["locks"] == 0:
            return s
        if time.monotonic() > deadline:
            test.fail("an advisory lock is still held %.1fs after the fault: %r" % (timeout, s))
        time.sleep(0.05)


def assert_consistent(test, sql_fn, db, n, complete=False, what=""):
    """The invariants above for a ledger_migrations(n) set; with complete, all n applied."""
    s = wait_no_lock(test, sql_fn, db)
    hist = s["history"]
    ctx = "%s\nstate: %r" % (what, s)
    test.assertEqual(set(hist.values()) - {"applied"}, set(),
                     "a transactional migration is left running/failed. " + ctx)
    applied = sorted(int(v) for v in hist)
    # Versions are applied in order, so what is applied is a prefix 1..m.
    test.assertEqual(applied, list(range(1, len(applied) + 1)), "applied is not a prefix. " + ctx)
    if complete:
        test.assertEqual(len(applied), n, "not every migration was applied. " + ctx)
    test.assertEqual({int(k): c for k, c in s["ledger"].items()}, {v: 1 for v in applied},
                     "a migration ran twice or ran without its history row. " + ctx)
    test.assertEqual(s["tables"], {v for v in applied if v >= 2},
                     "a table exists without its history row (half-applied) or vice versa. " + ctx)
    applied_events = sorted(int(v) for e, v in s["audit"] if e == "applied")
    test.assertEqual(applied_events, applied, "one `applied` audit row per version. " + ctx)
    test.assertEqual([e for e, _ in s["audit"] if e == "failed"], [],
                     "a kill, restart or terminate is not an SQL failure. " + ctx)
    return s


def first_to_log(procs, regex, timeout):
    """The first of `procs` (Spawned) whose stderr has a line matching regex, or None
    when all ended without one. AssertionError after `timeout` seconds."""
    rx = re.compile(regex)
    deadline = time.monotonic() + time_limit(timeout)
    while time.monotonic() < deadline:
        for p in procs:
            if any(rx.search(line) for line in list(p.err.lines)):
                return p
        if all(p.err.eof for p in procs):
            return None
        time.sleep(0.002)
    raise AssertionError("no line matching %r within %ss:\n%s" % (
        regex, timeout, "\n---\n".join(p.err.text() for p in procs)))
