#!/usr/bin/env bash
# gpuvirtd on simulated hosts: /metrics (promtool clean), the JSON API, health that changes on injected
# faults and recovers after the (shortened) clean period, NVML failing while it keeps serving, bad
# requests, SIGHUP reload, SIGTERM clean (the sanitizers report any leak or error at exit), the state
# file and `gpuvirt list`/`show` printing health.
# daemon.sh GPUVIRT GPUVIRTD PART [AGENT]: PART is profiles, health, requests, reload, vgpu, agent (gpuvirt-agent,
# the guest side, against the fake NVML) or guest (gpuvirtd reading the agent through the domain's channel,
# libvirt's test driver holding the running domains).
set -u
GPUVIRT=$1
GPUVIRTD=$2
PART=$3
. "$(dirname "$0")/../cli/lib.sh"
for t in curl jq promtool /usr/bin/python3; do
        command -v "$t" >/dev/null || { echo "SKIP: $t is not installed"; exit 77; }
done

DPID=
# start_daemon ROOT ARGS...: gpuvirtd on a free loopback port; PORT, DPID, DLOG set; waits for /healthz
start_daemon() {
        local root=$1; shift
        DLOG=$TMP/gpuvirtd.$RANDOM.log
        for _ in 1 2 3 4 5; do
                PORT=$((20000 + RANDOM % 30000))
                "$GPUVIRTD" --root "$root" --listen "127.0.0.1:$PORT" "$@" 2>"$DLOG" &
                DPID=$!
                for _ in $(seq 100); do
                        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz" 2>/dev/null)" != 000 ] && return 0
                        kill -0 "$DPID" 2>/dev/null || break
                        sleep 0.2
                done
                kill -0 "$DPID" 2>/dev/null && { fail "gpuvirtd did not answer: $(cat "$DLOG")"; return 1; }
                wait "$DPID"
                grep -q "cannot listen" "$DLOG" || { fail "gpuvirtd did not start: $(cat "$DLOG")"; DPID=; return 1; }
        done
        fail "no free port"
        return 1
}

# stop_daemon: SIGTERM, exit 0, and nothing from the sanitizers
stop_daemon() {
        [ -n "$DPID" ] || return 0
        kill -TERM "$DPID"
        local rc=0
        wait "$DPID" || rc=$?
        DPID=
        [ "$rc" -eq 0 ] && ok || fail "gpuvirtd exited $rc on SIGTERM: $(tail -40 "$DLOG")"
        grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$DLOG" && fail "sanitizer report: $(cat "$DLOG")" || ok
        grep -q "Stopping on SIGTERM" "$DLOG" && ok || fail "no stop message: $(cat "$DLOG")"
}
EXTRA=
trap 'if [ -n "$DPID" ]; then kill -KILL "$DPID" 2>/dev/null; fi; for p in $EXTRA; do kill "$p" 2>/dev/null; done; rm -rf "$TMP"' EXIT

get() { curl -s --max-time 10 "http://127.0.0.1:$PORT$1"; }
status() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@"; }
health_of() { get /v1/units | jq -r --arg u "$1" '.units[] | select(.unit == $u) | .health.state'; }
# wait_health UNIT STATE [SECONDS]: poll until the unit's health is STATE
wait_health() {
        local i
        for i in $(seq $((${3:-10} * 10))); do
                [ "$(health_of "$1")" = "$2" ] && { ok; return 0; }
                sleep 0.1
        done
        fail "$1 did not become $2 (it is '$(health_of "$1")'): $(get /v1/units | jq -c --arg u "$1" '.units[] | select(.unit == $u) | .health')"
        return 1
}
promtool_clean() {
        get /metrics >"$TMP/metrics"
        local rc=0
        promtool check metrics <"$TMP/metrics" >"$TMP/promtool" 2>&1 || rc=$?
        [ "$rc" -eq 0 ] && ok || fail "promtool check metrics ($1) exited $rc: $(cat "$TMP/promtool")"
}

