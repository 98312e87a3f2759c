#!/usr/bin/env bash
# The vm verbs against libvirt's test driver (custom node files: domains that already hold hostdevs)
# on simulated hosts: hostdev XML validated by libvirt's schema, who holds what, config attach/detach,
# release rules, refusals, undo, vGPU creation, migration and Error 43 reporting.
set -u
GPUVIRT=$1
. "$(dirname "$0")/lib.sh"
command -v virt-xml-validate >/dev/null || { echo "virt-xml-validate missing (libvirt-clients)"; exit 1; }

for p in qemu-q35 t4-grid h100 workstation gvt-g; do "$GPUVIRT" sim create "$TMP/$p" --profile "$p" >/dev/null; done
drv() { basename "$(readlink "$TMP/$1/sys/bus/pci/devices/$2/driver")" 2>/dev/null || echo none; }
dom() { # name, hostdev XML, extra (runstate 5 = shut off, features)
        echo "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>$1</name>"
        echo "<memory>1048576</memory><os><type>hvm</type></os>${4:-}<devices>$2</devices>${3:-}</domain>"
}
pci() { echo "<hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x$1' slot='0x$2' function='0x$3'/></source></hostdev>"; }
mdev() { echo "<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='$1'/></source></hostdev>"; }
OFF="<test:runstate>5</test:runstate>"
validate() { # file with bare hostdev elements -> libvirt's domain schema
        { echo "<domain type='kvm'><name>v</name><memory>1048576</memory><os><type>hvm</type></os><devices>"
          cat "$1"; echo "</devices></domain>"; } >"$1.dom"
        if virt-xml-validate "$1.dom" domain >/dev/null 2>"$1.err"; then ok; else fail "schema rejects $2: $(cat "$1.err")"; fi
}

# ---- vm xml: every unit kind, validated by libvirt's schema ----
Q=(--root "$TMP/qemu-q35")
expect_rc 0 "$GPUVIRT" "${Q[@]}" vm xml 0000:04:00.1 && echo "$OUT" >"$TMP/pair.xml" && validate "$TMP/pair.xml" "GPU+audio pair"
[ "$(grep -c '<hostdev ' "$TMP/pair.xml")" = 2 ] && ok || fail "pair: expected 2 hostdevs: $OUT"
expect_in "$OUT" "function='0x0' multifunction='on'/>" "pair: function 0 multifunction"
[ "$(grep -c "bus='0x00' slot='0x10'" "$TMP/pair.xml")" = 2 ] && ok || fail "pair: guest functions not on one slot"
[ "$(grep -c "managed='no'" "$TMP/pair.xml")" = 2 ] && ok || fail "pair: not managed='no'"
expect_in "$OUT" "<address domain='0x0000' bus='0x04' slot='0x00' function='0x1'/>" "pair: audio function"
case "$OUT" in *"<?xml"*) fail "XML declaration printed" ;; *) ok ;; esac
expect_rc 0 "$GPUVIRT" "${Q[@]}" vm xml 02:00.0 --guest-slot 0x1a && echo "$OUT" >"$TMP/one.xml" && validate "$TMP/one.xml" "single GPU"
expect_in "$OUT" "slot='0x1a' function='0x0'/>" "--guest-slot"
expect_rc 0 "$GPUVIRT" --root "$TMP/h100" vm xml 16:00.5 && echo "$OUT" >"$TMP/vf.xml" && validate "$TMP/vf.xml" "VF"
expect_rc 0 "$GPUVIRT" --root "$TMP/h100" --json vm xml 16:00.5 && [ "$(echo "$OUT" | jq -r .kind)" = vf ] && ok || fail "VF kind: $OUT"

# ---- connection rules ----
expect_rc 0 "$GPUVIRT" "${Q[@]}" --json vm list
echo "$OUT" | jq -e '.libvirt.consulted == false and (.domains | length) == 0 and ([.units[].unit] == ["0000:01:00.0","0000:02:00.0","0000:04:00.0"])' >/dev/null && ok ||
        fail "simulated root without --connect must not consult libvirt: $OUT"
expect_rc 0 "$GPUVIRT" "${Q[@]}" --connect "test:///$TMP/none.xml" vm list && expect_in "$ERR" "not reachable" "unreachable libvirt warns"
expect_rc 1 "$GPUVIRT" "${Q[@]}" --connect "test:///$TMP/none.xml" vm attach --config x 02:00.0 && expect_in "$ERR" "Cannot connect to libvirt" "attach needs libvirt"
expect_rc 2 "$GPUVIRT" --connect "" vm list

