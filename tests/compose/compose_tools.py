#!/usr/bin/env python3
"""Docker Compose in the tests: the repository's real compose files, run offline.

    python3 tests/compose/compose_tools.py build    # the images below (and images.py's), once
    python3 tests/compose/compose_tools.py clean    # remove the test postgres image

docker-compose 1.29 (Debian's) talks to podman's Docker-compatible API
(`podman system service`), as docs/integrations/compose.md describes:

  - POSTGRES_IMAGE stands in for the official `postgres:15`, which cannot be
    pulled here: tests/compose/postgres/ on the offline debian:bookworm base
    that tests/container/images.py makes. Built once per machine and kept until
    its Dockerfile or entrypoint changes (the image carries the hash as a label).
  - The other images are images.py's (`up --no-build`): nothing compiles again.
  - PodmanService: one `podman system service` per suite on a private socket,
    stopped by its pid.
  - Project: one Compose project per test, uniquely named (other suites and
    people run podman at the same time), always torn down with `down -v`.
    Its files are the real ones plus tests/compose/compose.test*.yml; up() runs
    the merged configuration (`docker-compose config`) with `ports` dropped:
    Compose merges overrides into lists and cannot remove the published port,
    which host networking makes meaningless and docker-py refuses with it.
    podman runs no healthchecks by itself (no systemd timers here), so up()
    runs `podman healthcheck run` in a loop for every service that has one,
    and `service_healthy` fires as with Docker.
"""

import ctypes
import datetime
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

from harness.server import free_port
from harness.files import temp_dir
from container import images

HERE = os.path.dirname(os.path.abspath(__file__))

try:
    import yaml
except ImportError:  # pragma: no cover - a setup problem, said plainly
    raise SystemExit("PyYAML is missing: apt-get install python3-yaml (scripts/setup.sh does)")

SOURCE_DIR = images.SOURCE_DIR
POSTGRES_IMAGE = "localhost/pgboot-test-postgres:15"
POSTGRES_CONTEXT = os.path.join(HERE, "postgres")
BUILD_KEY_LABEL = "org.pgboot.test.build-key"

COMPOSE_FILE = os.path.join(SOURCE_DIR, "docker-compose.yml")
DEV_FILE = os.path.join(SOURCE_DIR, "docker-compose.dev.yml")
GATE_FILE = os.path.join(SOURCE_DIR, "docker-compose.gate.yml")
TEST_OVERRIDE = os.path.join(HERE, "compose.test.yml")
MIGRATE_OVERRIDE = os.path.join(HERE, "compose.test.migrate.yml")
MIGRATIONS_OVERRIDE = os.path.join(HERE, "compose.test.migrations.yml")
PROD_FILES = [COMPOSE_FILE, TEST_OVERRIDE, MIGRATE_OVERRIDE]
DEV_FILES = [DEV_FILE, TEST_OVERRIDE]
GATE_FILES = [GATE_FILE, TEST_OVERRIDE, MIGRATE_OVERRIDE]

SECRETS_DIR = os.path.join(SOURCE_DIR, "deploy", "compose", "secrets")
# What the example app serves at /cgi-bin/orders once the migrations ran.
ORDERS = "1 ada@example.com 4200 paid"


def log(msg):
    print("compose: " + msg, file=sys.stderr, flush=True)


def read_secret(name):
    """The repository's example secret (deploy/compose/secrets/NAME), one newline dropped."""
    with open(os.path.join(SECRETS_DIR, name)) as f:
        text = f.read()
    return text[:-1] if text.endswith("\n") else text


def repo_versions():
    """The versions of the repository's migrations/ (what the images carry)."""
    d = os.path.join(SOURCE_DIR, "migrations")
    return sorted(f.split("_", 1)[0] for f in os.listdir(d) if f.endswith(".sql"))


def docker_compose(files, *args, project=None, variables=None, docker_host=None, timeout=300,
                   check=True):
    """docker-compose [-p PROJECT] -f FILE... ARGS in the source tree, with podman's
    environment, `variables` for the files' ${...} and, for commands that need a
    daemon, DOCKER_HOST. PGBOOT_TEST_* variables of the caller's environment are not
    passed on: only `variables` count. With check, a non-zero exit raises
    AssertionError with everything it printed. Returns the CompletedProcess (text)."""
    if shutil.which("docker-compose") is None:
        raise RuntimeError("docker-compose is missing: apt-get install docker-compose "
                           "(scripts/setup.sh does)")
    cmd = ["docker-compose", "--no-ansi"] + (["-p", project] if project else [])
    for f in files:
        cmd += ["-f", f]
    cmd += [str(a) for a in args]
    env = {k: v for k, v in images.podman_env().items() if not k.startswith("PGBOOT_TEST_")}
    env.update(variables or {})
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    p = subprocess.run(cmd, env=env, cwd=SOURCE_DIR, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d\n--- stdout ---\n%s\n--- stderr ---\n%s"
                             % (" ".join(cmd), p.returncode, p.stdout, p.stderr))
    return p


