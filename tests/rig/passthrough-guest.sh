#!/bin/bash
# Guest side of the passthrough suite (tests/rig/passthrough.sh runs it in the rig): the shared
# scenario on the real kernel, then what only a real kernel shows: VFIO_GROUP_GET_STATUS viability with
# one function of a group moved (and assert/apply judging the group as the unit), a device that lost its
# driver given back by recover, the host lock in /run/gpuvirt, a process holding the group node, and
# timings.
#   passthrough-guest.sh GPUVIRT
set -u
GPUVIRT=$1
HERE=$(cd "$(dirname "$0")" && pwd)
PCI=/sys/bus/pci/devices
fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
drv() { local l; l=$(readlink "$PCI/$1/driver" 2>/dev/null) && echo "${l##*/}" || echo none; }
wr() { printf '%s\n' "$2" >"$1"; }

if [ "${RIG_IOMMU:-1}" = 0 ]; then
        # Negative control: no IOMMU. check must fail on it, enable must refuse and leave the device be.
        "$GPUVIRT" --json check >/tmp/check.json
        rc=$?
        [ $rc = 1 ] && pass "check exits 1 without an IOMMU" || fail "check exited $rc without an IOMMU"
        jq -e '.[] | select(.id == "iommu-kernel") | .status == "fail"' /tmp/check.json >/dev/null &&
                pass "iommu-kernel fails" || fail "iommu-kernel does not fail"
        jq -r '.[] | select(.id == "iommu-kernel") | "  \(.message)\n  fix: \(.hint)"' /tmp/check.json
        out=$("$GPUVIRT" passthrough enable 0000:02:00.0 2>&1)
        rc=$?
        echo "  $out"
        [ $rc = 1 ] && [ "$(drv 0000:02:00.0)" = bochs-drm ] && pass "enable refused, device still on bochs-drm" ||
                fail "enable without IOMMU: rc $rc, driver $(drv 0000:02:00.0)"
        case $out in *"IOMMU"*) pass "refusal names the IOMMU" ;; *) fail "refusal does not say why" ;; esac
        echo "GUEST-VERDICT fails=$fails"
        exit $((fails > 0))
fi

"$GPUVIRT" --json check >/tmp/check.json
jq -e '.[] | select(.id == "iommu-kernel") | .status == "pass"' /tmp/check.json >/dev/null &&
        pass "check: iommu-kernel passes" || fail "check: iommu-kernel"
jq -e '.[] | select(.id == "interrupt-remapping") | .status == "pass"' /tmp/check.json >/dev/null &&
        pass "check: interrupt remapping (intremap=on)" || fail "check: interrupt remapping"
n=$("$GPUVIRT" --json list | jq length)
[ "$n" = 4 ] && pass "list: 4 display functions" || fail "list: $n display functions"
"$GPUVIRT" --json list | jq -e '.[] | select(.address == "0000:04:00.0") | .group_members == ["0000:04:00.1"]' \
        >/dev/null && pass "list: the pair shares one group" || fail "list: pair group members"

echo "SCENARIO-BEGIN"
"$HERE/pt-scenario.sh" "$GPUVIRT"
echo "SCENARIO-END"

# One function of a group on vfio-pci, the other back on its driver: the node exists, not viable.
"$GPUVIRT" passthrough enable 0000:04:00.0 >/dev/null || fail "enable pair"
grp=$(basename "$(readlink $PCI/0000:04:00.0/iommu_group)")
wr $PCI/0000:04:00.1/driver_override ""
wr $PCI/0000:04:00.1/driver/unbind 0000:04:00.1
wr /sys/bus/pci/drivers_probe 0000:04:00.1
[ -e /dev/vfio/$grp ] && [ "$(drv 0000:04:00.1)" = bochs-drm ] && pass "half-moved group: node exists" ||
        fail "half-moved group: node $(ls /dev/vfio), 04:00.1 on $(drv 0000:04:00.1)"
v=$("$GPUVIRT" --json show 0000:04:00.0 | jq '.modes.passthrough.viable')
[ "$v" = false ] && pass "half-moved group: kernel says not viable (VFIO_GROUP_GET_STATUS)" ||
        fail "half-moved group viable=$v"
# the group is the unit: the desired state "04:00.0 passed through" is not met until 04:00.1 is too
printf 'version: 1\ngpus:\n  - select: "0000:04:00.0"\n    mode: passthrough\n' >/tmp/pair.yaml
"$GPUVIRT" assert -f /tmp/pair.yaml >/dev/null 2>&1
rc=$?
[ $rc = 1 ] && pass "half-moved group: assert says the host differs" || fail "half-moved group: assert exited $rc"
"$GPUVIRT" apply -f /tmp/pair.yaml >/dev/null && [ "$(drv 0000:04:00.1)" = vfio-pci ] &&
        "$GPUVIRT" assert -f /tmp/pair.yaml >/dev/null && pass "half-moved group: apply moves the rest, then it matches" ||
        fail "half-moved group: apply left 04:00.1 on $(drv 0000:04:00.1)"
