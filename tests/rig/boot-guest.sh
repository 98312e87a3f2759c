#!/bin/bash
# Guest side of the rig-boot suite (tests/rig/boot.sh runs it in boot mode: systemd as PID 1, udev, the
# image's own initramfs). One call per boot: CHAIN PHASE STAGE MODS
#   CHAIN  persist: passthrough enable --persist, sriov set --vfio --persist, vgpu create --persist --auto,
#                   then gpuvirt-apply.service with a mixed host.yaml, then one with an impossible entry
#          ids:     host iommu enable (/etc/kernel/cmdline), passthrough persist --ids, and the revert
#   PHASE  1 configures with gpuvirt's own commands (after installing it); every later phase first checks
#          what the kernel, systemd and the journal show after the boot, before anyone runs gpuvirt, then
#          prepares the next boot
#   STAGE  the `meson install --destdir` tree (host path), MODS the rig's module directory (mdev-samples.sh)
# Prints "PASS: ..." / "FAIL: ..." lines, "SIM-BINDINGS" dumps for boot.sh's comparison with the
# simulator, and "BOOT-VERDICT fails=N".
set -u
CHAIN=$1 PHASE=$2 STAGE=$RIG_HOST$3 MODS=$RIG_HOST$4
HERE=$RIG_HOST$RIG_DIR
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1
PCI=/sys/bus/pci/devices
G=/usr/local/bin/gpuvirt
fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # description command...: PASS when the command succeeds
        local what=$1; shift
        if "$@"; then pass "$what"; else fail "$what"; fi
}
drv() { local l; l=$(readlink "$PCI/$1/driver" 2>/dev/null) && echo "${l##*/}" || echo none; }
is_drv() { [ "$(drv "$1")" = "$2" ]; }
show() { sed 's/^/    /'; }
# the kernel's messages of this boot (journalctl -k reads the same ring buffer as dmesg, with the boot's
# early part kept by journald)
kmsg() { journalctl -k -b 0 -o cat --no-pager; }
unit_result() { systemctl show -P Result "$1"; }
unit_ran() { [ -n "$(systemctl show -P ExecMainStartTimestampMonotonic "$1" | grep -v '^0$')" ]; }
unit_journal() { journalctl -b 0 -u "$1" -o cat --no-pager; }
# monotonic µs: when a unit's main process exited / started
exited_at() { systemctl show -P ExecMainExitTimestampMonotonic "$1"; }
started_at() { systemctl show -P ExecMainStartTimestampMonotonic "$1"; }
before() { # unit A finished before unit B started
        local a b
        a=$(exited_at "$1") b=$(started_at "$2")
        [ "${a:-0}" -gt 0 ] && [ "${b:-0}" -gt 0 ] && [ "$a" -le "$b" ]
}
bochs_bound() { kmsg | grep -q "Initialized bochs-drm .* for $1 "; }
bindings() { # one line per device of interest, for the comparison with the simulator
        echo "SIM-BINDINGS-BEGIN $1"
        for d in "$PCI"/0000:0[1-4]:*; do
                b=${d##*/}
                echo "$b driver=$(drv "$b")"
        done
        echo "vfs 0000:03:00.0: $(cat $PCI/0000:03:00.0/sriov_numvfs)"
        echo "SIM-BINDINGS-END"
}

host_yaml() { # the mixed desired state: the single display passed through, the NVMe PF with $1 VFs on vfio-pci
        printf 'version: 1\ngpus:\n  - select: "%s"\n    mode: passthrough\n  - select: "%s"\n    mode: sriov\n    sriov: {vfs: %s, vfs-mode: passthrough}\n' \
                "$SINGLE" "$PF" "$1"
}

install_gpuvirt() {
        # what `meson install` put into the stage: the binary, the udev rules, the units, the man page
        cp -a "$STAGE/." / || { fail "install from $STAGE"; return; }
        ldconfig
        systemctl daemon-reload
        udevadm control --reload
        local f
        for f in /usr/local/bin/gpuvirt /usr/local/lib/udev/rules.d/90-gpuvirt-vfio.rules \
                /usr/local/lib/systemd/system/gpuvirt-vfio@.service /usr/local/share/man/man1/gpuvirt.1; do
                [ -e "$f" ] || fail "meson install did not provide $f"
        done
        pass "gpuvirt installed from the meson install tree ($("$G" version 2>&1 | head -n1))"
}

echo "boot-guest: chain $CHAIN phase $PHASE, kernel $(uname -r), system ${RIG_BOOT_STATE:-?}, cmdline: $(cat /proc/cmdline)"
systemd-analyze 2>/dev/null | head -n1 | sed 's/^/TIMING boot: /'

PAIR=0000:04:00.0 PAIR1=0000:04:00.1 SINGLE=0000:02:00.0 VGA=0000:01:00.0 PF=0000:03:00.0
UUID=5a3e1c2b-8f4d-4e6a-9b7c-2d1e0f9a8b7c

case $CHAIN:$PHASE in
persist:1)
        install_gpuvirt
        # The mdev parent: our test module on the single bochs-display, loaded when bochs-drm has bound
        # it, as a vendor's vGPU driver registers its parent once it drives the GPU (asynchronously to
        # the boot's units). Its udev rule is the rig's, not gpuvirt's.
        mkdir -p /usr/local/lib/rig && cp "$MODS/gpuvirt_mdev_test.ko" /usr/local/lib/rig/
        cat >/etc/udev/rules.d/70-rig-mdev-parent.rules <<EOT
