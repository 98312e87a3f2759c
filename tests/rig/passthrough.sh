#!/bin/bash
# Passthrough on the real kernel (tests/rig): the project's gpuvirt inside the rig guest, with and
# without the emulated IOMMU, and the same scenario (passthrough, then SR-IOV on the NVMe) on the
# simulator's qemu-q35 host: the bindings, groups and /dev/vfio nodes after every step must be identical.
#   passthrough.sh GPUVIRT
set -u
GPUVIRT=$(readlink -f "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gpuvirt-rig-pt-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fails=0

"$HERE/setup.sh" >/dev/null || { echo "FAIL: rig setup"; exit 1; }

# 1. the simulator
"$GPUVIRT" sim create "$TMP/q35" --profile qemu-q35 >/dev/null || { echo "FAIL: sim create"; exit 1; }
"$HERE/pt-scenario.sh" "$GPUVIRT" "$TMP/q35" >"$TMP/sim.out"

# 2. the real kernel
# (the guest runs gpuvirt some 40 times: under TCG on a busy 2-core host each run can take seconds)
"$HERE/run.sh" --timeout "${GPUVIRT_RIG_TIMEOUT:-420}" -e ASAN_OPTIONS=detect_leaks=1 \
        "$HERE/passthrough-guest.sh" "$GPUVIRT" >"$TMP/real.log" 2>&1
rc=$?
grep -a -E '^(PASS|FAIL|TIMING|GUEST-VERDICT|  )' "$TMP/real.log"
[ $rc = 0 ] || { echo "FAIL: guest suite with IOMMU exited $rc"; tail -20 "$TMP/real.log"; fails=$((fails + 1)); }
# (kernel messages on the console, "[   19.37] nvme nvme1: ...", are not part of the scenario's output)
sed -n '/^SCENARIO-BEGIN/,/^SCENARIO-END/p' "$TMP/real.log" | sed '1d;$d' | tr -d '\r' |
        grep -av '^\[ *[0-9]*\.[0-9]*\] ' >"$TMP/real.out"
if [ -s "$TMP/real.out" ] && diff -u "$TMP/sim.out" "$TMP/real.out" >"$TMP/diff"; then
        echo "PASS: simulator and real kernel agree on bindings, groups and /dev/vfio nodes after all $(grep -c '^== ' "$TMP/sim.out") steps"
else
        echo "FAIL: simulator and real kernel differ:"; cat "$TMP/diff"; fails=$((fails + 1))
fi
grep -q UNEXPECTED "$TMP/sim.out" "$TMP/real.out" && { echo "FAIL: unexpected exit codes:"; grep UNEXPECTED "$TMP/sim.out" "$TMP/real.out"; fails=$((fails + 1)); }

# 3. the real kernel without an IOMMU
"$HERE/run.sh" --no-iommu --timeout "${GPUVIRT_RIG_TIMEOUT:-240}" "$HERE/passthrough-guest.sh" "$GPUVIRT" \
        >"$TMP/noiommu.log" 2>&1
rc=$?
grep -a -E '^(PASS|FAIL|GUEST-VERDICT|  )' "$TMP/noiommu.log"
[ $rc = 0 ] || { echo "FAIL: guest suite without IOMMU exited $rc"; tail -20 "$TMP/noiommu.log"; fails=$((fails + 1)); }

echo "$([ $fails = 0 ] && echo PASS || echo FAIL): real-kernel passthrough suite ($fails failures)"
exit $((fails > 0))