# ---- who holds what (qemu-q35): web runs with 02:00.0, db and db2 are defined with the pair ----
N="$TMP/q35-node.xml"
{ echo "<node>"; dom web "$(pci 02 00 0)"; dom db "$(pci 04 00 0)$(pci 04 00 1)" "$OFF"; dom db2 "$(pci 04 00 0)$(pci 04 00 1)" "$OFF"
  dom idle "" "$OFF"; echo "</node>"; } >"$N"
QC=(--root "$TMP/qemu-q35" --connect "test:///$N")
expect_rc 0 "$GPUVIRT" "${QC[@]}" --json vm list
echo "$OUT" | jq -e '.libvirt.consulted and (.units[] | select(.unit == "0000:02:00.0") | .held_by == "web" and .domains[0].live)' >/dev/null && ok ||
        fail "02:00.0 held by web: $OUT"
echo "$OUT" | jq -e '(.units[] | select(.unit == "0000:04:00.0") | .held_by == null and ([.domains[].domain] == ["db","db2"]) and (.domains | all(.config and (.running | not))))' >/dev/null && ok ||
        fail "pair referenced by db, db2 configs: $OUT"
echo "$OUT" | jq -e '(.domains[] | select(.domain == "web") | .state == "running" and .live_migration == false and (.migration_blockers[0] | test("cannot be migrated")))' >/dev/null && ok ||
        fail "passthrough never migrates: $OUT"
expect_rc 0 "$GPUVIRT" "${QC[@]}" vm list && expect_in "$OUT" "web (running)" "text list"

# passthrough disable refuses while a running domain holds the group; --force overrides; without
# --connect a simulated root does not ask libvirt
expect_rc 0 "$GPUVIRT" "${Q[@]}" passthrough enable 02:00.0
expect_rc 1 "$GPUVIRT" "${QC[@]}" passthrough disable 02:00.0 && expect_in "$ERR" "running domain 'web' holds 0000:02:00.0" "disable refused"
[ "$(drv qemu-q35 0000:02:00.0)" = vfio-pci ] && ok || fail "refused disable changed the binding"
expect_rc 0 "$GPUVIRT" "${QC[@]}" passthrough disable --force 02:00.0 && expect_in "$ERR" "--force" "forced disable warns"
expect_rc 0 "$GPUVIRT" "${Q[@]}" passthrough enable 02:00.0
expect_rc 0 "$GPUVIRT" "${Q[@]}" passthrough disable 02:00.0
[ "$(drv qemu-q35 0000:02:00.0)" = bochs-drm ] && ok || fail "disable without libvirt"

# ---- config attach ----
expect_rc 1 "$GPUVIRT" "${QC[@]}" vm attach --config idle 02:00.0 && expect_in "$ERR" "held by running domain 'web'" "attach refuses a held device"
[ "$(drv qemu-q35 0000:02:00.0)" = bochs-drm ] && ok || fail "refused attach prepared the device"
expect_rc 0 "$GPUVIRT" "${QC[@]}" --json vm attach --config idle 04:00.0
echo "$OUT" | jq -e '.action == "attach" and .unit == "0000:04:00.0" and .kind == "pci" and .config and (.live | not)' >/dev/null && ok || fail "attach json: $OUT"
[ "$(drv qemu-q35 0000:04:00.0)" = vfio-pci ] && [ "$(drv qemu-q35 0000:04:00.1)" = vfio-pci ] && ok || fail "pair not prepared"
# the guest agent's channel (gpuvirt-agent in the guest, gpuvirtd on the host): added with the hostdev, read back
expect_rc 0 "$GPUVIRT" "${QC[@]}" --json vm attach --config --agent-channel idle 04:00.0
echo "$OUT" | jq -e '.action == "attach" and .config' >/dev/null && ok || fail "attach --agent-channel: $OUT"
expect_rc 0 "$GPUVIRT" "${Q[@]}" vm xml --agent-channel 04:00.0
expect_in "$OUT" "<channel type='unix'>
  <target type='virtio' name='org.gpuvirt.agent.0'/>
</channel>" "vm xml --agent-channel"
expect_rc 0 "$GPUVIRT" "${Q[@]}" --json vm xml --agent-channel 04:00.0
echo "$OUT" | jq -e '.agent_channel | test("org.gpuvirt.agent.0")' >/dev/null && ok || fail "vm xml --json agent_channel: $OUT"
printf "<domain type='kvm'><name>a</name><memory>1</memory><os><type>hvm</type></os><devices>%s</devices></domain>" \
        "$(echo "$OUT" | jq -r .agent_channel)" >"$TMP/chan.xml"