case "$PART" in
profiles)
        # every profile: the units gpuvirt list sees, every family promtool-clean, the JSON documents
        for p in dgx-a100 h100 t4-grid workstation qemu-q35 flex-sriov; do
                H=$TMP/$p
                "$GPUVIRT" sim create "$H" --profile "$p" >/dev/null
                start_daemon "$H" --interval 0.3 || continue
                promtool_clean "$p"
                grep -q '^gpuvirt_build_info{version="' "$TMP/metrics" && ok || fail "$p: build info"
                # HELP and TYPE for every family that has samples
                for fam in $(grep -v '^#' "$TMP/metrics" | sed 's/[{ ].*//' | sort -u); do
                        grep -q "^# HELP $fam " "$TMP/metrics" && grep -q "^# TYPE $fam " "$TMP/metrics" && ok ||
                                fail "$p: $fam without HELP/TYPE"
                done
                want=$("$GPUVIRT" --root "$H" --json list --vfs | jq -r '[.[].address] | sort | join(" ")')
                got=$(get /v1/units | jq -r '[.units[] | select(.kind == "gpu" or .kind == "vf" or .kind == "vgpu") | .unit] | sort | join(" ")')
                [ "$want" = "$got" ] && ok || fail "$p: units '$got', gpuvirt list --vfs: '$want'"
                n=$(get /v1/gpus | jq '.gpus | length')
                [ "$n" = "$("$GPUVIRT" --root "$H" --json list | jq length)" ] && ok || fail "$p: /v1/gpus has $n"
                get /v1/gpus | jq -e '.gpus | all(has("health") and has("address") and has("modes"))' >/dev/null && ok ||
                        fail "$p: /v1/gpus entries lack health: $(get /v1/gpus | head -c 400)"
                get /v1/events | jq -e '.events == []' >/dev/null && ok || fail "$p: events on a fresh host"
                jq -e '.version == 1 and (.units | length > 0) and (.units | all(.health == "healthy" and .reason == null
                        and (.since | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$"))))' "$H/run/gpuvirt/health.json" >/dev/null &&
                        ok || fail "$p: health.json: $(cat "$H/run/gpuvirt/health.json")"
                [ "$(stat -c %a "$H/run/gpuvirt")" = 700 ] && ok || fail "$p: run/gpuvirt is not private"
                stop_daemon
        done
        # what the NVML families say on the A100 host, and what a non-NVIDIA host lacks
        H=$TMP/tele
        "$GPUVIRT" sim create "$H" --profile dgx-a100 >/dev/null
        "$GPUVIRT" --root "$H" sim telemetry 0000:a3:00.0 util_gpu=87 util_mem=40 temp=71 power_mw=301500 mem_used_mib=1024 \
                clock_sm=1410 ecc_sbe=5
        expect_rc 2 "$GPUVIRT" --root "$H" sim telemetry 0000:a3:00.0 fan=3 && expect_in "$ERR" "unknown key 'fan'" "sim telemetry: bad key"
        # a compute process and a graphics one (NVML's two lists)
        printf '4242 cuda-app\n77 Xorg graphics\n' >"$H/.gpuvirt-sim/nvml/0000:a3:00.0.processes"
        start_daemon "$H" --interval 0.3 && {
                m=$(get /metrics)
                L='{gpu="0000:a3:00.0",unit="0000:a3:00.0",mode="host"}'
                for want in "gpuvirt_gpu_utilization_ratio$L 0.87" "gpuvirt_gpu_memory_utilization_ratio$L 0.40" \
                        "gpuvirt_gpu_temperature_celsius$L 71" "gpuvirt_gpu_power_watts$L 301.500" \
                        "gpuvirt_gpu_memory_used_bytes$L 1073741824" "gpuvirt_gpu_memory_total_bytes$L 42949672960" \
                        "gpuvirt_gpu_sm_clock_hertz$L 1410000000" "gpuvirt_nvml_up 1" "gpuvirt_gpu_processes$L 2" \
                        'gpuvirt_gpu_processes{gpu="0000:23:00.0",unit="0000:23:00.0",mode="host"} 0' \
                        'gpuvirt_gpu_ecc_errors_total{gpu="0000:a3:00.0",unit="0000:a3:00.0",mode="host",type="corrected"} 5' \
                        'gpuvirt_pcie_aer_errors_total{gpu="0000:a3:00.0",unit="0000:a3:00.0",mode="host",severity="fatal"} 0' \
                        'gpuvirt_pcie_link_width{gpu="0000:a3:00.0",unit="0000:a3:00.0",mode="host"} 16' \
                        'gpuvirt_pci_power_state{gpu="0000:a3:00.0",unit="0000:a3:00.0",mode="host",state="D0"} 1' \
                        'gpuvirt_host_driver_info{version="550.127.05"} 1'; do
                        grep -qxF "$want" <<<"$m" && ok || fail "metric line '$want' not in: $(grep a3:00.0 <<<"$m" | head -30)"
                done
                get /v1/units | jq -e '.units[] | select(.unit == "0000:a3:00.0") | .metrics.temperature_celsius == 71 and .mode == "host" and .driver == "nvidia"' >/dev/null &&
                        ok || fail "/v1/units metrics"
                stop_daemon
        }
        # MIG instances and mdevs are units of their GPU
        "$GPUVIRT" --root "$H" mig enable 0000:23:00.0 >/dev/null 2>&1 && "$GPUVIRT" --root "$H" mig reset 0000:23:00.0 >/dev/null 2>&1
        "$GPUVIRT" --root "$H" mig create 0000:23:00.0 3g.20gb >/dev/null 2>&1
        start_daemon "$H" --interval 0.3 && {
                get /v1/units | jq -e '[.units[] | select(.kind == "mig" and .gpu == "0000:23:00.0" and .profile == "3g.20gb")] | length == 1' >/dev/null &&
                        ok || fail "MIG instance unit: $(get /v1/units | jq -c '[.units[] | select(.gpu == "0000:23:00.0")]')"
                get /metrics | grep -q '^gpuvirt_mig_instance_memory_bytes{gpu="0000:23:00.0",unit="MIG-.*",mode="mig",profile="3g.20gb",gi="[0-9]*",ci="0"} 20937965568$' &&
                        ok || fail "MIG memory metric: $(get /metrics | grep mig_instance)"
                get /metrics | grep -q '^gpuvirt_unit_info{gpu="0000:23:00.0",unit="0000:23:00.0",mode="mig",' && ok || fail "the GPU's mode is mig"
                promtool_clean "mig"
                stop_daemon
        }
        H=$TMP/t4
        "$GPUVIRT" sim create "$H" --profile t4-grid >/dev/null
        parent=$("$GPUVIRT" --root "$H" --json list | jq -r '[.[] | select(.driver == "nvidia")][0].address')
        type=$("$GPUVIRT" --root "$H" --json vgpu types "$parent" | jq -r '.[0].types[0].id')
        if [ -n "$type" ] && "$GPUVIRT" --root "$H" vgpu create "$parent" "$type" >/dev/null 2>&1; then
                start_daemon "$H" --interval 0.3 && {
                        get /v1/units | jq -e --arg p "$parent" '[.units[] | select(.kind == "mdev" and .gpu == $p and .health.state == "healthy")] | length == 1' >/dev/null &&
                                ok || fail "mdev unit: $(get /v1/units | jq -c '.units')"
                        promtool_clean "mdev"
                        stop_daemon
                }
        else
                fail "could not create an mdev on $parent (type '$type')"
        fi
        ;;
health)
        H=$TMP/h
        "$GPUVIRT" sim create "$H" --profile dgx-a100 >/dev/null
        G=("$GPUVIRT" --root "$H")
        start_daemon "$H" --interval 0.2 --clean-period 5 || exit 1
        for u in 0000:23:00.0 0000:24:00.0 0000:43:00.0 0000:44:00.0 0000:a3:00.0 0000:a4:00.0 0000:c3:00.0 0000:c4:00.0; do
                [ "$(health_of $u)" = healthy ] && ok || fail "$u healthy at start"
        done
        # an application Xid is not the device's fault; a device Xid is
        expect_rc 0 "${G[@]}" sim xid 0000:24:00.0 13
        expect_rc 0 "${G[@]}" sim xid 0000:23:00.0 48
        wait_health 0000:23:00.0 unhealthy
        sleep 1
        [ "$(health_of 0000:23:00.0)" = unhealthy ] && ok || fail "recovered before the clean period"
        get /v1/units | jq -e '.units[] | select(.unit == "0000:23:00.0") | .health.reason == "Xid 48: double-bit ECC error"' >/dev/null && ok || fail "Xid reason"
        get /metrics | grep -qxF 'gpuvirt_gpu_xid_errors_total{gpu="0000:24:00.0",unit="0000:24:00.0",mode="host",xid="13"} 1' && ok || fail "Xid 13 counted"
        [ "$(health_of 0000:24:00.0)" = healthy ] && ok || fail "Xid 13 (application) changed health"
        grep -q "0000:23:00.0: healthy -> unhealthy: Xid 48: double-bit ECC error" "$DLOG" && ok || fail "journal line: $(cat "$DLOG")"
        jq -e '.units[] | select(.unit == "0000:23:00.0") | .health == "unhealthy" and .gpu == "0000:23:00.0"' "$H/run/gpuvirt/health.json" >/dev/null &&
                ok || fail "health.json: $(cat "$H/run/gpuvirt/health.json")"
        # gpuvirt list and show print it while a daemon runs
        expect_rc 0 "${G[@]}" list && expect_in "$OUT" "HEALTH" "list: health column"
        grep -q "^0000:23:00.0 .*unhealthy" <<<"$OUT" && ok || fail "list: 23:00.0 unhealthy: $OUT"
        expect_rc 0 "${G[@]}" show 0000:23:00.0 && expect_in "$OUT" "unhealthy (Xid 48: double-bit ECC error" "show: health"
        expect_rc 0 "${G[@]}" --json show 0000:23:00.0
        echo "$OUT" | jq -e '.health.health == "unhealthy"' >/dev/null && ok || fail "show --json health: $OUT"
        # recovery after the clean period (5 s)
        wait_health 0000:23:00.0 healthy 10
        get /v1/events | jq -e '[.events[] | select(.unit == "0000:23:00.0") | .to] == ["unhealthy", "healthy"]' >/dev/null && ok ||
                fail "events: $(get /v1/events)"
        get /v1/events | jq -e '.events[-1].reason | test("^recovered: clean for 5s and re-qualified")' >/dev/null && ok || fail "recovery reason"

        # a fatal AER error; a non-fatal one degrades
        expect_rc 0 "${G[@]}" sim aer 0000:43:00.0 fatal
        grep -qx "TOTAL_ERR_FATAL 1" "$H/sys/bus/pci/devices/0000:43:00.0/aer_dev_fatal" && ok || fail "aer_dev_fatal"
        expect_rc 0 "${G[@]}" sim aer 0000:a4:00.0 nonfatal 3
        wait_health 0000:43:00.0 unhealthy
        wait_health 0000:a4:00.0 degraded
        get /metrics | grep -qxF 'gpuvirt_pcie_aer_errors_total{gpu="0000:a4:00.0",unit="0000:a4:00.0",mode="host",severity="nonfatal"} 3' && ok || fail "AER counter"
        # a link that trained down stays degraded while it is down, recovers once it is back
        expect_rc 0 "${G[@]}" sim link 0000:44:00.0 "8.0 GT/s PCIe" 8
        wait_health 0000:44:00.0 degraded
        sleep 6
        [ "$(health_of 0000:44:00.0)" = degraded ] && ok || fail "a persisting downgrade recovered"
        get /v1/units | jq -e '.units[] | select(.unit == "0000:44:00.0") | .health.reason == "PCIe link downgraded: 8.0 GT/s x8, capable of 16.0 GT/s x16"' >/dev/null && ok || fail "link reason"
        expect_rc 0 "${G[@]}" sim link 0000:44:00.0 "16.0 GT/s PCIe" 16
        wait_health 0000:44:00.0 healthy 10
        wait_health 0000:43:00.0 healthy 10
        # new double-bit ECC errors
        expect_rc 0 "${G[@]}" sim telemetry 0000:a3:00.0 ecc_dbe=2
        wait_health 0000:a3:00.0 unhealthy
        get /v1/units | jq -e '.units[] | select(.unit == "0000:a3:00.0") | .health.reason == "2 new double-bit ECC errors (2 in all)"' >/dev/null && ok || fail "ECC reason"

        # NVML fails: the units are degraded, the daemon keeps serving the last snapshots, fast
        expect_rc 0 "${G[@]}" sim nvml-fail NVML_ERROR_UNKNOWN
        wait_health 0000:c3:00.0 degraded
        get /v1/units | jq -e '.units[] | select(.unit == "0000:c3:00.0") | .health.reason == "NVML does not answer for it (NVML_ERROR_UNKNOWN)"' >/dev/null && ok || fail "NVML reason"
        for _ in 1 2 3 4 5; do
                [ "$(status "http://127.0.0.1:$PORT/metrics")" = 200 ] && ok || fail "/metrics while NVML fails"
        done
        e=$(get /metrics | sed -n 's/^gpuvirt_nvml_errors_total //p')
        [ "${e:-0}" -gt 0 ] && ok || fail "nvml errors counted: $e"
        promtool_clean "NVML failing"
        expect_rc 0 "${G[@]}" sim nvml-fail off
        wait_health 0000:c3:00.0 healthy 10

        # a surprise removal and a GPU off the bus: gone, and they stay gone
        expect_rc 0 "${G[@]}" sim remove 0000:c3:00.0
        [ ! -e "$H/sys/bus/pci/devices/0000:c3:00.0" ] && ok || fail "removed device still there"
        expect_rc 0 "${G[@]}" sim off-bus 0000:c4:00.0
        wait_health 0000:c3:00.0 gone
        wait_health 0000:c4:00.0 gone
        get /metrics | grep -qxF 'gpuvirt_unit_present{gpu="0000:c3:00.0",unit="0000:c3:00.0",mode="gone"} 0' && ok || fail "present 0"
        sleep 6
        [ "$(health_of 0000:c3:00.0)" = gone ] && [ "$(health_of 0000:c4:00.0)" = gone ] && ok || fail "gone units came back"
        get /v1/units | jq -e '.units[] | select(.unit == "0000:c4:00.0") | .health.reason == "fell off the bus: its config space reads all ones"' >/dev/null && ok || fail "off-bus reason"
        promtool_clean "after faults"
        stop_daemon
        # after the daemon: the state file stays (the device plugin reads it), list still prints it
        jq -e '.units[] | select(.unit == "0000:c4:00.0") | .health == "gone"' "$H/run/gpuvirt/health.json" >/dev/null && ok || fail "state file after stop"
        # a damaged state file: list says so and still lists
        echo '{"version": 7}' >"$H/run/gpuvirt/health.json"
        expect_rc 0 "${G[@]}" list && expect_in "$ERR" "/run/gpuvirt/health.json: not a version 1 health file" "list: damaged state file"
        ;;
requests)
        H=$TMP/r
        "$GPUVIRT" sim create "$H" --profile h100 >/dev/null
        start_daemon "$H" --interval 0.5 --timeout 1 --max-connections 16 || exit 1
        U=http://127.0.0.1:$PORT
        for p in /metrics /healthz /v1/gpus /v1/units /v1/events /; do
                [ "$(status "$U$p")" = 200 ] && ok || fail "GET $p"
        done
        [ "$(curl -s -D - -o /dev/null "$U/metrics" | tr -d '\r' | sed -n 's/^Content-Type: //Ip')" = "text/plain; version=0.0.4; charset=utf-8" ] && ok || fail "content type"
        [ "$(status -I "$U/metrics")" = 200 ] && ok || fail "HEAD"
        for m in POST PUT DELETE PATCH OPTIONS; do
                [ "$(status -X $m "$U/metrics")" = 405 ] && ok || fail "$m /metrics"
        done
        [ "$(status -X POST --data-binary @/dev/null "$U/v1/units")" = 405 ] && ok || fail "POST /v1/units"
        curl -s -D - -o /dev/null -X POST "$U/metrics" | tr -d '\r' | grep -qi '^Allow: GET, HEAD$' && ok || fail "Allow header"
        for p in /nope /metrics/ /v1 /v1/gpus/x /metrics/../v1/gpus /v1/../metrics /%2e%2e/etc/passwd "/metrics?x=../../" /..; do
                s=$(status --path-as-is "$U$p")
                case "$p" in
                "/metrics?x=../../") [ "$s" = 200 ] && ok || fail "query string $p: $s" ;;
                *) [ "$s" = 404 ] && ok || fail "GET $p: $s, expected 404" ;;
                esac
        done
        # an oversized request: refused (4xx) or closed, never served
        big=$(head -c 20000 /dev/zero | tr '\0' a)
        s=$(status -H "X-Big: $big" "$U/metrics")
        case "$s" in 4*|000) ok ;; *) fail "oversized header got $s" ;; esac
        s=$(status --path-as-is "$U/metrics?$big")
        case "$s" in 4*|000) ok ;; *) fail "oversized URL got $s" ;; esac
        # a body on a GET: refused
        s=$(status -X GET --data-binary "$(head -c 3000 /dev/zero | tr '\0' b)" "$U/metrics")
        case "$s" in 4*|000) ok ;; *) fail "GET with a body got $s" ;; esac
        # slow clients and a flood of connections: closed after the timeout, the daemon keeps serving
        /usr/bin/python3 - "$PORT" <<'PY' && ok || fail "slow/many connections"
