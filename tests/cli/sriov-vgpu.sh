#!/usr/bin/env bash
# sriov and vgpu verbs on the simulated profiles: JSON contracts, exit codes, messages, persistence.
set -eu
GPUVIRT=$1
. "$(dirname "$0")/lib.sh"

mk() { "$GPUVIRT" sim create "$TMP/$1" --profile "$1" >/dev/null; }
for p in flex-sriov mi25-sriov h100 t4-grid gvt-g workstation; do mk $p; done
G() { local p=$1; shift; "$GPUVIRT" --root "$TMP/$p" "$@"; }

# ---- sriov list / set on the SR-IOV profiles
expect_rc 0 G flex-sriov --json sriov list
jqe "$OUT" 'length == 2 and all(.[]; .total_vfs == 31 and .num_vfs == 0 and .drivers_autoprobe and .vfs == [])' "flex list"
expect_rc 0 G flex-sriov --json sriov set 16:00.0 3 --vfio --persist
jqe "$OUT" '.from_vfs == 0 and .num_vfs == 3 and .changed and .persistent and (.vfs | length) == 3 and .error == null' "flex set"
expect_rc 0 G flex-sriov --json sriov list 0000:16:00.0
jqe "$OUT" '.[0].persistent == {"num_vfs":3,"vfio":true} and all(.[0].vfs[]; .driver == "vfio-pci" and .iommu_group != null)' "flex list after"
expect_rc 0 G flex-sriov sriov list && expect_in "$OUT" "at boot: 3 VFs on vfio-pci" "text list"
expect_in "$(cat "$TMP/flex-sriov/etc/gpuvirt/sriov.d/0000:16:00.0")" '"num_vfs":3' "persist file"
# 3 -> 5 goes through 0 (the kernel would say EBUSY)
expect_rc 0 G flex-sriov --json sriov set 16:00.0 5
jqe "$OUT" '.from_vfs == 3 and .num_vfs == 5' "3 -> 5"
expect_rc 2 G flex-sriov sriov set 16:00.0 32 && expect_in "$ERR" "at most 31 VFs" "ERANGE"
expect_rc 2 G flex-sriov sriov set 16:00.0 many && expect_in "$ERR" "'many' is not a VF count" "bad count"
expect_rc 2 G flex-sriov sriov set 16:zz.0 1 && expect_in "$ERR" "'16:zz.0' is not a PCI address" "bad BDF"
expect_rc 2 G flex-sriov sriov set 16:00.1 1 && expect_in "$ERR" "virtual function" "VF as PF"
expect_rc 2 G flex-sriov sriov set 16:00.0 && expect_in "$ERR" "sriov set BDF N" "missing count"
expect_rc 2 G flex-sriov sriov frob
# a kernel failure is reported and the PF keeps its VFs
G flex-sriov sim fault sriov_numvfs EIO
expect_rc 1 G flex-sriov sriov set 16:00.0 2 && expect_in "$ERR" "EIO" "kernel errno named"
expect_rc 0 G flex-sriov --json sriov list 16:00.0 && jqe "$OUT" '.[0].num_vfs == 5' "unchanged after failure"
# dry run: writes printed, nothing changed
expect_rc 0 G flex-sriov --dry-run sriov set 16:00.0 1 --vfio
expect_in "$OUT" "sriov_drivers_autoprobe" "dry run prints the autoprobe write"
expect_rc 0 G flex-sriov --json sriov list 16:00.0 && jqe "$OUT" '.[0].num_vfs == 5' "dry run changed nothing"
# restore applies the boot setting; 0 with --persist drops it
expect_rc 0 G flex-sriov --json sriov restore 16:00.0 && jqe "$OUT" '.num_vfs == 3 and .vfio' "restore"
# without a PF: every setting of sriov.d (gpuvirt-sriov.service, part of every boot)
expect_rc 0 G flex-sriov sriov set 16:00.0 0
expect_rc 0 G flex-sriov sriov restore && expect_in "$OUT" "0000:16:00.0: 0 -> 3 VFs, bound to vfio-pci" "restore all"
expect_rc 2 G flex-sriov sriov restore 16:00.0 17:00.0
expect_rc 0 G flex-sriov sriov set 16:00.0 0 --persist
[ ! -e "$TMP/flex-sriov/etc/gpuvirt/sriov.d/0000:16:00.0" ] && ok || fail "persist file removed by 0"
expect_rc 1 G flex-sriov sriov restore 16:00.0 && expect_in "$ERR" "no persistent VF count" "restore without file"
expect_rc 0 G flex-sriov sriov restore && [ -z "$OUT" ] && ok || fail "restore all without settings: $OUT"
expect_rc 0 G mi25-sriov --json sriov set 03:00.0 2
jqe "$OUT" '.num_vfs == 2' "mi25 set"
expect_rc 0 G mi25-sriov --json sriov list && jqe "$OUT" '.[0].vfs | length == 2' "mi25 list"
expect_rc 0 G workstation sriov list && expect_in "$OUT" "No SR-IOV capable devices" "no SR-IOV"
expect_rc 1 G workstation sriov list 01:00.0 && expect_in "$ERR" "no SR-IOV capability" "not SR-IOV"

