#!/usr/bin/env bash
# The physical-limit benchmark (issue 13): every figure a ratio against a peer measured in the same run.
# Usage: bench/limits.sh [BUILD_DIR]   (default build-release)
#   BEFORE="[LABEL=]BUILD_DIR ..."  also measure other builds' gpuvirt (e.g. main's, the issue's base) on the
#                           same trees in the same run, each in its own column (LABEL, default "before")
#   RUNS=N                  runs per median (default 51)
#   SIZES="100:8 ..."       generated hosts, DEVICES:GPUS (default 100:8 500:8 2000:8 2000:128)
# Prints the curve (devices -> time, system calls per device) of `gpuvirt --json list` beside `lspci -nn`
# on generated hosts (`gpuvirt sim create DIR --profile generated --devices N --gpus M`), the slope per
# added non-GPU device, the process floor (`--version` against /bin/true), what `check` adds to `list`,
# passthrough enable+disable against a shell doing the same writes, and `apply` of a mixed host.yaml
# against `plan` on dgx-a100.
set -eu
B=${1:-build-release}
RUNS=${RUNS:-51}
SIZES=${SIZES:-"100:8 500:8 2000:8 2000:128"}
EXEC=$B/bench/bench-exec
# the trees on tmpfs, as the header says (TMPDIR overrides): on a disk, apply's fsync()s of its records are what is timed
SCRATCH=${TMPDIR:-/tmp}
[ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ] && SCRATCH=/dev/shm
TMP=$(mktemp -d "$SCRATCH/gpuvirt-limits-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
command -v strace >/dev/null || { echo "limits.sh: strace is needed for the system call counts" >&2; exit 1; }

NAMES=(after) BINS=("$B/src/gpuvirt")
for b in ${BEFORE:-}; do
        case $b in
        *=*) NAMES+=("${b%%=*}") BINS+=("${b#*=}/src/gpuvirt") ;;
        *) NAMES+=(before) BINS+=("$b/src/gpuvirt") ;;
        esac
done

# the medians of several commands measured interleaved (bench-exec -- A ::: B ...: a ratio of two is of runs
# made at the same moments, so the machine's drift over the seconds a measurement takes cancels), into M
meds() { local out; out=$("$EXEC" "$@"); mapfile -t M < <(cut -d' ' -f1 <<<"$out"); }
sys() { strace -f -c -o "$TMP/strace" "$@" >/dev/null 2>&1 || true; awk '$NF == "total" {print $4}' "$TMP/strace"; }
ms() { awk -v u="$1" 'BEGIN{printf "%.2f", u / 1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2fx", a / b}'; }
per() { awk -v a="$1" -v n="$2" 'BEGIN{printf "%.1f", a / n}'; }

