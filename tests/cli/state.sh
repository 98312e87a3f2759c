#!/usr/bin/env bash
# The desired host state end to end on simulated hosts: export -> assert on every profile, apply of a
# changed file then assert, second apply a no-op, drift, every rejection (FILE:LINE:COL, nothing
# changed), and a crash test that kills apply at each kernel write in turn (kill -9 through the
# simulator's KILL fault) and checks that recover converges with no device left without a driver.
set -eu
GPUVIRT=$1
. "$(dirname "$0")/lib.sh"

# 1. every profile: what export prints, assert and apply accept unchanged
for p in $("$GPUVIRT" --json sim profiles | jq -r '.[].name'); do
        "$GPUVIRT" sim create "$TMP/$p" --profile "$p" >/dev/null
        expect_rc 0 "$GPUVIRT" --root "$TMP/$p" export -o "$TMP/$p.yaml"
        expect_rc 0 "$GPUVIRT" --root "$TMP/$p" assert -f "$TMP/$p.yaml"
        expect_rc 0 "$GPUVIRT" --root "$TMP/$p" --json plan -f "$TMP/$p.yaml" &&
                { echo "$OUT" | jq -e 'length == 0' >/dev/null && ok || fail "$p: plan of its export: $OUT"; }
        expect_rc 0 "$GPUVIRT" --root "$TMP/$p" apply -f "$TMP/$p.yaml" && expect_in "$OUT" "No changes" "$p: apply of export"
done

# 2. a changed file: apply, then assert; a second apply changes nothing; drift is detected
D=(--root "$TMP/dgx-a100")
cat >"$TMP/dgx.yaml" <<'Y'
version: 1
gpus:
  - select: all
    mode: host
  - select: "10de:20b0"
    mode: mig
    mig: {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}
  - select: "0000:23:00.0"
    mode: passthrough
Y
expect_rc 0 "$GPUVIRT" "${D[@]}" --json plan -f "$TMP/dgx.yaml"
echo "$OUT" | jq -e 'length == 8 and .[0].action == "bind-vfio" and ([.[] | select(.action == "mig-apply")] | length) == 7' \
        >/dev/null && ok || fail "dgx plan: $OUT"
expect_rc 0 "$GPUVIRT" "${D[@]}" apply -f "$TMP/dgx.yaml"
expect_rc 0 "$GPUVIRT" "${D[@]}" assert -f "$TMP/dgx.yaml"
expect_rc 0 "$GPUVIRT" "${D[@]}" apply -f "$TMP/dgx.yaml" && expect_in "$OUT" "No changes" "second apply is a no-op"
expect_rc 0 "$GPUVIRT" "${D[@]}" --json mig status && echo "$OUT" | jq -e '[.[] | select(.address != "0000:23:00.0") | .instances | length] | all(. == 4)' >/dev/null && ok || fail "mig layout"
# drift: someone releases the passthrough GPU by hand
"$GPUVIRT" "${D[@]}" passthrough disable 23:00.0 >/dev/null
expect_rc 1 "$GPUVIRT" "${D[@]}" assert -f "$TMP/dgx.yaml" && expect_in "$OUT" "bind 0000:23:00.0 and its group to vfio-pci" "drift named"
expect_rc 1 "$GPUVIRT" "${D[@]}" status -f "$TMP/dgx.yaml" && expect_in "$OUT" "Drift: the host differs" "status shows drift"
expect_rc 0 "$GPUVIRT" "${D[@]}" apply -f "$TMP/dgx.yaml"
expect_rc 0 "$GPUVIRT" "${D[@]}" status -f "$TMP/dgx.yaml" && expect_in "$OUT" "Last apply: succeeded" "status after apply"
# the default file is etc/gpuvirt/host.yaml under the root
mkdir -p "$TMP/dgx-a100/etc/gpuvirt" && cp "$TMP/dgx.yaml" "$TMP/dgx-a100/etc/gpuvirt/host.yaml"
expect_rc 0 "$GPUVIRT" "${D[@]}" assert
# back to host everywhere: MIG disabled, vfio released
printf 'version: 1\ngpus:\n  - select: all\n    mode: host\n' >"$TMP/host.yaml"
expect_rc 0 "$GPUVIRT" "${D[@]}" apply -f "$TMP/host.yaml"
expect_rc 0 "$GPUVIRT" "${D[@]}" assert -f "$TMP/dgx-a100.yaml"

