#!/usr/bin/env bash
# The fleet on a real 3-member etcd cluster (loopback, data on tmpfs) with four simulated hosts, each run
# by its own agent: requests of every unit kind are placed, realized on the right host (bindings, MIG
# instances through the fake NVML, mdevs, vendor vGPUs, VFs), checked by the independent checker, and
# released back to each host's original state (gpuvirt export before == after).
set -eu
GPUVIRT=$1
HERE=$(dirname "$0")
. "$HERE/../cli/lib.sh"
. "$HERE/etcd.sh"
trap fleet_cleanup EXIT
etcd_start "$TMP/etcd"
S=(--store "etcd://$ETCD_ENDPOINTS")
CHECK=("$HERE/check.py" check "$GPUVIRT" "$ETCD_ENDPOINTS")

declare -A PROFILE=([dgx]=dgx-a100 [t4]=t4-grid [h100]=h100 [flex]=flex-sriov)
for h in dgx t4 h100 flex; do
        "$GPUVIRT" sim create "$TMP/$h" --profile "${PROFILE[$h]}" >/dev/null
        "$GPUVIRT" --root "$TMP/$h" export -o "$TMP/$h.before.yaml"
        "$HERE/check.py" snapshot "$GPUVIRT" "$TMP/$h" "$TMP/$h.snap"
        CHECK+=("$h=$TMP/$h=$TMP/$h.snap")
done
start_agent() { # host
        "$GPUVIRT" --root "$TMP/$1" fleet agent "${S[@]}" --host "$1" --ttl 4 >>"$TMP/agent-$1.log" 2>&1 &
        PID[$1]=$!
}
for h in dgx t4 h100 flex; do start_agent "$h"; done

