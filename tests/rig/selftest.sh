#!/bin/bash
# gpuvirt rig self-test.
#   on the host:   tests/rig/selftest.sh [--no-iommu] [other run.sh options]   (boots the rig)
#   in the guest:  tests/rig/run.sh [--no-iommu] tests/rig/selftest.sh
# With the IOMMU: groups exist, the single bochs-display goes to vfio-pci and back, the
# multifunction pair shares one group, and the NVMe PF's SR-IOV behaves (VFs, EBUSY, ERANGE).
# Without it (negative control): no groups, the vfio-pci probe leaves the device driverless.
# Prints "SELFTEST PASS" or "SELFTEST FAIL: reason" and exits 0 / 1.
set -u
export LC_ALL=C

if [ "${RIG_GUEST:-0}" != 1 ]; then
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    exec "$here/run.sh" --timeout "${GPUVIRT_RIG_TIMEOUT:-120}" "$@" "$here/selftest.sh"
fi

# ------------------------------------------------------------------ guest side
PCI=/sys/bus/pci/devices
fail() { echo "SELFTEST FAIL: $*"; cleanup; exit 1; }
ok() { echo "  ok: $*"; }
val() { cat "$1" 2>/dev/null; }
driver_of() { local l; l=$(readlink "$PCI/$1/driver" 2>/dev/null) && basename "$l" || echo none; }
group_of() { local l; l=$(readlink "$PCI/$1/iommu_group" 2>/dev/null) && basename "$l" || echo none; }
# write VALUE to a sysfs FILE; prints the error text ("" on success); status of the write
wr() { local out; out=$( { printf '%s\n' "$2" >"$1"; } 2>&1 ); local rc=$?; printf '%s' "$out"; return $rc; }

nvme_pf= single=
cleanup() {
    if [ -n "$nvme_pf" ] && [ -e "$PCI/$nvme_pf/sriov_numvfs" ]; then
        wr "$PCI/$nvme_pf/sriov_numvfs" 0 >/dev/null
        wr "$PCI/$nvme_pf/sriov_drivers_autoprobe" 1 >/dev/null
    fi
    if [ -n "$single" ] && [ "$(driver_of "$single")" != bochs-drm ]; then
        wr "$PCI/$single/driver_override" "" >/dev/null
        [ -e "$PCI/$single/driver" ] && wr "$PCI/$single/driver/unbind" "$single" >/dev/null
        wr /sys/bus/pci/drivers_probe "$single" >/dev/null
    fi
}

mode=$([ "${RIG_IOMMU:-1}" = 1 ] && echo iommu || echo no-iommu)
echo "selftest: kernel $(uname -r), mode $mode"

