#!/bin/bash
# gpuvirt real-kernel rig: install host tools, fetch the stock Debian kernel, build the initramfs.
# Idempotent; a fully cached re-run takes well under a second or two.
#
# Environment:
#   GPUVIRT_RIG_CACHE   cache directory (default: tests/rig/cache, git-ignored)
#   GPUVIRT_RIG_KPKG    kernel package to use instead of linux-image-amd64's dependency
#   GPUVIRT_RIG_QUIET=1 print only the kernel version line
set -euo pipefail

RIG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${GPUVIRT_RIG_CACHE:-$RIG_DIR/cache}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

# One setup at a time per cache (parallel test runs share it).
exec 9>"$CACHE/.setup.lock"
flock 9

say() { [ "${GPUVIRT_RIG_QUIET:-0}" = 1 ] || echo "rig-setup: $*" >&2; }
die() { echo "rig-setup: ERROR: $*" >&2; exit 1; }

# Modules the initramfs loads (dependencies are resolved from modules.dep).
REQUIRED_MODULES="virtio_pci 9pnet_virtio 9p overlay vfio vfio_iommu_type1 vfio_pci mdev nvme bochs"
OPTIONAL_MODULES="irqbypass vfio_virqfd vfio_pci_core crct10dif_generic crct10dif_pclmul"

# ---------------------------------------------------------------- host packages
need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
    need_pkgs+=(busybox-static)
fi
command -v cpio >/dev/null || need_pkgs+=(cpio)
command -v depmod >/dev/null && command -v modprobe >/dev/null || need_pkgs+=(kmod)
command -v gzip >/dev/null || need_pkgs+=(gzip)
command -v xz >/dev/null || need_pkgs+=(xz-utils)
command -v timeout >/dev/null || need_pkgs+=(coreutils)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "need root to install: ${need_pkgs[*]}"
    say "installing: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >"$CACHE/apt.log" 2>&1; then
        say "apt-get install failed; running apt-get update and retrying"
        apt-get update -q >>"$CACHE/apt.log" 2>&1 || { tail -20 "$CACHE/apt.log" >&2; die "apt-get update failed"; }
        apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >>"$CACHE/apt.log" 2>&1 \
            || { tail -20 "$CACHE/apt.log" >&2; die "apt-get install failed (log: $CACHE/apt.log)"; }
    fi
fi

