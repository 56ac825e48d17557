#!/usr/bin/env bash
# pgboot beside dbmate and psql, on one throwaway PostgreSQL: the one command.
#
#   bench/run.sh                       # full run: 1000 migrations, 5 runs -> bench/results/latest.{md,json}
#   bench/run.sh --runs 9              # any bench/bench.py option passes through (see --help)
#   bench/run.sh --smoke --pgboot BIN --out DIR   # what CTest's bench.smoke runs
#
# Installs what it needs (the build/test packages via scripts/setup.sh, npm via apt
# when missing, the pinned dbmate from bench/package-lock.json into bench/.npm), builds
# pgboot with CMAKE_BUILD_TYPE=Release into build-release/ (skipped when --pgboot is
# given), then runs bench/bench.py. Idempotent: a second run installs nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

PGBOOT=""
prev=""
for a in "$@"; do
  case "$a" in --pgboot=*) PGBOOT=${a#--pgboot=} ;; esac
  if [ "$prev" = "--pgboot" ]; then PGBOOT=$a; fi
  prev=$a
done

log() { echo "bench/run.sh: $*" >&2; }

# 1. Debian packages: compiler, libpq, the PostgreSQL 15 server (shared with the
#    test setup), plus npm and strip/file for the bench itself.
scripts/setup.sh >/dev/null
missing=()
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v strip >/dev/null 2>&1 || missing+=(binutils)
command -v file >/dev/null 2>&1 || missing+=(file)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} (apt)"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. dbmate, pinned by bench/package-lock.json (integrity-checked by npm), into
#    bench/.npm (git-ignored). The npm package's optional platform package carries
#    the real Linux binary; the bench runs that binary, not the node wrapper.
case "$(uname -m)" in
  x86_64) PLATFORM=linux-x64 ;;
  aarch64) PLATFORM=linux-arm64 ;;
  *) log "no dbmate npm package for $(uname -m)"; exit 2 ;;
esac
NPM_DIR=bench/.npm
DBMATE=$NPM_DIR/node_modules/@dbmate/$PLATFORM/bin/dbmate
want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dependencies"]["dbmate"])' bench/package.json)
mkdir -p "$NPM_DIR"
(
  # One installer at a time (a manual run and the CTest smoke test may overlap).
  flock 9
  if ! cmp -s bench/package-lock.json "$NPM_DIR/package-lock.json" || [ ! -x "$DBMATE" ] ||
     [ "$("$DBMATE" --version 2>/dev/null)" != "dbmate version $want" ]; then
    log "installing dbmate $want (npm, pinned by bench/package-lock.json)"
    cp bench/package.json bench/package-lock.json "$NPM_DIR/"
    # `npm install` (not `npm ci`): npm leaves the other platforms' optional packages out of
    # the lock file and `npm ci` then refuses it; install still honours the locked versions
    # and integrity hashes.
    npm install --prefix "$NPM_DIR" --no-audit --no-fund --no-save --loglevel=error \
      --cache "$NPM_DIR/cache" >/dev/null
    cmp -s bench/package-lock.json "$NPM_DIR/package-lock.json" ||
      { log "npm changed the lock file: bench/package-lock.json is stale"; exit 2; }
  fi
  [ "$("$DBMATE" --version)" = "dbmate version $want" ] ||
    { log "$DBMATE is not dbmate $want"; exit 2; }
) 9>"$NPM_DIR/.install.lock"

# 3. pgboot, Release, unless the caller brings its own binary (the smoke test does).
EXTRA=()
if [ -z "$PGBOOT" ]; then
  log "building pgboot (Release) in build-release/"
  cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build-release --target pgboot >/dev/null
  EXTRA=(--pgboot build-release/pgboot)
fi

# bench.py imports the test harness package (tests/harness).
export PYTHONPATH="$ROOT/tests${PYTHONPATH:+:$PYTHONPATH}"
exec python3 bench/bench.py --dbmate "$DBMATE" "${EXTRA[@]}" "$@"
