#!/usr/bin/env python3
"""docker-compose.yml for real: docker-compose 1.29 through podman's socket, offline.

The real file plus tests/compose/compose.test.yml and compose.test.migrate.yml
(host networking, the locally built images, postgres off port 5432); see
compose_tools.py. By hand (no PostgreSQL harness needed, compose brings its own):

    python3 tests/compose/test_compose_up.py -v
"""

import json
import os
import unittest

from harness.files import temp_dir
from harness.logs import events
from harness.case import PgbootTestCase
import compose_tools
from compose_tools import images

HERE = os.path.dirname(os.path.abspath(__file__))

setUpModule = compose_tools.setUpModule  # the images, one podman service
tearDownModule = compose_tools.tearDownModule
ORDERS = compose_tools.ORDERS


def first_healthy_ns(state):
    """When the first successful healthcheck of a container ended."""
    log = (state.get("Health") or state.get("Healthcheck") or {}).get("Log") or []
    ok = [compose_tools.timestamp_ns(e["End"]) for e in log if e.get("ExitCode") == 0]
    return min(ok) if ok else None


class ComposeUpTest(PgbootTestCase):

    def test_healthy_postgres_then_migrate_exits_0_then_app_serves_migrated_rows(self):
        project = compose_tools.Project(self, compose_tools.PROD_FILES)
        up = project.up()
        self.assertEqual(up.returncode, 0, up.stdout + up.stderr)

        pg = project.state("postgres")
        self.assertEqual(pg["Status"], "running")
        self.assertEqual((pg.get("Health") or pg.get("Healthcheck"))["Status"], "healthy")

        migrate = project.state("migrate")
        migrate_log = project.logs("migrate")
        self.assertEqual((migrate["Status"], migrate["ExitCode"]), ("exited", 0), migrate_log)
        self.assertEqual(len(events(migrate_log, "migration.applied")),
                         len(compose_tools.repo_versions()), migrate_log)
        self.assertNoPassword(migrate_log, project.password)

        app = project.state("app")
        app_log = project.logs("app")
        self.assertEqual(app["Status"], "running", app_log)
        # The order Compose promised: healthy postgres -> migrate ran to its end -> app.
        ns = compose_tools.timestamp_ns
        healthy = first_healthy_ns(pg)
        self.assertIsNotNone(healthy, pg)
        self.assertLessEqual(healthy, ns(migrate["StartedAt"]))
        self.assertLessEqual(ns(migrate["FinishedAt"]), ns(app["StartedAt"]))
        # The app's ENTRYPOINT is pgboot; RUN_MIGRATIONS is off, so it only waited.
        entry = json.loads(images.podman("container", "inspect", project.container("app")).stdout)[0]
        entry = entry["Config"]["Entrypoint"]
        self.assertEqual((entry.split() if isinstance(entry, str) else entry)[0], "pgboot")
        self.assertEqual(events(app_log, "migration.applied"), [], app_log)
        self.assertTrue(events(app_log, "exec"), app_log)

        body = compose_tools.http_get(project.app_port, "/cgi-bin/orders")
        self.assertEqual(body.strip(), ORDERS)
        self.assertEqual(project.psql("SELECT version, status FROM pgboot_history ORDER BY version")
                         .split(), ["%s|applied" % v for v in compose_tools.repo_versions()])

        # The operator's tool through the same service: nothing pending.
        st = project.compose("run", "--rm", "--no-deps", "migrate", "status", "--fail-on-pending",
                             check=False, timeout=120)
        self.assertEqual(st.returncode, 0, st.stdout + st.stderr)
        for v in compose_tools.repo_versions():
            self.assertRegex(st.stdout, r"%s\s+\S+\s+applied" % v)

    def test_broken_migration_exits_5_and_the_app_never_starts(self):
        d = temp_dir(self)
        src = os.path.join(compose_tools.SOURCE_DIR, "migrations")
        for name in sorted(os.listdir(src)):
            with open(os.path.join(src, name), "rb") as f:
                d.write(name, f.read(), mode=0o644)
        d.write("20260101000300_add_note.sql",
                "-- migrate:up\n"
                "ALTER TABLE orders ADD COLUMN note text;\n"
                "UPDATE orders SET note = 'x' WHERE no_such_column = 1;\n", mode=0o644)
        os.chmod(str(d), 0o755)  # read by uid 65532 inside the container

        project = compose_tools.Project(self, compose_tools.PROD_FILES + [compose_tools.MIGRATIONS_OVERRIDE])
        project.vars["PGBOOT_TEST_MIGRATIONS"] = str(d)
        up = project.up()
        out = up.stdout + up.stderr
        self.assertNotEqual(up.returncode, 0, out)

        migrate = project.state("migrate")
        migrate_log = project.logs("migrate")
        self.assertEqual((migrate["Status"], migrate["ExitCode"]), ("exited", 5), migrate_log)
        failed = events(migrate_log, "migration.failed")
        self.assertEqual(len(failed), 1, migrate_log)
        self.assertIn("20260101000300_add_note.sql:3", migrate_log)
        self.assertIn("42703", migrate_log)

        # Compose names the failed dependency and never creates the app.
        self.assertRegex(out, r"ERROR: for app\s+Container \"[0-9a-f]+\" exited with code 5")
        self.assertNotIn(project.container("app"), project.containers())

        # The three good migrations stay; nothing of the broken one does.
        self.assertEqual(project.psql("SELECT version FROM pgboot_history ORDER BY version").split(),
                         compose_tools.repo_versions())
        self.assertEqual(project.psql("SELECT count(*) FROM information_schema.columns "
                                      "WHERE table_name = 'orders' AND column_name = 'note'").strip(),
                         "0")


if __name__ == "__main__":
    unittest.main()
