#!/usr/bin/env python3
"""pgboot beside its peers, on one throwaway PostgreSQL, in one run.

    python3 bench/bench.py --pgboot PATH --dbmate PATH [--runs 5] [--size 1000] ...

Normally started by bench/run.sh, which installs dbmate and builds pgboot first.
`bench.py --render results/latest.json` rewrites latest.md from the samples alone.
Writes OUT/latest.md (table) and OUT/latest.json (every sample). Exits 1 when any
run gave a wrong answer (a tool's exit code, or the schema it left behind), so a
fast wrong answer is never reported as a result; 2 on a usage or setup error.

Scenarios (see bench/README.md for what each one measures and why):
  apply    SIZE small migrations on a fresh database: pgboot, dbmate up, psql (the limit)
  noop     SIZE applied, nothing pending: pgboot migrate, dbmate up, pgboot -- true
  ready    the server starts after the waiter: pgboot wait, dbmate wait, pg_isready loop
  replicas REPLICAS starters at once, 1 pending migration
  gate     the schema gate's latency: pgboot --wait-for-migrations, a polling loop
  pooler   apply and replicas through a real PgBouncer (transaction pooling): pgboot,
           psql through the same PgBouncer, pgboot direct
  footprint stripped binary size, peak RSS (from the apply and noop runs)

Method: each tool is a direct child; wall time and peak RSS come from os.wait4.
The tools alternate run by run (the order rotates), so drift hits all of them.
All tools get the same URL: TCP to 127.0.0.1, SCRAM password, sslmode=disable.
Stdlib only.
"""

import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# The test harness package: bench/run.sh puts tests/ on PYTHONPATH.
from harness import cluster as pgh
from harness.pgbouncer import PGBOUNCER, PgBouncer
from harness.proc import StartBarrier
from harness.server import new_cluster

SCENARIOS = ("apply", "noop", "ready", "replicas", "gate", "pooler", "footprint")
GATE_SIZE = 5  # migrations the gate scenario's migrator applies each run
POOLER_POOL_SIZE = 20  # PgBouncer's own default_pool_size


def harness_env():
    """This environment with the harness package importable (tests/ on PYTHONPATH)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.join(ROOT, "tests"),
                                                      env.get("PYTHONPATH")]))
    return env


class BenchError(Exception):
    """A wrong answer or a broken setup: the run is not a result."""


# ---- running a tool -------------------------------------------------------------------

class Sample(dict):
    """One run of one tool: rc, wall_s, maxrss_kb, plus scenario-specific fields."""


def clean_env(extra=None):
    """What every tool sees: no PG* variables, C locale, a PATH with the server's bin dir
    first (so `psql` and `pg_isready` are the real programs, not Debian's perl wrapper)."""
    env = {"PATH": "%s:/usr/local/bin:/usr/bin:/bin" % pgh.BIN_DIR, "LC_ALL": "C"}
    env.update(extra or {})
    return env


class Proc:
    """A started child whose exit is observed by a thread with os.wait4 (exact time, rusage)."""

    def __init__(self, argv, env, cwd, stdout_path=None, stderr_path=None, pass_fds=()):
        self.argv = [str(a) for a in argv]
        self.stdout_path = stdout_path or tempfile.mktemp(prefix="bench-out-")
        self.stderr_path = stderr_path or tempfile.mktemp(prefix="bench-err-")
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.started = time.monotonic()
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                      stderr=self._err, env=env, cwd=cwd, pass_fds=pass_fds)
        self.pid = self.popen.pid
        self.ended = None
        self.ended_wall = None
        self.rc = None
        self.rusage = None
        self._thread = threading.Thread(target=self._reap, daemon=True)
        self._thread.start()

    def _reap(self):
        _, status, ru = os.wait4(self.pid, 0)
        self.ended = time.monotonic()
        self.ended_wall = time.time()
        self.rusage = ru
        self.rc = os.waitstatus_to_exitcode(status)
        self.popen.returncode = self.rc  # reaped here; Popen must not wait again

    def wait(self, timeout):
        self._thread.join(timeout)
        if self._thread.is_alive():
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._thread.join(10)
            raise BenchError("%s did not finish within %ss" % (" ".join(self.argv), timeout))
        self._out.close()
        self._err.close()
        return self

    def kill(self):
        if self.rc is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def output(self):
        with open(self.stdout_path, errors="replace") as f:
            out = f.read()
        with open(self.stderr_path, errors="replace") as f:
            err = f.read()
        for p in (self.stdout_path, self.stderr_path):
            try:
                os.unlink(p)
            except OSError:
                pass
        return out, err

    @property
    def wall(self):
        return self.ended - self.started

    @property
    def maxrss_kb(self):
        return self.rusage.ru_maxrss


MEASURE = None  # path of the compiled bench/measure.c (Bench.__init__)


