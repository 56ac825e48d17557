#!/usr/bin/env bash
# The main job on a throwaway PostgreSQL: sets up, builds, starts a server,
# then runs pgboot as a container entrypoint would — wait for the login,
# apply migrations/ under the lock (RUN_MIGRATIONS=true), exec the app — and
# shows that a second start finds nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD=${PGBOOT_BUILD_DIR:-build}
echo "== demo: building pgboot (static) in $BUILD/"
cmake -S . -B "$BUILD" -G Ninja >/dev/null
# glibc warns about getaddrinfo & co. in static binaries (they work: name
# lookups go through /etc/hosts and DNS); show the output only on failure.
if ! cmake --build "$BUILD" --target pgboot >"$BUILD/demo-build.log" 2>&1; then
  cat "$BUILD/demo-build.log"
  exit 1
fi
STATE=$(mktemp -d /tmp/pgboot-demo-XXXXXX)
export PYTHONPATH="$PWD/tests${PYTHONPATH:+:$PYTHONPATH}"  # the test harness package
trap 'python3 -m harness.cluster stop "$STATE" >/dev/null 2>&1 || true; rm -rf "$STATE"' EXIT
python3 -m harness.cluster start "$STATE" >/dev/null
DATABASE_URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"].format(db="postgres"))' "$STATE/pg.json")
export DATABASE_URL RUN_MIGRATIONS=true PGBOOT_MIGRATIONS_DIR=migrations
APP='psql "$DATABASE_URL" -X -q -c "SELECT version()" -c "SELECT u.email, o.total_cents, o.status FROM orders o JOIN users u ON u.id = o.user_id"'

echo "== demo: first start: pgboot waits, migrates, then execs the app (password redacted in logs)"
"$BUILD/pgboot" -- sh -c "$APP"
echo "== demo: second start: nothing pending, no lock taken, straight to the app"
"$BUILD/pgboot" -- sh -c 'echo "app started"'
echo "== demo: what ran"
"$BUILD/pgboot" status