import socket, sys, time
port = int(sys.argv[1])
# a slow client: half a request line, then silence; the server closes it after its 1 s timeout
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET /metr")
s.settimeout(5)
t = time.monotonic()
try:
    data = s.recv(100)
except socket.timeout:
    sys.exit("slow client not closed within 5 s")
if time.monotonic() - t > 4:
    sys.exit("slow client closed late")
s.close()
# 200 idle connections at once: beyond the limit (16) they are refused or closed; a scrape still works after
conns = []
for _ in range(200):
    try:
        conns.append(socket.create_connection(("127.0.0.1", port), timeout=2))
    except OSError:
        pass
time.sleep(1.5)
for c in conns:
    c.close()
time.sleep(0.2)
c = socket.create_connection(("127.0.0.1", port), timeout=5)
c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
resp = b""
while True:
    d = c.recv(4096)
    if not d:
        break
    resp += d
if not resp.startswith(b"HTTP/1.1 200"):
    sys.exit("no answer after the flood: %r" % resp[:100])
# garbage instead of HTTP
c = socket.create_connection(("127.0.0.1", port), timeout=5)
c.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n")
try:
    d = c.recv(4096)
except socket.timeout:
    d = b""
if d and not d.startswith(b"HTTP/1.1 4"):
    sys.exit("garbage answered with %r" % d[:60])