if command -v virt-xml-validate >/dev/null; then
        virt-xml-validate "$TMP/chan.xml" domain >/dev/null 2>&1 && ok || fail "agent channel XML does not validate: $(virt-xml-validate "$TMP/chan.xml" domain 2>&1)"
fi
expect_rc 2 "$GPUVIRT" "${QC[@]}" vm list --agent-channel && expect_in "$ERR" "--agent-channel is for attach and xml" "--agent-channel elsewhere"
expect_rc 1 "$GPUVIRT" "${QC[@]}" vm attach --config db 04:00.0 && expect_in "$ERR" "already attached" "double attach"
expect_rc 1 "$GPUVIRT" "${QC[@]}" vm attach --live db 04:00.0 && expect_in "$ERR" "not running" "--live on a stopped domain"
expect_rc 1 "$GPUVIRT" "${QC[@]}" vm attach --config nosuch 04:00.0 && expect_in "$ERR" "No libvirt domain 'nosuch'" "unknown domain"
expect_rc 1 "$GPUVIRT" "${QC[@]}" vm attach --config idle 01:00.0 && expect_in "$ERR" "boot VGA" "boot VGA refused"
# --dry-run: prints the writes and the XML, changes nothing
expect_rc 0 "$GPUVIRT" "${QC[@]}" --dry-run vm attach --force --config idle 0000:02:00.0
expect_in "$OUT" "driver_override <- \"vfio-pci\"" "dry-run writes" && expect_in "$OUT" "<hostdev mode='subsystem' type='pci' managed='no'>" "dry-run XML"
[ "$(drv qemu-q35 0000:02:00.0)" = bochs-drm ] && ok || fail "dry-run changed the binding"

# undo: the test driver has no hot-plug call, so a live attach fails after the preparation: everything
# prepared goes back; and a failed kernel write during preparation leaves nothing behind
expect_rc 0 "$GPUVIRT" "${Q[@]}" passthrough disable 04:00.0
expect_rc 1 "$GPUVIRT" "${QC[@]}" vm attach --live web 04:00.0 && expect_in "$ERR" "Cannot hot-plug" "live attach unsupported"
[ "$(drv qemu-q35 0000:04:00.0)" = bochs-drm ] && [ "$(drv qemu-q35 0000:04:00.1)" = bochs-drm ] && ok || fail "failed attach not undone"
"$GPUVIRT" "${Q[@]}" sim fault 0000:04:00.1/driver_override EIO
expect_rc 1 "$GPUVIRT" "${QC[@]}" vm attach --config idle 04:00.0 && expect_in "$ERR" "step 'driver_override' on 0000:04:00.1" "failed step named"
[ "$(drv qemu-q35 0000:04:00.0)" = bochs-drm ] && ok || fail "failed preparation not rolled back"

# ---- config detach and the release rules ----
expect_rc 0 "$GPUVIRT" "${Q[@]}" passthrough enable 04:00.0
expect_rc 0 "$GPUVIRT" "${QC[@]}" --json vm detach --config db 04:00.1
echo "$OUT" | jq -e '.released == false and .kept_for == "db2 (persistent config)"' >/dev/null && ok || fail "db2 still wants the pair: $OUT"
[ "$(drv qemu-q35 0000:04:00.0)" = vfio-pci ] && ok || fail "released a device another config references"
N2="$TMP/q35-one.xml"
{ echo "<node>"; dom solo "$(pci 04 00 0)$(pci 04 00 1)" "$OFF"; echo "</node>"; } >"$N2"
expect_rc 0 "$GPUVIRT" "${Q[@]}" --connect "test:///$N2" vm detach --config solo 04:00.0
expect_in "$OUT" "given back to the host" "released"
[ "$(drv qemu-q35 0000:04:00.0)" = bochs-drm ] && [ "$(drv qemu-q35 0000:04:00.1)" = bochs-drm ] && ok || fail "pair not given back"
expect_rc 1 "$GPUVIRT" "${QC[@]}" vm detach --config idle 04:00.0 && expect_in "$ERR" "not attached" "detach of a device not attached"
expect_rc 2 "$GPUVIRT" "${QC[@]}" vm detach --config idle
expect_rc 2 "$GPUVIRT" "${QC[@]}" vm attach idle nonsense && expect_in "$ERR" "'nonsense' is neither" "bad device"
expect_rc 2 "$GPUVIRT" "${QC[@]}" vm xml 02:00.0 --guest-slot 40
expect_rc 2 "$GPUVIRT" "${QC[@]}" vm list --live
expect_rc 2 "$GPUVIRT" "${QC[@]}" vm frob

