# A real 3-member etcd cluster on loopback for the fleet tests and benchmark (sourced).
# etcd_start DIR: members m0..m2 with data under DIR (tmpfs), free ports chosen now; sets ETCD_ENDPOINTS
# (HOST:PORT,...), ETCD_PIDS and ETCD_CLIENT[i]. etcd_stop stops every member (the caller's EXIT trap
# calls it, so a failing test leaves nothing running). etcd_leader prints the index of the leader.
ETCD_PIDS=()
ETCD_CLIENT=()
declare -A PID # the agents a test started, by host

# wait_for SECONDS CMD...: until CMD succeeds
wait_for() {
        local t=$1; shift
        for _ in $(seq $((t * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
        return 1
}

# the EXIT trap of a fleet test: every agent and etcd member stopped, the scratch tree removed
fleet_cleanup() {
        local p
        for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null || true; done
        for p in "${PID[@]}"; do wait "$p" 2>/dev/null || true; done
        etcd_stop
        rm -rf "$TMP"
}

free_ports() { # N
        /usr/bin/python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

etcd_member() { # i DIR CLUSTER
        local i=$1 dir=$2 cluster=$3
        etcd --name "m$i" --data-dir "$dir/m$i" \
                --listen-client-urls "http://127.0.0.1:${ETCD_CLIENT[$i]}" \
                --advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT[$i]}" \
                --listen-peer-urls "http://127.0.0.1:${ETCD_PEER[$i]}" \
                --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER[$i]}" \
                --initial-cluster "$cluster" --initial-cluster-state "${4:-new}" --initial-cluster-token "gpuvirt-$$" \
                --log-level error >"$dir/m$i.log" 2>&1 &
        ETCD_PIDS[$i]=$!
}

etcd_start() { # DIR
        local dir=$1
        mkdir -p "$dir"
        local p
        read -r -a p <<<"$(free_ports 6)"
        ETCD_CLIENT=("${p[0]}" "${p[1]}" "${p[2]}")
        ETCD_PEER=("${p[3]}" "${p[4]}" "${p[5]}")
        ETCD_CLUSTER="m0=http://127.0.0.1:${p[3]},m1=http://127.0.0.1:${p[4]},m2=http://127.0.0.1:${p[5]}"
        ETCD_DIR=$dir
        for i in 0 1 2; do etcd_member "$i" "$dir" "$ETCD_CLUSTER"; done
        ETCD_ENDPOINTS="127.0.0.1:${p[0]},127.0.0.1:${p[1]},127.0.0.1:${p[2]}"
        for _ in $(seq 100); do
                if etcdctl --endpoints "$ETCD_ENDPOINTS" endpoint health >/dev/null 2>&1; then return 0; fi
                sleep 0.1
        done
        echo "etcd did not come up:" >&2
        cat "$dir"/m*.log >&2
        return 1
}

# restart member i on its old data (after a kill)
etcd_restart() { # i
        etcd_member "$1" "$ETCD_DIR" "$ETCD_CLUSTER" existing
}

etcd_leader() {
        local st
        st=$(etcdctl --endpoints "$ETCD_ENDPOINTS" endpoint status -w json 2>/dev/null) || return 1
        local i
        for i in 0 1 2; do
                if echo "$st" | jq -e --arg ep "127.0.0.1:${ETCD_CLIENT[$i]}" \
                        '.[] | select(.Endpoint | endswith($ep)) | .Status.leader == .Status.header.member_id' >/dev/null; then
                        echo "$i"
                        return 0
                fi
        done
        return 1
}

etcd_stop() {
        local pid
        for pid in "${ETCD_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
        for pid in "${ETCD_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
        ETCD_PIDS=()
}
