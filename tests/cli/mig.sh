#!/usr/bin/env bash
# gpuvirt mig on simulated hosts: every verb through the fake libnvidia-ml.so.1 (the production dlopen
# path), mig-parted configs, errors, the minimal-diff property.
set -eu
GPUVIRT=$1
CONFIGS=$2
. "$(dirname "$0")/lib.sh"

"$GPUVIRT" sim create "$TMP/dgx" --profile dgx-a100 >/dev/null
G=("$GPUVIRT" --root "$TMP/dgx")
gpu() { "${G[@]}" --json mig status | jq -r ".[$1].address"; }
B0=$(gpu 0); B7=$(gpu 7)
[ -n "$B0" ] && [ "$B0" != null ] && ok || fail "NVML sees the simulated GPUs"

# status: 8 GPUs, MIG off at boot, nothing pending
expect_rc 0 "${G[@]}" --json mig status
[ "$(echo "$OUT" | jq length)" -eq 8 ] && ok || fail "8 GPUs in status"
[ "$(echo "$OUT" | jq '[.[] | select(.mig_mode.current == "disabled" and .mig_mode.pending == "disabled")] | length')" -eq 8 ] \
        && ok || fail "simulated GPUs start with MIG disabled"

# enable: pending until a reset; reset makes it current
expect_rc 0 "${G[@]}" mig enable "$B0" && expect_in "$OUT" "RESET_REQUIRED" "enable reports RESET_REQUIRED"
expect_rc 0 "${G[@]}" --json mig status "$B0"
[ "$(echo "$OUT" | jq -r '.[0].mig_mode | "\(.current)/\(.pending)"')" = disabled/enabled ] && ok || fail "pending after enable: $OUT"
expect_rc 1 "${G[@]}" mig create "$B0" 1g.5gb && expect_in "$ERR" "pending a GPU reset" "create refused while pending"
expect_rc 0 "${G[@]}" mig reset "$B0"
expect_rc 0 "${G[@]}" --json mig status "$B0"
[ "$(echo "$OUT" | jq -r '.[0].mig_mode.current')" = enabled ] && ok || fail "enabled after reset"

# profiles: the A100-40GB table, read at run time
expect_rc 0 "${G[@]}" --json mig profiles "$B0"
[ "$(echo "$OUT" | jq -r '[.[] | select(.name == "3g.20gb")][0] | "\(.id) \([.placements[].start] | join(","))"')" = "9 0,4" ] \
        && ok || fail "3g.20gb: id 9, placements 0,4: $OUT"
[ "$(echo "$OUT" | jq -r '[.[] | select(.name == "1g.5gb")][0].remaining_capacity')" = 7 ] && ok || fail "seven 1g.5gb fit an empty GPU"

# create: GI + full CI, our placement keeps the big profiles possible
expect_rc 0 "${G[@]}" --json mig create "$B0" 1g.5gb
s1=$(echo "$OUT" | jq '.[0].placement.start')
[ "$s1" -ge 4 ] && ok || fail "a lone 1g.5gb must not block slices 0-3 (start $s1)"
echo "$OUT" | jq -e '.[0].uuid | test("^MIG-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")' >/dev/null \
        && ok || fail "MIG-<uuid> form: $OUT"
[ "$(echo "$OUT" | jq '.[0].ci_id')" = 0 ] && ok || fail "full compute instance created"
expect_rc 0 "${G[@]}" --json mig profiles "$B0"
[ "$(echo "$OUT" | jq -r '[.[] | select(.name == "4g.20gb")][0].remaining_capacity')" = 1 ] && ok || fail "4g.20gb still possible"
expect_rc 0 "${G[@]}" mig create "$B0" 3g.20gb --placement 0
expect_rc 1 "${G[@]}" mig create "$B0" 3g.20gb --placement 0 && expect_in "$ERR" "INSUFFICIENT_RESOURCES" "taken placement"
expect_rc 2 "${G[@]}" mig create "$B0" 3g.20gb --placement 2 && expect_in "$ERR" "Placement 2 is not valid for 3g.20gb" "bad placement"
expect_rc 2 "${G[@]}" mig create "$B0" 5g.25gb && expect_in "$ERR" "Unknown MIG profile '5g.25gb'" "unknown profile"
expect_rc 2 "${G[@]}" mig create "$B0" 1g.5gb --count 0
expect_rc 2 "${G[@]}" mig create "$B0" 1g.5gb --placement x && expect_in "$ERR" "--placement 'x'" "bad number"
expect_rc 0 "${G[@]}" mig status "$B0" && expect_in "$OUT" "slices:" "text status draws the slices"
expect_rc 0 "${G[@]}" --json mig status "$B0"
[ "$(echo "$OUT" | jq -r '.[0].slices | length')" = 8 ] && ok || fail "a row of 8 slices"
[ "$(echo "$OUT" | jq '.[0].instances | length')" = 2 ] && ok || fail "two instances"