ACTION=="bind", SUBSYSTEM=="pci", KERNEL=="$SINGLE", DRIVER=="bochs-drm", \\
  RUN+="/bin/sh -c 'modprobe -q -a vfio mdev && insmod /usr/local/lib/rig/gpuvirt_mdev_test.ko bdf=\$kernel units=8'"
EOT
        modprobe -a vfio mdev && insmod /usr/local/lib/rig/gpuvirt_mdev_test.ko bdf=$SINGLE units=8 || fail "insmod gpuvirt_mdev_test"
        # Debian 12's mdevctl rule runs /usr/sbin/mdevctl, which the package does not ship (/usr/bin):
        # its autostart never runs. Link it, so that mdevctl's autostart really races gpuvirt's.
        [ -e /usr/sbin/mdevctl ] || ln -s /usr/bin/mdevctl /usr/sbin/mdevctl
        check "vgpu create --persist --auto on $SINGLE" "$G" vgpu create "$SINGLE" bochs-drm-2q --uuid $UUID --persist --auto
        check "enable gpuvirt-vgpu.service" systemctl enable --quiet gpuvirt-vgpu.service
        check "passthrough enable --persist $PAIR" "$G" passthrough enable --persist "$PAIR"
        check "sriov set $PF 2 --vfio --persist" "$G" sriov set "$PF" 2 --vfio --persist
        for f in $(find /etc/gpuvirt /etc/mdevctl.d -type f); do
                echo "  $f: $(cat "$f")"
        done
        bindings "persist configured"
        ;;
persist:2)
        # --- passthrough enable --persist: both functions on vfio-pci, bochs-drm never bound them
        check "$PAIR and $PAIR1 on vfio-pci after boot" eval 'is_drv $PAIR vfio-pci && is_drv $PAIR1 vfio-pci'
        for f in $PAIR $PAIR1; do
                check "bochs-drm never bound $f (kernel log of this boot)" eval '! bochs_bound $f'
                echo "  $f driver_override=$(cat $PCI/$f/driver_override) (set by 90-gpuvirt-vfio.rules)"
        done
        check "bochs-drm drives the other displays (the log names them)" eval 'bochs_bound $VGA && bochs_bound $SINGLE'
        for u in gpuvirt-vfio.service gpuvirt-vfio@$PAIR.service gpuvirt-vfio@$PAIR1.service; do
                unit_ran "$u" && echo "  $u: $(unit_result "$u")" && unit_journal "$u" | show
        done
        check "gpuvirt-vfio.service succeeded" eval '[ "$(unit_result gpuvirt-vfio.service)" = success ] && unit_ran gpuvirt-vfio.service'
        check "gpuvirt-vfio.service finished before libvirtd.service started" before gpuvirt-vfio.service libvirtd.service
        # --- sriov set --vfio --persist: 2 VFs on vfio-pci, before libvirtd and gpuvirt-vgpu
        check "$PF has 2 VFs after boot" eval '[ "$(cat $PCI/$PF/sriov_numvfs)" = 2 ]'
        for v in 0000:03:00.1 0000:03:00.2; do
                check "VF $v on vfio-pci" is_drv $v vfio-pci
        done
        for u in gpuvirt-sriov.service gpuvirt-sriov@$PF.service; do
                unit_ran "$u" && echo "  $u: $(unit_result "$u")" && unit_journal "$u" | show
        done
        u=gpuvirt-sriov.service
        check "$u succeeded" eval '[ "$(unit_result $u)" = success ] && unit_ran $u'
        check "$u finished before libvirtd.service started" before $u libvirtd.service
        check "$u finished before gpuvirt-vgpu.service started" before $u gpuvirt-vgpu.service
        check "nvme never probed a VF (kernel log)" eval '! kmsg | grep -q "nvme 0000:03:00\.[1-9]"'
        # --- vgpu create --persist --auto: the mdev exists, our units and mdevctl's autostart did not fail
        check "mdev $UUID exists with type bochs-drm-2q" \
                eval '[ "$(basename "$(readlink /sys/bus/mdev/devices/$UUID/mdev_type)")" = bochs-drm-2q ]'
        for u in gpuvirt-vgpu.service gpuvirt-vgpu@$SINGLE.service; do
                check "$u succeeded" eval '[ "$(unit_result $u)" = success ] && unit_ran $u'
                unit_journal $u | show
        done
        journalctl -b 0 -t mdevctl -o short-monotonic --no-pager | sed 's/^/  /'
        echo "  order (monotonic us, start/exit):"
        for u in systemd-udev-trigger.service gpuvirt-sriov.service gpuvirt-sriov@$PF.service gpuvirt-vfio.service \
                gpuvirt-vgpu.service gpuvirt-vgpu@$SINGLE.service libvirtd.service; do
                echo "    $u $(started_at $u) $(exited_at $u)"
        done
        check "no failed unit" eval '[ -z "$(systemctl list-units --failed --plain --no-legend)" ]'
        systemctl list-units --failed --plain --no-legend | show
        bindings "persist after boot"
        # --- revert, for the next boot; and the desired state file, applied by gpuvirt-apply.service
        check "passthrough disable --persist $PAIR" "$G" passthrough disable --persist "$PAIR"
        check "sriov set $PF 0 --persist" "$G" sriov set "$PF" 0 --persist
        check "vgpu remove $UUID (and its definition)" "$G" vgpu remove $UUID
        rm -f /etc/udev/rules.d/70-rig-mdev-parent.rules
        rmmod gpuvirt_mdev_test
        host_yaml 2 >/etc/gpuvirt/host.yaml
        check "plan of the mixed host.yaml: 2 steps" eval '[ "$("$G" --json plan | jq length)" = 2 ]'
        "$G" plan | show
        check "enable gpuvirt-apply.service" systemctl enable --quiet gpuvirt-apply.service
        ;;
