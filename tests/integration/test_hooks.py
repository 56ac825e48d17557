#!/usr/bin/env python3
"""--before-migrate / --after-migrate hooks against a real PostgreSQL 15 (docs/reference.md,
"Hooks"): when they run (under the lock, only with work, never on --dry-run), what they see
(PGBOOT_* and the libpq variables, so psql and pg_dump need no arguments), exit 9 when they fail,
signals to their process group, an image without /bin/sh, the refusal in transaction lock mode
behind a real PgBouncer, and the example backup hook restored with pg_restore.

Every wait is on an event (hook.start, a file the hook writes), never a blind sleep.
"""

import os
import re
import shutil
import signal
import subprocess
import time
import unittest

from harness.case import PgbootTestCase, skip_if_sanitized, skip_loudly, time_limit
from harness.files import temp_dir, temp_migrations, up
from harness.logs import events
from harness.pgbouncer import start_pgbouncer
from harness.proc import StartBarrier, is_root, pgboot_bin, run, source_dir, spawn, wait_until
from harness.server import BIN_DIR, closed_url, new_database, pg, url
from harness.sql import admin_sql, advisory_locks, history, table_exists

TWO = {"1_one.sql": up("CREATE TABLE one (id int);\n"),
       "2_two.sql": up("CREATE TABLE two (id int);\n")}