# IN_USE: a process in a GI blocks its destruction; a GPU holder blocks reset and reports on enable
gi3g=$(echo "$OUT" | jq '.[0].instances[] | select(.profile == "3g.20gb") | .gi_id')
echo "4242 cuda-app $gi3g" >"$TMP/dgx/.gpuvirt-sim/nvml/$B0.processes"
expect_rc 1 "${G[@]}" mig destroy "$B0" --gi "$gi3g" && expect_in "$ERR" "cuda-app (pid 4242" "destroy names the process"
expect_rc 1 "${G[@]}" mig destroy "$B0" --gi "$gi3g" --force && expect_in "$ERR" "IN_USE" "NVML refuses too"
rm "$TMP/dgx/.gpuvirt-sim/nvml/$B0.processes"
expect_rc 0 "${G[@]}" mig destroy "$B0" --gi "$gi3g"
expect_rc 2 "${G[@]}" mig destroy "$B0" --gi 99 && expect_in "$ERR" "no GPU instance 99" "unknown GI"
expect_rc 2 "${G[@]}" mig destroy "$B0" && expect_in "$ERR" "--gi ID or --all" "destroy needs a target"
expect_rc 1 "${G[@]}" mig disable "$B0" && expect_in "$ERR" "IN_USE" "disable with instances"
expect_rc 0 "${G[@]}" mig destroy "$B0" --all
# a service holding the device node (as nvidia-persistenced does) blocks the reset
mkdir -p "$TMP/dgx/proc/812/fd"; echo nvidia-persistenced >"$TMP/dgx/proc/812/comm"
ln -s /dev/nvidia0 "$TMP/dgx/proc/812/fd/3"
expect_rc 0 "${G[@]}" mig disable "$B0"
expect_rc 1 "${G[@]}" mig reset "$B0" && expect_in "$ERR" "nvidia-persistenced (pid 812)" "reset refused, holder named"
rm -rf "$TMP/dgx/proc/812"
expect_rc 0 "${G[@]}" mig reset "$B0"
echo "900 dcgm" >"$TMP/dgx/.gpuvirt-sim/nvml/$B0.processes"
expect_rc 0 "${G[@]}" mig enable "$B0" && expect_in "$OUT" "IN_USE" "enable while in use"
expect_in "$OUT" "dcgm (pid 900)" "enable names the NVML process"
rm "$TMP/dgx/.gpuvirt-sim/nvml/$B0.processes"
expect_rc 0 "${G[@]}" mig reset "$B0"
expect_rc 2 "${G[@]}" mig profiles && expect_in "$ERR" "one GPU address" "profiles needs BDF"
expect_rc 1 "${G[@]}" mig profiles 0000:99:00.0 && expect_in "$ERR" "NVML knows no GPU" "absent GPU"
expect_rc 2 "${G[@]}" mig bogus

# dry-run changes nothing
before=$(cat "$TMP/dgx/.gpuvirt-sim/nvml/$B0")
expect_rc 0 "${G[@]}" --dry-run mig create "$B0" 2g.10gb --count 2 && expect_in "$OUT" "would create 2g.10gb" "dry-run create"
[ "$before" = "$(cat "$TMP/dgx/.gpuvirt-sim/nvml/$B0")" ] && ok || fail "dry-run changed state"

