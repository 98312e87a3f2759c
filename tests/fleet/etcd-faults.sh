#!/usr/bin/env bash
# Faults on the fleet (3-member etcd on loopback, three simulated hosts with their agents):
#   an agent SIGKILLed in the middle of a realization (the simulator's KILL fault at the mdev create),
#   two schedulers at once on the same fleet, the etcd leader SIGKILLed under load, an agent restarted
#   with live units (adopted, not recreated), an agent SIGKILLed for longer than its lease (host down,
#   its reservations reported and kept), a unit that disappears from its host (reservation marked lost),
#   a drain. After each: 0 double allocations, 0 units without a reservation, 0 reservations without a
#   unit (tests/fleet/check.py) once the agents have run.
set -eu
GPUVIRT=$1
HERE=$(dirname "$0")
. "$HERE/../cli/lib.sh"
. "$HERE/etcd.sh"
trap fleet_cleanup EXIT
etcd_start "$TMP/etcd"
S=(--store "etcd://$ETCD_ENDPOINTS")
CHECK=("$HERE/check.py" check "$GPUVIRT" "$ETCD_ENDPOINTS")
HOSTS="dgx1 dgx2 t4"
declare -A PROFILE=([dgx1]=dgx-a100 [dgx2]=dgx-a100 [t4]=t4-grid)
for h in $HOSTS; do
        "$GPUVIRT" sim create "$TMP/$h" --profile "${PROFILE[$h]}" >/dev/null
        "$GPUVIRT" --root "$TMP/$h" export -o "$TMP/$h.before.yaml"
        "$HERE/check.py" snapshot "$GPUVIRT" "$TMP/$h" "$TMP/$h.snap"
        CHECK+=("$h=$TMP/$h=$TMP/$h.snap")
done
start_agent() { # host
        "$GPUVIRT" --root "$TMP/$1" fleet agent "${S[@]}" --host "$1" --ttl 3 >>"$TMP/agent-$1.log" 2>&1 &
        PID[$1]=$!
}
host_state() { # host state
        "$GPUVIRT" --json fleet hosts "${S[@]}" | jq -e --arg h "$1" --arg s "$2" 'any(.name == $h and .state == $s)'
}
all_realized() { # every unit of every live reservation is ready
        local ids
        ids=$("$GPUVIRT" --json fleet status "${S[@]}" >/dev/null && etcdctl --endpoints "$ETCD_ENDPOINTS" get --prefix --keys-only /gpuvirt/v1/res/ | sed -n 's|^/gpuvirt/v1/res/||p')
        for id in $ids; do
                "$GPUVIRT" --json fleet show "${S[@]}" "$id" | jq -e '.state == "lost" or (.realized | all(. != null and .state == "ready"))' >/dev/null || return 1
        done
}
checked() { # the invariants hold once the agents have converged
        wait_for 120 all_realized || fail "$1: not everything realized"
        wait_for 30 "${CHECK[@]}" && ok || fail "$1: $("${CHECK[@]}" 2>&1 | tail -5)"
}
for h in $HOSTS; do start_agent "$h"; done
for h in $HOSTS; do wait_for 60 host_state "$h" up && ok || fail "$h up"; done
gpus_in() { "$GPUVIRT" --json fleet gpus "${S[@]}" | jq -e '[.[] | select(.free["mig:1g.5gb"] == 7)] | length == 16'; }
wait_for 60 gpus_in && ok || fail "GPUs published"

# 1. an agent killed in the middle of a realization: the simulator kills it at the mdev create
expect_rc 0 "$GPUVIRT" --root "$TMP/t4" sim fault create KILL
expect_rc 0 "$GPUVIRT" --json fleet request "${S[@]}" vgpu:nvidia-222 --owner vdi --count 2 --same-host
VG=$(echo "$OUT" | jq -r '.[0].id')
set +e; wait "${PID[t4]}"; rc=$?; set -e
[ "$rc" -eq 137 ] && ok || fail "t4 agent killed by the fault (exit $rc)"
[ -s "$TMP/t4/var/lib/gpuvirt/journal.json" ] && ok || fail "an interrupted step in the journal"
start_agent t4
checked "agent killed mid-realization, restarted"
expect_rc 0 "$GPUVIRT" --json fleet show "${S[@]}" "$VG"
echo "$OUT" | jq -e '.realized | length == 2 and all(.state == "ready")' >/dev/null && ok || fail "vGPUs after recovery: $OUT"

