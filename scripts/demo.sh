#!/usr/bin/env bash
# The main job on a throwaway PostgreSQL: sets up, builds, starts a server,
# then runs pgboot in front of a demo app that reads through the same URL.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD=${PGBOOT_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja >/dev/null
cmake --build "$BUILD" --target pgboot
STATE=$(mktemp -d /tmp/pgboot-demo-XXXXXX)
trap 'python3 tests/harness/pg.py stop "$STATE" >/dev/null 2>&1 || true; rm -rf "$STATE"' EXIT
python3 tests/harness/pg.py start "$STATE" >/dev/null
DATABASE_URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"].format(db="postgres"))' "$STATE/pg.json")
export DATABASE_URL
echo "demo: pgboot waits for the server, then execs the app (password redacted in logs)"
"$BUILD/pgboot" -- sh -c 'psql "$DATABASE_URL" -X -A -t -c "select version()"'