def build_measure(work):
    """Compiles bench/measure.c (static when the toolchain can, else dynamic)."""
    global MEASURE
    out = os.path.join(work, "measure")
    src = os.path.join(HERE, "measure.c")
    for extra in (["-static"], []):
        p = subprocess.run(["cc", "-O2"] + extra + ["-o", out, src], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if p.returncode == 0:
            MEASURE = out
            return out
    raise BenchError("cannot compile %s:\n%s" % (src, p.stdout))


def run_tool(argv, env, cwd, timeout=600):
    """Runs one tool to completion under bench/measure ->
    (Sample(rc, wall_s, maxrss_kb), stdout, stderr)."""
    contention = Contention()
    r, w = os.pipe()
    try:
        p = Proc([MEASURE, str(w)] + list(argv), env, cwd, pass_fds=(w,))
    finally:
        os.close(w)
    with os.fdopen(r) as f:
        report = f.read().split()  # EOF once measure (and the tool) are gone
    p.wait(timeout)
    out, err = p.output()
    if len(report) != 2:
        raise BenchError("measure gave no report for %s (rc %s): %s" % (argv[0], p.rc, tail(err)))
    s = Sample(rc=p.rc, wall_s=int(report[0]) / 1e9, maxrss_kb=int(report[1]))
    return contention.done(s), out, err


def pressure_total(kind="cpu"):
    """Microseconds during which some task waited for `kind` (PSI), or None without PSI."""
    try:
        with open("/proc/pressure/%s" % kind) as f:
            for line in f:
                if line.startswith("some"):
                    return int(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class Contention:
    """Share of a run's wall time during which some task on the machine waited for a CPU
    (or for I/O): /proc/pressure, Linux PSI. Other work on a shared box shows up here."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.cpu0, self.io0 = pressure_total("cpu"), pressure_total("io")

    def done(self, sample):
        wall = time.monotonic() - self.t0
        for kind, base in (("cpu", self.cpu0), ("io", self.io0)):
            now = pressure_total(kind)
            if base is not None and now is not None and wall > 0:
                sample["%s_stall" % kind] = min(1.0, (now - base) / 1e6 / wall)
        return sample


def tail(text, n=8):
    lines = [l for l in text.splitlines() if l.strip()]
    return "\n".join(lines[-n:])


# ---- the workload ---------------------------------------------------------------------

VERSION_BASE = 20240101000000


def version(i):
    return str(VERSION_BASE + i)


def up_sql(i):
    t = "t_%05d" % i
    return ("CREATE TABLE %s (id bigint PRIMARY KEY, name text NOT NULL, "
            "created_at timestamptz NOT NULL DEFAULT now());\n"
            "CREATE INDEX %s_name_idx ON %s (name);\n"
            "COMMENT ON TABLE %s IS 'bench migration %d';\n" % (t, t, t, t, i))


# How much earlier than the migrator's log line a NOTIFY-woken gate may run the app.
GATE_EARLY_TOLERANCE_S = 0.005


def write_migrations(path, count, psql_path=None):
    """count dbmate-format files (dbmate insists on a down section). With psql_path, the
    same up sections, byte for byte, as plain SQL files for psql (which would run a down
    section too). Returns the psql files."""
    os.makedirs(path, exist_ok=True)
    if psql_path:
        os.makedirs(psql_path, exist_ok=True)
    plain = []
    for i in range(1, count + 1):
        name = "%s_create_t_%05d.sql" % (version(i), i)
        up = up_sql(i)
        with open(os.path.join(path, name), "w") as fh:
            fh.write("-- migrate:up\n%s\n-- migrate:down\nDROP TABLE t_%05d;\n" % (up, i))
        if psql_path:
            plain.append(os.path.join(psql_path, name))
            with open(plain[-1], "w") as fh:
                fh.write(up)
    return plain


def write_psql_driver(path, files):
    """One psql script: each file in its own transaction, over one connection."""
    with open(path, "w") as f:
        f.write("\\set ON_ERROR_STOP 1\n")
        for m in files:
            f.write("BEGIN;\n\\i '%s'\nCOMMIT;\n" % m.replace("'", "\\'"))
    return path


# ---- the server -----------------------------------------------------------------------

class Server:
    """The bench's PostgreSQL: `python3 -m harness.cluster start`, then durable settings (fsync,
    synchronous_commit, full_page_writes on: what a real deploy pays; the harness's
    speed settings turn them off) unless --durability fast, and log_disconnections (the
    peak-connection count reads the server log)."""

    def __init__(self, state_dir, durability):
        self.state_dir = state_dir
        self.durability = durability
        self.info = None
        self.cluster = None

    def start(self):
        p = subprocess.run([sys.executable, "-m", "harness.cluster", "start", self.state_dir],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=harness_env())
        if p.returncode != 0:
            raise BenchError("harness.cluster start failed:\n" + p.stdout)
        with open(os.path.join(self.state_dir, "pg.json")) as f:
            self.info = json.load(f)
        self.cluster = pgh.Cluster.from_info(self.info)
        on = "on" if self.durability == "durable" else "off"
        for k, v in (("fsync", on), ("synchronous_commit", on), ("full_page_writes", on),
                     ("log_disconnections", "on"), ("log_connections", "on")):
            self.sql("ALTER SYSTEM SET %s = '%s'" % (k, v))
        self.sql("SELECT pg_reload_conf()")
        want = "%s|%s|%s" % (on, on, on)
        for _ in range(200):
            got = self.sql("SELECT current_setting('fsync') || '|' || "
                           "current_setting('synchronous_commit') || '|' || "
                           "current_setting('full_page_writes')").strip()
            if got == want:
                break
            time.sleep(0.02)
        else:
            raise BenchError("server settings did not take effect: %s, want %s" % (got, want))
        self.sql("CHECKPOINT")
        return self

    def stop(self):
        subprocess.run([sys.executable, "-m", "harness.cluster", "stop", self.state_dir],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=harness_env())

    def sql(self, sql, db="postgres"):
        return self.cluster.psql(sql, db=db, timeout=600)

    def url(self, db):
        return "postgresql://%s:%s@%s:%d/%s?sslmode=disable" % (
            urllib.parse.quote(self.info["user"], safe=""),
            urllib.parse.quote(self.info["password"], safe=""),
            self.info["host"], self.info["port"], urllib.parse.quote(db, safe=""))

    def version(self):
        return self.sql("SHOW server_version").strip()

    def settings(self):
        rows = self.sql("SELECT name || '=' || setting FROM pg_settings WHERE name IN "
                        "('fsync','synchronous_commit','full_page_writes','wal_sync_method',"
                        "'max_connections','shared_buffers','password_encryption') ORDER BY 1")
        return dict(r.split("=", 1) for r in rows.split())

    def create_db(self, name, template="template0"):
        self.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
        self.sql('CREATE DATABASE "%s" TEMPLATE "%s"' % (name, template))

    def drop_db(self, name):
        self.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)

    def log_offset(self):
        try:
            return os.path.getsize(self.info["log_file"])
        except OSError:
            return 0

    def log_since(self, offset):
        with open(self.info["log_file"], "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")


_PID = re.compile(r"\[(\d+)\]")


def connection_stats(log_text):
    """From log_connections/log_disconnections lines: the peak number of concurrent TCP
    sessions (the bench's admin uses the Unix socket and is not counted), the number of
    TCP connections, and the server's ERROR/FATAL messages for them."""
    live, authorized, tcp = set(), set(), set()
    peak = total = 0
    errors = []
    for line in log_text.splitlines():
        m = _PID.search(line)
        if not m:
            continue
        pid = m.group(1)
        if "connection received: host=" in line:
            if "host=[local]" in line:
                continue
            tcp.add(pid)
            live.add(pid)
            total += 1
            peak = max(peak, len(live))
        elif pid not in tcp:
            continue
        elif "connection authorized:" in line:
            authorized.add(pid)
        elif "disconnection:" in line:
            live.discard(pid)
        elif re.search(r"\b(ERROR|FATAL):", line):
            msg = re.sub(r"^.*?\b(ERROR|FATAL):\s*", r"\1: ", line).strip()
            errors.append(msg)
            if "FATAL:" in line and pid not in authorized:
                live.discard(pid)  # refused before login: no disconnection line follows
    return {"peak": peak, "connections": total, "server_errors": errors, "open": len(live)}


# ---- checks ---------------------------------------------------------------------------

SCHEMA_SQL = """
SELECT
 (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname ~ '^t_[0-9]+$'),
 (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND indexname ~ '^t_[0-9]+_name_idx$'),
 (SELECT count(*) FROM pg_description d JOIN pg_class c ON c.oid = d.objoid
   WHERE d.classoid = 'pg_class'::regclass AND d.objsubid = 0 AND c.relname ~ '^t_[0-9]+$'
     AND d.description LIKE 'bench migration %%'),
 %s
"""

HISTORY_SQL = {
    "pgboot": "(SELECT count(*) FROM public.pgboot_history WHERE status = 'applied'), "
              "(SELECT count(*) FROM public.pgboot_history_log WHERE event = 'applied')",
    "dbmate": "(SELECT count(*) FROM public.schema_migrations), "
              "(SELECT count(*) FROM public.schema_migrations)",
    "psql": "-1, -1",
}


def check_schema(server, db, tool, expect):
    """The database holds exactly `expect` bench tables, each with its index and comment,
    and (for the migration tools) `expect` history rows."""
    row = server.sql(SCHEMA_SQL % HISTORY_SQL[tool], db=db).strip().split("|")
    tables, indexes, comments, hist, audit = (int(x) for x in row)
    want_hist = -1 if tool == "psql" else expect
    if (tables, indexes, comments, hist) != (expect, expect, expect, want_hist) or \
            (tool == "pgboot" and audit != expect):
        raise BenchError("%s in %s: %d tables, %d indexes, %d comments, %d history rows, "
                         "%d audit rows; want %d each" % (tool, db, tables, indexes, comments,
                                                          hist, audit, expect))
    return {"tables": tables, "indexes": indexes, "comments": comments, "history": hist}


def expect_rc(tool, sample, out, err, want=0):
    if sample["rc"] != want:
        raise BenchError("%s exited %d (want %d):\n%s" % (tool, sample["rc"], want,
                                                          tail(out + "\n" + err, 15)))


# ---- statistics -----------------------------------------------------------------------

def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def rotated(tools, i):
    k = i % len(tools)
    return tools[k:] + tools[:k]


# ---- the bench ------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="pgboot-bench-")
        os.chmod(self.work, 0o755)
        self.cwd = os.path.join(self.work, "cwd")  # empty: no .env, no pgboot.toml
        os.makedirs(self.cwd)
        self.server = None
        self.results = {}
        self.invalid = []  # (scenario, tool, run, reason)
        self.bases = {}  # tool -> database with SIZE applied by that tool
        self.rng = random.Random(args.seed)
        self.size = args.size
        self.mig_dir = os.path.join(self.work, "migrations")
        self.plus1_dir = os.path.join(self.work, "migrations_plus1")
        try:
            build_measure(self.work)
            self.files = write_migrations(self.mig_dir, self.size,
                                          os.path.join(self.work, "psql_files"))
            write_migrations(self.plus1_dir, self.size + 1)
            self.psql_driver = write_psql_driver(os.path.join(self.work, "apply.psql"), self.files)
        except BaseException:
            shutil.rmtree(self.work, ignore_errors=True)
            raise

    def log(self, msg):
        print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)

    # -- commands

    def pgboot(self, *args):
        return [self.args.pgboot] + list(args) + ["--log-level", "warn"]

    def cmd_apply(self, tool, db, mig_dir=None, url=None):
        url, d = url or self.server.url(db), mig_dir or self.mig_dir
        if tool == "pgboot":
            return self.pgboot("migrate", "--database-url", url, "--migrations-dir", d)
        if tool == "dbmate":
            return [self.args.dbmate, "--url", url, "--migrations-dir", d, "--no-dump-schema", "up"]
        if tool == "psql":
            return [os.path.join(pgh.BIN_DIR, "psql"), "-X", "-q", "-d", url, "-f", self.psql_driver]
        raise ValueError(tool)

    def invalid_run(self, scenario, tool, run, err):
        self.log("  INVALID %s/%s run %d: %s" % (scenario, tool, run, err))
        self.invalid.append({"scenario": scenario, "tool": tool, "run": run, "reason": str(err)})

    # -- scenario 1

    def scenario_apply(self):
        tools = ["pgboot", "dbmate", "psql"]
        samples = {t: [] for t in tools}
        for i in range(self.args.runs):
            for tool in rotated(tools, i):
                db = "apply_%s_%d" % (tool, i)
                self.server.create_db(db)
                self.server.sql("CHECKPOINT")  # every tool starts with the same WAL state
                s, out, err = run_tool(self.cmd_apply(tool, db), clean_env(), self.cwd)
                s["run"] = i
                try:
                    expect_rc(tool, s, out, err)
                    s["schema"] = check_schema(self.server, db, tool, self.size)
                    s["valid"] = True
                except BenchError as e:
                    s["valid"] = False
                    self.invalid_run("apply", tool, i, e)
                samples[tool].append(s)
                self.log("apply run %d %-6s %8.3f s  rss %5.1f MB%s" % (
                    i, tool, s["wall_s"], s["maxrss_kb"] / 1024, "" if s["valid"] else "  INVALID"))
                last = i == self.args.runs - 1
                if last and tool != "psql" and s["valid"]:
                    self.bases[tool] = db  # reused by noop and replicas
                else:
                    self.server.drop_db(db)
        self.results["apply"] = {"tools": samples}

    def base_db(self, tool):
        """A database with SIZE migrations applied by `tool` (from the apply scenario,
        else made now, untimed)."""
        if tool not in self.bases:
            db = "base_%s" % tool
            self.server.create_db(db)
            s, out, err = run_tool(self.cmd_apply(tool, db), clean_env(), self.cwd)
            expect_rc(tool, s, out, err)
            check_schema(self.server, db, tool, self.size)
            self.bases[tool] = db
        return self.bases[tool]

    # -- scenario 2

    def scenario_noop(self):
        def variant(name, url):
            """-> (tool whose database it uses, argv, extra environment)"""
            d = self.mig_dir
            if name == "pgboot migrate":
                return "pgboot", self.pgboot("migrate", "--database-url", url,
                                             "--migrations-dir", d), {}
            if name == "pgboot -- true":
                return "pgboot", self.pgboot("--database-url", url, "--migrations-dir", d,
                                             "--", "true"), {"RUN_MIGRATIONS": "true"}
            if name == "pgboot wait":
                return "pgboot", self.pgboot("wait", "--database-url", url), {}
            if name == "psql -c 'SELECT 1'":
                return "psql", [os.path.join(pgh.BIN_DIR, "psql"), "-X", "-q", "-A", "-t", "-d",
                                url, "-c", "SELECT 1"], {}
            wait = ["--wait"] if name == "dbmate --wait up" else []
            return "dbmate", [self.args.dbmate, "--url", url, "--migrations-dir", d,
                              "--no-dump-schema"] + wait + ["up"], {}

        # psql -c 'SELECT 1': one authenticated connection and one query, the floor.
        # pgboot wait: pgboot's own login and SELECT 1, no files: migrate minus wait is
        # what reading and checking the SIZE files costs.
        names = ["pgboot migrate", "dbmate up", "pgboot -- true", "dbmate --wait up",
                 "psql -c 'SELECT 1'", "pgboot wait"]
        dbs = {t: self.base_db(t) for t in ("pgboot", "dbmate")}
        samples = {n: [] for n in names}
        runs = self.args.noop_runs
        for i in range(-1, runs):  # run -1: one untimed warm-up of each
            for name in rotated(names, i):
                tool = name.split()[0]
                db = dbs.get(tool, dbs["pgboot"])
                tool, argv, extra = variant(name, self.server.url(db))
                s, out, err = run_tool(argv, clean_env(extra), self.cwd)
                s["run"] = i
                try:
                    expect_rc(name, s, out, err)
                    if tool == "psql" and out.strip() != "1":
                        raise BenchError("psql printed %r, not 1" % out.strip())
                    check_schema(self.server, db, "pgboot" if tool == "psql" else tool, self.size)
                    if tool == "pgboot":
                        batches = self.server.sql(
                            "SELECT count(DISTINCT batch) FROM public.pgboot_history", db=db).strip()
                        if batches != "1":
                            raise BenchError("a no-op run wrote a new batch (%s batches)" % batches)
                    s["valid"] = True
                except BenchError as e:
                    s["valid"] = False
                    self.invalid_run("noop", name, i, e)
                if i >= 0:
                    samples[name].append(s)
            if i >= 0 and (i % 5 == 4 or i == runs - 1):
                self.log("noop run %d: %s" % (i, ", ".join(
                    "%s %.1f ms" % (n, samples[n][-1]["wall_s"] * 1000) for n in names)))
        self.results["noop"] = {"tools": samples}

    # -- scenario 3

    def scenario_ready(self):
        cluster = new_cluster()
        try:
            with open(os.path.join(cluster.data_dir, "postgresql.conf"), "a") as f:
                # %n: epoch seconds with milliseconds, comparable with time.time().
                f.write("\n# bench: ready-latency\nlog_line_prefix = '%n [%p] '\n")
            url = cluster.url("postgres") + "?sslmode=disable"
            variants = {
                "pgboot wait": self.pgboot("wait", "--database-url", url, "--wait-timeout", "60s"),
                "dbmate wait": [self.args.dbmate, "--url", url, "wait"],
                "pg_isready loop": ["sh", "-c", 'until pg_isready -q -d "$1"; do sleep 2; done',
                                    "sh", url],
            }
            names = list(variants)
            samples = {n: [] for n in names}
            lo, hi = self.args.ready_delay
            for i in range(self.args.runs):
                for name in rotated(names, i):
                    s = self.ready_once(cluster, name, variants[name], self.rng.uniform(lo, hi))
                    s["run"] = i
                    samples[name].append(s)
                    self.log("ready run %d %-16s %7.1f ms%s" % (
                        i, name, (s.get("latency_s") or 0) * 1000,
                        "" if s["valid"] else "  INVALID"))
            self.results["ready"] = {"tools": samples}
        finally:
            cluster.destroy()

    def ready_once(self, cluster, name, argv, delay):
        offset = os.path.getsize(cluster.log_file) if os.path.exists(cluster.log_file) else 0
        p = Proc(argv, clean_env(), self.cwd)
        contention = Contention()
        s = Sample(delay_s=delay)
        try:
            time.sleep(delay)
            if p.rc is not None:
                raise BenchError("%s ended (rc %d) before the server started" % (name, p.rc))
            cluster.start(wait=False)
            p.wait(90)
            out, err = p.output()
            s.update(rc=p.rc, wall_s=p.wall, maxrss_kb=p.maxrss_kb)
            contention.done(s)
            expect_rc(name, s, out, err)
            ready = None
            deadline = time.monotonic() + 10
            while ready is None and time.monotonic() < deadline:
                with open(cluster.log_file, "rb") as f:
                    f.seek(offset)
                    text = f.read().decode("utf-8", "replace")
                m = re.search(r"^(\d+\.\d+) \[\d+\] LOG:  database system is ready to accept "
                              r"connections", text, re.M)
                if m:
                    ready = float(m.group(1))
                else:
                    time.sleep(0.02)
            if ready is None:
                raise BenchError("no 'ready to accept connections' line in the server log")
            s["latency_s"] = p.ended_wall - ready
            if s["latency_s"] < 0:
                raise BenchError("%s proceeded %.0f ms before the server was ready"
                                 % (name, -s["latency_s"] * 1000))
            s["valid"] = True
        except BenchError as e:
            s["valid"] = False
            self.invalid_run("ready", name, -1, e)
        finally:
            p.kill()
            cluster.stop()
        return s

    # -- scenario 4

    def scenario_replicas(self):
        n = self.args.replicas
        tools = ["pgboot", "dbmate"]
        bases = {t: self.base_db(t) for t in tools}
        samples = {t: [] for t in tools}
        for i in range(self.args.runs):
            for tool in rotated(tools, i):
                db = "replicas_%s_%d" % (tool, i)
                self.server.create_db(db, template=bases[tool])
                self.server.sql("CHECKPOINT")
                s = self.replicas_once("replicas", tool, tool, db, self.server.url(db), i)
                samples[tool].append(s)
                self.server.drop_db(db)
        self.results["replicas"] = {"tools": samples, "replicas": n}

    def replicas_once(self, scenario, name, tool, db, url, i, pooled=False, lock_mode=None):
        """REPLICAS starters of `tool` released at once at `url` against `db` (SIZE applied,
        SIZE+1 files): one Sample with the wall time, failures, server errors, peak server
        connections and how often the pending migration was applied. A pgboot run that is
        not exactly once and error-free is invalid. `pooled`: through PgBouncer, whose server
        connections outlive the starters (no wait for their disconnection lines).
        `lock_mode`: the verdict every pgboot starter must log (lock.mode), else invalid."""
        n = self.args.replicas
        pending = version(self.size + 1)
        if tool == "pgboot":
            # pgboot's flags before `--` (after it they would be the app's).
            level = ["--log-level", "warn"] if lock_mode is None else [
                "--log-level", "info", "--log-format", "json"]
            argv = ([self.args.pgboot, "--database-url", url, "--migrations-dir", self.plus1_dir]
                    + level + ["--", "true"])
            env = clean_env({"RUN_MIGRATIONS": "true"})
        else:
            argv = [self.args.dbmate, "--url", url, "--migrations-dir", self.plus1_dir,
                    "--no-dump-schema", "--wait", "up"]
            env = clean_env()
        barrier = StartBarrier(n)
        offset = self.server.log_offset()
        procs = [Proc(barrier.wrap(argv), env, self.cwd) for _ in range(n)]
        contention = Contention()
        try:
            t0 = barrier.release()
            for p in procs:
                p.wait(300)
        finally:
            for p in procs:
                p.kill()
            barrier.close()
        wall = max(p.ended for p in procs) - t0
        outs = [p.output() for p in procs]
        rcs = [p.rc for p in procs]
        # Disconnection lines are written as the backends exit, just after the clients.
        stats = None
        for _ in range(1 if pooled else 100):
            stats = connection_stats(self.server.log_since(offset))
            if stats["open"] == 0:
                break
            time.sleep(0.02)
        s = Sample(run=i, wall_s=wall, rcs=rcs, failed=sum(1 for r in rcs if r != 0),
                   peak_connections=stats["peak"], connections=stats["connections"],
                   server_errors=stats["server_errors"],
                   client_errors=sorted({first_error(o, e) for (o, e), r in
                                         zip(outs, rcs) if r != 0}))
        contention.done(s)
        s.update(self.replica_outcome(tool, db, pending, outs, rcs))
        s["errors"] = s["failed"] + len(s["server_errors"])
        # pgboot must be right; dbmate's failures are what this scenario records.
        s["valid"] = True
        if tool == "pgboot" and (s["errors"] or s["applied_times"] != 1):
            s["valid"] = False
            self.invalid_run(scenario, name, i, "%d failed starters, %d server errors, "
                             "migration applied %s times: %s" % (
                                 s["failed"], len(s["server_errors"]), s["applied_times"],
                                 s["client_errors"][:3] + s["server_errors"][:3]))
        elif lock_mode is not None:
            modes = sorted({m for _, err in outs for m in lock_modes(err)} or {"none"})
            if modes != [lock_mode]:
                s["valid"] = False
                self.invalid_run(scenario, name, i, "starters logged lock.mode %s, want %s"
                                 % (modes, lock_mode))
        self.log("%s run %d %-16s %7.1f ms  failed %2d  server errors %2d  peak conns %2d  "
                 "applied %s" % (scenario, i, name, wall * 1000, s["failed"],
                                 len(s["server_errors"]), s["peak_connections"],
                                 s["applied_times"]))
        return s

    def replica_outcome(self, tool, db, pending, outs, rcs):
        out = {}
        table = "t_%05d" % (self.size + 1)
        exists = self.server.sql("SELECT to_regclass('public.%s') IS NOT NULL" % table,
                                 db=db).strip() == "t"
        if tool == "pgboot":
            row = self.server.sql(
                "SELECT (SELECT count(*) FROM public.pgboot_history WHERE version = '%s' AND "
                "status = 'applied'), (SELECT count(*) FROM public.pgboot_history_log WHERE "
                "version = '%s' AND event = 'applied')" % (pending, pending), db=db).strip()
            hist, applied = (int(x) for x in row.split("|"))
        else:
            hist = int(self.server.sql("SELECT count(*) FROM public.schema_migrations WHERE "
                                       "version = '%s'" % pending, db=db).strip())
            # dbmate prints "Applied: V in T" even when the migration then fails (exit 2),
            # so only a starter that exited 0 after "Applying: V" committed it.
            applied = sum(1 for (o, _), rc in zip(outs, rcs) if rc == 0 and "Applying: " in o)
            out["claimed_applied"] = sum(o.count("Applied: ") for o, _ in outs)
        out.update(table_exists=exists, history_rows=hist, applied_times=applied if exists else 0)
        return out

    # -- scenario 5

    def scenario_gate(self):
        """Gate latency: from the migrating process's last commit to the gated app's exec,
        pgboot --wait-for-migrations beside the loop people write today."""
        mig_dir = os.path.join(self.work, "gate_migrations")
        if not os.path.isdir(mig_dir):
            write_migrations(mig_dir, GATE_SIZE)
        last = version(GATE_SIZE)
        stamp = ["date", "+%s.%N"]  # the "app": prints the wall clock the moment it runs
        loop = ('until pg_isready -q -d "$1"; do sleep 2; done; '
                'until [ "$(psql -X -tAq -d "$1" -c "SELECT 1 FROM public.pgboot_history '
                "WHERE version = '$2' AND status = 'applied'\" 2>/dev/null)\" = 1 ]; "
                'do sleep 2; done; exec "$3" "$4"')

        def waiter(name, url):
            if name == "pgboot --wait-for-migrations":
                return ([self.args.pgboot, "--wait-for-migrations", "--database-url", url,
                         "--migrations-dir", mig_dir, "--log-format", "json", "--"] + stamp)
            return ["sh", "-c", loop, "sh", url, last] + stamp

        names = ["pgboot --wait-for-migrations", "pg_isready + schema-check loop"]
        samples = {n: [] for n in names}
        lo, hi = self.args.ready_delay
        for i in range(self.args.runs):
            for name in rotated(names, i):
                db = "gate_%d_%d" % (i, names.index(name))
                self.server.create_db(db)
                s = self.gate_once(name, waiter(name, self.server.url(db)), self.server.url(db),
                                   mig_dir, self.rng.uniform(lo, hi))
                s["run"] = i
                samples[name].append(s)
                self.log("gate run %d %-31s %7.1f ms%s" % (
                    i, name, (s.get("latency_s") or 0) * 1000, "" if s["valid"] else "  INVALID"))
                self.server.drop_db(db)
        self.results["gate"] = {"tools": samples, "migrations": GATE_SIZE}

    def gate_once(self, name, argv, url, mig_dir, delay):
        p = Proc(argv, clean_env(), self.cwd)
        contention = Contention()
        s = Sample(delay_s=delay)
        try:
            time.sleep(delay)  # the app replicas are up and waiting when the migrator starts
            if p.rc is not None:
                raise BenchError("%s ended (rc %d) before anything was migrated" % (name, p.rc))
            m, mout, merr = run_tool([self.args.pgboot, "migrate", "--database-url", url,
                                      "--migrations-dir", mig_dir, "--log-format", "json"],
                                     clean_env(), self.cwd)
            expect_rc("pgboot migrate", m, mout, merr)
            applied = [json.loads(l) for l in merr.splitlines()
                       if l.startswith("{") and '"migration.applied"' in l]
            if len(applied) != GATE_SIZE:
                raise BenchError("migrate applied %d migrations, not %d" % (len(applied), GATE_SIZE))
            committed = datetime.datetime.strptime(applied[-1]["ts"], "%Y-%m-%dT%H:%M:%S.%fZ") \
                .replace(tzinfo=datetime.timezone.utc).timestamp()
            p.wait(60)
            out, err = p.output()
            s.update(rc=p.rc, wall_s=p.wall, maxrss_kb=p.maxrss_kb)
            contention.done(s)
            expect_rc(name, s, out, err)
            try:
                execed = float(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                raise BenchError("the app printed no time: %r" % out[-200:]) from None
            # The reference is the migrator's migration.applied line, written after its COMMIT
            # returned: an upper bound of the commit's instant. A gate woken by the NOTIFY (sent
            # at that commit) may exec the app before the migrator writes the line, and the ts is
            # truncated to the millisecond; so a few ms early is legitimate (counted as 0: the
            # figure under-counts by that gap), more than that is a broken measurement.
            s["latency_s"] = execed - committed
            if s["latency_s"] < -GATE_EARLY_TOLERANCE_S:
                raise BenchError("%s ran the app %.1f ms before the last commit"
                                 % (name, -s["latency_s"] * 1000))
            s["latency_s"] = max(0.0, s["latency_s"])
            s["valid"] = True
        except BenchError as e:
            s["valid"] = False
            self.invalid_run("gate", name, -1, e)
        finally:
            p.kill()
        return s

    # -- scenario 7

    def scenario_pooler(self):
        """apply-SIZE and replicas-N through a real PgBouncer in transaction pooling, beside
        psql through the same PgBouncer and beside pgboot on a direct connection."""
        if not os.access(PGBOUNCER, os.X_OK):
            raise BenchError("%s is missing (scripts/setup.sh installs pgbouncer)" % PGBOUNCER)
        bouncer = PgBouncer(pool_mode="transaction", default_pool_size=POOLER_POOL_SIZE,
                            backend=self.server.cluster)
        try:
            bouncer.start()
        except RuntimeError as e:
            bouncer.destroy()
            raise BenchError("pgbouncer did not start: %s" % e) from None
        try:
            self.results["pooler"] = {
                "pgbouncer": subprocess.run([PGBOUNCER, "--version"], stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, text=True)
                .stdout.splitlines()[0].strip(),
                "pool_mode": "transaction", "default_pool_size": POOLER_POOL_SIZE}
            self.pooler_apply(bouncer)
            self.pooler_replicas(bouncer)
        finally:
            bouncer.destroy()

    def pooled_url(self, bouncer, db):
        """The bench's URL with PgBouncer's host and port: same user, password, sslmode."""
        return "postgresql://%s:%s@%s:%d/%s?sslmode=disable" % (
            urllib.parse.quote(self.server.info["user"], safe=""),
            urllib.parse.quote(self.server.info["password"], safe=""),
            bouncer.host, bouncer.port, urllib.parse.quote(db, safe=""))

    def forget_pooled(self, bouncer, db):
        """Closes PgBouncer's server connections to `db` (KILL, then RESUME so the name is
        usable again), so dropping it terminates no backend behind PgBouncer's back."""
        bouncer.admin("KILL %s" % db)
        bouncer.admin("RESUME %s" % db)

    def pooler_runs(self):
        """--smoke runs the pooler scenario once: it only has to prove the harness works."""
        return 1 if self.args.smoke else self.args.runs

    def pooler_apply(self, bouncer):
        names = ["pgboot via PgBouncer", "psql via PgBouncer", "pgboot direct"]
        samples = {n: [] for n in names}
        for i in range(self.pooler_runs()):
            for name in rotated(names, i):
                tool = name.split()[0]
                db = "pooler_apply_%d_%d" % (i, names.index(name))
                self.server.create_db(db)
                self.server.sql("CHECKPOINT")  # every tool starts with the same WAL state
                pooled = "PgBouncer" in name
                url = self.pooled_url(bouncer, db) if pooled else self.server.url(db)
                argv = self.cmd_apply(tool, db, url=url)
                if tool == "pgboot":
                    # JSON at info (not self.pgboot's warn), for lock.mode: the same for
                    # both pgboot variants.
                    assert argv[-2:] == ["--log-level", "warn"]
                    argv = argv[:-2] + ["--log-level", "info", "--log-format", "json"]
                s, out, err = run_tool(argv, clean_env(), self.cwd)
                s["run"] = i
                try:
                    expect_rc(name, s, out, err)
                    if tool == "pgboot":
                        modes = lock_modes(err)
                        want = "transaction" if pooled else "session"
                        if modes != [want]:
                            raise BenchError("%s: lock.mode %s, want [%s]" % (name, modes, want))
                    s["schema"] = check_schema(self.server, db, tool, self.size)
                    s["valid"] = True
                except BenchError as e:
                    s["valid"] = False
                    self.invalid_run("pooler-apply", name, i, e)
                samples[name].append(s)
                self.log("pooler apply run %d %-20s %8.3f s%s" % (
                    i, name, s["wall_s"], "" if s["valid"] else "  INVALID"))
                if pooled:
                    self.forget_pooled(bouncer, db)
                self.server.drop_db(db)
        self.results["pooler_apply"] = {"tools": samples}

    def pooler_replicas(self, bouncer):
        names = ["pgboot via PgBouncer", "pgboot direct"]
        base = self.base_db("pgboot")
        samples = {n: [] for n in names}
        for i in range(self.pooler_runs()):
            for name in rotated(names, i):
                db = "pooler_replicas_%d_%d" % (i, names.index(name))
                self.server.create_db(db, template=base)
                self.server.sql("CHECKPOINT")
                pooled = "PgBouncer" in name
                url = self.pooled_url(bouncer, db) if pooled else self.server.url(db)
                s = self.replicas_once("pooler-replicas", name, "pgboot", db, url, i,
                                       pooled=pooled,
                                       lock_mode="transaction" if pooled else "session")
                samples[name].append(s)
                if pooled:
                    self.forget_pooled(bouncer, db)
                self.server.drop_db(db)
        self.results["pooler_replicas"] = {"tools": samples, "replicas": self.args.replicas}

    # -- scenario 6

    def scenario_footprint(self):
        out = {}
        stripped = os.path.join(self.work, "pgboot.stripped")
        subprocess.run(["strip", "-o", stripped, self.args.pgboot], check=True)
        out["binary_bytes"] = {"pgboot": os.path.getsize(stripped),
                               "pgboot_unstripped": os.path.getsize(self.args.pgboot),
                               "dbmate": os.path.getsize(self.args.dbmate)}
        fl = subprocess.run(["file", "-b", stripped, self.args.dbmate], stdout=subprocess.PIPE,
                            text=True).stdout.splitlines()
        out["file"] = {"pgboot": fl[0] if fl else "", "dbmate": fl[1] if len(fl) > 1 else ""}
        self.results["footprint"] = out

    # -- the whole run

    def run(self):
        a = self.args
        t0 = time.monotonic()
        self.server = Server(os.path.join(self.work, "pg-state"), a.durability)
        try:
            self.server.start()
            self.log("PostgreSQL %s on port %d, %s settings; work dir %s"
                     % (self.server.version(), self.server.info["port"], a.durability, self.work))
            for sc in SCENARIOS:
                if sc in a.scenarios:
                    self.log("== %s" % sc)
                    getattr(self, "scenario_" + sc)()
            meta = self.meta(time.monotonic() - t0)
        finally:
            self.server.stop()
            shutil.rmtree(self.work, ignore_errors=True)
        return meta

    def meta(self, elapsed):
        def cmd_out(argv):
            try:
                return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, timeout=20).stdout.strip()
            except (OSError, subprocess.SubprocessError) as e:
                return "unavailable (%s)" % e
        cpu = ""
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
        except OSError:
            pass
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "elapsed_s": round(elapsed, 1),
            "args": {k: v for k, v in vars(self.args).items()},
            "git_commit": cmd_out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
            "git_dirty": bool(cmd_out(["git", "-C", ROOT, "status", "--porcelain",
                                       "--untracked-files=no"])),
            "host": {"cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(),
                     "python": platform.python_version()},
            "postgres": {"version": self.server.version(), "settings": self.server.settings(),
                         "transport": "TCP 127.0.0.1, scram-sha-256, sslmode=disable"},
            "tools": {"pgboot": cmd_out([self.args.pgboot, "--version"]),
                      "dbmate": cmd_out([self.args.dbmate, "--version"]),
                      "psql": cmd_out([os.path.join(pgh.BIN_DIR, "psql"), "--version"])},
        }