"$GPUVIRT" passthrough enable 0000:04:00.0 >/dev/null && [ "$(drv 0000:04:00.1)" = vfio-pci ] &&
        pass "enable again completes the group" || fail "re-enable pair"
v=$("$GPUVIRT" --json show 0000:04:00.0 | jq '.modes.passthrough.viable')
[ "$v" = true ] && pass "whole group: viable" || fail "whole group viable=$v"

# A device that lost its driver (unbound from vfio-pci behind gpuvirt's back, as a crash between the unbind and
# the bind back leaves it): status names it and fails, recover gives it the driver gpuvirt recorded.
"$GPUVIRT" passthrough enable 0000:02:00.0 >/dev/null || fail "enable 02:00.0"
wr /sys/bus/pci/drivers/vfio-pci/unbind 0000:02:00.0
out=$("$GPUVIRT" status 2>&1)
rc=$?
case "$rc:$(drv 0000:02:00.0):$out" in
1:none:*"No driver: 0000:02:00.0 (had bochs-drm)"*) pass "lost driver: status names it and exits 1" ;;
*) fail "lost driver: status rc $rc, 02:00.0 on $(drv 0000:02:00.0): $out" ;;
esac
"$GPUVIRT" recover >/dev/null && [ "$(drv 0000:02:00.0)" = bochs-drm ] && [ ! -e /var/lib/gpuvirt/passthrough/0000:02:00.0 ] &&
        pass "lost driver: recover binds bochs-drm back on the real kernel, record gone" ||
        fail "lost driver: recover left 02:00.0 on $(drv 0000:02:00.0)"
# the host lock: a private directory in the real /run
[ "$(stat -c '%a %U' /run/gpuvirt 2>/dev/null)" = "700 root" ] && [ ! -e /run/lock/gpuvirt.lock ] &&
        pass "host lock in /run/gpuvirt (0700 root)" || fail "host lock: $(ls -ld /run/gpuvirt /run/lock/gpuvirt.lock 2>&1)"

# A process holding the group node: release is refused and names it.
exec 3<>/dev/vfio/$grp
out=$("$GPUVIRT" passthrough disable 0000:04:00.0 2>&1)
rc=$?
exec 3>&-
case "$rc:$out" in
1:*"held open by $$ ("*) pass "release refused while pid $$ holds /dev/vfio/$grp" ;;
*) fail "held group: rc $rc: $out" ;;
esac
[ "$(drv 0000:04:00.0)" = vfio-pci ] && pass "refused release changed nothing" || fail "refused release moved it"
"$GPUVIRT" passthrough disable 0000:04:00.0 >/dev/null && [ "$(drv 0000:04:00.0)" = bochs-drm ] &&
        [ "$(drv 0000:04:00.1)" = bochs-drm ] && [ ! -e /dev/vfio/$grp ] &&
        pass "released after the holder closed" || fail "release after close"

# Timing: enable+disable of the two-function group, gpuvirt vs the same writes from a shell loop.
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
for i in 1 2 3 4 5; do
        t=$(date +%s%N)
        "$GPUVIRT" passthrough enable 0000:04:00.0 >/dev/null && "$GPUVIRT" passthrough disable 0000:04:00.0 >/dev/null
        ms "$t"
done | median >/tmp/t-gpuvirt
for i in 1 2 3 4 5; do
        t=$(date +%s%N)
        for f in 0000:04:00.0 0000:04:00.1; do
                wr $PCI/$f/driver_override vfio-pci; wr $PCI/$f/driver/unbind $f; wr /sys/bus/pci/drivers_probe $f
        done
        for f in 0000:04:00.0 0000:04:00.1; do
                wr $PCI/$f/driver_override ""; wr $PCI/$f/driver/unbind $f; wr /sys/bus/pci/drivers_probe $f
        done
        ms "$t"
done | median >/tmp/t-shell
[ "$(drv 0000:04:00.0)" = bochs-drm ] || fail "timing loop left 04:00.0 on $(drv 0000:04:00.0)"
echo "TIMING enable+disable of a 2-function group (median of 5, TCG guest): gpuvirt $(cat /tmp/t-gpuvirt) ms, shell loop $(cat /tmp/t-shell) ms"
echo "GUEST-VERDICT fails=$fails"
exit $((fails > 0))
