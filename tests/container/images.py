#!/usr/bin/env python3
"""The container images the container suites (and later the compose suites) run.

    python3 tests/container/images.py build [--force]   # everything below; prints each step's time
    python3 tests/container/images.py env     # `export CONTAINERS_CONF=...`, for podman by hand
    python3 tests/container/images.py clean   # remove the images built here (keeps the base)

No image can be pulled on the machines we test on, so everything is made
locally, offline (only the machine's own Debian mirror is reachable):

Once per machine (kept in PGBOOT_CONTAINER_CACHE, default /var/tmp/pgboot-container):
  - podman, runc, debootstrap and catatonit, installed with apt-get when missing
    (as root);
  - containers.conf: the runc runtime (crun refuses this machine kind's hybrid
    cgroups) and no default ulimits. Every podman call goes through podman_env();
  - BASE_IMAGE, docker.io/library/debian:bookworm, made the way the official one
    is (debootstrap --variant=minbase from the machine's apt mirror, the same apt
    tweaks, `podman import`). It is kept until someone removes it; an image of
    that name that already exists (the real one, pulled) is used as it is.

Once per source tree:
  - MIGRATION_IMAGE from Dockerfile.migration, APP_EXEC_IMAGE and APP_INIT_IMAGE
    from examples/app/Dockerfile, all built from a clean export of the tree (the
    files `git ls-files` lists, tracked or new, never build/ or third_party/):
    exactly what a clean clone holds. A stamp keyed by the hash of that export
    and the base image id makes a second call a no-op; when something changed,
    podman's layer cache rebuilds only what depends on it.

ensure_images() is safe to call from many processes at once (an flock
serialises them); the CTest fixture `container_images` calls it first so the
suites find the images ready.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("PGBOOT_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
CACHE_DIR = os.environ.get("PGBOOT_CONTAINER_CACHE", "/var/tmp/pgboot-container")

BASE_IMAGE = "docker.io/library/debian:bookworm"
MIGRATION_IMAGE = "localhost/pgboot-migration:test"
APP_EXEC_IMAGE = "localhost/pgboot-app:exec"   # the app handles SIGTERM itself; pgboot execs it
APP_INIT_IMAGE = "localhost/pgboot-app:init"   # busybox httpd, which does not; pgboot --init
IMAGES = (MIGRATION_IMAGE, APP_EXEC_IMAGE, APP_INIT_IMAGE)

CONTAINERS_CONF = """\
# Written by tests/container/images.py. runc: crun refuses this machine kind's
# hybrid cgroups. No default ulimits: raising nofile fails in unprivileged VMs.
[containers]
default_ulimits = []

[engine]
runtime = "runc"
"""

# The official image's apt tweaks (docker-library/debian, debuerreotype).
APT_TWEAKS = {
    "etc/apt/apt.conf.d/docker-clean":
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n',
    "etc/apt/apt.conf.d/docker-no-languages": 'Acquire::Languages "none";\n',
    "etc/apt/apt.conf.d/docker-gzip-indexes":
        'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n',
    "etc/apt/apt.conf.d/docker-autoremove-suggests":
        'Apt::AutoRemove::SuggestsImportant "false";\n',
    "usr/sbin/policy-rc.d": "#!/bin/sh\nexit 101\n",
}


def log(msg):
    print("images: " + msg, file=sys.stderr, flush=True)


# ---- podman -------------------------------------------------------------------------

def conf_path():
    return os.path.join(CACHE_DIR, "containers.conf")


def podman_env(extra=None):
    """os.environ plus CONTAINERS_CONF (and `extra`): the environment for every podman
    (and docker-compose through `podman system service`) call."""
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = conf_path()
    env.update(extra or {})
    return env


def podman(*args, check=True, timeout=600, input=None):
    """Runs `podman ARGS` and returns a CompletedProcess (text). With check, a non-zero
    exit raises AssertionError carrying the command and everything it printed."""
    cmd = ["podman"] + [str(a) for a in args]
    p = subprocess.run(cmd, env=podman_env(), input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d\n--- stdout ---\n%s\n--- stderr ---\n%s"
                             % (" ".join(cmd), p.returncode, p.stdout, p.stderr))
    return p


def image_exists(ref):
    return podman("image", "exists", ref, check=False).returncode == 0


def image_inspect(ref):
    return json.loads(podman("image", "inspect", ref).stdout)[0]


def unique_name(prefix):
    """A container name nobody else uses: prefix-pid-random."""
    return "%s-%d-%s" % (prefix, os.getpid(), uuid.uuid4().hex[:8])


def container_state(name):
    """`podman inspect` State of a container (Status, ExitCode, Pid, StartedAt, ...)."""
    return json.loads(podman("container", "inspect", name).stdout)[0]["State"]


def remove_container(name):
    """podman rm --force, never raising: for cleanups."""
    podman("rm", "--force", "--time", "0", name, check=False, timeout=60)


def logs(name):
    """The container's stdout and stderr, interleaved."""
    p = podman("logs", name, check=False)
    return p.stdout + p.stderr


