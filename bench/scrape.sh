#!/usr/bin/env bash
# gpuvirtd's /metrics under load, beside prometheus-node-exporter's on the same machine in the same run.
# Usage: bench/scrape.sh [BUILD_DIR] (default build-release). Needs wrk and prometheus-node-exporter.
# Prints per target: requests/s, latency p50/p99 (wrk --latency, DURATION s, THREADS threads, CONNS
# connections), the body size, and the daemon's resident memory (VmRSS, peak VmHWM) after the load.
set -eu
B=${1:-build-release}
DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
CONNS=${CONNS:-8}
GPUVIRT=$B/src/gpuvirt
GPUVIRTD=$B/src/gpuvirtd
for t in wrk prometheus-node-exporter curl; do
        command -v "$t" >/dev/null || { echo "bench/scrape.sh: $t is not installed"; exit 1; }
done
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gpuvirt-scrape-XXXXXX")
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$TMP"' EXIT

wait_up() { for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "not up: $1"; exit 1; }
rss() { awk '/^VmRSS/{r=$2} /^VmHWM/{h=$2} END{printf "RSS %.1f MiB (peak %.1f MiB)", r/1024, h/1024}' "/proc/$1/status"; }
load() { # NAME URL PID
        local out
        out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$2")
        local rps p50 p99 size
        rps=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
        p50=$(awk '$1=="50%"{print $2}' <<<"$out")
        p99=$(awk '$1=="99%"{print $2}' <<<"$out")
        size=$(curl -s "$2" | wc -c)
        printf "%-34s %10s req/s  p50 %8s  p99 %8s  body %7s B  %s\n" "$1" "$rps" "$p50" "$p99" "$size" "$(rss "$3")"
}

echo "wrk: $THREADS threads, $CONNS connections, ${DURATION}s each; $(nproc) CPUs"
PORT=$((20000 + RANDOM % 20000))
prometheus-node-exporter --web.listen-address=127.0.0.1:$((PORT + 100)) >/dev/null 2>&1 &
PIDS+=($!)
NE=$!
wait_up "http://127.0.0.1:$((PORT + 100))/metrics"
load "prometheus-node-exporter" "http://127.0.0.1:$((PORT + 100))/metrics" "$NE"

i=0
for p in dgx-a100 h100; do
        H=$TMP/$p
        "$GPUVIRT" sim create "$H" --profile "$p" >/dev/null
        "$GPUVIRTD" --root "$H" --listen "127.0.0.1:$((PORT + i))" --interval 5 2>"$TMP/$p.log" &
        PIDS+=($!)
        D=$!
        wait_up "http://127.0.0.1:$((PORT + i))/metrics"
        units=$(curl -s "http://127.0.0.1:$((PORT + i))/v1/units" | jq '.units | length')
        load "gpuvirtd $p ($units units)" "http://127.0.0.1:$((PORT + i))/metrics" "$D"
        load "gpuvirtd $p /v1/units" "http://127.0.0.1:$((PORT + i))/v1/units" "$D"
        i=$((i + 1))
done
