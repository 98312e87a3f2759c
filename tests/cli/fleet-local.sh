#!/usr/bin/env bash
# gpuvirt fleet on one host with no server: the local store under var/lib/gpuvirt/fleet, every command
# realizing at once what it reserved; usage errors; the text and JSON forms.
set -eu
GPUVIRT=$1
. "$(dirname "$0")/lib.sh"

H=(--root "$TMP/dgx")
"$GPUVIRT" sim create "$TMP/dgx" --profile dgx-a100 >/dev/null
echo dgx >"$TMP/dgx/etc/hostname"
"$GPUVIRT" "${H[@]}" export -o "$TMP/before.yaml"

# usage errors: exit 2, nothing written
expect_rc 2 "$GPUVIRT" "${H[@]}" fleet && expect_in "$ERR" "missing argument" "fleet alone"
expect_rc 2 "$GPUVIRT" "${H[@]}" fleet frob && expect_in "$ERR" "unknown command 'frob'" "unknown sub-command"
# the sub-verbs come from the verb table: did you mean, and each one's --help (on stdout, exit 0, no store)
expect_rc 2 "$GPUVIRT" "${H[@]}" fleet frob && expect_in "$ERR" "(hosts, gpus, request, release, show, status, drain, agent)" "sub-verbs listed"
expect_rc 2 "$GPUVIRT" "${H[@]}" fleet stauts && expect_in "$ERR" "did you mean 'status'?" "fleet stauts"
expect_rc 2 "$GPUVIRT" "${H[@]}" fleet relase x && expect_in "$ERR" "did you mean 'release'?" "fleet relase"
expect_rc 0 "$GPUVIRT" "${H[@]}" fleet request --help && expect_in "$OUT" "Usage: gpuvirt fleet request UNIT --owner ID" "fleet request --help"
case $OUT in *"fleet drain"*) fail "fleet request --help shows the other sub-verbs" ;; *) ok ;; esac
expect_rc 0 "$GPUVIRT" "${H[@]}" fleet agent -h && expect_in "$OUT" "Usage: gpuvirt fleet agent [--host NAME]" "fleet agent -h"
expect_rc 2 "$GPUVIRT" "${H[@]}" fleet request mig:3g.20gb && expect_in "$ERR" "--owner ID is required" "owner"
expect_rc 2 "$GPUVIRT" "${H[@]}" fleet request mig --owner a && expect_in "$ERR" "is not a unit" "bad unit"
expect_rc 2 "$GPUVIRT" "${H[@]}" fleet request passthrough --owner a --live && expect_in "$ERR" "cannot migrate live" "live passthrough"
expect_rc 2 "$GPUVIRT" "${H[@]}" fleet request vf --owner a --count 0 && expect_in "$ERR" "--count must be 1 to 64" "count"
expect_rc 2 "$GPUVIRT" "${H[@]}" fleet request vf --owner a --strategy best && expect_in "$ERR" "unknown strategy" "strategy"
expect_rc 2 "$GPUVIRT" "${H[@]}" fleet request vf --owner a --inflight 33 && expect_in "$ERR" "--inflight must be 1 to 32" "inflight"
expect_rc 2 "$GPUVIRT" "${H[@]}" fleet hosts --store zk://x:1 && expect_in "$ERR" "is not a store" "store URL"
expect_rc 2 "$GPUVIRT" "${H[@]}" fleet hosts --store etcd://nohost && expect_in "$ERR" "is not HOST:PORT" "endpoint"
expect_rc 2 "$GPUVIRT" "${H[@]}" fleet show && expect_in "$ERR" "exactly one reservation ID" "show"
expect_rc 2 "$GPUVIRT" "${H[@]}" fleet status extra
printf 'mig:1g.5gb owner=a\nmig:2g.10gb owner=b count=99\n' >"$TMP/bad-reqs"
expect_rc 2 "$GPUVIRT" "${H[@]}" fleet request -f "$TMP/bad-reqs" && expect_in "$ERR" "$TMP/bad-reqs:2:1: count must be 1 to 64" "request file position"
[ ! -e "$TMP/dgx/var/lib/gpuvirt/fleet/store.json" ] && ok || fail "a refused command wrote the store"
expect_rc 2 "$GPUVIRT" --root "$TMP/nothere" fleet hosts

