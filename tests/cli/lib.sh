# Shared helpers for the CLI tests (sourced). $GPUVIRT is the binary under test.
set -u
FAILS=0
PASSES=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gpuvirt-cli-XXXXXX")
trap 'rm -rf "$TMP"' EXIT

ok() { PASSES=$((PASSES + 1)); }
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }

# expect_rc RC CMD...: run, keep stdout/stderr in $OUT/$ERR, compare the exit status
expect_rc() {
        local want=$1; shift
        set +e
        "$@" >"$TMP/out" 2>"$TMP/err"
        local rc=$?
        set -e
        OUT=$(cat "$TMP/out"); ERR=$(cat "$TMP/err")
        if [ "$rc" -ne "$want" ]; then
                fail "'$*' exited $rc, expected $want; stderr: $ERR"
                return 1
        fi
        ok
}

# expect_in TEXT NEEDLE WHAT
expect_in() {
        case "$1" in
        *"$2"*) ok ;;
        *) fail "$3: '$2' not found in: $1" ;;
        esac
}

# Compare output with a hand-reviewed golden file $GOLDEN/NAME (GOLDEN_UPDATE=1 writes it instead).
compare() { # name, file with actual output
        local g="$GOLDEN/$1"
        if [ "${GOLDEN_UPDATE:-0}" = 1 ]; then
                cp "$2" "$g"
                ok
        elif [ ! -f "$g" ]; then
                fail "$1: no golden file (run with GOLDEN_UPDATE=1, then review it)"
        elif diff -u "$g" "$2" >"$TMP/diff"; then
                ok
        else
                fail "$1 differs from golden:"
                cat "$TMP/diff" >&2
        fi
}

jqe() { # jqe JSON FILTER WHAT: the filter must print true
        if [ "$(printf '%s' "$1" | jq -r "$2")" = true ]; then ok; else fail "$3: $2 on: $1"; fi
}

finish() {
        echo "$PASSES checks passed, $FAILS failed"
        [ "$FAILS" -eq 0 ]
}
