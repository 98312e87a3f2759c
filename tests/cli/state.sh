#!/usr/bin/env bash
# The desired host state end to end on simulated hosts: export -> assert on every profile, apply of a
# changed file then assert, second apply a no-op, drift, every rejection (FILE:LINE:COL, nothing
# changed), recovery that never reports green on a broken host (a device without its driver, an
# incomplete rollback, a half moved group, a damaged journal, vGPUs counted by their stable identity),
# and a crash test that kills apply at every write (kernel writes and NVML changes, kill -9 through the
# simulator's KILL fault) of every step kind in both directions and checks that recover leaves no device
# without its driver, that status and assert tell the truth, and that the next apply converges.
# $2: "main" for sections 1-4, "crash" for the crash test (5) alone, nothing for both (meson runs them as
# two tests, cli-state and cli-crash, so they run side by side).
set -eu
GPUVIRT=$1
PART=${2:-all}
. "$(dirname "$0")/lib.sh"

pt_yaml() { printf 'version: 1\ngpus:\n  - select: "%s"\n    mode: passthrough\n%b' "$1" "${2:-}"; }
host_yaml() { printf 'version: 1\ngpus:\n  - select: all\n    mode: host\n'; }
vgpu_yaml() { printf 'version: 1\ngpus:\n  - select: "0000:3b:00.0"\n    mode: vgpu\n    vgpu: {type: "GRID T4-2Q", count: %s}\n' "$1"; }
driver() { basename "$(readlink "$1/sys/bus/pci/devices/$2/driver" 2>/dev/null)" 2>/dev/null || true; }

if [ "$PART" != crash ]; then # sections 1-4

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
# each state verb is its own entry of the verb table: its --help, and apply's takes no lock
"$GPUVIRT" sim create "$TMP/help" --profile workstation >/dev/null
expect_rc 0 "$GPUVIRT" --root "$TMP/help" apply --help -f "$TMP/dgx.yaml" && expect_in "$OUT" "Usage: gpuvirt apply [-f FILE]" "apply --help"
[ ! -e "$TMP/help/run" ] && ok || fail "apply --help took the host lock"
expect_rc 2 "$GPUVIRT" "${D[@]}" aply && expect_in "$ERR" "did you mean 'apply'?" "apply typo"
expect_rc 2 "$GPUVIRT" "${D[@]}" plan -o "$TMP/x.yaml" && expect_in "$ERR" "plan: -o is for export" "-o outside export"
expect_rc 2 "$GPUVIRT" "${D[@]}" recover now && expect_in "$ERR" "recover: unexpected argument 'now'" "recover argument"
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

