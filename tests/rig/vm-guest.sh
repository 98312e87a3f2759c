#!/bin/bash
# Guest side of the rig's vm suite (tests/rig/vm.sh): libvirtd + a nested domain, then gpuvirt
# vm attach/detach --live cycles with a single display function and an SR-IOV VF.
# With GPUVIRTD set (the initrd then carries gpuvirt-agent: tests/rig/vm.sh), the blind spot: the agent
# in the nested domain reports its NVML through the hot-plugged channel and gpuvirtd here exports it.
#   vm-guest.sh GPUVIRT      (NESTED=dir with vmlinux and initrd.cpio, GPUVIRTD=gpuvirtd or empty)
set -u
GPUVIRT=$1
PCI=/sys/bus/pci/devices
V="virsh -q -c qemu:///system"
fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
drv() { local l; l=$(readlink "$PCI/$1/driver" 2>/dev/null) && echo "${l##*/}" || echo none; }
now() { date +%s.%N; }
since() { echo "$(now) $1" | awk '{printf "%.2f", $1 - $2}'; }
GPUVIRTD=${GPUVIRTD:-}
dpid=
finish() { [ -n "$dpid" ] && kill "$dpid" 2>/dev/null; $V destroy nested >/dev/null 2>&1; kill "$(cat /run/libvirtd.pid 2>/dev/null)" 2>/dev/null; echo "GUEST-VERDICT fails=$fails"; exit $((fails > 0)); }

# ---- libvirtd in the guest ----
for d in /var/lib/libvirt /var/log/libvirt /var/cache/libvirt; do mkdir -p $d && mount -t tmpfs tmpfs $d; done
grep -q '^libvirt-qemu:' /etc/passwd || echo 'libvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin' >>/etc/passwd
for g in libvirt-qemu:64055 kvm:64056 libvirt:64057; do grep -q "^${g%%:*}:" /etc/group || echo "${g%%:*}:x:${g##*:}:" >>/etc/group; done
mkdir -p /etc/libvirt
printf 'user = "root"\ngroup = "root"\nsecurity_driver = "none"\nremember_owner = 0\n' >/etc/libvirt/qemu.conf
virtlogd -d
libvirtd -d -p /run/libvirtd.pid
t0=$(now)
for _ in $(seq 120); do $V version >/dev/null 2>&1 && break; sleep 0.5; done
$V version >/dev/null 2>&1 && pass "libvirtd answers ($(since "$t0") s)" || { fail "libvirtd did not start"; finish; }

# ---- the devices: the lone bochs-display, and an SR-IOV VF of the nvme ----
single=""
nvme=""
for d in $PCI/*; do
        b=${d##*/}
        v=$(cat "$d/vendor") c=$(cat "$d/class")
        if [ "$v" = 0x1234 ] && [ "$c" = 0x038000 ] && [ "$(ls "$d/iommu_group/devices" | wc -l)" = 1 ]; then single=$b; fi
        if [ "$v" = 0x1b36 ] && [ -e "$d/sriov_totalvfs" ]; then nvme=$b; fi
done
echo 0 >$PCI/$nvme/sriov_drivers_autoprobe && echo 2 >$PCI/$nvme/sriov_numvfs
vf=$(basename "$(readlink $PCI/$nvme/virtfn0)")
[ -n "$single" ] && [ -n "$vf" ] && pass "devices: display $single, VF $vf" || { fail "devices not found ($single, $vf)"; finish; }

# ---- the nested domain: same kernel through PVH, a shell that answers hot-unplug ----
cat >/tmp/nested.xml <<EOF
<domain type='qemu'>
  <name>nested</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$NESTED/vmlinux</kernel>
    <initrd>$NESTED/initrd.cpio</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet loglevel=3</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'><source path='/tmp/nested-console.log'/><target port='0'/></serial>
    <controller type='virtio-serial' index='0'/>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
$V define /tmp/nested.xml >/dev/null || { fail "define nested"; finish; }
t0=$(now)
$V start nested >/dev/null || { fail "start nested: $($V start nested 2>&1)"; finish; }
for _ in $(seq 600); do grep -aq NESTED-UP /tmp/nested-console.log 2>/dev/null && break; sleep 0.5; done
grep -aq NESTED-UP /tmp/nested-console.log && pass "nested kernel up" || { fail "nested kernel did not come up"; tail -5 /tmp/nested-console.log; finish; }
echo "TIMING nested domain start to userspace: $(since "$t0") s"

