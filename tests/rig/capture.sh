#!/bin/bash
# `gpuvirt capture` of the rig guest: the real kernel's view of the rig's machine, as it boots (no VFs,
# every display on bochs-drm), for tests/captures/.
#   on the host:   tests/rig/capture.sh GPUVIRT DIR [run.sh options, e.g. --no-iommu]
#   in the guest:  run by run.sh with the gpuvirt binary as argument
# The guest captures into its tmpfs and prints the capture as a base64 tar between markers; the host
# unpacks it into DIR (which must not exist or be empty, as for gpuvirt capture itself).
set -u
export LC_ALL=C

if [ "${RIG_GUEST:-0}" != 1 ]; then
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    [ $# -ge 2 ] || { echo "usage: $0 GPUVIRT DIR [run.sh options]" >&2; exit 2; }
    bin=$(realpath -e "$1") || { echo "no such binary: $1" >&2; exit 2; }
    dir=$2
    shift 2
    if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then echo "$dir exists and is not empty" >&2; exit 2; fi
    GPUVIRT_RIG_QUIET=1 "$here/setup.sh" >&2 || { echo "RIG-CAPTURE FAIL: rig setup"; exit 1; }
    out=$("$here/run.sh" --timeout "${GPUVIRT_RIG_TIMEOUT:-240}" --loglevel 1 "$@" "$here/capture.sh" "$bin")
    rc=$?
    [ $rc = 0 ] || { printf '%s\n' "$out"; echo "RIG-CAPTURE FAIL: the guest exited $rc"; exit 1; }
    mkdir -p "$dir" &&
        printf '%s\n' "$out" | sed -n '/^RIG-CAPTURE-TAR-BEGIN$/,/^RIG-CAPTURE-TAR-END$/{//!p}' |
        base64 -d | tar -C "$dir" -xzf - ||
        { echo "RIG-CAPTURE FAIL: cannot unpack the capture"; exit 1; }
    printf '%s\n' "$out" | grep -av '^[A-Za-z0-9+/=]*$' | grep -av '^RIG-CAPTURE-TAR-'
    echo "RIG-CAPTURE PASS: $(find "$dir" -type f -o -type l | wc -l) files and links in $dir"
    exit 0
fi

# ------------------------------------------------------------------ guest side
G=$1
cap=$(mktemp -d /tmp/capture.XXXXXX)/rig
"$G" capture "$cap" || exit 1
echo "RIG-CAPTURE-TAR-BEGIN"
tar -C "$cap" --owner=0 --group=0 --numeric-owner --sort=name --mtime=@0 -czf - . | base64 -w 76
echo "RIG-CAPTURE-TAR-END"
