"""The previous release of pgboot, built from this repository's history: the commit
named in tests/previous_release.json, checked out with `git worktree` and built
(target pgboot, dynamically linked) once into the build tree, then reused.

    python3 -m harness.previous_release build   # the CTest fixture; prints the binary

Suites call previous_pgboot(), which builds it when the fixture has not. A clone
without that commit fails loudly: the upgrade tests cannot be skipped away.
"""

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time

from harness.proc import source_dir


def _release():
    with open(os.path.join(source_dir(), "tests", "previous_release.json")) as f:
        return json.load(f)


def _root():
    d = os.environ.get("PGBOOT_PREVIOUS_RELEASE_DIR")
    if not d:
        raise RuntimeError("PGBOOT_PREVIOUS_RELEASE_DIR is not set (tests/tests.cmake sets it "
                           "to <build>/previous-release)")
    return d


def _git(*args, cwd=None):
    return subprocess.run(["git", "-C", cwd or source_dir()] + list(args),
                          capture_output=True, text=True)


def _log(msg):
    sys.stderr.write("previous_release: %s\n" % msg)
    sys.stderr.flush()


def _build(commit, root, binary):
    full = _git("rev-parse", "--verify", "--quiet", commit + "^{commit}")
    if full.returncode != 0:
        raise RuntimeError(
            "this clone lacks commit %s, the previous release named in "
            "tests/previous_release.json; the upgrade tests need it (fetch the full "
            "history: git fetch --unshallow)" % commit)
    tree = os.path.join(root, "src")
    _git("worktree", "prune")
    if os.path.isdir(tree):
        shutil.rmtree(tree)
    added = _git("worktree", "add", "--force", "--detach", tree, full.stdout.strip())
    if added.returncode != 0:
        raise RuntimeError("git worktree add %s failed: %s" % (tree, added.stderr))
    pgserver = os.path.realpath(os.path.join(source_dir(), "third_party", "pgserver"))
    build = os.path.join(root, "build")
    start = time.monotonic()
    for cmd in (["cmake", "-S", tree, "-B", build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                 "-DPGBOOT_STATIC=OFF", "-DPGBOOT_BUILD_TESTS=OFF", "-DPGSERVER_ROOT=" + pgserver],
                ["cmake", "--build", build, "--target", "pgboot"]):
        cp = subprocess.run(cmd, capture_output=True, text=True)
        if cp.returncode != 0:
            raise RuntimeError("%s failed:\n%s\n%s" % (" ".join(cmd), cp.stdout[-4000:],
                                                       cp.stderr[-4000:]))
    shutil.copy2(os.path.join(build, "pgboot"), binary + ".tmp")
    os.rename(binary + ".tmp", binary)
    _log("built %s in %.0f s" % (binary, time.monotonic() - start))


def previous_pgboot():
    """The previous release's binary, built on first use (under a lock, so suites
    running in parallel build it once)."""
    rel = _release()
    root = _root()
    os.makedirs(root, exist_ok=True)
    binary = os.path.join(root, "pgboot-%s-%s" % (rel["version"], rel["commit"]))
    with open(os.path.join(root, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.access(binary, os.X_OK):
            _build(rel["commit"], root, binary)
    return binary


if __name__ == "__main__":
    if sys.argv[1:] != ["build"]:
        sys.exit("usage: python3 -m harness.previous_release build")
    try:
        print(previous_pgboot())
    except RuntimeError as e:
        sys.exit("previous_release: %s" % e)
