#!/usr/bin/env bash
# gpuvirt advise on every simulated profile for every workload against hand-reviewed golden reports
# (tests/golden/advise/PROFILE.WORKLOAD.txt), each emitted host.yaml accepted by `plan -f` unchanged; the
# rules-out the issue names, asserted on the JSON model; the request options and bad input.
set -eu
GPUVIRT=$1
GOLDEN=$2
. "$(dirname "$0")/lib.sh"

PROFILES=$("$GPUVIRT" --json sim profiles | jq -r '.[].name')
WORKLOADS="training inference vdi graphics batch"

for p in $PROFILES; do
        host="$TMP/$p"
        "$GPUVIRT" sim create "$host" --profile "$p" >/dev/null
        for w in $WORKLOADS; do
                "$GPUVIRT" --root "$host" advise --workload "$w" -o "$TMP/$p.$w.yaml" >"$TMP/actual" 2>&1 ||
                        fail "$p: advise --workload $w exited $?"
                compare "$p.$w.txt" "$TMP/actual"
                # the emitted file is what plan accepts, and says what the report says
                "$GPUVIRT" --root "$host" plan -f "$TMP/$p.$w.yaml" >"$TMP/plan" 2>&1 ||
                        { cat "$TMP/plan" >&2; fail "$p: plan -f of advise --workload $w -o refused it"; }
                "$GPUVIRT" --root "$host" --json advise --workload "$w" >"$TMP/a.json"
                modes=$(jq -r '[.gpus[] | .address + "=" + .mode] | join(" ")' "$TMP/a.json")
                fmodes=$(awk '/select:/ {gsub(/"/, "", $3); a = $3} /^ *mode:/ {printf "%s%s=%s", s, a, $2; s = " "}' \
                        "$TMP/$p.$w.yaml")
                [ "$modes" = "$fmodes" ] || fail "$p $w: host.yaml modes '$fmodes' differ from the advice '$modes'"
        done
done

adv() { # profile, jq assertion, advise args...
        local p=$1 q=$2; shift 2
        "$GPUVIRT" --root "$TMP/$p" --json advise "$@" >"$TMP/a.json" || fail "$p: advise $* exited $?"
        jq -e "$q" "$TMP/a.json" >/dev/null || { cat "$TMP/a.json" >&2; fail "$p: advise $*: not $q"; }
}
# workstation: the GTX 1660's group holds the PCH's USB controller; both cards are GeForce
adv workstation '.gpus[] | select(.address == "0000:02:00.0") | .ruled_out[] | select(.mode == "passthrough") |
        .reason | test("USB controller 0000:03:00.0")' --workload training
adv workstation '[.gpus[] | .ruled_out[] | select(.mode != "passthrough") | .reason | test("GeForce")] |
        length == 6 and all' --workload vdi
adv workstation '[.gpus[].mode] == ["host", "host"]' --workload graphics
# no-iommu: nothing but host mode, passthrough ruled out by the IOMMU
adv no-iommu '[.gpus[].mode] | all(. == "host")' --workload training
adv no-iommu '[.gpus[] | .ruled_out[] | select(.mode == "passthrough") | .reason | test("^no IOMMU")] |
        length == 2 and all' --workload inference
# the license server: t4-grid's vGPUs, none without one
adv t4-grid '[.gpus[1:][] | .mode] | all(. == "vgpu")' --workload vdi
adv t4-nolicense '[.gpus[1:][] | .ruled_out[] | select(.mode == "vgpu") | .reason | test("license server")] |
        length == 3 and all' --workload vdi
adv t4-nolicense '[.gpus[1:][] | .mode] | all(. == "passthrough")' --workload vdi
# the wrong drivers: no vGPU manager, an MI25 on amdgpu
adv t4-novgpumgr '[.gpus[1:][] | .ruled_out[] | select(.mode == "vgpu") | .reason | test("nvidia-vgpu-mgr")] |
        length == 3 and all' --workload vdi
adv mi25-amdgpu '.gpus[1].ruled_out[] | select(.mode == "sriov") | .reason | test("GIM")' --workload vdi
adv mi25-sriov '.gpus[1].mode == "sriov" and .gpus[1].layout.count == 16' --workload vdi
# the request: live migration drops passthrough, physical isolation keeps only it, tenants spread, memory
adv t4-grid '([.gpus[1:][] | .mode] | all(. == "vgpu")) and .gpus[1].excluded[0].mode == "passthrough" and
        .gpus[1].layout.unit_name == "GRID T4-16C"' \
        --workload training --live-migration
adv dgx-a100 '[.gpus[1:][] | .mode] | all(. == "passthrough")' --workload inference --isolation physical
adv dgx-a100 '.tenants.served == 16 and ([.gpus[1:][] | .layout.unit] | all(. == "3g.20gb"))' \
        --workload training --tenants 16
adv dgx-a100 '.tenants.served == 3 and .gpus[4].mode == "host" and (.gpus[4].reasons[0] | test("serve every"))' \
        --workload training --tenants 3
adv h100 '[.gpus[1:][] | .layout.memory_mb] | all(. >= 12288)' --workload inference --memory-per-tenant 12
# inference wants compute (C) types: a T4 holds 4 x T4-4C at most
adv t4-grid '.tenants.served == 12 and (.warnings[0] | test("12 served"))' --workload inference --tenants 100 \
        --isolation driver
adv t4-grid '[.gpus[] | .address] == ["0000:5e:00.0"]' --workload vdi --device 5e:00.0
# advice over a fleet does not exist yet
expect_rc 1 "$GPUVIRT" --root "$TMP/t4-grid" advise --workload vdi --fleet && expect_in "$ERR" "no fleet pool yet" "--fleet"
# bad input changes nothing and says why
expect_rc 2 "$GPUVIRT" --root "$TMP/t4-grid" advise
expect_rc 2 "$GPUVIRT" --root "$TMP/t4-grid" advise --workload gaming
expect_rc 2 "$GPUVIRT" --root "$TMP/t4-grid" advise --workload vdi --tenants 0
expect_rc 2 "$GPUVIRT" --root "$TMP/t4-grid" advise --workload vdi --isolation strong
expect_rc 2 "$GPUVIRT" --root "$TMP/t4-grid" advise --workload vdi --device 00:14.0
expect_rc 1 "$GPUVIRT" --root "$TMP/t4-grid" advise --workload vdi --device 0000:99:00.0
finish
