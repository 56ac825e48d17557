#!/usr/bin/env python3
"""The Kubernetes examples (deploy/kubernetes) and the Helm charts (deploy/helm) run for
real: `podman kube play` (podman 4.3, runc, --network host) against the harness's
PostgreSQL, with the images images.py builds.

What each manifest is played as, and what the test changes in it first (the rest of
each object -- securityContext, resources, env, args -- is played as written):

  - images: registry.example.com/app-migrations -> the migration image (or one FROM it
    with an extra, broken migration); registry.example.com/app -> the exec app image,
    which carries the same migrations (examples/app/Dockerfile);
  - names: every object gets a unique name, and a Deployment one replica (podman plays
    `replicas` pods one after the other; one is enough to show the order);
  - a Deployment's pods get restartPolicy: Never. podman 4.3 gives init containers the
    pod's restart policy (Always for a Deployment): a finished init container is
    restarted at once, and kube play then fails with "failed to remove once init
    container ... as it is running" (restart policy "always" in its inspect);
  - `ports` are dropped: with --network host podman refuses port mappings (the app
    listens on a free port instead, PORT);
  - Secrets: podman 4.3's `kube play` does not create them from a `kind: Secret`; a
    secretKeyRef reads a podman secret whose payload is the Secret's `data` map as JSON
    (base64 values). The test makes that from secret.yaml's shape with the test
    database's URL, under a unique name;
  - `kind: Job` is refused by kube play: the Job's pod template is played as a Pod.
    backoffLimit, activeDeadlineSeconds, podFailurePolicy and Helm's hook annotations
    are left to test_kubernetes.py (schemas and fields), as is
    terminationMessagePolicy, which podman ignores: the failure's `file:line` is
    asserted in the init container's log, which FallbackToLogsOnError would show.

Helm charts are rendered by helm_render.py (no helm on Debian 12) and played the same
way, hook Job first for deploy/helm/app, the gated Deployment before its Job for
deploy/helm/app-gated (its pods must wait for the Job).
"""

import base64
import json
import os
import re
import sys
import tempfile
import unittest
import uuid

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "compose"))
import helm_render  # noqa: E402
from container import images  # noqa: E402
from harness.case import PgbootTestCase  # noqa: E402
from harness.logs import events  # noqa: E402
from harness.proc import source_dir, wait_until  # noqa: E402
from harness.server import free_port, new_database, url  # noqa: E402
from harness.sql import history  # noqa: E402

K8S_DIR = os.path.join(source_dir(), "deploy", "kubernetes")
HELM_DIR = os.path.join(source_dir(), "deploy", "helm")
APP_IMAGE = images.APP_EXEC_IMAGE
BROKEN_IMAGE = "localhost/pgboot-migration:test-kube-broken"
BROKEN_FILE = "20270101000000_broken.sql"
# The statement that fails is on line 3 of BROKEN_FILE.
BROKEN_SQL = "-- migrate:up\nCREATE TABLE kube_ok (id int);\nSELECT * FROM no_such_table;\n"
WAIT = 240  # seconds: a loaded 2-core machine starts a pod in 10-30 s


def setUpModule():
    images.ensure_images()
    with images._locked():
        ctx = tempfile.mkdtemp(prefix="kube-broken-", dir=images.CACHE_DIR)
        with open(os.path.join(ctx, BROKEN_FILE), "w") as f:
            f.write(BROKEN_SQL)
        with open(os.path.join(ctx, "Containerfile"), "w") as f:
            f.write("FROM %s\nCOPY %s /migrations/\n" % (images.MIGRATION_IMAGE, BROKEN_FILE))
        images.podman("build", "--network", "host", "--pull=never", "-t", BROKEN_IMAGE,
                      "-f", os.path.join(ctx, "Containerfile"), ctx, timeout=300)


def repo_versions():
    d = os.path.join(source_dir(), "migrations")
    return sorted(f.split("_", 1)[0] for f in os.listdir(d) if f.endswith(".sql"))


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def containers_of(obj):
    spec = pod_spec(obj)
    return spec.get("initContainers", []) + spec["containers"]


