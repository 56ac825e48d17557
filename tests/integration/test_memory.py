#!/usr/bin/env python3
"""Peak memory (docs/reference.md, "Inputs pgboot refuses"): migrate, migrate --dry-run,
status and validate stay below the total size of the migration files plus the
largest one plus 16 MB. Measured as the larger of /proc/PID/status VmHWM (read while
pgboot runs) and wait4's ru_maxrss (the peak, read when it exits), with the release
build's static binary; a sanitizer build cannot have this property and skips."""
import os
import unittest

from harness.case import PgbootTestCase, skip_if_sanitized
from harness.files import temp_dir
from harness.memory import MB, peak_rss, write_single_statement
from harness.server import new_database, url

COMMANDS = [("validate", ["validate"]), ("status", ["status"]),
            ("dry-run", ["migrate", "--dry-run"]), ("migrate", ["migrate"])]

class PeakMemory(PgbootTestCase):
    def setUp(self):
        skip_if_sanitized(self, "peak RSS")

    def measure(self, files, commands):
        """Writes `files` ({name: size in bytes, 0 for a one-line migration}) and runs each
        of `commands` (names in COMMANDS, in that order) against a new database.
        Returns {command: peak bytes} and the bound."""
        mig = os.path.join(str(temp_dir(self)), "migrations")
        os.makedirs(mig)
        for name, size in files.items():
            if size:
                write_single_statement(os.path.join(mig, name), size)
            else:
                with open(os.path.join(mig, name), "w") as f:
                    f.write("-- migrate:up\nSELECT 1;\n")
        sizes = [os.path.getsize(os.path.join(mig, n)) for n in files]
        bound = sum(sizes) + max(sizes) + 16 * MB
        db = new_database(self)
        base = ["--database-url", url(db), "--migrations-dir", mig, "--wait-timeout", "30s"]
        peaks = {}
        for name, args in COMMANDS:
            if name in commands:
                code, peaks[name], err = peak_rss(args + base)
                self.assertEqual(code, 0, "%s: %s" % (name, err[-2000:]))
        print("\npeak RSS of %s: %s; bound %.0f MB" % (
            self.id().rsplit(".", 1)[-1],
            ", ".join("%s %.0f MB" % (k, v / MB) for k, v in peaks.items()), bound / MB))
        return peaks, bound

    def assertWithin(self, peaks, bound):
        for name, peak in peaks.items():
            with self.subTest(name):
                self.assertLess(peak, bound, "%s peaked at %.0f MB, bound %.0f MB" %
                                (name, peak / MB, bound / MB))

    def two_100_mb_files_and_1000_small_ones(self):
        files = {"%d_small.sql" % (i + 10): 0 for i in range(1000)}
        files.update({"1_big.sql": 100 * MB, "2_big.sql": 100 * MB})
        return files

    def test_one_200_mb_file_validate_status_dry_run(self):
        self.assertWithin(*self.measure({"1_big.sql": 200 * MB},
                                        ["validate", "status", "dry-run"]))

    def test_two_100_mb_files_and_1000_small_ones_validate_status_dry_run(self):
        self.assertWithin(*self.measure(self.two_100_mb_files_and_1000_small_ones(),
                                        ["validate", "status", "dry-run"]))

    # Applying holds the file and libpq's output buffer, nothing more: the
    # statements go to libpq in place (SectionRunner's TerminatedStatements) and
    # libpq's duplicate of the text is skipped (src/static/pq_query_copy.c).
    def test_one_200_mb_file_migrate(self):
        self.assertWithin(*self.measure({"1_big.sql": 200 * MB}, ["migrate"]))

    def test_two_100_mb_files_and_1000_small_ones_migrate(self):
        self.assertWithin(*self.measure(self.two_100_mb_files_and_1000_small_ones(), ["migrate"]))


if __name__ == "__main__":
    unittest.main()
