# lab-common.sh - what the namespace labs share (sourced, not run): checks
# that print "ok"/"FAIL" and count, waiting, stopping our own processes,
# veth pairs and gw-dataplane configs. The lab sets LAB (its name in
# messages), P (its namespace prefix) and RUN (its run directory) first.
# shellcheck shell=bash

pass=0
fail=0
PIDS=()
say() { printf '%s %s: %s\n' "$(date +%T)" "$LAB" "$*"; }
ok() { pass=$((pass + 1)); say "ok   $*"; }
bad() { fail=$((fail + 1)); say "FAIL $*"; }
check() { # check "description" command...
    local d=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$d"; else
        bad "$d"
        printf '%s\n' "$out" | tail -4 | sed 's/^/      /'
    fi
}
wait_for() { # wait_for SECONDS command...
    local s=$1
    shift
    for _ in $(seq $((s * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}
stop() { # stop PID...: TERM, then KILL after 5 s
    local p
    for p in "$@"; do kill "$p" 2>/dev/null || true; done
    for p in "$@"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
}
# Our processes, namespaces and DPDK run directories, gone; the run
# directory kept in GW_LAB_KEEP_LOGS when a check failed.
lab_cleanup() {
    set +e
    stop "${PIDS[@]}"
    for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do
        rm -rf "/var/run/dpdk/$ns"
        ip netns del "$ns"
    done
    if [ "$fail" -ne 0 ] && [ -n "${GW_LAB_KEEP_LOGS:-}" ]; then cp -r "$RUN" "$GW_LAB_KEEP_LOGS"; fi
    rm -rf "$RUN"
}
need_binaries() { # our three release binaries in $BIN
    local b
    for b in gw-dataplane gw-controlplane gwctl; do
        [ -x "$BIN/$b" ] || { echo "$LAB: $BIN/$b missing (cargo build --release)" >&2; exit 2; }
    done
}
lab_namespaces() { # lab_namespaces NAME...: quiet namespaces (no IPv6 chatter)
    local n
    for n in "$@"; do
        ip netns add "$P-$n"
        ip netns exec "$P-$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        ip -n "$P-$n" link set lo up
    done
}
veth() { # veth NS1 IF1 NS2 IF2: a pair, checksum offload off, both up
    ip link add "$2" netns "$P-$1" type veth peer name "$4" netns "$P-$3"
    ip netns exec "$P-$1" ethtool -K "$2" tx off >/dev/null
    ip netns exec "$P-$3" ethtool -K "$4" tx off >/dev/null
    ip -n "$P-$1" link set "$2" up
    ip -n "$P-$3" link set "$4" up
}
# dataplane NAME PORT ADDR...: $RUN/NAME.dp.toml, a gateway on af_packet
# ports with the routes in $RUN/NAME.routes, its control dir $RUN/NAME.
dataplane() {
    local n=$1 i=0
    shift
    mkdir -p "$RUN/$n"
    {
        printf 'mode = "gateway"\n[eal]\nlcores = "0,1"\nfile_prefix = "%s"\nmemory_mb = 256\n' "$P-$n"
        printf '[mempool]\nmbufs = 4095\n[worker]\nidle_sleep_max_us = 2000\n'
        while [ $# -gt 0 ]; do
            printf '[[port]]\nname = "%s"\ndevice = "net_af_packet%d,iface=%s,qpairs=2"\naddresses = ["%s"]\n' "$1" "$i" "$1" "$2"
            i=$((i + 1))
            shift 2
        done
        cat "$RUN/$n.routes" 2>/dev/null || true
        printf '[control]\ndir = "%s"\nwait_for_sync = true\n' "$RUN/$n"
    } >"$RUN/$n.dp.toml"
}
# cp_config NAME CONN ROLE LOCAL REMOTE ID PEER_ID LOCAL_TS REMOTE_TS:
# $RUN/NAME.cp.toml's daemon section (dataplane transport; CP_RETRANSMIT_MS,
# default 500, and the lines in CP_DAEMON_EXTRA) and the head of
# connection CONN with the lab's $PSK; the lab appends the rest.
cp_config() {
    cat >"$RUN/$1.cp.toml" <<EOF
[daemon]
transport = "dataplane"
control_dir = "$RUN/$1"
admin_socket = "$RUN/$1.sock"
retransmit_base_ms = ${CP_RETRANSMIT_MS:-500}
${CP_DAEMON_EXTRA:-}
[[connection]]
name = "$2"
role = "$3"
local = "$4"
remote = "$5"
local_id = "$6"
remote_id = "$7"
psk = "$PSK"
local_ts = ["$8"]
remote_ts = ["$9"]
EOF
}
# pings_across NS IF OUT SRC DST COUNT: pings from $P-cpe-lan every 5 ms
# (output in OUT) while link IF of namespace NS goes down 1 s in; prints
# how many were lost.
pings_across() {
    ip netns exec "$P-cpe-lan" ping -D -n -i 0.005 -W 1 -c "$6" -I "$4" "$5" >"$3" 2>&1 &
    local pp=$!
    sleep 1
    ip -n "$P-$1" link set "$2" down
    wait "$pp" || true
    awk '/packets transmitted/ {print $1 - $4}' "$3"
}
lab_result() { # the tally; exits 1 with the control planes' logs on a failure
    say "$pass passed, $fail failed"
    if [ "$fail" -ne 0 ]; then
        local f
        for f in "$@"; do say "$f log:"; tail -n 25 "$RUN/$f.log"; done
        exit 1
    fi
}

# cpe_hub_lab: the CPE-and-hub topology of the MOBIKE-X and Clone IKE SA
# labs, with both gateways' dataplane configs:
#
#   cpe-lan 10.91.1.10, 10.91.2.10          hub-lan 10.92.1.10, 10.92.2.10
#      | lan 10.91.0.1                         | lan 10.92.0.1
#    [cpe] up1 10.81.0.1 ---+              [hub] wan 10.80.0.1
#          up2 10.82.0.1 ---+--- isp (router) ---+
cpe_hub_lab() {
    lab_namespaces cpe hub isp cpe-lan hub-lan
    veth cpe up1 isp i-up1
    veth cpe up2 isp i-up2
    veth hub wan isp i-hub
    veth cpe lan cpe-lan eth0
    veth hub lan hub-lan eth0
    ip -n "$P-isp" addr add 10.81.0.254/24 dev i-up1
    ip -n "$P-isp" addr add 10.82.0.254/24 dev i-up2
    ip -n "$P-isp" addr add 10.80.0.254/24 dev i-hub
    ip netns exec "$P-isp" sysctl -qw net.ipv4.ip_forward=1
    ip -n "$P-cpe-lan" addr add 10.91.1.10/16 dev eth0
    ip -n "$P-cpe-lan" addr add 10.91.2.10/16 dev eth0
    ip -n "$P-cpe-lan" route add default via 10.91.0.1
    ip -n "$P-hub-lan" addr add 10.92.1.10/16 dev eth0
    ip -n "$P-hub-lan" addr add 10.92.2.10/16 dev eth0
    ip -n "$P-hub-lan" route add default via 10.92.0.1

    # The routes and dataplane configs of both gateways.
    printf '[[route]]\ndst = "10.80.0.0/24"\nport = "up1"\nvia = "10.81.0.254"\n[[route]]\ndst = "0.0.0.0/0"\nport = "up2"\nvia = "10.82.0.254"\n' >"$RUN/cpe.routes"
    printf '[[route]]\ndst = "0.0.0.0/0"\nport = "wan"\nvia = "10.80.0.254"\n' >"$RUN/hub.routes"
    dataplane cpe up1 10.81.0.1/24 up2 10.82.0.1/24 lan 10.91.0.1/16
    dataplane hub wan 10.80.0.1/24 lan 10.92.0.1/16
}