PY
        [ "$(status "$U/metrics")" = 200 ] && ok || fail "serving after the bad requests"
        # the API never writes to the host: a scrape changes nothing under the root but the collector's state file
        before=$(cd "$H" && find . -path ./run -prune -o -type f -newer "$TMP/metrics" -print 2>/dev/null | wc -l)
        stop_daemon
        # bad options: refused before anything starts
        expect_rc 2 "$GPUVIRTD" --root "$H" --listen localhost:9835 && expect_in "$ERR" "not a numeric ADDR:PORT" "--listen name"
        expect_rc 2 "$GPUVIRTD" --root "$H" --listen 127.0.0.1:0 && expect_in "$ERR" "not a numeric ADDR:PORT" "--listen port 0"
        expect_rc 2 "$GPUVIRTD" --root "$H" --interval -1 && expect_in "$ERR" "not a number of seconds" "--interval"
        expect_rc 2 "$GPUVIRTD" --root "$H" --request-limit 10 && expect_in "$ERR" "positive number in range" "--request-limit"
        expect_rc 2 "$GPUVIRTD" --root "$H" extra && expect_in "$ERR" "unexpected argument 'extra'" "argument"
        expect_rc 0 "$GPUVIRTD" --help && expect_in "$OUT" "--listen ADDR:PORT" "--help"
        # basic auth (exporter-toolkit web config, bcrypt) and TLS
        hash=$(/usr/bin/python3 -W ignore -c 'import crypt; print(crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))')
        case "$hash" in '$2b$'*) ok ;; *) fail "no bcrypt hash from libcrypt: $hash" ;; esac
        printf 'basic_auth_users:\n  prom: %s\n' "'$hash'" >"$TMP/web.yml"
        start_daemon "$H" --interval 0.5 --web-config "$TMP/web.yml" || true
        U=http://127.0.0.1:$PORT
        [ "$(status "$U/metrics")" = 401 ] && ok || fail "no credentials"
        [ "$(status -u prom:wrong "$U/metrics")" = 401 ] && ok || fail "wrong password"
        [ "$(status -u other:s3cret "$U/metrics")" = 401 ] && ok || fail "wrong user"
        [ "$(status -u prom:s3cret "$U/metrics")" = 200 ] && ok || fail "right password"
        [ "$(status -u prom:s3cret "$U/nope")" = 404 ] && ok || fail "404 with auth"
        stop_daemon
        if command -v openssl >/dev/null; then
                openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -days 1 \
                        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
                printf 'tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  prom: %s\n' \
                        "$TMP/cert.pem" "$TMP/key.pem" "'$hash'" >"$TMP/tls.yml"
                DLOG=$TMP/tls.log
                "$GPUVIRTD" --root "$H" --listen 127.0.0.1:$((PORT + 1)) --web-config "$TMP/tls.yml" --interval 0.5 2>"$DLOG" &
                DPID=$!
                for _ in $(seq 50); do curl -s --cacert "$TMP/cert.pem" "https://127.0.0.1:$((PORT + 1))/healthz" -o /dev/null && break; sleep 0.2; done
                [ "$(status --cacert "$TMP/cert.pem" -u prom:s3cret "https://127.0.0.1:$((PORT + 1))/metrics")" = 200 ] && ok || fail "TLS scrape: $(cat "$DLOG")"
                [ "$(status "http://127.0.0.1:$((PORT + 1))/metrics")" != 200 ] && ok || fail "plain HTTP on the TLS port"
                stop_daemon
        fi
        printf 'basic_auth_users:\n  prom: plain\n' >"$TMP/bad.yml"
        expect_rc 1 "$GPUVIRTD" --root "$H" --web-config "$TMP/bad.yml" && expect_in "$ERR" "bad.yml:2:9: expected a bcrypt hash" "web config: not bcrypt"
        ;;
reload)
        H=$TMP/c
        "$GPUVIRT" sim create "$H" --profile dgx-station >/dev/null
        printf 'interval: 0.2\nclean-period: 300\n' >"$TMP/gpuvirtd.yaml"
        start_daemon "$H" --config "$TMP/gpuvirtd.yaml" || exit 1
        u=$(get /v1/units | jq -r '[.units[] | select(.driver == "nvidia")][0].unit')
        "$GPUVIRT" --root "$H" sim xid "$u" 79
        wait_health "$u" gone
        sleep 2.5
        [ "$(health_of "$u")" = gone ] && ok || fail "recovered with a 300 s clean period"
        # a damaged file on SIGHUP: refused with FILE:LINE:COL, the running settings kept
        printf 'interval: 0.2\nclean-period: soon\n' >"$TMP/gpuvirtd.yaml"
        kill -HUP "$DPID"
        sleep 1
        grep -q "Reload refused, keeping the running settings: $TMP/gpuvirtd.yaml:2:15: 'clean-period' is not a number of seconds" "$DLOG" &&
                ok || fail "bad reload: $(cat "$DLOG")"
        [ "$(status "http://127.0.0.1:$PORT/metrics")" = 200 ] && ok || fail "serving after a refused reload"
        printf 'interval: 0.2\nclean-period: 1\n' >"$TMP/gpuvirtd.yaml"
        kill -HUP "$DPID"
        wait_health "$u" healthy 6
        grep -q "Reloaded: interval 0.20s, clean period 1s" "$DLOG" && ok || fail "reload message: $(cat "$DLOG")"
        stop_daemon
        printf 'interval: 0.2\nbogus: 1\n' >"$TMP/bad.yaml"
        expect_rc 1 "$GPUVIRTD" --root "$H" --config "$TMP/bad.yaml" && expect_in "$ERR" "bad.yaml:2:1: unknown setting 'bogus'" "bad config at start"
        ;;
agent)
        AGENT=$4
        H=$TMP/g
        "$GPUVIRT" sim create "$H" --profile dgx-station >/dev/null
        u=$("$GPUVIRT" --root "$H" --json list | jq -r '[.[] | select(.name | test("A100"))][0].address')
        "$GPUVIRT" --root "$H" sim telemetry "$u" util_gpu=55 temp=66 mem_used_mib=2048 ecc_dbe=1
        expect_rc 0 "$AGENT" --root "$H" --once --stdout
        [ "$(echo "$OUT" | wc -l)" = 1 ] && ok || fail "one line: $OUT"
        echo "$OUT" | jq -e --arg b "$(echo "$u" | tr a-f A-F | sed 's/^/0000/')" '.agent == "gpuvirt-agent" and .version == 1 and .nvml and
                .driver_version == "550.127.05" and (.gpus | length == 5) and
                (.gpus[] | select(.pci_bus_id == $b) | .utilization_percent == 55 and .temperature_celsius == 66 and
                 .memory_used_bytes == 2147483648 and .ecc_uncorrected == 1 and .processes == 0 and (.uuid | startswith("GPU-")))' >/dev/null &&
                ok || fail "agent line: $OUT"
        # the port: one line per interval to dev/virtio-ports/org.gpuvirt.agent.0 under the root
        expect_rc 1 "$AGENT" --root "$H" --once && expect_in "$ERR" "org.gpuvirt.agent.0 (no gpuvirt agent channel in this VM?)" "no port"
        mkdir -p "$H/dev/virtio-ports"
        mkfifo "$H/dev/virtio-ports/org.gpuvirt.agent.0"
        (exec 3<>"$H/dev/virtio-ports/org.gpuvirt.agent.0"; timeout 10 head -n 3 <&3 >"$TMP/lines") &
        rd=$!
        "$AGENT" --root "$H" --interval 0.2 2>"$TMP/agent.err" &
        ag=$!
        wait "$rd"
        kill -TERM "$ag"
        wait "$ag"; rc=$?
        [ "$rc" = 0 ] && ok || fail "agent exit $rc on SIGTERM: $(cat "$TMP/agent.err")"
        [ "$(jq -s 'length' "$TMP/lines")" = 3 ] && jq -e -s 'all(.nvml)' "$TMP/lines" >/dev/null && ok || fail "3 lines on the port: $(cat "$TMP/lines")"
        ! grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$TMP/agent.err" && ok || fail "agent sanitizer: $(cat "$TMP/agent.err")"
        # NVML failing in the guest: said so, not zeros
        "$GPUVIRT" --root "$H" sim nvml-fail NVML_ERROR_DRIVER_NOT_LOADED
        expect_rc 0 "$AGENT" --root "$H" --once --stdout
        echo "$OUT" | jq -e '(.nvml | not) and (.error | test("nvmlInit failed: NVML_ERROR_DRIVER_NOT_LOADED")) and (has("gpus") | not)' >/dev/null &&
                ok || fail "agent without NVML: $OUT"
        expect_rc 2 "$AGENT" --interval 0 && expect_in "$ERR" "not a number of seconds" "agent --interval"
        ;;
guest)
        AGENT=$4
        H=$TMP/host
        "$GPUVIRT" sim create "$H" --profile dgx-a100 >/dev/null
        # the guest: a VM with one Quadro RTX 6000 passed through, its NVML the fake one over its own root
        V=$TMP/guest
        "$GPUVIRT" sim create "$V" --profile no-iommu >/dev/null
        vg=$("$GPUVIRT" --root "$V" --json list | jq -r '[.[] | select(.driver == "nvidia")][0].address')
        "$GPUVIRT" --root "$V" sim telemetry "$vg" util_gpu=73 temp=61 power_mw=150250
        echo "4242 cuda-app" >"$V/.gpuvirt-sim/nvml/$vg.processes"
        dom() { # name, devices
                echo "<domain type='test'><name>$1</name><memory>1048576</memory><os><type>hvm</type></os><devices>$2</devices></domain>"
        }
        pci() { echo "<hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x$1' slot='0x00' function='0x0'/></source></hostdev>"; }
        chan() { echo "<channel type='unix'><source mode='bind' path='$1'/><target type='virtio' name='org.gpuvirt.agent.0'/></channel>"; }
        { echo "<node>"; dom vm1 "$(pci 23)$(chan "$TMP/vm1.sock")"; dom vm2 "$(pci 24)"; dom vm3 "$(pci 43)$(chan "$TMP/vm3.sock")"; echo "</node>"; } >"$TMP/node.xml"
        # what libvirt's chardev does: the socket, with the guest's agent writing into it
        /usr/bin/python3 - "$TMP/vm1.sock" "$AGENT" "$V" <<'PY' &
