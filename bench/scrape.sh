#!/usr/bin/env bash
# gpuvirtd's /metrics under load, beside prometheus-node-exporter's on the same machine in the same run, at
# 8 GPUs (dgx-a100) and 64 GPUs (a generated host: --profile generated --devices 300 --gpus 64).
# Usage: bench/scrape.sh [BUILD_DIR] (default build-release). Needs wrk, prometheus-node-exporter, python3.
# Per target:
#  - paced: RATE scrapes/s (default 1000, the issue's goal: p99 < 5 ms) for DURATION s over CONNS keep-alive
#    connections, each request sent when due (bench/paced.py: open loop, latency from the due time);
#  - wrk: the throughput a closed loop reaches (THREADS threads, CONNS connections, DURATION s), p50/p99;
#  - the body size and the daemon's resident memory (VmRSS, peak VmHWM) after the load.
set -eu
B=${1:-build-release}
DURATION=${DURATION:-10}
RATE=${RATE:-1000}
THREADS=${THREADS:-2}
CONNS=${CONNS:-8}
GPUVIRT=$B/src/gpuvirt
GPUVIRTD=$B/src/gpuvirtd
PACED=$(dirname "$0")/paced.py
for t in wrk prometheus-node-exporter curl jq /usr/bin/python3; do
        command -v "$t" >/dev/null || { echo "bench/scrape.sh: $t is not installed"; exit 1; }
done
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gpuvirt-scrape-XXXXXX")
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$TMP"' EXIT

wait_up() { for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "not up: $1"; exit 1; }
rss() { awk '/^VmRSS/{r=$2} /^VmHWM/{h=$2} END{printf "RSS %.1f MiB (peak %.1f MiB)", r/1024, h/1024}' "/proc/$1/status"; }
load() { # NAME URL PID
        local paced out rps p50 p99 size
        paced=$(/usr/bin/python3 "$PACED" "$2" --rate "$RATE" --duration "$DURATION" --conns "$CONNS")
        out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$2")
        rps=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
        p50=$(awk '$1=="50%"{print $2}' <<<"$out")
        p99=$(awk '$1=="99%"{print $2}' <<<"$out")
        size=$(curl -s "$2" | wc -c)
        printf "%s\n  paced %s/s: %s\n  wrk: %s req/s, p50 %s, p99 %s; body %s B; %s\n" "$1" "$RATE" "$paced" "$rps" \
                "$p50" "$p99" "$size" "$(rss "$3")"
}

echo "paced: $RATE/s over $CONNS connections, wrk: $THREADS threads, $CONNS connections; ${DURATION}s each; $(nproc) CPUs"
PORT=$((20000 + RANDOM % 20000))
prometheus-node-exporter --web.listen-address=127.0.0.1:$((PORT + 100)) >/dev/null 2>&1 &
PIDS+=($!)
NE=$!
wait_up "http://127.0.0.1:$((PORT + 100))/metrics"
load "prometheus-node-exporter /metrics" "http://127.0.0.1:$((PORT + 100))/metrics" "$NE"

i=0
for size in 8 64; do
        H=$TMP/gpus-$size
        if [ "$size" = 8 ]; then
                "$GPUVIRT" sim create "$H" --profile dgx-a100 >/dev/null
        else
                "$GPUVIRT" sim create "$H" --profile generated --devices 300 --gpus "$size" >/dev/null
        fi
        "$GPUVIRTD" --root "$H" --listen "127.0.0.1:$((PORT + i))" --interval 10 2>"$TMP/$size.log" &
        PIDS+=($!)
        D=$!
        wait_up "http://127.0.0.1:$((PORT + i))/metrics"
        units=$(curl -s "http://127.0.0.1:$((PORT + i))/v1/units" | jq '.units | length')
        load "gpuvirtd, $size GPUs ($units units) /metrics" "http://127.0.0.1:$((PORT + i))/metrics" "$D"
        i=$((i + 1))
done
