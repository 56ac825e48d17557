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
# ASan+UBSan (tests/sanitize/README.md): the unit and integration labels
# against the real server, from a dynamic -O1 build of its own (ccache keeps it
# cheap after the first run). It reuses the main tree's previous-release build.
SAN="$BUILD/sanitize"
case "$BUILD" in /*) PREV="$BUILD/previous-release" ;; *) PREV="$PWD/$BUILD/previous-release" ;; esac
cmake -S . -B "$SAN" -G Ninja -DPGBOOT_SANITIZE=ON -DPGBOOT_STATIC=OFF -DPGBOOT_WERROR=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g" \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" "-DPGBOOT_PREVIOUS_RELEASE_DIR=$PREV" >/dev/null
cmake --build "$SAN" --target pgboot unit_tests
SANITIZED_SUITES=${PGBOOT_SANITIZED_SUITES:-'^(unit|integration)\.'}
ctest --test-dir "$SAN" --output-on-failure -j2 -R "$SANITIZED_SUITES" || status=$?
ctest --test-dir "$BUILD" --output-on-failure -j2 -L container "$@" || status=$?
exit $status