# ---- mig-parted configs ----
C=$CONFIGS
expect_rc 0 "${G[@]}" mig apply -f "$C/custom.yaml" -c custom-config
expect_rc 0 "${G[@]}" mig assert -f "$C/custom.yaml" -c custom-config && expect_in "$OUT" "is applied" "assert after apply"
expect_rc 0 "${G[@]}" --json mig status
[ "$(echo "$OUT" | jq '.[4].instances | length')" = 7 ] && ok || fail "GPU 4: seven 1g.5gb"
[ "$(echo "$OUT" | jq '[.[5].instances[] | select(.profile == "2g.10gb")] | length')" = 3 ] && ok || fail "GPU 5: three 2g.10gb"
[ "$(echo "$OUT" | jq '.[0].mig_mode.current')" = '"disabled"' ] && ok || fail "GPU 0 disabled"
uuids7=$(echo "$OUT" | jq -r '.[7].instances[].uuid' | sort)
one7=$(echo "$OUT" | jq '.[7].instances[] | select(.profile == "1g.5gb") | .placement.start')
state_all=$(cat "$TMP/dgx/.gpuvirt-sim/nvml/"*)

# applying again touches nothing
expect_rc 0 "${G[@]}" --json mig apply -f "$C/custom.yaml" -c custom-config
[ "$(echo "$OUT" | jq '[.[] | select(.state != "unchanged")] | length')" = 0 ] && ok || fail "re-apply is a no-op: $OUT"
[ "$state_all" = "$(cat "$TMP/dgx/.gpuvirt-sim/nvml/"*)" ] && ok || fail "re-apply changed state"

# minimal diff: growing GPU 7 keeps its two instances (same UUIDs), creates two
expect_rc 0 "${G[@]}" --json mig apply -f "$C/custom.yaml" -c custom-grow
[ "$(echo "$OUT" | jq '.[0] | "\(.kept | length) \(.destroyed | length) \(.created | length)"')" = '"2 0 2"' ] \
        && ok || fail "grow: keep 2, destroy 0, create 2: $OUT"
expect_rc 0 "${G[@]}" --json mig status "$B7"
for u in $uuids7; do echo "$OUT" | grep -q "$u" && ok || fail "instance $u survived the grow"; done
[ "$(echo "$OUT" | jq '.[0].instances | length')" = 4 ] && ok || fail "GPU 7 has 4 instances"
# custom-grow selects GPU 7 only: as mig-parted's assert, the MIG-capable GPUs no entry selects fail it
expect_rc 1 "${G[@]}" mig assert -f "$C/custom.yaml" -c custom-grow && expect_in "$OUT" "GPU 0 ($B0): MIG-capable, but no entry of 'custom-grow' selects it" "unmatched GPU fails assert"
expect_in "$OUT" "(7 GPU(s) differ)" "only the unmatched GPUs differ"
expect_rc 1 "${G[@]}" --json mig assert -f "$C/custom.yaml" -c custom-grow
[ "$(echo "$OUT" | jq -c '[.[] | select(.matches) | .index]')" = "[7]" ] && ok || fail "assert --json: only GPU 7 matches: $OUT"
[ "$(echo "$OUT" | jq -r '[.[] | select(.matches | not) | .reason] | unique | join(",")')" = unmatched ] && ok || fail "reason unmatched: $OUT"
expect_rc 1 "${G[@]}" mig assert -f "$C/custom.yaml" -c custom-config && expect_in "$OUT" "not applied" "assert fails on a different layout"