# ---------------------------------------------------------------- kernel package
resolve_kpkg() {
    apt-cache depends linux-image-amd64 2>/dev/null \
        | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
KPKG=${GPUVIRT_RIG_KPKG:-$(resolve_kpkg)}
if [ -z "$KPKG" ]; then
    say "linux-image-amd64 not resolvable; running apt-get update"
    apt-get update -q >"$CACHE/apt.log" 2>&1 || die "apt-get update failed"
    KPKG=$(resolve_kpkg)
fi
[ -n "$KPKG" ] || die "cannot resolve the kernel package behind linux-image-amd64"

KROOT=$CACHE/$KPKG                       # dpkg -x target
if [ ! -e "$KROOT/.extracted" ]; then
    mkdir -p "$CACHE/debs"
    deb=$(ls "$CACHE/debs/${KPKG}_"*.deb 2>/dev/null | tail -n1 || true)
    if [ -z "$deb" ]; then
        say "downloading $KPKG"
        (cd "$CACHE/debs" && apt-get download -q "$KPKG" >"$CACHE/download.log" 2>&1) || {
            say "apt-get download failed; running apt-get update and retrying"
            apt-get update -q >>"$CACHE/download.log" 2>&1 || die "apt-get update failed"
            (cd "$CACHE/debs" && apt-get download -q "$KPKG" >>"$CACHE/download.log" 2>&1) \
                || { tail -5 "$CACHE/download.log" >&2; die "apt-get download $KPKG failed"; }
        }
        deb=$(ls "$CACHE/debs/${KPKG}_"*.deb | tail -n1)
    fi
    say "extracting $(basename "$deb")"
    rm -rf "$KROOT"
    mkdir -p "$KROOT"
    dpkg -x "$deb" "$KROOT"
    touch "$KROOT/.extracted"
    rm -f "$deb"   # the extracted tree is what we keep
fi

KVER=$(ls "$KROOT/lib/modules" | head -n1)
[ -n "$KVER" ] || die "no lib/modules in $KROOT"
VMLINUZ=$KROOT/boot/vmlinuz-$KVER
[ -f "$VMLINUZ" ] || die "no kernel image $VMLINUZ"
MODDIR=$KROOT/lib/modules/$KVER
if [ ! -s "$MODDIR/modules.dep" ] || [ ! -s "$MODDIR/modules.dep.bin" ]; then
    say "depmod $KVER"
    depmod -b "$KROOT" "$KVER"
fi

# ---------------------------------------------------------------- module list (load order)
# modprobe --show-depends walks modules.dep (and softdeps) and prints insmod lines in load order.
modlist=()
declare -A seen=()
add_module() { # $1 name, $2 required(1)/optional(0)
    local out line path
    if ! out=$(modprobe -d "$KROOT" -S "$KVER" --show-depends "$1" 2>&1); then
        [ "$2" = 1 ] && die "module $1 not found for $KVER: $out"
        return 0
    fi
    while read -r line; do
        case $line in
        insmod\ *)
            path=${line#insmod }; path=${path%% *}
            path=${path#"$KROOT"}; path=${path#/}
            if [ -z "${seen[$path]:-}" ]; then seen[$path]=1; modlist+=("$path"); fi ;;
        builtin\ *) ;;
        esac
    done <<<"$out"
}
for m in $REQUIRED_MODULES; do add_module "$m" 1; done
for m in $OPTIONAL_MODULES; do add_module "$m" 0; done

# ---------------------------------------------------------------- initramfs
INITRD=$CACHE/initramfs-$KVER.cpio.gz
stamp=$( { echo "$KVER"; printf '%s\n' "${modlist[@]}"; cat "$RIG_DIR/guest/init";
           /bin/busybox 2>&1 | head -n1; sha256sum "$RIG_DIR/setup.sh"; } | sha256sum | cut -d' ' -f1)
if [ ! -s "$INITRD" ] || [ "$(cat "$INITRD.stamp" 2>/dev/null)" != "$stamp" ]; then
    say "building initramfs (${#modlist[@]} modules)"
    work=$(mktemp -d "$CACHE/initramfs.XXXXXX")
    trap 'rm -rf "$work" "$work.cpio.gz"' EXIT
    mkdir -p "$work"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,run,tmp,newroot,lower,upper,etc,mnt}
    cp /bin/busybox "$work/bin/busybox"
    for applet in $(/bin/busybox --list-full); do
        [ "$(basename "$applet")" = busybox ] && continue     # would replace the binary by a self-link
        [ -e "$work/$applet" ] || ln -s /bin/busybox "$work/$applet"
    done
    : >"$work/modules.list"
    for p in "${modlist[@]}"; do
        dst=$work/$p
        mkdir -p "$(dirname "$dst")"
        case $p in
        *.ko.xz)  xz -dc "$KROOT/$p" >"${dst%.xz}";  p=${p%.xz} ;;
        *.ko.zst) zstd -qdc "$KROOT/$p" >"${dst%.zst}"; p=${p%.zst} ;;
        *.ko.gz)  gzip -dc "$KROOT/$p" >"${dst%.gz}"; p=${p%.gz} ;;
        *)        cp "$KROOT/$p" "$dst" ;;
        esac
        echo "/$p" >>"$work/modules.list"
    done
    install -m 0755 "$RIG_DIR/guest/init" "$work/init"
    echo "$KVER" >"$work/etc/rig-kver"
    (cd "$work" && find . -print0 | cpio --null -o -H newc --quiet -R 0:0) | gzip -1 >"$work.cpio.gz"
    mv "$work.cpio.gz" "$INITRD"
    echo "$stamp" >"$INITRD.stamp"
    rm -rf "$work"; trap - EXIT
fi

# Record what run.sh should boot.
tmpenv=$(mktemp "$CACHE/current.env.XXXXXX")
cat >"$tmpenv" <<EOT
RIG_KPKG=$KPKG
RIG_KVER=$KVER
RIG_KROOT=$KROOT
RIG_VMLINUZ=$VMLINUZ
RIG_INITRD=$INITRD
EOT
chmod 644 "$tmpenv"
mv "$tmpenv" "$CACHE/current.env"
echo "rig kernel: $KVER ($KPKG)"