# ---- vgpu on t4-grid (NVIDIA mdev)
expect_rc 0 G t4-grid --json vgpu types 3b:00.0
jqe "$OUT" '.[0].kind == "mdev" and (.[0].types | length) == 17 and (.[0].types[] | select(.id == "nvidia-231") | .framebuffer_mb == 2048 and .max_instances == 8 and .available_instances == 8)' "t4 types"
U=3F1C4A52-7C2E-4B8A-9D0E-1A2B3C4D5E6F; u=$(echo $U | tr A-F a-f)
expect_rc 0 G t4-grid --json vgpu create 3b:00.0 nvidia-231 --uuid $U --persist --auto
jqe "$OUT" ".id == \"$u\" and .kind == \"mdev\" and .persistent and .start == \"auto\"" "create"
f="$TMP/t4-grid/etc/mdevctl.d/0000:3b:00.0/$u"
jqe "$(cat "$f")" '.mdev_type == "nvidia-231" and .start == "auto" and .attrs == []' "mdevctl file"
expect_rc 1 G t4-grid vgpu create 3b:00.0 nvidia-231 --uuid $u && expect_in "$ERR" "already in use" "EEXIST"
expect_rc 1 G t4-grid vgpu create 3b:00.0 nvidia-232 && expect_in "$ERR" "one type per GPU" "one type"
expect_rc 2 G t4-grid vgpu create 3b:00.0 nvidia-999 && expect_in "$ERR" "0000:3b:00.0 has no vGPU type 'nvidia-999'" "unknown type"
expect_rc 2 G t4-grid vgpu create 3b:00.0 ../create && expect_in "$ERR" "'../create' is not a vGPU type" "bad type"
expect_rc 2 G t4-grid vgpu create 3b:00.0 nvidia-231 --uuid 1234 && expect_in "$ERR" "'1234' is not a UUID" "bad uuid"
expect_rc 2 G t4-grid vgpu create 3b:00.0 nvidia-231 --auto && expect_in "$ERR" "--auto needs --persist" "auto alone"
expect_rc 1 G t4-grid vgpu create 00:00.0 nvidia-231 && expect_in "$ERR" "no vGPU support" "not a parent"
expect_rc 0 G t4-grid --json vgpu list
jqe "$OUT" "length == 1 and .[0].id == \"$u\" and .[0].active and .[0].defined and .[0].start == \"auto\" and .[0].type_name == \"GRID T4-2Q\" and .[0].held_by == null" "list"
# the type by its name (any case), through the same resolver as vm attach and host.yaml
expect_rc 0 G t4-grid --json vgpu create 3b:00.0 "grid t4-2q"
jqe "$OUT" '.type == "nvidia-231" and .kind == "mdev"' "create by name"
expect_rc 0 G t4-grid vgpu remove "$(printf '%s' "$OUT" | jq -r .id)"
# nvidia-234 allows one instance; exhausted
expect_rc 0 G t4-grid vgpu create 5e:00.0 nvidia-234
expect_rc 1 G t4-grid vgpu create 5e:00.0 nvidia-234 && expect_in "$ERR" "no instance of nvidia-234 left" "EUSERS"
# remove keeps or drops the definition
expect_rc 0 G t4-grid --json vgpu remove $U --keep-definition
jqe "$OUT" '.removed and (.definition_removed | not)' "remove keep"
[ -e "$f" ] && ok || fail "definition kept"
# boot start: starts auto definitions; a device that already exists (mdevctl's udev autostart won) is success
expect_rc 0 G t4-grid --json vgpu start-defined && jqe "$OUT" ".[0].result == \"started\"" "start-defined"
expect_rc 0 G t4-grid --json vgpu start-defined && jqe "$OUT" ".[0].result == \"active\"" "start-defined again"
expect_rc 0 G t4-grid vgpu remove $u --keep-definition
G t4-grid vgpu create 3b:00.0 nvidia-231 --uuid $u >/dev/null
expect_rc 0 G t4-grid --json vgpu start-defined && jqe "$OUT" '.[0].result == "active"' "raced start"
# a definition whose UUID is taken by another type fails
expect_rc 0 G t4-grid vgpu remove $u --keep-definition
G t4-grid vgpu create 3b:00.0 nvidia-230 --uuid $u >/dev/null
expect_rc 1 G t4-grid --json vgpu start-defined && jqe "$OUT" '.[0].result == "failed"' "conflicting start"
expect_rc 0 G t4-grid --json vgpu remove $u && jqe "$OUT" '.removed and .definition_removed' "remove all"
[ ! -e "$f" ] && ok || fail "definition removed"
expect_rc 1 G t4-grid vgpu remove $u && expect_in "$ERR" "No mediated device" "remove twice"
# at boot a parent may register after gpuvirt-vgpu.service ran (the rig's boot showed it): a definition
# on a parent that is not registered yet waits for the parent's uevent (gpuvirt-vgpu@PARENT.service,
# which names it and fails without it); one parent's start touches no other parent's definitions
w=6c0de5a1-2b3c-4d5e-8f90-a1b2c3d4e5f6
mkdir -p "$TMP/t4-grid/etc/mdevctl.d/0000:d8:00.0"
printf '{"mdev_type":"nvidia-231","start":"auto","attrs":[]}\n' >"$TMP/t4-grid/etc/mdevctl.d/0000:d8:00.0/$w"
G t4-grid vgpu create 3b:00.0 nvidia-231 --uuid $u --persist --auto >/dev/null
G t4-grid vgpu remove $u --keep-definition >/dev/null
expect_rc 2 G t4-grid vgpu start-defined ../create && expect_in "$ERR" "is not a PCI address or mdev parent name" "bad device"
expect_rc 0 G t4-grid --json vgpu start-defined 5e:00.0 && jqe "$OUT" 'length == 0' "start-defined of a parent without definitions"
[ ! -e "$TMP/t4-grid/sys/bus/mdev/devices/$u" ] && ok || fail "start-defined 5e:00.0 started $u of 3b:00.0"
expect_rc 0 G t4-grid --json vgpu start-defined
jqe "$OUT" "(.[] | select(.id == \"$w\") | .result == \"waiting\" and (.error | test(\"not a registered mdev parent yet\"))) and (.[] | select(.id == \"$u\") | .result == \"started\")" "start-defined with a parent still missing"
expect_rc 1 G t4-grid --json vgpu start-defined 0000:d8:00.0 && jqe "$OUT" "length == 1 and .[0].result == \"failed\"" "the named parent is missing"
expect_rc 0 G t4-grid vgpu start-defined 3b:00.0 && expect_in "$OUT" "$u: active" "start-defined PARENT"
expect_rc 2 G t4-grid vgpu start-defined 3b:00.0 5e:00.0
rm -r "$TMP/t4-grid/etc/mdevctl.d/0000:d8:00.0"
expect_rc 0 G t4-grid vgpu remove $u
expect_rc 2 G t4-grid vgpu remove not-a-uuid && expect_in "$ERR" "neither an mdev UUID nor a VF address" "bad id"
# a VM holds the group: refused
G t4-grid vgpu create 3b:00.0 nvidia-231 --uuid $u >/dev/null
grp=$(G t4-grid --json vgpu list | jq -r ".[] | select(.id == \"$u\") | .iommu_group")
mkdir -p "$TMP/t4-grid/proc/999/fd"; ln -s /dev/vfio/$grp "$TMP/t4-grid/proc/999/fd/5"; echo qemu > "$TMP/t4-grid/proc/999/comm"
expect_rc 0 G t4-grid --json vgpu list && jqe "$OUT" ".[] | select(.id == \"$u\") | .held_by == \"999 (qemu)\"" "held_by"
expect_rc 1 G t4-grid vgpu remove $u && expect_in "$ERR" "held open by 999 (qemu)" "remove held"
# core says forcing would take it; the CLI names the option
expect_in "$ERR" "stop the VM first or use --force" "remove held: the option"
expect_rc 0 G t4-grid vgpu remove $u --force