# an instance in the way: named, nothing changes without --allow-disrupt
expect_rc 0 "${G[@]}" mig apply -f "$C/custom.yaml" -c custom-config  # back to 1g + 3g
expect_rc 0 "${G[@]}" --json mig status "$B7"
one7=$(echo "$OUT" | jq '.[0].instances[] | select(.profile == "1g.5gb") | .placement.start')
if [ "$one7" -lt 4 ]; then
        before=$(cat "$TMP/dgx/.gpuvirt-sim/nvml/$B7")
        expect_rc 1 "${G[@]}" mig apply -f "$C/custom.yaml" -c custom-needs-move && expect_in "$ERR" "1g.5gb at $one7:1" "names the instance to move"
        expect_in "$ERR" "--allow-disrupt" "asks for --allow-disrupt"
        [ "$before" = "$(cat "$TMP/dgx/.gpuvirt-sim/nvml/$B7")" ] && ok || fail "refused apply changed state"
        expect_rc 0 "${G[@]}" --dry-run mig apply -f "$C/custom.yaml" -c custom-needs-move --allow-disrupt && expect_in "$OUT" "recreated elsewhere" "dry-run plan"
        [ "$before" = "$(cat "$TMP/dgx/.gpuvirt-sim/nvml/$B7")" ] && ok || fail "dry-run apply changed state"
        expect_rc 0 "${G[@]}" mig apply -f "$C/custom.yaml" -c custom-needs-move --allow-disrupt
        expect_rc 1 "${G[@]}" --json mig assert -f "$C/custom.yaml" -c custom-needs-move
        [ "$(echo "$OUT" | jq -c '[.[] | select(.matches) | .index]')" = "[7]" ] && ok || fail "GPU 7 as configured: $OUT"
else
        fail "planner placed the 1g.5gb at $one7 (outside the 4g.20gb's slices): the move case is not exercised"
fi

# filters: all-balanced matches the A100s by PCI id, all-1g.10gb (H100 ids) matches none
# (GPU 7's 1g.5gb sits where the balanced layout cannot keep it: moving it needs --allow-disrupt)
expect_rc 0 "${G[@]}" mig apply -f "$C/balanced.yaml" -c all-balanced --allow-disrupt
expect_rc 0 "${G[@]}" mig assert -f "$C/balanced.yaml" -c all-balanced
# a configuration whose filters select none of these GPUs is a no-op (mig-parted: exit 0)
before=$(cat "$TMP/dgx/.gpuvirt-sim/nvml/"*)
expect_rc 0 "${G[@]}" mig apply -f "$C/all-1g.yaml" -c all-1g.10gb && expect_in "$OUT" "selects none of the 8 GPU(s)" "device-filter excludes A100"
[ "$before" = "$(cat "$TMP/dgx/.gpuvirt-sim/nvml/"*)" ] && ok || fail "a config selecting no GPU changed state"
expect_rc 0 "${G[@]}" mig apply -f "$C/all-1g.yaml" -c all-1g.5gb
expect_rc 0 "${G[@]}" mig apply -f "$C/all-enabled.yaml" -c all-enabled
expect_rc 0 "${G[@]}" mig assert -f "$C/all-enabled.yaml" -c all-enabled
expect_rc 0 "${G[@]}" mig apply -f "$C/all-disabled.yaml" -c all-disabled
expect_rc 0 "${G[@]}" mig assert -f "$C/all-disabled.yaml" -c all-disabled
expect_rc 0 "${G[@]}" mig assert -f "$C/all-disabled.yaml" && expect_in "$OUT" "Configuration 'all-disabled' is applied" "a file with one label needs no -c"

# export round trip: what export prints, apply and assert read back
expect_rc 0 "${G[@]}" mig apply -f "$C/custom.yaml" -c custom-config
expect_rc 0 "${G[@]}" mig export -c snapshot && echo "$OUT" >"$TMP/snap.yaml"
expect_in "$OUT" '"1g.5gb": 7' "export lists the layout"
expect_rc 0 "${G[@]}" mig assert -f "$TMP/snap.yaml" -c snapshot
expect_rc 0 "${G[@]}" mig apply -f "$C/all-disabled.yaml" -c all-disabled
expect_rc 1 "${G[@]}" mig assert -f "$TMP/snap.yaml" -c snapshot
expect_rc 0 "${G[@]}" mig apply -f "$TMP/snap.yaml" -c snapshot
expect_rc 0 "${G[@]}" mig assert -f "$TMP/snap.yaml" -c snapshot