# 2. two schedulers at once on the same fleet (2 requests per transaction): the two race for the same GPUs, a
#    transaction that loses re-places its own requests; 8 transactions in flight each. A request refused is
#    refused for want of room ("no room", a passthrough that finds no whole GPU left by the other's MIG
#    slices), never because the reservation as a whole stopped: a request that found no room while its own
#    batches were in flight, queued to try again, used to end the whole run with "cannot commit
#    reservations: No space left on device" when it was the last one taken (24-26 of 32 placed).
for f in a b; do
        : >"$TMP/req-$f"
        for i in $(seq 5); do
                echo "mig:1g.5gb owner=$f$i" >>"$TMP/req-$f"
                echo "mig:3g.20gb owner=$f$i" >>"$TMP/req-$f"
                echo "mig:2g.10gb owner=$f$i count=2 same-host" >>"$TMP/req-$f"
        done
        echo "passthrough model=10de:20b0 owner=${f}pt" >>"$TMP/req-$f"
done
"$GPUVIRT" --json fleet request "${S[@]}" -f "$TMP/req-a" --batch 2 --inflight 8 >"$TMP/out-a" 2>"$TMP/err-a" & A=$!
"$GPUVIRT" --json fleet request "${S[@]}" -f "$TMP/req-b" --batch 2 --inflight 8 >"$TMP/out-b" 2>"$TMP/err-b" & B=$!
set +e; wait $A; ra=$?; wait $B; rb=$?; set -e
[ "$ra" -le 1 ] && [ "$rb" -le 1 ] && ok || fail "schedulers exited $ra/$rb: $(cat "$TMP/err-a" "$TMP/err-b")"
! grep -h "cannot commit" "$TMP/err-a" "$TMP/err-b" && ok || fail "a scheduler stopped short"
cat "$TMP/out-a" "$TMP/out-b" | jq -se '[.[][] | select(.id == null) | .error | startswith("no room")] | all' >/dev/null &&
        ok || fail "refused for another reason than room: $(cat "$TMP/out-a" "$TMP/out-b" | jq -c '.[] | select(.id == null)')"
placed=$(cat "$TMP/out-a" "$TMP/out-b" | jq -s '[.[][] | select(.id != null)] | length')
[ "$placed" -ge 28 ] && ok || fail "two schedulers placed only $placed of 32"
stored=$(etcdctl --endpoints "$ETCD_ENDPOINTS" get --prefix --keys-only /gpuvirt/v1/res/ | grep -c . || true)
[ "$stored" -eq $((placed + 1)) ] && ok || fail "$placed placed + 1 earlier, $stored in the store"
checked "two schedulers at once"

# 3. the etcd leader SIGKILLed under load, 4 transactions in flight: answers lost with the leader are read again
: >"$TMP/req-c"
for i in $(seq 12); do echo "mig:1g.5gb owner=c$i" >>"$TMP/req-c"; done
"$GPUVIRT" --json fleet request "${S[@]}" -f "$TMP/req-c" --batch 1 --inflight 4 >"$TMP/out-c" 2>"$TMP/err-c" & C=$!
sleep 0.5
leader=$(etcd_leader) && ok || fail "no leader"
kill -9 "${ETCD_PIDS[$leader]}"
wait "${ETCD_PIDS[$leader]}" 2>/dev/null || true
set +e; wait $C; rc=$?; set -e
[ "$rc" -le 1 ] && ok || fail "scheduler across the leader kill exited $rc: $(cat "$TMP/err-c")"
for id in $(jq -r '.[] | select(.id != null) | .id' "$TMP/out-c"); do
        etcdctl --endpoints "$ETCD_ENDPOINTS" get --keys-only "/gpuvirt/v1/res/$id" | grep -q . || fail "reported $id is not in the store"
done
ok
etcd_restart "$leader"
wait_for 30 etcdctl --endpoints "$ETCD_ENDPOINTS" endpoint health && ok || fail "member back"
checked "leader killed under load"