def proc_alive(pid):
    """Whether `pid` is a live process (not a zombie)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def pgrp_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[2])


class Base(PgbootTestCase):
    def setUp(self):
        self.db = new_database(self, "hooks")
        self.out = temp_dir(self, prefix="pgboot-hook-out-")
        os.chmod(self.out.path, 0o777)

    def args(self, cmd, mig, *extra, db=None, database_url=None):
        return [cmd, "--database-url", database_url or url(db or self.db),
                "--migrations-dir", mig, "--wait-timeout", "10s"] + [str(e) for e in extra]

    def migrate(self, mig, *extra, env=None, timeout=60, **kw):
        return run(self.args("migrate", mig, *extra, **kw), env=env, timeout=timeout)

    def path(self, name):
        return os.path.join(self.out.path, name)

    def read(self, name):
        with open(self.path(name)) as f:
            return f.read()

    def env_file(self, name):
        """The NAME=VALUE lines a hook wrote with `env > FILE`, as a dict."""
        out = {}
        for line in self.read(name).splitlines():
            k, sep, v = line.partition("=")
            if sep:
                out[k] = v
        return out


class WhenHooksRunTest(Base):
    def test_passing_hooks_see_pending_versions_and_libpq_variables(self):
        mig = temp_migrations(self, TWO)
        # No arguments to psql: the libpq variables pgboot hands over say where to go. The
        # before hook sees the schema before the migrations, the after hook after them.
        probe = ("env > %s/{0}.env; psql -XAtc \"SELECT current_database(), "
                 "to_regclass('two') IS NOT NULL\" > %s/{0}.psql" % (self.out.path, self.out.path))
        cp = self.migrate(mig, "--before-migrate", probe.format("before"),
                          "--after-migrate", probe.format("after"))
        self.assertExit(cp, 0)
        before, after = self.env_file("before.env"), self.env_file("after.env")
        self.assertEqual(before["PGBOOT_HOOK"], "before_migrate")
        self.assertEqual(before["PGBOOT_PENDING"], "2")
        self.assertEqual(before["PGBOOT_PENDING_VERSIONS"], "1 2")
        self.assertEqual(after["PGBOOT_HOOK"], "after_migrate")
        self.assertEqual(after["PGBOOT_PENDING_VERSIONS"], "1 2")
        info = pg()
        for env in (before, after):
            self.assertEqual(env["PGHOST"], info["host"])
            self.assertEqual(env["PGPORT"], str(info["port"]))
            self.assertEqual(env["PGUSER"], info["user"])
            self.assertEqual(env["PGPASSWORD"], info["password"])
            self.assertEqual(env["PGDATABASE"], self.db)
        self.assertEqual(self.read("before.psql").strip(), "%s|f" % self.db)
        self.assertEqual(self.read("after.psql").strip(), "%s|t" % self.db)
        self.assertEqual(history(self.db), {"1": "applied", "2": "applied"})
        evs = events(cp.stderr)
        names = [e["event"] for e in evs]
        self.assertLess(names.index("lock.acquired"), names.index("hook.start"))
        first_start = names.index("hook.start")
        self.assertLess(first_start, names.index("migration.start"))
        self.assertLess(names.index("migrate.done"), len(names) - 1 - names[::-1].index("hook.start"))
        done = [e for e in evs if e["event"] == "hook.done"]
        self.assertEqual([e["hook"] for e in done], ["before_migrate", "after_migrate"])
        for e in done:
            self.assertEqual(str(e["code"]), "0")
            self.assertRegex(str(e["ms"]), r"^\d+$")
        self.assertNoPassword(cp.stderr, info["password"])

    def test_sslmode_and_other_keys_of_the_url_reach_the_hook(self):
        mig = temp_migrations(self, TWO)
        target = url(self.db, params={"sslmode": "disable", "application_name": "deployer"})
        cp = self.migrate(mig, "--before-migrate", "env > %s/env" % self.out.path,
                          database_url=target)
        self.assertExit(cp, 0)
        env = self.env_file("env")
        self.assertEqual(env["PGSSLMODE"], "disable")
        self.assertEqual(env["PGAPPNAME"], "deployer")

    def test_a_failing_before_hook_applies_nothing_and_exits_9(self):
        mig = temp_migrations(self, TWO)
        cp = self.migrate(mig, "--before-migrate", "echo hook-stdout; echo hook-stderr >&2; exit 3",
                          "--after-migrate", "touch %s/after" % self.out.path)
        self.assertExit(cp, 9)
        self.assertFalse(table_exists(self.db, "one"))
        self.assertEqual(history(self.db), {})
        self.assertFalse(os.path.exists(self.path("after")))
        # The hook's stdout and stderr both go to pgboot's stderr; stdout stays pgboot's.
        self.assertIn("hook-stdout", cp.stderr)
        self.assertIn("hook-stderr", cp.stderr)
        self.assertNotIn("hook-stdout", cp.stdout)
        failed = events(cp.stderr, "hook.failed")
        self.assertEqual(len(failed), 1, cp.stderr)
        self.assertEqual(failed[0]["hook"], "before_migrate")
        self.assertEqual(str(failed[0]["code"]), "3")
        self.assertRegex(cp.stderr, r"exited with code 3; nothing was applied")
        self.assertEqual(advisory_locks(self.db), 0)

    def test_a_command_that_does_not_exist_is_exit_9_with_the_reason(self):
        mig = temp_migrations(self, TWO)
        cp = self.migrate(mig, "--before-migrate", "pgboot-no-such-command-xyz")
        self.assertExit(cp, 9)
        self.assertRegex(cp.stderr, r"exited with code 127 \(the shell found no such command\)")
        self.assertEqual(history(self.db), {})

    def test_a_failing_after_hook_is_exit_9_and_the_migrations_stay(self):
        mig = temp_migrations(self, TWO)
        cp = self.migrate(mig, "--after-migrate", "kill -9 $$")
        self.assertExit(cp, 9)
        self.assertRegex(cp.stderr, r"killed by SIGKILL; the migrations stay applied")
        self.assertEqual(history(self.db), {"1": "applied", "2": "applied"})

    def test_no_hook_when_nothing_is_pending_or_on_dry_run(self):
        mig = temp_migrations(self, TWO)
        count = ("echo $PGBOOT_HOOK >> %s/runs" % self.out.path)
        cp = self.migrate(mig, "--before-migrate", count, "--after-migrate", count, "--dry-run")
        self.assertExit(cp, 0)
        self.assertIn("CREATE TABLE one", cp.stdout)
        self.assertFalse(os.path.exists(self.path("runs")))
        self.assertEqual(history(self.db), {})
        cp = self.migrate(mig, "--before-migrate", count, "--after-migrate", count, "--target", "1")
        self.assertExit(cp, 0)
        self.assertEqual(self.read("runs").split(), ["before_migrate", "after_migrate"])
        # At or below the target: nothing pending up to it, no hook.
        cp = self.migrate(mig, "--before-migrate", count, "--after-migrate", count, "--target", "1")
        self.assertExit(cp, 0)
        self.assertEqual(self.read("runs").split(), ["before_migrate", "after_migrate"])
        cp = self.migrate(mig, "--before-migrate", count, "--after-migrate", count)
        self.assertExit(cp, 0)
        self.assertEqual(len(self.read("runs").split()), 4)
        cp = self.migrate(mig, "--before-migrate", count, "--after-migrate", count)
        self.assertExit(cp, 0)
        self.assertEqual(len(self.read("runs").split()), 4, "nothing pending: no hook")
        self.assertEqual(events(cp.stderr, "hook.start"), [])

    def test_environment_and_toml_forms_in_run_mode(self):
        mig = temp_migrations(self, TWO)
        conf = temp_dir(self)
        conf.write("pgboot.toml", '[hooks]\nafter_migrate = "echo toml >> %s/runs"\n'
                   % self.out.path)
        env = {"DATABASE_URL": url(self.db), "PGBOOT_MIGRATIONS_DIR": mig.path,
               "RUN_MIGRATIONS": "true", "PGBOOT_CONFIG": os.path.join(conf.path, "pgboot.toml"),
               "PGBOOT_BEFORE_MIGRATE": "echo env >> %s/runs" % self.out.path}
        cp = run(["run", "--", "/bin/sh", "-c", "echo app >> %s/runs" % self.out.path], env=env)
        self.assertExit(cp, 0)
        self.assertEqual(self.read("runs").split(), ["env", "toml", "app"])
        self.assertEqual(history(self.db), {"1": "applied", "2": "applied"})

    def test_the_hook_inherits_pgboots_original_signal_mask_and_dispositions(self):
        mig = temp_migrations(self, TWO)

        def ignore_usr1():  # pgboot starts with SIGUSR1 ignored, nothing blocked
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)

        cmd = [pgboot_bin()] + self.args(
            "migrate", mig, "--before-migrate",
            "grep -E '^Sig(Blk|Ign)' /proc/self/status > %s/sig" % self.out.path)
        cp = subprocess.run(cmd, env={"PATH": os.environ["PATH"]}, preexec_fn=ignore_usr1,
                            capture_output=True, text=True, timeout=60)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        sig = dict(line.split(":\t") for line in self.read("sig").splitlines())
        # pgboot itself blocks every signal and ignores SIGPIPE; the hook gets neither.
        self.assertEqual(int(sig["SigBlk"], 16), 0)
        self.assertEqual(int(sig["SigIgn"], 16), 1 << (signal.SIGUSR1 - 1))


class ConcurrencyTest(Base):
    N = 8

    def test_eight_starters_run_the_hook_once(self):
        mig = temp_migrations(self, TWO)
        barrier = StartBarrier(self.N, test=self)
        # The hook holds the lock a moment, so the others are seen waiting for it.
        hook = "echo $$ >> %s/runs; sleep 1" % self.out.path
        procs = [spawn(self.args("migrate", mig, "--before-migrate", hook, "--after-migrate",
                                 "echo after >> %s/after" % self.out.path,
                                 "--lock-timeout", "60s"),
                       barrier=barrier, test=self) for _ in range(self.N)]
        barrier.release()
        results = [p.finish(timeout=90) for p in procs]
        for cp in results:
            self.assertExit(cp, 0)
        self.assertEqual(len(self.read("runs").split()), 1)
        self.assertEqual(len(self.read("after").split()), 1)
        self.assertTrue(any(events(cp.stderr, "lock.waiting") for cp in results),
                        "at least one starter must have waited for the lock")
        self.assertEqual(history(self.db), {"1": "applied", "2": "applied"})


class SignalTest(Base):
    def start_hooked(self, mig, hook, *extra):
        p = spawn(self.args("migrate", mig, "--before-migrate", hook, *extra), test=self)
        m = p.wait_for_line(r"hook\.start.*\bpid=(\d+)", timeout=30)
        hook_pid = int(m.group(1))
        child = int(wait_until(lambda: self.read_pid("child"), 20, "the hook's child started"))
        self.assertEqual(pgrp_of(hook_pid), hook_pid, "the hook leads its own process group")
        self.assertEqual(pgrp_of(child), hook_pid, "the hook's child is in its group")
        return p, hook_pid, child

    def read_pid(self, name):
        try:
            text = self.read(name).strip()
        except FileNotFoundError:
            return None
        return int(text) if text else None

    def test_sigterm_reaches_the_hooks_process_group_and_pgboot_exits_143(self):
        mig = temp_migrations(self, TWO)
        # The child says when SIGTERM reaches it; the hook's shell waits for it to end, which
        # it would do forever if only the shell got the signal. Both traps are set before the
        # child's pid is written, so the signal cannot land before them.
        self.out.write("child.sh", "trap 'echo term > {0}/child-term; exit 0' TERM\n"
                       "echo $$ > {0}/child\n"
                       "while :; do sleep 0.1; done\n".format(self.out.path))
        hook = "trap 'wait $!; exit 143' TERM; sh %s/child.sh & wait" % self.out.path
        p, hook_pid, child = self.start_hooked(mig, hook, "--init-grace", "30s")
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        cp = p.finish(timeout=time_limit(20))
        self.assertExit(cp, 143)
        self.assertLess(time.monotonic() - t0, time_limit(10),
                        "SIGTERM must end the hook, not wait out --init-grace")
        self.assertEqual(self.read("child-term").strip(), "term", "SIGTERM reached the child")
        self.assertFalse(proc_alive(child))
        self.assertRegex(cp.stderr, r"hook\.signal .*signal=SIGTERM")
        self.assertEqual(events(cp.stderr, "hook.kill"), [])
        self.assertEqual(history(self.db), {})
        self.assertFalse(table_exists(self.db, "one"))

    def test_a_hook_that_ignores_sigterm_is_killed_after_the_grace(self):
        mig = temp_migrations(self, TWO)
        hook = "trap '' TERM INT; sleep 300 & echo $! > %s/child; wait" % self.out.path
        p, hook_pid, child = self.start_hooked(mig, hook, "--init-grace", "1s")
        p.send_signal(signal.SIGINT)
        cp = p.finish(timeout=time_limit(30))
        self.assertExit(cp, 130)
        self.assertRegex(cp.stderr, r"hook\.kill .*signal=SIGKILL")
        self.assertFalse(proc_alive(child))
        self.assertFalse(proc_alive(hook_pid))
        self.assertEqual(history(self.db), {})


class NoShellTest(Base):
    """An image without /bin/sh (a FROM scratch root: only the static binary) is exit 9 before
    waiting for the database."""

    def setUp(self):
        super().setUp()
        skip_if_sanitized(self, "a static binary that runs alone in a chroot")
        if not is_root():
            skip_loudly(self, "chroot needs root to run pgboot in a root without /bin/sh")
        self.root = temp_dir(self)
        os.chmod(self.root.path, 0o755)
        shutil.copy2(pgboot_bin(), os.path.join(self.root.path, "pgboot"))
        self.root.write("migrations/1_one.sql", TWO["1_one.sql"])

    def chroot_migrate(self, *extra):
        return run([self.root.path, "/pgboot", "migrate", "--migrations-dir", "/migrations",
                    "--database-url", closed_url(self.db)] + list(extra),
                   binary=shutil.which("chroot"), timeout=60)

    def test_no_shell_is_exit_9_before_waiting(self):
        self.assertFalse(os.path.exists(os.path.join(self.root.path, "bin")))
        cp = self.chroot_migrate("--wait-timeout", "60s", "--before-migrate", "true")
        self.assertExit(cp, 9)
        self.assertRegex(cp.stderr, r"/bin/sh cannot be used to run it: No such file or directory")
        self.assertLess(cp.elapsed, time_limit(20), "must not wait for the database first")
        self.assertEqual(events(cp.stderr, "wait.retry"), [])
        # The same root without a hook does wait (and gives up: the URL's port is closed).
        cp = self.chroot_migrate("--wait-timeout", "1s")
        self.assertExit(cp, 3)
        # A dry run runs no hook, so it needs no shell either.
        cp = self.chroot_migrate("--wait-timeout", "1s", "--before-migrate", "true", "--dry-run")
        self.assertExit(cp, 3)


class TransactionModeTest(Base):
    def test_hooks_are_refused_behind_pgbouncer_pending_or_not(self):
        bouncer = start_pgbouncer(self, pool_mode="transaction")
        mig = temp_migrations(self, TWO)
        through = bouncer.url(self.db)
        hook = "touch %s/ran" % self.out.path
        for flag in ("--before-migrate", "--after-migrate"):
            cp = self.migrate(mig, flag, hook, database_url=through)
            self.assertExit(cp, 2)
            self.assertRegex(cp.stderr, re.escape(flag) + r" hook needs session lock mode")
            self.assertIn("--lock-mode session", cp.stderr)
        self.assertFalse(os.path.exists(self.path("ran")))
        self.assertEqual(history(self.db), {})
        self.assertFalse(table_exists(self.db, "one"))
        # Without hooks the same run works through the pooler; then nothing is pending, and a
        # configured hook is still refused: the configuration cannot work on the next deploy.
        self.assertExit(self.migrate(mig, database_url=through), 0)
        cp = self.migrate(mig, "--before-migrate", hook, database_url=through)
        self.assertExit(cp, 2)
        self.assertFalse(os.path.exists(self.path("ran")))
        # A dry run runs no hook: not refused.
        self.assertExit(self.migrate(mig, "--before-migrate", hook, "--dry-run",
                                     database_url=through), 0)


class BackupHookTest(Base):
    """deploy/hooks/pg-dump-backup.sh as the before-migrate hook: its dump restores with
    pg_restore into a fresh database as the schema before the migration."""

    def test_backup_restores_to_the_pre_migration_schema(self):
        script = os.path.join(source_dir(), "deploy", "hooks", "pg-dump-backup.sh")
        self.assertTrue(os.access(script, os.X_OK), script)
        files = {"1_accounts.sql": up("CREATE TABLE accounts (id int PRIMARY KEY, name text);\n"
                                      "INSERT INTO accounts VALUES (1, 'ada'), (2, 'alan');\n")}
        mig = temp_migrations(self, files)
        self.assertExit(self.migrate(mig), 0)
        mig.write("2_orders.sql", up("CREATE TABLE orders (id int REFERENCES accounts);\n"
                                     "ALTER TABLE accounts ADD COLUMN email text;\n"))
        backups = os.path.join(self.out.path, "backups")
        cp = self.migrate(mig, "--before-migrate", script, env={"PGBOOT_BACKUP_DIR": backups})
        self.assertExit(cp, 0)
        self.assertTrue(table_exists(self.db, "orders"))
        dumps = os.listdir(backups)
        self.assertEqual(len(dumps), 1, dumps)
        self.assertRegex(dumps[0], r"^%s-\d{8}T\d{6}Z-before-2\.dump$" % re.escape(self.db))
        self.assertIn("pg-dump-backup: wrote", cp.stderr)

        fresh = new_database(self, "restored")
        info = pg()
        restore = subprocess.run(
            [os.path.join(BIN_DIR, "pg_restore"), "--no-owner", "-d", fresh,
             os.path.join(backups, dumps[0])],
            env={"PGHOST": info["host"], "PGPORT": str(info["port"]), "PGUSER": info["user"],
                 "PGPASSWORD": info["password"], "PATH": os.environ["PATH"]},
            capture_output=True, text=True, timeout=60)
        self.assertEqual(restore.returncode, 0, restore.stderr)
        self.assertTrue(table_exists(fresh, "accounts"))
        self.assertFalse(table_exists(fresh, "orders"))
        columns = admin_sql("SELECT string_agg(column_name, ',' ORDER BY ordinal_position) "
                            "FROM information_schema.columns WHERE table_name = 'accounts'", fresh)
        self.assertEqual(columns.strip(), "id,name")
        self.assertEqual(admin_sql("SELECT string_agg(name, ',' ORDER BY id) FROM accounts",
                                   fresh).strip(), "ada,alan")
        self.assertEqual(history(fresh), {"1": "applied"})

    def test_a_failing_backup_applies_nothing(self):
        script = os.path.join(source_dir(), "deploy", "hooks", "pg-dump-backup.sh")
        mig = temp_migrations(self, TWO)
        blocker = self.path("not-a-dir")
        with open(blocker, "w") as f:
            f.write("x")
        cp = self.migrate(mig, "--before-migrate", script, env={"PGBOOT_BACKUP_DIR": blocker})
        self.assertExit(cp, 9)
        self.assertEqual(history(self.db), {})


if __name__ == "__main__":
    unittest.main()
