#!/usr/bin/env bash
# Command-line contract: exit codes, messages for bad input, --help, read-only captures.
set -eu
GPUVIRT=$1
. "$(dirname "$0")/lib.sh"

expect_rc 0 "$GPUVIRT" --help && expect_in "$OUT" "Usage: gpuvirt" "--help on stdout"
expect_rc 0 "$GPUVIRT" --version && expect_in "$OUT" "gpuvirt " "--version"
expect_rc 2 "$GPUVIRT" && expect_in "$ERR" "no command" "no verb"
expect_rc 2 "$GPUVIRT" lst && expect_in "$ERR" "did you mean 'list'" "typo suggestion"
# verbs are matched exactly, never by prefix
expect_rc 2 "$GPUVIRT" li
expect_rc 2 "$GPUVIRT" --bogus list && expect_in "$ERR" "--bogus" "unknown global option named"
expect_rc 2 "$GPUVIRT" --root /nonexistent/gpuvirt list && expect_in "$ERR" "/nonexistent/gpuvirt" "bad root named"

"$GPUVIRT" sim create "$TMP/ws" --profile workstation >/dev/null
H=(--root "$TMP/ws")
expect_rc 2 "$GPUVIRT" "${H[@]}" show 0000:zz:00.0 && expect_in "$ERR" "'0000:zz:00.0' is not a PCI address" "malformed address"
expect_rc 2 "$GPUVIRT" "${H[@]}" show 0000:01:00.8
expect_rc 1 "$GPUVIRT" "${H[@]}" show 0000:7f:00.0 && expect_in "$ERR" "No PCI device 0000:7f:00.0" "absent device"
expect_rc 2 "$GPUVIRT" "${H[@]}" show && expect_in "$ERR" "missing argument" "show without BDF"
expect_rc 2 "$GPUVIRT" "${H[@]}" check --device nonsense && expect_in "$ERR" "'nonsense' is not a PCI address" "check --device"
expect_rc 2 "$GPUVIRT" "${H[@]}" list --bogus
expect_rc 2 "$GPUVIRT" "${H[@]}" list extra
# short form and upper case are accepted and canonicalized
gpu=$("$GPUVIRT" "${H[@]}" --json list | jq -r '.[0].address')
short=$(echo "${gpu#0000:}" | tr a-f A-F)
expect_rc 0 "$GPUVIRT" "${H[@]}" --json show "$short" && expect_in "$OUT" "\"address\": \"$gpu\"" "short address"

# sim verbs
expect_rc 2 "$GPUVIRT" sim create "$TMP/x" --profile nosuch && expect_in "$ERR" "Unknown profile 'nosuch'" "unknown profile"
expect_rc 2 "$GPUVIRT" sim create "$TMP/x" && expect_in "$ERR" "--profile" "profile required"
expect_rc 1 "$GPUVIRT" sim create "$TMP/ws" --profile workstation && expect_in "$ERR" "not empty" "refuses non-empty dir"
# the generated host of the scaling benchmark: sized by --devices/--gpus, which no other profile takes
expect_rc 0 "$GPUVIRT" sim create "$TMP/gen" --profile generated --devices 60 --gpus 16
[ "$(ls "$TMP/gen/sys/bus/pci/devices" | wc -l)" -eq 60 ] && ok || fail "generated: 60 devices"
expect_rc 0 "$GPUVIRT" --root "$TMP/gen" --json list && echo "$OUT" | jq -e '[.[] | select(.vendor_id == "0x10de")] | length == 16' >/dev/null && ok || fail "generated: 16 GPUs listed"
expect_rc 2 "$GPUVIRT" sim create "$TMP/x" --profile generated --devices 20 --gpus 8 && expect_in "$ERR" "cannot hold 8 GPUs (at least 24" "generated: too small"
expect_rc 2 "$GPUVIRT" sim create "$TMP/x" --profile generated --devices 20000 --gpus 200 && expect_in "$ERR" "--gpus takes a number from 1 to 128" "generated: more GPUs than the fake NVML holds"
expect_rc 2 "$GPUVIRT" sim create "$TMP/x" --profile generated --gpus 0 && expect_in "$ERR" "--gpus takes a number from 1" "generated: no GPUs"
expect_rc 2 "$GPUVIRT" sim create "$TMP/x" --profile workstation --devices 100 && expect_in "$ERR" "size the 'generated' profile only" "sizes only for generated"
[ ! -e "$TMP/x" ] && ok || fail "a refused sim create wrote $TMP/x"
# the scrape benchmark's 64 GPUs: every one in a group of its own, every one seen by the fake NVML
expect_rc 0 "$GPUVIRT" sim create "$TMP/g64" --profile generated --devices 300 --gpus 64
expect_rc 0 "$GPUVIRT" --root "$TMP/g64" --json list
[ "$(echo "$OUT" | jq '[.[] | select(.driver == "nvidia")] | length')" = 64 ] && ok || fail "64-GPU host: $(echo "$OUT" | jq -c '[.[].address]')"
[ "$(echo "$OUT" | jq '[.[] | select(.driver == "nvidia") | .iommu_group] | unique | length')" = 64 ] && ok || fail "64-GPU host: groups shared"
expect_rc 0 "$GPUVIRT" --root "$TMP/g64" mig status
[ "$(echo "$OUT" | grep -c 'A100')" = 64 ] && ok || fail "the fake NVML sees $(echo "$OUT" | grep -c 'A100') of 64 GPUs: $OUT"
expect_rc 2 "$GPUVIRT" sim bogus
expect_rc 0 "$GPUVIRT" "${H[@]}" sim fault unbind EBUSY
expect_rc 2 "$GPUVIRT" "${H[@]}" sim fault unbind EWHAT && expect_in "$ERR" "EWHAT" "bad errno named"

