#!/usr/bin/env bash
# gpuvirt developer entry point. Usage:
#   ./dev.sh demo    install what is missing, build, create a simulated host, run list and check on it, reserve
#                    MIG instances from the GPU pool on it (no server) and release them
#   ./dev.sh test    install what is missing, build with ASan+UBSan, run every test
#   ./dev.sh deps    only install the Debian packages the build and tests need
#   ./dev.sh bench   build optimized and run the benchmarks
#   ./dev.sh fuzz [SECONDS]  run every libFuzzer target (clang build in build-fuzz/) SECONDS each (default 300)
set -euo pipefail
cd "$(dirname "$0")"

# Build: meson, ninja, a C compiler, libpci (pci.ids names), json-c, libyaml (mig-parted configs), cmocka (unit tests).
# Tests: pciutils (lspci reads our simulated hosts), jq (asserts on --json output), mdevctl (definitions
# round trip with the real mdevctl).
# VMs (docs/dependencies.md): libvirt-dev + libxml2-dev (build), libvirt-clients (virt-xml-validate),
# libvirt-daemon + libvirt-daemon-driver-qemu (the real libvirtd in the rig), qemu-system-x86.
# python3: the rig's VFIO holder (tests/rig/vfio-hold.py opens a real VFIO device fd) and the fleet's checker.
# clang + libclang-rt-dev (libFuzzer's runtime): the fuzz targets of tests/fuzz, built in build-fuzz/.
# The fleet (docs/fleet.md): libcurl4-openssl-dev (etcd's v3 JSON gateway), etcd-server + etcd-client (the tests'
# and the benchmark's 3-member cluster on loopback; etcdctl for the independent checker).
# The Kubernetes device plugin (docs/k8s.md): libgrpc-dev (gRPC core), protobuf-c-compiler + libprotobuf-c-dev (its
# messages from src/k8s/deviceplugin.proto); python3-grpcio: the tests' kubelet stand-in (run with /usr/bin/python3).
# mmdebstrap, e2fsprogs, qemu-utils: the rig's boot mode builds a Debian root (mmdebstrap), makes it an ext4
# image (mke2fs -d) and gives each chain of boots a copy-on-write disk on it (qemu-img).
# gpuvirtd (docs/metrics.md): libmicrohttpd-dev (HTTP, with GnuTLS for --web-config), libsystemd-dev (sd_notify),
# libcrypt-dev (bcrypt for basic auth); tests and bench: curl, prometheus (promtool), wrk, prometheus-node-exporter
# (the peer of the scrape benchmark), openssl (the TLS test's certificate).
PKGS=(meson ninja-build gcc pkg-config libpci-dev pci.ids libjson-c-dev libyaml-dev libcmocka-dev pciutils jq mdevctl
      libvirt-dev libxml2-dev libvirt-clients libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 python3
      clang libclang-rt-dev libcurl4-openssl-dev etcd-server etcd-client mmdebstrap e2fsprogs qemu-utils
      libmicrohttpd-dev libsystemd-dev libcrypt-dev curl prometheus wrk prometheus-node-exporter openssl
      libgrpc-dev protobuf-c-compiler libprotobuf-c-dev python3-grpcio)

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
        local dir=$1 out; shift
        # quiet when it works; the whole output (the compiler's errors are on ninja's stdout) when it does not
        if [ ! -f "$dir/build.ninja" ]; then
                out=$(meson setup "$dir" "$@" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
        fi
        out=$(meson compile -C "$dir" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
}

# The libFuzzer build: clang, ASan+UBSan, every object instrumented for coverage (tests/fuzz/README.md).
build_fuzz() {
        CC=clang build build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
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
        build_fuzz
        # Simulated hosts are many small files and symlinks: on tmpfs, as sysfs is in memory.
        if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
        set +e
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
                meson test -C build-asan --print-errorlogs --num-processes 2 "${@:2}" 2>&1 | tee build-asan/test-output.txt
        rc=${PIPESTATUS[0]}
        # A short libFuzzer run of every target (a fixed number of executions each), unless tests were named.
        if [ $# -le 1 ]; then
                UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 meson test -C build-fuzz --suite fuzz --print-errorlogs \
                        2>&1 | tee build-fuzz/test-output.txt
                frc=${PIPESTATUS[0]}
                [ "$rc" -ne 0 ] || rc=$frc
        else
                : >build-fuzz/test-output.txt
        fi
        set -e
        # One closing line any CI understands, from meson's own summaries (both builds).
        awk '/^Ok: /{ok+=$2} /^Expected Fail: /{ok+=$3} /^Fail: /{f+=$2} /^Unexpected Pass: /{f+=$3}
             /^Timeout: /{f+=$2} /^Skipped: /{s+=$2}
             END{printf "Summary: %d passed, %d failed, %d skipped\n", ok, f, s}' build-asan/test-output.txt build-fuzz/test-output.txt
        exit $rc ;;
fuzz)
        deps
        build_fuzz
        if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
        # The corpus grows across runs in build-fuzz/fuzz/<target>; crashes land in build-fuzz/fuzz/crashes/.
        GPUVIRT_FUZZ_SECONDS=${2:-300} GPUVIRT_FUZZ_DIR=$PWD/build-fuzz/fuzz UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
                meson test -C build-fuzz --suite fuzz --print-errorlogs --timeout-multiplier 0 --num-processes 1 \
                >build-fuzz/fuzz-output.txt 2>&1 && rc=0 || rc=$?
        # per target: executions, coverage (cov: edges, ft: features), crashes kept
        awk '/^test: /{t=$NF} /stat::number_of_executed_units/{e[t]=$2}
             /DONE +cov:/{for(i=1;i<=NF;i++){if($i=="cov:")c[t]=$(i+1); if($i=="ft:")f[t]=$(i+1)}}
             END{for(t in e) printf "%-16s %10s executions  cov %5s  ft %6s\n", t, e[t], c[t], f[t]}' \
                build-fuzz/meson-logs/testlog.txt | sort
        grep -E '^ *[0-9]+/[0-9]+ ' build-fuzz/fuzz-output.txt || true
        n=$(find build-fuzz/fuzz/crashes -type f 2>/dev/null | wc -l)
        echo "crashes: $n (build-fuzz/fuzz/crashes)"
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
