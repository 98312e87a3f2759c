#!/usr/bin/env bash
# gpuvirt developer entry point. Usage:
#   ./dev.sh demo    install what is missing, build, create a simulated host, run list and check on it, reserve
#                    MIG instances from the GPU pool on it (no server) and release them
#   ./dev.sh test    install what is missing, build with ASan+UBSan, run every test
#   ./dev.sh deps    only install the Debian packages the build and tests need
#   ./dev.sh bench   build optimized and run the benchmarks
set -euo pipefail
cd "$(dirname "$0")"

# Build: meson, ninja, a C compiler, libpci (pci.ids names), json-c, libyaml (mig-parted configs), cmocka (unit tests).
# Tests: pciutils (lspci reads our simulated hosts), jq (asserts on --json output), mdevctl (definitions
# round trip with the real mdevctl).
# VMs (docs/dependencies.md): libvirt-dev + libxml2-dev (build), libvirt-clients (virt-xml-validate),
# libvirt-daemon + libvirt-daemon-driver-qemu (the real libvirtd in the rig), qemu-system-x86.
# python3: the rig's VFIO holder (tests/rig/vfio-hold.py opens a real VFIO device fd) and the fleet's checker.
# The fleet (docs/fleet.md): libcurl4-openssl-dev (etcd's v3 JSON gateway), etcd-server + etcd-client (the tests'
# and the benchmark's 3-member cluster on loopback; etcdctl for the independent checker).
PKGS=(meson ninja-build gcc pkg-config libpci-dev pci.ids libjson-c-dev libyaml-dev libcmocka-dev pciutils jq mdevctl
      libvirt-dev libxml2-dev libvirt-clients libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 python3
      libcurl4-openssl-dev etcd-server etcd-client)

deps() {
        local missing=()
        for p in "${PKGS[@]}"; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
        done
        [ ${#missing[@]} -eq 0 ] && return 0
        echo "Installing: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build() { # dir, extra meson options...
        local dir=$1; shift
        [ -f "$dir/build.ninja" ] || meson setup "$dir" "$@" >/dev/null
        meson compile -C "$dir" >/dev/null
}

case "${1:-}" in
deps)
        deps ;;
demo)
        deps
        build build
        host=${2:-/tmp/gpuvirt-demo-host}
        rm -rf "$host"
        ./build/src/gpuvirt sim create "$host" --profile dgx-a100
        echo
        echo "\$ gpuvirt --root $host list"
        ./build/src/gpuvirt --root "$host" list
        echo
        echo "\$ gpuvirt --root $host check"
        ./build/src/gpuvirt --root "$host" check || true
        # the GPU pool on this one host, no server (the local store): reserve, see it realized, release
        echo
        echo "\$ gpuvirt --root $host fleet request mig:3g.20gb --owner demo --count 2 --same-host"
        id=$(./build/src/gpuvirt --root "$host" --json fleet request mig:3g.20gb --owner demo --count 2 --same-host | jq -r '.[0].id')
        echo "\$ gpuvirt --root $host fleet show $id"
        ./build/src/gpuvirt --root "$host" fleet show "$id"
        echo "\$ gpuvirt --root $host fleet release $id"
        ./build/src/gpuvirt --root "$host" fleet release "$id" ;;
test)
        deps
        # Sanitizers in every test build: a leak, overflow or UB fails the test that caused it.
        build build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true
        # Simulated hosts are many small files and symlinks: on tmpfs, as sysfs is in memory.
        if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
        set +e
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
                meson test -C build-asan --print-errorlogs --num-processes 2 "${@:2}" 2>&1 | tee build-asan/test-output.txt
        rc=${PIPESTATUS[0]}
        set -e
        # One closing line any CI understands, from meson's own summary.
        awk '/^Ok: /{ok=$2} /^Expected Fail: /{ok+=$3} /^Fail: /{f+=$2} /^Unexpected Pass: /{f+=$3}
             /^Timeout: /{f+=$2} /^Skipped: /{s=$2}
             END{printf "Summary: %d passed, %d failed, %d skipped\n", ok, f, s}' build-asan/test-output.txt
        exit $rc ;;
bench)
        deps
        if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
        build build-release --buildtype=release
        ./bench/run.sh build-release ;;
*)
        sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
        exit 2 ;;
esac
