#!/usr/bin/env bash
# The host is the host: the host lock lives where no other user can plant, hold or redirect it; an empty
# root is a usage error, never the live host; only gpuvirt's own fake NVML is ever loaded, whatever a
# simulated tree names; mutating verbs take the lock before they observe anything, so two racing
# `mig create` never report the same instance.
set -eu
GPUVIRT=$1
. "$(dirname "$0")/lib.sh"

"$GPUVIRT" sim create "$TMP/ws0" --profile workstation >/dev/null
fresh() { rm -rf "$TMP/ws"; cp -a "$TMP/ws0" "$TMP/ws"; }
# a mutating verb that changes nothing on this host (the GPU is not on vfio-pci)
mutate() { "$GPUVIRT" --root "$TMP/ws" passthrough disable 0000:02:00.0; }

# 1. an empty root is an unset variable in a script: refused, not the live host
expect_rc 2 "$GPUVIRT" --root "" list && expect_in "$ERR" "--root: empty" "--root ''"
expect_rc 2 env GPUVIRT_ROOT= "$GPUVIRT" list && expect_in "$ERR" "GPUVIRT_ROOT is set but empty" "GPUVIRT_ROOT=''"
expect_rc 2 env GPUVIRT_ROOT= "$GPUVIRT" --json check

# 2. the lock: run/gpuvirt/lock, a private directory of ours; run/lock (1777 on Debian) is not used
fresh
expect_rc 0 mutate
[ "$(stat -c '%a %u' "$TMP/ws/run/gpuvirt")" = "700 $(id -u)" ] && ok || fail "run/gpuvirt: $(stat -c '%a %u' "$TMP/ws/run/gpuvirt")"
[ "$(stat -c '%a %u %F' "$TMP/ws/run/gpuvirt/lock")" = "600 $(id -u) regular empty file" ] && ok ||
        fail "lock file: $(stat -c '%a %u %F' "$TMP/ws/run/gpuvirt/lock")"
[ ! -e "$TMP/ws/run/lock/gpuvirt.lock" ] && ok || fail "the old world-writable location is still used"
# read-only verbs take no lock (and --dry-run changes nothing, so none either)
fresh
expect_rc 0 "$GPUVIRT" --root "$TMP/ws" list
expect_rc 0 "$GPUVIRT" --root "$TMP/ws" --dry-run passthrough enable 0000:02:00.0 --force --include 0000:03:00.0
[ ! -e "$TMP/ws/run" ] && ok || fail "a read-only verb or a dry run created run/"
# bad usage is refused before the lock: a malformed address (first or later on the line) creates no run/
for args in "enable zz:00.0" "disable 0000:02:00.0 not-an-address" "enable 0000:02:00.0 0000:02:00.9"; do
        fresh
        expect_rc 2 "$GPUVIRT" --root "$TMP/ws" passthrough $args && expect_in "$ERR" "is not a PCI address" "passthrough $args"
        [ ! -e "$TMP/ws/run" ] && ok || fail "passthrough $args (bad usage) created run/: the lock was taken first"
done

# 3. planted symlinks are never followed: not the directory, not the lock file, not run itself
fresh
mkdir -p "$TMP/ws/run/lock" && chmod 1777 "$TMP/ws/run/lock"
ln -s "$TMP/pwned-old" "$TMP/ws/run/lock/gpuvirt.lock"
expect_rc 0 mutate
[ ! -e "$TMP/pwned-old" ] && ok || fail "a symlink planted at the old lock path made gpuvirt create $TMP/pwned-old"
fresh
mkdir -m 0700 "$TMP/elsewhere" && mkdir -p "$TMP/ws/run" && ln -s "$TMP/elsewhere" "$TMP/ws/run/gpuvirt"
expect_rc 1 mutate && expect_in "$ERR" "symlink is refused" "symlinked run/gpuvirt"
[ -z "$(ls -A "$TMP/elsewhere")" ] && ok || fail "the lock was created through a symlinked directory"
fresh
mkdir -p -m 0700 "$TMP/ws/run/gpuvirt" && ln -s "$TMP/pwned" "$TMP/ws/run/gpuvirt/lock"
expect_rc 1 mutate && expect_in "$ERR" "symlink is refused" "symlinked lock file"
[ ! -e "$TMP/pwned" ] && ok || fail "the lock file was created through a symlink"
fresh
mkdir "$TMP/elsewhere-run" && ln -s "$TMP/elsewhere-run" "$TMP/ws/run"
expect_rc 1 mutate && expect_in "$ERR" "symlink is refused" "symlinked run"
[ -z "$(ls -A "$TMP/elsewhere-run")" ] && ok || fail "the lock directory was created through a symlinked run/"

# 4. a directory or lock file that is not ours, or not private, is refused with what is wrong
nobody=$(id -u nobody)
fresh
mkdir -p -m 0700 "$TMP/ws/run/gpuvirt" && chown nobody "$TMP/ws/run/gpuvirt"
expect_rc 1 mutate && expect_in "$ERR" "owned by uid $nobody" "directory of another user"
fresh
mkdir -p -m 0755 "$TMP/ws/run/gpuvirt"
expect_rc 1 mutate && expect_in "$ERR" "mode 0755" "directory others may enter" && expect_in "$ERR" "private (0700)" "what it must be"
fresh
mkdir -p -m 0700 "$TMP/ws/run/gpuvirt" && touch "$TMP/ws/run/gpuvirt/lock" && chown nobody "$TMP/ws/run/gpuvirt/lock"
expect_rc 1 mutate && expect_in "$ERR" "not a regular file of ours (uid $nobody" "lock file of another user"

