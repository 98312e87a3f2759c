#!/usr/bin/env bash
# Refused input changes nothing (issue 11): for each file gpuvirt refuses (duplicate keys, a second
# document, tags, aliases, oversized, missing, NUL bytes, a broken mig-parted file named by host.yaml) the
# exit status is 2, the error is FILE:LINE:COL, and the whole root (every file and directory, its type,
# mode, size, mtime and contents) is the same before and after: no run/, no var/lib/gpuvirt/, no lock
# file, last-apply.json untouched. Then the state and definition files read back: a damaged one is
# refused with its file and reason, and never acted on.
set -eu
GPUVIRT=$1
. "$(dirname "$0")/lib.sh"

snapshot() { # root -> stdout
        (cd "$1" && find . -printf '%p %y %m %s %T@ %l\n' | LC_ALL=C sort && find . -type f -print0 | LC_ALL=C sort -z |
                xargs -0 md5sum)
}

# refused RC ROOT CMD...: exit status RC and the root unchanged
refused() {
        local rc=$1 root=$2; shift 2
        snapshot "$root" >"$TMP/snap.before"
        expect_rc "$rc" "$@" || return 0
        snapshot "$root" >"$TMP/snap.after"
        if cmp -s "$TMP/snap.before" "$TMP/snap.after"; then ok; else
                fail "refused '$*' changed the root: $(diff "$TMP/snap.before" "$TMP/snap.after" | head -5)"
        fi
}

"$GPUVIRT" sim create "$TMP/h" --profile dgx-a100 >/dev/null
R=(--root "$TMP/h")
M="$TMP/mig"
mkdir -p "$M"