# the figures are ratios in one run; a loaded machine still spreads them: say how loaded it was
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); trees in $(df --output=fstype "$TMP" | tail -1) ($SCRATCH)"
echo "== gpuvirt --json list beside lspci -nn on generated hosts (median of $RUNS, tmpfs; sys = system calls)"
printf '%-8s %-5s | %-17s' devices gpus "lspci ms sys/dev"
for n in "${NAMES[@]}"; do printf ' | %-30s' "$n: ms x-lspci sys/dev"; done
echo
declare -A T S
for size in $SIZES; do
        dev=${size%:*} gpus=${size#*:}
        H=$TMP/gen-$dev-$gpus
        "${BINS[0]}" sim create "$H" --profile generated --devices "$dev" --gpus "$gpus" >/dev/null
        cmds=(-- lspci -nn -O sysfs.path="$H/sys/bus/pci")
        for b in "${BINS[@]}"; do cmds+=(::: "$b" --root "$H" --json list); done
        meds -n "$RUNS" "${cmds[@]}"
        lt=${M[0]}
        ls=$(sys lspci -nn -O sysfs.path="$H/sys/bus/pci")
        printf '%-8s %-5s | %8s %8s' "$dev" "$gpus" "$(ms "$lt")" "$(per "$ls" "$dev")"
        T[lspci,$size]=$lt S[lspci,$size]=$ls
        for i in "${!NAMES[@]}"; do
                t=${M[$((i + 1))]}
                s=$(sys "${BINS[$i]}" --root "$H" --json list)
                T[${NAMES[$i]},$size]=$t S[${NAMES[$i]},$size]=$s
                printf ' | %8s %8s %11s' "$(ms "$t")" "$(ratio "$t" "$lt")" "$(per "$s" "$dev")"
        done
        echo
done
# the slope between the smallest and the largest host with the same GPUs: what one more non-GPU device costs
first=${SIZES%% *} last=
for size in $SIZES; do [ "${size#*:}" = "${first#*:}" ] && last=$size; done
if [ "$last" != "$first" ]; then
        d=$(( ${last%:*} - ${first%:*} ))
        printf 'per added non-GPU device (%s -> %s):' "$first" "$last"
        for k in lspci "${NAMES[@]}"; do
                printf '  %s %s us %s sys' "$k" "$(per $(( T[$k,$last] - T[$k,$first] )) "$d")" \
                        "$(per $(( S[$k,$last] - S[$k,$first] )) "$d")"
        done
        echo
fi

echo
echo "== process floor: gpuvirt --version beside /bin/true"
cmds=(-- /bin/true)
for b in "${BINS[@]}"; do cmds+=(::: "$b" --version); done
meds -n "$RUNS" "${cmds[@]}"
tt=${M[0]}
printf '/bin/true %s ms' "$(ms "$tt")"
for i in "${!NAMES[@]}"; do
        t=${M[$((i + 1))]}
        printf '  | %s: %s ms %s' "${NAMES[$i]}" "$(ms "$t")" "$(ratio "$t" "$tt")"
done
echo

echo
echo "== what check adds to list-level work (dgx-a100; in process: the readiness check after scan and names)"
# (not check minus list as whole commands: list also reads every GPU's MIG state through NVML, check does not)
"${BINS[0]}" sim create "$TMP/dgx" --profile dgx-a100 >/dev/null
for i in "${!NAMES[@]}"; do
        bi=$(dirname "$(dirname "${BINS[$i]}")")/bench/bench-inventory
        printf '%s: %s\n' "${NAMES[$i]}" "$("$bi" "$TMP/dgx" "$RUNS" | grep 'readiness check')"
done

echo
echo "== passthrough enable + disable of one GPU (dgx-a100 0000:24:00.0) beside a shell doing the same six writes"
GPU=0000:24:00.0
"${BINS[0]}" sim create "$TMP/pt" --profile dgx-a100 >/dev/null
cp -a "$TMP/pt" "$TMP/pt-sh"
D=$TMP/pt-sh/sys/bus/pci/devices/$GPU
W=$TMP/pt-sh/sys/bus/pci
# the writes vfio_enable and vfio_disable make on a device alone in its group: override, unbind, probe
SH="sh -c 'echo vfio-pci >$D/driver_override; echo $GPU >$D/driver/unbind; echo $GPU >$W/drivers_probe'"
SH="$SH; sh -c 'echo >$D/driver_override; echo $GPU >$D/driver/unbind; echo $GPU >$W/drivers_probe'"
cmds=(-- sh -c "$SH")
for g in "${BINS[@]}"; do
        cmds+=(::: sh -c "$g --root $TMP/pt passthrough enable $GPU && $g --root $TMP/pt passthrough disable $GPU")
done
meds -n "$RUNS" "${cmds[@]}"
st=${M[0]}
printf 'shell %s ms' "$(ms "$st")"
for i in "${!NAMES[@]}"; do
        t=${M[$((i + 1))]}
        printf '  | %s: %s ms %s' "${NAMES[$i]}" "$(ms "$t")" "$(ratio "$t" "$st")"
done
echo

echo
echo "== apply of a mixed host.yaml on dgx-a100 (7 GPUs MIG, 1 passthrough; a fresh host each run) beside plan"
cat >"$TMP/host.yaml" <<'Y'
version: 1
gpus:
  - select: all
    mode: host
  - select: "10de:20b0"
    mode: mig
    mig: {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}
  - select: "0000:23:00.0"
    mode: passthrough
Y
"${BINS[0]}" sim create "$TMP/state-pristine" --profile dgx-a100 >/dev/null
AR=$(( RUNS < 11 ? RUNS : 11 ))
prep="rm -rf $TMP/state && cp -a $TMP/state-pristine $TMP/state"
cmds=(--)
for g in "${BINS[@]}"; do
        [ ${#cmds[@]} -gt 1 ] && cmds+=(:::)
        cmds+=("$g" --root "$TMP/state" plan -f "$TMP/host.yaml" ::: "$g" --root "$TMP/state" apply -f "$TMP/host.yaml")
done
meds -n "$AR" -p "$prep" "${cmds[@]}"
for i in "${!NAMES[@]}"; do
        p=${M[$((2 * i))]} a=${M[$((2 * i + 1))]}
        printf '%s: plan %s ms, apply %s ms, apply %s plan\n' "${NAMES[$i]}" "$(ms "$p")" "$(ms "$a")" "$(ratio "$a" "$p")"
done