# vGPU (mdev), vendor vGPU and SR-IOV with VFs on vfio-pci
T=(--root "$TMP/t4-grid")
printf 'version: 1\ngpus:\n  - select: "10de:1eb8"\n    mode: vgpu\n    vgpu: {type: "GRID T4-2Q", count: 4}\n' >"$TMP/t4.yaml"
expect_rc 0 "$GPUVIRT" "${T[@]}" apply -f "$TMP/t4.yaml"
expect_rc 0 "$GPUVIRT" "${T[@]}" --json vgpu list && echo "$OUT" | jq -e '[.[] | select(.active)] | length == 12' >/dev/null && ok || fail "12 mdevs"
uuids1=$(echo "$OUT" | jq -r '[.[].id] | sort | join(",")')
expect_rc 0 "$GPUVIRT" "${T[@]}" assert -f "$TMP/t4.yaml"
# the same UUIDs come back after the vGPUs vanish (a reboot): VM definitions keep pointing at them
for u in ${uuids1//,/ }; do "$GPUVIRT" "${T[@]}" vgpu remove "$u" >/dev/null; done
expect_rc 1 "$GPUVIRT" "${T[@]}" assert -f "$TMP/t4.yaml"
expect_rc 0 "$GPUVIRT" "${T[@]}" apply -f "$TMP/t4.yaml"
uuids2=$("$GPUVIRT" "${T[@]}" --json vgpu list | jq -r '[.[].id] | sort | join(",")')
[ "$uuids1" = "$uuids2" ] && ok || fail "vGPU UUIDs are not stable across re-creation"
H=(--root "$TMP/h100")
printf 'version: 1\ngpus:\n  - select: "0000:16:00.0"\n    mode: vgpu\n    vgpu: {type: "NVIDIA H100-10C", count: 3}\n' >"$TMP/h.yaml"
expect_rc 0 "$GPUVIRT" "${H[@]}" apply -f "$TMP/h.yaml"
expect_rc 0 "$GPUVIRT" "${H[@]}" assert -f "$TMP/h.yaml"
F=(--root "$TMP/flex-sriov")
printf 'version: 1\ngpus:\n  - select: "8086:56c0"\n    mode: sriov\n    sriov: {vfs: 4, vfs-mode: passthrough}\n' >"$TMP/f.yaml"
expect_rc 0 "$GPUVIRT" "${F[@]}" apply -f "$TMP/f.yaml"
expect_rc 0 "$GPUVIRT" "${F[@]}" --json list --vfs
echo "$OUT" | jq -e '[.[] | select(.physfn != null)] | length == 8 and all(.[]; .driver == "vfio-pci")' >/dev/null && ok || fail "8 VFs on vfio-pci"
expect_rc 0 "$GPUVIRT" "${F[@]}" assert -f "$TMP/f.yaml"
# an address entry may name an endpoint that is not a GPU: the real-kernel rig's SR-IOV NVMe beside a
# display to pass through (the rig's boot applies the same file with gpuvirt-apply.service)
Q=(--root "$TMP/qemu-q35")
printf 'version: 1\ngpus:\n  - select: "0000:02:00.0"\n    mode: passthrough\n  - select: "0000:03:00.0"\n    mode: sriov\n    sriov: {vfs: 2, vfs-mode: passthrough}\n' >"$TMP/q.yaml"
expect_rc 0 "$GPUVIRT" "${Q[@]}" --json plan -f "$TMP/q.yaml"
echo "$OUT" | jq -e 'length == 2 and .[0].action == "sriov-set" and .[1].action == "bind-vfio"' >/dev/null && ok || fail "q35 plan: $OUT"
expect_rc 0 "$GPUVIRT" "${Q[@]}" apply -f "$TMP/q.yaml"
expect_rc 0 "$GPUVIRT" "${Q[@]}" assert -f "$TMP/q.yaml"
for f in 0000:02:00.0 0000:03:00.1 0000:03:00.2; do
        [ "$(basename "$(readlink "$TMP/qemu-q35/sys/bus/pci/devices/$f/driver")")" = vfio-pci ] && ok || fail "$f not on vfio-pci"
done

# 3. rejections: FILE:LINE:COL, exit 2, and nothing changes
reject() { # profile, file text, expected position, expected words
        printf '%b' "$2" >"$TMP/bad.yaml"
        "$GPUVIRT" --root "$TMP/$1" export >"$TMP/before"
        expect_rc 2 "$GPUVIRT" --root "$TMP/$1" apply -f "$TMP/bad.yaml" && expect_in "$ERR" "$TMP/bad.yaml:$3: " "position" &&
                expect_in "$ERR" "$4" "reason"
        "$GPUVIRT" --root "$TMP/$1" export >"$TMP/after"
        cmp -s "$TMP/before" "$TMP/after" && ok || fail "a rejected file changed the host ($1)"
}
reject dgx-a100 'version: 1\ngpus:\n  - select: "10de:20b0"\n    mode: sriov\n    sriov: {vfs: 2}\n' 3:5 "has no SR-IOV capability"
reject flex-sriov 'version: 1\ngpus:\n  - select: "8086:56c0"\n    mode: sriov\n    sriov: {vfs: 40}\n' 3:5 "at most 31 VFs"
reject dgx-a100 'version: 1\ngpus:\n  - select: "0000:24:00.0"\n    mode: mig\n    mig: {"1g.5gb": 7, "3g.20gb": 1}\n' 3:5 "does not fit"
reject dgx-a100 'version: 1\ngpus:\n  - select: "0000:24:00.0"\n    mode: mig\n    mig: {"1g.6gb": 1}\n' 3:5 "does not exist on 0000:24:00.0"
reject t4-grid 'version: 1\ngpus:\n  - select: "10de:1eb8"\n    mode: vgpu\n    vgpu: {type: nvidia-999, count: 1}\n' 3:5 "no vGPU type 'nvidia-999'"
reject t4-grid 'version: 1\ngpus:\n  - select: "10de:1eb8"\n    mode: vgpu\n    vgpu: {type: nvidia-234, count: 2}\n' 3:5 "at most 1 instances"
reject workstation 'version: 1\ngpus:\n  - select: "0000:01:00.0"\n    mode: passthrough\n' 3:5 "boot VGA"
reject workstation 'version: 1\ngpus:\n  - select: "0000:02:00.0"\n    mode: passthrough\n    force: true\n' 3:5 "include: [\"0000:03:00.0\"]"
reject no-iommu 'version: 1\ngpus:\n  - select: all\n    mode: passthrough\n    force: true\n' 3:5 "no IOMMU group"
reject dgx-a100 'version: 1\ngpus:\n  - select: "0000:99:00.0"\n    mode: host\n' 3:5 "no PCI device 0000:99:00.0"
reject dgx-a100 'version: 1\ngpus:\n  - select: "0000:22:00.0"\n    mode: host\n' 3:5 "is not a GPU (class 060400): it is a bridge"
reject qemu-q35 'version: 1\ngpus:\n  - select: "0000:03:00.1"\n    mode: host\n' 3:5 "it is a VF, name its PF"
reject qemu-q35 'version: 1\ngpus:\n  - select: "0000:02:00.0"\n    mode: host\n  - select: "0000:03:00.0"\n    mode: sriov\n    sriov: {vfs: 9}\n' 5:5 "supports at most 4 VFs"
[ "$(cat "$TMP/qemu-q35/sys/bus/pci/devices/0000:03:00.0/sriov_numvfs")" = 2 ] && ok || fail "a rejected file changed the VFs"
# status is not green while the desired state file is there but rejected (as after the rig's boot whose
# gpuvirt-apply.service failed on it); without a file it is
mkdir -p "$TMP/qemu-q35/etc/gpuvirt" && cp "$TMP/bad.yaml" "$TMP/qemu-q35/etc/gpuvirt/host.yaml"
expect_rc 1 "$GPUVIRT" --root "$TMP/qemu-q35" status && expect_in "$OUT" "cannot plan: /etc/gpuvirt/host.yaml:5:5: 0000:03:00.0 supports at most 4 VFs" "status names the rejection"
printf 'version: [\n' >"$TMP/qemu-q35/etc/gpuvirt/host.yaml"
expect_rc 1 "$GPUVIRT" --root "$TMP/qemu-q35" status && expect_in "$OUT" "Desired state: /etc/gpuvirt/host.yaml:2:1" "status names the syntax error"
rm "$TMP/qemu-q35/etc/gpuvirt/host.yaml"
expect_rc 0 "$GPUVIRT" --root "$TMP/qemu-q35" status
reject dgx-a100 'version: 1\ngpus:\n  - select: all\n    mode: host\n    colour: red\n' 5:5 "unknown key 'colour'"
reject dgx-a100 'version: 1\ngpus:\n  - select: all\n    mode: host\n  - select: all\n    mode: mig\n    mig: {"1g.5gb": 1}\n' 5:5 "same GPUs"
reject dgx-a100 'version: 1\ngpus:\n  - select: [all\n' 4:1 ""
expect_rc 1 "$GPUVIRT" --root "$TMP/qemu-q35" assert && expect_in "$ERR" "does not exist" "no default file"

# 4. crash test: kill apply at every kernel write in turn; recover must converge, no driver lost
"$GPUVIRT" sim create "$TMP/crash0" --profile workstation >/dev/null
cat >"$TMP/ws.yaml" <<'Y'
version: 1
gpus:
  - select: "0000:01:00.0"
    mode: passthrough
    force: true
  - select: "0000:02:00.0"
    mode: passthrough
    force: true
    include: ["0000:03:00.0"]
Y
drivers() { for d in "$1"/sys/bus/pci/devices/*; do [ -e "$d/driver" ] && basename "$d"; done | sort; }
drivers "$TMP/crash0" >"$TMP/drivers.boot"
n=$("$GPUVIRT" --root "$TMP/crash0" --dry-run apply -f "$TMP/ws.yaml" | grep -c '^write ')
[ "$n" -ge 10 ] && ok || fail "expected at least 10 kernel writes in the crash scenario, got $n"
for k in $(seq 1 "$n"); do
        rm -rf "$TMP/crash"
        cp -a "$TMP/crash0" "$TMP/crash"
        C=(--root "$TMP/crash")
        "$GPUVIRT" "${C[@]}" sim fault "@$k" KILL
        rc=0
        { "$GPUVIRT" "${C[@]}" apply -f "$TMP/ws.yaml" >/dev/null 2>&1; } 2>/dev/null || rc=$?
        [ "$rc" -eq 137 ] && ok || fail "apply was not killed at write $k (rc $rc)"
        [ -f "$TMP/crash/var/lib/gpuvirt/journal.json" ] && ok || fail "no journal after the kill at write $k"
        expect_rc 0 "$GPUVIRT" "${C[@]}" recover && expect_in "$OUT" "Finished the interrupted step" "recover at write $k"
        # every device that had a driver has one again (on vfio-pci or its own)
        drivers "$TMP/crash" >"$TMP/drivers.now"
        comm -23 "$TMP/drivers.boot" "$TMP/drivers.now" >"$TMP/lost"
        [ ! -s "$TMP/lost" ] && ok || fail "after the kill at write $k these devices have no driver: $(cat "$TMP/lost")"
        expect_rc 0 "$GPUVIRT" "${C[@]}" apply -f "$TMP/ws.yaml"
        expect_rc 0 "$GPUVIRT" "${C[@]}" assert -f "$TMP/ws.yaml"
done
finish
