#!/bin/bash
# gpuvirt rig, boot mode: build (once, cached) a minimal Debian 12 root file system that boots with
# systemd as PID 1 and systemd-udevd, for `run.sh --boot`. Built at test time with mmdebstrap from the
# Debian mirror apt uses on this machine (its sources and its Acquire options), with the rig's kernel
# package (so /lib/modules, /boot and the initramfs are Debian's own, made by initramfs-tools), systemd,
# udev, kmod, libvirt-daemon-system (libvirtd, which gpuvirt's units order themselves before), mdevctl
# (its udev autostart of mdev definitions), jq, and the extra packages given as arguments (the shared
# libraries of what is installed into the image later: boot.sh derives them from the binaries).
#
#   boot-image.sh [PACKAGE...]     prints the image directory: base.img (raw ext4), vmlinuz, initrd.img
#
# Nothing of gpuvirt is in the image: boot.sh installs it into each scenario's copy with `meson install`.
# The image holds one rig-specific unit, rig-harness.service: it mounts the host's root (9p, read-only)
# and the run directory (9p, read-write) and runs guest/boot-stage.sh from there once the boot is done.
#
# Environment: GPUVIRT_RIG_CACHE (as setup.sh). Needs the rig set up (setup.sh), root, and the mirror.
set -euo pipefail
RIG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${GPUVIRT_RIG_CACHE:-$RIG_DIR/cache}
[ -f "$CACHE/current.env" ] || { echo "boot-image: rig not set up (run setup.sh)" >&2; exit 1; }
CACHE=$(cd "$CACHE" && pwd)
# shellcheck source=/dev/null
. "$CACHE/current.env"
say() { [ "${GPUVIRT_RIG_QUIET:-0}" = 1 ] || echo "boot-image: $*" >&2; }
die() { echo "boot-image: ERROR: $*" >&2; exit 1; }