# 5. another user cannot block us: a lock file of theirs in run/lock, held with flock -s, is not ours to
# wait for; and ours they cannot even open
fresh
mkdir -p "$TMP/ws/run/lock" && chmod 1777 "$TMP/ws/run/lock"
touch "$TMP/ws/run/lock/gpuvirt.lock" && chown nobody "$TMP/ws/run/lock/gpuvirt.lock"
setpriv --reuid="$nobody" --regid="$(id -g nobody)" --clear-groups sh -c 'flock -s 9 && exec sleep 60' \
        9<"$TMP/ws/run/lock/gpuvirt.lock" &
holder=$!
sleep 0.3
expect_rc 0 timeout 20 "$GPUVIRT" --root "$TMP/ws" passthrough disable 0000:02:00.0
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
chmod 755 "$TMP"
if setpriv --reuid="$nobody" --regid="$(id -g nobody)" --clear-groups flock -n -s "$TMP/ws/run/gpuvirt/lock" true \
        2>"$TMP/err"; then
        fail "another user could open and hold our lock"
else
        expect_in "$(cat "$TMP/err")" "Permission denied" "our lock is private"
fi
chmod 700 "$TMP"

# 6. only gpuvirt's own fake NVML is loaded: a library the tree names is never run, on any verb
if command -v cc >/dev/null; then
        cat >"$TMP/evil.c" <<C
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void evil(void) { close(open("$TMP/evil-ran", O_CREAT | O_WRONLY, 0644)); }
C
        cc -shared -fPIC -o "$TMP/evil.so" "$TMP/evil.c" && ok || fail "cannot build the planted library"
        fresh
        echo "$TMP/evil.so" >"$TMP/ws/.gpuvirt-sim/nvml-library"
        for v in list "--json list" "show 0000:02:00.0" "mig status" check; do
                # shellcheck disable=SC2086
                "$GPUVIRT" --root "$TMP/ws" $v >/dev/null 2>&1 || true
                [ ! -e "$TMP/evil-ran" ] && ok || { fail "'$v' loaded the library the tree names"; rm -f "$TMP/evil-ran"; }
        done
else
        fail "no C compiler (cc) to build the planted library"
fi
# the simulator's NVML still works there: it comes from the fixed path built with gpuvirt
"$GPUVIRT" sim create "$TMP/dgx" --profile dgx-a100 >/dev/null
echo "$TMP/evil.so" >"$TMP/dgx/.gpuvirt-sim/nvml-library"
G=("$GPUVIRT" --root "$TMP/dgx")
expect_rc 0 "${G[@]}" --json mig status && [ "$(echo "$OUT" | jq length)" -eq 8 ] && ok || fail "fake NVML from its fixed path"
[ ! -e "$TMP/evil-ran" ] && ok || fail "mig status loaded the planted library"
# a copy of gpuvirt outside its build tree does not load the build tree's library either (it is not
# installed here: a clean "not available")
cp "$GPUVIRT" "$TMP/gpuvirt-copy"
expect_rc 1 "$TMP/gpuvirt-copy" --root "$TMP/dgx" mig status && expect_in "$ERR" "NVML not available" "installed copy only"

# 7. the lock before observing: two parallel `mig create` of one profile give two distinct instances
# (or one clean refusal), never the same instance reported twice
B0=$("${G[@]}" --json mig status | jq -r '.[0].address')
"${G[@]}" mig enable "$B0" >/dev/null && "${G[@]}" mig reset "$B0" >/dev/null
for round in 1 2 3 4 5 6; do
        "${G[@]}" mig destroy "$B0" --all >/dev/null
        "${G[@]}" --json mig create "$B0" 1g.5gb >"$TMP/c1" 2>"$TMP/e1" & p1=$!
        "${G[@]}" --json mig create "$B0" 1g.5gb >"$TMP/c2" 2>"$TMP/e2" & p2=$!
        r1=0 r2=0
        wait "$p1" || r1=$?
        wait "$p2" || r2=$?
        made=$(cat "$TMP/c1" "$TMP/c2" | jq -s -c '[.[][] | {gi_id, start: .placement.start, uuid}]')
        have=$("${G[@]}" --json mig status "$B0" | jq -c '[.[0].instances[] | {gi_id, start: .placement.start, uuid}]')
        n_ok=$(( (r1 == 0) + (r2 == 0) ))
        echo "$made" | jq -e --argjson have "$have" --argjson n "$n_ok" \
                'length == $n and (map(.gi_id) | unique | length) == $n and (map(.start) | unique | length) == $n and
                 ($have | length) == $n and all(.[]; . as $m | $have | index([$m]) != null)' >/dev/null &&
                [ "$n_ok" -ge 1 ] && ok || fail "round $round: rc $r1/$r2, reported $made, NVML has $have; $(cat "$TMP/e1" "$TMP/e2")"
done

# 8. `fleet agent` is not a mutating verb: it takes the host lock for each pass it applies, never for its
# whole foreground run, so between its passes any mutating verb gets the lock at once
fresh
"$GPUVIRT" --root "$TMP/ws" fleet agent --host ws >/dev/null 2>"$TMP/agent.err" & agent=$!
# (the agent's memory is written at the end of each pass)
for _ in $(seq 300); do [ -s "$TMP/ws/var/lib/gpuvirt/fleet/agent.json" ] && break; sleep 0.1; done
[ -s "$TMP/ws/var/lib/gpuvirt/fleet/agent.json" ] && ok || fail "the agent made no pass: $(cat "$TMP/agent.err")"
flock -w 5 -x "$TMP/ws/run/gpuvirt/lock" true && ok || fail "the running agent holds the host lock between passes"
expect_rc 0 timeout 10 "$GPUVIRT" --root "$TMP/ws" passthrough disable 0000:02:00.0
kill -TERM "$agent" && wait "$agent" && ok || fail "the agent did not stop on SIGTERM"
finish