import os, signal, socket, subprocess, sys, threading
path, agent, root = sys.argv[1:4]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(4)
clients = []
def accept():
    while True:
        c, _ = srv.accept()
        clients.append(c)
threading.Thread(target=accept, daemon=True).start()
p = subprocess.Popen([agent, "--root", root, "--stdout", "--interval", "0.2"], stdout=subprocess.PIPE)
def stop(*_):
    p.terminate()
    p.wait()
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
for line in p.stdout:
    for c in list(clients):
        try:
            c.sendall(line)
        except OSError:
            clients.remove(c)
PY
        py=$!
        EXTRA=$py
        for _ in $(seq 50); do [ -S "$TMP/vm1.sock" ] && break; sleep 0.1; done
        start_daemon "$H" --interval 0.3 --libvirt "test://$TMP/node.xml" || { kill "$py"; exit 1; }
        for _ in $(seq 50); do get /metrics | grep -q '^gpuvirt_guest_agent_up{domain="vm1"} 1$' && break; sleep 0.2; done
        m=$(get /metrics)
        for want in 'gpuvirt_guest_agent_channel{domain="vm1"} 1' 'gpuvirt_guest_agent_up{domain="vm1"} 1' \
                'gpuvirt_guest_agent_channel{domain="vm2"} 0' 'gpuvirt_guest_agent_up{domain="vm2"} 0' \
                'gpuvirt_guest_agent_channel{domain="vm3"} 1' 'gpuvirt_guest_agent_up{domain="vm3"} 0' \
                "gpuvirt_guest_gpu_utilization_ratio{domain=\"vm1\",gpu=\"0000:23:00.0\",unit=\"0000:23:00.0\",guest_bus_id=\"0000$(echo "$vg" | tr a-f A-F)\"} 0.730" \
                "gpuvirt_guest_gpu_temperature_celsius{domain=\"vm1\",gpu=\"0000:23:00.0\",unit=\"0000:23:00.0\",guest_bus_id=\"0000$(echo "$vg" | tr a-f A-F)\"} 61" \
                "gpuvirt_guest_gpu_power_watts{domain=\"vm1\",gpu=\"0000:23:00.0\",unit=\"0000:23:00.0\",guest_bus_id=\"0000$(echo "$vg" | tr a-f A-F)\"} 150.250" \
                "gpuvirt_guest_gpu_processes{domain=\"vm1\",gpu=\"0000:23:00.0\",unit=\"0000:23:00.0\",guest_bus_id=\"0000$(echo "$vg" | tr a-f A-F)\"} 1"; do
                grep -qxF "$want" <<<"$m" && ok || fail "'$want' not in: $(grep guest <<<"$m")"
        done
        grep -q '^gpuvirt_unit_info{gpu="0000:23:00.0",unit="0000:23:00.0",mode="host",kind="gpu",driver="nvidia",domain="vm1",' <<<"$m" && ok || fail "holder domain label"
        # vm2 has no agent: no guest GPU series for it, not zeros
        grep -q 'gpuvirt_guest_gpu_.*domain="vm2"' <<<"$m" && fail "zeros for a VM without the agent" || ok
        get /v1/units | jq -e '.units[] | select(.unit == "0000:23:00.0") | .guest.agent_up and .guest.report.utilization_percent == 73 and .domain == "vm1"' >/dev/null &&
                ok || fail "/v1/units guest: $(get /v1/units | jq -c '.units[] | select(.unit == "0000:23:00.0")')"
        get /v1/units | jq -e '.units[] | select(.unit == "0000:24:00.0") | .guest.agent_channel == false and .guest.agent_up == false and .guest.report == null' >/dev/null &&
                ok || fail "/v1/units vm2: $(get /v1/units | jq -c '.units[] | select(.unit == "0000:24:00.0")')"
        promtool_clean "guests"
        # the agent stops: after the stale time the guest is down again, its numbers gone
        kill "$py"
        wait "$py" 2>/dev/null
        for _ in $(seq 60); do get /metrics | grep -q '^gpuvirt_guest_agent_up{domain="vm1"} 0$' && break; sleep 0.2; done
        get /metrics | grep -q '^gpuvirt_guest_agent_up{domain="vm1"} 0$' && ok || fail "silent agent still up"
        get /metrics | grep -q 'gpuvirt_guest_gpu_.*domain="vm1"' && fail "stale guest numbers exported" || ok
        stop_daemon
        ;;