def lock_modes(err):
    """The modes of the lock.mode lines in pgboot's JSON log `err`."""
    return [json.loads(l).get("mode") for l in err.splitlines()
            if l.startswith("{") and '"event":"lock.mode"' in l]


def first_error(out, err):
    for line in (err + "\n" + out).splitlines():
        if re.search(r"error|failed|fatal", line, re.I):
            return re.sub(r"\s+", " ", line.strip())[:200]
    return tail(err + out, 1)[:200]


# ---- report ---------------------------------------------------------------------------

def fmt_time(s):
    if s is None:
        return "–"
    if s >= 1:
        return "%.2f s" % s
    if s >= 0.1:
        return "%.0f ms" % (s * 1000)
    return "%.1f ms" % (s * 1000)


def fmt_mb(b):
    return "–" if b is None else "%.1f MB" % (b / 1e6)


def fmt_rss(kb):
    return "–" if kb is None else "%.1f MB" % (kb * 1024 / 1e6)


def fmt_stat(st, fmt):
    if not st:
        return "–"
    if st["n"] == 1:
        return fmt(st["median"])
    return "%s (%s–%s)" % (fmt(st["median"]), fmt(st["min"]), fmt(st["max"]))


def valid(samples):
    return [s for s in samples if s.get("valid")]


