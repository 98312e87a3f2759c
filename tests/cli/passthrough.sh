#!/usr/bin/env bash
# passthrough and host verbs through the command line on simulated hosts: output, exit codes,
# --dry-run, --json, persistence files, the host lock.
set -eu
GPUVIRT=$1
. "$(dirname "$0")/lib.sh"

"$GPUVIRT" sim create "$TMP/dgx" --profile dgx-a100 >/dev/null
"$GPUVIRT" sim create "$TMP/ws" --profile workstation >/dev/null
D=(--root "$TMP/dgx")
W=(--root "$TMP/ws")
drv() { basename "$(readlink "$1/sys/bus/pci/devices/$2/driver")" 2>/dev/null || echo none; }

# --dry-run prints the writes in order and changes nothing
expect_rc 0 "$GPUVIRT" "${D[@]}" --dry-run passthrough enable 23:00.0
expect_in "$OUT" "0000:23:00.0/driver_override <- \"vfio-pci\"" "dry-run override"
expect_in "$OUT" "drivers/nvidia/unbind <- \"0000:23:00.0\"" "dry-run unbind"
[ "$(drv "$TMP/dgx" 0000:23:00.0)" = nvidia ] && ok || fail "dry-run changed the binding"
[ ! -e "$TMP/dgx/var/lib/gpuvirt/passthrough/0000:23:00.0" ] && ok || fail "dry-run wrote state"
# with --json, stdout is the JSON document alone; the writes a dry run would make go to stderr
"$GPUVIRT" "${D[@]}" --json --dry-run passthrough enable 23:00.0 >"$TMP/dry.out" 2>"$TMP/dry.err" && ok || fail "json dry-run"
jq -e . "$TMP/dry.out" >/dev/null && ok || fail "--json --dry-run stdout is not JSON: $(head -3 "$TMP/dry.out")"
grep -q 'driver_override <- "vfio-pci"' "$TMP/dry.err" && ok || fail "--json --dry-run: the writes are not on stderr"

# several devices, --json, --persist
expect_rc 0 "$GPUVIRT" "${D[@]}" --json passthrough enable --persist 23:00.0 24:00.0
echo "$OUT" | jq -e 'length == 2 and all(.[]; .functions[0].to == "vfio-pci" and .error == null)' >/dev/null && ok ||
        fail "enable --json: $OUT"
[ -f "$TMP/dgx/etc/gpuvirt/vfio.d/0000:23:00.0" ] && ok || fail "--persist wrote no binding"
expect_rc 0 "$GPUVIRT" "${D[@]}" passthrough enable 23:00.0 && expect_in "$OUT" "already on vfio-pci" "no-op"
# restore (the boot unit's verb) is idempotent on an enabled device
expect_rc 0 "$GPUVIRT" "${D[@]}" passthrough restore 0000:23:00.0
expect_rc 1 "$GPUVIRT" "${D[@]}" passthrough restore 0000:43:00.0 && expect_in "$ERR" "no persistent binding" "restore without binding"
# without a device: every binding of vfio.d (gpuvirt-vfio.service, part of every boot)
expect_rc 0 "$GPUVIRT" "${D[@]}" passthrough disable 23:00.0
expect_rc 0 "$GPUVIRT" "${D[@]}" passthrough restore
[ "$(drv "$TMP/dgx" 0000:23:00.0)" = vfio-pci ] && [ "$(drv "$TMP/dgx" 0000:24:00.0)" = vfio-pci ] && ok || fail "restore all"
expect_rc 2 "$GPUVIRT" "${D[@]}" passthrough restore 23:00.0 24:00.0
expect_rc 0 "$GPUVIRT" "${D[@]}" passthrough disable --persist 23:00.0 24:00.0
[ "$(drv "$TMP/dgx" 0000:23:00.0)" = nvidia ] && [ "$(drv "$TMP/dgx" 0000:24:00.0)" = nvidia ] && ok || fail "disable"
[ ! -e "$TMP/dgx/etc/gpuvirt/vfio.d/0000:23:00.0" ] && ok || fail "disable --persist left the binding"
expect_rc 0 "$GPUVIRT" "${D[@]}" passthrough restore
[ "$(drv "$TMP/dgx" 0000:23:00.0)" = nvidia ] && ok || fail "restore all without bindings changed something"