# 4. an agent restarted with live units: adopted, nothing recreated
uuids() { "$GPUVIRT" --root "$TMP/dgx1" --json mig status | jq -c '[.[].instances[]?.uuid] | sort'; }
before=$(uuids)
kill -TERM "${PID[dgx1]}"; wait "${PID[dgx1]}" && ok || fail "dgx1 agent on SIGTERM"
start_agent dgx1
wait_for 30 host_state dgx1 up && ok || fail "dgx1 up again"
checked "agent restarted"
[ "$(uuids)" = "$before" ] && ok || fail "MIG instances recreated across an agent restart"

# 5. an agent gone longer than its lease: the host is down, its reservations are reported and kept
kill -9 "${PID[dgx2]}"; wait "${PID[dgx2]}" 2>/dev/null || true
wait_for 20 host_state dgx2 down && ok || fail "dgx2 down after its lease"
expect_rc 0 "$GPUVIRT" --json fleet status "${S[@]}"
echo "$OUT" | jq -e '.hosts_down == 1 and (.on_down_hosts | length) > 0' >/dev/null && ok || fail "reservations on the down host reported: $OUT"
expect_rc 0 "$GPUVIRT" --json fleet gpus "${S[@]}" dgx2
echo "$OUT" | jq -e 'length == 9 and all(.free == {})' >/dev/null && ok || fail "a down host offers nothing: $OUT"
start_agent dgx2
wait_for 30 host_state dgx2 up && ok || fail "dgx2 back up"
checked "host down and back"

# 6. a unit that disappears from its host: its reservation is released (marked lost), not recreated
gone=$("$GPUVIRT" --json fleet show "${S[@]}" "$VG" | jq -r '.realized[0].id')
expect_rc 0 "$GPUVIRT" --root "$TMP/t4" vgpu remove "$gone"
lost() { "$GPUVIRT" --json fleet show "${S[@]}" "$VG" | jq -e '.state == "lost"'; }
wait_for 30 lost && ok || fail "reservation marked lost"
expect_rc 0 "$GPUVIRT" --root "$TMP/t4" --json vgpu list
echo "$OUT" | jq -e --arg u "$gone" 'all(.id != $u)' >/dev/null && ok || fail "lost unit recreated"
checked "unit disappeared"

# 7. drain: no new placements on the host, what it holds is placed again elsewhere (the old stays until released)
expect_rc 1 "$GPUVIRT" --json fleet drain "${S[@]}" t4
echo "$OUT" | jq -e '.stuck == 1 and (.reservations[0].error | test("no room"))' >/dev/null && ok || fail "drain reports what cannot move: $OUT"
expect_rc 0 "$GPUVIRT" --json fleet hosts "${S[@]}"
echo "$OUT" | jq -e 'any(.name == "t4" and .state == "draining")' >/dev/null && ok || fail "t4 draining: $OUT"
expect_rc 1 "$GPUVIRT" fleet request "${S[@]}" vgpu:nvidia-222 --owner after-drain && expect_in "$OUT" "no room" "no placement on a draining host"
expect_rc 0 "$GPUVIRT" fleet drain "${S[@]}" t4 --undo
checked "drain"

# everything released: every host back to its original state
for id in $(etcdctl --endpoints "$ETCD_ENDPOINTS" get --prefix --keys-only /gpuvirt/v1/res/ | sed -n 's|^/gpuvirt/v1/res/||p'); do
        "$GPUVIRT" fleet release "${S[@]}" "$id" >/dev/null || fail "release $id"
done
same_as_before() {
        "$GPUVIRT" --root "$TMP/$1" export -o "$TMP/$1.after.yaml" && cmp -s "$TMP/$1.before.yaml" "$TMP/$1.after.yaml"
}
for h in $HOSTS; do
        wait_for 120 same_as_before "$h" && ok || fail "$h back to its original state: $(diff "$TMP/$h.before.yaml" "$TMP/$h.after.yaml")"
done
expect_rc 0 "${CHECK[@]}"
for h in $HOSTS; do kill -TERM "${PID[$h]}"; done
for h in $HOSTS; do wait "${PID[$h]}" && ok || fail "$h agent on SIGTERM: $(tail -3 "$TMP/agent-$h.log")"; done
PID=()
finish
