#!/usr/bin/env bash
# vm migrate --plan through libvirt's test driver: the verdict per unit (passthrough, mdev, vendor vGPU) from
# the one check vm list also uses, the destination's node devices (the mdev gpuvirt creates there first),
# an unreachable destination, refusals.
set -u
GPUVIRT=$1
. "$(dirname "$0")/lib.sh"

for p in t4-grid h100; do "$GPUVIRT" sim create "$TMP/$p" --profile "$p" >/dev/null; done
dom() { # name, hostdev XML
        echo "<domain type='test'><name>$1</name><memory>1048576</memory><os><type>hvm</type></os><devices>$2</devices></domain>"
}
pci() { echo "<hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x$1' slot='0x$2' function='0x$3'/></source></hostdev>"; }
mdev() { echo "<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='$1'/></source></hostdev>"; }
nodedev() { # name, bus, mdev type, free instances
        echo "<device><name>$1</name><parent>computer</parent><capability type='pci'><domain>0</domain><bus>$2</bus>"
        echo "<slot>0</slot><function>0</function><product id='0x1eb8'/><vendor id='0x10de'/>"
        echo "<capability type='mdev_types'><type id='$3'><name>GRID T4-1B</name><deviceAPI>vfio-pci</deviceAPI>"
        echo "<availableInstances>$4</availableInstances></type></capability></capability></device>"
}
U=7d6f0b2e-51a4-4c2b-9d3e-0a1b2c3d4e5f
"$GPUVIRT" --root "$TMP/t4-grid" vgpu create 3b:00.0 nvidia-222 --uuid $U >/dev/null || fail "mdev create"
VF=$("$GPUVIRT" --root "$TMP/h100" --json vgpu create 16:00.0 1047 | jq -r .id)
[ -n "$VF" ] && [ "$VF" != null ] || fail "vendor vGPU create"
SRC="$TMP/src.xml"
{ echo "<node>"; dom train "$(pci 5e 00 0)"; dom vdi "$(mdev $U)"; echo "</node>"; } >"$SRC"
HSRC="$TMP/hsrc.xml"
b=${VF:5:2} s=${VF:8:2} f=${VF:11:1}
{ echo "<node>"; dom ai "$(pci "$b" "$s" "$f")"; echo "</node>"; } >"$HSRC"
# a destination whose T4 at 0000:3b:00.0 has nvidia-222 free, one whose only T4 has none left
DST="$TMP/dst.xml" FULL="$TMP/full.xml"
{ echo "<node>"; nodedev pci_0000_3b_00_0 59 nvidia-222 16; echo "</node>"; } >"$DST"
{ echo "<node>"; nodedev pci_0000_3b_00_0 59 nvidia-222 0; echo "</node>"; } >"$FULL"
S=(--root "$TMP/t4-grid" --connect "test:///$SRC")
# a plan is a read: it takes no host lock, so it leaves no lock file behind
rm -f "$TMP/t4-grid/run/gpuvirt/lock"
expect_rc 1 "$GPUVIRT" "${S[@]}" vm migrate train "test:///$DST" --plan
[ ! -e "$TMP/t4-grid/run/gpuvirt/lock" ] && ok || fail "vm migrate --plan created the host lock"

# passthrough: never live; --detach-reattach offered
expect_rc 1 "$GPUVIRT" "${S[@]}" --json vm migrate train "test:///$DST" --plan
echo "$OUT" | jq -e '.live_migration == false and .units[0].unit == "0000:5e:00.0" and .units[0].kind == "pci" and
        (.units[0].blockers == ["0000:5e:00.0: a passed-through device on vfio-pci cannot be migrated"]) and
        .detach_reattach == ["0000:5e:00.0"] and .units[0].destination == null' >/dev/null && ok || fail "passthrough plan: $OUT"
expect_rc 1 "$GPUVIRT" "${S[@]}" vm migrate train "test:///$DST" --plan && expect_in "$OUT" "--detach-reattach would hot-unplug 1 unit(s)" "text offers detach-reattach"

