#!/usr/bin/env bash
# Builds the static release binary of pgboot for linux/amd64 or linux/arm64 on a
# Debian 12 amd64 machine: natively for amd64, cross-compiled for arm64. The one
# script release.sh, Dockerfile.migration and the arm64 tests build with.
#
#   scripts/build-static.sh [--arch amd64|arm64] [--build-dir DIR] [--sysroot DIR]
#                           [--commit ID] [--out FILE] [--with-tests] [--deps-only]
#
#   --arch        target (default amd64)
#   --build-dir   CMake build tree (default build/static-ARCH); reused: a second
#                 run rebuilds only what changed
#   --sysroot     where the target's libpq-dev and postgresql-server-dev-15 are
#                 unpacked (default BUILD_DIR/sysroot; made once, then reused)
#   --commit      the commit `pgboot --version` reports (default: git HEAD)
#   --out         also write the stripped binary there (checked: static, the
#                 target's architecture, under 8 MB)
#   --with-tests  build unit_tests too (for arm64, run them with qemu-aarch64-static)
#   --deps-only   install the packages and make the sysroot, build nothing
#
# Packages, installed when missing (root, or sudo): cmake ninja-build file and the
# header-only libraries; for amd64 g++ and libssl-dev; for arm64
# crossbuild-essential-arm64 and libssl-dev:arm64 (Multi-Arch: same, after
# `dpkg --add-architecture arm64`). libpq-dev and postgresql-server-dev-15 are not
# Multi-Arch, and the latter drags in ~450 MB of clang/LLVM: both are fetched
# with `apt-get download PKG:ARCH` and unpacked with `dpkg-deb -x` into the
# sysroot, for amd64 too, so that libpq.a, libpgcommon.a and the headers of
# libpq's internal struct (read by src/static/pq_sqlstate.c) are one version.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ARCH=amd64 BUILD_DIR="" SYSROOT="" COMMIT="" OUT="" WITH_TESTS=OFF DEPS_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCH=$2; shift 2 ;;
    --build-dir) BUILD_DIR=$2; shift 2 ;;
    --sysroot) SYSROOT=$2; shift 2 ;;
    --commit) COMMIT=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --with-tests) WITH_TESTS=ON; shift ;;
    --deps-only) DEPS_ONLY=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-static: unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$ARCH" in
  amd64) TRIPLET=x86_64-linux-gnu FILE_ARCH="x86-64" ;;
  arm64) TRIPLET=aarch64-linux-gnu FILE_ARCH="ARM aarch64" ;;
  *) echo "build-static: --arch must be amd64 or arm64, not $ARCH" >&2; exit 2 ;;
esac
BUILD_DIR=${BUILD_DIR:-build/static-$ARCH}
SYSROOT=${SYSROOT:-$BUILD_DIR/sysroot}
mkdir -p "$BUILD_DIR" "$SYSROOT"
BUILD_DIR=$(cd "$BUILD_DIR" && pwd) SYSROOT=$(cd "$SYSROOT" && pwd)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -o DPkg::Lock::Timeout=600)
say() { echo "build-static[$ARCH]: $*" >&2; }

# ---- packages -------------------------------------------------------------------
PKGS=(cmake ninja-build file binutils
      libspdlog-dev libfmt-dev libtomlplusplus-dev libcxxopts-dev)
if [ "$WITH_TESTS" = ON ]; then PKGS+=(doctest-dev python3); fi
if [ "$ARCH" = amd64 ]; then
  PKGS+=(g++ libssl-dev)
else
  PKGS+=(crossbuild-essential-arm64 libssl-dev:arm64)
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    say "dpkg --add-architecture arm64"
    $SUDO dpkg --add-architecture arm64
    $SUDO "${APT[@]}" update -qq
  fi
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  $SUDO "${APT[@]}" update -qq
  $SUDO "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- the sysroot: the target's libpq-dev and postgresql-server-dev-15 -------------------
STAMP=$SYSROOT/.pgboot-sysroot
if [ ! -f "$STAMP" ] || [ ! -f "$SYSROOT/usr/lib/$TRIPLET/libpq.a" ] ||
   [ ! -f "$SYSROOT/usr/lib/postgresql/15/lib/libpgcommon.a" ]; then
  say "unpacking libpq-dev:$ARCH and postgresql-server-dev-15:$ARCH into $SYSROOT"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # _apt cannot write into a private mktemp directory; apt then downloads as root.
  chmod 0755 "$tmp"
  fetch() { ( cd "$tmp" && apt-get download "libpq-dev:$ARCH" "postgresql-server-dev-15:$ARCH" ) >/dev/null 2>&1; }
  fetch || { $SUDO "${APT[@]}" update -qq; fetch; } || {
    say "apt-get download libpq-dev:$ARCH postgresql-server-dev-15:$ARCH failed"; exit 1; }
  find "$SYSROOT" -mindepth 1 -delete
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$SYSROOT"; done
  (cd "$tmp" && ls *.deb) > "$STAMP"
  rm -rf "$tmp"
  trap - EXIT
fi
if [ "$DEPS_ONLY" = 1 ]; then
  say "packages and sysroot ready ($(tr '\n' ' ' < "$STAMP"))"
  exit 0
fi

# ---- configure and build ----------------------------------------------------------
# Release (-O3) without -Werror: GCC 12 reports false -Wrestrict positives at -O3
# (GCC bug 105329); CI's -Werror build (-O2) is where warnings fail the build.
CMAKE_ARGS=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DPGBOOT_STATIC=ON -DPGBOOT_WERROR=OFF
            "-DPGBOOT_BUILD_TESTS=$WITH_TESTS" "-DPGBOOT_COMMIT=$COMMIT"
            "-DPGSERVER_ROOT=$SYSROOT" "-DPGBOOT_PQ_ROOT=$SYSROOT")
if [ "$ARCH" = arm64 ]; then
  CMAKE_ARGS+=("-DCMAKE_TOOLCHAIN_FILE=$ROOT/cmake/aarch64-linux-gnu.cmake" "-DPGBOOT_SYSROOT=$SYSROOT")
fi
cmake -S "$ROOT" -B "$BUILD_DIR" "${CMAKE_ARGS[@]}" >/dev/null
targets=(pgboot)
if [ "$WITH_TESTS" = ON ]; then targets+=(unit_tests); fi
cmake --build "$BUILD_DIR" --target "${targets[@]}"

if [ -n "$OUT" ]; then
  STRIP=strip
  if [ "$ARCH" = arm64 ]; then STRIP=aarch64-linux-gnu-strip; fi
  mkdir -p "$(dirname "$OUT")"
  "$STRIP" --strip-all -o "$OUT.tmp" "$BUILD_DIR/pgboot"
  desc=$(file -b "$OUT.tmp")
  size=$(stat -c %s "$OUT.tmp")
  case "$desc" in
    *"$FILE_ARCH"*"statically linked"*) ;;
    *) say "not a static $FILE_ARCH binary: $desc"; rm -f "$OUT.tmp"; exit 1 ;;
  esac
  if [ "$size" -ge 8000000 ]; then say "$size bytes: over the 8 MB target"; rm -f "$OUT.tmp"; exit 1; fi
  mv "$OUT.tmp" "$OUT"
  say "$OUT: $size bytes, $desc"
fi