# all or nothing across the devices of one command: the second fails, the first is undone
"$GPUVIRT" "${D[@]}" sim fault 0000:24:00.0/driver_override EBUSY
expect_rc 1 "$GPUVIRT" "${D[@]}" passthrough enable 23:00.0 24:00.0
expect_in "$ERR" "step 'driver_override' on 0000:24:00.0 failed: Device or resource busy (EBUSY)" "failed step named"
[ "$(drv "$TMP/dgx" 0000:23:00.0)" = nvidia ] && ok || fail "first device not undone"

# refusals and bad input
expect_rc 1 "$GPUVIRT" "${W[@]}" passthrough enable 01:00.0 && expect_in "$ERR" "boot VGA" "boot VGA refused"
expect_rc 1 "$GPUVIRT" "${W[@]}" passthrough enable --force 02:00.0 && expect_in "$ERR" "--include 0000:03:00.0" "foreign member named"
expect_rc 2 "$GPUVIRT" "${W[@]}" passthrough enable 02:00.0 --include zz && expect_in "$ERR" "'zz'" "bad --include"
expect_rc 2 "$GPUVIRT" "${W[@]}" passthrough enable nonsense && expect_in "$ERR" "'nonsense' is not a PCI address" "bad BDF"
expect_rc 2 "$GPUVIRT" "${W[@]}" passthrough enable
expect_rc 2 "$GPUVIRT" "${W[@]}" passthrough frobnicate 01:00.0
# vfio-pci is loaded on demand (modprobe through the write path)
expect_rc 0 "$GPUVIRT" "${W[@]}" passthrough enable --force 01:00.0
[ "$(drv "$TMP/ws" 0000:01:00.1)" = vfio-pci ] && ok || fail "HDMI audio function did not move with the GPU"
expect_rc 0 "$GPUVIRT" "${W[@]}" passthrough disable 01:00.0
[ "$(drv "$TMP/ws" 0000:01:00.1)" = snd_hda_intel ] && ok || fail "audio not given back"
# --persist binds every function that moved at boot (the rig's boot showed the audio function's native
# driver binding first when only the GPU had a binding), and disable --persist of any one drops them all
expect_rc 0 "$GPUVIRT" "${W[@]}" passthrough enable --force --persist 01:00.0
for f in 0000:01:00.0 0000:01:00.1; do
        jq -e '.driver == "vfio-pci" and .force' "$TMP/ws/etc/gpuvirt/vfio.d/$f" >/dev/null && ok || fail "no boot binding for $f"
done
expect_in "$OUT" "0000:01:00.1: binding applied at boot" "audio function's binding reported"
expect_rc 0 "$GPUVIRT" "${W[@]}" passthrough disable --force --persist 01:00.1
[ -z "$(ls "$TMP/ws/etc/gpuvirt/vfio.d")" ] && ok || fail "disable --persist of the audio function left: $(ls "$TMP/ws/etc/gpuvirt/vfio.d")"

