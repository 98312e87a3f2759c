#!/usr/bin/env bash
# Golden CLI output for every simulated profile: list, list --json, show of each GPU kind, check and
# check --json. The golden files are reviewed by hand; regenerate with GOLDEN_UPDATE=1 and read the diff
# before committing.
set -eu
GPUVIRT=$1
GOLDEN=$2
. "$(dirname "$0")/lib.sh"

PROFILES=$("$GPUVIRT" --json sim profiles | jq -r '.[].name')
[ -n "$PROFILES" ] || { echo "no profiles"; exit 1; }

run() { # name, expected rc, args...: gpuvirt --root $host ARGS against the golden file $p.NAME
        local name=$1 rc=$2; shift 2
        set +e
        "$GPUVIRT" --root "$host" "$@" >"$TMP/actual" 2>&1
        local got=$?
        set -e
        [ "$got" -eq "$rc" ] || fail "$p: gpuvirt $* exited $got, expected $rc"
        compare "$p.$name" "$TMP/actual"
}

# list, check (text and JSON) and show of the last GPU (the first is mostly the BMC's console VGA) and of
# the first VF, of the host $host, named $p
golden_host() {
        run list.txt 0 list
        run list.json 0 --json list
        # check exits 1 exactly when some check fails
        local want=0
        "$GPUVIRT" --root "$host" --json check | jq -e 'any(.[]; .status == "fail")' >/dev/null && want=1
        run check.txt $want check
        run check.json $want --json check
        local last vf
        last=$("$GPUVIRT" --root "$host" --json list | jq -r '.[-1].address // empty')
        if [ -n "$last" ]; then run show.txt 0 show "$last"; fi
        vf=$("$GPUVIRT" --root "$host" --json list --vfs | jq -r '[.[] | select(.physfn != null)][0].address // empty')
        if [ -n "$vf" ]; then run show-vf.json 0 --json show "$vf"; fi
}

for p in $PROFILES; do
        host="$TMP/$p"
        "$GPUVIRT" sim create "$host" --profile "$p" >/dev/null
        golden_host
done

# Captures of real machines (gpuvirt capture; tests/captures/README.md): read-only input, what a capture lacks
# is unknown. Each is copied first, so that nothing of this checkout's path can reach the output.
for c in "$GOLDEN"/../captures/*/; do
        [ -d "$c" ] || continue
        p=capture-$(basename "$c")
        host="$TMP/$p"
        cp -a "$c" "$host"
        golden_host
        # a real machine's every GPU, not only the last one, and its SR-IOV PFs (the rig's NVMe): show of each,
        # named by its address (':' as '-')
        for a in $({ "$GPUVIRT" --root "$host" --json list | jq -r '.[:-1][].address'
                     "$GPUVIRT" --root "$host" --json sriov list | jq -r '.[].address'; } | sort -u); do
                run "show-${a//:/-}.txt" 0 show "$a"
        done
done
finish
