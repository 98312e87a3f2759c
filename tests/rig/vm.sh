#!/bin/bash
# Live attach/detach against a real libvirtd (QEMU driver) inside the real-kernel rig: the guest runs
# Debian's libvirtd 9.0 and QEMU 7.2 from the shared host root, boots a nested TCG domain with the
# same kernel (uncompressed vmlinux through PVH, tiny busybox initrd that answers PCI hot-unplug), and
# the project's gpuvirt attaches and detaches devices to it many times (tests/rig/vm-guest.sh).
#   vm.sh GPUVIRT
set -u
GPUVIRT=$(readlink -f "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
"$HERE/setup.sh" >/dev/null || { echo "FAIL: rig setup"; exit 1; }
CACHE=${GPUVIRT_RIG_CACHE:-$HERE/cache}
CACHE=$(cd "$CACHE" && pwd)
. "$CACHE/current.env"
for p in libvirtd virsh virtlogd qemu-system-x86_64; do
        command -v "$p" >/dev/null || { echo "FAIL: $p missing (./dev.sh deps installs libvirt-daemon, libvirt-daemon-driver-qemu)"; exit 1; }
done

# The nested domain's kernel and initrd, in the cache (the guest cannot see the host's /tmp);
# GPUVIRT_RIG_NESTED overrides where.
NESTED=${GPUVIRT_RIG_NESTED:-$CACHE/nested-$RIG_KVER}
mkdir -p "$(dirname "$NESTED")" && NESTED="$(cd "$(dirname "$NESTED")" && pwd)/$(basename "$NESTED")"
stamp=$(sha256sum "$0" "$RIG_VMLINUZ" | sha256sum | cut -d' ' -f1)
if [ ! -s "$NESTED/vmlinux" ] || [ ! -s "$NESTED/initrd.cpio.gz" ] || [ "$(cat "$NESTED/stamp" 2>/dev/null)" != "$stamp" ]; then
        rm -rf "$NESTED" && mkdir -p "$NESTED/root/bin" "$NESTED/root/proc" "$NESTED/root/sys" "$NESTED/root/dev"
        # vmlinuz is a bzImage with an xz payload: the ELF inside boots through PVH, fast under TCG
        python3 - "$RIG_VMLINUZ" "$NESTED/vmlinux.tmp" <<'EOF' || { echo "FAIL: cannot extract vmlinux"; exit 1; }
import lzma, sys
data = open(sys.argv[1], 'rb').read()
off = data.find(b'\xfd7zXZ\x00')
if off < 0:
    sys.exit("no xz payload in " + sys.argv[1])
elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[off:])
if elf[:4] != b'\x7fELF':
    sys.exit("payload is not an ELF kernel")
open(sys.argv[2], 'wb').write(elf)
EOF
        mv "$NESTED/vmlinux.tmp" "$NESTED/vmlinux"
        cp /bin/busybox "$NESTED/root/bin/busybox"
        for a in sh mount sleep cat ls echo; do ln -s busybox "$NESTED/root/bin/$a"; done
        cat >"$NESTED/root/init" <<'EOF'
#!/bin/sh
# Nested guest: report PCI devices appearing and disappearing (the kernel's ACPI hotplug does the work).
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
list() { for d in /sys/bus/pci/devices/*; do printf '%s ' "${d##*/}"; done; }
echo "NESTED-UP"
old=" $(list)"
while :; do
        sleep 1
        new=" $(list)"
        for d in $new; do case "$old" in *" $d "*) ;; *) echo "NESTED-PCI-ADD $d $(cat /sys/bus/pci/devices/$d/vendor):$(cat /sys/bus/pci/devices/$d/device)" ;; esac; done
        for d in $old; do case "$new" in *" $d "*) ;; *) echo "NESTED-PCI-DEL $d" ;; esac; done
        old=$new
done
EOF
        chmod +x "$NESTED/root/init"
        (cd "$NESTED/root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$NESTED/initrd.cpio.gz"
        rm -rf "$NESTED/root"
        echo "$stamp" >"$NESTED/stamp"
fi

log=$(mktemp "${TMPDIR:-/tmp}/gpuvirt-rig-vm-XXXXXX")
trap 'rm -f "$log"' EXIT
"$HERE/run.sh" --mem 2G --timeout "${GPUVIRT_RIG_TIMEOUT:-580}" -e NESTED="$NESTED" -e ASAN_OPTIONS=detect_leaks=1 \
        "$HERE/vm-guest.sh" "$GPUVIRT" >"$log" 2>&1
rc=$?
grep -a -E '^(PASS|FAIL|TIMING|GUEST-VERDICT|  )' "$log"
if [ $rc != 0 ]; then
        echo "FAIL: guest suite exited $rc"
        tail -40 "$log"
        exit 1
fi
echo "PASS: live attach/detach with a real libvirtd"
