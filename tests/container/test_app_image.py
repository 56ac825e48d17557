#!/usr/bin/env python3
"""The example app images (examples/app): pgboot as ENTRYPOINT in front of a real
program that reads through the same database, and what `podman stop` does to it.

  exec  pgboot execs /app/serve (PID 1, traps SIGTERM): stops at once, exit 0
  init  pgboot --init in front of busybox httpd: stops at once, exit 143
  the same httpd exec'd as PID 1 ignores SIGTERM: stop waits the full timeout, 137

Run by hand like test_migration_image.py.
"""

import time
import unittest
import urllib.error
import urllib.request

from harness.server import free_port, new_database, url
from harness.sql import admin_sql
from harness.logs import events
from harness.case import PgbootTestCase
from container import images


STOP_TIMEOUT = 3  # podman stop -t: the grace period before SIGKILL (10 s by default)
PROMPT = 2.0      # a stop that the app answers takes well under this


def setUpModule():
    images.ensure_images()


class AppImageTest(PgbootTestCase):

    def start(self, image, db, port, entrypoint=None, cmd=()):
        """podman run -d with RUN_MIGRATIONS=true on a fresh database; returns the name
        once the app answers GET /cgi-bin/orders (its body is in self.body)."""
        name = images.unique_name("pgboot-app")
        self.addCleanup(images.remove_container, name)
        args = ["run", "-d", "--name", name, "--network", "host",
                "-e", "DATABASE_URL=" + url(db), "-e", "RUN_MIGRATIONS=true",
                "-e", "PORT=%d" % port]
        if entrypoint:
            args += ["--entrypoint", entrypoint]
        images.podman(*(args + [image] + list(cmd)))
        app_url = "http://127.0.0.1:%d/cgi-bin/orders" % port
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(app_url, timeout=5) as r:
                    self.body = r.read().decode()
                    self.assertEqual(r.status, 200)
                    return name
            except (urllib.error.URLError, ConnectionError):
                pass
            state = images.container_state(name)
            if state["Status"] != "running" or time.monotonic() > deadline:
                self.fail("app never answered %s (state %s, exit %s):\n%s"
                          % (app_url, state["Status"], state["ExitCode"], images.logs(name)))
            time.sleep(0.1)

    def pid1(self, name):
        return images.podman("exec", name, "cat", "/proc/1/comm").stdout.strip()

    def assertMigratedAndServed(self, name, db):
        out = images.logs(name)
        self.assertEqual(len(events(out, "migration.applied")), 3, out)
        self.assertEqual(admin_sql("SELECT count(*) FROM pgboot_history", db).strip(), "3")
        self.assertIn("ada@example.com 4200 paid", self.body)
        self.assertNoPassword(out)

    def stop(self, name):
        took = images.timed_stop(name, STOP_TIMEOUT)
        state = images.container_state(name)
        return took, state["ExitCode"]

    def test_exec_mode_app_handles_sigterm(self):
        db = new_database(self)
        name = self.start(images.APP_EXEC_IMAGE, db, free_port())
        self.assertMigratedAndServed(name, db)
        self.assertEqual(self.pid1(name), "serve", "pgboot exec'd the app: it is PID 1")
        took, code = self.stop(name)
        self.assertLess(took, PROMPT, images.logs(name))
        self.assertEqual(code, 0, images.logs(name))
        self.assertIn("app: SIGTERM, stopping", images.logs(name))

    def test_init_mode_busybox_httpd_stops_promptly(self):
        db = new_database(self)
        port = free_port()
        name = self.start(images.APP_INIT_IMAGE, db, port,
                          cmd=["busybox", "httpd", "-f", "-p", str(port), "-h", "/app/www"])
        self.assertMigratedAndServed(name, db)
        self.assertEqual(self.pid1(name), "pgboot", "pgboot --init stays PID 1")
        took, code = self.stop(name)
        self.assertLess(took, PROMPT, images.logs(name))
        self.assertEqual(code, 143, "httpd's own end (SIGTERM), passed on:\n" + images.logs(name))

    def test_exec_mode_busybox_httpd_takes_the_full_stop_timeout(self):
        # What --init avoids: httpd as PID 1 has no SIGTERM handler, so the kernel
        # drops the signal and podman waits out the timeout, then SIGKILLs.
        db = new_database(self)
        port = free_port()
        name = self.start(images.APP_INIT_IMAGE, db, port, entrypoint='["pgboot", "--"]',
                          cmd=["busybox", "httpd", "-f", "-p", str(port), "-h", "/app/www"])
        self.assertMigratedAndServed(name, db)
        self.assertEqual(self.pid1(name), "busybox")
        took, code = self.stop(name)
        self.assertGreaterEqual(took, STOP_TIMEOUT, images.logs(name))
        self.assertEqual(code, 137, images.logs(name))


if __name__ == "__main__":
    unittest.main()
