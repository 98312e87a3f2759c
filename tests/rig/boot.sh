#!/bin/bash
# rig-boot: gpuvirt's persistence proven across real boots. The rig boots a Debian 12 root file system
# (boot-image.sh: mmdebstrap, cached) with systemd as PID 1, udev and Debian's own initramfs, with gpuvirt
# installed into it by `meson install` from BUILDDIR, and runs two chains of boots on one disk each
# (tests/rig/boot-guest.sh has the scenarios):
#   persist: 1 passthrough enable --persist (the two-function display), sriov set --vfio --persist (the
#            NVMe PF), vgpu create --persist --auto (our test module's mdev parent); 2 all after boot,
#            native drivers never bound, units ordered before libvirtd; revert; a mixed host.yaml;
#            3 nothing reverted comes back, gpuvirt-apply.service converged before libvirtd; a host.yaml
#            with an impossible entry; 4 the unit fails, the journal names the entry, nothing changed
#   ids:     1 booted with intel_iommu=off from /etc/kernel/cmdline: check fails; host iommu enable;
#            passthrough persist --ids; 2 booted with exactly the file's command line: check passes,
#            every display on vfio-pci; persist --ids --remove; 3 back on bochs-drm
# Then the simulator replays the persist chain on a qemu-q35 host (boot-sim.sh): the bindings after each
# boot must be the same as the real kernel's.
#   boot.sh GPUVIRT BUILDDIR
set -u
GPUVIRT=$(readlink -f "$1")
BUILD=$(readlink -f "$2")
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gpuvirt-rig-boot-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
TIMEOUT=${GPUVIRT_RIG_TIMEOUT:-600}
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

command -v qemu-system-x86_64 >/dev/null || [ "$(id -u)" = 0 ] || { echo "SKIP: no qemu and not root"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: building the boot image needs root (mmdebstrap)"; exit 77; }
t0=$(date +%s)
GPUVIRT_RIG_QUIET=1 "$HERE/setup.sh" || { echo "FAIL: rig setup"; exit 1; }
mods=$("$HERE/mdev-samples.sh") || { echo "FAIL: building the test module"; exit 1; }

# gpuvirt as a user installs it: meson install into a staging tree, copied into the guest's root by the
# first boot of each chain
meson install -C "$BUILD" --destdir "$TMP/stage" --no-rebuild --quiet >"$TMP/install.log" 2>&1 ||
        { cat "$TMP/install.log"; echo "FAIL: meson install"; exit 1; }
# the Debian packages of the shared libraries the installed programs link (the image must hold them;
# apt brings what those depend on)
needed_libs() { # ELF: the paths of its DT_NEEDED libraries, as the dynamic linker resolves them here
        local needed
        needed=$(readelf -d "$1" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
        [ -n "$needed" ] || return 0
        ldd "$1" 2>/dev/null | awk -v n="$(echo $needed)" 'BEGIN { split(n, a, " "); for (i in a) want[a[i]] = 1 }
                $2 == "=>" && ($1 in want) && $3 ~ /^\// { print $3 }'
}
pkgs=$(find "$TMP/stage" -type f | while read -r f; do needed_libs "$f"; done | sort -u | while read -r lib; do
                dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null
        done | cut -d: -f1 | sort -u)
[ -n "$pkgs" ] || { echo "FAIL: cannot tell the packages of gpuvirt's libraries"; exit 1; }
t1=$(date +%s)
img=$(GPUVIRT_RIG_QUIET=1 "$HERE/boot-image.sh" $pkgs) || { echo "FAIL: building the boot image"; exit 1; }
t2=$(date +%s)
echo "rig-boot: image $img ($(cat "$img/build-time" 2>/dev/null)), ready in $((t2 - t1)) s; setup $((t1 - t0)) s"
echo "rig-boot: gpuvirt's libraries from: $(echo $pkgs)"

# one boot: CHAIN PHASE [--append CMDLINE]
boot() {
        local chain=$1 phase=$2 log=$TMP/$1-$2.log rc s
        shift 2
        s=$(date +%s)
        "$HERE/run.sh" --boot "$TMP/$chain.qcow2" --image "$img" --timeout "$TIMEOUT" --save "$TMP/$chain-$phase.run" "$@" \
                "$HERE/boot-guest.sh" "$chain" "$phase" "$TMP/stage" "$mods" >"$log" 2>&1
        rc=$?
        grep -a -E '^(PASS|FAIL|BOOT-VERDICT)' "$log" | sed "s/^/[$chain $phase] /"
        echo "TIMING boot $chain $phase: $(( $(date +%s) - s )) s wall; $(grep -a '^rig-run:' "$log" | sed 's/^rig-run: //')"
        sed -n '/^SIM-BINDINGS-BEGIN/,/^SIM-BINDINGS-END/p' "$log" >>"$TMP/real-$chain.out"
        if [ $rc != 0 ]; then
                fail "boot $chain $phase exited $rc"
                grep -a -v -E '^(PASS|BOOT-VERDICT)' "$log" | tail -n 60 | sed 's/^/    /'
        fi
        return $rc
}

# ---- chain 1: persistence and the desired state
qemu-img create -q -f qcow2 -b "$img/base.img" -F raw "$TMP/persist.qcow2"
for phase in 1 2 3 4; do boot persist $phase || break; done

# ---- chain 2: the IOMMU through /etc/kernel/cmdline, and binding by ID
qemu-img create -q -f qcow2 -b "$img/base.img" -F raw "$TMP/ids.qcow2"
cmdline="root=/dev/vda ro console=ttyS0 panic=-1 no_timer_check quiet loglevel=4 intel_iommu=off"
for phase in 1 2 3; do
        boot ids $phase --append "$cmdline" || break
        # the next boot gets exactly the command line /etc/kernel/cmdline holds now
        cmdline=$(cat "$TMP/ids-$phase.run/kernel-cmdline" 2>/dev/null)
        [ $phase = 3 ] && break
        [ -n "$cmdline" ] || { fail "ids $phase left no /etc/kernel/cmdline"; break; }
        echo "rig-boot: next boot's command line (/etc/kernel/cmdline): $cmdline"
done

# ---- the simulator: the same persist chain replayed on qemu-q35, boots as fresh hosts with /etc and /var
"$HERE/boot-sim.sh" "$GPUVIRT" "$TMP/sim" >"$TMP/sim-persist.out" 2>"$TMP/sim.err" || { cat "$TMP/sim.err"; fail "simulated boots"; }
if [ -s "$TMP/real-persist.out" ] && diff -u "$TMP/sim-persist.out" "$TMP/real-persist.out" >"$TMP/diff"; then
        echo "PASS: simulator and real boots agree on the bindings after all $(grep -c '^SIM-BINDINGS-BEGIN' "$TMP/sim-persist.out") stages of the persist chain"
else
        fail "simulator and real boots differ:"; cat "$TMP/diff"
fi

echo "rig-boot: $([ $fails = 0 ] && echo PASS || echo FAIL) ($fails failures) in $(( $(date +%s) - t0 )) s"
exit $((fails > 0))