# apply names what blocks a reset, and --no-reset leaves the change pending
expect_rc 0 "${G[@]}" mig apply -f "$C/all-disabled.yaml" -c all-disabled
mkdir -p "$TMP/dgx/proc/700/fd"; echo nv-hostengine >"$TMP/dgx/proc/700/comm"; ln -s /dev/nvidia0 "$TMP/dgx/proc/700/fd/5"
expect_rc 1 "${G[@]}" mig apply -f "$C/all-enabled.yaml" -c all-enabled && expect_in "$ERR" "nv-hostengine (pid 700)" "apply names the holder"
rm -rf "$TMP/dgx/proc/700"
expect_rc 0 "${G[@]}" --json mig apply -f "$C/all-enabled.yaml" -c all-enabled --no-reset
[ "$(echo "$OUT" | jq -r '[.[] | .state] | unique | join(",")')" = pending_reset ] && ok || fail "--no-reset: $OUT"

# malformed configs: FILE:LINE:COL, exit 2
expect_rc 2 "${G[@]}" mig apply -f "$C/bad-devices.yaml" -c broken && expect_in "$ERR" "bad-devices.yaml:4:16:" "devices: 7 position"
expect_rc 2 "${G[@]}" mig apply -f "$C/bad-syntax.yaml" -c broken && expect_in "$ERR" "bad-syntax.yaml:" "syntax error position"
expect_rc 2 "${G[@]}" mig apply -f "$C/bad-profile.yaml" -c broken && expect_in "$ERR" "bad-profile.yaml:7:9: Unknown MIG profile '9g.99gb'" "unknown profile position"
expect_rc 2 "${G[@]}" mig apply -f "$C/custom.yaml" -c nosuch && expect_in "$ERR" "no configuration 'nosuch'" "unknown label"
expect_rc 2 "${G[@]}" mig apply -f "$C/custom.yaml" && expect_in "$ERR" "holds 3 configurations: choose one with -c LABEL" "label required"
expect_rc 2 "${G[@]}" mig apply -c custom-config && expect_in "$ERR" "-f FILE [-c LABEL]" "file required"
expect_rc 2 "${G[@]}" mig apply -f "$TMP/nonexistent.yaml" -c x && expect_in "$ERR" "cannot read" "missing -f is bad usage"

# H100: other table, other names; its VFs are not NVML devices
"$GPUVIRT" sim create "$TMP/h100" --profile h100 >/dev/null
H=("$GPUVIRT" --root "$TMP/h100")
expect_rc 0 "${H[@]}" --json mig status
[ "$(echo "$OUT" | jq length)" -ge 1 ] && ok || fail "H100 seen"
expect_rc 0 "${H[@]}" mig apply -f "$C/all-1g.yaml" -c all-1g.10gb
expect_rc 0 "${H[@]}" mig assert -f "$C/all-1g.yaml" -c all-1g.10gb
expect_rc 0 "${H[@]}" --json mig profiles "$(echo "$OUT" | head -0; "${H[@]}" --json mig status | jq -r '.[0].address')"
echo "$OUT" | jq -e '[.[].name] | index("7g.80gb") != null' >/dev/null && ok || fail "H100 names: $OUT"

# list and show report the MIG state NVML gives (mode now and after reset, instance count)
expect_rc 0 "${H[@]}" --json list
echo "$OUT" | jq -e '[.[] | select(.modes.mig.capable)] | length == 2 and all(.[]; .modes.mig.mig_mode.current == "enabled" and .modes.mig.instances > 0)' \
        >/dev/null && ok || fail "list --json mig state: $OUT"
expect_rc 0 "${H[@]}" list && expect_in "$OUT" "enabled, " "list text mig column"

# no NVML: a capture never loads it, list still works
cp -a "$TMP/ws0" "$TMP/cap" 2>/dev/null || { "$GPUVIRT" sim create "$TMP/ws0" --profile workstation >/dev/null; cp -a "$TMP/ws0" "$TMP/cap"; }
rm -rf "$TMP/cap/.gpuvirt-sim"
expect_rc 1 "$GPUVIRT" --root "$TMP/cap" mig status && expect_in "$ERR" "NVML not available" "capture: no NVML"
expect_rc 0 "$GPUVIRT" --root "$TMP/cap" list
finish
