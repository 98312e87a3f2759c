#!/bin/bash
# One passthrough (and SR-IOV) scenario, run on the simulator's qemu-q35 host and on the real kernel in the rig
# (same machine, same addresses): prints the bindings, groups and /dev/vfio nodes after each step,
# read straight from sysfs by this script (not by gpuvirt), so the two outputs can be compared.
#   pt-scenario.sh GPUVIRT [ROOT]      ROOT: a simulated qemu-q35 host; default / (the live kernel)
set -u
GPUVIRT=$1
ROOT=${2:-/}
R=${ROOT%/}
export GPUVIRT_ROOT=$ROOT
PCI=$R/sys/bus/pci/devices

dump() { # step name
        echo "== $1"
        for d in "$PCI"/*; do
                b=$(basename "$d")
                drv=$(readlink "$d/driver" 2>/dev/null); drv=${drv##*/}
                grp=$(readlink "$d/iommu_group" 2>/dev/null); grp=${grp##*/}
                echo "$b driver=${drv:-none} group=${grp:-none}"
        done
        echo "vfio nodes: $(ls "$R/dev/vfio" 2>/dev/null | grep -E '^[0-9]+$' | sort -n | tr '\n' ' ')"
}
step() { # name expected-rc args...
        local name=$1 want=$2; shift 2
        "$GPUVIRT" "$@" >/dev/null 2>"$ERRF"
        local rc=$?
        echo "-- $name: rc=$rc"
        [ "$rc" = "$want" ] || { echo "UNEXPECTED rc $rc (wanted $want): $(cat "$ERRF")"; }
        dump "$name"
}
ERRF=$(mktemp)
trap 'rm -f "$ERRF"' EXIT

dump boot
# the single display (its own group)
step "enable single" 0 passthrough enable 0000:02:00.0
# the two-function device: both functions move together
step "enable pair" 0 passthrough enable 0000:04:00.0
step "enable pair again (no-op)" 0 passthrough enable 0000:04:00.1
# refusals: the boot VGA, and the ICH9 SATA whose group holds the LPC bridge and SMBus controller
step "refuse boot vga" 1 passthrough enable 0000:01:00.0
step "refuse foreign group" 1 passthrough enable 0000:00:1f.2
step "disable single" 0 passthrough disable 0000:02:00.0
step "disable pair" 0 passthrough disable 0000:04:00.1
# SR-IOV on the NVMe: VFs appear with their own groups; the native driver cannot probe QEMU's VFs
step "2 VFs" 0 sriov set 0000:03:00.0 2
step "VFs to vfio-pci" 0 sriov set 0000:03:00.0 2 --vfio
step "VFs to 0" 0 sriov set 0000:03:00.0 0