# 4. recovery never reports green on a broken host
host_yaml >"$TMP/host.yaml"
# 4a. killed between the unbind from vfio-pci and the bind back (t4-grid, mode host, @3 KILL): the GPU has no
# driver while its record names nvidia; every path sees it, and recover / apply / passthrough disable give it
# back
"$GPUVIRT" sim create "$TMP/t4k0" --profile t4-grid >/dev/null
pt_yaml 0000:3b:00.0 >"$TMP/t4pt.yaml"
expect_rc 0 "$GPUVIRT" --root "$TMP/t4k0" apply -f "$TMP/t4pt.yaml"
"$GPUVIRT" --root "$TMP/t4k0" sim fault @3 KILL
rc=0; { "$GPUVIRT" --root "$TMP/t4k0" apply -f "$TMP/host.yaml" >/dev/null 2>&1; } 2>/dev/null || rc=$?
[ "$rc" -eq 137 ] && [ -z "$(driver "$TMP/t4k0" 0000:3b:00.0)" ] && ok || fail "t4: no kill between unbind and bind (rc $rc)"
for way in journal nojournal; do
        rm -rf "$TMP/t4k"; cp -a "$TMP/t4k0" "$TMP/t4k"
        [ "$way" = nojournal ] && rm "$TMP/t4k/var/lib/gpuvirt/journal.json"
        K=(--root "$TMP/t4k")
        expect_rc 1 "$GPUVIRT" "${K[@]}" status -f "$TMP/host.yaml" && expect_in "$OUT" "No driver: 0000:3b:00.0 (had nvidia)" "status ($way)" &&
                expect_in "$OUT" "Drift: the host differs" "status drift ($way)"
        expect_rc 1 "$GPUVIRT" "${K[@]}" --json status && echo "$OUT" | jq -e '.lost_drivers == ["0000:3b:00.0 (had nvidia)"]' >/dev/null &&
                ok || fail "status --json ($way): $OUT"
        expect_rc 1 "$GPUVIRT" "${K[@]}" assert -f "$TMP/host.yaml" && expect_in "$OUT" "give 0000:3b:00.0 and its group back" "assert ($way)"
        expect_rc 0 "$GPUVIRT" "${K[@]}" --json plan -f "$TMP/host.yaml" &&
                { echo "$OUT" | jq -e 'length == 1 and .[0].action == "release-vfio"' >/dev/null && ok || fail "plan ($way): $OUT"; }
        cp -a "$TMP/t4k" "$TMP/t4k-apply"; cp -a "$TMP/t4k" "$TMP/t4k-disable"
        expect_rc 0 "$GPUVIRT" "${K[@]}" recover &&
                expect_in "$OUT" "$([ "$way" = journal ] && echo "Finished the step an interrupted apply left: give 0000:3b:00.0" ||
                        echo "0000:3b:00.0 -> nvidia")" "recover ($way)"
        [ "$(driver "$TMP/t4k" 0000:3b:00.0)" = nvidia ] && ok || fail "recover ($way): on '$(driver "$TMP/t4k" 0000:3b:00.0)'"
        [ ! -e "$TMP/t4k/var/lib/gpuvirt/passthrough/0000:3b:00.0" ] && ok || fail "record kept once home ($way)"
        expect_rc 0 "$GPUVIRT" "${K[@]}" status -f "$TMP/host.yaml"
        expect_rc 0 "$GPUVIRT" --root "$TMP/t4k-apply" apply -f "$TMP/host.yaml" && expect_in "$OUT" "Recovered" "apply says it recovered ($way)"
        [ "$(driver "$TMP/t4k-apply" 0000:3b:00.0)" = nvidia ] && ok || fail "apply ($way)"
        expect_rc 0 "$GPUVIRT" --root "$TMP/t4k-disable" passthrough disable 0000:3b:00.0 && expect_in "$OUT" "(none) -> nvidia" "disable ($way)"
        [ "$(driver "$TMP/t4k-disable" 0000:3b:00.0)" = nvidia ] && ok || fail "passthrough disable ($way)"
        rm -rf "$TMP/t4k-apply" "$TMP/t4k-disable"
done
# 4a'. the same GPU without a driver, its record damaged: what it had cannot be told, so it is not "fine"; status
# names it with the record's reason, and every operation that would move it refuses before its first write
rm -rf "$TMP/t4d"; cp -a "$TMP/t4k0" "$TMP/t4d"; rm "$TMP/t4d/var/lib/gpuvirt/journal.json"
REC="$TMP/t4d/var/lib/gpuvirt/passthrough/0000:3b:00.0"
printf '{"driver":"../../nvidia","driver_override":null}\n' >"$REC"
K=(--root "$TMP/t4d")
expect_rc 1 "$GPUVIRT" "${K[@]}" status -f "$TMP/host.yaml" &&
        expect_in "$OUT" "No driver: 0000:3b:00.0 (its record is damaged: $REC: 'driver' is \"../../nvidia\"" "status, damaged record"
expect_rc 1 "$GPUVIRT" "${K[@]}" --json status && echo "$OUT" | jq -e '.lost_drivers | length == 1' >/dev/null &&
        ok || fail "status --json, damaged record: $OUT"
expect_rc 1 "$GPUVIRT" "${K[@]}" assert -f "$TMP/host.yaml" && expect_in "$OUT" "give 0000:3b:00.0 and its group back" "assert, damaged record"
expect_rc 1 "$GPUVIRT" "${K[@]}" recover && expect_in "$ERR" "$REC: 'driver'" "recover names the record"
expect_rc 1 "$GPUVIRT" "${K[@]}" apply -f "$TMP/host.yaml" && expect_in "$ERR" "$REC: 'driver'" "apply names the record"
expect_rc 1 "$GPUVIRT" "${K[@]}" passthrough disable 0000:3b:00.0 && expect_in "$ERR" "$REC: 'driver'" "disable names the record"
[ -z "$(driver "$TMP/t4d" 0000:3b:00.0)" ] && [ "$(cat "$REC")" = '{"driver":"../../nvidia","driver_override":null}' ] &&
        ok || fail "a damaged record was acted on: driver '$(driver "$TMP/t4d" 0000:3b:00.0)', record $(cat "$REC")"
