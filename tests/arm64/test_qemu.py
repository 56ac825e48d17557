#!/usr/bin/env python3
"""The linux/arm64 release binary, run on this amd64 machine under qemu-user.

scripts/build-static.sh cross-builds it (CTest fixture arm64.build, into
BUILD/arm64); PGBOOT_ARM64_BIN is the stripped binary. Each case runs
`qemu-aarch64-static PGBOOT_ARM64_BIN ...` directly (no binfmt_misc needed)
against the shared test server, as the amd64 suites do with the host binary:

  - what it is: `file` says "ARM aarch64 ... statically linked", under 8 MB;
  - --version: the same version and commit as the host build of the same tree;
  - wait, migrate, status, `-- APP` and --init;
  - the SQLSTATE reader compiled against the arm64 libpq-int.h: a missing
    database and a wrong password are fatal at once (exit 4), which only a
    correctly read last_sqlstate gives (a misread one would be retried);
  - SIGTERM while waiting: signalfd and poll work under the emulator.

qemu-user runs an APP that pgboot execs natively (the kernel runs the amd64
/bin/sh), so `-- APP` works without emulating the app.
"""

import json
import re
import os
import shutil
import signal
import subprocess
import time
import unittest

from harness.case import PgbootTestCase, skip_loudly
from harness.files import temp_migrations, up
from harness.logs import events
from harness.proc import run, source_dir, spawn, wait_until
from harness.server import closed_url, new_database, url
from harness.sql import admin_sql

QEMU = shutil.which("qemu-aarch64-static")
BIN = os.environ.get("PGBOOT_ARM64_BIN", "")


def arm64(args, **kw):
    """`qemu-aarch64-static BIN ARGS` -> CompletedProcess."""
    return run([BIN] + [str(a) for a in args], binary=QEMU, **kw)


class Arm64Case(PgbootTestCase):

    def setUp(self):
        if not QEMU:
            skip_loudly(self, "qemu-aarch64-static missing (Debian package qemu-user-static)")
        if not os.path.isfile(BIN):
            self.fail("PGBOOT_ARM64_BIN=%r is not a file: the arm64.build fixture failed?" % BIN)

    def env(self, db="postgres", **extra):
        e = {"DATABASE_URL": url(db), "PGBOOT_WAIT_TIMEOUT": "30s"}
        e.update(extra)
        return e


class Binary(Arm64Case):

    def test_file_says_arm64_statically_linked_under_8_mb(self):
        desc = subprocess.run(["file", "-b", BIN], stdout=subprocess.PIPE, text=True,
                              check=True).stdout
        self.assertIn("ARM aarch64", desc)
        self.assertIn("statically linked", desc)
        self.assertIn("stripped", desc)
        size = os.path.getsize(BIN)
        self.assertLess(size, 8 * 1000 * 1000, "%d bytes" % size)
        print("\narm64 binary: %d bytes, %s" % (size, desc.strip()))

    def test_version_matches_the_host_build_and_commit_is_head(self):
        cp = arm64(["--version"])
        self.assertExit(cp, 0)
        m = re.match(r"^(pgboot \d+\.\d+\.\d+) \(commit ([0-9a-f]{40})(-dirty)?\)\n$", cp.stdout)
        self.assertTrue(m, cp.stdout)
        host = run(["--version"])
        self.assertEqual(m.group(1), host.stdout.split(" (")[0])
        # The arm64.build fixture built it in this run, from this tree's HEAD.
        head = subprocess.run(["git", "-C", source_dir(), "rev-parse", "HEAD"],
                              stdout=subprocess.PIPE, text=True).stdout.strip()
        self.assertEqual(m.group(2), head)


class Commands(Arm64Case):

    def test_wait(self):
        db = new_database(self)
        cp = arm64(["wait"], env=self.env(db))
        self.assertExit(cp, 0)
        self.assertEqual(len(events(cp.stderr, "wait.ready")), 1, cp.stderr)

    def test_migrate_then_status(self):
        db = new_database(self)
        d = temp_migrations(self, {
            "1_orders.sql": up("CREATE TABLE orders (id int PRIMARY KEY, note text);\n"),
            "2_seed.sql": up("INSERT INTO orders VALUES (1, 'ärm64');\n"),
        })
        env = self.env(db, PGBOOT_MIGRATIONS_DIR=d.path)
        cp = arm64(["migrate"], env=env)
        self.assertExit(cp, 0)
        self.assertEqual([e["version"] for e in events(cp.stderr, "migration.applied")], ["1", "2"])
        self.assertEqual(admin_sql("SELECT note FROM orders", db).strip(), "ärm64")
        cp = arm64(["status", "--output", "json"], env=env)
        self.assertExit(cp, 0)
        st = json.loads(cp.stdout)
        self.assertEqual([(m["version"], m["state"]) for m in st["migrations"]],
                         [("1", "applied"), ("2", "applied")])
        self.assertEqual((st["pending"], st["applied"]), (0, 2))
        # The checksums are the host build's: same files, same bytes hashed.
        host = run(["status", "--output", "json"], env=env)
        self.assertEqual([m["checksum"] for m in json.loads(host.stdout)["migrations"]],
                         [m["checksum"] for m in st["migrations"]])

    def test_run_app_in_exec_and_init_mode(self):
        db = new_database(self)
        for mode, code in (([], 7), (["--init"], 9)):
            with self.subTest(mode=mode):
                cp = arm64(mode + ["--", "sh", "-c", "echo app-ran; exit %d" % code],
                           env=self.env(db))
                self.assertExit(cp, code)
                self.assertEqual(cp.stdout, "app-ran\n")
                self.assertEqual(len(events(cp.stderr, "init.start" if mode else "exec")), 1)


class Readiness(Arm64Case):

    def test_missing_database_and_wrong_password_are_fatal_at_once(self):
        for what, target in (("missing database", url("no_such_db_arm64")),
                             ("wrong password", url("postgres", password="wrong"))):
            with self.subTest(what):
                cp = arm64(["wait"], env=self.env(DATABASE_URL=target, PGBOOT_LOG_LEVEL="debug"))
                self.assertExit(cp, 4)
                # 30 s wait timeout: a retried (misclassified) answer would take all of it.
                self.assertLess(cp.elapsed, 10, cp.stderr)

    def test_sigterm_while_waiting(self):
        env = self.env(DATABASE_URL=closed_url(), PGBOOT_WAIT_TIMEOUT="60s",
                       PGBOOT_LOG_LEVEL="debug")
        p = spawn([BIN, "wait"], env=env, binary=QEMU, test=self)
        p.wait_for_line(r"wait\.retry", timeout=30)
        t0 = time.monotonic()
        os.kill(p.pid, signal.SIGTERM)
        cp = p.finish(timeout=10)
        self.assertExit(cp, 143)
        self.assertLess(p.exited_at - t0, 2, cp.stderr)


if __name__ == "__main__":
    unittest.main()
