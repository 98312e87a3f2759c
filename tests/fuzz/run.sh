#!/usr/bin/env bash
# run.sh TARGET NAME RUNS SEED_DIR...: one libFuzzer run of TARGET from its seeds.
#   the test suite: RUNS executions over a scratch corpus (new inputs are not kept);
#   ./dev.sh fuzz: $GPUVIRT_FUZZ_SECONDS seconds over the corpus kept in $GPUVIRT_FUZZ_DIR/NAME, crashes
#   written to $GPUVIRT_FUZZ_DIR/crashes/NAME-*.
# The last lines are libFuzzer's final statistics (executions, coverage).
set -eu
exe=$1 name=$2 runs=$3
shift 3
# Scratch space, removed at the end: the target's own temporary root (fuzz_root(), under $TMPDIR) too, since
# libFuzzer leaves with _Exit() and skips the target's atexit handler.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/gpuvirt-fuzz-$name-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export TMPDIR=$scratch
if [ -n "${GPUVIRT_FUZZ_SECONDS:-}" ]; then
        work="$GPUVIRT_FUZZ_DIR/$name" crashes="$GPUVIRT_FUZZ_DIR/crashes"
        mkdir -p "$work" "$crashes"
        limit=(-max_total_time="$GPUVIRT_FUZZ_SECONDS")
else
        work=$scratch/corpus crashes=$scratch
        mkdir "$work"
        limit=(-runs="$runs")
fi
# libFuzzer handles leaks and aborts itself
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:abort_on_error=0:detect_leaks=1"
"$exe" "${limit[@]}" -error_exitcode=1 -timeout_exitcode=1 -max_len=8192 -timeout=20 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$crashes/$name-" "$work" "$@"
