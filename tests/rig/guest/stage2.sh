#!/bin/sh
# gpuvirt rig: guest PID 1 after switch_root (runs from the shared host tree with the host's /bin/sh).
# Mounts the pseudo file systems, runs the test script and reports its exit status.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HOME=/root
export PATH HOME
umask 022

off() {
    sync
    /bin/busybox poweroff -f 2>/dev/null
    echo o >/proc/sysrq-trigger
    sleep 10
}
fail() { echo "RIG-INIT-FAIL $*"; off; }

rm -f /.rig-stage2
# The overlay without its submounts: host paths under /tmp, /run and /dev stay reachable through it.
mkdir -p /.rig-root && mount --bind / /.rig-root || fail "bind the root"
# The environment file written by run.sh (RIG_BINDS: host paths to bind back after our own mounts).
[ -n "$RIG_RUN" ] && [ -f "/.rig-root$RIG_RUN/env.sh" ] || fail "run directory $RIG_RUN not visible in the guest"
. "/.rig-root$RIG_RUN/env.sh"   # sets RIG_SCRIPT, RIG_CWD, RIG_NONCE, RIG_KROOT, RIG_LOGLEVEL, RIG_BINDS, extras, "$@"

mount -t tmpfs -o mode=0755,nosuid,nodev rig-run /run || fail "mount /run"
mount -t tmpfs -o mode=1777,nosuid,nodev rig-tmp /tmp || fail "mount /tmp"
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mkdir -p /var/tmp /run/lock
hostname rig 2>/dev/null

# Host paths the mounts above hide (a clone under /tmp): back at their own path.
printf '%s\n' "$RIG_BINDS" | while IFS= read -r p; do
    [ -n "$p" ] || continue
    if [ -d "/.rig-root$p" ]; then mkdir -p "$p"; else mkdir -p "${p%/*}" && : >>"$p"; fi
    mount --bind "/.rig-root$p" "$p" || fail "bind $p"
done
umount -l /.rig-root && rmdir /.rig-root

# Full module tree of the rig kernel, so that modprobe works in the guest.
if [ -n "$RIG_KROOT" ] && [ -d "$RIG_KROOT/lib/modules/$RIG_KVER" ]; then
    mkdir -p "/lib/modules/$RIG_KVER" && mount --bind "$RIG_KROOT/lib/modules/$RIG_KVER" "/lib/modules/$RIG_KVER"
fi

modprobe -q configfs 2>/dev/null
mount -t configfs configfs /sys/kernel/config 2>/dev/null

if grep -qw intel_iommu=on /proc/cmdline; then RIG_IOMMU=1; else RIG_IOMMU=0; fi
RIG_GUEST=1
export RIG_GUEST RIG_IOMMU RIG_KVER RIG_DIR RIG_RUN RIG_SCRIPT RIG_CWD

[ -n "$RIG_LOGLEVEL" ] && dmesg -n "$RIG_LOGLEVEL" 2>/dev/null

cd "$RIG_CWD" 2>/dev/null || cd /
echo "RIG-BEGIN $RIG_NONCE"
if [ -x "$RIG_SCRIPT" ]; then
    "$RIG_SCRIPT" "$@" </dev/null 2>&1
else
    /bin/sh "$RIG_SCRIPT" "$@" </dev/null 2>&1
fi
rc=$?
echo
echo "RIG-END $RIG_NONCE"
echo "RIG-RESULT rc=$rc"
off