# A plain directory (a capture of a host: no simulator marker) is read-only input and may lack
# attributes: list and check still work.
cp -a "$TMP/ws" "$TMP/capture"
rm -rf "$TMP/capture/.gpuvirt-sim" "$TMP/capture/proc/interrupts" "$TMP/capture/sys/firmware"
find "$TMP/capture/sys/devices" -name numa_node -delete
find "$TMP/capture/sys/devices" -name current_link_speed -delete
expect_rc 0 "$GPUVIRT" --root "$TMP/capture" --json list
expect_in "$OUT" "\"numa_node\": -1" "missing numa_node reads as -1"
expect_rc 1 "$GPUVIRT" --root "$TMP/capture" --json check
expect_rc 2 "$GPUVIRT" --root "$TMP/capture" sim fault unbind EBUSY && expect_in "$ERR" "not a simulated host" "capture is not simulated"
# The environment variable works like --root.
GPUVIRT_ROOT="$TMP/ws" expect_rc 0 "$GPUVIRT" --json list && expect_in "$OUT" "$gpu" "GPUVIRT_ROOT"

# Global options anywhere on the line; -- ends options (what follows is an argument, even "--json").
expect_rc 0 "$GPUVIRT" list --json --root "$TMP/ws" && jqe "$OUT" '.[0].address != null' "options after the verb"
expect_rc 0 "$GPUVIRT" --root="$TMP/ws" list --json && expect_in "$OUT" "\"address\": \"$gpu\"" "--root=DIR, --json after"
before=$("$GPUVIRT" --json --root "$TMP/ws" list)
after=$("$GPUVIRT" list --root "$TMP/ws" --json)
[ "$before" = "$after" ] && ok || fail "gpuvirt --json list and gpuvirt list --json differ"
expect_rc 0 "$GPUVIRT" "${H[@]}" passthrough enable --dry-run "$gpu" --force && expect_in "$OUT" "write " "--dry-run after the sub-verb"
expect_rc 0 "$GPUVIRT" "${H[@]}" --json list && jqe "$OUT" "all(.[]; .driver != \"vfio-pci\")" "that dry run changed nothing"
expect_rc 2 "$GPUVIRT" "${H[@]}" show -- --json && expect_in "$ERR" "'--json' is not a PCI address" "-- ends the options"
expect_rc 2 "$GPUVIRT" list --root && expect_in "$ERR" "--root" "--root without its value"
expect_rc 2 "$GPUVIRT" list --bogus && expect_in "$ERR" "--bogus" "an unknown option after the verb"
# VERB --help and VERB SUBVERB --help: that usage on stdout, exit 0
expect_rc 0 "$GPUVIRT" list --help && expect_in "$OUT" "Usage: gpuvirt list [--vfs]" "list --help"
[ -z "$ERR" ] && ok || fail "list --help wrote to stderr: $ERR"
expect_rc 0 "$GPUVIRT" mig --help && expect_in "$OUT" "mig create BDF PROFILE" "mig --help"
expect_rc 0 "$GPUVIRT" passthrough enable -h && expect_in "$OUT" "Usage: gpuvirt passthrough enable BDF..." "sub --help"
case $OUT in *"passthrough disable"*) fail "passthrough enable --help shows the other sub-verbs" ;; *) ok ;; esac
expect_rc 0 "$GPUVIRT" "${H[@]}" passthrough enable "$gpu" --help && expect_in "$OUT" "Usage:" "--help after arguments"
expect_rc 0 "$GPUVIRT" "${H[@]}" --json list && jqe "$OUT" "all(.[]; .driver != \"vfio-pci\")" "--help made no change"
[ ! -e "$TMP/ws/run" ] && ok || fail "--help of a mutating verb took the host lock"
# did you mean, at both levels; an unknown sub-verb lists the sub-verbs
expect_rc 2 "$GPUVIRT" mig stauts && expect_in "$ERR" "did you mean 'status'?" "mig stauts"
expect_rc 2 "$GPUVIRT" passthrough enabel && expect_in "$ERR" "did you mean 'enable'?" "passthrough enabel"
expect_rc 2 "$GPUVIRT" vgpu frobnicate && expect_in "$ERR" "types, list, create, remove, start-defined" "sub-verbs listed"
expect_rc 2 "$GPUVIRT" lsit --json && expect_in "$ERR" "did you mean 'list'?" "verb typo with a global option after it"
# a dry run on a capture exits as the plain run does (refused: read-only), and writes nothing
touch "$TMP/stamp"
for verb in "passthrough enable $gpu --force" "sriov set $gpu 1" "vgpu remove $gpu" "host iommu enable"; do
        set +e
        "$GPUVIRT" --root "$TMP/capture" $verb >/dev/null 2>&1; plain=$?
        "$GPUVIRT" --root "$TMP/capture" --dry-run $verb >"$TMP/dry" 2>&1; dry=$?
        set -e
        [ "$plain" -ne 0 ] && [ "$plain" -eq "$dry" ] && ok || fail "$verb on a capture: plain exit $plain, --dry-run exit $dry: $(cat "$TMP/dry")"
done
[ -z "$(find "$TMP/capture" -newer "$TMP/stamp" -print -quit)" ] && ok || fail "a refused run changed the capture"

# stdout write errors fail the command
if [ -w /dev/full ]; then
        set +e; "$GPUVIRT" "${H[@]}" list >/dev/full 2>/dev/null; rc=$?; set -e
        [ "$rc" -ne 0 ] && ok || fail "writing to a full device must fail"
fi
finish
