#!/bin/bash
# gpuvirt's vgpu verbs on real mediated devices: the kernel's sample parents (mbochs, mdpy, mtty) built
# at test time (mdev-samples.sh) and loaded into the rig kernel.
#   on the host:   tests/rig/mdev.sh GPUVIRT [run.sh options]   (sets up, builds the samples, boots)
#   in the guest:  run by run.sh with the gpuvirt binary and the module directory as arguments
# Proves: types, create (upper-case UUID stored lower case), list, remove; the kernel's errnos beside
# gpuvirt's messages (EEXIST, EUSERS, ENOSPC, EINVAL); the blocking remove of an mdev a process holds;
# that mdevctl-format definitions start the same devices through gpuvirt and through Debian's mdevctl;
# and, with our own test module (kmod/), a PCI function as mdev parent (the layout of GRID/GVT-g hosts).
# Prints timings and "RIG-MDEV PASS" or "RIG-MDEV FAIL: reason".
set -u
export LC_ALL=C

if [ "${RIG_GUEST:-0}" != 1 ]; then
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    [ $# -ge 1 ] || { echo "usage: $0 GPUVIRT [run.sh options]" >&2; exit 2; }
    bin=$(realpath -e "$1") || { echo "no such binary: $1" >&2; exit 2; }
    shift
    command -v qemu-system-x86_64 >/dev/null || [ "$(id -u)" = 0 ] || { echo "SKIP: no qemu and not root"; exit 77; }
    GPUVIRT_RIG_QUIET=1 "$here/setup.sh" >&2 || { echo "RIG-MDEV FAIL: rig setup"; exit 1; }
    mods=$("$here/mdev-samples.sh") || { echo "RIG-MDEV FAIL: building the sample mdev parents"; exit 1; }
    out=$("$here/run.sh" --timeout "${GPUVIRT_RIG_TIMEOUT:-300}" "$@" "$here/mdev.sh" "$bin" "$mods")
    rc=$?
    printf '%s\n' "$out"
    [ $rc = 0 ] && printf '%s\n' "$out" | grep -aq '^RIG-MDEV PASS' && exit 0
    exit 1
fi

# ------------------------------------------------------------------ guest side
G=$1 MODS=$2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1
MB=/sys/class/mdev_bus
holder=
cleanup() {
    [ -n "$holder" ] && kill "$holder" 2>/dev/null && wait "$holder" 2>/dev/null
    for d in /sys/bus/mdev/devices/*; do [ -e "$d/remove" ] && echo 1 >"$d/remove" 2>/dev/null; done
}
fail() { echo "RIG-MDEV FAIL: $*"; cleanup; exit 1; }
ok() { echo "  ok: $*"; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
run() { OUT=$("$G" "$@" 2>/tmp/err); RC=$?; ERR=$(cat /tmp/err); }
wr() { ( printf '%s\n' "$2" >"$1" ) 2>&1; }
group_of() { basename "$(readlink "/sys/bus/mdev/devices/$1/iommu_group")"; }

echo "rig-mdev: kernel $(uname -r), gpuvirt $G"
# mbochs: 3 types (4/16/64 MB), the driver counts (ENOSPC) its memory: the parameter named "count" is
# megabytes (96: one mbochs-large); mdpy: the mdev core counts (EUSERS), count=1
insmod "$MODS/mbochs.ko" count=96 || fail "insmod mbochs"
insmod "$MODS/mdpy.ko" count=1 || fail "insmod mdpy"
insmod "$MODS/mtty.ko" || fail "insmod mtty"
for p in mbochs mdpy mtty; do [ -d "$MB/$p/mdev_supported_types" ] || fail "no parent $p"; done
ok "sample parents loaded: $(ls "$MB" | tr '\n' ' ')"

run --json vgpu types
[ $RC = 0 ] || fail "vgpu types: $ERR"
[ "$(jq -r '[.[] | .parent] | sort | join(",")' <<<"$OUT")" = mbochs,mdpy,mtty ] || fail "parents: $OUT"
jq -e '.[] | select(.parent == "mbochs") | .kind == "mdev" and (.types | map(.id) | sort) == ["mbochs-large","mbochs-medium","mbochs-small"] and all(.types[]; .device_api == "vfio-pci")' <<<"$OUT" >/dev/null || fail "mbochs types: $OUT"
jq -e '.[] | select(.parent == "mtty") | all(.types[]; .description == null)' <<<"$OUT" >/dev/null || fail "mtty has no description: $OUT"
large_avail=$(jq -r '.[] | select(.parent == "mbochs") | .types[] | select(.id == "mbochs-large") | .available_instances' <<<"$OUT")
[ "$large_avail" = 1 ] || fail "mbochs-large with mem=96: 1 instance expected, got $large_avail"
echo "$(run vgpu types mbochs; echo "$OUT")" | sed 's/^/    /'
ok "vgpu types: mbochs/mdpy/mtty with their types"

U1=3F1C4A52-7C2E-4B8A-9D0E-1A2B3C4D5E6F; u1=${U1,,}
t0=$(ms); run --json vgpu create mbochs mbochs-large --uuid $U1 --persist --auto; t1=$(ms)
[ $RC = 0 ] && [ "$(jq -r .id <<<"$OUT")" = "$u1" ] || fail "create: rc=$RC $ERR"
[ -e "/sys/bus/mdev/devices/$u1" ] && [ -e "/dev/vfio/$(group_of $u1)" ] || fail "device $u1 / its group missing"
[ "$(jq -r .mdev_type /etc/mdevctl.d/mbochs/$u1)" = mbochs-large ] || fail "definition not written"
echo "  timing: vgpu create (mbochs-large): $((t1 - t0)) ms"
ok "create with an upper-case UUID: /sys/bus/mdev/devices/$u1, /dev/vfio/$(group_of $u1)"

# EEXIST: gpuvirt says so before writing; the kernel agrees (any parent, any letter case)
run vgpu create mdpy mdpy-vga --uuid $U1
[ $RC = 1 ] && grep -q "already in use" <<<"$ERR" || fail "EEXIST: rc=$RC $ERR"
e=$(wr "$MB/mdpy/mdev_supported_types/mdpy-vga/create" "$U1")
grep -q "File exists" <<<"$e" || fail "kernel: duplicate UUID should be EEXIST: $e"
ok "duplicate UUID: gpuvirt '${ERR#error: }' / kernel EEXIST"
# ENOSPC: mbochs counts its memory itself
run vgpu create mbochs mbochs-large
[ $RC = 1 ] && grep -q "no instance of mbochs-large left" <<<"$ERR" || fail "ENOSPC precheck: rc=$RC $ERR"
e=$(wr "$MB/mbochs/mdev_supported_types/mbochs-large/create" "$(cat /proc/sys/kernel/random/uuid)")
grep -q "No space left" <<<"$e" || fail "kernel: mbochs exhausted should be ENOSPC: $e"
ok "mbochs exhausted: gpuvirt refuses / kernel ENOSPC"
# EUSERS: the mdev core counts mdpy's instances
run vgpu create mdpy mdpy-vga
[ $RC = 0 ] || fail "mdpy create: $ERR"
u_mdpy=$(jq -r '.[] | select(.parent == "mdpy") | .id' <<<"$("$G" --json vgpu list)")
run vgpu create mdpy mdpy-xga
[ $RC = 1 ] && grep -q "no instance of mdpy-xga left" <<<"$ERR" || fail "EUSERS precheck: rc=$RC $ERR"
e=$(wr "$MB/mdpy/mdev_supported_types/mdpy-xga/create" "$(cat /proc/sys/kernel/random/uuid)")
grep -q "Too many users" <<<"$e" || fail "kernel: mdpy exhausted should be EUSERS: $e"
ok "mdpy exhausted: gpuvirt refuses / kernel EUSERS"
# EINVAL: a malformed UUID
run vgpu create mtty mtty-1 --uuid 3f1c4a52-7c2e-4b8a-9d0e
[ $RC = 2 ] && grep -q "is not a UUID" <<<"$ERR" || fail "malformed UUID: rc=$RC $ERR"
e=$(wr "$MB/mtty/mdev_supported_types/mtty-1/create" "3f1c4a52-7c2e-4b8a-9d0e")
grep -q "Invalid argument" <<<"$e" || fail "kernel: malformed UUID should be EINVAL: $e"
ok "malformed UUID: gpuvirt exit 2 / kernel EINVAL"
t0=$(ms); run vgpu remove "$u_mdpy"; t1=$(ms)
[ $RC = 0 ] && [ ! -e "/sys/bus/mdev/devices/$u_mdpy" ] || fail "remove mdpy: $ERR"
echo "  timing: vgpu remove (mdpy): $((t1 - t0)) ms"

# a process holds the mbochs device as QEMU would: listed, remove refused; forced remove blocks
g=$(group_of $u1)
: >/tmp/hold
python3 "$HERE/vfio-hold.py" "$g" "$u1" >/tmp/hold 2>&1 &
holder=$!
for _ in $(seq 50); do grep -q HELD /tmp/hold && break; sleep 0.1; done
grep -q HELD /tmp/hold || fail "could not hold the device: $(cat /tmp/hold)"
run --json vgpu list
jq -e ".[] | select(.id == \"$u1\") | .active and .defined and .start == \"auto\" and .parent == \"mbochs\" and .type == \"mbochs-large\" and (.held_by | test(\"^$holder \"))" <<<"$OUT" >/dev/null || fail "list: $OUT"
ok "vgpu list: $u1 active, defined auto, held by $(jq -r ".[] | select(.id == \"$u1\") | .held_by" <<<"$OUT")"
run vgpu remove $u1
[ $RC = 1 ] && grep -q "held open by $holder" <<<"$ERR" || fail "remove of a held mdev: rc=$RC $ERR"
[ -e "/sys/bus/mdev/devices/$u1" ] || fail "refused remove removed it"
ok "remove refused while held"
"$G" vgpu remove $u1 --force --keep-definition >/tmp/rm.out 2>&1 &
rm_pid=$!
sleep 2
kill -0 $rm_pid 2>/dev/null || fail "forced remove of a held mdev did not block: $(cat /tmp/rm.out)"
# meanwhile the sysfs link may be gone, but the UUID is still taken
e=$(wr "$MB/mbochs/mdev_supported_types/mbochs-small/create" "$u1")
grep -q "File exists" <<<"$e" || fail "UUID reusable while the removal is blocked: $e"
ok "forced remove blocks while held (UUID still taken: EEXIST)"
kill "$holder"; wait "$holder" 2>/dev/null; holder=
wait $rm_pid || fail "forced remove failed: $(cat /tmp/rm.out)"
[ ! -e "/sys/bus/mdev/devices/$u1" ] && [ ! -e "/dev/vfio/$g" ] || fail "not removed after the holder closed"
ok "remove completed once the holder closed"

# definitions start the same devices: gpuvirt's start-defined and Debian's mdevctl
t0=$(ms); run --json vgpu start-defined; t1=$(ms)
[ $RC = 0 ] && jq -e ".[] | select(.id == \"$u1\") | .result == \"started\"" <<<"$OUT" >/dev/null || fail "start-defined: $OUT $ERR"
[ "$(basename "$(readlink /sys/bus/mdev/devices/$u1/mdev_type)")" = mbochs-large ] || fail "started with another type"
echo "  timing: vgpu start-defined (1 definition): $((t1 - t0)) ms"
ok "gpuvirt start-defined started $u1 from its mdevctl definition"
run --json vgpu start-defined
jq -e ".[] | select(.id == \"$u1\") | .result == \"active\"" <<<"$OUT" >/dev/null || fail "second start-defined: $OUT"
if command -v mdevctl >/dev/null; then
    mdevctl list | grep -q "$u1 mbochs mbochs-large auto (defined)" || fail "mdevctl list: $(mdevctl list 2>&1)"
    mdevctl stop -u $u1 || fail "mdevctl stop"
    [ ! -e "/sys/bus/mdev/devices/$u1" ] || fail "mdevctl stop left it"
    mdevctl start -u $u1 || fail "mdevctl start from gpuvirt's definition"
    [ "$(basename "$(readlink /sys/bus/mdev/devices/$u1/mdev_type)")" = mbochs-large ] || fail "mdevctl started another type"
    ok "mdevctl lists, stops and starts $u1 from gpuvirt's definition"
    U3=8e0c2a9b-1d4f-4e6a-8b7c-0f1e2d3c4b5a
    mdevctl define -u $U3 -p mtty -t mtty-2 --auto || fail "mdevctl define"
    run --json vgpu start-defined
    jq -e ".[] | select(.id == \"$U3\") | .result == \"started\"" <<<"$OUT" >/dev/null || fail "start of mdevctl's definition: $OUT"
    mdevctl list | grep -q "$U3 mtty mtty-2" || fail "mdevctl does not see $U3 active"
    ok "gpuvirt starts mdevctl's definition $U3 (mtty-2); mdevctl sees it"
    run vgpu remove $U3
    [ $RC = 0 ] && ! mdevctl list --defined | grep -q $U3 || fail "remove $U3 with its definition"
else
    echo "  (mdevctl not installed on the host: its part skipped)"
fi

# ---- a PCI parent, as on GRID and GVT-g hosts: our test module hangs mdevs off the bochs-display
PCI=/sys/bus/pci/devices
disp=
for d in "$PCI"/*; do
    b=$(basename "$d")
    [ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/class")" = 0x038000 ] || continue
    # the single one (the other bochs-display is function 1 of a multifunction pair)
    [ "${b##*.}" = 0 ] && [ ! -e "$PCI/${b%.*}.1" ] && disp=$b
done
[ -n "$disp" ] || fail "no single bochs-display"
insmod "$MODS/gpuvirt_mdev_test.ko" bdf="$disp" units=8 || fail "insmod gpuvirt_mdev_test bdf=$disp"
[ -d "$PCI/$disp/mdev_supported_types" ] && [ -e "$MB/$disp" ] || fail "$disp is not an mdev parent"
short=${disp#0000:}
run --json vgpu types "${short^^}"
[ $RC = 0 ] || fail "vgpu types $short: $ERR"
jq -e ".[0].parent == \"$disp\" and (.[0].types | map(.id)) == [\"bochs-drm-1q\",\"bochs-drm-2q\",\"bochs-drm-4q\"] and (.[0].types[1] | .framebuffer_mb == 2048 and .max_instances == 4 and .available_instances == 4 and .name == \"GPUVIRT-TEST-2Q\")" <<<"$OUT" >/dev/null || fail "PCI parent types: $OUT"
run --json show "$disp"
jq -e '.modes.mdev.types | length == 3' <<<"$OUT" >/dev/null || fail "show: no mdev types on $disp: $OUT"
ok "PCI parent $disp: types bochs-drm-{1q,2q,4q}, framebuffer/max instances parsed; 'show' sees them"
t0=$(ms); run --json vgpu create "$short" bochs-drm-2q --persist --auto; t1=$(ms)
[ $RC = 0 ] || fail "create on $disp: $ERR"
u4=$(jq -r .id <<<"$OUT")
[ "$(basename "$(dirname "$(readlink -f /sys/bus/mdev/devices/$u4)")")" = "$disp" ] || fail "$u4 not under $disp"
[ -f "/etc/mdevctl.d/$disp/$u4" ] || fail "definition not under /etc/mdevctl.d/$disp"
echo "  timing: vgpu create (PCI parent): $((t1 - t0)) ms"
ok "create on the PCI parent: $u4 under $PCI/$disp, definition in /etc/mdevctl.d/$disp"
# one type at a time: gpuvirt sees no instance left; the driver says EINVAL
run vgpu create "$disp" bochs-drm-1q
[ $RC = 1 ] && grep -q "no instance of bochs-drm-1q left" <<<"$ERR" || fail "one type: rc=$RC $ERR"
e=$(wr "$PCI/$disp/mdev_supported_types/bochs-drm-1q/create" "$(cat /proc/sys/kernel/random/uuid)")
grep -q "Invalid argument" <<<"$e" || fail "driver: another type should be EINVAL: $e"
ok "another type: gpuvirt refuses / driver EINVAL"
for _ in 1 2 3; do run vgpu create "$disp" bochs-drm-2q; [ $RC = 0 ] || fail "2q: $ERR"; done
run vgpu create "$disp" bochs-drm-2q
[ $RC = 1 ] && grep -q "no instance of bochs-drm-2q left" <<<"$ERR" || fail "budget: rc=$RC $ERR"
e=$(wr "$PCI/$disp/mdev_supported_types/bochs-drm-2q/create" "$(cat /proc/sys/kernel/random/uuid)")
grep -q "No space left" <<<"$e" || fail "driver: budget exhausted should be ENOSPC: $e"
ok "budget used up by 4 x 2q: gpuvirt refuses / driver ENOSPC"
run --json vgpu list
[ "$(jq "[.[] | select(.parent == \"$disp\" and .active)] | length" <<<"$OUT")" = 4 ] || fail "list: $OUT"
# boot start of the PCI parent's definition
run vgpu remove "$u4" --keep-definition
run --json vgpu start-defined
jq -e ".[] | select(.id == \"$u4\") | .result == \"started\" and .parent == \"$disp\"" <<<"$OUT" >/dev/null || fail "start-defined on the PCI parent: $OUT"
for u in $(jq -r ".[] | select(.parent == \"$disp\") | .id" <<<"$("$G" --json vgpu list)"); do
    run vgpu remove "$u"; [ $RC = 0 ] || fail "remove $u: $ERR"
done
[ ! -e "/etc/mdevctl.d/$disp/$u4" ] || fail "definition left"
rmmod gpuvirt_mdev_test || fail "rmmod"
ok "start-defined and remove on the PCI parent; module unloaded"

run vgpu remove $u1
[ $RC = 0 ] && [ ! -e /etc/mdevctl.d/mbochs/$u1 ] || fail "final remove: $ERR"
run vgpu list
grep -q "No vGPUs" <<<"$OUT" || fail "leftovers: $OUT"
cleanup
echo "RIG-MDEV PASS"