hosts_up() { "$GPUVIRT" --json fleet hosts "${S[@]}" | jq -e '[.[] | select(.state == "up")] | length == 4'; }
wait_for 60 hosts_up && ok || fail "four hosts up: $("$GPUVIRT" fleet hosts "${S[@]}" 2>&1)"
published() { # every host's GPUs are in: 8 A100 with 2 x 3g.20gb free each, Flex with 31 VFs, T4, H100
        "$GPUVIRT" --json fleet gpus "${S[@]}" | jq -e '
                ([.[] | select(.host == "dgx" and (.free["mig:3g.20gb"] // 0) == 2)] | length == 8) and
                ([.[] | select(.host == "flex" and .free.vf == 31)] | length == 2) and
                ([.[] | select(.host == "t4" and (.free["vgpu:nvidia-222"] // 0) == 16)] | length > 0) and
                ([.[] | select(.host == "h100" and (.free["vgpu:1047"] // 0) == 8)] | length == 2)'
}
wait_for 60 published && ok || fail "GPUs published: $("$GPUVIRT" fleet gpus "${S[@]}" 2>&1)"

# every unit kind
IDS=()
reserve() { # ARGS...: one request, its id in $RID
        expect_rc 0 "$GPUVIRT" --json fleet request "${S[@]}" "$@" || return 1
        RID=$(echo "$OUT" | jq -r '.[0].id')
        IDS+=("$RID")
}
reserve mig:3g.20gb --owner vm-mig --count 2 --same-host && MIG=$RID &&
        echo "$OUT" | jq -e '.[0].units | length == 2 and all(.host == "dgx")' >/dev/null && ok || fail "mig placed on dgx: $OUT"
reserve passthrough --owner vm-pt --model 10de:20b0 && PT=$RID
reserve gpu:40gb --owner vm-big && BIG=$RID &&
        echo "$OUT" | jq -e '.[0].units[0].host == "dgx" or .[0].units[0].host == "h100"' >/dev/null && ok || fail "gpu:40gb: $OUT"
reserve vgpu:nvidia-222 --owner vdi --count 3 && VG=$RID &&
        echo "$OUT" | jq -e '.[0].units | all(.host == "t4")' >/dev/null && ok || fail "mdev vGPU on t4: $OUT"
reserve "vgpu:NVIDIA H100-10C" --owner inference --count 2 --same-host && VV=$RID &&
        echo "$OUT" | jq -e '.[0].units | all(.host == "h100")' >/dev/null && ok || fail "vendor vGPU on h100: $OUT"
reserve vf --owner net --count 2 --live && VF=$RID &&
        echo "$OUT" | jq -e '.[0].units | all(.host == "flex")' >/dev/null && ok || fail "VFs on flex: $OUT"
# impossible: no GPU offers it; passthrough cannot migrate live
expect_rc 1 "$GPUVIRT" fleet request "${S[@]}" mig:9g.99gb --owner x && expect_in "$OUT" "no GPU in the fleet offers" "unknown profile"
expect_rc 2 "$GPUVIRT" fleet request "${S[@]}" passthrough --owner x --live

realized() { # ID: every unit ready
        "$GPUVIRT" --json fleet show "${S[@]}" "$1" | jq -e '.realized | length > 0 and all(. != null and .state == "ready")'
}
for id in "${IDS[@]}"; do
        wait_for 90 realized "$id" && ok || fail "$id realized: $("$GPUVIRT" fleet show "${S[@]}" "$id" 2>&1)"
done

# on the right host, as the reservation says
expect_rc 0 "$GPUVIRT" --root "$TMP/dgx" --json mig status
for u in $("$GPUVIRT" --json fleet show "${S[@]}" "$MIG" | jq -c '.realized[]'); do
        gpu=$(echo "$u" | jq -r .gpu) start=$(echo "$u" | jq -r .start) uuid=$(echo "$u" | jq -r .mig_uuid)
        echo "$OUT" | jq -e --arg g "$gpu" --argjson s "$start" --arg u "$uuid" \
                '.[] | select(.address == $g) | .instances | any(.profile == "3g.20gb" and .placement.start == $s and .uuid == $u)' \
                >/dev/null && ok || fail "MIG instance $uuid at $gpu $start: $OUT"
done
pt_gpu=$("$GPUVIRT" --json fleet show "${S[@]}" "$PT" | jq -r '.realized[0].gpu')
expect_rc 0 "$GPUVIRT" --root "$TMP/dgx" --json show "$pt_gpu"
echo "$OUT" | jq -e '.driver == "vfio-pci"' >/dev/null && ok || fail "passthrough GPU on vfio-pci: $OUT"
expect_rc 0 "$GPUVIRT" --root "$TMP/t4" --json vgpu list
for uuid in $("$GPUVIRT" --json fleet show "${S[@]}" "$VG" | jq -r '.realized[].id'); do
        echo "$OUT" | jq -e --arg u "$uuid" 'any(.id == $u and .type == "nvidia-222" and .active)' >/dev/null && ok || fail "mdev $uuid"
done
expect_rc 0 "$GPUVIRT" --root "$TMP/h100" --json vgpu list
echo "$OUT" | jq -e '[.[] | select(.kind == "vendor" and .type == "1047")] | length == 2' >/dev/null && ok || fail "vendor vGPUs: $OUT"
vf=$("$GPUVIRT" --json fleet show "${S[@]}" "$VF" | jq -r '.realized[0].id')
expect_rc 0 "$GPUVIRT" --root "$TMP/flex" --json show "$vf"
echo "$OUT" | jq -e '.driver == "vfio-pci"' >/dev/null && ok || fail "VF $vf on vfio-pci"
expect_rc 0 "$GPUVIRT" --json fleet show "${S[@]}" "$VF"
echo "$OUT" | jq -e '.realized | all(.vfio | startswith("/dev/vfio/"))' >/dev/null && ok || fail "vfio group written back: $OUT"

expect_rc 0 "${CHECK[@]}" || echo "$OUT" >&2

# the checker can fail: a stray mdev no reservation claims, a missing unit record, a doubly booked GPU
expect_rc 0 "$GPUVIRT" --root "$TMP/t4" vgpu create 0000:3b:00.0 nvidia-222 --uuid 11111111-2222-4333-8444-555555555555
expect_rc 1 "${CHECK[@]}" && expect_in "$OUT" "unit without reservation: t4 mdev 11111111" "checker sees a stray unit"
expect_rc 0 "$GPUVIRT" --root "$TMP/t4" vgpu remove 11111111-2222-4333-8444-555555555555
gkey="/gpuvirt/v1/gpus/dgx/$pt_gpu"
orig=$(etcdctl --endpoints "$ETCD_ENDPOINTS" get --print-value-only "$gkey")
echo "$orig" | jq -c '.units += [.units[0] | .res = "rdouble"]' | etcdctl --endpoints "$ETCD_ENDPOINTS" put "$gkey" >/dev/null
expect_rc 1 "${CHECK[@]}" && expect_in "$OUT" "double allocation: dgx $pt_gpu whole GPU reserved 2 times" "checker sees a double booking"
echo "$orig" | etcdctl --endpoints "$ETCD_ENDPOINTS" put "$gkey" >/dev/null
expect_rc 0 etcdctl --endpoints "$ETCD_ENDPOINTS" del "/gpuvirt/v1/units/t4/$VG/1"
expect_rc 1 "${CHECK[@]}" && expect_in "$OUT" "reservation without unit: $VG/1" "checker sees a missing unit"
# ... and the agent's next pass writes it again
wait_for 30 "${CHECK[@]}" && ok || fail "reconciled: $("${CHECK[@]}" 2>&1)"

# release everything: every host back to what it was
for id in "${IDS[@]}"; do expect_rc 0 "$GPUVIRT" fleet release "${S[@]}" "$id"; done
same_as_before() { # host
        "$GPUVIRT" --root "$TMP/$1" export -o "$TMP/$1.after.yaml" && cmp -s "$TMP/$1.before.yaml" "$TMP/$1.after.yaml"
}
for h in dgx t4 h100 flex; do
        wait_for 90 same_as_before "$h" && ok || fail "$h back to its original state: $(diff "$TMP/$h.before.yaml" "$TMP/$h.after.yaml")"
done
units_gone() { [ -z "$(etcdctl --endpoints "$ETCD_ENDPOINTS" get --prefix --keys-only /gpuvirt/v1/units/)" ]; }
wait_for 30 units_gone && ok || fail "unit records removed"
expect_rc 0 "${CHECK[@]}"

# SIGTERM: each agent stops cleanly, revoking its lease (the host is down at once)
for h in "${!PID[@]}"; do kill -TERM "${PID[$h]}"; done
for h in "${!PID[@]}"; do
        wait "${PID[$h]}" && ok || { fail "agent of $h exited $? on SIGTERM"; tail -40 "$TMP/agent-$h.log"; }
done
PID=()
expect_rc 0 "$GPUVIRT" --json fleet hosts "${S[@]}"
echo "$OUT" | jq -e 'all(.state == "down")' >/dev/null && ok || fail "hosts down after SIGTERM: $OUT"
finish