# ---- cycles ----
cycle() { # bdf, native driver, round
        local bdf=$1 native=$2 n=$3 t out
        t=$(now)
        out=$("$GPUVIRT" --json vm attach --live nested "$bdf" 2>&1) || { fail "attach $bdf #$n: $out"; return; }
        echo "TIMING attach $bdf #$n: $(since "$t") s"
        [ "$(drv "$bdf")" = vfio-pci ] && pass "attach $bdf #$n: on vfio-pci" || fail "attach $bdf #$n: driver $(drv "$bdf")"
        $V dumpxml nested | grep -q "bus='0x${bdf:5:2}' slot='0x${bdf:8:2}' function='0x${bdf:11:1}'" &&
                pass "attach $bdf #$n: in the live XML" || fail "attach $bdf #$n: not in the live XML"
        local grp; grp=$(basename "$(readlink $PCI/$bdf/iommu_group)")
        ls -l /proc/[0-9]*/fd 2>/dev/null | grep -q "/dev/vfio/$grp" && pass "attach $bdf #$n: QEMU holds /dev/vfio/$grp" ||
                fail "attach $bdf #$n: nobody holds /dev/vfio/$grp"
        "$GPUVIRT" --json vm list >/tmp/list.json 2>/dev/null
        jq -e --arg b "$bdf" '.units[] | select(.functions | index($b)) | .held_by == "nested"' /tmp/list.json >/dev/null &&
                pass "vm list: nested holds $bdf" || fail "vm list does not show nested holding $bdf"
        out=$("$GPUVIRT" passthrough disable "$bdf" 2>&1)
        [ $? = 1 ] && [ "$(drv "$bdf")" = vfio-pci ] && pass "passthrough disable refused while nested runs with $bdf" ||
                fail "passthrough disable of a held device: $out"
        added=$((added + 1))
        for _ in $(seq 120); do [ "$(grep -ac NESTED-PCI-ADD /tmp/nested-console.log)" -ge $added ] && break; sleep 0.5; done
        [ "$(grep -ac NESTED-PCI-ADD /tmp/nested-console.log)" -ge $added ] && pass "attach $bdf #$n: the nested kernel sees it" ||
                fail "attach $bdf #$n: the nested kernel did not see the device"
        t=$(now)
        out=$("$GPUVIRT" --json vm detach --live --timeout 120 nested "$bdf" 2>&1) || { fail "detach $bdf #$n: $out"; return; }
        echo "TIMING detach $bdf #$n (guest unplug included): $(since "$t") s"
        $V dumpxml nested | grep -q "bus='0x${bdf:5:2}' slot='0x${bdf:8:2}' function='0x${bdf:11:1}'" &&
                fail "detach $bdf #$n: still in the live XML" || pass "detach $bdf #$n: gone from the live XML"
        [[ "$(drv "$bdf")" =~ ^($native)$ ]] && pass "detach $bdf #$n: given back ($(drv "$bdf"))" || fail "detach $bdf #$n: driver $(drv "$bdf")"
}
added=0
for n in 1 2 3; do cycle "$single" bochs-drm $n; done
# an nvme VF created without autoprobe has no driver; probing it on release may find nvme
for n in 1 2; do cycle "$vf" 'none|nvme' $n; done
grep -a "NESTED-PCI" /tmp/nested-console.log | tr -d '\r' | sed 's/^/  nested: /'
adds=$(grep -ac NESTED-PCI-ADD /tmp/nested-console.log) dels=$(grep -ac NESTED-PCI-DEL /tmp/nested-console.log)
[ "$adds" = 5 ] && [ "$dels" = 5 ] && pass "the nested kernel saw 5 hot-plugs and 5 hot-unplugs" ||
        fail "nested kernel saw $adds hot-plugs and $dels hot-unplugs (expected 5 and 5)"