# persist --ids: modprobe.d and modules-load.d, merged
expect_rc 0 "$GPUVIRT" "${W[@]}" passthrough persist --ids 01:00.0
expect_in "$(cat "$TMP/ws/etc/modprobe.d/vfio.conf")" "options vfio-pci ids=10de:2206,10de:1aef" "ids line"
expect_in "$(cat "$TMP/ws/etc/modules-load.d/vfio-pci.conf")" "vfio-pci" "modules-load.d"
expect_in "$OUT" "update-initramfs -u" "initramfs advice"
expect_rc 2 "$GPUVIRT" "${W[@]}" passthrough persist 01:00.0
# vfio-pci loads before the driver the device has now too (bochs-drm's module on the rig's machine, which
# the usual GPU driver list lacks)
"$GPUVIRT" sim create "$TMP/q35" --profile qemu-q35 >/dev/null
expect_rc 0 "$GPUVIRT" --root "$TMP/q35" passthrough persist --ids 04:00.0
grep -qx "softdep bochs pre: vfio-pci" "$TMP/q35/etc/modprobe.d/vfio.conf" && ok || fail "no softdep for bochs: $(cat "$TMP/q35/etc/modprobe.d/vfio.conf")"
expect_rc 0 "$GPUVIRT" --root "$TMP/q35" passthrough persist --ids --remove 04:00.0
[ ! -e "$TMP/q35/etc/modprobe.d/vfio.conf" ] && ok || fail "remove left $(cat "$TMP/q35/etc/modprobe.d/vfio.conf")"
# --remove reverts it: the file gpuvirt created and the modules-load.d entry go with the last ID
expect_rc 0 "$GPUVIRT" "${W[@]}" --json passthrough persist --ids --remove 01:00.0
echo "$OUT" | jq -e '.ids == null' >/dev/null && ok || fail "persist --ids --remove: $OUT"
[ ! -e "$TMP/ws/etc/modprobe.d/vfio.conf" ] && [ ! -e "$TMP/ws/etc/modules-load.d/vfio-pci.conf" ] && ok ||
        fail "persist --ids --remove left: $(cat "$TMP/ws/etc/modprobe.d/vfio.conf" "$TMP/ws/etc/modules-load.d/vfio-pci.conf" 2>&1)"
expect_rc 0 "$GPUVIRT" "${W[@]}" passthrough persist --ids --remove 01:00.0 && expect_in "$OUT" "no vfio-pci ids= left" "remove again"
expect_rc 2 "$GPUVIRT" "${W[@]}" passthrough enable --remove 01:00.0

# host iommu enable on the IOMMU-less host: exact grub line, backup, idempotent
"$GPUVIRT" sim create "$TMP/noi" --profile no-iommu >/dev/null
expect_rc 0 "$GPUVIRT" --root "$TMP/noi" host iommu enable
expect_in "$OUT" "next: run 'update-grub'" "regen command"
grep -q '^GRUB_CMDLINE_LINUX="intel_iommu=on iommu=pt"$' "$TMP/noi/etc/default/grub" && ok || fail "grub not edited"
[ -f "$TMP/noi/etc/default/grub.gpuvirt.bak" ] && ok || fail "no backup"
expect_rc 0 "$GPUVIRT" --root "$TMP/noi" --json host iommu enable
echo "$OUT" | jq -e '.changed == false' >/dev/null && ok || fail "second host iommu enable changed something"
# the check's hint is now satisfied in the configuration (the kernel still needs the reboot)
expect_rc 2 "$GPUVIRT" --root "$TMP/noi" host iommu frob
# the IOMMU's vendor comes from the firmware, not the CPU: the rig's machine is an AMD CPU (QEMU's TCG
# "max") with Intel's VT-d (DMAR), and its systemd-boot style /etc/kernel/cmdline turned the IOMMU off
cp -a "$TMP/q35" "$TMP/q35-amd"
sed -i 's/^vendor_id.*/vendor_id\t: AuthenticAMD/' "$TMP/q35-amd/proc/cpuinfo"
rm -rf "$TMP/q35-amd/etc/default/grub" "$TMP/q35-amd/etc/default/grub.d"
mkdir -p "$TMP/q35-amd/etc/kernel"
echo "root=/dev/vda ro quiet intel_iommu=off" >"$TMP/q35-amd/etc/kernel/cmdline"
expect_rc 0 "$GPUVIRT" --root "$TMP/q35-amd" host iommu enable
[ "$(cat "$TMP/q35-amd/etc/kernel/cmdline")" = "root=/dev/vda ro quiet intel_iommu=on iommu=pt" ] && ok ||
        fail "host iommu enable on an AMD CPU with VT-d: $(cat "$TMP/q35-amd/etc/kernel/cmdline")"

# captures are read-only: mutating verbs refuse
cp -a "$TMP/dgx" "$TMP/cap" && rm -rf "$TMP/cap/.gpuvirt-sim"
expect_rc 2 "$GPUVIRT" --root "$TMP/cap" passthrough enable 23:00.0 && expect_in "$ERR" "lock" "capture refuses"
finish
