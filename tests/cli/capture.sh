#!/usr/bin/env bash
# Captured hosts (a directory without the simulator's marker): a missing file reads as unknown. check says
# it cannot tell (SKIP with the reason) instead of failing on what the capture merely lacks, and the IOMMU
# is judged from the one source of truth for groups, the devices' iommu_group links (as show uses).
# The fixtures are copies of simulated hosts with parts removed, as partial captures of real hosts are.
set -u
GPUVIRT=$1
. "$(dirname "$0")/lib.sh"

"$GPUVIRT" sim create "$TMP/dgx" --profile dgx-a100 >/dev/null
capture() { # name: a fresh capture of the dgx host
        rm -rf "$TMP/$1"
        cp -a "$TMP/dgx" "$TMP/$1"
        rm -rf "$TMP/$1/.gpuvirt-sim"
}
status() { # json, id, device|null -> status
        echo "$1" | jq -r --arg id "$2" --arg dev "$3" '.[] | select(.id == $id and ((.device // "null") == $dev)) | .status'
}
msg() { echo "$1" | jq -r --arg id "$2" --arg dev "$3" '.[] | select(.id == $id and ((.device // "null") == $dev)) | .message'; }
GPU=0000:23:00.0

# the whole capture: what the simulated host says
capture full
expect_rc 0 "$GPUVIRT" --root "$TMP/full" --json check
full=$OUT
[ "$(status "$full" kvm null)" = pass ] && [ "$(status "$full" iommu-kernel null)" = pass ] && ok || fail "full capture: $full"

# 1. no dev/: /dev/kvm cannot be told, not "does not exist"
capture nodev
rm -rf "$TMP/nodev/dev"
expect_rc 0 "$GPUVIRT" --root "$TMP/nodev" --json check
[ "$(status "$OUT" kvm null)" = skip ] && ok || fail "kvm without dev/: $(status "$OUT" kvm null)"
expect_in "$(msg "$OUT" kvm null)" "the capture has no dev/: cannot tell" "kvm reason"
# dev/ captured without kvm: that one is real
capture nokvm
rm -f "$TMP/nokvm/dev/kvm"
expect_rc 1 "$GPUVIRT" --root "$TMP/nokvm" --json check
[ "$(status "$OUT" kvm null)" = fail ] && ok || fail "dev/ without kvm fails"

# 2. no sys/kernel/iommu_groups, devices keep their iommu_group links: the IOMMU is on, as show says
capture nogroups
rm -rf "$TMP/nogroups/sys/kernel/iommu_groups"
expect_rc 0 "$GPUVIRT" --root "$TMP/nogroups" --json show "$GPU"
grp=$(echo "$OUT" | jq .iommu_group)
[ "$grp" -ge 0 ] && ok || fail "show reports a group: $OUT"
expect_rc 0 "$GPUVIRT" --root "$TMP/nogroups" --json check
[ "$(status "$OUT" iommu-kernel null)" = pass ] && ok || fail "iommu-kernel with links but no iommu_groups: $(msg "$OUT" iommu-kernel null)"
[ "$(msg "$OUT" iommu-kernel null)" = "$(msg "$full" iommu-kernel null)" ] && ok || fail "the same group count as the full capture"
[ "$(status "$OUT" group-isolation "$GPU")" = pass ] && expect_in "$(msg "$OUT" group-isolation "$GPU")" "group $grp " "group check uses the same group"