# host.yaml refused at parse time: apply, plan, assert
bad_host() { # name, text, position, words
        printf '%b' "$2" >"$TMP/$1.yaml"
        for verb in apply plan assert; do
                refused 2 "$TMP/h" "$GPUVIRT" "${R[@]}" "$verb" -f "$TMP/$1.yaml" &&
                        expect_in "$ERR" "$TMP/$1.yaml:$3: " "$1: position ($verb)" && expect_in "$ERR" "$4" "$1: reason ($verb)"
        done
}
printf 'version: v1\nmig-configs:\n  a:\n    - devices: [0]\n      devices: [0, 1, 2, 3, 4, 5, 6, 7]\n      mig-enabled: false\n' >"$M/dup-devices.yaml"
printf 'version: v1\nmig-configs:\n  a:\n    - device-filter: "0x20B010DE"\n      device-filter: ["0x20B010DE", "0x20B210DE"]\n      devices: all\n      mig-enabled: false\n' >"$M/dup-filter.yaml"
printf 'version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n      mig-devices: {"1g.5gb": 1}\n      mig-devices: {"1g.5gb": 2, "2g.10gb": 1}\n' >"$M/dup-mig-devices.yaml"
bad_host dup-mode 'version: 1\ngpus:\n  - select: all\n    mode: host\n    mode: passthrough\n' 5:5 "duplicate key 'mode'"
bad_host dup-profile 'version: 1\ngpus:\n  - select: "10de:20b0"\n    mode: mig\n    mig: {"1g.5gb": 4, "1g.5gb": 3}\n' 5:24 "duplicate key '1g.5gb'"
bad_host dup-type 'version: 1\ngpus:\n  - select: all\n    mode: vgpu\n    vgpu: {type: a, type: b, count: 1}\n' 5:21 "duplicate key 'type'"
bad_host second-doc 'version: 1\ngpus: []\n---\nversion: 1\ngpus:\n  - {select: all, mode: passthrough}\n' 3:1 "a second YAML document"
bad_host tag 'version: 1\ngpus:\n  - select: all\n    mode: !!str passthrough\n' 4:11 "tags"
bad_host alias 'version: 1\ngpus:\n  - &e {select: "10de:20b0", mode: passthrough}\n  - *e\n' 3:5 "anchors (&e)"
bad_host syntax 'version: 1\ngpus:\n  - select: [all\n' 4:1 ""
bad_host nul 'version: 1\ngpus:\n  - select: all\n    mode: pass\0through\n' 4:15 "a NUL byte"
bad_host utf8 'version: 1\ngpus:\n  - select: all\n    mode: pass\xffthrough\n' 4:15 "UTF-8"
# the mig-parted files host.yaml names are read with it (once), before anything is written
for f in dup-devices:5:7 dup-filter:5:7 dup-mig-devices:7:7; do
        name=${f%%:*} pos=${f#*:}
        bad_host "via-$name" "version: 1\ngpus:\n  - select: \"10de:20b0\"\n    mode: mig\n    mig: {file: \"$M/$name.yaml\", label: a}\n" \
                3:5 "mig file: $M/$name.yaml:$pos: duplicate key"
done
bad_host no-label "version: 1\ngpus:\n  - select: \"10de:20b0\"\n    mode: mig\n    mig: {file: \"$M/dup-devices.yaml\", label: nosuch}\n" \
        3:5 "mig file: $M/dup-devices.yaml:5:7"
printf 'version: v1\nmig-configs:\n  a:\n    - {devices: all, mig-enabled: false}\n' >"$M/ok.yaml"
bad_host missing-label "version: 1\ngpus:\n  - select: \"10de:20b0\"\n    mode: mig\n    mig: {file: \"$M/ok.yaml\", label: nosuch}\n" \
        3:5 "has no configuration 'nosuch'"
[ ! -e "$TMP/h/run" ] && [ ! -e "$TMP/h/var/lib/gpuvirt" ] && ok || fail "a refused host.yaml created run/ or var/lib/gpuvirt/"

# a missing or oversized -f file is bad usage (2), for apply and mig apply alike
refused 2 "$TMP/h" "$GPUVIRT" "${R[@]}" apply -f "$TMP/nonexistent.yaml" && expect_in "$ERR" "$TMP/nonexistent.yaml: cannot read" "missing -f"
head -c $((1024 * 1024 + 1)) /dev/zero | tr '\0' '#' >"$TMP/big.yaml"
refused 2 "$TMP/h" "$GPUVIRT" "${R[@]}" apply -f "$TMP/big.yaml" && expect_in "$ERR" "larger than 1048576 bytes" "oversized -f"
refused 2 "$TMP/h" "$GPUVIRT" "${R[@]}" apply -f "$TMP" && expect_in "$ERR" "cannot read" "a directory as -f"
refused 2 "$TMP/h" "$GPUVIRT" "${R[@]}" mig apply -f "$TMP/nonexistent.yaml" -c a
refused 2 "$TMP/h" "$GPUVIRT" "${R[@]}" mig apply -f "$TMP/big.yaml" -c a && expect_in "$ERR" "larger than 1048576 bytes" "oversized mig -f"
# the mig-parted reader's crashes (heap-buffer-overflow, NULL strcasecmp under ASan) are refusals
for f in dup-devices:5:7 dup-filter:5:7 dup-mig-devices:7:7; do
        name=${f%%:*} pos=${f#*:}
        refused 2 "$TMP/h" "$GPUVIRT" "${R[@]}" mig apply -f "$M/$name.yaml" -c a && expect_in "$ERR" "$M/$name.yaml:$pos: duplicate key" "$name"
        refused 2 "$TMP/h" "$GPUVIRT" "${R[@]}" mig assert -f "$M/$name.yaml" -c a
done
# 20,000 labels, each an alias of the first: refused at the anchor, before any label is read
{
        printf 'version: v1\nmig-configs:\n  l0: &all\n    - devices: all\n      mig-enabled: true\n      mig-devices: {"1g.5gb": 7}\n'
        for i in $(seq 1 19999); do echo "  l$i: *all"; done
} >"$M/labels.yaml"
refused 2 "$TMP/h" "$GPUVIRT" "${R[@]}" mig apply -f "$M/labels.yaml" -c l19999 && expect_in "$ERR" "labels.yaml:3:7: anchors" "alias labels"
printf 'version: 1\ngpus:\n  - select: all\n    mode: mig\n    mig: {file: "%s", label: l19999}\n' "$M/labels.yaml" >"$TMP/labels-host.yaml"
refused 2 "$TMP/h" "$GPUVIRT" "${R[@]}" plan -f "$TMP/labels-host.yaml" && expect_in "$ERR" "labels.yaml:3:7: anchors" "alias labels (plan)"

# after a successful apply, a refused file leaves last-apply.json (and everything else) as it was
printf 'version: 1\ngpus:\n  - select: "0000:23:00.0"\n    mode: passthrough\n' >"$TMP/good.yaml"
expect_rc 0 "$GPUVIRT" "${R[@]}" apply -f "$TMP/good.yaml"
[ -f "$TMP/h/var/lib/gpuvirt/last-apply.json" ] && ok || fail "no last-apply.json after an apply"
refused 2 "$TMP/h" "$GPUVIRT" "${R[@]}" apply -f "$TMP/dup-mode.yaml"
refused 2 "$TMP/h" "$GPUVIRT" "${R[@]}" apply -f "$TMP/nonexistent.yaml"
# a request this host cannot do is refused too: nothing recorded as an apply
printf 'version: 1\ngpus:\n  - select: "10de:20b0"\n    mode: sriov\n    sriov: {vfs: 2}\n' >"$TMP/impossible.yaml"
cp "$TMP/h/var/lib/gpuvirt/last-apply.json" "$TMP/last.before"
expect_rc 2 "$GPUVIRT" "${R[@]}" apply -f "$TMP/impossible.yaml" && expect_in "$ERR" "has no SR-IOV capability" "impossible"
cmp -s "$TMP/last.before" "$TMP/h/var/lib/gpuvirt/last-apply.json" && ok || fail "a refused request rewrote last-apply.json"
expect_rc 0 "$GPUVIRT" "${R[@]}" status -f "$TMP/good.yaml" && expect_in "$OUT" "Last apply: succeeded" "status after refusals"

# version and help take no arguments
refused 2 "$TMP/h" "$GPUVIRT" "${R[@]}" version x && expect_in "$ERR" "version: unexpected argument 'x'" "version x"
refused 2 "$TMP/h" "$GPUVIRT" "${R[@]}" help x && expect_in "$ERR" "help: unexpected argument 'x'" "help x"
[ -z "$OUT" ] && ok || fail "help x printed the help"

# ---- state and definition files are input too ----
# a passthrough record whose driver leaves sys/bus/pci/drivers: refused, nothing written (no etc/x/bind)
P="$TMP/h/var/lib/gpuvirt/passthrough/0000:23:00.0"
printf '{"driver":"../../../../etc/x","driver_override":null}\n' >"$P"
mkdir -p "$TMP/h/etc/x"
refused 1 "$TMP/h" "$GPUVIRT" "${R[@]}" passthrough disable 0000:23:00.0 &&
        expect_in "$ERR" "$P: 'driver' is \"../../../../etc/x\", expected a kernel driver name" "bad driver record"
[ ! -e "$TMP/h/etc/x/bind" ] && ok || fail "gpuvirt wrote through a saved driver name"
printf '{"driver":"nvidia","driver":"../../../../etc/x"}\n' >"$P"
refused 1 "$TMP/h" "$GPUVIRT" "${R[@]}" passthrough disable 0000:23:00.0 && expect_in "$ERR" "$P:1:20: duplicate key 'driver'" "dup key record"
# the same record through the host state (a release step)
printf 'version: 1\ngpus:\n  - select: all\n    mode: host\n' >"$TMP/host.yaml"
expect_rc 1 "$GPUVIRT" "${R[@]}" apply -f "$TMP/host.yaml" && expect_in "$ERR" "$P:1:20: duplicate key 'driver'" "apply names the record"
[ "$(basename "$(readlink "$TMP/h/sys/bus/pci/devices/0000:23:00.0/driver")")" = vfio-pci ] && ok || fail "the GPU left vfio-pci"
printf '{"driver":"nvidia","driver_override":null}\n' >"$P"
expect_rc 0 "$GPUVIRT" "${R[@]}" passthrough disable 0000:23:00.0
# `passthrough restore` (the udev boot unit) aborted on a json-c assertion when include was not a list
mkdir -p "$TMP/h/etc/gpuvirt/vfio.d"
printf '{"driver":"vfio-pci","force":true,"include":5}\n' >"$TMP/h/etc/gpuvirt/vfio.d/0000:23:00.0"
refused 1 "$TMP/h" "$GPUVIRT" "${R[@]}" passthrough restore 0000:23:00.0 && expect_in "$ERR" "'include' is 5, expected a list of PCI addresses" "include 5"
printf '{"driver":"vfio-pci","include":["bogus"]}\n' >"$TMP/h/etc/gpuvirt/vfio.d/0000:23:00.0"
refused 1 "$TMP/h" "$GPUVIRT" "${R[@]}" passthrough restore 0000:23:00.0 && expect_in "$ERR" "item 0 of 'include' is \"bogus\"" "include bogus"
# on a root no mutating verb ran on yet: the refused record creates nothing, not even the lock (run/)
"$GPUVIRT" sim create "$TMP/p" --profile dgx-a100 >/dev/null
mkdir -p "$TMP/p/etc/gpuvirt/vfio.d"
printf '{"driver":"vfio-pci","include":5}\n' >"$TMP/p/etc/gpuvirt/vfio.d/0000:23:00.0"
refused 1 "$TMP/p" "$GPUVIRT" --root "$TMP/p" passthrough restore 0000:23:00.0 && expect_in "$ERR" "'include' is 5" "include 5, fresh root"
refused 2 "$TMP/p" "$GPUVIRT" --root "$TMP/p" passthrough restore 23:00.x
refused 2 "$TMP/p" "$GPUVIRT" --root "$TMP/p" sriov set 23:00.x 2
[ ! -e "$TMP/p/run" ] && ok || fail "a refused restore created run/"
# num_vfs 4294967297 read as 2147483647
"$GPUVIRT" sim create "$TMP/f" --profile flex-sriov >/dev/null
pf=$("$GPUVIRT" --root "$TMP/f" --json sriov list | jq -r '.[0].address')
mkdir -p "$TMP/f/etc/gpuvirt/sriov.d"
printf '{"num_vfs":4294967297,"vfio":true}\n' >"$TMP/f/etc/gpuvirt/sriov.d/$pf"
refused 1 "$TMP/f" "$GPUVIRT" --root "$TMP/f" sriov restore "$pf" && expect_in "$ERR" "'num_vfs' is 4294967297, out of the range 0..65535" "num_vfs"
# a damaged journal: recover and apply refuse it, status says so
printf '{"step":{"action":"bind-vfio","device":"../../x"}}\n' >"$TMP/h/var/lib/gpuvirt/journal.json"
refused 1 "$TMP/h" "$GPUVIRT" "${R[@]}" recover && expect_in "$ERR" "the journal is damaged" "recover"
expect_rc 1 "$GPUVIRT" "${R[@]}" status -f "$TMP/good.yaml" && expect_in "$OUT" "Interrupted step: the journal is damaged" "status"
finish
