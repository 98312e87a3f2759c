#!/usr/bin/env bash
# mig-parted's semantics on NVIDIA's own files (tests/mig: the GPU Operator's default ConfigMap, the
# systemd default, the DGX Station example) over simulated hosts with A100-40GB, A100-80GB, H100 PCIe,
# T4 and the DGX Station's display GPU: which labels apply where, a layout that cannot fit refused before
# anything changes, non-MIG GPUs skipped by `devices: all`, assert failing on an unmatched MIG-capable GPU,
# a config selecting no GPU a no-op, and the subsystem form of device-filter. The same rules through
# host.yaml's `mig: {file:, label:}`.
set -eu
GPUVIRT=$1
C=$2
. "$(dirname "$0")/lib.sh"

state() { cat "$1"/.gpuvirt-sim/nvml/* 2>/dev/null || true; }
labels() { sed -n 's/^  \([a-z0-9][^:]*\):$/\1/p' "$1"; }

for p in dgx-a100 dgx-station h100 t4-grid; do
        "$GPUVIRT" sim create "$TMP/$p" --profile "$p" >/dev/null
done

# 1. Every label of the GPU Operator's default on each host: applies (a dry run exits 0) exactly where
#    NVIDIA's own tooling can apply it; everything else is refused as bad input (exit 2) and changes nothing.
expect_labels() { # profile, file, expected labels (sorted, space separated)
        local got=() rc
        for l in $(labels "$2"); do
                rc=0
                "$GPUVIRT" --root "$TMP/$1" --dry-run mig apply -f "$2" -c "$l" >"$TMP/o" 2>"$TMP/e" || rc=$?
                case $rc in
                0) got+=("$l") ;;
                2) [ -s "$TMP/e" ] && ok || fail "$1/$l: refused without a message" ;;
                *) fail "$1/$l: exit $rc: $(cat "$TMP/e")" ;;
                esac
        done
        local g
        g=$(printf '%s\n' "${got[@]}" | sort | tr '\n' ' ')
        [ "$g" = "$3 " ] && ok || fail "$1: labels of $(basename "$2") that apply: '$g', expected '$3 '"
}
OP=$C/gpu-operator-default.yaml
before=$(state "$TMP/dgx-a100")
expect_labels dgx-a100 "$OP" "all-1g.10gb all-1g.5gb all-1g.5gb.me all-2g.10gb all-3g.20gb all-4g.20gb all-7g.40gb all-balanced all-disabled all-enabled"
[ "$before" = "$(state "$TMP/dgx-a100")" ] && ok || fail "dry runs changed the host"
expect_labels dgx-station "$OP" "all-1g.10gb all-1g.10gb.me all-1g.20gb all-2g.20gb all-3g.40gb all-4g.40gb all-7g.80gb all-balanced all-disabled all-enabled"
expect_labels h100 "$OP" "all-1g.10gb all-1g.10gb.me all-1g.20gb all-2g.20gb all-3g.40gb all-4g.40gb all-7g.80gb all-balanced all-disabled all-enabled"
# T4s cannot do MIG: `devices: all` skips them, so every label is a no-op there (mig-parted: "Skipping --
# non MIG-capable GPU"), even those naming profiles no T4 has
expect_labels t4-grid "$OP" "$(labels "$OP" | sort | tr '\n' ' ' | sed 's/ $//')"
expect_labels dgx-station "$C/dgx-station-80gb.yaml" "$(labels "$C/dgx-station-80gb.yaml" | sort | tr '\n' ' ' | sed 's/ $//')"
# its all-1g.35gb selects H200 and GB300 by device-filter: no GPU here, a no-op
expect_labels dgx-a100 "$C/mig-parted-systemd-default.yaml" "all-1g.10gb all-1g.35gb all-balanced all-disabled"
# the refusals name the cause at the file's position
expect_rc 2 "$GPUVIRT" --root "$TMP/dgx-a100" mig apply -f "$OP" -c all-7g.80gb && expect_in "$ERR" "Unknown MIG profile '7g.80gb' on GPU 0" "unknown profile named"
expect_in "$ERR" "gpu-operator-default.yaml:" "position in the file"

# 2. What applies, applies: all-1g.10gb picks its entry by device-filter (7 on the 80GB parts, 4 on the
#    40GB one), and assert holds it afterwards
expect_rc 0 "$GPUVIRT" --root "$TMP/dgx-a100" mig apply -f "$OP" -c all-1g.10gb
expect_rc 0 "$GPUVIRT" --root "$TMP/dgx-a100" mig assert -f "$OP" -c all-1g.10gb
expect_rc 0 "$GPUVIRT" --root "$TMP/dgx-a100" --json mig status
[ "$(echo "$OUT" | jq -c '[.[] | [.instances[] | select(.profile == "1g.10gb")] | length] | unique')" = "[4]" ] && ok || fail "A100-40GB: 4 x 1g.10gb: $OUT"
S=(--root "$TMP/dgx-station")
expect_rc 0 "$GPUVIRT" "${S[@]}" mig apply -f "$OP" -c all-1g.10gb
expect_rc 0 "$GPUVIRT" "${S[@]}" --json mig status
[ "$(echo "$OUT" | jq -c '[.[] | select(.mig_capable) | [.instances[] | select(.profile == "1g.10gb")] | length] | unique')" = "[7]" ] && ok || fail "A100-80GB: 7 x 1g.10gb: $OUT"
[ "$(echo "$OUT" | jq -r '.[3] | "\(.name) \(.mig_capable)"')" = "DGX Display false" ] && ok || fail "GPU 3 is the display: $OUT"
# the display GPU matches no entry of all-1g.10gb: it cannot do MIG, so assert still holds
expect_rc 0 "$GPUVIRT" "${S[@]}" mig assert -f "$OP" -c all-1g.10gb
for l in all-balanced-dgx-station-80 balanced-k8s-dgx-station-80 all-disabled-dgx-station-80; do
        # mig-parted recreates every instance; gpuvirt moves one only when allowed
        expect_rc 0 "$GPUVIRT" "${S[@]}" mig apply -f "$C/dgx-station-80gb.yaml" -c "$l" --allow-disrupt
        expect_rc 0 "$GPUVIRT" "${S[@]}" mig assert -f "$C/dgx-station-80gb.yaml" -c "$l"
done
expect_rc 0 "$GPUVIRT" "${S[@]}" mig apply -f "$C/dgx-station-80gb.yaml" -c balanced-k8s-dgx-station-80 --allow-disrupt
expect_rc 0 "$GPUVIRT" "${S[@]}" --json mig status
[ "$(echo "$OUT" | jq -c '[.[] | .instances | length]')" = "[0,2,4,0,7]" ] && ok || fail "balanced-k8s layout per GPU: $OUT"

# 3. A layout that cannot fit one GPU is refused before the first write: nothing on any GPU changes, no MIG
#    mode change, no reset (the Hopper-oriented all-1g.10gb asks 7 x 1g.10gb, an A100-40GB takes 4)
D=$TMP/dgx2
"$GPUVIRT" sim create "$D" --profile dgx-a100 >/dev/null
before=$(state "$D")
expect_rc 2 "$GPUVIRT" --root "$D" mig apply -f "$C/hopper-all-1g.10gb.yaml" -c all-1g.10gb
expect_in "$ERR" "hopper-all-1g.10gb.yaml:6:7: this layout does not fit GPU 0" "position of the entry"
expect_in "$ERR" "7 x 1g.10gb, but at most 4 fit this GPU" "the limit named"
[ "$before" = "$(state "$D")" ] && ok || fail "a layout that does not fit changed the GPUs"
[ ! -d "$D/.gpuvirt-sim/resets" ] || [ -z "$(ls -A "$D/.gpuvirt-sim/resets")" ] && ok || fail "a GPU was reset"
expect_rc 0 "$GPUVIRT" --root "$D" --json mig status
[ "$(echo "$OUT" | jq -r '[.[] | .mig_mode.pending] | unique | join(",")')" = disabled ] && ok || fail "a MIG mode changed: $OUT"
# one GPU that does not fit stops the others too: GPU 0's layout fits, GPU 7's does not
cat >"$TMP/mixed.yaml" <<'Y'
version: v1
mig-configs:
  mixed:
    - devices: [0]
      mig-enabled: true
      mig-devices: {"1g.5gb": 7}
    - devices: [7]
      mig-enabled: true
      mig-devices: {"3g.20gb": 2, "4g.20gb": 1}
Y
expect_rc 2 "$GPUVIRT" --root "$D" mig apply -f "$TMP/mixed.yaml" -c mixed && expect_in "$ERR" "mixed.yaml:7:7: this layout does not fit GPU 7" "the GPU that does not fit"
expect_in "$ERR" "no placement of them all exists" "why"
[ "$before" = "$(state "$D")" ] && ok || fail "GPU 0 was changed although GPU 7's layout does not fit"
# entries that disagree on the mode for one GPU (mig-parted fails on them too)
cat >"$TMP/conflict.yaml" <<'Y'
version: v1
mig-configs:
  c:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.5gb": 1}
    - devices: [2]
      mig-enabled: false
Y
expect_rc 2 "$GPUVIRT" --root "$D" mig apply -f "$TMP/conflict.yaml" && expect_in "$ERR" "conflict.yaml:7:7: GPU 2" "mode conflict position"
expect_in "$ERR" "by the entry at line 4" "names the other entry"
# the last entry selecting a GPU decides (mig-parted applies them in order)
cat >"$TMP/last.yaml" <<'Y'
version: v1
mig-configs:
  c:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.5gb": 1}
    - devices: [2]
      mig-enabled: true
      mig-devices: {"7g.40gb": 1}
Y
expect_rc 0 "$GPUVIRT" --root "$D" mig apply -f "$TMP/last.yaml"
expect_rc 0 "$GPUVIRT" --root "$D" --json mig status
[ "$(echo "$OUT" | jq -c '[.[] | [.instances[].profile] | join(",")] | unique')" = '["1g.5gb","7g.40gb"]' ] && [ "$(echo "$OUT" | jq -r '.[2].instances[0].profile')" = 7g.40gb ] \
        && ok || fail "the later entry decides GPU 2: $OUT"
expect_rc 0 "$GPUVIRT" --root "$D" mig assert -f "$TMP/last.yaml"

# 4. Non-MIG GPUs: skipped by devices: all, a no-op with mig-enabled: false, refused when named with
#    mig-enabled: true
T=(--root "$TMP/t4-grid")
expect_rc 0 "$GPUVIRT" "${T[@]}" mig apply -f "$C/all-disabled.yaml" && expect_in "$OUT" "GPU 0 (0000:3b:00.0, Tesla T4): skipped, not MIG-capable" "T4 skipped"
expect_rc 0 "$GPUVIRT" "${T[@]}" --json mig apply -f "$OP" -c all-1g.5gb
[ "$(echo "$OUT" | jq -r '[.[] | .state] | unique | join(",")')" = skipped ] && ok || fail "every T4 skipped: $OUT"
expect_rc 0 "$GPUVIRT" "${T[@]}" mig assert -f "$OP" -c all-1g.5gb
printf 'version: v1\nmig-configs:\n  one:\n    - devices: [1]\n      mig-enabled: false\n' >"$TMP/t4-off.yaml"
expect_rc 0 "$GPUVIRT" "${T[@]}" mig apply -f "$TMP/t4-off.yaml" && expect_in "$OUT" "skipped" "mig-enabled: false on a T4 is a no-op"
printf 'version: v1\nmig-configs:\n  one:\n    - devices: [1]\n      mig-enabled: true\n      mig-devices: {}\n' >"$TMP/t4-on.yaml"
expect_rc 2 "$GPUVIRT" "${T[@]}" mig apply -f "$TMP/t4-on.yaml" && expect_in "$ERR" "t4-on.yaml:4:7: GPU 1 (0000:5e:00.0, Tesla T4) does not support MIG" "named T4 refused"

# 5. device-filter: no GPU selected is a no-op with exit 0; the subsystem form selects on all four ids
before=$(state "$TMP/h100")
expect_rc 0 "$GPUVIRT" --root "$TMP/h100" mig apply -f "$C/all-1g.yaml" -c all-1g.5gb && expect_in "$OUT" "selects none of the 2 GPU(s)" "no GPU selected"
[ "$before" = "$(state "$TMP/h100")" ] && ok || fail "a config selecting no GPU changed the host"
sub() { printf 'version: v1\nmig-configs:\n  s:\n    - device-filter: "%s"\n      devices: all\n      mig-enabled: true\n      mig-devices: {"7g.80gb": 1}\n' "$1" >"$TMP/sub.yaml"; }
sub "0x20B210DE:0x146310DE"
expect_rc 0 "$GPUVIRT" "${S[@]}" --json mig apply -f "$TMP/sub.yaml"
[ "$(echo "$OUT" | jq length)" = 4 ] && ok || fail "subsystem filter selects the four A100s: $OUT"
sub "0x20B210DE:0x147F10DE"
expect_rc 0 "$GPUVIRT" "${S[@]}" mig apply -f "$TMP/sub.yaml" && expect_in "$OUT" "selects none" "another subsystem selects none"
sub "0x20B210DE:"
expect_rc 2 "$GPUVIRT" "${S[@]}" mig apply -f "$TMP/sub.yaml" && expect_in "$ERR" "sub.yaml:4:22: device-filter: expected" "malformed filter"
sub "0x20B210DE:0x1463"
expect_rc 0 "$GPUVIRT" "${S[@]}" mig apply -f "$TMP/sub.yaml" && expect_in "$OUT" "selects none" "a 16-bit subsystem is 0x00001463"

# export on a host without MIG-capable GPUs: a file that assert reads back
expect_rc 0 "$GPUVIRT" "${T[@]}" mig export -c none && echo "$OUT" >"$TMP/none.yaml"
expect_rc 0 "$GPUVIRT" "${T[@]}" mig assert -f "$TMP/none.yaml"

# 6. host.yaml's mig: {file:, label:} follows the same rules
hs() { printf 'version: 1\ngpus:\n  - select: all\n    mode: mig\n    mig: {file: "%s", label: %s}\n' "$1" "$2" >"$TMP/host.yaml"; }
hs "$C/hopper-all-1g.10gb.yaml" all-1g.10gb
expect_rc 2 "$GPUVIRT" --root "$D" apply -f "$TMP/host.yaml" && expect_in "$ERR" "7 x 1g.10gb, but at most 4 fit this GPU" "host.yaml: does not fit"
hs "$OP" all-balanced
expect_rc 0 "$GPUVIRT" "${S[@]}" apply -f "$TMP/host.yaml"
expect_rc 0 "$GPUVIRT" "${S[@]}" assert -f "$TMP/host.yaml"
expect_rc 0 "$GPUVIRT" "${S[@]}" mig assert -f "$OP" -c all-balanced
hs "$C/all-disabled.yaml" all-disabled
expect_rc 0 "$GPUVIRT" "${T[@]}" apply -f "$TMP/host.yaml" && expect_in "$OUT" "No changes" "host.yaml: T4s skipped"
hs "$C/custom.yaml" custom-grow
expect_rc 2 "$GPUVIRT" --root "$D" apply -f "$TMP/host.yaml" && expect_in "$ERR" "does not cover GPU 0" "host.yaml: unmatched MIG-capable GPU"
finish