def stat_of(samples, key):
    return summary([s.get(key) for s in valid(samples)])


def build_rows(results, size):
    """Rows of the table: each compares pgboot with one peer, with the ratio and the goal."""
    rows = []

    def row(scenario, what, p, peer, q, fmt, goal="", met=None, note="", paired=None):
        ratio = (p["median"] / q["median"]) if p and q and q["median"] else None
        rows.append({"scenario": scenario, "what": what, "pgboot": p, "peer": peer, "peer_value": q,
                     "ratio": ratio, "paired_ratio": paired, "goal": goal, "met": met,
                     "note": note, "format": fmt.__name__})
        return ratio

    def paired(a, b, key):
        """Median over runs of pgboot's value / the peer's in the same run: both ran back to
        back, so a slow phase of the machine hits both."""
        by_run = {s["run"]: s.get(key) for s in valid(b)}
        rs = [s[key] / by_run[s["run"]] for s in valid(a)
              if s.get(key) is not None and by_run.get(s["run"])]
        return statistics.median(rs) if rs else None

    if "apply" in results:
        t = results["apply"]["tools"]
        p, d, q = stat_of(t["pgboot"], "wall_s"), stat_of(t["dbmate"], "wall_s"), stat_of(t["psql"], "wall_s")
        r = (p["median"] / q["median"]) if p and q else None
        row("apply-%d" % size, "wall time", p, "dbmate --no-dump-schema up", d, fmt_time,
            paired=paired(t["pgboot"], t["dbmate"], "wall_s"))
        row("apply-%d" % size, "wall time", p, "psql, same files, 1 txn each, 1 connection", q,
            fmt_time, "<= 1.05x psql (stretch: < 1x)", paired=paired(t["pgboot"], t["psql"], "wall_s"),
            met=None if r is None else r <= 1.05,
            note="" if r is None else ("stretch met" if r < 1 else "stretch missed"))
        prss, drss = stat_of(t["pgboot"], "maxrss_kb"), stat_of(t["dbmate"], "maxrss_kb")
        row("footprint", "peak RSS, apply-%d" % size, prss, "dbmate", drss, fmt_rss,
            "< 12 MB", None if not prss else prss["max"] * 1024 < 12e6)
        qrss = stat_of(t["psql"], "maxrss_kb")
        row("footprint", "peak RSS, apply-%d" % size, prss, "psql", qrss, fmt_rss)
    if "noop" in results:
        t = results["noop"]["tools"]
        p, d = stat_of(t["pgboot migrate"], "wall_s"), stat_of(t["dbmate up"], "wall_s")
        r = (p["median"] / d["median"]) if p and d else None
        row("noop-start (%d applied)" % size, "pgboot migrate", p, "dbmate up", d, fmt_time,
            "< 10 ms and >= 5x faster", None if r is None else (p["median"] < 0.010 and r <= 0.2),
            paired=paired(t["pgboot migrate"], t["dbmate up"], "wall_s"))
        e2e, dw = stat_of(t["pgboot -- true"], "wall_s"), stat_of(t["dbmate --wait up"], "wall_s")
        row("noop-start (%d applied)" % size, "pgboot -- true, end to end", e2e,
            "dbmate --wait up", dw, fmt_time,
            paired=paired(t["pgboot -- true"], t["dbmate --wait up"], "wall_s"))
        row("noop-start (%d applied)" % size, "pgboot migrate", p,
            "psql -c 'SELECT 1' (one login + one query: the floor)",
            stat_of(t["psql -c 'SELECT 1'"], "wall_s"), fmt_time,
            paired=paired(t["pgboot migrate"], t["psql -c 'SELECT 1'"], "wall_s"))
        row("noop-start (%d applied)" % size, "pgboot wait (login + SELECT 1, no files)",
            stat_of(t["pgboot wait"], "wall_s"), "psql -c 'SELECT 1'",
            stat_of(t["psql -c 'SELECT 1'"], "wall_s"), fmt_time,
            paired=paired(t["pgboot wait"], t["psql -c 'SELECT 1'"], "wall_s"))
        prss, drss = stat_of(t["pgboot migrate"], "maxrss_kb"), stat_of(t["dbmate up"], "maxrss_kb")
        row("footprint", "peak RSS, noop-start", prss, "dbmate", drss, fmt_rss,
            "< 12 MB", None if not prss else prss["max"] * 1024 < 12e6)
    if "ready" in results:
        t = results["ready"]["tools"]
        p = stat_of(t["pgboot wait"], "latency_s")
        met = None if not p else p["median"] < 0.060
        row("ready-latency", "server ready -> waiter proceeds", p, "dbmate wait",
            stat_of(t["dbmate wait"], "latency_s"), fmt_time, "median < 60 ms", met,
            paired=paired(t["pgboot wait"], t["dbmate wait"], "latency_s"))
        row("ready-latency", "server ready -> waiter proceeds", p,
            "until pg_isready; do sleep 2; done", stat_of(t["pg_isready loop"], "latency_s"), fmt_time,
            paired=paired(t["pgboot wait"], t["pg_isready loop"], "latency_s"))
    def replica_rows(sc, ps, peer, ds):
        """The rows of a replicas scenario: pgboot's samples `ps` beside the peer's `ds`."""
        row(sc, "wall time until all finished", stat_of(ps, "wall_s"), peer,
            stat_of(ds, "wall_s"), fmt_time, paired=paired(ps, ds, "wall_s"))
        perr = summary([s["errors"] for s in ps])
        once = all(s["applied_times"] == 1 for s in ps) if ps else None
        row(sc, "errors (failed starters + server ERRORs)", perr, peer,
            summary([s["errors"] for s in ds]), fmt_count, "0 errors, applied once",
            None if perr is None else (perr["max"] == 0 and once))
        row(sc, "peak server connections", summary([s["peak_connections"] for s in ps]),
            peer, summary([s["peak_connections"] for s in ds]), fmt_count)
        row(sc, "times the migration was applied", summary([s["applied_times"] for s in ps]),
            peer, summary([s["applied_times"] for s in ds]), fmt_count)

    if "replicas" in results:
        t = results["replicas"]["tools"]
        replica_rows("replicas-%d (1 pending)" % results["replicas"]["replicas"],
                     t["pgboot"], "dbmate --wait up", t["dbmate"])
    if "gate" in results:
        t = results["gate"]["tools"]
        p = stat_of(t["pgboot --wait-for-migrations"], "latency_s")
        q = stat_of(t["pg_isready + schema-check loop"], "latency_s")
        r = (p["median"] / q["median"]) if p and q and q["median"] else None
        row("gate-latency", "last commit -> gated app's exec", p,
            "until pg_isready; sleep 2; then a schema check every 2 s", q, fmt_time,
            "median < 50 ms and >= 10x faster",
            None if r is None else (p["median"] < 0.050 and r <= 0.1),
            paired=paired(t["pgboot --wait-for-migrations"], t["pg_isready + schema-check loop"],
                          "latency_s"))
    if "pooler_apply" in results:
        t = results["pooler_apply"]["tools"]
        via, peer = t["pgboot via PgBouncer"], t["psql via PgBouncer"]
        p, q = stat_of(via, "wall_s"), stat_of(peer, "wall_s")
        r = (p["median"] / q["median"]) if p and q else None
        sc = "apply-%d via PgBouncer (transaction pooling)" % size
        row(sc, "wall time, pgboot in transaction lock mode", p,
            "psql through the same PgBouncer, same files, 1 txn each", q, fmt_time,
            "<= 1.10x psql", None if r is None else r <= 1.10,
            paired=paired(via, peer, "wall_s"))
        row(sc, "wall time, pgboot in transaction lock mode", p,
            "pgboot direct to the server (session lock mode)",
            stat_of(t["pgboot direct"], "wall_s"), fmt_time,
            paired=paired(via, t["pgboot direct"], "wall_s"))
    if "pooler_replicas" in results:
        t = results["pooler_replicas"]["tools"]
        replica_rows("replicas-%d via PgBouncer (1 pending)" % results["pooler_replicas"]["replicas"],
                     t["pgboot via PgBouncer"], "pgboot direct", t["pgboot direct"])
    if "footprint" in results:
        b = results["footprint"]["binary_bytes"]
        p, d = summary([b["pgboot"]]), summary([b["dbmate"]])
        row("footprint", "stripped binary", p, "dbmate (npm @dbmate/linux-x64)", d, fmt_mb,
            "< 8 MB", b["pgboot"] < 8e6)
    return rows


