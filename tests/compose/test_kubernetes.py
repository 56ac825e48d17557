#!/usr/bin/env python3
"""The Kubernetes and Helm examples: they parse, they are valid objects, and they
carry what pgboot needs.

No cluster and no helm here (Debian 12 packages neither helm nor kubeconform),
so:
  - every YAML file under deploy/kubernetes/ and deploy/helm/ parses; the Helm
    templates after their {{ }} placeholders are replaced with the chart's own
    values (helm_render.py: the small subset of Helm's template language the
    charts use, anything else fails the test);
  - every object is validated against the Kubernetes OpenAPI schemas bundled in
    the npm package kubernetes-models (tests/compose/k8s-validator/: pinned by
    its package-lock.json, installed offline-capable with `npm ci` into
    PGBOOT_K8S_VALIDATOR_DIR, default /var/tmp/pgboot-container/k8s-validator,
    once per machine);
  - the checks the schemas cannot make (an image is optional there, env names
    are free text) and the fields pgboot's integration is about:
    terminationMessagePolicy, backoffLimit, activeDeadlineSeconds (longer than
    pgboot's own timeouts), the podFailurePolicy exit codes, the Helm hook, and
    for the schema gate (gate.yaml, the app-gated chart) pods that gate instead
    of migrating, with a startup probe that outlasts the gate; behind a pooler
    (pooler.yaml) a direct URL for pgboot beside the pooled one for the app.

    python3 tests/compose/test_kubernetes.py -v
"""

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.parse

import helm_render
from compose_tools import images, yaml
from helm_render import render

HERE = os.path.dirname(os.path.abspath(__file__))

SOURCE_DIR = images.SOURCE_DIR
K8S_DIR = os.path.join(SOURCE_DIR, "deploy", "kubernetes")
CHART_DIR = os.path.join(SOURCE_DIR, "deploy", "helm", "app")
GATED_CHART_DIR = os.path.join(SOURCE_DIR, "deploy", "helm", "app-gated")
CHART_DIRS = (CHART_DIR, GATED_CHART_DIR)
VALIDATOR_SRC = os.path.join(HERE, "k8s-validator")
VALIDATOR_DIR = (os.environ.get("PGBOOT_K8S_VALIDATOR_DIR")
                 or os.path.join(images.CACHE_DIR, "k8s-validator"))

# SPEC §6: the exit codes a retry cannot cure (configuration, credentials, SQL,
# validation, files). 1, 3 and 7 and signals may succeed on another pod.
NEVER_RETRY = {2, 4, 5, 6, 8}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# ---- a tiny Helm (helm_render.py) ---------------------------------------------------

def chart_context(release="test-release", chart_dir=CHART_DIR, revision=1):
    return helm_render.chart_context(chart_dir, release, revision)


# ---- the schema validator ------------------------------------------------------------

@contextlib.contextmanager
def _flock(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def ensure_validator():
    """kubernetes-models installed into VALIDATOR_DIR with `npm ci` from the pinned
    lock file, once (a stamp holds the lock file's hash). Returns NODE_PATH."""
    # npm stays out of the main setup (it is ~360 Debian packages); like the
    # bench, this test installs it when the machine has none.
    if shutil.which("npm") is None or shutil.which("node") is None:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        # Another suite may be installing at the same moment (ctest -j2): wait for
        # dpkg's lock instead of failing on it.
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]
        for cmd in (apt + ["update", "-qq"],
                    apt + ["install", "-y", "-qq", "--no-install-recommends", "nodejs", "npm"]):
            p = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=900)
            if p.returncode != 0:
                raise RuntimeError("%s failed (exit %d):\n%s" % (" ".join(cmd), p.returncode,
                                                                 p.stdout))
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        with open(os.path.join(VALIDATOR_SRC, name), "rb") as f:
            h.update(f.read())
    key = h.hexdigest()
    stamp = os.path.join(VALIDATOR_DIR, "installed.stamp")
    with _flock(VALIDATOR_DIR + ".lock"):
        try:
            with open(stamp) as f:
                if f.read() == key:
                    return os.path.join(VALIDATOR_DIR, "node_modules")
        except FileNotFoundError:
            pass
        shutil.rmtree(VALIDATOR_DIR, ignore_errors=True)
        os.makedirs(VALIDATOR_DIR)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(os.path.join(VALIDATOR_SRC, name), VALIDATOR_DIR)
        p = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                           cwd=VALIDATOR_DIR, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError("npm ci in %s failed (exit %d):\n%s"
                               % (VALIDATOR_DIR, p.returncode, p.stdout))
        with open(stamp, "w") as f:
            f.write(key)
    return os.path.join(VALIDATOR_DIR, "node_modules")


