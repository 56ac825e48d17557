"""unittest glue: the TestCase every suite derives from (assertions only; the
helpers are plain functions in the other modules), loud skips, and the time
limits a sanitizer build stretches."""

import os
import sys
import unittest
import urllib.parse

from harness.server import PASSWORD

# Set to 1 by a sanitizer build (see tests/harness/README.md): the binary is many
# times slower and bigger, and is not static.
SANITIZED = os.environ.get("PGBOOT_SANITIZED") == "1"


class PgbootTestCase(unittest.TestCase):
    """A TestCase with pgboot's assertions. Resources come from functions that take
    the test as their first argument (new_database(self), temp_dir(self), ...)."""

    maxDiff = None

    def assertExit(self, cp, code, msg=""):
        """assertEqual on the exit code, showing stdout/stderr when it differs."""
        if cp.returncode != code:
            self.fail("%sexpected exit %d, got %d from %s\n--- stdout ---\n%s\n--- stderr ---\n%s"
                      % (msg + ": " if msg else "", code, cp.returncode, cp.args,
                         cp.stdout, cp.stderr))

    def assertNoPassword(self, text, *passwords):
        """Neither the passwords nor their percent-encoded forms appear in text."""
        for p in passwords or (PASSWORD,):
            for form in {p, urllib.parse.quote(str(p), safe=""), urllib.parse.quote(p)}:
                self.assertNotIn(form, text, "password %r (as %r) leaked:\n%s" % (p, form, text))


def skip_loudly(test, reason):
    """Skips `test` with a banner on stderr, so a skip is never silent in CTest output.
    Call it from a test method or setUp; it raises unittest.SkipTest."""
    sys.stderr.write("\n" + "!" * 72 + "\nSKIPPED %s: %s\n" % (test.id(), reason) + "!" * 72 + "\n")
    raise unittest.SkipTest(reason)


def skip_if_sanitized(test, what):
    """skip_loudly when PGBOOT_SANITIZED=1: for checks a sanitizer build cannot pass by
    design (the static binary, peak RSS), never for behaviour."""
    if SANITIZED:
        skip_loudly(test, "PGBOOT_SANITIZED=1: %s does not hold for a sanitizer build" % what)


def time_limit(seconds):
    """A time bound of a test: `seconds`, tripled under PGBOOT_SANITIZED=1."""
    return seconds * 3 if SANITIZED else seconds