# mdev: the destination's free type is found; only the hypervisor blocks (the test driver is not QEMU) on both sides
expect_rc 1 "$GPUVIRT" "${S[@]}" --json vm migrate vdi "test:///$DST" --plan
echo "$OUT" | jq -e --arg u $U '.units[0].unit == $u and .units[0].kind == "mdev" and .units[0].type == "nvidia-222" and
        .units[0].destination == {"create": "mdev", "parent": "pci_0000_3b_00_0", "type": "nvidia-222", "uuid": $u} and
        (.units[0].blockers | length == 2) and (.units[0].blockers[0] | test("QEMU >= 8.1 \\(not a QEMU domain\\)")) and
        (.units[0].blockers[1] | test("^destination: .*not a QEMU domain")) and .detach_reattach == []' >/dev/null && ok ||
        fail "mdev plan: $OUT"
PLAN_BLOCKER=$(echo "$OUT" | jq -r '.units[0].blockers[0]')
# vm list's verdict is the same check
expect_rc 0 "$GPUVIRT" "${S[@]}" --json vm list
LIST_BLOCKER=$(echo "$OUT" | jq -r '.domains[] | select(.domain == "vdi") | .migration_blockers[0]')
[ "$PLAN_BLOCKER" = "$LIST_BLOCKER" ] && ok || fail "vm list says '$LIST_BLOCKER', vm migrate '$PLAN_BLOCKER'"
expect_rc 1 "$GPUVIRT" "${S[@]}" --json vm migrate vdi "test:///$FULL" --plan
echo "$OUT" | jq -e --arg u $U '.units[0].destination == null and
        any(.units[0].blockers[]; . == ($u + ": the destination has no free instance of mdev type nvidia-222"))' >/dev/null && ok ||
        fail "full destination: $OUT"
# no destination at all
expect_rc 1 "$GPUVIRT" "${S[@]}" --json vm migrate vdi "test:///$TMP/none.xml" --plan
echo "$OUT" | jq -e 'any(.blockers[]; test("destination .* is not reachable"))' >/dev/null && ok || fail "unreachable: $OUT"

# vendor vGPU on an H100 VF: migratable by the driver; the destination's VF is prepared there by hand
expect_rc 1 "$GPUVIRT" --root "$TMP/h100" --connect "test:///$HSRC" --json vm migrate ai "test:///$DST" --plan
echo "$OUT" | jq -e --arg vf "$VF" '.units[0].unit == $vf and .units[0].kind == "vendor_vgpu" and .units[0].type == "1047" and
        (.units[0].blockers | all(test("not a QEMU domain"))) and (.units[0].destination_needs | test("gpuvirt vgpu create"))' \
        >/dev/null && ok || fail "vendor vGPU plan: $OUT"

# without --plan a blocked migration is refused before anything happens on either side
expect_rc 1 "$GPUVIRT" "${S[@]}" vm migrate vdi "test:///$DST" && expect_in "$ERR" "Not migrating vdi" "blocked move refused"
expect_rc 1 "$GPUVIRT" "${S[@]}" vm migrate nosuch "test:///$DST" --plan && expect_in "$ERR" "No domain 'nosuch'" "no domain"

# --detach-reattach: the plan finds an equivalent among the destination's node devices, not used by its domains
pcind() { # name, bus, vendor, device[, PF bus (a VF at function 1)]
        echo "<device><name>$1</name><parent>computer</parent><capability type='pci'><domain>0</domain><bus>$2</bus>"
        echo "<slot>0</slot><function>$([ -n "${5:-}" ] && echo 1 || echo 0)</function><product id='$4'/><vendor id='$3'/>"
        [ -z "${5:-}" ] || echo "<capability type='phys_function'><address domain='0' bus='$5' slot='0' function='0'/></capability>"
        echo "</capability></device>"
}
# 3b: a T4 that domain 'other' holds there; af: a free T4; 86: another model
RA="$TMP/ra.xml" RU="$TMP/ru.xml" RN="$TMP/rn.xml"
{ echo "<node>"; pcind pci_0000_3b_00_0 59 0x10de 0x1eb8; pcind pci_0000_af_00_0 175 0x10de 0x1eb8
  pcind pci_0000_86_00_0 134 0x10de 0x1db6; dom other "$(pci 3b 00 0)"; echo "</node>"; } >"$RA"
{ echo "<node>"; pcind pci_0000_3b_00_0 59 0x10de 0x1eb8; dom other "$(pci 3b 00 0)"; echo "</node>"; } >"$RU"
{ echo "<node>"; pcind pci_0000_86_00_0 134 0x10de 0x1db6; echo "</node>"; } >"$RN"
expect_rc 0 "$GPUVIRT" "${S[@]}" --json vm migrate train "test:///$RA" --plan --detach-reattach
echo "$OUT" | jq -e '.live_migration and .units[0].migratable and .units[0].blockers == [] and
        .units[0].reattach == {"unplug_from_source": 1, "destination_device": "0000:af:00.0",
                "destination_nodedevs": ["pci_0000_af_00_0"], "guest_sees": "a GPU removal before the move and a new GPU after it"}' \
        >/dev/null && ok || fail "detach-reattach plan: $OUT"
