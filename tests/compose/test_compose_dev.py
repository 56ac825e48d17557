#!/usr/bin/env python3
"""docker-compose.dev.yml for real: the app migrates itself, no migrate service.

Two app services start together against one fresh database: `app` as the dev
file defines it and `app2`, the same service on another port (host networking
shares ports), added to the merged configuration by the test. Both come up,
each migration is applied once, and the one that did not apply them waited for
the lock or found nothing pending. By hand:

    python3 tests/compose/test_compose_dev.py -v
"""

import copy
import os
import sys
import unittest

from harness.server import free_port
from harness.logs import events
from harness.case import PgbootTestCase
import compose_tools

HERE = os.path.dirname(os.path.abspath(__file__))

setUpModule = compose_tools.setUpModule  # the images, one podman service
tearDownModule = compose_tools.tearDownModule
ORDERS = compose_tools.ORDERS


class ComposeDevTest(PgbootTestCase):

    def test_two_apps_started_together_apply_each_migration_once(self):
        project = compose_tools.Project(self, compose_tools.DEV_FILES)
        app2_port = free_port()

        def add_app2(cfg):
            self.assertEqual(sorted(cfg["services"]), ["app", "postgres"], "no migrate service")
            app2 = copy.deepcopy(cfg["services"]["app"])
            app2["environment"]["PORT"] = str(app2_port)
            cfg["services"]["app2"] = app2

        cfg = project.make_runnable(add_app2)
        self.assertEqual(cfg["services"]["app"]["environment"]["RUN_MIGRATIONS"], "true")
        up = project.up()
        self.assertEqual(up.returncode, 0, up.stdout + up.stderr)

        for port in (project.app_port, app2_port):
            self.assertEqual(compose_tools.http_get(port, "/cgi-bin/orders").strip(), ORDERS)

        logs = {name: project.logs(name) for name in ("app", "app2")}
        for name, text in logs.items():
            self.assertEqual(project.state(name)["Status"], "running", text)
            self.assertTrue(events(text, "exec"), text)
            self.assertNoPassword(text, project.password)
        appliers = [n for n, t in logs.items() if events(t, "migration.applied")]
        self.assertEqual(len(appliers), 1, "exactly one app applies:\n" + "\n---\n".join(logs.values()))
        applier = appliers[0]
        other = "app2" if applier == "app" else "app"
        self.assertEqual(len(events(logs[applier], "migration.applied")),
                         len(compose_tools.repo_versions()))
        waited = events(logs[other], "lock.waiting")
        self.assertTrue(waited or events(logs[other], "migrate.nothing_to_do"), logs[other])
        print("%s applied the migrations; %s %s" % (applier, other, "waited for the lock" if waited
                                                     else "found nothing pending"), file=sys.stderr)

        applied = project.psql("SELECT version, count(*) FROM pgboot_history_log "
                               "WHERE event = 'applied' GROUP BY version ORDER BY version")
        self.assertEqual(applied.split(), ["%s|1" % v for v in compose_tools.repo_versions()])
        self.assertEqual(project.psql("SELECT DISTINCT batch FROM pgboot_history").split(), ["1"])


if __name__ == "__main__":
    unittest.main()
