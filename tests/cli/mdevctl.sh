#!/usr/bin/env bash
# mdevctl compatibility: Debian's real mdevctl, in a private mount namespace with a simulated host's sys
# and etc/mdevctl.d mounted over /sys and /etc/mdevctl.d, lists the definitions gpuvirt wrote (and the
# mdevs it created), and gpuvirt lists (and starts) the definitions mdevctl wrote.
# Skips (77) only when a private mount namespace cannot be made here (not root, no unshare).
set -eu
GPUVIRT=$1
. "$(dirname "$0")/lib.sh"

if ! unshare -m true 2>/dev/null; then
        echo "SKIP: cannot create a private mount namespace (unshare -m) on this machine"
        exit 77
fi
command -v mdevctl >/dev/null || { echo "FAIL: mdevctl is not installed (./dev.sh deps)"; exit 1; }
[ -d /etc/mdevctl.d ] || { echo "FAIL: /etc/mdevctl.d missing (mdevctl package broken?)"; exit 1; }

H=$TMP/t4
"$GPUVIRT" sim create "$H" --profile t4-grid >/dev/null
G() { "$GPUVIRT" --root "$H" "$@"; }
# mdevctl insists on its callout directories; gpuvirt must skip them
mkdir -p "$H/etc/mdevctl.d/scripts.d/callouts" "$H/etc/mdevctl.d/scripts.d/notifiers"
# mdevctl runs as a process of this namespace: with the simulated sys and etc/mdevctl.d in place
M() {
        unshare -m sh -c 'mount --make-rprivate / && mount --bind "$1/sys" /sys && mount --bind "$1/etc/mdevctl.d" /etc/mdevctl.d && shift && exec mdevctl "$@"' \
                sh "$H" "$@"
}

P=0000:3b:00.0
U1=3f1c4a52-7c2e-4b8a-9d0e-1a2b3c4d5e6f # gpuvirt: created and defined (auto)
U2=8e0c2a9b-1d4f-4e6a-8b7c-0f1e2d3c4b5a # mdevctl: defined (auto) with an attribute
U3=11111111-2222-4333-8444-555555555555 # gpuvirt: defined only (manual)
G vgpu create $P nvidia-231 --uuid ${U1^^} --persist --auto >/dev/null
G vgpu create $P nvidia-231 --uuid $U3 --persist >/dev/null
G vgpu remove $U3 --keep-definition >/dev/null

# mdevctl sees gpuvirt's definitions, with their start policy and type ...
expect_rc 0 M list --defined --dumpjson
d=$OUT
[ "$(printf '%s' "$d" | jq -r ".[0][\"$P\"][] | .[\"$U1\"] // empty | .mdev_type + \" \" + .start")" = "nvidia-231 auto" ] && ok || fail "mdevctl sees U1: $d"
[ "$(printf '%s' "$d" | jq -r ".[0][\"$P\"][] | .[\"$U3\"] // empty | .start")" = manual ] && ok || fail "mdevctl sees U3: $d"
# ... and the active device gpuvirt created
expect_rc 0 M list
expect_in "$OUT" "$U1 $P nvidia-231" "mdevctl lists the active mdev"
case "$OUT" in *"$U3"*) fail "U3 is not active, mdevctl list must not show it" ;; *) ok ;; esac

# mdevctl defines one; gpuvirt lists it and starts it (attributes written in order)
expect_rc 0 M define -u $U2 -p $P -t nvidia-231 --auto
expect_rc 0 M modify -u $U2 --addattr=nvidia/vgpu_params --value=frame_rate_limiter=0
expect_rc 0 G --json vgpu list
jq -e ".[] | select(.id == \"$U2\") | .defined and (.active | not) and .start == \"auto\" and .type == \"nvidia-231\" and .parent == \"$P\"" <<<"$OUT" >/dev/null && ok || fail "gpuvirt sees U2: $OUT"
expect_rc 0 G --json vgpu start-defined
jq -e "(.[] | select(.id == \"$U2\") | .result == \"started\") and (.[] | select(.id == \"$U1\") | .result == \"active\")" <<<"$OUT" >/dev/null && ok || fail "start-defined: $OUT"
[ "$(cat "$H/sys/bus/mdev/devices/$U2/nvidia/vgpu_params")" = frame_rate_limiter=0 ] && ok || fail "attr written"
expect_rc 0 M list
expect_in "$OUT" "$U2 $P nvidia-231" "mdevctl lists the mdev gpuvirt started from its definition"

# gpuvirt removes U2 with its definition: mdevctl no longer knows it
expect_rc 0 G vgpu remove $U2
expect_rc 0 M list --defined
case "$OUT" in *"$U2"*) fail "U2's definition still listed by mdevctl: $OUT" ;; *) ok ;; esac
expect_in "$OUT" "$U1" "U1 still defined"
# A definition named by an upper-case UUID (written by hand or another tool). mdevctl 1.2 reads file names
# with its UUID parser (any case, 32 digits, braced, urn:uuid:): it starts such a definition at boot and
# lists it in --dumpjson, but its text list hides it and modify/undefine miss it (they use the canonical
# name). gpuvirt lists and starts it as mdevctl's boot does, warns, and removes it under its own name.
U4=9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d
printf '{"mdev_type":"nvidia-231","start":"auto","attrs":[]}\n' >"$H/etc/mdevctl.d/$P/${U4^^}"
expect_rc 0 M list --defined --dumpjson
[ "$(printf '%s' "$OUT" | jq -r ".[0][\"$P\"][] | .[\"$U4\"] // empty | .start")" = auto ] && ok || fail "mdevctl --dumpjson reads the upper-case name: $OUT"
expect_rc 0 M list --defined
case "$OUT" in *"$U4"*) fail "mdevctl's text list shows U4 (the premise changed): $OUT" ;; *) ok ;; esac
expect_rc 0 M undefine -u $U4
[ -f "$H/etc/mdevctl.d/$P/${U4^^}" ] && ok || fail "mdevctl undefine removed the upper-case file (the premise changed)"
expect_rc 0 G --json vgpu list
jq -e ".[] | select(.id == \"$U4\") | .defined and .start == \"auto\" and .parent == \"$P\"" <<<"$OUT" >/dev/null && ok || fail "gpuvirt lists U4: $OUT"
expect_in "$ERR" "etc/mdevctl.d/$P/${U4^^} defines $U4 under another name than its UUID" "warning names the file"
expect_in "$ERR" "Rename it to etc/mdevctl.d/$P/$U4" "warning says the fix"
expect_rc 0 G --json vgpu start-defined
jq -e ".[] | select(.id == \"$U4\") | .result == \"started\"" <<<"$OUT" >/dev/null && ok || fail "start-defined starts U4: $OUT"
expect_rc 0 M list
expect_in "$OUT" "$U4 $P nvidia-231" "mdevctl sees the mdev started from the upper-case definition"
expect_rc 0 G vgpu remove $U4
[ ! -e "$H/etc/mdevctl.d/$P/${U4^^}" ] && ok || fail "gpuvirt vgpu remove left the upper-case definition (mdevctl would start it at boot)"
expect_rc 0 M list --defined --dumpjson
case "$OUT" in *"$U4"*) fail "U4 still defined for mdevctl: $OUT" ;; *) ok ;; esac

# mdevctl undefines U3; gpuvirt no longer lists it
expect_rc 0 M undefine -u $U3
expect_rc 0 G --json vgpu list
jq -e "all(.[]; .id != \"$U3\")" <<<"$OUT" >/dev/null && ok || fail "U3 gone: $OUT"
finish
