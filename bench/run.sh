#!/usr/bin/env bash
# Benchmarks. Usage: bench/run.sh [BUILD_DIR]  (default build-release; ./dev.sh bench builds it)
# Prints: the physical-limit table (bench/limits.sh), in-process inventory timings, and the median wall time of whole commands:
# `gpuvirt list --json` on the largest simulated profile beside `lspci -nn` on the same tree.
set -eu
B=${1:-build-release}
GPUVIRT=$B/src/gpuvirt
RUNS=${RUNS:-101}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gpuvirt-bench-XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# The physical limits (issue 13): generated hosts, ratios against lspci, /bin/true and a shell (BEFORE="DIR ..."
# adds other builds' gpuvirt to the same run).
"$(dirname "$0")/limits.sh" "$B"
echo

# The largest profile = the one with most PCI devices.
best= ; max=0
for p in $("$GPUVIRT" --json sim profiles | jq -r '.[].name'); do
        "$GPUVIRT" sim create "$TMP/$p" --profile "$p" >/dev/null
        n=$(ls "$TMP/$p/sys/bus/pci/devices" | wc -l)
        [ "$n" -gt "$max" ] && { max=$n; best=$p; }
done
H=$TMP/$best
echo "largest profile: $best ($max PCI devices)"
echo
"$B/bench/bench-inventory" "$H" 500
echo
# the strict readers are linear in their input (issue 11)
"$B/bench/bench-parse" 3000
echo

median_ms() { # command...: median wall time over $RUNS runs, in ms
        local i t0 t1
        for i in $(seq "$RUNS"); do
                t0=$(date +%s%N)
                "$@" >/dev/null 2>&1 || true
                t1=$(date +%s%N)
                echo $(( (t1 - t0) / 1000 ))
        done | sort -n | awk '{a[NR]=$1} END{printf "%.2f ms (p10 %.2f, p90 %.2f)", a[int((NR+1)/2)]/1000, a[int(NR/10)+1]/1000, a[int(NR*9/10)]/1000}'
}
printf "%-44s %s\n" "gpuvirt list --json ($best)" "$(median_ms "$GPUVIRT" --root "$H" --json list)"
printf "%-44s %s\n" "gpuvirt list ($best)" "$(median_ms "$GPUVIRT" --root "$H" list)"
printf "%-44s %s\n" "gpuvirt check --json ($best)" "$(median_ms "$GPUVIRT" --root "$H" --json check)"
printf "%-44s %s\n" "lspci -nn ($best, same tree)" "$(median_ms lspci -nn -O sysfs.path="$H/sys/bus/pci")"
printf "%-44s %s\n" "lspci -nnk ($best, with drivers)" "$(median_ms lspci -nnk -O sysfs.path="$H/sys/bus/pci")"
printf "%-44s %s\n" "/bin/true (process start floor)" "$(median_ms /bin/true)"

echo
echo "MIG: apply versus recreate-everything, placement under a random request stream"
"$GPUVIRT" sim create "$TMP/mig" --profile dgx-a100 >/dev/null
"$B/bench/bench-mig" "$TMP/mig" 100000

echo
echo "Kubernetes device plugin (dgx-a100, kubelet stand-in): Allocate latency, mig apply -> new list on the stream"
/usr/bin/python3 "$(dirname "$0")/bench-k8s.py" "$GPUVIRT" "$B/src/gpuvirt-device-plugin" 2000 20

echo
echo "Fleet: a synthetic pool of 5,000 hosts x 8 GPUs (models as agents published them for simulated hosts)"
for p in dgx-a100 h100 t4-grid flex-sriov; do
        "$GPUVIRT" sim create "$TMP/fleet-$p" --profile "$p" >/dev/null
        "$GPUVIRT" --root "$TMP/fleet-$p" fleet gpus --host "$p" >/dev/null
done
"$B/bench/bench-fleet" "$TMP"/fleet-*
# committed reservations through a real 3-member etcd on loopback (data on tmpfs)
. "$(dirname "$0")/../tests/fleet/etcd.sh"
trap 'etcd_stop; rm -rf "$TMP"' EXIT
etcd_start "$TMP/etcd"
"$B/bench/bench-fleet" --etcd "$ETCD_ENDPOINTS" "$TMP"/fleet-*
etcd_stop