def miss_notes(rows, results, a):
    """One data-driven explanation per missed goal."""
    notes = []
    for r in rows:
        if r["met"] is not False:
            continue
        sc = r["scenario"]
        if sc.startswith("noop"):
            t = results["noop"]["tools"]
            mig, wait = stat_of(t["pgboot migrate"], "wall_s"), stat_of(t["pgboot wait"], "wall_s")
            floor, dbm = stat_of(t["psql -c 'SELECT 1'"], "wall_s"), stat_of(t["dbmate up"], "wall_s")
            if mig and wait and floor and dbm:
                login, extra = wait["median"], mig["median"] - wait["median"]
                target = dbm["median"] / 5
                # pgboot reads the files on a second thread while it logs in, so what
                # `migrate` adds over `wait` is the file work the login did not hide,
                # plus reading the history.
                parts = ["`pgboot migrate` takes %s: its login and `SELECT 1` alone (`pgboot wait`) "
                         "take %s (`psql -c 'SELECT 1'`: %s); the other %s are reading and "
                         "checksumming the %d files (on a second thread during the login, so "
                         "only the part the login does not hide) and reading the history"
                         % (fmt_time(mig["median"]), fmt_time(login), fmt_time(floor["median"]),
                            fmt_time(extra), a["size"])]
                if mig["median"] >= 0.010:
                    if login >= 0.010:
                        why = "the login alone takes %s on this machine" % fmt_time(login)
                    else:
                        why = ("the file work (open/read of every file: kernel time dominates in "
                               "this VM) outlasts the login; going lower means reading less, "
                               "e.g. not re-reading files whose checksum cannot have changed, "
                               "which no container start can know")
                    parts.append("< 10 ms: " + why)
                if mig["median"] > target:
                    parts.append(">= 5x dbmate means <= %s (dbmate up: %s), %s" % (
                        fmt_time(target), fmt_time(dbm["median"]),
                        "below the cost of one login here: no client that logs in reaches it"
                        if target < login else "above one login here: reachable"))
                notes.append("noop-start: " + "; ".join(parts) + ".")
        elif sc.startswith("apply") and "PgBouncer" in sc:
            t = results["pooler_apply"]["tools"]
            p, q, d = (stat_of(t[k], "wall_s") for k in
                       ("pgboot via PgBouncer", "psql via PgBouncer", "pgboot direct"))
            if p and q and d:
                st = summary([x.get("cpu_stall") for v in t.values() for x in v])
                notes.append(
                    "apply via PgBouncer: pgboot takes %.2f ms per migration more than psql "
                    "through the same PgBouncer (%s vs %s for %d; paired %s). Per migration "
                    "pgboot makes three round trips through PgBouncer (BEGIN with its SET LOCALs "
                    "and the try-lock; the re-check of its history row under the lock; the "
                    "section pipelined with its history and audit rows, NOTIFY and COMMIT), "
                    "psql five (BEGIN, three statements, COMMIT): what pgboot adds is work, not "
                    "waiting — the lock key, the re-check, two more rows and a NOTIFY per "
                    "migration — which weighs most when CPUs are short (CPU stall during these "
                    "runs: %s of the time). The same pgboot direct to the server takes %s." % (
                        (p["median"] - q["median"]) * 1000 / a["size"], fmt_time(p["median"]),
                        fmt_time(q["median"]), a["size"],
                        "–" if r["paired_ratio"] is None else "%.2fx" % r["paired_ratio"],
                        "–" if not st else "%.0f%%" % (st["median"] * 100),
                        fmt_time(d["median"])))
        elif sc.startswith("apply") and "psql" in r["peer"]:
            st = summary([x.get("cpu_stall") for v in results["apply"]["tools"].values() for x in v])
            notes.append(
                "apply: median ratio %.2fx, paired %s; other load during these runs: CPU stall "
                "%s of the time. With wide min–max, rerun with more `--runs` or at a quiet time "
                "before reading much into it." % (
                    r["ratio"], "–" if r["paired_ratio"] is None else "%.2fx" % r["paired_ratio"],
                    "–" if not st else "%.0f%%" % (st["median"] * 100)))
        elif sc.startswith("gate"):
            notes.append(
                "gate-latency: the gated pgboot is woken by the NOTIFY in each migration's "
                "transaction, re-reads the history and execs; a miss here means the notification "
                "did not arrive (an older migrator?) and it fell back to polling (up to 2 s).")
        elif sc.startswith("ready"):
            notes.append(
                "ready-latency: while nothing listens pgboot retries with full jitter capped at "
                "100 ms (SPEC §3), so after the server becomes ready it sleeps on average ~33 ms "
                "more, then logs in (see noop-start's `pgboot wait`).")
        else:
            notes.append("%s %s: goal %s missed (see the table)." % (sc, r["what"], r["goal"]))
    return notes