persist:3)
        # --- the reverts: nothing of the first configuration comes back
        check "$PAIR and $PAIR1 on bochs-drm after disable --persist" eval 'is_drv $PAIR bochs-drm && is_drv $PAIR1 bochs-drm'
        for u in gpuvirt-vfio@$PAIR.service gpuvirt-vfio@$PAIR1.service gpuvirt-sriov@$PF.service gpuvirt-vfio.service \
                gpuvirt-sriov.service gpuvirt-vgpu@$SINGLE.service; do
                check "$u not started" eval '! unit_ran $u'
        done
        check "no mdev" eval '[ -z "$(ls /sys/bus/mdev/devices 2>/dev/null)" ]'
        # --- gpuvirt-apply.service: the host is in the desired state, before libvirtd started
        u=gpuvirt-apply.service
        check "$u succeeded" eval '[ "$(unit_result $u)" = success ] && unit_ran $u'
        unit_journal $u | show
        check "$SINGLE on vfio-pci (passthrough entry)" is_drv $SINGLE vfio-pci
        check "$PF has 2 VFs on vfio-pci (sriov entry)" \
                eval '[ "$(cat $PCI/$PF/sriov_numvfs)" = 2 ] && is_drv 0000:03:00.1 vfio-pci && is_drv 0000:03:00.2 vfio-pci'
        check "$u finished before libvirtd.service started" before $u libvirtd.service
        check "$u finished before gpuvirt-vgpu.service started" before $u gpuvirt-vgpu.service
        check "libvirtd.service is ordered after $u" eval 'systemctl show -P After libvirtd.service | grep -qw $u'
        echo "  systemd-analyze critical-chain libvirtd.service:"
        systemd-analyze critical-chain --no-pager libvirtd.service 2>&1 | show
        check "gpuvirt status: converged (exit 0, no drift)" eval '"$G" status >/tmp/status 2>&1'
        show </tmp/status
        check "gpuvirt assert: the host matches" "$G" assert
        bindings "apply after boot"
        # --- for the next boot: a file with an impossible entry after a valid one
        host_yaml 9 >/etc/gpuvirt/host.yaml
        ;;
persist:4)
        u=gpuvirt-apply.service
        check "the boot went on: ${RIG_BOOT_STATE:-?} (not stuck), libvirtd active" \
                eval '[ "$RIG_BOOT_STATE" = degraded ] && systemctl -q is-active libvirtd.service'
        check "$u failed" eval '[ "$(unit_result $u)" = exit-code ]'
        unit_journal $u | show
        check "the journal names the entry (FILE:LINE:COL and the device)" \
                eval 'unit_journal $u | grep -q "/etc/gpuvirt/host.yaml:[0-9]*:[0-9]*: $PF supports at most 4 VFs, not 9"'
        check "nothing half-done: $SINGLE on bochs-drm, $PF without VFs" \
                eval 'is_drv $SINGLE bochs-drm && [ "$(cat $PCI/$PF/sriov_numvfs)" = 0 ]'
        check "gpuvirt status is not green: exit 1, names the rejection" \
                eval '! "$G" status >/tmp/status 2>&1 && grep -q "cannot plan: /etc/gpuvirt/host.yaml:5:5: $PF" /tmp/status'
        show </tmp/status
        bindings "impossible entry"
        ;;