# ---- the test postgres image --------------------------------------------------------

def _postgres_build_key():
    h = hashlib.sha256()
    for name in sorted(os.listdir(POSTGRES_CONTEXT)):
        with open(os.path.join(POSTGRES_CONTEXT, name), "rb") as f:
            h.update(name.encode() + b"\0" + f.read() + b"\0")
    h.update(images.image_inspect(images.BASE_IMAGE)["Id"].encode())
    return h.hexdigest()


def ensure_postgres_image():
    """POSTGRES_IMAGE, built when missing or when tests/compose/postgres/ or the base
    image changed. Needs the base image: call images.ensure_images() first. Returns
    True when it built."""
    with images._locked():
        key = _postgres_build_key()
        if images.image_exists(POSTGRES_IMAGE):
            labels = images.image_inspect(POSTGRES_IMAGE)["Config"].get("Labels") or {}
            if labels.get(BUILD_KEY_LABEL) == key:
                return False
        t0 = time.monotonic()
        images.podman("build", "--network", "host", "--pull=never", "--label",
                      "%s=%s" % (BUILD_KEY_LABEL, key), "-t", POSTGRES_IMAGE, POSTGRES_CONTEXT,
                      timeout=1200)
        log("podman build tests/compose/postgres -> %s: %.1fs" % (POSTGRES_IMAGE,
                                                                  time.monotonic() - t0))
        return True


def ensure_all_images():
    """images.py's images (a no-op when its fixture ran) and POSTGRES_IMAGE."""
    images.ensure_images()
    ensure_postgres_image()


# ---- podman's Docker-compatible API -------------------------------------------------------