def fmt_ratio(r):
    if r["ratio"] is None:
        return "–"
    if r.get("paired_ratio") is None:
        return "%.2fx" % r["ratio"]
    return "%.2fx (%.2fx)" % (r["ratio"], r["paired_ratio"])


def fmt_count(v):
    return "%g" % v


FORMATS = {f.__name__: f for f in (fmt_time, fmt_mb, fmt_rss, fmt_count)}


def render_md(meta, rows, results, invalid):
    a = meta["args"]
    L = ["# pgboot benchmark: latest results", ""]
    L.append("Generated %s by `bench/run.sh%s` (%.0f s). pgboot commit `%s`%s. "
             "Each cell: median (min–max) of the valid runs; pgboot and its peers alternate "
             "run by run." % (meta["date"], a.get("cmdline", ""), meta["elapsed_s"],
                              meta["git_commit"], " + uncommitted changes" if meta["git_dirty"] else ""))
    L.append("")
    pgs = meta["postgres"]["settings"]
    L.append("- Machine: %s, %d CPUs, Linux %s" % (meta["host"]["cpu"] or "?",
                                                    meta["host"]["cpus"], meta["host"]["kernel"]))
    L.append("- PostgreSQL %s (%s settings: fsync=%s, synchronous_commit=%s, full_page_writes=%s), "
             "%s" % (meta["postgres"]["version"], a["durability"], pgs.get("fsync"),
                     pgs.get("synchronous_commit"), pgs.get("full_page_writes"),
                     meta["postgres"]["transport"]))
    L.append("- Tools: %s; %s; %s" % (meta["tools"]["pgboot"], meta["tools"]["dbmate"],
                                       meta["tools"]["psql"]))
    if "pooler" in results:
        pb = results["pooler"]
        L.append("- Pooler scenarios: %s, pool_mode=%s, default_pool_size=%d (PgBouncer's "
                 "default), otherwise its default configuration; clients log in to it with a "
                 "plain password over 127.0.0.1, it logs in to the server with SCRAM" % (
                     pb["pgbouncer"], pb["pool_mode"], pb["default_pool_size"]))
    L.append("- Size %d migrations (a table with a primary key, an index, a comment each); "
             "%d runs (noop-start: %d); %d replicas" % (a["size"], a["runs"], a["noop_runs"],
                                                         a["replicas"]))
    cont = []
    for sc in ("apply", "noop", "ready", "replicas", "pooler_apply", "pooler_replicas"):
        if sc in results:
            ss = [x for v in results[sc]["tools"].values() for x in v]
            c, io = summary([x.get("cpu_stall") for x in ss]), summary([x.get("io_stall") for x in ss])
            if c:
                cont.append("%s %.0f%% / %.0f%%" % (sc, c["median"] * 100, io["median"] * 100 if io else 0))
    if cont:
        L.append("- Other load on the machine (Linux PSI: share of each run's time during which some "
                 "task waited for a CPU / for I/O; median over runs): " + ", ".join(cont) +
                 ". Above ~20%, expect wide min–max; the paired ratio (median over runs of pgboot's "
                 "value / the peer's in the same rotation) is then the steadier figure.")
    L.append("")
    L.append("| scenario | measure | pgboot | peer | peer value | pgboot/peer (paired) | goal | met |")
    L.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        f = FORMATS[r["format"]]
        met = "" if r["met"] is None else ("yes" if r["met"] else "**NO**")
        if r["note"]:
            met += " (%s)" % r["note"]
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["scenario"], r["what"], fmt_stat(r["pgboot"], f), r["peer"],
            fmt_stat(r["peer_value"], f), fmt_ratio(r),
            r["goal"], met))
    L.append("")
    missed = [r for r in rows if r["met"] is False]
    if missed:
        L.append("**Goals missed:** " + "; ".join("%s %s (%s)" % (r["scenario"], r["what"], r["goal"])
                                                   for r in missed) + ".")
    else:
        L.append("All goals with a verdict were met.")
    notes = miss_notes(rows, results, a)
    if notes:
        L.append("")
        L.append("### Why goals were missed (computed from this run)")
        L.append("")
        L.extend("- " + n for n in notes)
    if a["size"] != 1000:
        L.append("")
        L.append("Size is %d, not 1000: the absolute goals are stated for 1000 migrations and "
                 "are only indicative here." % a["size"])
    for key, title in (("replicas", "replicas"), ("pooler_replicas", "replicas via PgBouncer")):
        if key not in results:
            continue
        L.append("")
        L.append("### %s: what each starter saw" % title)
        L.append("")
        for tool, samples in results[key]["tools"].items():
            errs, cerrs = {}, {}
            for s in samples:
                for e in s["server_errors"]:
                    errs[e] = errs.get(e, 0) + 1
                for e in s["client_errors"]:
                    cerrs[e] = cerrs.get(e, 0) + 1
            failed = sum(s["failed"] for s in samples)
            L.append("- **%s**: %d of %d starts failed over %d runs; migration applied %s time(s) "
                     "per run; history rows for it: %s." % (
                         tool, failed, len(samples) * results[key]["replicas"],
                         len(samples), "/".join(str(s["applied_times"]) for s in samples),
                         "/".join(str(s["history_rows"]) for s in samples)))
            if any("claimed_applied" in s for s in samples):
                L.append("  - dbmate printed `Applied: V in T` %s times per run: it prints that line "
                         "even when the migration then fails and it exits 2, so only exits 0 count as "
                         "applied." % "/".join(str(s.get("claimed_applied")) for s in samples))
            for e, c in sorted(errs.items(), key=lambda x: -x[1])[:6]:
                L.append("  - server, %d×: `%s`" % (c, e.replace("`", "'")))
            for e, c in sorted(cerrs.items(), key=lambda x: -x[1])[:6]:
                L.append("  - client (distinct per run), %d run(s): `%s`" % (c, e.replace("`", "'")))
    if invalid:
        L.append("")
        L.append("### INVALID runs (excluded from the figures; the bench exits 1)")
        L.append("")
        for x in invalid:
            L.append("- %s / %s run %s: %s" % (x["scenario"], x["tool"], x["run"],
                                               x["reason"].replace("\n", " | ")[:500]))
    L.append("")
    L.append("Raw samples: `latest.json`. Method and scenarios: `bench/README.md`.")
    return "\n".join(L) + "\n"


