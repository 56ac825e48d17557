#!/usr/bin/env bash
# Installs everything pgboot needs to build and test on a fresh Debian 12
# machine. Idempotent: a second run installs nothing and takes about a second.
#   scripts/setup.sh          build + test dependencies (compiler, libraries,
#                             PostgreSQL 15 server for the test harness)
#   scripts/setup.sh --pid1   plus busybox-static for the PID-1 tests
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

PKGS=(build-essential cmake ninja-build ccache pkg-config file
      libpq-dev libssl-dev zlib1g-dev
      libspdlog-dev libfmt-dev libtomlplusplus-dev libcxxopts-dev doctest-dev
      postgresql-15 postgresql-client-15
      busybox-static util-linux python3 python3-yaml procps
      docker-compose
      pgbouncer openssl
      clang-14 libclang-rt-14-dev  # libFuzzer + sanitizer runtimes (tests/fuzz)
      qemu-user-static  # runs the cross-built arm64 binary and its unit tests (tests/arm64)
      prometheus)  # only for promtool (tests/integration/test_metrics.py); its server stays off

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The prometheus package starts its server wherever services may start (not in
# a container whose policy-rc.d forbids it): keep it stopped and disabled, only
# promtool is wanted. Both checks are no-ops when nothing runs.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled prometheus >/dev/null 2>&1; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
if [ -x /etc/init.d/prometheus ] && /etc/init.d/prometheus status >/dev/null 2>&1; then
  $SUDO /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  $SUDO update-rc.d prometheus disable >/dev/null 2>&1 || true
fi

# libpgcommon.a, libpgport.a and the server headers libpq-int.h needs live in
# postgresql-server-dev-15, which drags in ~450 MB of clang/LLVM. Extract only
# the files we need into third_party/pgserver (git-ignored) instead.
PGS=third_party/pgserver
if [ ! -f "$PGS/usr/lib/postgresql/15/lib/libpgcommon.a" ]; then
  echo "setup: extracting libpgcommon.a/libpgport.a from postgresql-server-dev-15"
  tmp=$(mktemp -d)
  ( cd "$tmp" && apt-get download postgresql-server-dev-15 >/dev/null 2>&1 ) || {
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq; ( cd "$tmp" && apt-get download postgresql-server-dev-15 >/dev/null ); }
  mkdir -p "$PGS"
  dpkg-deb -x "$tmp"/postgresql-server-dev-15_*.deb "$PGS"
  rm -rf "$tmp"
fi
echo "setup: ok"
