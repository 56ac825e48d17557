#!/usr/bin/env python3
"""The FROM scratch migration image (Dockerfile.migration) in a real OCI runtime.

podman (runc, --network host) against the harness's PostgreSQL; the image is built
once per run by images.py (the CTest fixture container_images). By hand:

    export PYTHONPATH=$PWD/tests; python3 -m harness.cluster start /tmp/st
    PGBOOT_TEST_STATE=/tmp/st python3 tests/container/test_migration_image.py -v
"""

import io
import os
import subprocess
import tarfile
import tempfile
import time
import unittest

from harness.server import PASSWORD, closed_url, new_database, pg, url
from harness.sql import admin_sql
from harness.proc import Spawned, source_dir
from harness.files import temp_dir
from harness.logs import events
from harness.case import PgbootTestCase
from container import images

HERE = os.path.dirname(os.path.abspath(__file__))

IMAGE = images.MIGRATION_IMAGE


def setUpModule():
    images.ensure_images()


def repo_migrations():
    d = os.path.join(source_dir(), "migrations")
    return sorted(f for f in os.listdir(d) if f.endswith(".sql") and not f.startswith("."))


def canonical_versions():
    return sorted((f.split("_", 1)[0].lstrip("0") or "0") for f in repo_migrations())


class MigrationImageTest(PgbootTestCase):

    def container(self, prefix="pgboot-mig"):
        name = images.unique_name(prefix)
        self.addCleanup(images.remove_container, name)
        return name

    def run_image(self, env, extra=(), args=(), timeout=120):
        """podman run (attached, removed afterwards) -> CompletedProcess with .elapsed."""
        name = self.container()
        cmd = ["run", "--name", name, "--network", "host"]
        for k, v in env.items():
            cmd += ["-e", "%s=%s" % (k, v)]
        t0 = time.monotonic()
        p = images.podman(*(cmd + list(extra) + [IMAGE] + list(args)), check=False, timeout=timeout)
        p.elapsed = time.monotonic() - t0
        return p

    def history(self, db):
        rows = admin_sql("SELECT version, status, batch FROM pgboot_history ORDER BY version", db)
        return [tuple(r.split("|")) for r in rows.split()]

    # ---- the image itself ----------------------------------------------------------

    def test_image_is_scratch_small_nonroot(self):
        info = images.image_inspect(IMAGE)
        # One layer, built from scratch: nothing of the build stage's Debian.
        self.assertEqual(len(info["RootFS"]["Layers"]), 1, info["RootFS"])
        self.assertLess(info["Size"], 10 * 1000 * 1000, "image is %d bytes" % info["Size"])
        cfg = info["Config"]
        self.assertEqual(cfg.get("User"), "65532:65532")
        self.assertEqual(cfg.get("Entrypoint"), ["/pgboot"])
        self.assertEqual(cfg.get("Cmd"), ["migrate"])
        labels = cfg.get("Labels") or {}
        self.assertEqual(labels.get("org.opencontainers.image.version"), images.project_version())
        for key in ("source", "licenses", "revision", "title"):
            self.assertTrue(labels.get("org.opencontainers.image." + key), "label %s: %s" % (key, labels))

        # The whole filesystem: the binary, the migrations and the passwd/group
        # entries that name uid 65532; nothing else (no shell, no libc).
        name = self.container("pgboot-exp")
        images.podman("create", "--name", name, IMAGE)
        tar_bytes = subprocess.run(["podman", "export", name], env=images.podman_env(),
                                   stdout=subprocess.PIPE, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tf:
            members = {m.name.lstrip("./").rstrip("/"): m for m in tf.getmembers()}
            files = {n for n, m in members.items() if not m.isdir()}
            binary = tf.extractfile(members["pgboot"]).read()
        self.assertEqual(files, {"pgboot", "etc/passwd", "etc/group"}
                         | {"migrations/" + f for f in repo_migrations()})
        self.assertTrue(members["pgboot"].mode & 0o111)
        self.assertEqual(members["pgboot"].uid, 0, "files are root-owned, read-only for 65532")
        with tempfile.NamedTemporaryFile() as f:
            f.write(binary)
            f.flush()
            out = subprocess.run(["file", "-b", f.name], stdout=subprocess.PIPE, text=True).stdout
        self.assertIn("statically linked", out)

        p = images.podman("run", "--rm", "--entrypoint", "/bin/sh", IMAGE, "-c", "true", check=False)
        self.assertNotEqual(p.returncode, 0, "a shell ran inside the image")
        self.assertIn("/bin/sh", p.stderr)

    def test_runs_as_65532_and_answers_sigterm_while_waiting(self):
        name = self.container()
        images.podman("run", "-d", "--name", name, "--network", "host",
                      "-e", "DATABASE_URL=" + closed_url(), IMAGE, "wait", "--wait-timeout", "60s")
        pid = images.container_state(name)["Pid"]
        with open("/proc/%d/status" % pid) as f:
            status = dict(l.split(":", 1) for l in f if ":" in l)
        self.assertEqual(status["Uid"].split()[:2], ["65532", "65532"])
        self.assertEqual(status["Gid"].split()[:2], ["65532", "65532"])
        took = images.timed_stop(name, 10)
        self.assertLess(took, 2.0, "pgboot as PID 1 must end on SIGTERM at once")
        self.assertEqual(images.container_state(name)["ExitCode"], 143, images.logs(name))

    def test_url_without_user_uses_nonroot(self):
        # libpq's default user is the OS user's name: the image's /etc/passwd must
        # name uid 65532, or libpq fails with "could not look up local user ID".
        db = new_database(self)
        p = self.run_image({"DATABASE_URL": "postgresql://%s:%s/%s" % (pg()["host"],
                                                                       pg()["port"], db),
                            "PGPASSWORD": "Wr0ng-Pw!x"})
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertRegex(p.stderr, r'for user \\?"nonroot')
        self.assertLess(p.elapsed, 20)

    # ---- as a one-shot migration job ------------------------------------------------------

    def test_one_shot_migrate(self):
        db = new_database(self)
        p = self.run_image({"DATABASE_URL": url(db)})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual([(v, s) for v, s, _ in self.history(db)],
                         [(v, "applied") for v in canonical_versions()])
        self.assertEqual(admin_sql("SELECT email FROM users", db).split(), ["ada@example.com"])
        self.assertEqual(len(events(p.stderr, "migration.applied")), len(repo_migrations()))
        self.assertNoPassword(p.stdout + p.stderr)

        again = self.run_image({"DATABASE_URL": url(db)})
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(events(again.stderr, "migration.applied"), [])

    def test_four_containers_together_apply_each_version_once(self):
        db = new_database(self)
        # Hold pgboot's migration lock so the four are certainly waiting for it at
        # the same time; then let go and let them race.
        info = pg()
        holder = subprocess.Popen(
            [os.path.join(info["bin_dir"], "psql"), "-X", "-A", "-t", "-q", "-h", info["socket_dir"],
             "-p", str(info["port"]), "-U", info["user"], "-d", db],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        self.addCleanup(lambda: (holder.kill(), holder.wait(), holder.stdout.close()))
        holder.stdin.write("SELECT pg_advisory_lock(hashtextextended("
                           "'pgboot:' || quote_ident('public') || '.' || quote_ident('pgboot_history'), 0));\n"
                           "\\echo locked\n")
        holder.stdin.flush()
        self.assertEqual(holder.stdout.readline().strip(), "", "pg_advisory_lock returns void")
        self.assertEqual(holder.stdout.readline().strip(), "locked")

        procs = []
        for i in range(4):
            name = self.container("pgboot-mig%d" % i)
            cmd = ["podman", "run", "--name", name, "--network", "host",
                   "-e", "DATABASE_URL=" + url(db), IMAGE]
            p = Spawned(cmd, env=images.podman_env(), stdin=subprocess.DEVNULL)
            self.addCleanup(p.kill_quietly)
            procs.append(p)
        for p in procs:
            p.wait_for_line(r"lock\.waiting", timeout=60)
        holder.stdin.close()  # ends the session: the lock is released
        holder.wait(30)
        holder.stdout.close()

        results = [p.finish(timeout=120) for p in procs]
        for r in results:
            self.assertEqual(r.returncode, 0, r.stderr)
        appliers = [r for r in results if events(r.stderr, "migration.applied")]
        self.assertEqual(len(appliers), 1, "exactly one container applies:\n" +
                         "\n---\n".join(r.stderr for r in results))

        applied = admin_sql("SELECT version, count(*) FROM pgboot_history_log "
                            "WHERE event = 'applied' GROUP BY version ORDER BY version", db)
        self.assertEqual(applied.split(), ["%s|1" % v for v in canonical_versions()])
        rows = self.history(db)
        self.assertEqual(sorted(v for v, _, _ in rows), canonical_versions())
        self.assertEqual({(s, b) for _, s, b in rows}, {("applied", "1")})

    # ---- failures ------------------------------------------------------------------------

    def test_wrong_password_exit_4_and_termination_log(self):
        db = new_database(self)
        d = temp_dir(self)
        tl = d.write("termination-log", "")
        os.chmod(tl, 0o666)  # written by uid 65532 inside
        wrong = "Wr0ng-Pw!x"
        p = self.run_image({"DATABASE_URL": url(db, password=wrong)},
                           extra=["-v", "%s:/dev/termination-log" % tl])
        self.assertEqual(p.returncode, 4, p.stderr)
        with open(tl) as f:
            reason = f.read()
        self.assertEqual(len(reason.rstrip("\n").splitlines()), 1, repr(reason))
        self.assertIn("password authentication failed", reason)
        self.assertNoPassword(reason, wrong, PASSWORD)
        self.assertNoPassword(p.stdout + p.stderr, wrong, PASSWORD)


if __name__ == "__main__":
    unittest.main()
