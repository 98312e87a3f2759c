#!/bin/bash
# Build the kernel's sample mdev parents (mbochs, mdpy, mtty: samples/vfio-mdev) for the rig kernel, from
# Debian's linux-source-6.1 and the rig kernel's headers, into the rig cache, together with our own test
# module (kmod/gpuvirt_mdev_test.c: a PCI function as mdev parent). Idempotent (rebuilt when our module's
# source changes); prints the directory holding the .ko files. The kernel's code is extracted at test time
# and never committed.
#
# Environment: GPUVIRT_RIG_CACHE (as setup.sh). Needs the rig set up (setup.sh) and root to apt-get.
set -euo pipefail
RIG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${GPUVIRT_RIG_CACHE:-$RIG_DIR/cache}
[ -f "$CACHE/current.env" ] || { echo "mdev-samples: rig not set up (run setup.sh)" >&2; exit 1; }
# shellcheck source=/dev/null
. "$CACHE/current.env"
say() { echo "mdev-samples: $*" >&2; }

out=$CACHE/mdev-samples-$RIG_KVER
ours=$RIG_DIR/kmod/gpuvirt_mdev_test.c
stamp=$(sha256sum "$ours" | cut -c1-16)
built() { [ "$(cat "$out/.built" 2>/dev/null)" = "$stamp" ]; }
if built; then echo "$out"; exit 0; fi

exec 9>"$CACHE/.mdev-samples.lock"
flock 9
if built; then echo "$out"; exit 0; fi

hdr=/usr/src/linux-headers-$RIG_KVER
src=/usr/src/linux-source-6.1.tar.xz
need=()
[ -d "$hdr" ] || need+=("linux-headers-$RIG_KVER")
[ -f "$src" ] || need+=(linux-source-6.1)
command -v make >/dev/null || need+=(make)
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { say "need root to install: ${need[*]}"; exit 1; }
    say "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${need[@]}" >"$CACHE/mdev-apt.log" 2>&1 || {
        apt-get update -q >>"$CACHE/mdev-apt.log" 2>&1
        apt-get install -y -q --no-install-recommends "${need[@]}" >>"$CACHE/mdev-apt.log" 2>&1
    } || { tail -20 "$CACHE/mdev-apt.log" >&2; say "apt-get install failed"; exit 1; }
fi

rm -rf "$out.tmp"
mkdir -p "$out.tmp"
say "extracting samples/vfio-mdev from $src"
tar -xJf "$src" -C "$out.tmp" --strip-components=3 --wildcards '*/samples/vfio-mdev/*'
cp "$ours" "$out.tmp/"
# an out-of-tree Kbuild naming the three samples and our module
echo 'obj-m := mbochs.o mtty.o mdpy.o gpuvirt_mdev_test.o' >"$out.tmp/Kbuild"
say "building against $hdr"
make -s -C "$hdr" M="$out.tmp" modules >"$out.tmp/build.log" 2>&1 || { tail -30 "$out.tmp/build.log" >&2; exit 1; }
for m in mbochs mtty mdpy gpuvirt_mdev_test; do [ -f "$out.tmp/$m.ko" ] || { say "$m.ko not built"; exit 1; }; done
echo "$stamp" >"$out.tmp/.built"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out"
