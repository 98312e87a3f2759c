#!/usr/bin/env bash
# Files of the host that gpuvirt edits: `host iommu enable` on real-world grub defaults files (Debian's,
# Ubuntu's, a RHEL one, backslash continuations, single quotes, several assignments, unquoted values,
# export) on an Intel and an AMD host, each against the result reviewed by hand in tests/grub/NAME.VENDOR;
# bash itself is the oracle (bash -n, and the value bash gives after sourcing the file); mode, owner, a
# symlinked file and the backup are kept; a file that does not parse is refused and left alone; and
# `--json host iommu enable --apply` runs the regeneration command on the live host (in a private mount
# namespace here, with a stand-in update-grub) or says why not.
set -eu
GPUVIRT=$1
FILES=$2
. "$(dirname "$0")/lib.sh"

command -v bash >/dev/null || { echo "FAIL: bash is needed as the oracle"; exit 1; }
value_of() { bash -c '. "$1" >/dev/null 2>&1; printf "%s" "$GRUB_CMDLINE_LINUX"' _ "$1"; }
words() { tr -s ' \t\n' '\n\n\n' | sed '/^$/d'; }
"$GPUVIRT" sim create "$TMP/intel" --profile no-iommu >/dev/null
"$GPUVIRT" sim create "$TMP/amd" --profile dgx-a100 >/dev/null

# 1. every file, both vendors: the reviewed result, valid for bash, the value bash reads is the old one with
# the arguments added (and on AMD amd_iommu=off dropped), a backup of the original; a second run changes nothing
for f in "$FILES"/*; do
        case "$f" in *.*) continue ;; esac
        name=${f##*/}
        for vendor in intel amd; do
                R="$TMP/r"
                rm -rf "$R" && cp -a "$TMP/$vendor" "$R"
                cp "$f" "$R/etc/default/grub"
                expect_rc 0 "$GPUVIRT" --root "$R" --json host iommu enable || continue
                echo "$OUT" | jq -e '.changed and .file == "etc/default/grub" and .backup == "etc/default/grub.gpuvirt.bak"' \
                        >/dev/null && ok || fail "$name/$vendor: $OUT"
                cmp -s "$R/etc/default/grub" "$f.$vendor" && ok ||
                        fail "$name/$vendor: not the reviewed result: $(diff "$f.$vendor" "$R/etc/default/grub")"
                bash -n "$R/etc/default/grub" && ok || fail "$name/$vendor: bash -n refuses the result"
                cmp -s "$R/etc/default/grub.gpuvirt.bak" "$f" && ok || fail "$name/$vendor: backup differs from the original"
                if [ "$vendor" = intel ]; then
                        want=$(value_of "$f" | words | grep -v '^intel_iommu=' | grep -v '^iommu=' || true)
                        want=$(printf '%s\nintel_iommu=on\niommu=pt\n' "$want" | sed '/^$/d')
                else
                        want=$(value_of "$f" | words | grep -v '^amd_iommu=off$' | grep -v '^iommu=' || true)
                        want=$(printf '%s\niommu=pt\n' "$want" | sed '/^$/d')
                fi
                [ "$(value_of "$R/etc/default/grub" | words)" = "$want" ] && ok ||
                        fail "$name/$vendor: bash reads '$(value_of "$R/etc/default/grub")', want the words: $want"
                nc=$(echo "$OUT" | jq -r .new_cmdline)
                case "$nc" in
                *'$'*) ;; # an expansion gpuvirt leaves to the shell
                *) [ "$(printf '%s' "$nc" | words)" = "$(value_of "$R/etc/default/grub" | words)" ] && ok ||
                        fail "$name/$vendor: new_cmdline '$nc' is not what bash reads" ;;
                esac
                cp "$R/etc/default/grub" "$TMP/once"
                expect_rc 0 "$GPUVIRT" --root "$R" --json host iommu enable &&
                        { echo "$OUT" | jq -e '.changed == false' >/dev/null && ok || fail "$name/$vendor: second run: $OUT"; }
                cmp -s "$R/etc/default/grub" "$TMP/once" && ok || fail "$name/$vendor: the second run changed the file"
        done
done
# single quotes stay single quotes (a '$' in them means what it meant)
grep -q "^GRUB_CMDLINE_LINUX='rd.luks.uuid=luks-4f2a \$literal quiet intel_iommu=on iommu=pt'\$" \
        "$FILES/single-quotes.intel" && ok || fail "single quotes not kept"

# 2. mode, owner and a symlinked file are kept; the backup is as private as the file
R="$TMP/r"
rm -rf "$R" && cp -a "$TMP/intel" "$R"
mkdir -p "$R/etc/grub-real"
cp "$FILES/ubuntu" "$R/etc/grub-real/default"
chmod 600 "$R/etc/grub-real/default" && chown nobody:nogroup "$R/etc/grub-real/default"
rm -f "$R/etc/default/grub" && ln -s /etc/grub-real/default "$R/etc/default/grub" # absolute: under the root
expect_rc 0 "$GPUVIRT" --root "$R" host iommu enable
[ -L "$R/etc/default/grub" ] && [ "$(readlink "$R/etc/default/grub")" = /etc/grub-real/default ] && ok ||
        fail "the symlink was replaced by a file"
cmp -s "$R/etc/grub-real/default" "$FILES/ubuntu.intel" && ok || fail "the symlink's target was not edited"
[ "$(stat -c '%a %U %G' "$R/etc/grub-real/default")" = "600 nobody nogroup" ] && ok ||
        fail "mode or owner changed: $(stat -c '%a %U %G' "$R/etc/grub-real/default")"
