#!/usr/bin/env python3
"""docker-compose.gate.yml for real: app services gate on a one-shot migrator.

The real file plus tests/compose/compose.test.yml and compose.test.migrate.yml
(host networking, the local images); the test adds, in the merged
configuration, the worker's own port and one directory of migrations mounted
into the migrator and both app services alike, holding the repository's
migrations plus a slow one (pg_sleep), so that the app services are certainly
up while the migrator still works. Nothing orders them: the file has no
depends_on on the migrator. Both app services log gate.waiting, open after the
migrator's last commit and serve the migrated rows. By hand:

    python3 tests/compose/test_compose_gate.py -v
"""

import os
import unittest

from harness.case import PgbootTestCase
from harness.files import temp_dir
from harness.logs import events
from harness.proc import wait_until
from harness.server import free_port
import compose_tools

setUpModule = compose_tools.setUpModule  # the images, one podman service
tearDownModule = compose_tools.tearDownModule
ORDERS = compose_tools.ORDERS
SLOW = "20260101000300_slow.sql"


class ComposeGateTest(PgbootTestCase):

    def test_apps_gate_on_the_one_shot_migrator_without_depends_on(self):
        d = temp_dir(self)
        src = os.path.join(compose_tools.SOURCE_DIR, "migrations")
        for name in sorted(os.listdir(src)):
            with open(os.path.join(src, name), "rb") as f:
                d.write(name, f.read(), mode=0o644)
        d.write(SLOW, "-- migrate:up\nSELECT pg_sleep(4);\n-- migrate:down\n", mode=0o644)
        os.chmod(str(d), 0o755)  # read by uid 65532 inside the containers
        versions = compose_tools.repo_versions() + [SLOW.split("_")[0]]

        project = compose_tools.Project(self, compose_tools.GATE_FILES)
        worker_port = free_port()

        def edit(cfg):
            services = cfg["services"]
            self.assertEqual(sorted(services), ["app", "migrate", "postgres", "worker"])
            for name in ("app", "worker", "migrate"):
                self.assertNotIn("depends_on", services[name], "nothing orders them")
            for name in ("app", "worker"):
                env = services[name]["environment"]
                self.assertEqual(env["PGBOOT_WAIT_FOR_MIGRATIONS"], "true")
                self.assertNotIn("RUN_MIGRATIONS", env)
            worker = services["worker"]
            worker["network_mode"] = "host"
            worker["image"] = services["app"]["image"]
            worker["environment"]["PORT"] = str(worker_port)
            worker.pop("ports", None)
            services["migrate"].setdefault("volumes", []).append("%s:/migrations:ro" % d)
            for name in ("app", "worker"):
                services[name].setdefault("volumes", []).append("%s:/app/migrations:ro" % d)

        project.make_runnable(edit)
        up = project.up()
        self.assertEqual(up.returncode, 0, up.stdout + up.stderr)

        # `up -d` returns once the containers run: nothing waits for the migrator.
        migrate = wait_until(lambda: (lambda st: st if st["Status"] == "exited" else None)(
            project.state("migrate")), 120, "the migrator exited")
        migrate_log = project.logs("migrate")
        self.assertEqual((migrate["Status"], migrate["ExitCode"]), ("exited", 0), migrate_log)
        applied = events(migrate_log, "migration.applied")
        self.assertEqual([e["version"] for e in applied], versions, migrate_log)

        for name, port in (("app", project.app_port), ("worker", worker_port)):
            with self.subTest(name):
                self.assertEqual(compose_tools.http_get(port, "/cgi-bin/orders").strip(), ORDERS)
                log = project.logs(name)
                self.assertEqual(project.state(name)["Status"], "running", log)
                waiting = events(log, "gate.waiting")
                self.assertTrue(waiting, "it started before the migrator finished:\n" + log)
                self.assertGreaterEqual(int(waiting[0]["pending"]), 1, log)
                [opened] = events(log, "gate.open")
                # migration.applied is logged after COMMIT returns, so gate.open may
                # precede it; it cannot precede the start of the last migration.
                started = events(migrate_log, "migration.start")
                self.assertGreaterEqual(opened["ts"], started[-1]["ts"],
                                        "opened before the last migration began")
                self.assertTrue(events(log, "exec"), log)
                self.assertEqual(events(log, "migration.applied"), [], log)
                self.assertNoPassword(log, project.password)
        self.assertEqual(project.psql("SELECT version FROM pgboot_history ORDER BY version")
                         .split(), versions)


if __name__ == "__main__":
    unittest.main()
