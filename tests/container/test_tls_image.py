#!/usr/bin/env python3
"""The TLS cases of integration.test_tls, run by the FROM scratch migration image
(Dockerfile.migration) in podman instead of by the static binary on the host: the image
has no CA bundle, no shell and no libraries, so everything TLS needs must come from the
mounted files and the binary itself.

The certificate directory is mounted read-only at the same path, so the URLs of the
host cases stay valid; its client key is handed to the image's user (65532), since
libpq refuses a key it cannot read or that others can. Promptness ("exit 4 at once")
is measured from pgboot's own log timestamps, not podman's start-up.
"""
import datetime
import os
import time
import unittest

from harness.logs import events
from container import images
from integration import test_tls

IMAGE_USER = 65532


def setUpModule():
    images.ensure_images()


def _ts(event):
    return datetime.datetime.strptime(event["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")


class TlsImageTest(test_tls.TlsTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        os.chown(cls.certs.client_key, IMAGE_USER, IMAGE_USER)

    def wait(self, target, env=None):
        name = images.unique_name("pgboot-tls")
        self.addCleanup(images.remove_container, name)
        cmd = ["run", "--name", name, "--network", "host",
               "-v", "%s:%s:ro" % (self.certs.dir, self.certs.dir)]
        for k, v in (env or {}).items():
            cmd += ["-e", "%s=%s" % (k, v)]
        cmd += [images.MIGRATION_IMAGE, "wait", "--database-url", target] + test_tls.WAIT
        t0 = time.monotonic()
        cp = images.podman(*cmd, check=False, timeout=120)
        logged = events(cp.stderr)
        self.assertTrue(logged, "the image logged nothing:\n" + cp.stderr)
        # pgboot's own time, first log line to last: podman's start-up is not pgboot's.
        cp.elapsed = (_ts(logged[-1]) - _ts(logged[0])).total_seconds()
        cp.wall = time.monotonic() - t0
        return cp


if __name__ == "__main__":
    unittest.main()
