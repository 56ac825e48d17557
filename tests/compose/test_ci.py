#!/usr/bin/env python3
"""The CI pipeline example (deploy/ci/github-actions.yml), its pgboot steps run.

No GitHub runner here, so: the workflow parses and has the shape the docs
describe (a pull-request job against a healthy throwaway PostgreSQL, a deploy
job on main that migrates before it rolls out), and every step that only runs
pgboot is executed as it stands, in order, with bash as GitHub runs it
(`-eo pipefail`), the job's env, the built binary as `pgboot`, and a fresh
database of the harness's server standing in for the job's database. By hand:

    export PYTHONPATH=$PWD/tests; python3 -m harness.cluster start /tmp/st
    PGBOOT_BIN=build/pgboot PGBOOT_TEST_STATE=/tmp/st python3 tests/compose/test_ci.py -v
"""

import os
import re
import subprocess
import unittest

from harness.server import new_database, url
from harness.sql import admin_sql
from harness.proc import pgboot_bin, source_dir
from harness.files import temp_dir
from harness.logs import events
from harness.case import PgbootTestCase
from compose_tools import yaml


WORKFLOW = os.path.join(source_dir(), "deploy", "ci", "github-actions.yml")


def load_workflow():
    with open(WORKFLOW) as f:
        # YAML 1.1 reads the key `on` as True; GitHub reads it as "on".
        wf = yaml.safe_load(f)
    if True in wf:
        wf["on"] = wf.pop(True)
    return wf


def pgboot_only(step):
    """A step whose every command line runs pgboot (comments and blank lines aside)."""
    lines = [l.strip() for l in step.get("run", "").splitlines()]
    lines = [l for l in lines if l and not l.startswith("#")]
    return bool(lines) and all(l.startswith("pgboot ") or l == "pgboot" for l in lines)


class CiWorkflowTest(PgbootTestCase):

    @classmethod
    def setUpClass(cls):
        cls.wf = load_workflow()

    def test_shape(self):
        wf = self.wf
        self.assertIn("pull_request", wf["on"])
        check, deploy = wf["jobs"]["migrations"], wf["jobs"]["deploy"]
        pg = check["services"]["postgres"]
        self.assertEqual(pg["image"], "postgres:15")
        self.assertIn("--health-cmd \"pg_isready", pg["options"])
        self.assertEqual(deploy["needs"], "migrations")
        self.assertIn("refs/heads/main", deploy["if"])
        self.assertEqual(deploy["environment"], "production")
        self.assertIn("concurrency", deploy, "deploys queue: the lock alone keeps them safe, "
                      "not in the order they were pushed")
        self.assertEqual(deploy["env"]["DATABASE_URL"], "${{ secrets.DATABASE_URL }}")
        names = [s.get("name", s.get("uses")) for s in deploy["steps"]]
        self.assertLess(names.index("Migrate"), names.index("Roll out the new version"))
        # The pull-request job talks to its own service container.
        user, password = pg["env"]["POSTGRES_USER"], pg["env"]["POSTGRES_PASSWORD"]
        self.assertEqual(check["env"]["DATABASE_URL"],
                         "postgres://%s:%s@127.0.0.1:5432/%s" % (user, password, pg["env"]["POSTGRES_DB"]))

    def run_job(self, job_name):
        """Runs the job's pgboot-only steps against a fresh database; returns the
        database's name and [(step name, CompletedProcess)]."""
        job = self.wf["jobs"][job_name]
        db = new_database(self)
        # `pgboot` on PATH is the binary under test, whatever its file is called.
        bin_dir = temp_dir(self)
        os.symlink(os.path.abspath(pgboot_bin()), bin_dir / "pgboot")
        env = {"PATH": str(bin_dir) + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
               "HOME": os.environ.get("HOME", "/tmp")}
        for k, v in job.get("env", {}).items():
            env[k] = url(db) if k == "DATABASE_URL" else str(v)
        out = []
        for step in job["steps"]:
            if not pgboot_only(step):
                continue
            self.assertNotRegex(step["run"], r"\$\{\{", "a pgboot step uses no expressions")
            p = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                               cwd=source_dir(), env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, "step %r exited %d:\n%s%s"
                             % (step["name"], p.returncode, p.stdout, p.stderr))
            self.assertNoPassword(p.stdout + p.stderr)
            out.append((step["name"], p))
        return db, out

    def test_pull_request_job_steps_run(self):
        db, steps = self.run_job("migrations")
        self.assertEqual(len(steps), 3, [n for n, _ in steps])
        versions = sorted(f.split("_", 1)[0]
                          for f in os.listdir(os.path.join(source_dir(), "migrations"))
                          if f.endswith(".sql"))
        rows = admin_sql("SELECT version, batch FROM pgboot_history ORDER BY version", db)
        # Applied, rolled back, applied again: a second batch.
        self.assertEqual(rows.split(), ["%s|2" % v for v in versions])
        counts = admin_sql("SELECT event, count(*) FROM pgboot_history_log "
                           "GROUP BY event ORDER BY event", db).split()
        self.assertEqual(counts, ["applied|%d" % (2 * len(versions)),
                                  "rolled_back|%d" % len(versions)])

    def test_deploy_job_steps_run(self):
        db, steps = self.run_job("deploy")
        self.assertEqual([n for n, _ in steps], ["Show what will run", "Migrate"])
        dry_run = steps[0][1].stdout
        self.assertRegex(dry_run, re.compile(r"CREATE TABLE users", re.I))
        self.assertTrue(events(steps[1][1].stderr, "migration.applied"))


if __name__ == "__main__":
    unittest.main()