expect_rc 0 "$GPUVIRT" "${S[@]}" vm migrate train "test:///$RA" --plan --detach-reattach &&
        expect_in "$OUT" "bind 0000:af:00.0 to vfio-pci on the destination and hot-plug it (the guest sees a GPU removal and a new GPU)" \
                "detach-reattach plan text"
expect_rc 1 "$GPUVIRT" "${S[@]}" --json vm migrate train "test:///$RU" --plan --detach-reattach
echo "$OUT" | jq -e '(.live_migration | not) and .units[0].reattach.destination_device == null and .units[0].blockers ==
        ["0000:5e:00.0: every device 10de:1eb8 on the destination (1) is in use (0000:3b:00.0 by domain '"'"'other'"'"')"]' \
        >/dev/null && ok || fail "detach-reattach, equivalent used there: $OUT"
expect_rc 1 "$GPUVIRT" "${S[@]}" --json vm migrate train "test:///$RN" --plan --detach-reattach
echo "$OUT" | jq -e '.units[0].blockers == ["0000:5e:00.0: the destination has no device 10de:1eb8"]' >/dev/null && ok ||
        fail "detach-reattach, no such model there: $OUT"
# the mdev unit is left to the driver (its blockers stay); only vfio-pci units are taken out
expect_rc 1 "$GPUVIRT" "${S[@]}" --json vm migrate vdi "test:///$DST" --plan --detach-reattach
echo "$OUT" | jq -e '(.units[0].blockers | length == 2) and .units[0].reattach == null' >/dev/null && ok || fail "mdev untouched: $OUT"
# a plain VF: a VF of the same model under a PF of the same model (the 16:00.0 Flex PF is 8086:56c0)
"$GPUVIRT" sim create "$TMP/flex" --profile flex-sriov >/dev/null
"$GPUVIRT" --root "$TMP/flex" sriov set 16:00.0 2 --vfio >/dev/null || fail "VFs"
FSRC="$TMP/fsrc.xml" FDST="$TMP/fdst.xml"
{ echo "<node>"; dom render "$(pci 16 00 2)"; echo "</node>"; } >"$FSRC"
{ echo "<node>"; pcind pci_0000_20_00_0 32 0x8086 0x56c1; pcind pci_0000_20_00_1 32 0x8086 0x56c0 32
  pcind pci_0000_30_00_0 48 0x8086 0x56c0; pcind pci_0000_30_00_1 48 0x8086 0x56c0 48; echo "</node>"; } >"$FDST"
expect_rc 0 "$GPUVIRT" --root "$TMP/flex" --connect "test:///$FSRC" --json vm migrate render "test:///$FDST" --plan --detach-reattach
echo "$OUT" | jq -e '.units[0].kind == "vf" and .units[0].reattach.destination_nodedevs == ["pci_0000_30_00_1"]' >/dev/null && ok ||
        fail "VF equivalent: $OUT"
# the run: libvirt's test driver has no hot-unplug (virDomainDetachDeviceFlags), so the first step fails and
# nothing was taken out (the rollbacks of later steps are in tests/test-migrate.c)
expect_rc 1 "$GPUVIRT" "${S[@]}" --json vm migrate train "test:///$RA" --detach-reattach
echo "$OUT" | jq -e '(.migrated | not) and .units == [{"unit": "0000:5e:00.0", "state": "not touched"}] and
        (.error | test("^cannot hot-unplug 0000:5e:00.0 from train on the source: virDomainDetachDeviceFlags: .*not supported"))' \
        >/dev/null && ok || fail "detach-reattach run: $OUT"
expect_in "$ERR" "(the domain stays on the source)" "run error"
expect_rc 2 "$GPUVIRT" "${S[@]}" vm migrate vdi
expect_rc 2 "$GPUVIRT" "${S[@]}" vm list --plan
finish
