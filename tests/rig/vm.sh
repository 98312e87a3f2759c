#!/bin/bash
# Live attach/detach against a real libvirtd (QEMU driver) inside the real-kernel rig: the guest runs
# Debian's libvirtd 9.0 and QEMU 7.2 from the shared host root, boots a nested TCG domain with the
# same kernel (uncompressed vmlinux through PVH, tiny busybox initrd that answers PCI hot-unplug), and
# the project's gpuvirt attaches and detaches devices to it many times (tests/rig/vm-guest.sh).
# With GPUVIRTD and AGENT, the passthrough blind spot too: the nested domain's initrd carries
# gpuvirt-agent, the fake NVML it loads and a simulated root (one Quadro RTX 6000 with set telemetry);
# `gpuvirt vm attach --agent-channel` hot-plugs the channel, the nested kernel's virtio_console gives
# the agent its port, and gpuvirtd in the rig guest exports what the agent sends.
#   vm.sh GPUVIRT [GPUVIRTD AGENT]
set -u
GPUVIRT=$(readlink -f "$1")
GPUVIRTD=${2:+$(readlink -f "$2")}
AGENT=${3:+$(readlink -f "$3")}
# the fake NVML the simulator's backend loads from the build tree the agent runs from
NVML=${AGENT:+$(dirname "$AGENT")/libnvidia-ml.so.1}
if [ -n "$AGENT" ]; then
        [ -n "$GPUVIRTD" ] && [ -x "$GPUVIRTD" ] && [ -x "$AGENT" ] && [ -s "$NVML" ] ||
                { echo "FAIL: need gpuvirtd, gpuvirt-agent and $NVML"; exit 1; }
fi
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
stamp=$(sha256sum "$0" "$RIG_VMLINUZ" ${AGENT:+"$AGENT" "$NVML" "$GPUVIRT"} | sha256sum | cut -d' ' -f1)
if [ ! -s "$NESTED/vmlinux" ] || [ ! -s "$NESTED/initrd.cpio" ] || [ "$(cat "$NESTED/stamp" 2>/dev/null)" != "$stamp" ]; then
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
        for a in sh mount sleep cat ls echo insmod ln mkdir; do ln -s busybox "$NESTED/root/bin/$a"; done
        if [ -n "$AGENT" ]; then
                # the agent and the fake NVML at their build-tree paths (the simulator's backend loads the
                # library of the build tree its program runs from), with every library either needs
                for f in "$AGENT" "$NVML"; do
                        mkdir -p "$NESTED/root$(dirname "$f")" && cp "$f" "$NESTED/root$f" && strip --strip-debug "$NESTED/root$f"
                        for l in $(ldd "$f" | grep -o '/[^ ]*'); do
                                [ -e "$NESTED/root$l" ] || { mkdir -p "$NESTED/root$(dirname "$l")" && cp -L "$l" "$NESTED/root$l" &&
                                        strip --strip-debug "$NESTED/root$l"; }
                        done
                done
                # the GPU the agent sees: a simulated host with one Quadro RTX 6000 on nvidia
                "$GPUVIRT" sim create "$NESTED/root/simroot" --profile no-iommu >/dev/null &&
                        g=$("$GPUVIRT" --root "$NESTED/root/simroot" --json list | jq -r '[.[] | select(.driver == "nvidia")][0].address') &&
                        "$GPUVIRT" --root "$NESTED/root/simroot" sim telemetry "$g" util_gpu=73 temp=61 power_mw=150250 >/dev/null &&
                        echo "4242 cuda-app" >"$NESTED/root/simroot/.gpuvirt-sim/nvml/$g.processes" ||
                        { echo "FAIL: cannot make the nested domain's simulated root"; exit 1; }
                # virtio_console and what it needs, in load order (none is built into Debian's kernel)
                mods=$RIG_KROOT/lib/modules/$RIG_KVER/kernel/drivers
                mkdir -p "$NESTED/root/modules"
                n=0
                for m in virtio/virtio_ring virtio/virtio virtio/virtio_pci_legacy_dev virtio/virtio_pci_modern_dev \
                        virtio/virtio_pci char/virtio_console; do
                        n=$((n + 1)) && cp "$mods/$m.ko" "$NESTED/root/modules/$n-${m##*/}.ko" ||
                                { echo "FAIL: no $m.ko in the rig kernel"; exit 1; }
                done
                printf 'AGENT=%s\n' "$AGENT" >"$NESTED/root/agent.env"
        fi
        cat >"$NESTED/root/init" <<'EOF'
#!/bin/sh
# Nested guest: report PCI devices appearing and disappearing (the kernel's ACPI hotplug does the work).
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
list() { for d in /sys/bus/pci/devices/*; do printf '%s ' "${d##*/}"; done; }
# the gpuvirt agent, when the initrd has one: started once its virtio-serial port appears (hot-plugged)
agent=
if [ -r /agent.env ]; then
        . /agent.env
        for m in /modules/*.ko; do insmod "$m" || echo "NESTED-INSMOD-FAILED $m"; done
        mkdir -p /simroot/dev/virtio-ports
fi
agent_port() {
        for p in /sys/class/virtio-ports/*; do
                [ "$(cat "$p/name" 2>/dev/null)" = org.gpuvirt.agent.0 ] || continue
                # what udev does on a real guest: dev/virtio-ports/NAME, here under the simulated root
                ln -sf "/dev/${p##*/}" /simroot/dev/virtio-ports/org.gpuvirt.agent.0
                echo "NESTED-AGENT-PORT ${p##*/}"
                echo "NESTED-AGENT-START uptime $(cat /proc/uptime)"
                "$AGENT" --root /simroot --interval 2 --verbose &
                agent=$!
        done
}
echo "NESTED-UP"
old=" $(list)"
i=0
while :; do
        sleep 1
        i=$((i + 1))
        [ -n "$agent" ] && [ $((i % 15)) = 0 ] && echo "NESTED-T uptime $(cat /proc/uptime)"
        [ -n "${AGENT:-}" ] && [ -z "$agent" ] && agent_port
        new=" $(list)"
        for d in $new; do case "$old" in *" $d "*) ;; *) echo "NESTED-PCI-ADD $d $(cat /sys/bus/pci/devices/$d/vendor):$(cat /sys/bus/pci/devices/$d/device)" ;; esac; done
        for d in $old; do case "$new" in *" $d "*) ;; *) echo "NESTED-PCI-DEL $d" ;; esac; done
        old=$new
done
EOF
        chmod +x "$NESTED/root/init"
        # not compressed: inflating under TCG inside TCG costs minutes; copying a few MiB does not
        (cd "$NESTED/root" && find . | cpio -o -H newc 2>/dev/null) >"$NESTED/initrd.cpio"
        rm -rf "$NESTED/root"
        echo "$stamp" >"$NESTED/stamp"
fi

log=$(mktemp "${TMPDIR:-/tmp}/gpuvirt-rig-vm-XXXXXX")
trap 'rm -f "$log"' EXIT
"$HERE/run.sh" --mem 2G --timeout "${GPUVIRT_RIG_TIMEOUT:-840}" -e NESTED="$NESTED" -e ASAN_OPTIONS=detect_leaks=1 \
        -e GPUVIRTD="$GPUVIRTD" "$HERE/vm-guest.sh" "$GPUVIRT" >"$log" 2>&1
rc=$?
grep -a -E '^(PASS|FAIL|TIMING|GUEST-VERDICT|  )' "$log"
if [ $rc != 0 ]; then
        echo "FAIL: guest suite exited $rc"
        tail -40 "$log"
        exit 1
fi
echo "PASS: live attach/detach with a real libvirtd"