# ---- devices, found by class/vendor/device (bus numbers are not stable)
displays=() vgas=() bochs=()
for d in "$PCI"/*; do
    b=$(basename "$d")
    v=$(val "$d/vendor") dev=$(val "$d/device") c=$(val "$d/class")
    if [ "$v" = 0x1234 ]; then
        case $c in
        0x0300??) displays+=("$b"); vgas+=("$b") ;;
        0x0380??) displays+=("$b"); bochs+=("$b") ;;
        esac
    fi
    if [ "$v:$dev" = 0x1b36:0x0010 ] && [ -e "$d/sriov_totalvfs" ] && [ -z "$nvme_pf" ]; then
        nvme_pf=$b
    fi
done
[ ${#vgas[@]} = 2 ] || fail "expected 2 VGA (0x0300xx) functions of vendor 0x1234, found ${#vgas[@]}"
[ ${#bochs[@]} = 2 ] || fail "expected 2 bochs-display (0x0380xx) functions, found ${#bochs[@]}"
[ -n "$nvme_pf" ] || fail "no SR-IOV capable nvme 1b36:0010"
ok "displays: ${displays[*]}; nvme PF: $nvme_pf"

# the single bochs-display: no other function in its slot; the other one is the multifunction pair
pair_vga= pair_bochs=
for b in "${bochs[@]}"; do
    slot=${b%.*}
    n=$(ls -d "$PCI/$slot".* | wc -l)
    if [ "$n" = 1 ]; then single=$b; else pair_bochs=$b; fi
done
[ -n "$single" ] && [ -n "$pair_bochs" ] || fail "cannot tell the single bochs-display from the pair one"
for v in "${vgas[@]}"; do [ "${v%.*}" = "${pair_bochs%.*}" ] && pair_vga=$v; done
[ -n "$pair_vga" ] || fail "no VGA next to the multifunction bochs-display $pair_bochs"
ok "single bochs-display $single; multifunction pair $pair_vga + $pair_bochs"
for d in "${displays[@]}"; do
    [ "$(driver_of "$d")" = bochs-drm ] || fail "$d is on driver $(driver_of "$d"), not bochs-drm"
done
ok "all four display functions on bochs-drm"

ngroups=$(ls /sys/kernel/iommu_groups 2>/dev/null | wc -l)

if [ "$mode" = iommu ]; then
    # ---- IOMMU groups
    [ "$ngroups" -gt 0 ] || fail "no IOMMU groups under /sys/kernel/iommu_groups"
    ok "$ngroups IOMMU groups"
    g=$(group_of "$single")
    [ "$g" != none ] || fail "$single has no iommu_group"
    [ "$(ls "/sys/kernel/iommu_groups/$g/devices" | wc -l)" = 1 ] || fail "group $g of $single is not alone"
    [ "$(group_of "$pair_vga")" = "$(group_of "$pair_bochs")" ] && [ "$(group_of "$pair_vga")" != none ] \
        || fail "multifunction pair not in one group ($(group_of "$pair_vga") vs $(group_of "$pair_bochs"))"
    ok "single display alone in group $g; pair shares group $(group_of "$pair_vga")"

    # ---- single bochs-display to vfio-pci and back
    e=$(wr "$PCI/$single/driver_override" vfio-pci) || fail "driver_override: $e"
    e=$(wr "$PCI/$single/driver/unbind" "$single") || fail "unbind from bochs-drm: $e"
    e=$(wr /sys/bus/pci/drivers_probe "$single") || fail "drivers_probe: $e"
    [ "$(driver_of "$single")" = vfio-pci ] || fail "$single on $(driver_of "$single") after the vfio-pci probe"
    [ -c "/dev/vfio/$g" ] || fail "/dev/vfio/$g missing with $single on vfio-pci"
    ok "$single on vfio-pci, /dev/vfio/$g present"
    e=$(wr "$PCI/$single/driver_override" "") || fail "clearing driver_override: $e"
    e=$(wr "$PCI/$single/driver/unbind" "$single") || fail "unbind from vfio-pci: $e"
    e=$(wr /sys/bus/pci/drivers_probe "$single") || fail "drivers_probe (give back): $e"
    [ "$(driver_of "$single")" = bochs-drm ] || fail "$single on $(driver_of "$single") after giving it back"
    [ -z "$(val "$PCI/$single/driver_override")" ] || [ "$(val "$PCI/$single/driver_override")" = "(null)" ] \
        || fail "driver_override still '$(val "$PCI/$single/driver_override")'"
    [ -e "/dev/vfio/$g" ] && fail "/dev/vfio/$g still present after giving $single back"
    ok "$single back on bochs-drm, /dev/vfio/$g gone"
else
    # ---- negative control: no IOMMU
    [ "$ngroups" = 0 ] || fail "$ngroups IOMMU groups without an IOMMU"
    [ "$(group_of "$single")" = none ] || fail "$single has an iommu_group without an IOMMU"
    ok "no IOMMU groups"
    e=$(wr "$PCI/$single/driver_override" vfio-pci) || fail "driver_override: $e"
    e=$(wr "$PCI/$single/driver/unbind" "$single") || fail "unbind from bochs-drm: $e"
    wr /sys/bus/pci/drivers_probe "$single" >/dev/null   # expected to fail: vfio-pci refuses
    [ "$(driver_of "$single")" = none ] || fail "$single bound to $(driver_of "$single") without an IOMMU"
    [ -z "$(ls /dev/vfio 2>/dev/null | grep -v '^vfio$')" ] || fail "group nodes in /dev/vfio without an IOMMU"
    ok "vfio-pci probe leaves $single without a driver"
    e=$(wr "$PCI/$single/driver_override" "") || fail "clearing driver_override: $e"
    e=$(wr /sys/bus/pci/drivers_probe "$single") || fail "drivers_probe (give back): $e"
    [ "$(driver_of "$single")" = bochs-drm ] || fail "$single on $(driver_of "$single") after giving it back"
    ok "$single back on bochs-drm"
fi

# ---- SR-IOV on the NVMe PF
P=$PCI/$nvme_pf
total=$(val "$P/sriov_totalvfs")
[ "$(val "$P/sriov_numvfs")" = 0 ] || fail "sriov_numvfs not 0 at start"
[ "$total" -ge 3 ] 2>/dev/null || fail "sriov_totalvfs is '$total', want >= 3"
e=$(wr "$P/sriov_drivers_autoprobe" 0) || fail "sriov_drivers_autoprobe 0: $e"
e=$(wr "$P/sriov_numvfs" 2) || fail "sriov_numvfs 2: $e"
nvf=$(ls -d "$P"/virtfn* 2>/dev/null | wc -l)
[ "$nvf" = 2 ] || fail "$nvf virtfn links after sriov_numvfs=2"
vfgroups=()
for l in "$P"/virtfn*; do
    vf=$(basename "$(readlink "$l")")
    [ "$(val "$PCI/$vf/vendor"):$(val "$PCI/$vf/device")" = 0x1b36:0x0010 ] || fail "VF $vf has other IDs"
    [ "$(basename "$(readlink "$PCI/$vf/physfn")")" = "$nvme_pf" ] || fail "VF $vf physfn is not $nvme_pf"
    [ "$(driver_of "$vf")" = none ] || fail "VF $vf was probed by $(driver_of "$vf") despite autoprobe 0"
    [ "$mode" = iommu ] && vfgroups+=("$(group_of "$vf")")
done
if [ "$mode" = iommu ]; then
    pg=$(group_of "$nvme_pf")
    [ "${vfgroups[0]}" != none ] && [ "${vfgroups[0]}" != "${vfgroups[1]}" ] \
        && [ "${vfgroups[0]}" != "$pg" ] && [ "${vfgroups[1]}" != "$pg" ] \
        || fail "VF groups not distinct: PF $pg, VFs ${vfgroups[*]}"
    ok "2 VFs (IDs 1b36:0010, no driver), own groups ${vfgroups[*]} (PF $pg)"
else
    ok "2 VFs (IDs 1b36:0010, no driver)"
fi
e=$(wr "$P/sriov_numvfs" 3) && fail "sriov_numvfs 2->3 succeeded"
case $e in *"Device or resource busy"*) ok "2->3: EBUSY" ;; *) fail "2->3 failed with '$e', want EBUSY" ;; esac
over=$((total + 1))
e=$(wr "$P/sriov_numvfs" "$over") && fail "sriov_numvfs $over (> total $total) succeeded"
case $e in *"Numerical result out of range"*) ok "$over > total $total: ERANGE" ;; *) fail "$over failed with '$e', want ERANGE" ;; esac
[ "$(val "$P/sriov_numvfs")" = 2 ] || fail "sriov_numvfs changed to $(val "$P/sriov_numvfs") by failed writes"
e=$(wr "$P/sriov_numvfs" 0) || fail "sriov_numvfs 0: $e"
nvf=$(ls -d "$P"/virtfn* 2>/dev/null | wc -l)
[ "$nvf" = 0 ] || fail "$nvf virtfn links left after sriov_numvfs=0"
e=$(wr "$P/sriov_drivers_autoprobe" 1) || fail "sriov_drivers_autoprobe 1: $e"
ok "back to 0 VFs"

echo "SELFTEST PASS ($mode)"
exit 0
