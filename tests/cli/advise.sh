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

# --fleet: the pool of three hosts (each publishes its GPUs into its own local store; the stores merged into
# one, as etcd would hold them), two MIG instances already reserved on the DGX
for h in dgx:dgx-a100 t4:t4-grid hopper:h100; do
        n=${h%%:*}
        "$GPUVIRT" sim create "$TMP/f-$n" --profile "${h#*:}" >/dev/null
        echo "$n" >"$TMP/f-$n/etc/hostname"
        "$GPUVIRT" --root "$TMP/f-$n" fleet hosts >/dev/null || fail "$n: fleet hosts"
done
"$GPUVIRT" --root "$TMP/f-dgx" fleet request mig:3g.20gb --owner vm1 --count 2 --same-host >/dev/null || fail "reserve"
POOL="$TMP/f-dgx/var/lib/gpuvirt/fleet/store.json"
jq -s '{revision: (map(.revision) | add), leases: {}, kv: (map(.kv) | add)}' "$POOL" \
        "$TMP/f-t4/var/lib/gpuvirt/fleet/store.json" "$TMP/f-hopper/var/lib/gpuvirt/fleet/store.json" >"$TMP/pool.json"
cp "$TMP/pool.json" "$POOL"
F=(--root "$TMP/f-dgx")
"$GPUVIRT" "${F[@]}" fleet hosts >"$TMP/hosts" 2>&1 || fail "merged pool: $(cat "$TMP/hosts")"
for w in inference vdi; do
        "$GPUVIRT" "${F[@]}" advise --fleet --workload "$w" --tenants 40 >"$TMP/actual" 2>&1 ||
                fail "advise --fleet --workload $w exited $?"
        compare "fleet.$w.txt" "$TMP/actual"
done
"$GPUVIRT" "${F[@]}" --json advise --fleet --workload training --store local >"$TMP/actual" || fail "advise --fleet --json"
compare "fleet.training.json" "$TMP/actual"
cp "$POOL" "$TMP/pool-before.json"
"$GPUVIRT" "${F[@]}" --json advise --fleet --workload training >"$TMP/fleet-training.json"
# the same per-GPU decision as on the host: the T4s and H100s get what the host's own advice gives them
for h in t4:t4-grid hopper:h100; do
        "$GPUVIRT" --root "$TMP/f-${h%%:*}" --json advise --workload vdi >"$TMP/host.json"
        "$GPUVIRT" "${F[@]}" --json advise --fleet --workload vdi >"$TMP/fleet.json"
        hm=$(jq -c '[.gpus[] | select(.mode != "host") | [.address, .mode, .layout.unit, .layout.count]]' "$TMP/host.json")
        fm=$(jq -c --arg h "${h%%:*}" '[.gpus[] | select(.host == $h and .mode != "host") | [.address, .mode, .layout.unit, .layout.count]]' "$TMP/fleet.json")
        [ "$hm" = "$fm" ] && [ "$hm" != "[]" ] && ok || fail "${h%%:*}: host advice $hm, fleet advice $fm"
done
# reading the pool changes nothing in it
cmp -s "$POOL" "$TMP/pool-before.json" && ok || fail "advise --fleet wrote the store"
# the reserved MIG instances count: the GPU that holds them offers less than the free ones
"$GPUVIRT" "${F[@]}" --json fleet gpus dgx >"$TMP/gpus.json"
BUSY=$(jq -r '.[] | select(.units > 0) | .address' "$TMP/gpus.json")
mv "$TMP/fleet-training.json" "$TMP/fleet.json"
jq -e --arg b "$BUSY" '([.gpus[] | select(.host == "dgx" and .address == $b) | .tenants] | length == 1) and
        ([.gpus[] | select(.host == "dgx" and .address == $b) | .tenants][0] <
         [.gpus[] | select(.host == "dgx" and .address != $b and .mode != "host") | .tenants][0])' "$TMP/fleet.json" >/dev/null &&
        ok || fail "the reserved GPU $BUSY: $(jq -c '[.gpus[] | select(.host == "dgx") | [.address, .mode, .tenants]]' "$TMP/fleet.json")"
# a host whose lease is gone is left out
jq 'del(.kv["/gpuvirt/v1/alive/t4"])' "$TMP/pool-before.json" >"$POOL"
expect_rc 0 "$GPUVIRT" "${F[@]}" --json advise --fleet --workload vdi
echo "$OUT" | jq -e '(.left_out | length == 4 and all(startswith("t4 ") and endswith("its host is down"))) and
        ([.gpus[].host] | index("t4") == null)' >/dev/null && ok || fail "host down: $OUT"
expect_rc 2 "$GPUVIRT" "${F[@]}" advise --fleet --workload vdi -o "$TMP/x.yaml" && expect_in "$ERR" "for one host" "--fleet -o"
expect_rc 2 "$GPUVIRT" "${F[@]}" advise --fleet --workload vdi --device 23:00.0
expect_rc 2 "$GPUVIRT" "${F[@]}" advise --workload vdi --store local && expect_in "$ERR" "--store is for --fleet" "--store alone"
expect_rc 2 "$GPUVIRT" "${F[@]}" advise --fleet --workload vdi --store zk://x
"$GPUVIRT" sim create "$TMP/f-empty" --profile t4-grid >/dev/null
expect_rc 1 "$GPUVIRT" --root "$TMP/f-empty" advise --fleet --workload vdi && expect_in "$ERR" "the pool has no GPUs" "empty pool"
# bad input changes nothing and says why
expect_rc 2 "$GPUVIRT" --root "$TMP/t4-grid" advise
expect_rc 2 "$GPUVIRT" --root "$TMP/t4-grid" advise --workload gaming
expect_rc 2 "$GPUVIRT" --root "$TMP/t4-grid" advise --workload vdi --tenants 0
expect_rc 2 "$GPUVIRT" --root "$TMP/t4-grid" advise --workload vdi --isolation strong
expect_rc 2 "$GPUVIRT" --root "$TMP/t4-grid" advise --workload vdi --device 00:14.0
expect_rc 1 "$GPUVIRT" --root "$TMP/t4-grid" advise --workload vdi --device 0000:99:00.0
finish