vgpu)
        # the vGPU manager's view through NVML on the vendor-vGPU host (h100): per-VM utilization,
        # framebuffer and license of a running VM's vGPU; unlicensed degrades the unit, licensed again recovers
        H=$TMP/h100
        "$GPUVIRT" sim create "$H" --profile h100 >/dev/null
        "$GPUVIRT" --root "$H" vgpu create 16:00.4 "NVIDIA H100-10C" >/dev/null
        expect_rc 2 "$GPUVIRT" --root "$H" sim vgpu 16:00.4 license=maybe && expect_in "$ERR" "not a value for license" "bad license"
        expect_rc 2 "$GPUVIRT" --root "$H" sim vgpu 16:00.4 util_sm=101 && expect_in "$ERR" "util_*: 0-100" "bad util"
        expect_rc 2 "$GPUVIRT" --root "$H" sim vgpu 16:00.4 colour=red && expect_in "$ERR" "unknown key 'colour'" "bad key"
        expect_rc 1 "$GPUVIRT" --root "$H" sim vgpu 16:07.7 vm=x && expect_in "$ERR" "No vGPU unit 0000:16:07.7" "no unit"
        expect_rc 0 "$GPUVIRT" --root "$H" sim vgpu 16:00.4 vm=vm-a license=licensed expiry=2027-03-01T12:00:00 \
                util_sm=40 util_mem=25 util_enc=5 fb_used_mib=2048
        hd() { echo "<hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x16' slot='0x00' function='0x$1'/></source></hostdev>"; }
        echo "<node><domain type='test'><name>vm-a</name><memory>1048576</memory><os><type>hvm</type></os><devices>$(hd 4)</devices></domain></node>" >"$TMP/node.xml"
        start_daemon "$H" --interval 0.2 --clean-period 1 --libvirt "test://$TMP/node.xml" || exit 1
        L='gpu="0000:16:00.0",unit="0000:16:00.4",vgpu="[0-9a-f-]*",domain="vm-a"'
        for _ in $(seq 50); do get /metrics | grep -q '^gpuvirt_vgpu_licensed' && break; sleep 0.1; done
        m=$(get /metrics)
        for want in "gpuvirt_vgpu_instance_info{$L,profile=\"NVIDIA H100-10C\"} 1" \
                "gpuvirt_vgpu_utilization_ratio{$L,engine=\"sm\"} 0.40" "gpuvirt_vgpu_utilization_ratio{$L,engine=\"memory\"} 0.25" \
                "gpuvirt_vgpu_utilization_ratio{$L,engine=\"encoder\"} 0.05" "gpuvirt_vgpu_framebuffer_used_bytes{$L} 2147483648" \
                "gpuvirt_vgpu_licensed{$L} 1" "gpuvirt_vgpu_license_state{$L,state=\"licensed\",expiry=\"valid\"} 1" \
                "gpuvirt_vgpu_license_expiry_timestamp_seconds{$L} $(date -u -d 2027-03-01T12:00:00Z +%s)" \
                'gpuvirt_host_driver_info{version="550.127.05"} 1'; do
                grep -qx "$want" <<<"$m" && ok || fail "metric $want missing: $(grep -E 'vgpu_|driver_info' <<<"$m")"
        done
        promtool_clean "vgpu"
        [ "$(health_of 0000:16:00.4)" = healthy ] && ok || fail "licensed vGPU not healthy: $(health_of 0000:16:00.4)"
        get /v1/units | jq -e '.units[] | select(.unit == "0000:16:00.4") | .vgpu_instance.vm == "vm-a" and .vgpu_instance.license.licensed
                and .vgpu_instance.license.expires == "2027-03-01T12:00:00Z" and .vgpu_instance.sm_utilization_percent == 40' >/dev/null &&
                ok || fail "vgpu_instance in /v1/units: $(get /v1/units | jq -c '.units[] | select(.unit == "0000:16:00.4")')"
        get /v1/gpus | jq -e '.gpus[] | select(.address == "0000:16:00.0") | .vgpu_instances | length == 1' >/dev/null &&
                ok || fail "vgpu_instances in /v1/gpus: $(get /v1/gpus | jq -c '.gpus[] | select(.address == "0000:16:00.0") | .vgpu_instances')"
        # the guest loses its license: degraded with the reason, and healthy again once licensed and clean
        "$GPUVIRT" --root "$H" sim vgpu 16:00.4 license=restricted
        wait_health 0000:16:00.4 degraded
        get /v1/units | jq -r '.units[] | select(.unit == "0000:16:00.4") | .health.reason' | grep -q "vGPU not licensed: unlicensed (restricted)" &&
                ok || fail "license reason: $(get /v1/units | jq -c '.units[] | select(.unit == "0000:16:00.4") | .health')"
        get /metrics | grep -qx "gpuvirt_vgpu_license_state{$L,state=\"unlicensed (restricted)\",expiry=\"not_applicable\"} 1" &&
                ok || fail "restricted state metric: $(get /metrics | grep license_state)"
        get /metrics | grep -q "^gpuvirt_vgpu_license_expiry_timestamp_seconds" && fail "an unlicensed vGPU has an expiry" || ok
        "$GPUVIRT" --root "$H" sim vgpu 16:00.4 license=licensed
        wait_health 0000:16:00.4 healthy 10
        # the VM stops: the manager no longer reports the vGPU, no series stays behind
        "$GPUVIRT" --root "$H" sim vgpu 16:00.4 vm=
        for _ in $(seq 50); do get /metrics | grep -q '^gpuvirt_vgpu_' || break; sleep 0.1; done
        get /metrics | grep -q '^gpuvirt_vgpu_' && fail "a stopped VM's vGPU still exported" || ok
        stop_daemon
        # mdev vGPUs (t4-grid): the instance names its mdev, whatever holds it
        H=$TMP/t4
        "$GPUVIRT" sim create "$H" --profile t4-grid >/dev/null
        u=$("$GPUVIRT" --root "$H" vgpu create 3b:00.0 nvidia-222 | cut -d: -f1)
        "$GPUVIRT" --root "$H" sim vgpu "$u" vm=vm-b license=unlicensed util_sm=7
        start_daemon "$H" --interval 0.2 || exit 1
        for _ in $(seq 50); do get /metrics | grep -q '^gpuvirt_vgpu_licensed' && break; sleep 0.1; done
        get /metrics | grep -qx "gpuvirt_vgpu_licensed{gpu=\"0000:3b:00.0\",unit=\"$u\",vgpu=\"[0-9a-f-]*\",domain=\"vm-b\"} 0" &&
                ok || fail "mdev vGPU license: $(get /metrics | grep vgpu_)"
        get /metrics | grep -q "gpuvirt_vgpu_instance_info{.*unit=\"$u\".*profile=\"GRID T4-1B\"} 1" && ok || fail "mdev vGPU info: $(get /metrics | grep instance_info)"
        get /v1/units | jq -e --arg u "$u" '.units[] | select(.unit == $u) | .vgpu_instance.license.state == "unlicensed"' >/dev/null &&
                ok || fail "mdev vgpu_instance: $(get /v1/units | jq -c --arg u "$u" '.units[] | select(.unit == $u)')"
        promtool_clean "vgpu mdev"
        stop_daemon
        ;;
*)
        echo "unknown part $PART" >&2
        exit 2
        ;;
esac
finish