# 3. neither: the capture cannot tell; everything that depends on it says so
capture nolinks
rm -rf "$TMP/nolinks/sys/kernel/iommu_groups"
find "$TMP/nolinks/sys/devices" -name iommu_group -type l -delete
expect_rc 0 "$GPUVIRT" --root "$TMP/nolinks" --json check
[ "$(status "$OUT" iommu-kernel null)" = skip ] && expect_in "$(msg "$OUT" iommu-kernel null)" "cannot tell" "iommu-kernel unknown"
[ "$(status "$OUT" interrupt-remapping null)" = skip ] && ok || fail "interrupt remapping unknown"
[ "$(status "$OUT" group-isolation "$GPU")" = skip ] && expect_in "$(msg "$OUT" group-isolation "$GPU")" "no iommu_group link in the capture" "group unknown"
# an empty sys/kernel/iommu_groups is a real "off"
capture off
find "$TMP/off/sys/devices" -name iommu_group -type l -delete
rm -rf "$TMP/off/sys/kernel/iommu_groups"/*
expect_rc 1 "$GPUVIRT" --root "$TMP/off" --json check
[ "$(status "$OUT" iommu-kernel null)" = fail ] && expect_in "$(msg "$OUT" iommu-kernel null)" "no IOMMU groups" "captured off"

# 4. no sys/module and no lib/modules: the vfio modules cannot be told
capture nomod
rm -rf "$TMP/nomod/sys/module" "$TMP/nomod/lib/modules"
expect_rc 0 "$GPUVIRT" --root "$TMP/nomod" --json check
[ "$(status "$OUT" vfio-modules null)" = skip ] && ok || fail "vfio modules without sys/module: $(msg "$OUT" vfio-modules null)"

# 5. attributes a capture of /sys often lacks (rom is binary, boot_vga): unknown, not absent
capture noattr
find "$TMP/noattr/sys/devices" \( -name rom -o -name boot_vga \) -delete
expect_rc 0 "$GPUVIRT" --root "$TMP/noattr" --json check
[ "$(status "$OUT" option-rom "$GPU")" = skip ] && ok || fail "rom unknown: $(status "$OUT" option-rom "$GPU")"
[ "$(status "$OUT" boot-vga 0000:02:00.0)" = skip ] && ok || fail "boot_vga of a VGA device unknown"
[ "$(status "$OUT" boot-vga "$GPU")" = pass ] && ok || fail "a 3D controller is no console either way"
# gpuvirt capture DIR: a capture written by gpuvirt reads as the host it was taken of. Every profile: list,
# list --vfs, check and show of each GPU give the same JSON on the capture as on the host, but for what
# comes from NVML (MIG mode and instances: a capture has no NVML) and the simulator's marker.
# check: a capture holds no etc/ (the boot loader's hints differ, the vGPU license configuration, etc/nvidia, is "cannot
# tell") and no process list (whether nvidia-vgpu-mgr runs is "cannot tell"), and an attribute it lacks is
# unknown, so a device without an option ROM is "cannot tell" there.
nonvml() {
        jq -S 'walk(if type == "object" then del(.mig_mode, .instances) else . end) |
               if type == "array" and (.[0].id? != null) then
                       map(select(.id != "option-rom" and .id != "vgpu-license" and .id != "nvidia-vgpu-host") | del(.hint))
               else . end' 2>&1
}
# ... and says so, rather than failing on what the capture lacks
for p in t4-grid t4-novgpumgr; do
        "$GPUVIRT" sim create "$TMP/skip-$p" --profile "$p" >/dev/null
        "$GPUVIRT" --root "$TMP/skip-$p" capture "$TMP/skipcap-$p" >/dev/null
        out=$("$GPUVIRT" --root "$TMP/skipcap-$p" --json check || true)
        [ "$(echo "$out" | jq -r '[.[] | select(.id == "vgpu-license" or .id == "nvidia-vgpu-host") | .status] | unique | join(",")')" = skip ] &&
                ok || fail "$p capture: the license and vGPU manager checks cannot tell: $(echo "$out" | jq -c '[.[] | select(.id == "vgpu-license" or .id == "nvidia-vgpu-host")]')"
done
for p in $("$GPUVIRT" --json sim profiles | jq -r '.[].name'); do
        "$GPUVIRT" sim create "$TMP/sim-$p" --profile "$p" >/dev/null
        expect_rc 0 "$GPUVIRT" --root "$TMP/sim-$p" capture "$TMP/cap-$p" || continue
        [ ! -e "$TMP/cap-$p/.gpuvirt-sim" ] && ok || fail "$p: the capture holds the simulator's marker"
        cmds=("list" "list --vfs" "check")
        for d in $("$GPUVIRT" --root "$TMP/sim-$p" --json list | jq -r '.[].address'); do cmds+=("show $d"); done
        for args in "${cmds[@]}"; do
                set +e
                a=$("$GPUVIRT" --root "$TMP/sim-$p" --json $args 2>&1 | nonvml)
                b=$("$GPUVIRT" --root "$TMP/cap-$p" --json $args 2>&1 | nonvml)
                set -e
                [ "$a" = "$b" ] && ok || fail "$p: $args differs on its capture: $(diff <(echo "$a") <(echo "$b") | head -20)"
        done
done
# what is private stays out: other kernel parameters (root=UUID=...), the host name
grep -q 'root=' "$TMP/sim-workstation/proc/cmdline" && ok || fail "the fixture has no root= to strip"
expect_in "$(cat "$TMP/cap-workstation/proc/cmdline")" "iommu" "device parameters kept"
! grep -q 'root=\|BOOT_IMAGE\|UUID' "$TMP/cap-workstation/proc/cmdline" && ok || fail "private kernel parameters captured"
[ ! -e "$TMP/cap-workstation/proc/sys/kernel/hostname" ] && ok || fail "the host name was captured"
# a capture is not a host: capturing into a non-empty directory is refused, and a capture changes nothing
expect_rc 2 "$GPUVIRT" --root "$TMP/sim-workstation" capture "$TMP/cap-workstation" && expect_in "$ERR" "not empty" "non-empty DIR"
expect_rc 2 "$GPUVIRT" --root "$TMP/sim-workstation" capture && expect_in "$ERR" "usage: gpuvirt capture DIR" "no DIR"
expect_rc 2 "$GPUVIRT" --root "$TMP/cap-workstation" passthrough enable 0000:01:00.0 --force
# a capture of a capture is the same capture
expect_rc 0 "$GPUVIRT" --root "$TMP/cap-dgx-a100" capture "$TMP/cap2" &&
        diff -r --no-dereference "$TMP/cap-dgx-a100" "$TMP/cap2" >/dev/null && ok || fail "a capture of a capture differs"
finish