# ---- main ---------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pgboot", required=True, help="the pgboot binary (a Release build)")
    ap.add_argument("--dbmate", required=True, help="the dbmate Linux binary")
    ap.add_argument("--runs", type=int, default=5, help="runs per tool and scenario (>= 5)")
    ap.add_argument("--noop-runs", type=int, default=None,
                    help="runs for noop-start (default 4x --runs: each takes milliseconds)")
    ap.add_argument("--size", type=int, default=1000, help="migrations in apply/noop/replicas")
    ap.add_argument("--replicas", type=int, default=16)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help="comma-separated subset of " + ",".join(SCENARIOS))
    ap.add_argument("--durability", choices=("durable", "fast"), default="durable",
                    help="durable: fsync, synchronous_commit, full_page_writes on (a real "
                         "server); fast: all off (the test harness's settings)")
    ap.add_argument("--ready-delay", type=float, nargs=2, default=(0.3, 2.3), metavar=("LO", "HI"),
                    help="the server starts uniform(LO, HI) s after the waiter")
    ap.add_argument("--seed", type=int, default=1, help="seed for the ready-latency delays")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="directory for latest.*")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny and quick, to keep the harness alive: size 20, 2 runs "
                         "(allows --runs < 5)")
    a = ap.parse_args(argv)
    if a.smoke:
        if "--size" not in argv:
            a.size = 20
        if "--runs" not in argv:
            a.runs = 2
        if "--ready-delay" not in argv:
            a.ready_delay = (0.2, 0.6)
    elif a.runs < 5:
        ap.error("--runs must be at least 5 (medians of fewer are not results); use --smoke")
    if a.noop_runs is None:
        a.noop_runs = a.runs * 4
    a.scenarios = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    bad = [s for s in a.scenarios if s not in SCENARIOS]
    if bad:
        ap.error("unknown scenario(s): %s" % ", ".join(bad))
    for k in ("pgboot", "dbmate"):
        p = os.path.abspath(getattr(a, k))
        if not os.access(p, os.X_OK):
            ap.error("--%s %s is not an executable file" % (k, p))
        setattr(a, k, p)
    # The command line as the report shows it: without machine-specific paths.
    shown, skip = [], False
    for x in argv:
        if skip:
            skip = False
        elif x in ("--pgboot", "--dbmate", "--out"):
            skip = True
        elif not x.startswith(("--pgboot=", "--dbmate=", "--out=")):
            shown.append(x)
    a.cmdline = "".join(" " + x for x in shown)
    return a


