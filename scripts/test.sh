#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds pgboot and runs every test suite.
# This is exactly what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD=${PGBOOT_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DPGBOOT_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD"
# The fixtures pg.start/pg.stop bracket the suites that need the server. The
# fast suites run first; the container suites (podman images) after them.
status=0
ctest --test-dir "$BUILD" --output-on-failure -j2 -LE container "$@" || status=$?
# Each fuzz target for 30 s, seed 1, over its committed corpus (tests/fuzz).
PGBOOT_FUZZ_BUILD="$BUILD/fuzz" tests/fuzz/run.sh 30 || status=$?
ctest --test-dir "$BUILD" --output-on-failure -j2 -L container "$@" || status=$?
exit $status
