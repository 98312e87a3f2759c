#!/usr/bin/env bash
# Dead devices: a GPU that fell off the bus (config space reads all ones: `gpuvirt sim off-bus`), one whose
# sysfs directory vanished and one that cannot be read (captures). Each is shown as such by list, show and
# check (a FAIL with the operator's hint), and every operation on it is refused with a clear error while
# nothing on the host changes: passthrough, sriov, vgpu (mdev and vendor), mig, vm attach, apply.
set -u
GPUVIRT=$1
. "$(dirname "$0")/lib.sh"

snapshot() { # what a refused operation must leave as it was: drivers, overrides, VFs, mdevs, MIG state
        (cd "$1" && for d in sys/bus/pci/devices/*; do
                printf '%s %s %s %s\n' "${d##*/}" "$(readlink "$d/driver" 2>/dev/null)" "$(cat "$d/driver_override" 2>/dev/null)" \
                        "$(cat "$d/sriov_numvfs" 2>/dev/null)"
        done; ls sys/bus/mdev/devices 2>/dev/null; cat .gpuvirt-sim/nvml/* 2>/dev/null) | md5sum
}

# ---- an A100 falls off the bus (dgx-a100) ----
D=$TMP/dgx
"$GPUVIRT" sim create "$D" --profile dgx-a100 >/dev/null
G=("$GPUVIRT" --root "$D")
expect_rc 0 "${G[@]}" check
expect_rc 0 "${G[@]}" sim off-bus 24:00.0 && expect_in "$OUT" "0000:24:00.0 fell off the bus" "sim off-bus"
expect_rc 2 "${G[@]}" sim off-bus 24:00 && expect_in "$ERR" "not a PCI address" "sim off-bus: bad address"
expect_rc 1 "${G[@]}" sim off-bus 99:00.0 && expect_in "$ERR" "No PCI device 0000:99:00.0" "sim off-bus: no device"
head -c 4 "$D/sys/bus/pci/devices/0000:24:00.0/config" | od -An -tx1 | grep -q "ff ff ff ff" && ok || fail "config reads ff"
[ "$(cat "$D/sys/bus/pci/devices/0000:24:00.0/vendor")" = 0x10de ] && ok || fail "the cached vendor attribute stays"
before=$(snapshot "$D")

# list: the passthrough column says why, a line after the table names it; JSON: "state"
expect_rc 0 "${G[@]}" list && expect_in "$OUT" "no: off the bus (config space reads 0xff)" "list: passthrough column"
expect_in "$OUT" "0000:24:00.0: DOES NOT ANSWER ON THE BUS" "list: the device named"
expect_rc 0 "${G[@]}" --json list
[ "$(echo "$OUT" | jq -r '.[] | select(.address == "0000:24:00.0") | .state')" = off_bus ] && ok || fail "list --json state: $OUT"
[ "$(echo "$OUT" | jq -r '[.[] | select(.address != "0000:24:00.0") | .state] | unique | join(",")')" = ok ] && ok || fail "the others are ok"
expect_rc 0 "${G[@]}" show 24:00.0 && expect_in "$OUT" "state          DOES NOT ANSWER ON THE BUS" "show text"
expect_rc 0 "${G[@]}" --json show 24:00.0
echo "$OUT" | jq -e '.state == "off_bus" and (.modes.passthrough.ready | not) and .modes.mig.capable == false' >/dev/null && ok || fail "show --json: $OUT"
# check: FAIL naming it, with the hint
expect_rc 1 "${G[@]}" --json check
echo "$OUT" | jq -e '[.[] | select(.device == "0000:24:00.0")] | length == 1 and .[0].id == "bus" and .[0].status == "fail"' >/dev/null && ok || fail "one bus FAIL: $OUT"
echo "$OUT" | jq -e '.[] | select(.id == "bus") | (.message | test("does not answer on the bus")) and (.hint | test("Xid 79")) and (.hint | test("reset")) and (.hint | test("reseat"))' >/dev/null \
        && ok || fail "check message and hint: $OUT"
expect_rc 1 "${G[@]}" check && expect_in "$OUT" "Checking Device answers on the bus           : FAIL" "check text"
# NVML says the same: the GPU is lost
expect_rc 0 "${G[@]}" --json mig status
[ "$(echo "$OUT" | jq -c '[.[] | select(.lost) | .index]')" = "[1]" ] && ok || fail "NVML reports GPU 1 lost: $OUT"

# every operation refused, nothing changed
expect_rc 1 "${G[@]}" passthrough enable 24:00.0 && expect_in "$ERR" "0000:24:00.0 does not answer on the bus" "passthrough enable refused"
expect_in "$ERR" "Xid 79" "with the hint"
expect_rc 1 "${G[@]}" passthrough enable 24:00.0 --force && expect_in "$ERR" "does not answer on the bus" "--force does not take a dead device"
expect_rc 1 "${G[@]}" passthrough disable 24:00.0 && expect_in "$ERR" "does not answer on the bus" "passthrough disable refused"
expect_rc 1 "${G[@]}" mig enable 24:00.0 && expect_in "$ERR" "0000:24:00.0 does not answer on the bus" "mig enable refused"
expect_rc 1 "${G[@]}" mig apply -f "$(dirname "$0")/../mig/all-enabled.yaml" && expect_in "$ERR" "GPU 1 has fallen off the bus" "mig apply refused"
expect_in "$ERR" "Nothing changed" "mig apply changed nothing"
expect_rc 1 "${G[@]}" mig assert -f "$(dirname "$0")/../mig/all-disabled.yaml" && expect_in "$ERR" "GPU 1 has fallen off the bus" "mig assert fails"
printf 'version: 1\ngpus:\n  - select: all\n    mode: host\n  - select: "0000:24:00.0"\n    mode: passthrough\n' >"$TMP/h.yaml"
expect_rc 2 "${G[@]}" apply -f "$TMP/h.yaml" && expect_in "$ERR" "h.yaml:5:5: 0000:24:00.0 does not answer on the bus" "apply refused at the entry"
printf 'version: 1\ngpus:\n  - select: all\n    mode: host\n' >"$TMP/h2.yaml"
expect_rc 2 "${G[@]}" apply -f "$TMP/h2.yaml" && expect_in "$ERR" "h2.yaml:3:5: 0000:24:00.0 does not answer" "select: all covers it too"
expect_rc 2 "${G[@]}" assert -f "$TMP/h2.yaml"
[ "$before" = "$(snapshot "$D")" ] && ok || fail "a refused operation changed the host"
# the other GPUs still work
expect_rc 0 "${G[@]}" passthrough enable 23:00.0
expect_rc 0 "${G[@]}" passthrough disable 23:00.0

# ---- sriov and vgpu on dead parents ----
F=$TMP/flex
"$GPUVIRT" sim create "$F" --profile flex-sriov >/dev/null
pf=$("$GPUVIRT" --root "$F" --json list | jq -r '.[] | select(.modes.sriov != null) | .address' | head -1)
"$GPUVIRT" --root "$F" sim off-bus "$pf" >/dev/null
before=$(snapshot "$F")
expect_rc 1 "$GPUVIRT" --root "$F" sriov set "$pf" 2 && expect_in "$ERR" "$pf does not answer on the bus" "sriov set refused"
[ "$before" = "$(snapshot "$F")" ] && ok || fail "sriov set on a dead PF changed the host"
T=$TMP/t4
"$GPUVIRT" sim create "$T" --profile t4-grid >/dev/null
"$GPUVIRT" --root "$T" sim off-bus 3b:00.0 >/dev/null
before=$(snapshot "$T")
expect_rc 1 "$GPUVIRT" --root "$T" vgpu create 3b:00.0 nvidia-231 && expect_in "$ERR" "0000:3b:00.0 does not answer on the bus" "mdev vgpu refused"
[ "$before" = "$(snapshot "$T")" ] && ok || fail "vgpu create on a dead GPU changed the host"
expect_rc 0 "$GPUVIRT" --root "$T" vgpu create 5e:00.0 nvidia-231 >/dev/null
H=$TMP/h100
"$GPUVIRT" sim create "$H" --profile h100 >/dev/null
"$GPUVIRT" --root "$H" sim off-bus 16:00.0 >/dev/null
before=$(snapshot "$H")
expect_rc 1 "$GPUVIRT" --root "$H" vgpu create 16:00.0 "NVIDIA H100-10C" && expect_in "$ERR" "0000:16:00.0 does not answer on the bus" "vendor vgpu on the PF refused"
expect_rc 1 "$GPUVIRT" --root "$H" vgpu create 16:00.4 "NVIDIA H100-10C" && expect_in "$ERR" "0000:16:00.0 does not answer on the bus" "vendor vgpu on a VF of a dead PF refused"
[ "$before" = "$(snapshot "$H")" ] && ok || fail "vgpu create on a dead GPU changed the host"

# ---- vm attach (libvirt's test driver) ----
N=$TMP/node.xml
echo "<node><domain type='test'><name>vm1</name><memory>1048576</memory><os><type>hvm</type></os><devices/></domain></node>" >"$N"
expect_rc 1 "${G[@]}" --connect "test:///$N" vm attach --config vm1 24:00.0 && expect_in "$ERR" "Cannot attach 0000:24:00.0: 0000:24:00.0 does not answer on the bus" "vm attach refused"
expect_rc 1 "$GPUVIRT" --root "$H" --connect "test:///$N" vm attach --config vm1 16:00.4 && expect_in "$ERR" "0000:16:00.0 does not answer on the bus" "vm attach of a VF of a dead PF refused"

# ---- captures: a vanished device directory, an unreadable config space ----
C=$TMP/cap
cp -a "$T" "$C"
rm -rf "$C/.gpuvirt-sim"
rm -rf "$(readlink -f "$C/sys/bus/pci/devices/0000:5e:00.0")"
cfg=$(readlink -f "$C/sys/bus/pci/devices/0000:af:00.0")/config
rm -f "$cfg" && mkdir "$cfg" # reading it fails (EISDIR): unreadable
expect_rc 0 "$GPUVIRT" --root "$C" --json list
[ "$(echo "$OUT" | jq -r '[.[] | "\(.address)=\(.state)"] | join(" ")' | tr ' ' '\n' | grep -E '3b:00.0|5e:00.0|af:00.0' | tr '\n' ' ')" = \
  "0000:3b:00.0=off_bus 0000:5e:00.0=vanished 0000:af:00.0=unreadable " ] && ok || fail "capture states: $OUT"
expect_rc 0 "$GPUVIRT" --root "$C" list && expect_in "$OUT" "0000:5e:00.0: DEVICE VANISHED" "vanished named"
expect_in "$OUT" "0000:af:00.0: DEVICE UNREADABLE" "unreadable named"
expect_rc 1 "$GPUVIRT" --root "$C" --json check
[ "$(echo "$OUT" | jq -c '[.[] | select(.id == "bus") | .device]')" = '["0000:3b:00.0","0000:5e:00.0","0000:af:00.0"]' ] && ok || fail "three bus FAILs: $OUT"
echo "$OUT" | jq -e '.[] | select(.device == "0000:5e:00.0") | (.message | test("is gone")) and (.hint | test("rescan"))' >/dev/null && ok || fail "vanished hint: $OUT"
echo "$OUT" | jq -e '.[] | select(.device == "0000:af:00.0") | .message | test("cannot be read")' >/dev/null && ok || fail "unreadable message: $OUT"
finish