def schema_errors(docs):
    """[(source, kind, name, errors)] from kubernetes-models for [(source, object)]."""
    env = dict(os.environ, NODE_PATH=ensure_validator())
    p = subprocess.run(["node", os.path.join(VALIDATOR_SRC, "validate.js")], env=env,
                       input=json.dumps([{"source": s, "object": o} for s, o in docs]),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("validate.js exited %d:\n%s" % (p.returncode, p.stderr))
    return [(r["source"], r.get("kind"), r.get("name"), r["errors"]) for r in json.loads(p.stdout)]


# ---- the manifests -----------------------------------------------------------------------

def load_all():
    """[(source, object)] of every document in the examples, templates rendered."""
    docs = []
    for path in sorted(glob.glob(os.path.join(K8S_DIR, "*.yaml"))):
        with open(path) as f:
            docs += [(os.path.relpath(path, SOURCE_DIR), d) for d in yaml.safe_load_all(f) if d]
    for chart_dir in CHART_DIRS:
        ctx = chart_context(chart_dir=chart_dir)
        for path in sorted(glob.glob(os.path.join(chart_dir, "templates", "*.yaml"))):
            with open(path) as f:
                text = render(f.read(), ctx)
            docs += [(os.path.relpath(path, SOURCE_DIR), d) for d in yaml.safe_load_all(text) if d]
    return docs


def seconds(duration):
    """pgboot's duration grammar (docs/configuration.md) -> seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    if not m:
        if duration == "0":
            return 0
        raise ValueError("not a pgboot duration: %r" % duration)
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def documented_env_vars():
    """Every environment variable docs/configuration.md names."""
    with open(os.path.join(SOURCE_DIR, "docs", "configuration.md")) as f:
        return set(re.findall(r"`((?:PGBOOT|DATABASE|RUN)_[A-Z_]+)`", f.read()))


def pod_spec(obj):
    if obj["kind"] in ("Deployment", "Job"):
        return obj["spec"]["template"]["spec"]
    return None


def is_pgboot(container):
    return container["image"].split("/")[-1].split(":")[0].endswith("migrations")


class KubernetesExamplesTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.docs = load_all()

    def objects(self, source_part, kind):
        return [o for s, o in self.docs if source_part in s and o["kind"] == kind]

    def test_every_yaml_file_parses(self):
        files = sorted(glob.glob(os.path.join(SOURCE_DIR, "deploy", "kubernetes", "**", "*.y*ml"),
                                 recursive=True)
                       + glob.glob(os.path.join(SOURCE_DIR, "deploy", "helm", "**", "*.y*ml"),
                                   recursive=True))
        self.assertGreaterEqual(len(files), 11, files)
        for path in files:
            with self.subTest(os.path.relpath(path, SOURCE_DIR)):
                with open(path) as f:
                    text = f.read()
                if os.sep + "templates" + os.sep in path:
                    chart_dir = path.split(os.sep + "templates" + os.sep)[0]
                    text = render(text, chart_context(chart_dir=chart_dir))
                self.assertTrue([d for d in yaml.safe_load_all(text) if d is not None])
        for chart_dir in CHART_DIRS:
            with open(os.path.join(chart_dir, "Chart.yaml")) as f:
                chart = yaml.safe_load(f)
            self.assertEqual(chart["apiVersion"], "v2")
            self.assertEqual(chart["name"], os.path.basename(chart_dir))
            self.assertRegex(chart["version"], r"^\d+\.\d+\.\d+$")

    def test_objects_match_the_kubernetes_schemas(self):
        results = schema_errors(self.docs)
        self.assertEqual(len(results), len(self.docs))
        bad = [r for r in results if r[3]]
        self.assertEqual(bad, [], "\n".join("%s %s/%s: %s" % r for r in bad))

    def test_the_validator_rejects_what_it_should(self):
        # So a passing schema test means something: a wrong enum, a missing
        # required field and a wrong type are all caught.
        job = next(o for s, o in self.docs if s.endswith("job.yaml"))
        broken = json.loads(json.dumps(job))
        c = broken["spec"]["template"]["spec"]["containers"][0]
        c["terminationMessagePolicy"] = "FallbackToLogs"
        del broken["spec"]["template"]["spec"]["containers"][0]["name"]
        broken["spec"]["backoffLimit"] = "2"
        errors = schema_errors([("broken", broken)])[0][3]
        text = "\n".join(errors)
        for needle in ("terminationMessagePolicy", "name", "backoffLimit"):
            self.assertIn(needle, text)

    def test_pod_specs_have_what_a_pod_needs(self):
        known_env = documented_env_vars()
        self.assertIn("PGBOOT_LOCK_TIMEOUT", known_env)
        for source, obj in self.docs:
            self.assertRegex(obj["metadata"]["name"], DNS_LABEL, source)
            spec = pod_spec(obj)
            if spec is None:
                continue
            with self.subTest(source=source, kind=obj["kind"]):
                self.assertTrue(spec.get("containers"), "a pod needs containers")
                all_containers = spec.get("initContainers", []) + spec["containers"]
                names = [c["name"] for c in all_containers]
                self.assertEqual(len(names), len(set(names)), names)
                sc = spec["securityContext"]
                self.assertTrue(sc["runAsNonRoot"])
                self.assertEqual((sc["runAsUser"], sc["runAsGroup"]), (65532, 65532))
                for c in all_containers:
                    self.assertRegex(c["name"], DNS_LABEL)
                    self.assertRegex(c.get("image", ""), r"^[^:\s]+:[^:\s]+$", "an image with a tag")
                    self.assertFalse(c["image"].endswith(":latest"), c["image"])
                    self.assertEqual(c["terminationMessagePolicy"], "FallbackToLogsOnError", c["name"])
                    for e in c.get("env", []):
                        self.assertEqual(len({"value", "valueFrom"} & set(e)), 1, e)
                        if e["name"].startswith(("PGBOOT_", "DATABASE_", "RUN_")):
                            self.assertIn(e["name"], known_env, "not a pgboot variable")
                        if e["name"].endswith("_TIMEOUT"):
                            seconds(e["value"])
                    if is_pgboot(c):
                        # The rollback Job runs the previous image's rollback --future
                        # (test_rollback_job_example); every other pgboot container migrates.
                        self.assertIn(c["args"], (["migrate"],
                                                  ["rollback", "--future", "--allow-production"]))
                        env = {e["name"]: e for e in c["env"]}
                        self.assertIn("secretKeyRef", env["DATABASE_URL"]["valueFrom"])
                        self.assertTrue(c["securityContext"]["readOnlyRootFilesystem"])
                if obj["kind"] == "Deployment":
                    self.assertEqual(obj["spec"]["selector"]["matchLabels"],
                                     {k: v for k, v in obj["spec"]["template"]["metadata"]["labels"].items()
                                      if k in obj["spec"]["selector"]["matchLabels"]})

    def test_init_container_example(self):
        [dep] = self.objects("kubernetes/init-container.yaml", "Deployment")
        spec = dep["spec"]["template"]["spec"]
        [init] = spec["initContainers"]
        self.assertTrue(is_pgboot(init), init["image"])
        self.assertEqual(init["terminationMessagePolicy"], "FallbackToLogsOnError")
        self.assertGreater(dep["spec"]["replicas"], 1, "the point: many pods, one migration")
        [secret] = self.objects("kubernetes/secret.yaml", "Secret")
        for c in spec["initContainers"] + spec["containers"]:
            ref = {e["name"]: e for e in c["env"]}["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
            self.assertEqual(ref["name"], secret["metadata"]["name"])
            self.assertIn(ref["key"], secret["stringData"])

    def assertMigrationJob(self, job):
        spec = job["spec"]
        self.assertIsInstance(spec["backoffLimit"], int)
        self.assertIsInstance(spec["activeDeadlineSeconds"], int)
        pod = spec["template"]["spec"]
        self.assertEqual(pod["restartPolicy"], "Never")  # podFailurePolicy requires it
        [c] = pod["containers"]
        self.assertTrue(is_pgboot(c))
        self.assertEqual(c["terminationMessagePolicy"], "FallbackToLogsOnError")
        env = {e["name"]: e.get("value") for e in c["env"]}
        worst = seconds(env["PGBOOT_WAIT_TIMEOUT"]) + seconds(env["PGBOOT_LOCK_TIMEOUT"])
        self.assertGreater(spec["activeDeadlineSeconds"], worst,
                           "the deadline must leave pgboot its own timeouts")
        [fail] = [r for r in spec["podFailurePolicy"]["rules"] if r["action"] == "FailJob"]
        self.assertEqual(fail["onExitCodes"]["containerName"], c["name"])
        self.assertEqual(fail["onExitCodes"]["operator"], "In")
        self.assertEqual(set(fail["onExitCodes"]["values"]), NEVER_RETRY)

    def test_job_example(self):
        [job] = self.objects("kubernetes/job.yaml", "Job")
        self.assertMigrationJob(job)
        self.assertIn("ttlSecondsAfterFinished", job["spec"])

    def test_rollback_job_example(self):
        # docs/operations.md, "Rolling back a deploy": the previous image, rollback --future.
        [job] = self.objects("kubernetes/rollback-job.yaml", "Job")
        self.assertMigrationJob(job)
        [c] = job["spec"]["template"]["spec"]["containers"]
        self.assertEqual(c["args"][:2], ["rollback", "--future"])
        env = {e["name"]: e.get("value") for e in c["env"]}
        # Under the production guard the Job must say it means it.
        if env.get("PGBOOT_ENV") == "production":
            self.assertIn("--allow-production", c["args"])
        [migrate] = self.objects("kubernetes/job.yaml", "Job")
        [m] = migrate["spec"]["template"]["spec"]["containers"]
        self.assertEqual(c["image"].split(":")[0], m["image"].split(":")[0],
                         "the same migration image, an older tag")
        self.assertNotEqual(c["image"], m["image"])

    def test_helm_hook(self):
        [job] = self.objects("helm/app/templates/migrate-job.yaml", "Job")
        self.assertMigrationJob(job)
        ann = job["metadata"]["annotations"]
        self.assertEqual(ann["helm.sh/hook"], "pre-install,pre-upgrade")
        self.assertIn("before-hook-creation", ann["helm.sh/hook-delete-policy"].split(","))
        self.assertEqual(job["metadata"]["name"], "test-release-migrate")
        ctx = chart_context()
        c = job["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(c["image"], "%s:%s" % (ctx["Values"]["migrations"]["repository"],
                                                ctx["Values"]["migrations"]["tag"]))
        ref = {e["name"]: e for e in c["env"]}["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        self.assertEqual(ref, {"name": "app-database", "key": "url"})
        [dep] = self.objects("helm/app/templates/deployment.yaml", "Deployment")
        self.assertEqual(dep["spec"]["replicas"], ctx["Values"]["replicaCount"])
        self.assertNotIn("RUN_MIGRATIONS", {e["name"] for e in dep["spec"]["template"]["spec"]
                                             ["containers"][0]["env"]})

    def assertGatedDeployment(self, dep, job):
        """Pods that gate on the schema while `job` migrates: the gate on, never
        RUN_MIGRATIONS, a startup probe that outlasts the gate's deadline, the same
        database secret as the Job."""
        spec = dep["spec"]["template"]["spec"]
        self.assertNotIn("initContainers", spec, "the gate replaces the init container")
        [c] = spec["containers"]
        self.assertFalse(is_pgboot(c), "the app image, pgboot as its ENTRYPOINT")
        env = {e["name"]: e for e in c["env"]}
        self.assertEqual(env["PGBOOT_WAIT_FOR_MIGRATIONS"]["value"], "true")
        self.assertNotIn("RUN_MIGRATIONS", env)
        gate = seconds(env["PGBOOT_MIGRATIONS_WAIT_TIMEOUT"]["value"])
        probe = c["startupProbe"]
        self.assertGreater(probe["periodSeconds"] * probe["failureThreshold"], gate,
                           "the kubelet must not restart a pod that is only gated")
        self.assertNotIn("livenessProbe", c)
        [m] = job["spec"]["template"]["spec"]["containers"]
        job_ref = {e["name"]: e for e in m["env"]}["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        self.assertEqual(env["DATABASE_URL"]["valueFrom"]["secretKeyRef"], job_ref)
        self.assertGreater(dep["spec"]["replicas"], 1, "the point: many pods, one migration")
        # The Job's pods must not be taken for the Deployment's.
        selector = dep["spec"]["selector"]["matchLabels"]
        job_labels = job["spec"]["template"]["metadata"]["labels"]
        self.assertNotEqual({k: job_labels.get(k) for k in selector}, selector)

    def test_gate_example(self):
        [job] = self.objects("kubernetes/gate.yaml", "Job")
        [dep] = self.objects("kubernetes/gate.yaml", "Deployment")
        self.assertMigrationJob(job)
        self.assertNotIn("annotations", job["metadata"])
        self.assertGatedDeployment(dep, job)

    def test_helm_gated_chart(self):
        [job] = self.objects("helm/app-gated/templates/migrate-job.yaml", "Job")
        [dep] = self.objects("helm/app-gated/templates/deployment.yaml", "Deployment")
        self.assertMigrationJob(job)
        # An ordinary resource (or a post-install/post-upgrade hook): a pre-* hook
        # finishes before the Deployment changes, so there would be nothing to gate.
        hook = job["metadata"].get("annotations", {}).get("helm.sh/hook", "")
        self.assertFalse([h for h in hook.split(",") if h.startswith("pre-")], hook)
        # One Job per revision: a Job's pod template cannot be updated in place.
        self.assertEqual(job["metadata"]["name"], "test-release-migrate-1")
        with open(os.path.join(GATED_CHART_DIR, "templates", "migrate-job.yaml")) as f:
            two = yaml.safe_load(render(f.read(), chart_context(chart_dir=GATED_CHART_DIR,
                                                                revision=2)))
        self.assertEqual(two["metadata"]["name"], "test-release-migrate-2")
        self.assertGatedDeployment(dep, job)
        ctx = chart_context(chart_dir=GATED_CHART_DIR)
        c = dep["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(c["image"], "%s:%s" % (ctx["Values"]["image"]["repository"],
                                                ctx["Values"]["image"]["tag"]))

    def test_pooler_example(self):
        # docs/pooler.md: pgboot straight to PostgreSQL, the app through the pooler.
        [dep] = self.objects("kubernetes/pooler.yaml", "Deployment")
        [secret] = self.objects("kubernetes/pooler.yaml", "Secret")
        [c] = dep["spec"]["template"]["spec"]["containers"]
        self.assertFalse(is_pgboot(c), "the app image, pgboot as its ENTRYPOINT")
        env = {e["name"]: e for e in c["env"]}
        self.assertEqual(env["RUN_MIGRATIONS"]["value"], "true")
        urls = {}
        for name in ("PGBOOT_DATABASE_URL", "DATABASE_URL"):
            ref = env[name]["valueFrom"]["secretKeyRef"]
            self.assertEqual(ref["name"], secret["metadata"]["name"])
            urls[name] = urllib.parse.urlsplit(secret["stringData"][ref["key"]])
        direct, pooled = urls["PGBOOT_DATABASE_URL"], urls["DATABASE_URL"]
        self.assertEqual((direct.username, direct.password, direct.path),
                         (pooled.username, pooled.password, pooled.path), "one database, one user")
        self.assertEqual(direct.port, 5432)
        self.assertNotEqual((direct.hostname, direct.port), (pooled.hostname, pooled.port))
        wait = seconds(env["PGBOOT_WAIT_TIMEOUT"]["value"])
        lock = seconds(env["PGBOOT_LOCK_TIMEOUT"]["value"])
        probe = c["startupProbe"]
        self.assertGreater(probe["periodSeconds"] * probe["failureThreshold"], wait + lock,
                           "the kubelet must not restart a pod that is still migrating")
        self.assertGreater(dep["spec"]["replicas"], 1, "the point: many pods, one migration")

    def test_helm_render_script_prints_manifests_or_names_the_action(self):
        script = os.path.join(HERE, "helm_render.py")
        p = subprocess.run([sys.executable, script, GATED_CHART_DIR, "--release", "r1",
                            "--revision", "3", "--set", "replicaCount=1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(re.findall(r"^# Source: (.*)$", p.stdout, re.M),
                         ["app-gated/templates/deployment.yaml",
                          "app-gated/templates/migrate-job.yaml"])
        dep, job = [d for d in yaml.safe_load_all(p.stdout) if d]
        self.assertEqual((dep["metadata"]["name"], dep["spec"]["replicas"]), ("r1", 1))
        self.assertEqual(job["metadata"]["name"], "r1-migrate-3")
        with tempfile.TemporaryDirectory() as d:
            shutil.copytree(CHART_DIR, os.path.join(d, "app"))
            with open(os.path.join(d, "app", "templates", "deployment.yaml"), "a") as f:
                f.write("  x: {{ .Values.replicaCount | toYaml }}\n")
            p = subprocess.run([sys.executable, script, os.path.join(d, "app")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, "")
        self.assertIn("deployment.yaml", p.stderr)
        self.assertIn("toYaml", p.stderr)

    def test_render_refuses_what_it_cannot_check(self):
        ctx = chart_context()
        self.assertEqual(render('a: {{ .Values.migrations.lockTimeout | quote }}', ctx), 'a: "10m"')
        for bad in ("{{ include \"x\" . }}", "{{- .Values.replicaCount }}", "{{ .Values.nope }}",
                    "{{ .Values.image }}", "{{ .Values.replicaCount | toYaml }}"):
            with self.assertRaises(ValueError, msg=bad):
                render(bad, ctx)


if __name__ == "__main__":
    unittest.main()
