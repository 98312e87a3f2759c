#!/bin/bash
# gpuvirt rig: meson-independent check. Sets the rig up, then runs the self-test with and
# without the emulated IOMMU. Prints PASS/FAIL lines; exit 0 all passed, 1 a failure,
# 77 (skip) only when QEMU cannot run on this machine at all.
set -u
RIG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TIMEOUT=${GPUVIRT_RIG_TIMEOUT:-75}

if ! command -v qemu-system-x86_64 >/dev/null && [ "$(id -u)" != 0 ]; then
    echo "SKIP: qemu-system-x86_64 is not installed and setup cannot install it without root"
    exit 77
fi

t0=$(date +%s)
if ! out=$("$RIG_DIR/setup.sh" 2>&1); then
    printf '%s\n' "$out"
    echo "FAIL: rig setup"
    exit 1
fi
printf '%s\n' "$out" | grep -a '^rig kernel:'

# Can QEMU (TCG) run here at all? Start a machine-less QEMU and quit it over QMP.
probe=$(printf '%s\n' '{"execute":"qmp_capabilities"}' '{"execute":"quit"}' \
    | timeout 30 qemu-system-x86_64 -machine none -accel tcg -nodefaults -display none -qmp stdio 2>&1)
prc=$?
if [ $prc != 0 ]; then
    printf '%s\n' "$probe" | tail -n 5
    echo "SKIP: qemu-system-x86_64 cannot run on this machine (rc=$prc)"
    exit 77
fi

status=0
for mode in iommu no-iommu; do
    flag=()
    [ $mode = no-iommu ] && flag=(--no-iommu)
    s=$(date +%s)
    out=$("$RIG_DIR/run.sh" "${flag[@]}" --timeout "$TIMEOUT" "$RIG_DIR/selftest.sh" 2>&1)
    rc=$?
    d=$(( $(date +%s) - s ))
    if [ $rc = 0 ] && printf '%s\n' "$out" | grep -aq '^SELFTEST PASS'; then
        echo "PASS: selftest $mode (${d}s)"
    else
        printf '%s\n' "$out" | sed 's/^/    /'
        echo "FAIL: selftest $mode (rc=$rc, ${d}s)"
        status=1
    fi
done
echo "rig check: $([ $status = 0 ] && echo PASS || echo FAIL) in $(( $(date +%s) - t0 ))s"
exit $status