# ---- the blind spot: gpuvirt-agent in the nested domain, gpuvirtd here ----
if [ -n "$GPUVIRTD" ]; then
        M=http://127.0.0.1:9835
        t=$(now)
        out=$("$GPUVIRT" --json vm attach --live --agent-channel nested "$single" 2>&1) &&
                pass "attach $single with the agent channel ($(since "$t") s)" || fail "attach --agent-channel: $out"
        $V dumpxml nested | grep -q "name='org.gpuvirt.agent.0'" && pass "the channel is in the live XML" ||
                fail "no agent channel in the live XML"
        sock=$($V dumpxml nested | tr -d '\n' | grep -o "<channel type='unix'>.*org.gpuvirt.agent.0" | grep -o "path='[^']*'" | head -1)
        echo "  channel socket: $sock"
        for _ in $(seq 240); do grep -aq NESTED-AGENT-PORT /tmp/nested-console.log && break; sleep 0.5; done
        grep -aq NESTED-AGENT-PORT /tmp/nested-console.log &&
                pass "the nested kernel gave the agent its port ($(grep -a NESTED-AGENT-PORT /tmp/nested-console.log | tr -d '\r' | head -1))" ||
                fail "the nested domain has no org.gpuvirt.agent.0 port"
        # gpuvirtd's default period (10 s): a guest is up while its last line is under 3 periods + 5 s old, and
        # the agent in the nested domain (TCG inside TCG, ASan) takes seconds for each of its lines
        # the rig's kernel brings no interface up; gpuvirtd listens on loopback
        ip link set lo up || busybox ip link set lo up
        "$GPUVIRTD" -v --listen 127.0.0.1:9835 2>/tmp/gpuvirtd.err &
        dpid=$!
        t=$(now)
        m=
        : >/tmp/poll.log
        for _ in $(seq 300); do
                rm -f /tmp/m.txt
                code=$(curl -s -o /tmp/m.txt -w '%{http_code}' --max-time 20 $M/metrics)
                crc=$?
                m=$(cat /tmp/m.txt 2>/dev/null)
                echo "$(since "$t") curl=$crc http=$code bytes=$(cat /tmp/m.txt 2>/dev/null | wc -c) $(grep -sE '^gpuvirt_guest_agent_(up|channel)' /tmp/m.txt | tr '\n' ' ')" >>/tmp/poll.log
                [ "$crc" = 0 ] && [ "$code" = 200 ] && grep -q '^gpuvirt_guest_agent_up{domain="nested"} 1$' <<<"$m" && break
                [ "$(since "$t" | cut -d. -f1)" -lt "${AGENT_WAIT:-300}" ] && kill -0 "$dpid" 2>/dev/null || break
                sleep 2
        done
        if grep -qx 'gpuvirt_guest_agent_up{domain="nested"} 1' <<<"$m"; then
                pass "gpuvirtd: the nested domain's agent is up ($(since "$t") s after start)"
        else
                fail "gpuvirtd: agent not up; /v1/units: $(curl -s --max-time 20 $M/v1/units | jq -c '.units[].guest // empty' 2>&1 | head -3)"
                echo "  polls (s since start, curl rc, HTTP status, size, guest series):"
                { head -3 /tmp/poll.log; echo ...; tail -4 /tmp/poll.log; } | sed 's/^/    /'
                echo "  gpuvirtd's guest log:"
                grep -a -i guest /tmp/gpuvirtd.err | { head -8; echo ...; tail -8; } | sed 's/^/    /'
                tail -3 /tmp/gpuvirtd.err | sed 's/^/    gpuvirtd: /'
                echo "  the nested console (not PCI):"
                tr -d '\r' </tmp/nested-console.log | grep -av NESTED-PCI | { head -12; echo ...; tail -12; } | sed 's/^/    /'
                kill -TERM "$dpid"; wait "$dpid"; dpid=
                if [ -n "$sock" ]; then
                        p=${sock#path=\'}; p=${p%\'}
                        echo "  reading $p directly for 20 s:"
                        timeout 25 python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(20); t = time.time(); got = b""
try:
    while time.time() - t < 20:
        b = s.recv(65536)
        if not b: print("    end of file"); break
        got += b
except Exception as e: print("    ", e)
print("    %d bytes, %d lines in %.1f s: %r" % (len(got), got.count(b"\n"), time.time() - t, got[:160]))' "$p" 2>&1 | sed 's/^/  /'
                fi
                finish
        fi
        grep -qx 'gpuvirt_guest_agent_channel{domain="nested"} 1' <<<"$m" && pass "gpuvirtd found the channel through libvirt" ||
                fail "gpuvirtd: no channel"
        # the values the fake NVML in the nested domain holds, labelled with the host unit it is
        lab="domain=\"nested\",gpu=\"$single\",unit=\"$single\",guest_bus_id=\"00000000:3B:00.0\""
        for want in "gpuvirt_guest_gpu_utilization_ratio{$lab} 0.730" "gpuvirt_guest_gpu_temperature_celsius{$lab} 61" \
                "gpuvirt_guest_gpu_power_watts{$lab} 150.250" "gpuvirt_guest_gpu_processes{$lab} 1"; do
                grep -qxF "$want" <<<"$m" && pass "gpuvirtd exports $want" || fail "'$want' not in: $(grep guest_gpu <<<"$m")"
        done
        curl -sf $M/v1/units | jq -e --arg b "$single" '.units[] | select(.unit == $b) | .domain == "nested" and .guest.agent_up and .guest.report.utilization_percent == 73' >/dev/null &&
                pass "/v1/units: $single held by nested, the guest's view 73 %" || fail "/v1/units: $(curl -sf $M/v1/units | jq -c '.units[]' | head -3)"
        curl -sf $M/metrics | promtool check metrics && pass "promtool check metrics" || fail "promtool check metrics"
        kill -TERM "$dpid" && wait "$dpid"
        rc=$? dpid=
        [ $rc = 0 ] && pass "gpuvirtd stops cleanly on SIGTERM" || fail "gpuvirtd exited $rc: $(tail -5 /tmp/gpuvirtd.err)"
        ! grep -qE "AddressSanitizer|LeakSanitizer|runtime error" /tmp/gpuvirtd.err /tmp/nested-console.log &&
                pass "gpuvirtd and the nested agent sanitizer-clean" ||
                fail "sanitizer: $(grep -ahE -A5 'AddressSanitizer|LeakSanitizer|runtime error' /tmp/gpuvirtd.err /tmp/nested-console.log | head -20)"
        out=$("$GPUVIRT" --json vm detach --live --timeout 120 nested "$single" 2>&1) && [ "$(drv "$single")" = bochs-drm ] &&
                pass "detach $single: given back" || fail "detach after the agent: $out ($(drv "$single"))"
fi

# a failed live attach is undone: a domain that is not running
out=$("$GPUVIRT" vm attach --live nosuch "$single" 2>&1)
[ $? = 1 ] && [ "$(drv "$single")" = bochs-drm ] && pass "attach to an unknown domain refused, nothing prepared" || fail "unknown domain: $out"
finish
