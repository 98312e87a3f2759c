#!/bin/bash
# gpuvirt real-kernel rig: boot the stock Debian kernel under QEMU TCG (emulated Intel VT-d) and run
# GUEST_SCRIPT inside it with the host's root file system shared read-only (tmpfs overlay on top).
# Boot mode (--boot): the guest boots a Debian root file system on a disk with systemd as PID 1 instead,
# and runs GUEST_SCRIPT once the boot has finished (tests/rig/boot-image.sh, guest/boot-stage.sh).
#
# usage: run.sh [options] GUEST_SCRIPT [ARGS...]
#   --boot DISK       boot mode: DISK (qcow2 or raw) holds the root file system
#   --image DIR       boot mode: the vmlinuz and initrd.img to boot (boot-image.sh's directory)
#   --append ARGS     boot mode: the whole kernel command line (default: root=/dev/vda ro console=ttyS0
#                     panic=-1 no_timer_check quiet loglevel=4, and intel_iommu=on iommu=pt unless
#                     --no-iommu)
#   --no-iommu        no -device intel-iommu, no intel_iommu=on (negative control)
#   --timeout SEC     bound the whole boot (default 300); exit 124 when it runs out
#   --mem SIZE        guest RAM (default 1G)
#   --smp N           vCPUs (default 2)
#   -e NAME=VALUE     export NAME=VALUE to the guest script (repeatable)
#   --loglevel N      console log level while the script runs (default 4: errors and worse)
#   --qemu-arg ARG    extra QEMU argument (repeatable), e.g. --qemu-arg -device --qemu-arg ...
#   --log FILE        keep the whole serial console log in FILE
#   --verbose         stream the whole serial console live (stderr) instead of the script's part
#   --keep            keep the run directory (env file, serial log, QEMU stderr)
#   --save DIR        copy the run directory into DIR when the run ends (boot mode: what the guest wrote)
#
# Exit status: the guest script's, 124 on timeout, 125 when the guest never reported a result,
# 126 on usage / setup errors on the host.
set -uo pipefail

RIG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${GPUVIRT_RIG_CACHE:-$RIG_DIR/cache}

usage() { sed -n '2,27s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 126; }
die() { echo "rig-run: ERROR: $*" >&2; exit 126; }

iommu=1 timeout_s=300 mem=1G smp=2 loglevel=4 log= verbose=0 keep=0 disk= image= append= save=
extra_env=() qemu_extra=()
while [ $# -gt 0 ]; do
    case $1 in
    --boot) disk=${2:?}; shift ;;
    --image) image=${2:?}; shift ;;
    --append) append=${2?}; shift ;;
    --no-iommu) iommu=0 ;;
    --timeout) timeout_s=${2:?}; shift ;;
    --timeout=*) timeout_s=${1#*=} ;;
    --mem) mem=${2:?}; shift ;;
    --smp) smp=${2:?}; shift ;;
    -e|--env) extra_env+=("${2:?}"); shift ;;
    --loglevel) loglevel=${2:?}; shift ;;
    --qemu-arg) qemu_extra+=("${2?}"); shift ;;
    --log) log=${2:?}; shift ;;
    --verbose) verbose=1 ;;
    --keep) keep=1 ;;
    --save) save=${2:?}; shift ;;
    -h|--help) usage ;;
    --) shift; break ;;
    -*) echo "rig-run: unknown option $1" >&2; usage ;;
    *) break ;;
    esac
    shift
