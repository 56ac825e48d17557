#!/usr/bin/env bash
# Runs every libFuzzer target of tests/fuzz (README.md there).
#   tests/fuzz/run.sh SECONDS          each target SECONDS over the committed corpus,
#                                      seed 1; exit 1 on any crash, leak or timeout
#   tests/fuzz/run.sh --campaign SECONDS DIR
#                                      a long run: new inputs kept in DIR/<target>,
#                                      crashes in DIR/artifacts (merge them later)
#   tests/fuzz/run.sh --merge DIR      adds what DIR/<target> covers anew to the corpus
#   tests/fuzz/run.sh --known          replays tests/fuzz/known/: with the guards on
#                                      they must pass; without, say which still crash
# PGBOOT_FUZZ_BUILD (default build/fuzz) is the clang build tree; it is
# configured and built here when it does not exist yet.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${PGBOOT_FUZZ_BUILD:-build/fuzz}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
FUZZ=$ROOT/tests/fuzz
TARGETS=()
for src in "$FUZZ"/fuzz_*.cc; do TARGETS+=("$(basename "$src" .cc)"); done

build() {
  if [ ! -f "$BUILD/build.ninja" ]; then
    CC=clang-14 CXX=clang++-14 cmake -S "$ROOT" -B "$BUILD" -G Ninja -DPGBOOT_FUZZ=ON \
      -DPGBOOT_STATIC=OFF -DPGBOOT_BUILD_TESTS=OFF -DPGBOOT_WERROR=ON \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  cmake --build "$BUILD" --target fuzz_all
}

# A scratch cwd: the settings target must not find a ./pgboot.toml, and
# libFuzzer writes nothing into the tree.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgboot-fuzz-run.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# Per input: 10 s is a hang (the targets take microseconds); 2 GB is a leak.
COMMON=(-timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1)

run_ci() {
  local seconds=$1 status=0
  for t in "${TARGETS[@]}"; do
    mkdir -p "$WORK/$t"
    echo "fuzz: $t for ${seconds}s"
    if ! (cd "$WORK" && TMPDIR=$WORK "$BUILD/$t" "${COMMON[@]}" -seed=1 \
          -max_total_time="$seconds" -artifact_prefix="$WORK/$t-" \
          "$WORK/$t" "$FUZZ/corpus/$t" >"$WORK/$t.log" 2>&1); then
      status=1
      tail -n 60 "$WORK/$t.log"
      for a in "$WORK/$t"-*; do
        [ -f "$a" ] && echo "fuzz: $t failed on $a:" && od -c "$a" | head -20
      done
    fi
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+.*DONE' "$WORK/$t.log" |
      sed "s/^/  $t: /" || true
  done
  return $status
}

run_campaign() {
  local seconds=$1 dir=$2
  mkdir -p "$dir/artifacts"
  for t in "${TARGETS[@]}"; do
    mkdir -p "$dir/$t"
    echo "fuzz: campaign $t for ${seconds}s -> $dir/$t"
    (cd "$WORK" && TMPDIR=$WORK "$BUILD/$t" "${COMMON[@]}" -max_total_time="$seconds" \
      -artifact_prefix="$dir/artifacts/$t-" "$dir/$t" "$FUZZ/corpus/$t" \
      >>"$dir/$t.log" 2>&1) || echo "fuzz: $t stopped on a finding (see $dir/artifacts)"
  done
}

run_merge() {
  local dir=$1
  for t in "${TARGETS[@]}"; do
    [ -d "$dir/$t" ] || continue
    (cd "$WORK" && TMPDIR=$WORK "$BUILD/$t" -merge=1 "${COMMON[@]}" "$FUZZ/corpus/$t" "$dir/$t" \
      2>&1 | grep -E 'MERGE-OUTER: [0-9]+ new files' | sed "s/^/$t: /") || true
  done
}

run_known() {
  # No -max_len here: it would cut the deep-nesting reproducers short.
  local status=0 COMMON=(-timeout=10 -rss_limit_mb=2048)
  for t in "${TARGETS[@]}"; do
    [ -d "$FUZZ/known/$t" ] || continue
    for f in "$FUZZ/known/$t"/*; do
      [ -f "$f" ] || continue
      if ! (cd "$WORK" && TMPDIR=$WORK "$BUILD/$t" "${COMMON[@]}" "$f" >"$WORK/known.log" 2>&1); then
        echo "fuzz: $t with the known-bug guard on still fails on $f"; tail -20 "$WORK/known.log"
        status=1
      fi
      if (cd "$WORK" && PGBOOT_FUZZ_KNOWN_BUGS=1 TMPDIR=$WORK "$BUILD/$t" "${COMMON[@]}" "$f" \
            >"$WORK/known.log" 2>&1); then
        echo "fuzz: $t: $(basename "$f") passes without its guard: fixed? move it to corpus/$t"
      else
        echo "fuzz: $t: $(basename "$f") still fails (known, issue 18): $(grep -m1 -E 'ERROR|violated|deadly' "$WORK/known.log" || true)"
      fi
    done
  done
  return $status
}

case "${1:-}" in
  --campaign) build; run_campaign "$2" "$3" ;;
  --merge) build; run_merge "$2" ;;
  --known) build; run_known ;;
  ''|-*) echo "usage: $0 SECONDS | --campaign SECONDS DIR | --merge DIR | --known" >&2; exit 2 ;;
  *) build; run_ci "$1" ;;
esac