# ---- mdev: created by attach, removed by detach; migration rules ----
U=7d6f0b2e-51a4-4c2b-9d3e-0a1b2c3d4e5f U2=0a0b0c0d-1111-4222-8333-444455556666 U3=9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a
T="$TMP/t4-node.xml"
{ echo "<node>"; dom vdi "$(mdev $U)"; dom empty "" "$OFF"; dom cold "$(mdev $U3)" "$OFF"; echo "</node>"; } >"$T"
TC=(--root "$TMP/t4-grid" --connect "test:///$T")
mdev_exists() { [ -e "$TMP/t4-grid/sys/bus/mdev/devices/$1" ]; }
expect_rc 2 "$GPUVIRT" "${TC[@]}" vm attach --config empty 3b:00.0 --mdev-type nvidia-999 && expect_in "$ERR" "0000:3b:00.0 has no vGPU type 'nvidia-999'" "unknown type"
# running vdi already references U: the mdev attach created is removed again
expect_rc 1 "$GPUVIRT" "${TC[@]}" vm attach --config empty 3b:00.0 --mdev-type nvidia-222 --uuid $U && expect_in "$ERR" "held by running domain 'vdi'" "mdev held"
mdev_exists $U && fail "refused attach left its mdev" || ok
expect_rc 0 "$GPUVIRT" "${TC[@]}" --json vm attach --force --config empty 3b:00.0 --mdev-type nvidia-222 --uuid $U
echo "$OUT" | jq -e ".kind == \"mdev\" and .unit == \"$U\"" >/dev/null && ok || fail "mdev attach: $OUT"
mdev_exists $U && ok || fail "mdev not created"
expect_rc 0 "$GPUVIRT" --root "$TMP/t4-grid" vm xml $U && echo "$OUT" >"$TMP/mdev.xml" && validate "$TMP/mdev.xml" "mdev"
expect_in "$OUT" "<address uuid='$U'/>" "mdev XML"
expect_rc 0 "$GPUVIRT" "${TC[@]}" --json vm list
echo "$OUT" | jq -e "(.units[] | select(.unit == \"$U\") | .kind == \"mdev\" and .held_by == \"vdi\" and .parent == \"0000:3b:00.0\" and .type == \"nvidia-222\")" >/dev/null && ok || fail "mdev holder: $OUT"
echo "$OUT" | jq -e '(.domains[] | select(.domain == "vdi") | .live_migration == false and (.migration_blockers | length) == 1 and (.migration_blockers[0] | test("not a QEMU domain")))' >/dev/null && ok ||
        fail "nvidia vGPU: only the hypervisor blocks migration here: $OUT"
echo "$OUT" | jq -e "(.units[] | select(.unit == \"$U3\") | .present == false and ([.domains[].domain] == [\"cold\"]))" >/dev/null && ok || fail "absent mdev listed: $OUT"
# a live attach fails halfway (the test driver cannot hot-plug): the mdev it created is removed
expect_rc 1 "$GPUVIRT" "${TC[@]}" vm attach --live vdi 5e:00.0 --mdev-type nvidia-222 --uuid $U2
mdev_exists $U2 && fail "failed attach left its mdev" || ok
# the type by its name, as vgpu create and host.yaml take it (nvidia-222 is "GRID T4-1B");
# detach from the only definition that references it removes the mdev; a running holder keeps it
expect_rc 0 "$GPUVIRT" "${TC[@]}" vm attach --config empty 3b:00.0 --mdev-type "GRID T4-1B" --uuid $U3
expect_rc 0 "$GPUVIRT" "${TC[@]}" --json vm detach --config cold $U3
echo "$OUT" | jq -e '.released' >/dev/null && ok || fail "mdev detach: $OUT"
mdev_exists $U3 && fail "detach did not remove the mdev" || ok
expect_rc 0 "$GPUVIRT" "${TC[@]}" --json vm detach --config vdi $U
echo "$OUT" | jq -e '.released == false and .kept_for == "vdi (running)"' >/dev/null && ok || fail "running vdi keeps its mdev: $OUT"
mdev_exists $U && ok || fail "removed an mdev a running domain holds"