def timed_stop(name, timeout):
    """`podman stop -t TIMEOUT NAME`; returns the seconds it took."""
    t0 = time.monotonic()
    podman("stop", "-t", timeout, name, timeout=timeout + 60)
    return time.monotonic() - t0


@contextlib.contextmanager
def _locked(name="lock"):
    """An flock on CACHE_DIR/name: "lock" guards the images below; a suite that builds
    an image of its own for minutes (test_multiarch) takes another, so that the
    others are not kept waiting."""
    os.makedirs(CACHE_DIR, exist_ok=True)
    with open(os.path.join(CACHE_DIR, name), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Timer:
    """Collects named step durations (seconds) for the report."""

    def __init__(self):
        self.steps = []

    @contextlib.contextmanager
    def step(self, name):
        t0 = time.monotonic()
        yield
        dt = time.monotonic() - t0
        self.steps.append((name, dt))
        log("%s: %.1fs" % (name, dt))


# ---- tools ---------------------------------------------------------------------------

def ensure_tools(timer):
    # catatonit is the pause process of a pod's infra container: without it (podman
    # only recommends it) `podman kube play` cannot create a pod.
    missing = [p for p in ("podman", "runc", "debootstrap", "catatonit") if shutil.which(p) is None]
    if missing:
        if os.geteuid() != 0:
            raise RuntimeError("%s missing; install them (apt-get install podman runc debootstrap "
                               "catatonit) "
                               "or run as root" % " ".join(missing))
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        with timer.step("apt-get install " + " ".join(missing)):
            # Other suites may hold dpkg's lock (ctest -j2): wait for it.
            apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]
            subprocess.run(apt + ["update", "-qq"], env=env, check=True)
            subprocess.run(apt + ["install", "-y", "-qq", "--no-install-recommends"] + missing,
                           env=env, check=True, stdout=subprocess.DEVNULL)
    os.makedirs(CACHE_DIR, exist_ok=True)
    path = conf_path()
    try:
        with open(path) as f:
            current = f.read()
    except FileNotFoundError:
        current = None
    if current != CONTAINERS_CONF:
        with open(path + ".tmp", "w") as f:
            f.write(CONTAINERS_CONF)
        os.replace(path + ".tmp", path)


# ---- the offline base image -------------------------------------------------------------

def _deb822_entries(text):
    for para in re.split(r"\n\s*\n", text):
        fields = {}
        for line in para.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.split()
        if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"])[0] != "no":
            for uri in fields.get("uris", []):
                yield uri, fields.get("suites", [])


def apt_mirrors():
    """(debian, debian-security) URIs from this machine's apt sources, so debootstrap
    and the image's apt use the mirror this machine can reach. PGBOOT_DEBIAN_MIRROR
    overrides the first."""
    entries = []
    d = "/etc/apt/sources.list.d"
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        path = os.path.join(d, name)
        try:
            text = open(path).read()
        except OSError:
            continue
        if name.endswith(".sources"):
            entries += list(_deb822_entries(text))
        elif name.endswith(".list"):
            entries += _one_line_entries(text)
    try:
        entries += _one_line_entries(open("/etc/apt/sources.list").read())
    except OSError:
        pass
    main = next((u for u, s in entries if "bookworm" in s), "http://deb.debian.org/debian")
    security = next((u for u, s in entries if "bookworm-security" in s),
                    "http://deb.debian.org/debian-security")
    return os.environ.get("PGBOOT_DEBIAN_MIRROR", main), security


