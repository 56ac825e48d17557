#!/usr/bin/env python3
"""scripts/release.sh's version check: the version lives only in CMake's project().

The full release (both binaries, both images, dist/) is not run here: it
compiles four times (two binaries, two image builds). These cases exit before
anything is built.
"""

import os
import re
import tempfile
import unittest

from harness.case import PgbootTestCase
from harness.proc import run, source_dir

RELEASE = os.path.join(source_dir(), "scripts", "release.sh")


def project_version():
    with open(os.path.join(source_dir(), "CMakeLists.txt")) as f:
        return re.search(r"^project\(pgboot VERSION ([0-9.]+)", f.read(), re.M).group(1)


class ReleaseVersion(PgbootTestCase):

    def release(self, *args):
        dist = os.path.join(tempfile.mkdtemp(prefix="pgboot-dist-"), "dist")
        cp = run(list(args), binary=RELEASE, env={"PGBOOT_DIST_DIR": dist}, timeout=60)
        return cp, dist

    def test_a_version_other_than_projects_is_exit_2_and_builds_nothing(self):
        v = project_version()
        cp, dist = self.release("9.9.9")
        self.assertExit(cp, 2)
        self.assertIn("9.9.9", cp.stderr)
        self.assertIn(v, cp.stderr)
        self.assertFalse(os.path.exists(dist), "release.sh made %s before refusing" % dist)

    def test_two_arguments_are_a_usage_error(self):
        v = project_version()
        cp, dist = self.release(v, v)
        self.assertExit(cp, 2)
        self.assertIn("usage", cp.stderr)
        self.assertFalse(os.path.exists(dist))

    def test_the_version_has_one_home(self):
        # Dockerfile.migration takes VERSION as a build argument with no default, and no
        # other build file spells the version out.
        v = project_version()
        texts = {}
        for rel in ("Dockerfile.migration", "scripts/release.sh", "scripts/build-static.sh"):
            with open(os.path.join(source_dir(), rel)) as f:
                texts[rel] = f.read()
            self.assertNotIn(v, texts[rel], "%s repeats the version %s" % (rel, v))
        first = next(line for line in texts["Dockerfile.migration"].splitlines()
                     if "ARG VERSION" in line)
        self.assertEqual(first.strip(), "ARG VERSION")


if __name__ == "__main__":
    unittest.main()
