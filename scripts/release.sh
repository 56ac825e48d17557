#!/usr/bin/env bash
# Builds a release: both static binaries, both images and a two-platform
# manifest, and writes them with their checksums to dist/.
#
#   scripts/release.sh [VERSION]
#
# The version comes from one place, CMake's project() in CMakeLists.txt. A
# VERSION argument is only a check: when it differs, nothing is built (exit 2).
# The commit is `git rev-parse HEAD` (with -dirty when tracked files differ); it
# is passed into every build, so `pgboot --version` and the image's revision
# label report it (an image's build context has no .git).
#
# dist/ (PGBOOT_DIST_DIR) receives:
#   pgboot-VERSION-linux-amd64, pgboot-VERSION-linux-arm64    static, stripped
#   pgboot-migration-VERSION-linux-amd64.tar, ...-linux-arm64.tar
#                                     one image each (docker load / podman load)
#   pgboot-migration-VERSION.oci.tar  the two-platform manifest list (OCI
#                                     layout: skopeo copy --all oci-archive:...)
#   SHA256SUMS                        sha256sum -c SHA256SUMS checks them all
#
# Needs podman (set CONTAINERS_CONF when the machine needs one) and the
# debian:bookworm base image (pulled when missing). Build trees are kept in
# build/release-ARCH (PGBOOT_RELEASE_BUILD_ROOT/ARCH), so a second run rebuilds
# only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(sed -n 's/^project(pgboot VERSION \([0-9][0-9.]*\).*/\1/p' CMakeLists.txt)
if [ -z "$VERSION" ]; then
  echo "release: no 'project(pgboot VERSION x.y.z' line in CMakeLists.txt" >&2
  exit 1
fi
if [ $# -gt 1 ]; then
  echo "usage: scripts/release.sh [VERSION]" >&2
  exit 2
fi
if [ $# -eq 1 ] && [ "$1" != "$VERSION" ]; then
  echo "release: asked for $1 but CMakeLists.txt's project() says $VERSION;" \
       "change project() first (the version is kept in one place)" >&2
  exit 2
fi

COMMIT=$(git rev-parse HEAD)
if ! git diff --quiet HEAD --; then
  COMMIT="$COMMIT-dirty"
  echo "release: warning: tracked files differ from HEAD; the commit is $COMMIT" >&2
fi
DIST=${PGBOOT_DIST_DIR:-dist}
BUILD_ROOT=${PGBOOT_RELEASE_BUILD_ROOT:-build/release}
IMAGE=${PGBOOT_RELEASE_IMAGE:-localhost/pgboot-migration}
mkdir -p "$DIST"
DIST=$(cd "$DIST" && pwd)
say() { echo "release: $*" >&2; }
t0=$(date +%s)

made=()
for arch in amd64 arm64; do
  out="$DIST/pgboot-$VERSION-linux-$arch"
  scripts/build-static.sh --arch "$arch" --build-dir "$BUILD_ROOT-$arch" --commit "$COMMIT" \
    --out "$out"
  made+=("$out")
done

# The images: Dockerfile.migration cross-compiles in a build stage on the build
# machine's platform (podman 4.3 needs BUILDPLATFORM spelled out).
podman manifest rm "$IMAGE:$VERSION" >/dev/null 2>&1 || true
podman manifest create "$IMAGE:$VERSION" >/dev/null
for arch in amd64 arm64; do
  tag="$IMAGE:$VERSION-$arch"
  say "podman build --platform linux/$arch -> $tag"
  podman build --network host --platform "linux/$arch" --build-arg BUILDPLATFORM=linux/amd64 \
    --build-arg "VERSION=$VERSION" --build-arg "REVISION=$COMMIT" \
    -f Dockerfile.migration -t "$tag" . >"$DIST/.build-$arch.log" 2>&1 || {
      tail -n 40 "$DIST/.build-$arch.log" >&2; exit 1; }
  rm -f "$DIST/.build-$arch.log"
  podman manifest add "$IMAGE:$VERSION" "containers-storage:$tag" >/dev/null
  archive="$DIST/pgboot-migration-$VERSION-linux-$arch.tar"
  rm -f "$archive"
  podman save --format docker-archive -o "$archive" "$tag" >/dev/null
  made+=("$archive")
done
oci="$DIST/pgboot-migration-$VERSION.oci.tar"
rm -f "$oci"
podman manifest push --all "$IMAGE:$VERSION" "oci-archive:$oci:pgboot-migration:$VERSION" \
  >/dev/null 2>&1
made+=("$oci")

(cd "$DIST" && for f in "${made[@]}"; do basename "$f"; done | xargs sha256sum > SHA256SUMS.tmp &&
  mv SHA256SUMS.tmp SHA256SUMS)
made+=("$DIST/SHA256SUMS")

echo "pgboot $VERSION (commit $COMMIT), in $(( $(date +%s) - t0 )) s:"
for f in "${made[@]}"; do
  printf '  %-60s %10d bytes\n' "$f" "$(stat -c %s "$f")"
done
echo "  images: $IMAGE:$VERSION-amd64, $IMAGE:$VERSION-arm64; manifest list $IMAGE:$VERSION"