# 4b. an incomplete rollback (faults at writes 3 and 4 of an enable) keeps the record of the device it could not
# put back, so status names it and recover gives it its driver
"$GPUVIRT" sim create "$TMP/t4r" --profile t4-grid >/dev/null
R=(--root "$TMP/t4r")
"$GPUVIRT" "${R[@]}" sim fault @3 EIO && "$GPUVIRT" "${R[@]}" sim fault @4 EIO
expect_rc 1 "$GPUVIRT" "${R[@]}" passthrough enable 0000:3b:00.0 && expect_in "$ERR" "rollback incomplete" "rollback failed"
[ -f "$TMP/t4r/var/lib/gpuvirt/passthrough/0000:3b:00.0" ] && ok || fail "the record of a device not back on its driver was deleted"
expect_rc 1 "$GPUVIRT" "${R[@]}" status && expect_in "$OUT" "No driver: 0000:3b:00.0 (had nvidia)" "status after a failed rollback"
expect_rc 0 "$GPUVIRT" "${R[@]}" recover
[ "$(driver "$TMP/t4r" 0000:3b:00.0)" = nvidia ] && ok || fail "recover after a failed rollback"
# 4c. the group is the unit: a GPU on vfio-pci with its audio function on snd_hda_intel is not passed through,
# and a GPU back on nvidia with its audio function still on vfio-pci is not on the host
"$GPUVIRT" sim create "$TMP/grp" --profile workstation >/dev/null
pt_yaml 0000:01:00.0 '    force: true\n' >"$TMP/grp.yaml"
W=(--root "$TMP/grp")
"$GPUVIRT" "${W[@]}" sim fault @4 KILL # the GPU's override, unbind, probe; then the audio function's first write
rc=0; { "$GPUVIRT" "${W[@]}" passthrough enable --force 0000:01:00.0 >/dev/null 2>&1; } 2>/dev/null || rc=$?
[ "$rc" -eq 137 ] && [ "$(driver "$TMP/grp" 0000:01:00.0)/$(driver "$TMP/grp" 0000:01:00.1)" = vfio-pci/snd_hda_intel ] && ok ||
        fail "half moved group: rc $rc, $(driver "$TMP/grp" 0000:01:00.0)/$(driver "$TMP/grp" 0000:01:00.1)"
expect_rc 1 "$GPUVIRT" "${W[@]}" assert -f "$TMP/grp.yaml" && expect_in "$OUT" "bind 0000:01:00.0 and its group to vfio-pci" "half group"
expect_rc 1 "$GPUVIRT" "${W[@]}" status -f "$TMP/grp.yaml"
expect_rc 0 "$GPUVIRT" "${W[@]}" apply -f "$TMP/grp.yaml"
[ "$(driver "$TMP/grp" 0000:01:00.1)" = vfio-pci ] && ok || fail "apply did not move the audio function"
expect_rc 0 "$GPUVIRT" "${W[@]}" assert -f "$TMP/grp.yaml"
"$GPUVIRT" "${W[@]}" sim fault @4 KILL # the GPU's override, unbind, bind; then the audio function's first write
rc=0; { "$GPUVIRT" "${W[@]}" passthrough disable 0000:01:00.0 >/dev/null 2>&1; } 2>/dev/null || rc=$?
[ "$rc" -eq 137 ] && [ "$(driver "$TMP/grp" 0000:01:00.0)/$(driver "$TMP/grp" 0000:01:00.1)" = nvidia/vfio-pci ] && ok ||
        fail "half released group: rc $rc, $(driver "$TMP/grp" 0000:01:00.0)/$(driver "$TMP/grp" 0000:01:00.1)"
expect_rc 1 "$GPUVIRT" "${W[@]}" assert -f "$TMP/host.yaml" && expect_in "$OUT" "give 0000:01:00.0 and its group back" "half release"
expect_rc 0 "$GPUVIRT" "${W[@]}" apply -f "$TMP/host.yaml"
[ "$(driver "$TMP/grp" 0000:01:00.1)" = snd_hda_intel ] && ok || fail "apply did not release the audio function"
# 4d. a damaged journal: status says so and fails, as apply refuses it
echo '{"step": {"action": "bind-vfio"' >"$TMP/grp/var/lib/gpuvirt/journal.json"
J="$TMP/grp/var/lib/gpuvirt/journal.json"
expect_rc 1 "$GPUVIRT" "${W[@]}" status -f "$TMP/host.yaml" &&
        expect_in "$OUT" "Interrupted step: the journal is damaged: $J:2:1: " "status on a damaged journal"
