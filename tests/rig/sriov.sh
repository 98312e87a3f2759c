#!/bin/bash
# gpuvirt SR-IOV on the real kernel (the rig's emulated SR-IOV NVMe, 1b36:0010, sriov_totalvfs 4).
#   on the host:   tests/rig/sriov.sh GPUVIRT [run.sh options]   (sets the rig up and boots it)
#   in the guest:  run by run.sh with the gpuvirt binary as argument
# Proves: sriov list, set 0 -> 2, one VF to vfio-pci, its group held open blocks 'sriov set 0' (EBUSY with
# the holder named), released it goes to 0; --vfio with autoprobe off during creation and restored;
# N -> M through 0 where the kernel says EBUSY; above totalvfs refused (the kernel says ERANGE);
# --dry-run changes nothing. Prints timings and "RIG-SRIOV PASS" or "RIG-SRIOV FAIL: reason".
set -u
export LC_ALL=C

if [ "${RIG_GUEST:-0}" != 1 ]; then
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    [ $# -ge 1 ] || { echo "usage: $0 GPUVIRT [run.sh options]" >&2; exit 2; }
    bin=$(realpath -e "$1") || { echo "no such binary: $1" >&2; exit 2; }
    shift
    command -v qemu-system-x86_64 >/dev/null || [ "$(id -u)" = 0 ] || { echo "SKIP: no qemu and not root"; exit 77; }
    GPUVIRT_RIG_QUIET=1 "$here/setup.sh" >&2 || { echo "RIG-SRIOV FAIL: rig setup"; exit 1; }
    out=$("$here/run.sh" --timeout "${GPUVIRT_RIG_TIMEOUT:-240}" "$@" "$here/sriov.sh" "$bin")
    rc=$?
    printf '%s\n' "$out"
    [ $rc = 0 ] && printf '%s\n' "$out" | grep -aq '^RIG-SRIOV PASS' && exit 0
    exit 1
fi

# ------------------------------------------------------------------ guest side
G=$1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1
PCI=/sys/bus/pci/devices
pf= holder=
cleanup() {
    [ -n "$holder" ] && kill "$holder" 2>/dev/null && wait "$holder" 2>/dev/null
    if [ -n "$pf" ]; then
        echo 0 >"$PCI/$pf/sriov_numvfs" 2>/dev/null
        echo 1 >"$PCI/$pf/sriov_drivers_autoprobe" 2>/dev/null
    fi
}
fail() { echo "RIG-SRIOV FAIL: $*"; cleanup; exit 1; }
ok() { echo "  ok: $*"; }
driver_of() { local l; l=$(readlink "$PCI/$1/driver" 2>/dev/null) && basename "$l" || echo none; }
group_of() { local l; l=$(readlink "$PCI/$1/iommu_group" 2>/dev/null) && basename "$l" || echo none; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
# run gpuvirt; $OUT/$ERR/$RC
run() { OUT=$("$G" "$@" 2>/tmp/err); RC=$?; ERR=$(cat /tmp/err); }
# raw kernel write: prints the error text
wr() { ( printf '%s\n' "$2" >"$1" ) 2>&1; }

echo "rig-sriov: kernel $(uname -r), gpuvirt $G"
for d in "$PCI"/*; do
    [ "$(cat "$d/vendor"):$(cat "$d/device")" = 0x1b36:0x0010 ] && [ -e "$d/sriov_totalvfs" ] && { pf=$(basename "$d"); break; }
done
[ -n "$pf" ] || fail "no SR-IOV NVMe PF"
echo "  PF $pf, totalvfs $(cat "$PCI/$pf/sriov_totalvfs")"

run --json sriov list "$pf"
[ $RC = 0 ] || fail "sriov list rc=$RC: $ERR"
[ "$(jq -r '.[0] | "\(.total_vfs) \(.num_vfs) \(.driver) \(.drivers_autoprobe)"' <<<"$OUT")" = "4 0 nvme true" ] || fail "sriov list: $OUT"
ok "sriov list: 4 VFs possible, 0 set, driver nvme, autoprobe on"

# dry run: the writes are printed, nothing changes
run --dry-run sriov set "$pf" 2 --vfio
[ $RC = 0 ] && grep -q "sriov_drivers_autoprobe" <<<"$OUT" || fail "dry run: rc=$RC $OUT $ERR"
[ "$(cat "$PCI/$pf/sriov_numvfs")" = 0 ] || fail "dry run changed sriov_numvfs"
ok "--dry-run prints the writes and changes nothing"

# QEMU's NVMe VFs have no resources until the PF assigns them: keep nvme off them
echo 0 >"$PCI/$pf/sriov_drivers_autoprobe"
t0=$(ms); run --json sriov set "$pf" 2; t1=$(ms)
[ $RC = 0 ] || fail "sriov set 2: rc=$RC $ERR"
[ "$(jq -r '.num_vfs' <<<"$OUT")" = 2 ] && [ "$(cat "$PCI/$pf/sriov_numvfs")" = 2 ] || fail "set 2: $OUT"
vf0=$(jq -r '.vfs[0]' <<<"$OUT") vf1=$(jq -r '.vfs[1]' <<<"$OUT")
[ "$(basename "$(readlink "$PCI/$vf0/physfn")")" = "$pf" ] || fail "VF $vf0 physfn"
echo "  timing: sriov set 0 -> 2: $((t1 - t0)) ms"
ok "sriov set 2: VFs $vf0 $vf1"

run passthrough enable "$vf0"
[ $RC = 0 ] && [ "$(driver_of "$vf0")" = vfio-pci ] || fail "passthrough enable $vf0: $ERR"
g=$(group_of "$vf0")
[ -e "/dev/vfio/$g" ] || fail "/dev/vfio/$g missing"
ok "VF $vf0 on vfio-pci, /dev/vfio/$g"
run --json sriov list "$pf"
[ "$(jq -r ".[0].vfs[0].driver" <<<"$OUT")" = vfio-pci ] || fail "list shows the VF driver: $OUT"

# a process holds the VF's group: gpuvirt refuses to remove the VFs
sleep 600 3<>"/dev/vfio/$g" &
holder=$!
sleep 0.3
run sriov set "$pf" 0
[ $RC = 1 ] || fail "set 0 with the group held: rc=$RC"
grep -q "held open by $holder (sleep)" <<<"$ERR" || fail "holder not named: $ERR"
[ "$(cat "$PCI/$pf/sriov_numvfs")" = 2 ] && [ "$(driver_of "$vf0")" = vfio-pci ] || fail "VFs changed after refusal"
echo "  message: $ERR"
ok "group held open: refused (EBUSY), VFs untouched"
kill "$holder"; wait "$holder" 2>/dev/null; holder=

t0=$(ms); run sriov set "$pf" 0; t1=$(ms)
[ $RC = 0 ] && [ "$(cat "$PCI/$pf/sriov_numvfs")" = 0 ] && [ ! -e "$PCI/$vf0" ] || fail "set 0: rc=$RC $ERR"
[ -e "/dev/vfio/$g" ] && fail "/dev/vfio/$g still there"
echo "  timing: sriov set 2 -> 0: $((t1 - t0)) ms"
ok "released: back to 0 VFs, /dev/vfio/$g gone"

# --vfio: autoprobe off while the VFs are created (nvme never touches them), then restored
echo 1 >"$PCI/$pf/sriov_drivers_autoprobe"
t0=$(ms); run --json sriov set "$pf" 3 --vfio; t1=$(ms)
[ $RC = 0 ] || fail "set 3 --vfio: $ERR"
for v in $(jq -r '.vfs[]' <<<"$OUT"); do
    [ "$(driver_of "$v")" = vfio-pci ] && [ -e "/dev/vfio/$(group_of "$v")" ] || fail "$v not on vfio-pci"
done
[ "$(cat "$PCI/$pf/sriov_drivers_autoprobe")" = 1 ] || fail "autoprobe not restored"
echo "  timing: sriov set 0 -> 3 --vfio: $((t1 - t0)) ms"
ok "set 3 --vfio: 3 VFs on vfio-pci, autoprobe back on"

# the kernel refuses N -> M directly; gpuvirt goes through 0
e=$(wr "$PCI/$pf/sriov_numvfs" 2)
grep -q "Device or resource busy" <<<"$e" || fail "raw 3 -> 2 should be EBUSY: $e"
t0=$(ms); run --json sriov set "$pf" 2 --vfio; t1=$(ms)
[ $RC = 0 ] && [ "$(jq -r '"\(.from_vfs) \(.num_vfs)"' <<<"$OUT")" = "3 2" ] || fail "3 -> 2: $OUT $ERR"
echo "  timing: sriov set 3 -> 2 --vfio: $((t1 - t0)) ms"
ok "3 -> 2: kernel says EBUSY, gpuvirt goes through 0"

# above sriov_totalvfs: the kernel says ERANGE, gpuvirt refuses first with the limit
e=$(wr "$PCI/$pf/sriov_numvfs" 5)
grep -q "out of range" <<<"$e" || fail "raw 5 should be ERANGE: $e"
run sriov set "$pf" 5
[ $RC = 2 ] && grep -q "supports at most 4 VFs" <<<"$ERR" || fail "set 5: rc=$RC $ERR"
[ "$(cat "$PCI/$pf/sriov_numvfs")" = 2 ] || fail "VF count changed by a refused set"
echo "  message: $ERR"
ok "5 VFs: refused (ERANGE), VFs untouched"

run sriov set "$pf" 0
[ $RC = 0 ] || fail "final set 0: $ERR"
cleanup
echo "RIG-SRIOV PASS"
