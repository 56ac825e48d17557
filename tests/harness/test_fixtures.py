#!/usr/bin/env python3
"""Smoke tests of the harness's own fixtures (CTest label `harness`): PgBouncer in its
three shapes, the TLS server and its certificates, the fake listeners, and the
sanitizer switches. Each checks the fixture with psql or a socket, the way the suites
built on it will rely on it, plus one pgboot run where the fixture is meant for it.
"""

import contextlib
import io
import os
import shutil
import socket
import subprocess
import unittest

from harness.server import new_cluster, new_database, pg, url
from harness.sql import PsqlSession
from harness.proc import clean_env, run, spawn, wait_until
from harness.case import PgbootTestCase, SANITIZED, skip_loudly, time_limit
from harness.pgbouncer import start_pgbouncer
from harness.tls import make_certs, start_tls_server
from harness.listeners import garbage_listener, silent_listener


def psql(conn, sql, timeout=30):
    """psql -c SQL against a URI: (exit code, stdout stripped, stderr)."""
    p = subprocess.run([os.path.join(pg()["bin_dir"], "psql"), "-X", "-A", "-t", "-c", sql, conn],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, env=clean_env({"PGCONNECT_TIMEOUT": "5"}), timeout=timeout)
    return p.returncode, p.stdout.strip(), p.stderr


class PgBouncerTest(PgbootTestCase):
    def test_transaction_pool_of_one_queues_the_second_client(self):
        db = new_database(self, "bouncer")
        bouncer = start_pgbouncer(self, pool_mode="transaction", default_pool_size=1)
        self.assertEqual(psql(bouncer.url(db), "SELECT current_database()")[:2], (0, db))
        # The first client holds the pool's only server connection inside a transaction.
        holder = PsqlSession(self, db, url=bouncer.url(db))
        holder.execute("BEGIN")
        holder.execute("SELECT 1")
        second = spawn(["-X", "-A", "-t", "-c", "SELECT 2", bouncer.url(db)],
                       binary=os.path.join(pg()["bin_dir"], "psql"), test=self)
        wait_until(lambda: bouncer.cl_waiting(db) == 1, 10, "the second client waits in the pool")
        self.assertIsNone(second.poll(), "it cannot run while the transaction is open")
        holder.execute("COMMIT")
        cp = second.finish(timeout=10)
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout.strip(), "2")
        self.assertEqual(bouncer.cl_waiting(db), 0)
        pools = [p for p in bouncer.show_pools() if p["database"] == db]
        self.assertEqual([p["pool_mode"] for p in pools], ["transaction"])

    def test_transaction_pool_of_five_and_session_pooling_with_extra_lines(self):
        db = new_database(self, "bouncer")
        for mode, size in (("transaction", 5), ("session", 5)):
            with self.subTest(mode=mode):
                bouncer = start_pgbouncer(self, pool_mode=mode, default_pool_size=size,
                                          extra=["max_client_conn = 77"])
                config = {r["key"]: r["value"] for r in bouncer.admin("SHOW CONFIG")}
                self.assertEqual(config["default_pool_size"], str(size))
                self.assertEqual(config["max_client_conn"], "77")
                self.assertEqual(config["pool_mode"], mode)
                self.assertEqual(psql(bouncer.url(db), "SELECT 1")[:2], (0, "1"))

    def test_restart_and_stop_by_pidfile(self):
        db = new_database(self, "bouncer")
        bouncer = start_pgbouncer(self)
        first = bouncer.pid()
        bouncer.restart()
        self.assertNotEqual(bouncer.pid(), first)
        self.assertFalse(os.path.exists("/proc/%d" % first), "the old process is gone")
        self.assertEqual(psql(bouncer.url(db), "SELECT 1")[:2], (0, "1"))
        second = bouncer.pid()
        bouncer.destroy()
        self.assertFalse(os.path.exists("/proc/%d" % second))
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", bouncer.port), timeout=2).close()

    def test_in_front_of_a_cluster_of_its_own(self):
        cluster = new_cluster(self)
        cluster.start()
        bouncer = start_pgbouncer(self, backend=cluster, extra=["server_login_retry = 1"])
        sql = "SELECT current_setting('port')"
        self.assertEqual(psql(bouncer.url("postgres"), sql)[:2], (0, str(cluster.port)))
        # With the server gone, PgBouncer keeps a new client waiting, and serves it once
        # the server is back.
        cluster.stop()
        waiter = spawn(["-X", "-A", "-t", "-c", sql, bouncer.url("postgres")],
                       binary=os.path.join(pg()["bin_dir"], "psql"), test=self)
        wait_until(lambda: bouncer.cl_waiting("postgres") == 1, 10, "the client waits")
        cluster.start()
        cp = waiter.finish(timeout=30)
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout.strip(), str(cluster.port))

    def test_wrong_password_is_refused(self):
        bouncer = start_pgbouncer(self)
        rc, _, err = psql(bouncer.url("postgres", password="not-it"), "SELECT 1")
        self.assertNotEqual(rc, 0)
        self.assertIn("password authentication failed", err)