[ "$(stat -c '%a %U' "$R/etc/default/grub.gpuvirt.bak")" = "600 nobody" ] && cmp -s "$R/etc/default/grub.gpuvirt.bak" "$FILES/ubuntu" &&
        ok || fail "backup: $(stat -c '%a %U' "$R/etc/default/grub.gpuvirt.bak")"
[ -z "$(find "$R/etc/default" "$R/etc/grub-real" -name '*.tmp-*')" ] && ok || fail "temporary files left"
# a relative symlink too, and one that leads out of the root is refused
rm -rf "$R" && cp -a "$TMP/intel" "$R"
cp "$FILES/rhel" "$R/etc/default/grub.real" && ln -sf grub.real "$R/etc/default/grub"
expect_rc 0 "$GPUVIRT" --root "$R" host iommu enable
[ -L "$R/etc/default/grub" ] && cmp -s "$R/etc/default/grub.real" "$FILES/rhel.intel" && ok || fail "relative symlink"
cp "$FILES/debian" "$TMP/outside" && ln -sf ../../../outside "$R/etc/default/grub"
expect_rc 1 "$GPUVIRT" --root "$R" host iommu enable && expect_in "$ERR" "Cannot update the boot configuration" "escape refused"
cmp -s "$TMP/outside" "$FILES/debian" && ok || fail "a file outside the root was edited"

# 3. a file that does not parse is refused with FILE:LINE:COL and left as it was, no backup
rm -rf "$R" && cp -a "$TMP/intel" "$R"
printf 'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX="quiet\nGRUB_TIMEOUT=5\n' >"$R/etc/default/grub"
cp "$R/etc/default/grub" "$TMP/bad"
expect_rc 2 "$GPUVIRT" --root "$R" host iommu enable &&
        expect_in "$ERR" "/etc/default/grub:2:20: unterminated double quote" "position of the error"
cmp -s "$R/etc/default/grub" "$TMP/bad" && [ ! -e "$R/etc/default/grub.gpuvirt.bak" ] && ok || fail "a refused file was touched"
printf 'GRUB_CMDLINE_LINUX=$(cat /x\n' >"$R/etc/default/grub"
expect_rc 2 "$GPUVIRT" --root "$R" host iommu enable && expect_in "$ERR" ":1:20: unterminated \$( command substitution" "\$("
! bash -n "$R/etc/default/grub" 2>/dev/null && ok || fail "bash accepts what we refused"

# 4. --apply: on a simulated root the regeneration is not run, and the JSON says so and why
rm -rf "$R" && cp -a "$TMP/intel" "$R"
expect_rc 0 "$GPUVIRT" --root "$R" --json host iommu enable --apply
echo "$OUT" | jq -e '.regenerated == false and (.regenerate_skipped | test("not the live host")) and .regenerate_command == "update-grub"' \
        >/dev/null && ok || fail "--json --apply on a simulated root: $OUT"
expect_rc 0 "$GPUVIRT" --root "$R" --json host iommu enable
echo "$OUT" | jq -e '.regenerated == false and .regenerate_skipped == "--apply not given"' >/dev/null && ok || fail "without --apply: $OUT"
# on the live host it runs, in a private mount namespace over /etc/default and /run, with a stand-in
# update-grub first on PATH; its output goes to stderr, so stdout stays one JSON document
if unshare -m true 2>/dev/null && grep -qE '^ID(_LIKE)?=.*debian' /etc/os-release; then
        mkdir -p "$TMP/live/etc-default" "$TMP/live/bin"
        cp "$FILES/debian" "$TMP/live/etc-default/grub"
        printf '#!/bin/sh\necho "Generating grub configuration file ..."\necho ran >"%s"\n' "$TMP/live/ran" >"$TMP/live/bin/update-grub"
        chmod +x "$TMP/live/bin/update-grub"
        live() { # the live host, with our /etc/default and an empty /run
                unshare -m sh -c 'mount --make-rprivate / && mount --bind "$1/etc-default" /etc/default &&
                        mount -t tmpfs tmpfs /run && shift && PATH="$0:$PATH" exec "$@"' \
                        "$TMP/live/bin" "$TMP/live" "$GPUVIRT" --root / "$@"
        }
        expect_rc 0 live --json host iommu enable --apply
        echo "$OUT" | jq -e '.regenerated == true and .regenerate_status == 0 and .regenerate_skipped == null and .changed' \
                >/dev/null && ok || fail "--json --apply on the live host: $OUT"
        [ -f "$TMP/live/ran" ] && ok || fail "the regeneration command did not run"
        expect_in "$ERR" "Generating grub configuration file" "its output on stderr"
        v=amd
        grep -q GenuineIntel /proc/cpuinfo && v=intel
        cmp -s "$TMP/live/etc-default/grub" "$FILES/debian.$v" && ok || fail "live edit ($v): $(cat "$TMP/live/etc-default/grub")"
        # with the arguments already there, --apply still regenerates (a run without it left grub.cfg stale)
        rm "$TMP/live/ran"
        expect_rc 0 live --json host iommu enable --apply
        echo "$OUT" | jq -e '.regenerated and (.changed | not)' >/dev/null && [ -f "$TMP/live/ran" ] && ok || fail "again: $OUT"
        # a failing regeneration is a failure, said
        printf '#!/bin/sh\nexit 3\n' >"$TMP/live/bin/update-grub"
        expect_rc 1 live --json host iommu enable --apply
        echo "$OUT" | jq -e '.regenerated == false and .regenerate_status == 3' >/dev/null && ok || fail "failed regeneration: $OUT"
else
        echo "note: no private mount namespace or not a Debian-like host: the live --apply case is not run" >&2
fi
finish