done
[ $# -ge 1 ] || usage
[[ $timeout_s =~ ^[0-9]+$ ]] || die "--timeout wants seconds"

script=$(realpath -e "$1" 2>/dev/null) || die "no such script: $1"
shift
if [ -n "$disk" ]; then
    disk=$(realpath -e "$disk" 2>/dev/null) || die "no such disk image: $disk"
    [ -n "$image" ] && [ -s "$image/vmlinuz" ] && [ -s "$image/initrd.img" ] ||
        die "--boot needs --image DIR with vmlinuz and initrd.img (tests/rig/boot-image.sh)"
    image=$(cd "$image" && pwd)
    disk_format=raw
    [ "$(head -c 4 "$disk")" = "$(printf 'QFI\373')" ] && disk_format=qcow2
elif [ -n "$image" ] || [ -n "$append" ]; then
    die "--image and --append belong to --boot"
fi
[ -f "$CACHE/current.env" ] || die "rig not set up: run $RIG_DIR/setup.sh first"
CACHE=$(cd "$CACHE" && pwd)
# shellcheck source=/dev/null
. "$CACHE/current.env"

# The guest mounts its own /tmp, /run, /dev (and /dev/shm, /dev/pts) over the shared host root. Host paths
# under them that the guest needs (this directory, the cache, the script, the working directory, and every
# argument or -e value naming an existing file or directory) are bound back into the guest at the same
# path, with the overlay's semantics (writes stay in the guest): the whole first directory below the mount
# point (/tmp/clone for /tmp/clone/build/src/gpuvirt), so a clone anywhere works. /proc and /sys cannot be.
binds=()
guest_mount_of() { # the guest mount point a host path falls under, if any
    local m
    for m in /dev/shm /dev/pts /dev /tmp /run /proc /sys; do
        case $1/ in "$m"/*) echo "$m"; return 0 ;; esac
    done
    return 1
}
need_path() { # host path the guest must see; $2: what it is (for the error), empty for arguments
    local p m top b
    p=$(realpath -e -- "$1" 2>/dev/null) || return 0
    [ -f "$p" ] || [ -d "$p" ] || return 0
    m=$(guest_mount_of "$p") || return 0
    case $m in
    /proc|/sys) [ -n "$2" ] && die "$2 $p is under $m, which the guest cannot share"; return 0 ;;
    esac
    [ "$p" = "$m" ] && return 0
    top=${p#"$m"/}; top=$m/${top%%/*}
    for b in "${binds[@]}"; do [ "$b" = "$top" ] && return 0; done
    binds+=("$top")
}
need_path "$RIG_DIR" "the rig directory"
need_path "$CACHE" "the cache"
need_path "$script" "the script"
cwd=$(pwd -P)
need_path "$cwd" "the working directory"
for a in "$@"; do need_path "$a" ""; done
for kv in "${extra_env[@]}"; do need_path "${kv#*=}" ""; done

command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing: run $RIG_DIR/setup.sh"

mkdir -p "$CACHE/runs"
# failed runs are kept for inspection; drop those older than a day
find "$CACHE/runs" -mindepth 1 -maxdepth 1 -name 'run.*' -mmin +1440 -exec rm -rf {} + 2>/dev/null
run=$(mktemp -d "$CACHE/runs/run.XXXXXX") || die "cannot create a run directory"
chmod 755 "$run"
cleanup() { [ "$keep" = 1 ] || rm -rf "$run"; }

shq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
nonce=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
{
    echo "RIG_SCRIPT=$(shq "$script")"
    echo "RIG_DIR=$(shq "$RIG_DIR")"
    echo "RIG_BOOT=$([ -n "$disk" ] && echo 1 || echo 0)"
    echo "RIG_CWD=$(shq "$cwd")"
    echo "RIG_NONCE=$nonce"
    echo "RIG_KROOT=$(shq "$RIG_KROOT")"
    echo "RIG_LOGLEVEL=$(shq "$loglevel")"
    echo "RIG_BINDS=$( [ ${#binds[@]} -gt 0 ] && shq "$(printf '%s\n' "${binds[@]}")" || echo "''")"
    for kv in "${extra_env[@]}"; do
        name=${kv%%=*}
        [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ && $kv == *=* ]] || die "bad -e $kv (want NAME=VALUE)"
        echo "$name=$(shq "${kv#*=}"); export $name"
    done
    printf 'set --'
    for a in "$@"; do printf ' %s' "$(shq "$a")"; done
    echo
} >"$run/env.sh"

qemu=(qemu-system-x86_64
    -accel tcg,thread=multi -cpu max -machine q35,kernel-irqchip=split -m "$mem" -smp "$smp"
    -display none -vga none -nodefaults -no-reboot -monitor none -serial stdio)
[ "$iommu" = 1 ] && qemu+=(-device intel-iommu,intremap=on,caching-mode=on,device-iotlb=off)
iommu_args=$([ "$iommu" = 1 ] && echo " intel_iommu=on iommu=pt")
if [ -z "$disk" ]; then
    qemu+=(-kernel "$RIG_VMLINUZ" -initrd "$RIG_INITRD"
        -append "console=ttyS0 panic=-1 no_timer_check quiet loglevel=4 rig.dir=$RIG_DIR rig.run=$run$iommu_args"
        -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap
        -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot,bus=pcie.0,addr=0x5)
else
    # Slot 5 as in the plain rig, as one multifunction device (one IOMMU group, so the groups of the
    # other devices keep their numbers): .0 the host root (read-only), .1 the run directory
    # (read-write: env.sh in, the stage's output out), .2 the root disk (/dev/vda).
    qemu+=(-kernel "$image/vmlinuz" -initrd "$image/initrd.img"
        -append "${append:-root=/dev/vda ro console=ttyS0 panic=-1 no_timer_check quiet loglevel=4$iommu_args}"
        -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap
        -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot,bus=pcie.0,addr=0x5.0,multifunction=on
        -fsdev local,id=rigrun,path="$run",security_model=none
        -device virtio-9p-pci,fsdev=rigrun,mount_tag=rigrun,bus=pcie.0,addr=0x5.1
        -drive if=none,id=rootdisk,file="$disk",format="$disk_format"
        -device virtio-blk-pci,drive=rootdisk,bus=pcie.0,addr=0x5.2)
fi
qemu+=(
    # rp1: a VGA (class 0x030000) standing in for a GPU
    -device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,addr=0x2.0
    -device VGA,bus=rp1
    # rp2: a bochs-display (class 0x038000), the single "GPU" the selftest passes through
    -device pcie-root-port,id=rp2,bus=pcie.0,chassis=2,addr=0x3.0
    -device bochs-display,bus=rp2
    # rp3: an SR-IOV capable NVMe (the only SR-IOV device in QEMU 7.2)
    -device pcie-root-port,id=rp3,bus=pcie.0,chassis=3,addr=0x4.0
    -device nvme-subsys,id=subsys0,nqn=gpuvirt-rig
    -device nvme,bus=rp3,serial=pf0,subsys=subsys0,sriov_max_vfs=4,sriov_vq_flexible=8,sriov_vi_flexible=4,max_ioqpairs=10,msix_qsize=5
    # rp4: a multifunction pair in one group, the "GPU + HDMI audio" stand-in
    -device pcie-root-port,id=rp4,bus=pcie.0,chassis=4,addr=0x7.0
    -device VGA,bus=rp4,addr=0.0,multifunction=on
    -device bochs-display,bus=rp4,addr=0.1
    "${qemu_extra[@]}")

serial=$run/serial.log
start=$(date +%s.%N)
if [ "$verbose" = 1 ]; then
    timeout -k 5 "$timeout_s" "${qemu[@]}" </dev/null 2>"$run/qemu.stderr" | tee "$serial" >&2
    qrc=${PIPESTATUS[0]}
else
    timeout -k 5 "$timeout_s" "${qemu[@]}" </dev/null >"$serial" 2>"$run/qemu.stderr"
    qrc=$?
fi
end=$(date +%s.%N)
[ -n "$log" ] && cp "$serial" "$log"
[ -n "$save" ] && mkdir -p "$save" && cp -a "$run/." "$save/"
elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')

# The console carries \r\n and (before the kernel) SeaBIOS escape codes: strip them, match unanchored.
clean() { tr -d '\r' <"$serial" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g'; }
section=$(clean | awk -v b="RIG-BEGIN $nonce" -v e="RIG-END $nonce" '
    index($0, e) { inside = 0; exit }
    inside { print }
    index($0, b) { inside = 1 }')
have_end=$(grep -ac "RIG-END $nonce" "$serial")
result=$(grep -ao 'RIG-RESULT rc=[0-9]*' "$serial" | tail -n1)
initfail=$(grep -ao 'RIG-INIT-FAIL .*' "$serial" | tr -d '\r' | tail -n1)
if [ -n "$disk" ]; then
    # boot mode: guest/boot-stage.sh wrote the script's output and status into the run directory
    [ -f "$run/out" ] && cat "$run/out"
    have_end=0 result=
    if [ -s "$run/rc" ]; then have_end=1; result="RIG-RESULT rc=$(cat "$run/rc")"; fi
elif [ -n "$section" ] || grep -aq "RIG-BEGIN $nonce" "$serial"; then
    printf '%s\n' "$section" | sed '${/^$/d}'
fi

if [ "$have_end" -gt 0 ] && [ -n "$result" ]; then
    rc=${result#RIG-RESULT rc=}
    boot=
    [ -s "$run/boot-time" ] && boot=", $(cat "$run/boot-time")"
    echo "rig-run: guest script exited $rc (boot+run ${elapsed}s, iommu=$iommu, kernel $RIG_KVER$boot)" >&2
    cleanup
    exit "$rc"
fi

keep=1
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    echo "rig-run: TIMEOUT after ${timeout_s}s (no result); serial log: $serial" >&2
    rc=124
else
    echo "rig-run: the guest never reported a result (qemu rc=$qrc, ${elapsed}s); serial log: $serial" >&2
    rc=125
fi
[ -n "$initfail" ] && echo "rig-run: guest init: ${initfail#RIG-INIT-FAIL }" >&2
if [ "$verbose" = 0 ]; then
    echo "---- last lines of the serial console ----" >&2
    clean | grep -av '^[[:space:]]*$' | tail -n 30 >&2
    [ -s "$run/qemu.stderr" ] && { echo "---- qemu stderr ----" >&2; tail -n 20 "$run/qemu.stderr" >&2; }
fi
exit "$rc"