def render_only(path):
    """Rewrites latest.md next to a latest.json from its samples (after a report change)."""
    with open(path) as f:
        doc = json.load(f)
    rows = build_rows(doc["results"], doc["meta"]["args"]["size"])
    md = render_md(doc["meta"], rows, doc["results"], doc["invalid"])
    with open(os.path.join(os.path.dirname(os.path.abspath(path)), "latest.md"), "w") as f:
        f.write(md)
    print(md)
    return 0


def main(argv):
    if len(argv) == 2 and argv[0] == "--render":
        return render_only(argv[1])
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        bench = Bench(args)
        meta = bench.run()
    except BenchError as e:
        print("bench: %s" % e, file=sys.stderr)
        return 2
    rows = build_rows(bench.results, args.size)
    os.makedirs(args.out, exist_ok=True)
    doc = {"meta": meta, "rows": rows, "results": bench.results, "invalid": bench.invalid}
    md = render_md(meta, rows, bench.results, bench.invalid)
    for name, text in (("latest.json", json.dumps(doc, indent=1, default=str) + "\n"),
                       ("latest.md", md)):
        tmp = os.path.join(args.out, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(args.out, name))
    print()
    print(md)
    print("bench: wrote %s/latest.md and latest.json" % args.out)
    return 1 if bench.invalid else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
