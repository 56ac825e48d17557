#!/usr/bin/env python3
"""The linux/arm64 migration image and the two-platform manifest (Dockerfile.migration).

No arm64 base image can be pulled here and the build stage does not need one:
it runs on the build machine's platform (FROM --platform=$BUILDPLATFORM) and
cross-compiles with scripts/build-static.sh. This suite builds the arm64 image
from a clean export of the tree (once per tree hash, like images.py), makes a
manifest list of it and images.py's amd64 image with `podman manifest`, and
checks:

  - `podman image inspect`: linux/arm64, FROM scratch, the Apache-2.0 licence
    label (on both images), version and revision labels;
  - the manifest list names both platforms, each with its image's digest;
  - the image's /pgboot, extracted with `podman create` + `podman cp`, is a
    static aarch64 binary that runs under qemu-aarch64-static: --version
    reports the commit passed in as REVISION, and it migrates the image's own
    /migrations into the shared test server;
  - the container itself runs only where binfmt_misc has qemu-aarch64
    registered (scripts/setup.sh may register it; a test never does): the test
    says which of the two it did.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import images  # noqa: E402
from harness.case import PgbootTestCase, skip_loudly  # noqa: E402
from harness.logs import events  # noqa: E402
from harness.proc import run  # noqa: E402
from harness.server import new_database, url  # noqa: E402

ARM64_IMAGE = "localhost/pgboot-migration:test-arm64"
MANIFEST = "localhost/pgboot-migration:test-multi"
QEMU = shutil.which("qemu-aarch64-static")
BINFMT = "/proc/sys/fs/binfmt_misc/qemu-aarch64"


def ensure_arm64_image():
    """Builds ARM64_IMAGE and MANIFEST unless a stamp says this tree made them."""
    images.ensure_images()
    # Its own lock: the cold arm64 build takes minutes, and under the images' lock every
    # other container suite's setUpModule (ensure_images) would wait for it (compose.up
    # ran out of its 600 s that way).
    with images._locked("arm64.lock"):
        stamp_path = os.path.join(images.CACHE_DIR, "arm64.stamp")
        ctx = tempfile.mkdtemp(prefix="context-", dir=images.CACHE_DIR)
        try:
            tree = images.export_tree(ctx)
            context = ctx if tree is not None else images.SOURCE_DIR
            args = dict(images.build_args(), BUILDPLATFORM="linux/amd64")
            key = json.dumps({"tree": tree, "args": args,
                              "amd64": images.image_inspect(images.MIGRATION_IMAGE)["Id"]},
                             sort_keys=True)
            if (tree is not None and images.read_stamp(stamp_path) == key
                    and images.image_exists(ARM64_IMAGE)
                    and images.podman("manifest", "exists", MANIFEST, check=False).returncode == 0):
                return
            images._build(images.Timer(), "podman build --platform linux/arm64 -> " + ARM64_IMAGE,
                          context, ["--platform", "linux/arm64", "-f",
                                    os.path.join(context, "Dockerfile.migration"),
                                    "-t", ARM64_IMAGE] + images.build_arg_flags(args))
            images.podman("manifest", "rm", MANIFEST, check=False)
            images.podman("manifest", "create", MANIFEST)
            for ref in (images.MIGRATION_IMAGE, ARM64_IMAGE):
                images.podman("manifest", "add", MANIFEST, "containers-storage:" + ref)
            with open(stamp_path, "w") as f:
                f.write(key)
        finally:
            shutil.rmtree(ctx, ignore_errors=True)


def setUpModule():
    ensure_arm64_image()


class MultiArch(PgbootTestCase):

    def extract(self, path):
        """Copies `path` out of the arm64 image (podman create + podman cp) -> host path."""
        name = images.unique_name("pgboot-arm64-cp")
        images.podman("create", "--name", name, ARM64_IMAGE)
        self.addCleanup(images.remove_container, name)
        d = tempfile.mkdtemp(prefix="pgboot-arm64-")
        self.addCleanup(shutil.rmtree, d, True)
        images.podman("cp", "%s:%s" % (name, path), d)
        return os.path.join(d, os.path.basename(path))

    def test_arm64_image_inspect(self):
        info = images.image_inspect(ARM64_IMAGE)
        self.assertEqual((info["Os"], info["Architecture"]), ("linux", "arm64"))
        self.assertEqual(len(info["RootFS"]["Layers"]), 1, info["RootFS"])
        self.assertLess(info["Size"], 10 * 1000 * 1000)
        cfg = info["Config"]
        self.assertEqual(cfg.get("User"), "65532:65532")
        self.assertEqual(cfg.get("Entrypoint"), ["/pgboot"])
        self.assertEqual(cfg.get("Cmd"), ["migrate"])
        for ref in (ARM64_IMAGE, images.MIGRATION_IMAGE):
            labels = images.image_inspect(ref)["Config"].get("Labels") or {}
            with self.subTest(ref=ref):
                self.assertEqual(labels.get("org.opencontainers.image.licenses"), "Apache-2.0")
                self.assertEqual(labels.get("org.opencontainers.image.version"),
                                 images.project_version())
                self.assertEqual(labels.get("org.opencontainers.image.revision"), images.revision())

    def test_manifest_lists_both_platforms(self):
        m = json.loads(images.podman("manifest", "inspect", MANIFEST).stdout)
        got = {(e["platform"]["os"], e["platform"]["architecture"]): e["digest"]
               for e in m["manifests"]}
        self.assertEqual(set(got), {("linux", "amd64"), ("linux", "arm64")})
        for ref, arch in ((images.MIGRATION_IMAGE, "amd64"), (ARM64_IMAGE, "arm64")):
            self.assertEqual(got[("linux", arch)], images.image_inspect(ref)["Digest"], ref)

    def test_extracted_binary_runs_under_qemu(self):
        if not QEMU:
            skip_loudly(self, "qemu-aarch64-static missing (Debian package qemu-user-static)")
        binary = self.extract("/pgboot")
        desc = subprocess.run(["file", "-b", binary], stdout=subprocess.PIPE, text=True).stdout
        self.assertIn("ARM aarch64", desc)
        self.assertIn("statically linked", desc)
        cp = run([binary, "--version"], binary=QEMU)
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout, "pgboot %s (commit %s)\n"
                         % (images.project_version(), images.revision()))
        migrations = self.extract("/migrations")
        db = new_database(self)
        cp = run([binary, "migrate"], binary=QEMU,
                 env={"DATABASE_URL": url(db), "PGBOOT_MIGRATIONS_DIR": migrations})
        self.assertExit(cp, 0)
        n = len([f for f in os.listdir(migrations) if f.endswith(".sql")])
        self.assertGreater(n, 0)
        self.assertEqual(len(events(cp.stderr, "migration.applied")), n, cp.stderr)

    def test_the_arm64_container_where_binfmt_misc_allows(self):
        registered = False
        try:
            registered = open(BINFMT).readline().strip() == "enabled"
        except OSError:
            pass
        if not registered:
            skip_loudly(self, "binfmt_misc has no qemu-aarch64 entry (%s): the arm64 container "
                        "was not run; test_extracted_binary_runs_under_qemu ran its /pgboot "
                        "under qemu-aarch64-static instead" % BINFMT)
        print("\nbinfmt_misc has qemu-aarch64: running the arm64 container itself")
        db = new_database(self)
        name = images.unique_name("pgboot-arm64")
        self.addCleanup(images.remove_container, name)
        p = images.podman("run", "--name", name, "--platform", "linux/arm64", "--network", "host",
                          "-e", "DATABASE_URL=" + url(db), ARM64_IMAGE, check=False, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("migration.applied", p.stderr)


if __name__ == "__main__":
    if sys.argv[1:] == ["build"]:  # the CTest fixture container.arm64_image
        t0 = time.monotonic()
        ensure_arm64_image()
        print("test_multiarch: %s and %s ready in %.1fs" % (ARM64_IMAGE, MANIFEST,
                                                           time.monotonic() - t0))
        sys.exit(0)
    unittest.main()