def _die_with_parent():
    """In the child before exec: SIGTERM it when the suite's process dies, so a suite
    killed by CTest's timeout leaves no podman service behind (PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)


def _ping(sock_path):
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(sock_path)
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
            return s.recv(64).split(b"\r\n", 1)[0].endswith(b" 200 OK")
    except OSError:
        return False


class PodmanService:
    """`podman system service --time=0` on a private socket. start() waits until it
    answers /_ping; stop() ends that process by its pid."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pgboot-podman-")
        self.sock = os.path.join(self.dir, "podman.sock")
        self.log_path = os.path.join(self.dir, "service.log")
        self.proc = None

    def start(self, timeout=30):
        with open(self.log_path, "w") as log_file:
            self.proc = subprocess.Popen(
                ["podman", "system", "service", "--time=0", "unix://" + self.sock],
                env=images.podman_env(), stdin=subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while not _ping(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("podman system service did not answer on %s:\n%s"
                                   % (self.sock, self.log_text()))
            time.sleep(0.05)
        return self

    def log_text(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def url(self):
        """DOCKER_HOST for this service."""
        return "unix://" + self.sock

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- one Compose project ---------------------------------------------------------------

class Project:
    """A Compose project with a unique name over `files`, torn down (`down -v`, then
    anything podman still holds under its label) by the test's cleanup.

    `vars` are the variables the test overrides interpolate (free ports for postgres
    and the app, the secrets directory); the test's own database_url secret, pointing
    at 127.0.0.1 and that port, is written here. A test may add variables (e.g.
    PGBOOT_TEST_MIGRATIONS) before up()."""

    def __init__(self, test, files, prefix="pgbootc"):
        if _service is None:
            raise RuntimeError("no podman service: the suite must use compose_tools' "
                               "setUpModule/tearDownModule")
        self.name = "%s%d%s" % (prefix, os.getpid(), uuid.uuid4().hex[:8])
        self.files = list(files)
        self.dir = temp_dir(test)
        self.pg_port = free_port()
        self.app_port = free_port()
        self.password = read_secret("postgres_password")
        self.url = "postgres://app:%s@127.0.0.1:%d/app" % (self.password, self.pg_port)
        self.dir.write("secrets/database_url", self.url + "\n", mode=0o644)
        self.vars = {"PGBOOT_TEST_PG_PORT": str(self.pg_port),
                     "PGBOOT_TEST_APP_PORT": str(self.app_port),
                     "PGBOOT_TEST_SECRETS": self.dir / "secrets"}
        self.runnable_file = None
        test.addCleanup(self.down)

    def compose(self, *args, timeout=300, check=True, files=None):
        """docker_compose() of this project: its files (the runnable one once made),
        its variables, the suite's podman service."""
        files = files or ([self.runnable_file] if self.runnable_file else self.files)
        return docker_compose(files, *args, project=self.name, variables=self.vars,
                              docker_host=_service.url(), timeout=timeout, check=check)

    def config(self):
        """The merged configuration of self.files, as Compose itself renders it."""
        return yaml.safe_load(self.compose("config", files=self.files).stdout)

    def make_runnable(self, edit=None):
        """Writes the merged configuration, without `ports` (see the module's
        docstring) and changed by edit(config) if given, and makes it the file later
        compose() calls use. Returns that configuration."""
        cfg = self.config()
        for svc in cfg["services"].values():
            if svc.get("network_mode") == "host":
                svc.pop("ports", None)
        if edit:
            edit(cfg)
        self.runnable_file = self.dir.write("compose.run.yml", yaml.safe_dump(cfg, sort_keys=False))
        return cfg

    def container(self, service, index=1):
        """docker-compose 1.29's name for a service's container."""
        return "%s_%s_%d" % (self.name, service, index)

    def up(self, *args, timeout=300):
        """`up -d --no-build ARGS` (check=False) while the healthchecks run in a loop;
        returns the CompletedProcess with .elapsed."""
        if self.runnable_file is None:
            self.make_runnable()
        with open(self.runnable_file) as f:
            checked = [self.container(name) for name, svc in yaml.safe_load(f)["services"].items()
                       if svc.get("healthcheck") and not svc["healthcheck"].get("disable")]
        done = threading.Event()
        loop = threading.Thread(target=_healthcheck_loop, args=(checked, done), daemon=True)
        loop.start()
        t0 = time.monotonic()
        try:
            p = self.compose("up", "-d", "--no-build", *args, timeout=timeout, check=False)
        finally:
            done.set()
            loop.join(30)
        p.elapsed = time.monotonic() - t0
        return p

    def state(self, service, index=1):
        return images.container_state(self.container(service, index))

    def logs(self, service, index=1):
        return images.logs(self.container(service, index))

    def containers(self):
        """Names of every container podman holds for this project."""
        p = images.podman("ps", "-a", "--filter", "label=com.docker.compose.project=" + self.name,
                          "--format", "{{.Names}}", check=False)
        return sorted(p.stdout.split())

    def psql(self, sql):
        """Runs SQL in the project's postgres container as `app` (trust over its Unix
        socket); returns the unaligned, tuples-only output."""
        return images.podman("exec", self.container("postgres"), "psql", "-X", "-A", "-t", "-q",
                             "-v", "ON_ERROR_STOP=1", "-U", "app", "-d", "app", "-c", sql).stdout

    def down(self):
        files = [self.runnable_file] if self.runnable_file else self.files
        p = self.compose("down", "-v", "--remove-orphans", "-t", "5", files=files, timeout=180,
                         check=False)
        if p.returncode != 0:
            log("down -v of %s exited %d:\n%s" % (self.name, p.returncode, p.stderr))
        label = "label=com.docker.compose.project=" + self.name
        for name in self.containers():
            images.remove_container(name)
        vols = images.podman("volume", "ls", "-q", "--filter", label, check=False).stdout.split()
        for v in vols:
            images.podman("volume", "rm", "--force", v, check=False)


_service = None


def setUpModule():
    """For the suites that run containers (import it into the test module): the
    images, then one podman service for the whole module."""
    global _service
    ensure_all_images()
    _service = PodmanService().start()


def tearDownModule():
    global _service
    if _service is not None:
        _service.stop()
        _service = None


def _healthcheck_loop(names, done, interval=0.5):
    """What podman's systemd timers would do: `podman healthcheck run` for each
    container until it is healthy (a container that does not exist yet is simply
    tried again)."""
    pending = list(names)
    while pending and not done.is_set():
        for name in list(pending):
            p = images.podman("healthcheck", "run", name, check=False, timeout=60)
            if p.returncode == 0:
                pending.remove(name)
        done.wait(interval)


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def timestamp_ns(text):
    """podman's RFC 3339 times (nanoseconds, trailing zeros trimmed) -> ns since the epoch."""
    m = _RFC3339.match(text)
    if not m:
        raise ValueError("not an RFC 3339 time: %r" % text)
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    secs = datetime.datetime.fromisoformat(m.group(1) + zone).timestamp()
    return int(secs) * 10**9 + int((m.group(2) or "0").ljust(9, "0")[:9])


def http_get(port, path, timeout=30):
    """GET http://127.0.0.1:PORT/PATH, retried until it answers 200 or the timeout;
    returns the body (text). The app listens a moment after its container started."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
                return r.read().decode()
        except (urllib.error.URLError, ConnectionError, OSError) as e:
            last = e
            time.sleep(0.2)
    raise AssertionError("http://127.0.0.1:%d%s did not answer within %ss: %s"
                         % (port, path, timeout, last))


def main(argv):
    cmd = argv[1] if len(argv) > 1 else "build"
    if cmd == "build":
        ensure_all_images()
        return 0
    if cmd == "clean":
        images.podman("rmi", "--force", POSTGRES_IMAGE, check=False)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
