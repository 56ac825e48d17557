#!/usr/bin/env python3
"""TLS with the static binary against a server with ssl=on (harness.tls): the modes
that work, and the failures no retry can mend, each exit 4 at once with the reason
named instead of retried until --wait-timeout; and client certificate, key or root
files that are configured but missing, which libpq would silently go on without."""
import os
import unittest

from harness.case import PgbootTestCase, time_limit
from harness.files import temp_dir
from harness.logs import events
from harness.proc import run
from harness.server import url
from harness.tls import make_certs, start_tls_server

# Long enough that a retried failure could never pass the promptness bound.
WAIT = ["--wait-timeout", "30s"]


def exit_reason(cp):
    return [e for e in events(cp.stderr) if e["event"] == "exit"][-1]["reason"]


class TlsTest(PgbootTestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = make_certs(None)
        cls.server = start_tls_server(None, cls.certs)
        cls.addClassCleanup(cls.server.destroy)
        import shutil
        cls.addClassCleanup(shutil.rmtree, cls.certs.dir, True)

    def wait(self, target, env=None):
        return run(["wait", "--database-url", target] + WAIT, env=env)

    def assertFatalAtOnce(self, cp, *reason_parts):
        self.assertExit(cp, 4)
        self.assertLess(cp.elapsed, time_limit(3.0), "exit 4 at once, not after retries")
        reason = exit_reason(cp)
        for part in reason_parts:
            self.assertIn(part, reason)
        self.assertFalse([e for e in events(cp.stderr) if e["event"] == "wait.retry"],
                         "no retry for a failure no retry can mend")

    def test_require_verify_ca_and_verify_full_with_the_right_host(self):
        for mode in ("require", "verify-ca", "verify-full"):
            with self.subTest(mode):
                self.assertExit(self.wait(self.server.ssl_url(sslmode=mode)), 0)

    def test_verify_full_with_the_wrong_host_is_fatal(self):
        # Connect to the server's address, but verify the name wrong.example.
        s = self.server
        target = s.url(user=s.ssl_user, password=s.ssl_password, host="wrong.example",
                       params={"hostaddr": "127.0.0.1", "sslmode": "verify-full",
                               "sslrootcert": self.certs.ca_cert})
        self.assertFatalAtOnce(self.wait(target), "does not match host name", "wrong.example")

    def test_a_certificate_from_another_ca_is_fatal(self):
        for mode in ("verify-ca", "verify-full"):
            with self.subTest(mode):
                cp = self.wait(self.server.ssl_url(sslmode=mode,
                                                   sslrootcert=self.certs.wrong_ca_cert))
                self.assertFatalAtOnce(cp, "certificate verify failed")

    def test_require_against_a_server_without_tls_is_fatal(self):
        # The shared server runs without ssl.
        cp = self.wait(url("postgres", params={"sslmode": "require"}))
        self.assertFatalAtOnce(cp, "server does not support SSL, but SSL was required")

    def test_a_missing_root_certificate_file_is_fatal(self):
        missing = os.path.join(self.certs.dir, "absent-root.crt")
        for mode in ("require", "verify-ca", "verify-full"):
            with self.subTest(mode):
                cp = self.wait(self.server.ssl_url(sslmode=mode, sslrootcert=missing))
                self.assertFatalAtOnce(cp, "sslrootcert file " + missing, "does not exist")
        # No sslrootcert at all: libpq's default ~/.postgresql/root.crt is missing.
        home = temp_dir(self)
        s = self.server
        target = s.url(user=s.ssl_user, password=s.ssl_password, host="localhost",
                       params={"sslmode": "verify-full"})
        cp = self.wait(target, env={"HOME": str(home)})
        self.assertFatalAtOnce(cp, "root certificate file")

    def test_client_certificate_login(self):
        cp = self.wait(self.server.cert_url())
        self.assertExit(cp, 0)
        env = {"PGSSLCERT": self.certs.client_cert, "PGSSLKEY": self.certs.client_key}
        s = self.server
        target = s.url(user=s.cert_user, password="", host="localhost",
                       params={"sslmode": "verify-full", "sslrootcert": self.certs.ca_cert})
        self.assertExit(self.wait(target, env=env), 0)

    def test_a_missing_client_certificate_or_key_file_is_fatal(self):
        missing = os.path.join(self.certs.dir, "absent-client.crt")
        cp = self.wait(self.server.cert_url(sslcert=missing))
        self.assertFatalAtOnce(cp, "sslcert file " + missing, "from the connection string")
        cp = self.wait(self.server.cert_url(sslkey=missing))
        self.assertFatalAtOnce(cp, "sslkey file " + missing)
        # Named by the environment, as libpq reads it.
        s = self.server
        target = s.url(user=s.cert_user, password="", host="localhost",
                       params={"sslmode": "verify-full", "sslrootcert": self.certs.ca_cert})
        cp = self.wait(target, env={"PGSSLCERT": missing, "PGSSLKEY": self.certs.client_key})
        self.assertFatalAtOnce(cp, "sslcert file " + missing, "environment PGSSLCERT")


if __name__ == "__main__":
    unittest.main()