ids:1)
        install_gpuvirt
        # A systemd-boot host: /etc/kernel/cmdline holds what the boot loader passes (as an installer wrote
        # it); this boot came up with exactly that line, which turns the IOMMU off.
        rm -f /etc/default/grub
        cat /proc/cmdline >/etc/kernel/cmdline
        "$G" --json check >/tmp/check.json
        check "check fails: iommu-kernel (the IOMMU is off)" \
                eval 'jq -e ".[] | select(.id == \"iommu-kernel\") | .status == \"fail\"" /tmp/check.json >/dev/null'
        jq -r '.[] | select(.id == "iommu-kernel") | "  \(.message)"' /tmp/check.json
        check "host iommu enable" "$G" host iommu enable
        echo "  /etc/kernel/cmdline: $(cat /etc/kernel/cmdline)"
        check "passthrough persist --ids $PAIR" "$G" passthrough persist --ids "$PAIR"
        echo "  /etc/modprobe.d/vfio.conf:"; show </etc/modprobe.d/vfio.conf
        echo "  /etc/modules-load.d/vfio-pci.conf: $(cat /etc/modules-load.d/vfio-pci.conf)"
        # for boot.sh: the next boot's command line is this file, unchanged
        cp /etc/kernel/cmdline "$RIG_RUN/kernel-cmdline"
        bindings "ids configured"
        ;;
ids:2)
        check "booted with exactly /etc/kernel/cmdline" eval '[ "$(cat /proc/cmdline)" = "$(cat /etc/kernel/cmdline)" ]'
        check "the kernel has IOMMU groups" eval '[ -n "$(ls /sys/kernel/iommu_groups)" ]'
        # ids=1234:1111 catches every display of the rig: all on vfio-pci, bochs-drm bound none
        for f in $VGA $SINGLE $PAIR $PAIR1; do
                check "$f on vfio-pci" is_drv $f vfio-pci
                check "bochs-drm never bound $f (kernel log of this boot)" eval '! bochs_bound $f'
        done
        journalctl -b 0 -u systemd-modules-load.service -o cat --no-pager | show
        # vfio_pci comes from modules-load.d, or first from modprobe's softdep when udev loads bochs: the
        # boots have shown both
        check "vfio_pci loaded at boot, systemd-modules-load succeeded" \
                eval '[ -d /sys/module/vfio_pci ] && [ "$(unit_result systemd-modules-load.service)" = success ]'
        inserted=$(journalctl -b 0 -u systemd-modules-load.service -o cat --no-pager | grep -c "Inserted module .vfio_pci.")
        echo "  vfio_pci inserted by systemd-modules-load: $([ "$inserted" -gt 0 ] && echo yes || echo "no (already loaded: a softdep of bochs)")"
        check "modprobe applies ids=1234:1111 to vfio_pci (modprobe.d)" eval 'modprobe -c | grep -qx "options vfio_pci ids=1234:1111"'
        "$G" --json check >/tmp/check.json
        check "check passes: iommu-kernel" \
                eval 'jq -e ".[] | select(.id == \"iommu-kernel\") | .status == \"pass\"" /tmp/check.json >/dev/null'
        jq -r '.[] | select(.id == "iommu-kernel") | "  \(.message)"' /tmp/check.json
        bindings "ids after boot"
        check "passthrough persist --ids --remove $PAIR" "$G" passthrough persist --ids --remove "$PAIR"
        check "modprobe.d and modules-load.d files gone" eval '[ ! -e /etc/modprobe.d/vfio.conf ] && [ ! -e /etc/modules-load.d/vfio-pci.conf ]'
        cp /etc/kernel/cmdline "$RIG_RUN/kernel-cmdline"
        ;;
ids:3)
        for f in $VGA $SINGLE $PAIR $PAIR1; do
                check "$f back on bochs-drm" is_drv $f bochs-drm
        done
        check "systemd-modules-load did not load vfio_pci" \
                eval '! journalctl -b 0 -u systemd-modules-load.service -o cat --no-pager | grep -q "Inserted module .vfio_pci."'
        bindings "ids reverted"
        ;;
*)
        fail "unknown chain/phase $CHAIN:$PHASE" ;;
esac
echo "BOOT-VERDICT fails=$fails"
exit $((fails > 0))