def _one_line_entries(text):
    out = []
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            out.append((words[1], [words[2]]))
    return out


def _mounts_under(root):
    root = os.path.realpath(root)
    with open("/proc/mounts") as f:
        points = [l.split()[1] for l in f]
    return [p for p in points if p == root or p.startswith(root + "/")]


def _remove_rootfs(root):
    """rm -rf of a debootstrap tree, after unmounting what a failed run left mounted
    (deleting through a mounted /proc or /dev must never happen)."""
    for m in sorted(_mounts_under(root), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], check=False)
    left = _mounts_under(root)
    if left:
        raise RuntimeError("still mounted, not removing %s: %s" % (root, left))
    shutil.rmtree(root, ignore_errors=True)


def ensure_base(timer):
    """BASE_IMAGE, made once per machine when it does not exist."""
    if image_exists(BASE_IMAGE):
        return False
    if os.geteuid() != 0:
        raise RuntimeError("%s is missing and making it (debootstrap) needs root" % BASE_IMAGE)
    mirror, security = apt_mirrors()
    root = os.path.join(CACHE_DIR, "rootfs.tmp")
    if os.path.exists(root):
        _remove_rootfs(root)
    try:
        with timer.step("debootstrap --variant=minbase bookworm (%s)" % mirror):
            p = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", root, mirror],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if p.returncode != 0:
                raise RuntimeError("debootstrap failed (exit %d):\n%s" % (p.returncode, p.stdout[-4000:]))
        # What docker-library/debian does to a debootstrap tree.
        for rel, content in APT_TWEAKS.items():
            path = os.path.join(root, rel)
            with open(path, "w") as f:
                f.write(content)
            os.chmod(path, 0o755 if rel.startswith("usr/sbin/") else 0o644)
        with open(os.path.join(root, "etc/apt/sources.list.d/debian.sources"), "w") as f:
            f.write("Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\n"
                    "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
                    "Types: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\n"
                    "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
                    % (mirror, security))
        for rel in ("etc/apt/sources.list", "etc/hostname", "etc/resolv.conf"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(root, rel))
        for rel in ("var/lib/apt/lists", "var/cache/apt/archives", "var/log/apt"):
            d = os.path.join(root, rel)
            for name in os.listdir(d):
                path = os.path.join(d, name)
                if os.path.isfile(path) and name not in ("lock",):
                    os.remove(path)
        for name in os.listdir(os.path.join(root, "var/cache/apt")):
            if name.endswith(".bin"):
                os.remove(os.path.join(root, "var/cache/apt", name))
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(root, "var/log/bootstrap.log"))
        open(os.path.join(root, "etc/machine-id"), "w").close()
        with timer.step("podman import %s" % BASE_IMAGE):
            tar = subprocess.Popen(["tar", "--numeric-owner", "-C", root, "-c", "."],
                                   stdout=subprocess.PIPE)
            imp = subprocess.run(["podman", "import", "--change", 'CMD ["bash"]',
                                  "--message", "debootstrap --variant=minbase bookworm " + mirror,
                                  "-", BASE_IMAGE], stdin=tar.stdout, env=podman_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            tar.stdout.close()
            if tar.wait() != 0 or imp.returncode != 0:
                raise RuntimeError("podman import failed: %s" % imp.stderr)
    finally:
        _remove_rootfs(root)
    return True


# ---- the source tree's images ----------------------------------------------------------

def _tree_files():
    """Relative paths a clean clone would hold, plus new files not ignored by git."""
    try:
        out = subprocess.run(["git", "-C", SOURCE_DIR, "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], stdout=subprocess.PIPE, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    skip = re.compile(r"(^|/)(node_modules|__pycache__|\.git)(/|$)")
    return sorted(p for p in out.decode().split("\0")
                  if p and not skip.search(p) and os.path.isfile(os.path.join(SOURCE_DIR, p)))


def export_tree(dest):
    """Copies a clean clone's files into dest; returns the sha256 over paths, modes and
    contents. Outside a git checkout the tree is used as it is (.dockerignore keeps
    local state out), and dest stays empty: the return value is then None."""
    files = _tree_files()
    if files is None:
        return None
    h = hashlib.sha256()
    for rel in files:
        src = os.path.join(SOURCE_DIR, rel)
        dst = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)
        with open(src, "rb") as f:
            data = f.read()
        h.update(b"%s\0%o\0%d\0" % (rel.encode(), os.stat(src).st_mode & 0o111, len(data)))
        h.update(data)
    return h.hexdigest()


def project_version():
    with open(os.path.join(SOURCE_DIR, "CMakeLists.txt")) as f:
        m = re.search(r"project\(\s*pgboot\s+VERSION\s+([0-9.]+)", f.read())
    return m.group(1) if m else "0.0.0"


def revision():
    p = subprocess.run(["git", "-C", SOURCE_DIR, "rev-parse", "HEAD"], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return p.stdout.strip() if p.returncode == 0 else "unknown"


def build_args():
    return {"VERSION": project_version(), "REVISION": revision()}


def build_arg_flags(args):
    """podman build's `--build-arg K=V` flags for a dict of build arguments."""
    return [flag for k, v in args.items() for flag in ("--build-arg", "%s=%s" % (k, v))]


def read_stamp(path):
    """The key a stamp file records, or None when there is none yet."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def _build(timer, label, context, args):
    with timer.step(label):
        p = subprocess.run(["podman", "build", "--network", "host", "--pull=never"] + args + [context],
                           env=podman_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        if p.returncode != 0:
            raise RuntimeError("%s failed (exit %d):\n%s" % (label, p.returncode, p.stdout[-8000:]))


def build_images(timer, context):
    """podman build of the three images from `context` (a clean export or the tree)."""
    ba = build_arg_flags(build_args())
    _build(timer, "podman build Dockerfile.migration -> " + MIGRATION_IMAGE, context,
           ["-f", os.path.join(context, "Dockerfile.migration"), "-t", MIGRATION_IMAGE] + ba)
    app = os.path.join(context, "examples", "app")
    for target, tag in (("exec", APP_EXEC_IMAGE), ("init", APP_INIT_IMAGE)):
        _build(timer, "podman build examples/app --target %s -> %s" % (target, tag), app,
               ["-f", os.path.join(app, "Dockerfile"), "--target", target, "-t", tag,
                "--build-arg", "PGBOOT_IMAGE=" + MIGRATION_IMAGE])


def ensure_images(force=False):
    """Makes sure the tools, the base image and the three images exist and match the
    source tree. Returns the Timer (its steps are empty when nothing had to be done)."""
    timer = Timer()
    with _locked():
        ensure_tools(timer)
        ensure_base(timer)
        stamp_path = os.path.join(CACHE_DIR, "images.stamp")
        ctx = tempfile.mkdtemp(prefix="context-", dir=CACHE_DIR)
        try:
            tree = export_tree(ctx)
            context = ctx if tree is not None else SOURCE_DIR
            key = json.dumps({"tree": tree, "args": build_args(),
                              "base": image_inspect(BASE_IMAGE)["Id"]}, sort_keys=True)
            if (force or tree is None or read_stamp(stamp_path) != key
                    or not all(image_exists(i) for i in IMAGES)):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(stamp_path)
                build_images(timer, context)
                with open(stamp_path, "w") as f:
                    f.write(key)
            else:
                log("images up to date with the source tree: " + ", ".join(IMAGES))
        finally:
            shutil.rmtree(ctx, ignore_errors=True)
    return timer


def clean():
    for ref in IMAGES:
        podman("rmi", "--force", ref, check=False)
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(CACHE_DIR, "images.stamp"))


def main(argv):
    cmd = argv[1] if len(argv) > 1 else "build"
    if cmd == "build":
        t0 = time.monotonic()
        timer = ensure_images(force="--force" in argv)
        log("ready in %.1fs (%s): %s" % (time.monotonic() - t0,
                                          "; ".join("%s %.1fs" % (n.split(" -> ")[0], dt)
                                                    for n, dt in timer.steps) or "nothing to do",
                                          ", ".join(IMAGES)))
        return 0
    if cmd == "env":
        print("export CONTAINERS_CONF=%s" % conf_path())
        return 0
    if cmd == "clean":
        clean()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
