#!/bin/bash
# The persist chain of boot-guest.sh on the simulator's qemu-q35 host (the rig's machine), for boot.sh's
# comparison with the real boots. Each boot is a freshly created simulated host that keeps /etc and /var
# (the disk) of the one before, and replays what the boot's units run, in their order:
# gpuvirt-sriov.service (sriov restore), gpuvirt-vfio.service (passthrough restore), gpuvirt-vgpu.service
# (vgpu start-defined) and, once enabled, gpuvirt-apply.service (apply). The per-device units udev starts
# run the same restores for the devices present at boot. The simulator has no mdev parent on the single
# display (the rig's test module), so the vGPU step is left out; it changes no PCI binding.
# Prints the guest's SIM-BINDINGS dumps.
#   boot-sim.sh GPUVIRT DIR
set -u
G=$1 DIR=$2
mkdir -p "$DIR"
n=0 R= apply_enabled=0
SINGLE=0000:02:00.0 PF=0000:03:00.0 PAIR=0000:04:00.0
run() { "$G" --root "$R" "$@" >>"$DIR/log" 2>&1; }
boot() { # a fresh host with the previous one's /etc and /var, and the boot's units
        local prev=$R
        n=$((n + 1))
        R=$DIR/boot$n
        "$G" sim create "$R" --profile qemu-q35 >/dev/null || exit 1
        if [ -n "$prev" ]; then
                cp -a "$prev/etc/." "$R/etc/" && cp -a "$prev/var/." "$R/var/" || exit 1
                run sriov restore
                run passthrough restore
                run vgpu start-defined
                [ $apply_enabled = 1 ] && run apply
        fi
        return 0
}
bindings() {
        local d b drv
        echo "SIM-BINDINGS-BEGIN $1"
        for d in "$R"/sys/bus/pci/devices/0000:0[1-4]:*; do
                b=${d##*/}
                drv=$(readlink "$d/driver" 2>/dev/null) && drv=${drv##*/} || drv=none
                echo "$b driver=$drv"
        done
        echo "vfs $PF: $(cat "$R/sys/bus/pci/devices/$PF/sriov_numvfs")"
        echo "SIM-BINDINGS-END"
}
host_yaml() {
        printf 'version: 1\ngpus:\n  - select: "%s"\n    mode: passthrough\n  - select: "%s"\n    mode: sriov\n    sriov: {vfs: %s, vfs-mode: passthrough}\n' \
                "$SINGLE" "$PF" "$1"
}

boot
run passthrough enable --persist "$PAIR"
run sriov set "$PF" 2 --vfio --persist
bindings "persist configured"
boot
bindings "persist after boot"
run passthrough disable --persist "$PAIR"
run sriov set "$PF" 0 --persist
host_yaml 2 >"$R/etc/gpuvirt/host.yaml"
apply_enabled=1
boot
bindings "apply after boot"
host_yaml 9 >"$R/etc/gpuvirt/host.yaml"
boot
bindings "impossible entry"