# the host registers itself on first use and offers its GPUs
expect_rc 0 "$GPUVIRT" "${H[@]}" --json fleet hosts
echo "$OUT" | jq -e 'length == 1 and .[0].name == "dgx" and .[0].state == "up" and .[0].gpus == 9' >/dev/null && ok || fail "hosts: $OUT"
expect_rc 0 "$GPUVIRT" "${H[@]}" fleet gpus
expect_in "$OUT" "mig:3g.20gb=2" "gpus table"

# reserve: realized at once on this host
expect_rc 0 "$GPUVIRT" "${H[@]}" --json fleet request mig:3g.20gb --owner vm1 --count 2 --same-host
MIG=$(echo "$OUT" | jq -r '.[0].id')
expect_rc 0 "$GPUVIRT" "${H[@]}" --json fleet request gpu:40gb --owner vm2 --same-nvlink --count 2
PT=$(echo "$OUT" | jq -r '.[0].id')
echo "$OUT" | jq -e '.[0].units | length == 2' >/dev/null && ok || fail "two GPUs in one NVLink domain: $OUT"
expect_rc 0 "$GPUVIRT" "${H[@]}" --json fleet show "$MIG"
echo "$OUT" | jq -e '.realized | length == 2 and all(.state == "ready" and (.mig_uuid | startswith("MIG-")))' >/dev/null &&
        ok || fail "MIG realized: $OUT"
expect_rc 0 "$GPUVIRT" "${H[@]}" fleet show "$PT"
expect_in "$OUT" "ready" "show text"
expect_in "$OUT" "/dev/vfio/" "vfio group"
expect_rc 0 "$GPUVIRT" "${H[@]}" --json mig status
echo "$OUT" | jq -e '[.[].instances | length] | add == 2' >/dev/null && ok || fail "two MIG instances on the host"
expect_rc 0 "$GPUVIRT" "${H[@]}" fleet status
expect_in "$OUT" "Reservations: 2" "status"
# a request that cannot fit: exit 1 and says why; a file of requests with one that fits and one that cannot
expect_rc 1 "$GPUVIRT" "${H[@]}" fleet request gpu:100gb --owner x && expect_in "$OUT" "no GPU in the fleet offers gpu:100gb" "too big"
printf '# two requests\nmig:1g.5gb owner=a\n\npassthrough count=9 same-host owner=b\n' >"$TMP/reqs"
expect_rc 1 "$GPUVIRT" "${H[@]}" fleet request -f "$TMP/reqs"
expect_in "$OUT" "1 reserved, 1 rejected" "request file summary"
ONE=$(echo "$OUT" | awk '/mig:1g.5gb/ {print $1}')

# drain the only host: nothing can move, it is reported
expect_rc 1 "$GPUVIRT" "${H[@]}" fleet drain dgx
expect_in "$OUT" "stays" "drain reports what cannot move"
expect_rc 1 "$GPUVIRT" "${H[@]}" fleet request passthrough --owner later && expect_in "$OUT" "no room" "no placement while draining"
expect_rc 0 "$GPUVIRT" "${H[@]}" fleet drain dgx --undo
expect_rc 2 "$GPUVIRT" "${H[@]}" fleet drain nohost

# release: the host goes back to what it was
expect_rc 0 "$GPUVIRT" "${H[@]}" fleet release "$MIG" "$PT" "$ONE"
expect_rc 1 "$GPUVIRT" "${H[@]}" fleet release "$MIG" && expect_in "$ERR" "no reservation $MIG" "release twice"
expect_rc 0 "$GPUVIRT" "${H[@]}" export -o "$TMP/after.yaml"
cmp -s "$TMP/before.yaml" "$TMP/after.yaml" && ok || fail "host back to its state: $(diff "$TMP/before.yaml" "$TMP/after.yaml")"
expect_rc 0 "$GPUVIRT" "${H[@]}" --json fleet status
echo "$OUT" | jq -e '.reservations == 0 and .units == 0' >/dev/null && ok || fail "nothing left: $OUT"

# a damaged store is refused with its name, not reset
echo '{"revision":' >"$TMP/dgx/var/lib/gpuvirt/fleet/store.json"
expect_rc 1 "$GPUVIRT" "${H[@]}" fleet hosts && expect_in "$ERR" "store.json is damaged" "damaged store"
# through the strict JSON reader: a key given twice is damage, with its position
echo '{"revision":3,"revision":4}' >"$TMP/dgx/var/lib/gpuvirt/fleet/store.json"
expect_rc 1 "$GPUVIRT" "${H[@]}" fleet hosts && expect_in "$ERR" "duplicate key 'revision'" "store with a key twice"
finish