# ---- gvt-g (Intel mdev, mixed types within one budget)
expect_rc 0 G gvt-g --json vgpu types
jqe "$OUT" '.[0].parent == "0000:00:02.0" and (.[0].types | length) == 4' "gvt types"
expect_rc 0 G gvt-g --json vgpu create 00:02.0 i915-GVTg_V5_4
expect_rc 0 G gvt-g vgpu create 00:02.0 i915-GVTg_V5_8
expect_rc 0 G gvt-g --json vgpu types 0000:00:02.0
jqe "$OUT" '(.[0].types[] | select(.id == "i915-GVTg_V5_1") | .available_instances) == 0' "budget used"
expect_rc 0 G gvt-g --json vgpu list && jqe "$OUT" 'length == 2 and all(.[]; .active and (.defined | not) and .managed == null)' "gvt list"

# ---- h100 (NVIDIA vendor vGPU on VFs, no mdev)
expect_rc 0 G h100 --json vgpu types 16:00.0
jqe "$OUT" '.[0].kind == "vendor" and (.[0].types | map(.id)) == ["1044","1045","1046","1047","1048","1049","1050","1051"]' "h100 types"
expect_rc 0 G h100 --json vgpu create 16:00.0 "NVIDIA H100-10C" --persist --auto
jqe "$OUT" '.id == "0000:16:00.4" and .kind == "vendor" and .type == "1047" and .parent == "0000:16:00.0"' "vendor create"
VF=$(printf '%s' "$OUT" | jq -r .id)
expect_rc 2 G h100 vgpu create 16:00.0 1047 --uuid $U && expect_in "$ERR" "no UUID" "uuid on vendor"
expect_rc 1 G h100 vgpu create 16:00.0 1044 && expect_in "$ERR" "one type per GPU" "vendor one type"
expect_rc 0 G h100 --json vgpu list
jqe "$OUT" ".[0].id == \"$VF\" and .[0].managed and .[0].defined and .[0].type_name == \"NVIDIA H100-10C\"" "vendor list"
expect_rc 1 G h100 sriov set 16:00.0 0 && expect_in "$ERR" "vGPU type 1047" "sriov refuses VFs with vGPUs"
expect_rc 0 G h100 --json vgpu remove $VF --keep-definition && jqe "$OUT" '.removed' "vendor remove"
expect_rc 0 G h100 --json vgpu start-defined && jqe "$OUT" '.[0].result == "started"' "vendor start"
expect_rc 0 G h100 --json vgpu remove $VF && jqe "$OUT" '.removed and .definition_removed' "vendor remove all"
# a type gpuvirt did not set is not cleared without --force (core's hint, the CLI's option text)
echo 1047 > "$TMP/h100/sys/bus/pci/devices/0000:16:01.1/nvidia/current_vgpu_type"
expect_rc 1 G h100 vgpu remove 16:01.1
expect_in "$ERR" "which gpuvirt did not set: not clearing it (use --force to clear it anyway)" "vendor remove foreign"
expect_rc 0 G h100 vgpu remove 16:01.1 --force
expect_rc 0 G h100 vgpu list && expect_in "$OUT" "No vGPUs" "empty"
expect_rc 0 G workstation vgpu types && expect_in "$OUT" "No vGPU types" "no types"
finish
