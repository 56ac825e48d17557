#!/usr/bin/env python3
"""Packaging (SPEC §8): the binary is static and small, and it works in a root
that holds nothing but itself and an /etc/hosts — a faithful `FROM scratch`
(a container runtime always provides /etc/hosts)."""

import os
import shutil
import subprocess
import sys
import unittest

from harness.server import new_database, pg, url
from harness.proc import is_root, pgboot_bin, run
from harness.files import temp_dir
from harness.case import PgbootTestCase, skip_if_sanitized, skip_loudly


MAX_STRIPPED_BYTES = 8 * 1000 * 1000  # "under 8 MB", read strictly


class StaticBinaryTest(PgbootTestCase):
    def setUp(self):
        skip_if_sanitized(self, "a static binary under 8 MB")

    def test_file_says_statically_linked(self):
        out = subprocess.run(["file", "-b", pgboot_bin()], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, check=True).stdout
        self.assertIn("statically linked", out,
                      "not a -static (non-PIE) binary; is PGBOOT_STATIC=ON? file says: " + out)
        self.assertNotIn("dynamically linked", out)

    def test_stripped_size_under_8mb(self):
        d = temp_dir(self)
        copy = os.path.join(d.path, "pgboot")
        shutil.copy2(pgboot_bin(), copy)
        subprocess.run(["strip", copy], check=True)
        size = os.path.getsize(copy)
        sys.stderr.write("stripped size: %d bytes (%.2f MB)\n" % (size, size / 1e6))
        self.assertLess(size, MAX_STRIPPED_BYTES)


class ScratchRootTest(PgbootTestCase):
    """chroot into a directory holding only /pgboot and /etc/hosts."""

    def setUp(self):
        skip_if_sanitized(self, "a static binary that runs alone in a chroot")
        if not is_root():
            skip_loudly(self, "chroot needs root; run this suite as root to check "
                        "that the binary works FROM scratch")
        self.root = temp_dir(self)
        os.chmod(self.root.path, 0o755)
        shutil.copy2(pgboot_bin(), os.path.join(self.root.path, "pgboot"))
        self.root.write("etc/hosts", "127.0.0.1 localhost\n")
        self.assertEqual(sorted(os.listdir(self.root.path)), ["etc", "pgboot"])

    def chroot_run(self, args, **kw):
        return run([self.root.path, "/pgboot"] + list(args), binary=shutil.which("chroot"), **kw)

    def test_version_in_scratch_root(self):
        cp = self.chroot_run(["--version"])
        self.assertExit(cp, 0)
        self.assertRegex(cp.stdout, r"^pgboot \d+\.\d+\.\d+")

    def test_wait_resolves_localhost_in_scratch_root(self):
        db = new_database(self)
        target = url(db, host="localhost")
        self.assertIn("@localhost:%d/" % pg()["port"], target)
        cp = self.chroot_run(["wait", "--database-url", target, "--wait-timeout", "10s"])
        self.assertExit(cp, 0)
        self.assertRegex(cp.stderr, r"\bwait\.ready\b")

    def test_unresolvable_host_is_transient_in_scratch_root(self):
        # No DNS in the root: a name that does not resolve is retried, then exit 3.
        db = new_database(self)
        target = url(db, host="db.invalid")
        cp = self.chroot_run(["wait", "--database-url", target, "--wait-timeout", "500ms"])
        self.assertExit(cp, 3)


if __name__ == "__main__":
    unittest.main()