class TlsTest(PgbootTestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = make_certs(None)
        cls.addClassCleanup(shutil.rmtree, cls.certs.dir, True)
        cls.server = start_tls_server(None, cls.certs)
        cls.addClassCleanup(cls.server.destroy)

    def test_certificates_chain_to_their_ca_only(self):
        c = self.certs
        for cert in (c.server_cert, c.client_cert):
            ok = subprocess.run(["openssl", "verify", "-CAfile", c.ca_cert, cert],
                                capture_output=True, text=True)
            self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
            bad = subprocess.run(["openssl", "verify", "-CAfile", c.wrong_ca_cert, cert],
                                 capture_output=True, text=True)
            self.assertNotEqual(bad.returncode, 0, "the wrong CA must not verify %s" % cert)

    def test_hostssl_user_over_tls_only(self):
        s = self.server
        sql = "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        self.assertEqual(psql(s.ssl_url(), sql)[:2], (0, "%s|t" % s.ssl_user))
        rc, _, err = psql(s.url(user=s.ssl_user, password=s.ssl_password,
                                params={"sslmode": "disable"}), "SELECT 1")
        self.assertNotEqual(rc, 0)
        self.assertIn("no encryption", err)
        rc, _, err = psql(s.ssl_url(sslrootcert=self.certs.wrong_ca_cert), "SELECT 1")
        self.assertNotEqual(rc, 0)
        self.assertIn("certificate verify failed", err)

    def test_cert_user_logs_in_with_its_certificate(self):
        s = self.server
        sql = "SELECT current_user, ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        self.assertEqual(psql(s.cert_url(), sql)[:2],
                         (0, "%s|t|/CN=%s" % (s.cert_user, s.cert_user)))
        rc, _, err = psql(s.url(user=s.cert_user, password="", host="localhost",
                                params={"sslmode": "require"}), "SELECT 1")
        self.assertNotEqual(rc, 0, "without a client certificate the cert user is refused")

    def test_pgboot_waits_over_tls(self):
        for name, target in (("ssl_user", self.server.ssl_url()),
                             ("cert_user", self.server.cert_url())):
            with self.subTest(name):
                cp = run(["wait", "--database-url", target, "--wait-timeout", "10s"])
                self.assertExit(cp, 0)
                self.assertRegex(cp.stderr, r"\bwait\.ready\b")


class ListenerTest(PgbootTestCase):
    def test_silent_listener_accepts_and_never_answers(self):
        lst = silent_listener(self)
        with socket.create_connection(("127.0.0.1", lst.port), timeout=5) as s:
            s.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")  # an SSLRequest
            s.settimeout(0.5)
            with self.assertRaises(socket.timeout):
                s.recv(1)
        wait_until(lambda: lst.accepted == 1, 5, "the connection was accepted")

    def test_garbage_listener_answers_garbage_then_eof(self):
        lst = garbage_listener(self)
        with socket.create_connection(("127.0.0.1", lst.port), timeout=5) as s:
            got = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        self.assertEqual(got, lst.payload)
        rc, _, err = psql(url("postgres", port=lst.port), "SELECT 1")
        self.assertNotEqual(rc, 0)
        self.assertTrue(err.strip(), "psql names the broken answer")

    def test_pgboot_wait_on_a_silent_port_ends_at_its_deadline(self):
        lst = silent_listener(self)
        cp = run(["wait", "--database-url", url("postgres", port=lst.port),
                  "--wait-timeout", "1s"], timeout=30)
        self.assertNotEqual(cp.returncode, 0)
        self.assertGreaterEqual(lst.accepted, 1)


class SanitizedSwitchTest(unittest.TestCase):
    def test_time_limit_triples_only_when_sanitized(self):
        self.assertEqual(time_limit(2), 6 if SANITIZED else 2)
        self.assertEqual(SANITIZED, os.environ.get("PGBOOT_SANITIZED") == "1")

    def test_skip_loudly_raises_skiptest_with_a_banner(self):
        banner = io.StringIO()
        with contextlib.redirect_stderr(banner), self.assertRaises(unittest.SkipTest):
            skip_loudly(self, "the reason")
        self.assertIn("SKIPPED %s: the reason" % self.id(), banner.getvalue())
        self.assertIn("!" * 72, banner.getvalue())


if __name__ == "__main__":
    unittest.main()