# GVT-g: i915 has no VFIO migration
"$GPUVIRT" --root "$TMP/gvt-g" --connect "test:///$T" vm attach --force --config empty 00:02.0 --mdev-type i915-GVTg_V5_4 --uuid $U >/dev/null 2>&1 ||
        fail "GVT-g mdev attach: $(cat "$TMP/err")"
expect_rc 0 "$GPUVIRT" --root "$TMP/gvt-g" --connect "test:///$T" --json vm list
echo "$OUT" | jq -e '(.domains[] | select(.domain == "vdi") | .live_migration == false and (.migration_blockers[0] | test("i915 has no VFIO migration")))' >/dev/null && ok ||
        fail "GVT-g blocks migration: $OUT"

# ---- NVIDIA vendor vGPU on an H100 VF: type set by attach, cleared by detach ----
H="$TMP/h100-node.xml"
{ echo "<node>"; dom ai "$(pci 16 00 4)" "$OFF"; dom spare "" "$OFF"; echo "</node>"; } >"$H"
HC=(--root "$TMP/h100" --connect "test:///$H")
expect_rc 2 "$GPUVIRT" "${HC[@]}" vm attach --config ai 16:00.0 --vgpu-type 1046 && expect_in "$ERR" "not a VF" "vgpu type on a PF"
expect_rc 0 "$GPUVIRT" "${HC[@]}" vm attach --config ai 16:00.5 --vgpu-type 1046
[ "$(cat "$TMP/h100/sys/bus/pci/devices/0000:16:00.5/nvidia/current_vgpu_type")" = 1046 ] && ok || fail "vGPU type not set"
[ "$(drv h100 0000:16:00.5)" = nvidia ] && ok || fail "a vendor vGPU VF must stay on nvidia"
expect_rc 2 "$GPUVIRT" "${HC[@]}" vm attach --config spare 16:00.5 --vgpu-type 1046 && expect_in "$ERR" "already carrying one" "second type"
# by name, in any case: 1046 is "NVIDIA H100-8C"
expect_rc 2 "$GPUVIRT" "${HC[@]}" vm attach --config spare 16:00.4 --vgpu-type "NVIDIA H100-99C" && expect_in "$ERR" "0000:16:00.4 has no vGPU type 'NVIDIA H100-99C'" "unknown vendor name"
expect_rc 2 "$GPUVIRT" "${HC[@]}" vm attach --config spare 16:00.4 --mdev-type "NVIDIA H100-8C" && expect_in "$ERR" "is an NVIDIA vendor vGPU type; use --vgpu-type" "the option for the kind"
expect_rc 0 "$GPUVIRT" "${HC[@]}" vm attach --config spare 16:00.4 --vgpu-type "nvidia h100-8c"
[ "$(cat "$TMP/h100/sys/bus/pci/devices/0000:16:00.4/nvidia/current_vgpu_type")" = 1046 ] && ok || fail "vGPU type by name not set"
expect_rc 0 "$GPUVIRT" "${HC[@]}" --json vm detach --config ai 16:00.4
echo "$OUT" | jq -e '.released and .kind == "vendor_vgpu"' >/dev/null && ok || fail "vendor detach: $OUT"
[ "$(cat "$TMP/h100/sys/bus/pci/devices/0000:16:00.4/nvidia/current_vgpu_type")" = 0 ] && ok || fail "vGPU type not cleared"

# ---- consumer NVIDIA GPU without hidden KVM: Error 43 warning ----
HIDE="<features><kvm><hidden state='on'/></kvm></features>"
WN="$TMP/ws-node.xml"
{ echo "<node>"; dom game "$(pci 01 00 0)$(pci 01 00 1)"; dom hidden "$(pci 02 00 0)" "$OFF" "$HIDE"; echo "</node>"; } >"$WN"
expect_rc 0 "$GPUVIRT" --root "$TMP/workstation" --connect "test:///$WN" --json vm list
echo "$OUT" | jq -e '(.domains[] | select(.domain == "game") | .warnings[0] | test("Error 43")) and (.domains[] | select(.domain == "hidden") | .warnings == [])' >/dev/null && ok ||
        fail "Error 43 warning: $OUT"
expect_rc 0 "$GPUVIRT" --root "$TMP/workstation" --connect "test:///$WN" vm list && expect_in "$OUT" "game: warning: 0000:01:00.0 is a consumer NVIDIA GPU" "text warning"
finish
