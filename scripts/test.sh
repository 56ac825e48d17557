#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds pgboot and runs every test suite.
# This is exactly what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD=${PGBOOT_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DPGBOOT_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD"
# The fixtures pg.start/pg.stop bracket the suites that need the server.
ctest --test-dir "$BUILD" --output-on-failure -j2 "$@"