BASE_PKGS=(systemd systemd-sysv udev kmod initramfs-tools "$RIG_KPKG" libvirt-daemon-system mdevctl jq procps)
pkgs=$(printf '%s\n' "${BASE_PKGS[@]}" "$@" | sort -u)
# The suite of the host (bookworm), from its os-release: the image is the same release as the host.
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$suite" ] || die "cannot tell the Debian release from /etc/os-release"
key=$( { echo "$suite"; echo "$pkgs"; cat "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-12)  # not the path: caches are shared
out=$CACHE/boot-$RIG_KVER-$key
built() { [ -s "$out/base.img" ] && [ -s "$out/initrd.img" ] && [ -e "$out/.built" ]; }
if built; then echo "$out"; exit 0; fi

exec 9>"$CACHE/.boot-image.lock"
flock 9
if built; then echo "$out"; exit 0; fi
[ "$(id -u)" = 0 ] || die "building the boot image needs root (mmdebstrap, device nodes)"

need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v qemu-img >/dev/null || need+=(qemu-utils)
if [ ${#need[@]} -gt 0 ]; then
    say "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${need[@]}" >"$CACHE/boot-apt.log" 2>&1 || {
        apt-get update -q >>"$CACHE/boot-apt.log" 2>&1
        apt-get install -y -q --no-install-recommends "${need[@]}" >>"$CACHE/boot-apt.log" 2>&1
    } || { tail -20 "$CACHE/boot-apt.log" >&2; die "apt-get install failed"; }
fi

# The host's package sources and the Acquire options it needs to reach them (proxy, a frozen mirror
# whose Release files are past Valid-Until), so the image comes from the same mirror as the host.
sources=()
[ -s /etc/apt/sources.list ] && grep -q '^[[:space:]]*deb' /etc/apt/sources.list && sources+=(/etc/apt/sources.list)
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -s "$f" ] && sources+=("$f")
done
[ ${#sources[@]} -gt 0 ] || die "no apt sources on this machine"
aptopts=(--aptopt='Apt::Install-Recommends "false"')
while IFS= read -r line; do
    aptopts+=(--aptopt="$line")
done < <(apt-config dump | grep -E '^Acquire::(https?::Proxy|Check-Valid-Until|Check-Date) ' || true)

# mmdebstrap mounts /proc and /sys inside the root while it works and leaves them when unmounting fails
# (a process reading them): never copy or delete a tree with a mount below it.
mounts_below() { awk -v d="$1/" 'index($5 "/", d) == 1 { print $5 }' /proc/self/mountinfo | sort -r; }
unmount_below() {
    local m
    for m in $(mounts_below "$1"); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    [ -z "$(mounts_below "$1")" ] || die "still mounted below $1: $(mounts_below "$1" | tr '\n' ' ')"
}
unmount_below "$out.tmp"
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
root=$out.tmp/root
t0=$(date +%s)
say "mmdebstrap $suite ($(echo "$pkgs" | wc -l) packages and their dependencies) into $root"
# customize hooks run on the host with the root as $1, after the packages are installed
if ! mmdebstrap --variant=minbase --mode=root --include="$(echo "$pkgs" | paste -sd,)" "${aptopts[@]}" \
    --customize-hook='echo rig >"$1/etc/hostname"' \
    --customize-hook='printf "/dev/vda / ext4 errors=remount-ro 0 1\n" >"$1/etc/fstab"' \
    --customize-hook='chroot "$1" passwd -d root >/dev/null' \
    --customize-hook='chroot "$1" systemctl mask --quiet serial-getty@ttyS0.service getty@tty1.service e2scrub_reap.service libvirt-guests.service apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer dpkg-db-backup.timer logrotate.timer' \
    --customize-hook="cat >\"\$1/etc/systemd/system/rig-harness.service\" <<'EOT'
[Unit]
Description=gpuvirt rig: run the test stage of this boot (host's tests/rig/guest/boot-stage.sh)
After=multi-user.target
ConditionKernelCommandLine=!rig.harness=off

[Service]
# simple: its start job ends at once, so the boot can finish while the stage waits for it
Type=simple
StandardOutput=journal+console
StandardError=journal+console
ExecStart=/bin/sh -c 'mkdir -p /run/rig/host /run/rig/run && mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro hostroot /run/rig/host && mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 rigrun /run/rig/run && . /run/rig/run/env.sh && exec /bin/sh /run/rig/host\$RIG_DIR/guest/boot-stage.sh'

[Install]
WantedBy=multi-user.target
EOT" \
    --customize-hook='chroot "$1" systemctl enable --quiet rig-harness.service' \
    "$suite" "$root" "${sources[@]}" >"$out.tmp/mmdebstrap.log" 2>&1; then
    tail -30 "$out.tmp/mmdebstrap.log" >&2
    die "mmdebstrap failed (log: $out.tmp/mmdebstrap.log)"
fi
t1=$(date +%s)
unmount_below "$root"
cp "$root/boot/vmlinuz-$RIG_KVER" "$out.tmp/vmlinuz"
cp "$root/boot/initrd.img-$RIG_KVER" "$out.tmp/initrd.img"
chroot "$root" dpkg-query -W -f='${Package} ${Version}\n' >"$out.tmp/packages.txt"
size_mb=$(( $(du -sm "$root" | cut -f1) + 1024 ))
say "mkfs.ext4 -d ($(du -sh "$root" | cut -f1), image ${size_mb} MiB sparse)"
mkfs.ext4 -q -F -L rigroot -d "$root" "$out.tmp/base.img" "${size_mb}M" >"$out.tmp/mkfs.log" 2>&1 \
    || { cat "$out.tmp/mkfs.log" >&2; die "mkfs.ext4 -d failed"; }
rm -rf "$root"
t2=$(date +%s)
echo "mmdebstrap $((t1 - t0)) s, mkfs.ext4 $((t2 - t1)) s, $(wc -l <"$out.tmp/packages.txt") packages" >"$out.tmp/build-time"
touch "$out.tmp/.built"
rm -rf "$out"
mv "$out.tmp" "$out"
say "built $out ($(cat "$out/build-time"))"
echo "$out"
