#!/bin/sh
# gpuvirt rig, boot mode: the test stage of one boot, started by the image's rig-harness.service (see
# boot-image.sh) with the host's root at /run/rig/host (read-only) and the run directory at /run/rig/run
# (read-write). Waits until the boot has finished, records how long it took,
# runs the script (a host path, seen under /run/rig/host) with its arguments, writes its output and
# exit status into the run directory (out, rc) and powers the machine off.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HOME=/root
LC_ALL=C
export PATH HOME LC_ALL
umask 022
RUN=/run/rig/run
RIG_HOST=/run/rig/host
. "$RUN/env.sh"   # written by run.sh: RIG_SCRIPT, RIG_DIR, RIG_LOGLEVEL, -e values, and the arguments ("$@")

# The boot is done when no start job is left (running or degraded, a failed unit included).
state=$(timeout 600 systemctl is-system-running --wait 2>/dev/null)
{
    echo "system $state: $(systemd-analyze 2>/dev/null | head -n1)"
} >"$RUN/boot-time.tmp"
# "Startup finished in 2.3s (kernel) + 4.1s (initrd) + 9.6s (userspace) = 16.1s": the rig-run line
sed -n 's/^system \([a-z]*\): Startup finished in \(.*\)$/\2 (system \1)/p' "$RUN/boot-time.tmp" >"$RUN/boot-time"
[ -s "$RUN/boot-time" ] || cp "$RUN/boot-time.tmp" "$RUN/boot-time"
rm -f "$RUN/boot-time.tmp"

if grep -qw intel_iommu=on /proc/cmdline || [ -n "$(ls /sys/class/iommu 2>/dev/null)" ]; then RIG_IOMMU=1; else RIG_IOMMU=0; fi
RIG_GUEST=1 RIG_RUN=$RUN RIG_KVER=$(uname -r)
export RIG_GUEST RIG_BOOT RIG_HOST RIG_IOMMU RIG_KVER RIG_DIR RIG_RUN RIG_SCRIPT RIG_BOOT_STATE="$state"
[ -n "${RIG_LOGLEVEL:-}" ] && dmesg -n "$RIG_LOGLEVEL" 2>/dev/null

cd /
script=$RIG_HOST$RIG_SCRIPT
if [ -x "$script" ]; then
    "$script" "$@" </dev/null >"$RUN/out" 2>&1
else
    /bin/sh "$script" "$@" </dev/null >"$RUN/out" 2>&1
fi
echo $? >"$RUN/rc.tmp" && mv "$RUN/rc.tmp" "$RUN/rc"
sync
# services are not stopped one by one (nothing of the test needs it): processes killed, file systems
# unmounted or read-only, power off
systemctl poweroff --force