expect_rc 1 "$GPUVIRT" "${W[@]}" --json status -f "$TMP/host.yaml" &&
        { echo "$OUT" | jq -e --arg j "$J:2:1: " '(.damaged | length) == 1 and (.damaged[0] | startswith($j)) and
                .interrupted_step == null' >/dev/null && ok || fail "json: $OUT"; }
expect_rc 1 "$GPUVIRT" "${W[@]}" apply -f "$TMP/host.yaml" && expect_in "$ERR" "damaged" "apply refuses it"
rm "$TMP/grp/var/lib/gpuvirt/journal.json"
# 4e. vGPUs count by their stable identity: 3 -> 2 removes index 2, so the VM using index 1 keeps its vGPU
"$GPUVIRT" sim create "$TMP/t4v" --profile t4-grid >/dev/null
V=(--root "$TMP/t4v")
uuids() { "$GPUVIRT" "${V[@]}" --json vgpu list | jq -r '[.[] | select(.active) | .id] | sort | join(" ")'; }
idx=()
for c in 1 2 3; do
        vgpu_yaml "$c" >"$TMP/v.yaml"
        before=$(uuids)
        expect_rc 0 "$GPUVIRT" "${V[@]}" apply -f "$TMP/v.yaml"
        idx+=("$(comm -13 <(tr ' ' '\n' <<<"$before") <(uuids | tr ' ' '\n'))") # the index c-1 unit
done
vgpu_yaml 2 >"$TMP/v.yaml"
expect_rc 0 "$GPUVIRT" "${V[@]}" apply -f "$TMP/v.yaml"
[ "$(uuids)" = "$(printf '%s\n' "${idx[0]}" "${idx[1]}" | sort | tr '\n' ' ' | sed 's/ $//')" ] && ok ||
        fail "3 -> 2 did not remove index 2 (${idx[2]}): left $(uuids)"

fi # sections 1-4

if [ "$PART" != main ]; then # section 5
# 5. crash test: kill apply at every write of every step kind, in both directions. After each kill: recover,
# then no device that had a driver has lost it, status and assert tell the truth (they say "matches" exactly
# when the host is in the state an uninterrupted apply leaves), and the next apply converges to that state.
snapshot() { # what the host is, read from the tree itself (not through gpuvirt); a few processes: it runs often
        local r=$1 f
        {
                find "$r"/sys/bus/pci/devices/ -mindepth 1 -maxdepth 1 -printf 'dev %f\n'
                find "$r"/sys/bus/pci/devices/*/driver -maxdepth 0 -printf 'drv %h %l\n' 2>/dev/null
                grep -H . "$r"/sys/bus/pci/devices/*/sriov_numvfs 2>/dev/null | sed 's/^/vfs /'
                grep -H . "$r"/sys/bus/pci/devices/*/nvidia/current_vgpu_type 2>/dev/null | sed 's/^/vgpu /'
                find "$r"/sys/bus/mdev/devices/*/mdev_type -maxdepth 0 -printf 'mdev %h %l\n' 2>/dev/null
        } | awk '{ n = split($2, p, "/") }
                $1 == "dev" { dev[$2] = 1 }
                $1 == "drv" { m = split($3, t, "/"); drv[p[n]] = t[m] }
                $1 == "vfs" { v = p[n]; sub(/.*:/, "", v); vfs[p[n - 1]] = v }
                $1 == "vgpu" { v = p[n]; sub(/.*:/, "", v); print "vgpu", p[n - 2], v }
                $1 == "mdev" { m = split($3, t, "/"); print "mdev", p[n], t[m] }
                END { for (d in dev) print "pci", d, drv[d], vfs[d] }' | sort
        for f in "$r"/.gpuvirt-sim/nvml/*:*; do # MIG: the mode and how many GPU/compute instances of each profile
                case "$f" in *.processes | *.tmp) continue ;; esac
                [ -f "$f" ] && awk -v g="${f##*/}" '$1 == "mode" {print "mig", g, $0} $1 == "gi" {n["gi " $3]++}
                        $1 == "ci" {n["ci " $4]++} END {for (k in n) print "mig", g, k, n[k]}' "$f" | sort
        done
        return 0
}
with_driver() { awk '$1 == "pci" && $3 != "" {print $2}' "$1"; }
crash() { # name profile base-file target-file
        local name=$1 c0="$TMP/crash-$1"
        rm -rf "$c0" "$c0-ref" "$c0-count"
        "$GPUVIRT" sim create "$c0" --profile "$2" >/dev/null
        if [ -n "$3" ]; then expect_rc 0 "$GPUVIRT" --root "$c0" apply -f "$3" || return; fi
        # the reference: the same apply, uninterrupted
        cp -a "$c0" "$c0-ref"
        expect_rc 0 "$GPUVIRT" --root "$c0-ref" apply -f "$4" || return
        snapshot "$c0-ref" >"$TMP/ref.snap"
        # how many writes it makes: a countdown it never reaches
        cp -a "$c0" "$c0-count"
        "$GPUVIRT" --root "$c0-count" sim fault @100000 EIO
        "$GPUVIRT" --root "$c0-count" apply -f "$4" >/dev/null
        local n=$((100000 - $(sed -n 's/^@\([0-9]*\) EIO$/\1/p' "$c0-count/.gpuvirt-sim/faults")))
        [ "$n" -ge 1 ] && ok || { fail "$name: no writes"; return; }
        snapshot "$c0" >"$TMP/base.snap"
        with_driver "$TMP/base.snap" >"$TMP/had-driver"
        local k
        for k in $(seq 1 "$n"); do
                rm -rf "$TMP/crash"
                cp -a "$c0" "$TMP/crash"
                local C=(--root "$TMP/crash") rc=0
                "$GPUVIRT" "${C[@]}" sim fault "@$k" KILL
                { "$GPUVIRT" "${C[@]}" apply -f "$4" >/dev/null 2>&1; } 2>/dev/null || rc=$?
                [ "$rc" -eq 137 ] && ok || fail "$name: apply was not killed at write $k of $n (rc $rc)"
                expect_rc 0 "$GPUVIRT" "${C[@]}" recover || continue
                # no device that had a driver (and is still there) lost it
                snapshot "$TMP/crash" >"$TMP/now.snap"
                comm -12 "$TMP/had-driver" <(awk '$1 == "pci" {print $2}' "$TMP/now.snap") >"$TMP/present"
                comm -23 "$TMP/present" <(with_driver "$TMP/now.snap") >"$TMP/lost"
                [ ! -s "$TMP/lost" ] && ok || fail "$name: after the kill at write $k these devices have no driver: $(cat "$TMP/lost")"
                # status and assert tell the truth
                local want=1
                cmp -s "$TMP/now.snap" "$TMP/ref.snap" && want=0
                expect_rc "$want" "$GPUVIRT" "${C[@]}" assert -f "$4" || echo "  ($name, kill at write $k)" >&2
                expect_rc "$want" "$GPUVIRT" "${C[@]}" status -f "$4" || echo "  ($name, kill at write $k)" >&2
                # the next apply converges to what the uninterrupted one made
                expect_rc 0 "$GPUVIRT" "${C[@]}" apply -f "$4" || continue
                expect_rc 0 "$GPUVIRT" "${C[@]}" assert -f "$4"
                snapshot "$TMP/crash" | diff "$TMP/ref.snap" - >"$TMP/diff" && ok ||
                        fail "$name: after the kill at write $k, recover and apply: not the state of an uninterrupted apply: $(cat "$TMP/diff")"
        done
        echo "crash $name: killed at each of $n writes" >&2
        rm -rf "$c0" "$c0-ref" "$c0-count" "$TMP/crash"
}
host_yaml >"$TMP/host.yaml"
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
printf 'version: 1\ngpus:\n  - select: "8086:56c0"\n    mode: sriov\n    sriov: {vfs: 4, vfs-mode: passthrough}\n' >"$TMP/vfs.yaml"
printf 'version: 1\ngpus:\n  - select: "0000:23:00.0"\n    mode: mig\n    mig: {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}\n' >"$TMP/mig.yaml"
vgpu_yaml 3 >"$TMP/mdev.yaml"
printf 'version: 1\ngpus:\n  - select: "0000:16:00.0"\n    mode: vgpu\n    vgpu: {type: "NVIDIA H100-10C", count: 3}\n' >"$TMP/vendor.yaml"
crash to-passthrough workstation "" "$TMP/ws.yaml"
crash to-host workstation "$TMP/ws.yaml" "$TMP/host.yaml"
crash vfs-up flex-sriov "" "$TMP/vfs.yaml"
crash vfs-down flex-sriov "$TMP/vfs.yaml" "$TMP/host.yaml"
crash mig-on dgx-a100 "" "$TMP/mig.yaml"
crash mig-off dgx-a100 "$TMP/mig.yaml" "$TMP/host.yaml"
crash mdev-create t4-grid "" "$TMP/mdev.yaml"
crash mdev-remove t4-grid "$TMP/mdev.yaml" "$TMP/host.yaml"
crash vendor-create h100 "" "$TMP/vendor.yaml"
crash vendor-remove h100 "$TMP/vendor.yaml" "$TMP/host.yaml"
fi # section 5
finish