def pgboot_events(log, name=None):
    """pgboot's log events in a container's log, which may also hold the app's lines."""
    lines = log.splitlines()
    if any(l.startswith("{") for l in lines):
        log = "\n".join(l for l in lines if l.startswith("{"))
    return events(log, name)


def pod_spec(obj):
    return obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]


class KubePlay(PgbootTestCase):

    def setUp(self):
        self.db = new_database(self)
        self.tag = "kp%s" % uuid.uuid4().hex[:8]
        self.secret = self.make_secret()
        self.dir = tempfile.mkdtemp(prefix="pgboot-kube-")

    def make_secret(self):
        """secret.yaml's Secret with the test database's URL, as the podman secret a
        secretKeyRef reads (kube play 4.3: the `data` map as JSON)."""
        [secret] = load(os.path.join(K8S_DIR, "secret.yaml"))
        data = {k: base64.b64encode((url(self.db) if k == "url" else v).encode()).decode()
                for k, v in secret["stringData"].items()}
        name = "%s-%s" % (secret["metadata"]["name"], self.tag)
        path = os.path.join(tempfile.mkdtemp(prefix="pgboot-secret-"), "data.json")
        with open(path, "w") as f:
            json.dump(data, f)
        images.podman("secret", "create", name, path)
        os.remove(path)
        self.addCleanup(images.podman, "secret", "rm", name, check=False)
        return name

    def adapt(self, obj, migrations_image=images.MIGRATION_IMAGE):
        """The changes the module docstring lists; returns the podman pod name it will get."""
        if obj["kind"] == "Job":
            tmpl = obj["spec"]["template"]
            meta = dict(tmpl["metadata"], name=obj["metadata"]["name"])
            obj.clear()
            obj.update({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": tmpl["spec"]})
        name = "%s-%s" % (obj["metadata"]["name"], self.tag)
        obj["metadata"]["name"] = name
        if obj["kind"] == "Deployment":
            obj["spec"]["replicas"] = 1
            obj["spec"]["template"]["spec"]["restartPolicy"] = "Never"
        for c in containers_of(obj):
            repo = c["image"].rsplit(":", 1)[0]
            self.assertIn(repo, ("registry.example.com/app-migrations", "registry.example.com/app"))
            c["image"] = migrations_image if repo.endswith("-migrations") else APP_IMAGE
            if c.pop("ports", None) is not None:
                c.setdefault("env", []).append({"name": "PORT", "value": str(free_port())})
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    ref["name"] = self.secret
        pod = name + "-pod-0" if obj["kind"] == "Deployment" else name
        self.addCleanup(images.podman, "pod", "rm", "--force", "--time", "0", pod, check=False,
                        timeout=120)
        return pod

    def play(self, obj):
        """podman kube play of one object -> CompletedProcess."""
        path = os.path.join(self.dir, "%s.yaml" % obj["metadata"]["name"])
        with open(path, "w") as f:
            yaml.safe_dump(obj, f)
        return images.podman("kube", "play", "--network", "host", path, check=False, timeout=WAIT)

    def state(self, container):
        return images.container_state(container)

    def wait_for_log(self, container, pattern, timeout=WAIT):
        return wait_until(lambda: re.search(pattern, images.logs(container)), timeout=timeout,
                          what="%r in the log of %s" % (pattern, container), interval=0.5)

    def assertAppServes(self, app):
        """The app container ran `serve`, which reads the orders table the migrations made
        (it exits 1 when the table is missing), so it started after they were applied."""
        self.wait_for_log(app, r"app: serving \d+ orders on :\d+")
        self.assertEqual(self.state(app)["Status"], "running")

    # ---- deploy/kubernetes ---------------------------------------------------------------

    def test_init_container_migrates_then_the_app_starts(self):
        [dep] = load(os.path.join(K8S_DIR, "init-container.yaml"))
        self.assertEqual(dep["kind"], "Deployment")
        pod = self.adapt(dep)
        p = self.play(dep)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(history(self.db), {v: "applied" for v in repo_versions()})
        self.assertAppServes(pod + "-app")
        # The app's pgboot waited for the database and execed serve: it did not migrate.
        evs = pgboot_events(images.logs(pod + "-app"))
        self.assertTrue([e for e in evs if e.get("event") == "exec"], evs)
        self.assertFalse([e for e in evs if e.get("event") == "migration.applied"], evs)

    def test_a_broken_migration_keeps_the_app_from_starting(self):
        [dep] = load(os.path.join(K8S_DIR, "init-container.yaml"))
        pod = self.adapt(dep, migrations_image=BROKEN_IMAGE)
        p = self.play(dep)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertRegex(p.stderr, r"init container \w+ exited with code 5")
        self.assertEqual(self.state(pod + "-migrate")["ExitCode"], 5)
        app = self.state(pod + "-app")
        self.assertEqual(app["Status"], "created", app)
        self.assertTrue(app["StartedAt"].startswith("0001-01-01"), app)
        [failed] = pgboot_events(images.logs(pod + "-migrate"), "migration.failed")
        self.assertRegex(failed["file"], r"(^|/)%s:3(:\d+)?$" % re.escape(BROKEN_FILE))
        # The migrations before it were applied, each in its own transaction.
        h = history(self.db)
        self.assertEqual({v: s for v, s in h.items() if s == "applied"},
                         {v: "applied" for v in repo_versions()})

    def test_job_pod_template_as_a_pod(self):
        [job] = load(os.path.join(K8S_DIR, "job.yaml"))
        self.assertEqual(job["kind"], "Job")
        pod = self.adapt(job)
        p = self.play(job)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        ctr = pod + "-migrate"
        code = images.podman("wait", ctr, timeout=WAIT).stdout.strip()
        self.assertEqual(code, "0", images.logs(ctr))
        applied = pgboot_events(images.logs(ctr), "migration.applied")
        self.assertEqual(sorted(e["version"] for e in applied), repo_versions())
        self.assertEqual(history(self.db), {v: "applied" for v in repo_versions()})

    # ---- deploy/helm ----------------------------------------------------------------------

    def chart(self, name):
        objs = dict((o["kind"], o) for _, o in helm_render.render_objects(
            os.path.join(HELM_DIR, name), release="rel-" + self.tag))
        self.assertEqual(sorted(objs), ["Deployment", "Job"])
        return objs["Job"], objs["Deployment"]

    def test_helm_app_chart_hook_job_then_deployment(self):
        job, dep = self.chart("app")
        self.assertIn("pre-install", job["metadata"]["annotations"]["helm.sh/hook"])
        job_pod, app_pod = self.adapt(job), self.adapt(dep)
        p = self.play(job)  # helm runs the hook to completion before the Deployment
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(images.podman("wait", job_pod + "-migrate", timeout=WAIT).stdout.strip(),
                         "0", images.logs(job_pod + "-migrate"))
        p = self.play(dep)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertAppServes(app_pod + "-app")
        self.assertEqual(history(self.db), {v: "applied" for v in repo_versions()})

    def test_helm_gated_chart_pods_wait_for_the_job(self):
        job, dep = self.chart("app-gated")
        job_pod, app_pod = self.adapt(job), self.adapt(dep)
        app = app_pod + "-app"
        for c in pod_spec(dep)["containers"]:
            c["env"].append({"name": "PGBOOT_GATE_LOG_INTERVAL", "value": "1s"})
        p = self.play(dep)  # the Deployment first: its pod must gate, not fail
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.wait_for_log(app, r'"event":\s*"gate\.waiting"')
        self.assertEqual(history(self.db), {})
        self.assertNotIn("app: serving", images.logs(app))
        p = self.play(job)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(images.podman("wait", job_pod + "-migrate", timeout=WAIT).stdout.strip(),
                         "0", images.logs(job_pod + "-migrate"))
        self.assertAppServes(app)
        self.assertTrue(pgboot_events(images.logs(app), "gate.open"), images.logs(app))


if __name__ == "__main__":
    unittest.main()
