#!/usr/bin/env bash
# lab.sh - the main job: a self-contained lab on this machine.
#
#   ./lab.sh              the MPSA lab (below): brings it up, sends traffic,
#                         shows live what happens for LAB_SECONDS (default
#                         40), tears it down
#   ./lab.sh mpsa --check the same, with checks instead of the live view
#                         (./test.sh runs this); exits non-zero on a failure
#   ./lab.sh mobikex      MOBIKE-X between two of our gateways: a CPE with
#                         two uplinks adds and removes addresses on selected
#                         child SAs, then loses a link (with checks; the
#                         script is controlplane/tests/lab-mobikex.sh)
#   ./lab.sh clone        Clone IKE SA (RFC 7791): a CPE with two uplinks
#                         authenticates once, clones its IKE SA onto the
#                         second uplink, runs one VPN per uplink, loses and
#                         regains uplink 1; then the same CPE config against
#                         strongSwan (with checks; controlplane/tests/lab-clone.sh)
#   ./lab.sh failover     IKE SA stub synchronization: hub A with three
#                         endpoints and a strongSwan road warrior dies
#                         (kill -9) under traffic; standby hub B rebuilds the
#                         endpoints' IKE SAs from stubs in gw-stubbank on a
#                         three-member etcd (one member killed too), strongSwan
#                         reconnects; A returns and takes one endpoint back by
#                         redirect (with checks; controlplane/tests/lab-failover.sh)
#   ./lab.sh forward      the dataplane alone on DPDK virtual devices: IMIX
#                         from a line-rate pcap source, plain forwarding then
#                         AES-128-GCM encryption, LAB_SECONDS each (default 8)
#
# The MPSA lab, in network namespaces (prefix gwl<pid>), every gateway a
# gw-controlplane + gw-dataplane pair on net_af_packet ports:
#
#      host-hub 10.0.0.10                 rw (strongSwan road warrior)
#          |  lan0 10.0.0.1                  192.0.2.50, inner 10.1.50.1
#        [hub] 192.0.2.1 -----+                   |
#                             |  br0 ("the internet", namespace -wan)
#   [a] 192.0.2.11 -----------+-------------------+
#   [b] 192.0.2.12 -----------+
#   [c] 192.0.2.13 -----------+
#   [d] 192.0.2.14 -----------+  (joins later)
#    each endpoint: lan0 10.1.<n>.1 -- host-<x> 10.1.<n>.10 (n = 1 .. 4)
#
# The hub authenticates a, b and c with IKEv2 and hands them one group SA
# (MPSA); a <-> b <-> c traffic then goes straight between their outer
# addresses with the group SPI, never through the hub; endpoint <-> hub LAN
# traffic uses each endpoint's own child SA; the strongSwan client is a
# plain road warrior of the same hub. Every LAN host runs BIRD 2 for BGP
# peer discovery (mpsa-04 section 4): the hub's is a route reflector, each
# endpoint's announces its LAN with the endpoint's ESP address as next hop
# over its child SA, and gw-controlplane puts what it learns into the
# group's member table; d has no static routes and joins that way.
# Configs: configs/lab/mpsa/ (BIRD's: gw-controlplane --bird-config).
#
# Needs root. Creates only its own namespaces, processes and run directory
# and removes them on exit (Ctrl-C included).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
mode=${1:-mpsa}
check=0
[[ "${2:-}" == "--check" ]] && check=1

[[ -n "${LAB_NO_SETUP:-}" ]] || ./setup.sh
[[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"

# ---- the dataplane alone (the lab before the control plane) -------------
if [[ "$mode" == "forward" ]]; then
    secs=${LAB_SECONDS:-8}
    echo "lab: building (release)"
    cargo build --release --quiet -p dataplane -p benches
    mkdir -p target/lab
    ./target/release/gw-bench pcap --size imix --count 252 target/lab/traffic.pcap
    run() { # config, title
        echo
        echo "lab: $2 for ${secs}s"
        timeout -s INT -k 5 "$secs" ./target/release/gw-dataplane --config "$1" \
            2> >(grep -v -E '^EAL: |^TELEMETRY: ' >&2) || [[ $? == 124 ]]
    }
    run configs/lab/forward.toml "phase 1: plain forwarding, lan (net_pcap, IMIX replayed) -> wan (net_null)"
    run configs/lab/gateway.toml "phase 2: gateway, lan -> ESP AES-128-GCM over UDP 4500 -> wan"
    echo "lab: done"
    exit 0
fi
if [[ "$mode" == "mobikex" || "$mode" == "clone" || "$mode" == "failover" ]]; then
    echo "lab: building (release)"
    cargo build --release --quiet -p dataplane -p controlplane -p stubbank
    exec "controlplane/tests/lab-$mode.sh"
fi
[[ "$mode" == "mpsa" ]] || { echo "usage: ./lab.sh [mpsa [--check] | mobikex | clone | failover | forward]" >&2; exit 2; }

# ---- the MPSA lab --------------------------------------------------------
secs=${LAB_SECONDS:-40}
IOP=${GW_INTEROP_DIR:-$ROOT/../shared/interop}
BIN=$ROOT/target/release
P=gwl$$
RUN=$(mktemp -d /tmp/gw-lab.XXXXXX)
export SSLAB_RUN_DIR=$RUN/sslab
PSK=mpsa-lab-psk-0123
NODES=(hub a b c d)
LAB=lab
# say/ok/bad/check and the counters (also wait_for, stop, veth, ...).
# shellcheck source=controlplane/tests/lab-common.sh
. controlplane/tests/lab-common.sh

cleanup() {
    set +e
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    [ -x "$IOP/strongswan-peer.sh" ] && "$IOP/strongswan-peer.sh" stop-all --purge >/dev/null 2>&1
    for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
    for n in "${NODES[@]}"; do rm -rf "/var/run/dpdk/$P-$n"; done
    if [ "$fail" -ne 0 ] && [ -n "${GW_LAB_KEEP_LOGS:-}" ]; then cp -r "$RUN" "$GW_LAB_KEEP_LOGS"; fi
    rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building (release)"
cargo build --release --quiet -p dataplane -p controlplane

# Topology. Kernel sides never offload checksums (veth leaves them partial,
# ../shared/interop/NOTES.md) and never speak IPv6 (no ND noise on the wire).
quiet_ns() { ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; }
ip netns add "$P-wan"
quiet_ns "$P-wan"
ip -n "$P-wan" link add br0 type bridge
ip -n "$P-wan" link set br0 up
wan_port() { # namespace, port name on the bridge
    ip -n "$P-wan" link add "$2" type veth peer name wan0 netns "$1"
    ip -n "$P-wan" link set "$2" master br0 up
    ip -n "$1" link set wan0 up
}
declare -A WAN=([hub]=192.0.2.1 [a]=192.0.2.11 [b]=192.0.2.12 [c]=192.0.2.13 [d]=192.0.2.14)
declare -A LANNET=([hub]=10.0.0 [a]=10.1.1 [b]=10.1.2 [c]=10.1.3 [d]=10.1.4)
for n in "${NODES[@]}"; do
    ip netns add "$P-$n"
    quiet_ns "$P-$n"
    ip -n "$P-$n" link set lo up
    wan_port "$P-$n" "p-$n"
    # The LAN host behind the gateway.
    ip netns add "$P-host-$n"
    quiet_ns "$P-host-$n"
    ip -n "$P-host-$n" link set lo up
    ip link add lan0 netns "$P-$n" type veth peer name eth0 netns "$P-host-$n"
    ip -n "$P-$n" link set lan0 up
    ip -n "$P-host-$n" addr add "${LANNET[$n]}.10/24" dev eth0
    ip -n "$P-host-$n" link set eth0 up
    ip -n "$P-host-$n" route add default via "${LANNET[$n]}.1"
    ip netns exec "$P-host-$n" ethtool -K eth0 tx off >/dev/null
done
# The road warrior: strongSwan with its inner address on lo.
ip netns add "$P-rw"
quiet_ns "$P-rw"
ip -n "$P-rw" link set lo up
ip -n "$P-rw" addr add 10.1.50.1/32 dev lo
wan_port "$P-rw" p-rw
ip -n "$P-rw" addr add 192.0.2.50/24 dev wan0
ip netns exec "$P-rw" ethtool -K wan0 tx off >/dev/null

# The gateways: configs from configs/lab/mpsa with this run's paths.
for n in "${NODES[@]}"; do
    mkdir -p "$RUN/$n"
    for k in dataplane controlplane; do
        sed -e "s|@RUN@|$RUN|g" -e "s|@P@|$P|g" "configs/lab/mpsa/$n.$k.toml" >"$RUN/$n.$k.toml"
    done
    "$BIN/gw-dataplane" --config "$RUN/$n.dataplane.toml" --check >/dev/null
    "$BIN/gw-controlplane" --config "$RUN/$n.controlplane.toml" --check >/dev/null
done
# The first packets on the wire, for the logs when something fails.
ip netns exec "$P-wan" tcpdump -l -n -e -i br0 -c 60 >"$RUN/wire-start.log" 2>/dev/null &
PIDS+=($!)
say "starting the hub, then endpoints a, b, c (gw-dataplane + gw-controlplane each)"
declare -A DP_PID
start_dataplane() { # node: its gw-dataplane, in the background
    ip netns exec "$P-$1" "$BIN/gw-dataplane" --config "$RUN/$1.dataplane.toml" --stats-interval 0 \
        >>"$RUN/$1.dataplane.log" 2>&1 &
    DP_PID[$1]=$!
    PIDS+=($!)
}
declare -A CP_PID
start_controlplane() { # node: its gw-controlplane, in the background, up to its admin socket
    rm -f "$RUN/$1.sock"
    ip netns exec "$P-$1" "$BIN/gw-controlplane" --config "$RUN/$1.controlplane.toml" \
        >>"$RUN/$1.controlplane.log" 2>&1 &
    CP_PID[$1]=$!
    PIDS+=($!)
    for _ in $(seq 100); do [ -S "$RUN/$1.sock" ] && break; sleep 0.1; done
}
# start_bird node: BIRD 2 on the node's LAN host, with the config
# gw-controlplane writes for the node's [bgp].
declare -A BIRD_PID
start_bird() {
    "$BIN/gw-controlplane" --config "$RUN/$1.controlplane.toml" --bird-config >"$RUN/$1.bird.conf"
    ip netns exec "$P-host-$1" bird -f -c "$RUN/$1.bird.conf" -s "$RUN/$1.bird.ctl" -P "$RUN/$1.bird.pid" \
        >>"$RUN/$1.bird.log" 2>&1 &
    BIRD_PID[$1]=$!
    PIDS+=($!)
}
for n in hub a b c; do
    start_dataplane "$n"
    : >"$RUN/$n.controlplane.log"
    start_controlplane "$n"
    start_bird "$n"
    [ "$n" == hub ] && sleep 0.5
done
gwctl() { "$BIN/gwctl" -s "$RUN/$1.sock" "${@:2}"; }
ss() { "$IOP/strongswan-peer.sh" "$@"; }

# Wait for every endpoint's IKE SA and group SA (wait_for: lab-common.sh).
has_group() { gwctl "$1" list | grep -q "^group hub: endpoint, SA [0-9a-f]"; }
all_groups() { has_group a && has_group b && has_group c; }
dump_logs() {
    local f
    for f in "$RUN"/*.log; do
        echo "== $(basename "$f")"
        grep -a -v -E '^EAL: |^TELEMETRY: ' "$f" | tail -n 12
    done
}
wait_for 20 all_groups || { say "endpoints did not get the group SA"; dump_logs; exit 1; }
say "a, b and c have their IKE SAs and the group SA"

# A real Prometheus (Debian's, from setup.sh) in the hub's namespace scrapes
# the hub's metrics endpoint every second for the rest of the lab; the
# checks read the series back from its HTTP API.
cat >"$RUN/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: gw-hub
    static_configs:
      - targets: ["127.0.0.1:9469"]
EOF
if command -v prometheus >/dev/null; then
    ip netns exec "$P-hub" prometheus --config.file="$RUN/prometheus.yml" --storage.tsdb.path="$RUN/prometheus" \
        --web.listen-address=127.0.0.1:9090 >"$RUN/prometheus.log" 2>&1 &
    PIDS+=($!)
    say "Prometheus scrapes the hub (inside its namespace: 127.0.0.1:9090, target 127.0.0.1:9469)"
fi
promq() { # promq PROMQL: the first sample's value (empty when none)
    ip netns exec "$P-hub" python3 -c '
import json, sys, urllib.parse, urllib.request
q = urllib.parse.urlencode({"query": sys.argv[1]})
r = json.load(urllib.request.urlopen("http://127.0.0.1:9090/api/v1/query?" + q, timeout=5))
res = r["data"]["result"]
print(res[0]["value"][1] if res else "")' "$1" 2>/dev/null
}
prom_is() { [ "$(promq "$1")" = "$2" ]; }       # prom_is PROMQL VALUE
prom_at_least() { local v; v=$(promq "$1"); [ -n "$v" ] && python3 -c "import sys; sys.exit(float('$v') < $2)"; }

say "strongSwan road warrior (rw.lab) connects to the hub"
ss start rw --netns "$P-rw" --role initiator --local 192.0.2.50 --remote 192.0.2.1 \
    --local-id rw.lab --remote-id hub.lab --psk "$PSK" --local-ts 10.1.50.0/24 --remote-ts 10.0.0.0/24 \
    >/dev/null
ss initiate rw --timeout 15 >/dev/null || say "strongSwan could not initiate"

host() { ip netns exec "$P-host-$1" "${@:2}"; }
# First packets towards a fresh neighbour are dropped while it is
# solicited: one ping each way warms every path up.
for pair in "a 10.1.2.10" "b 10.1.3.10" "c 10.1.1.10" "a 10.0.0.10" "b 10.0.0.10" "c 10.0.0.10"; do
    set -- $pair
    host "$1" ping -q -c 2 -W 1 "$2" >/dev/null 2>&1 || true
done
ip netns exec "$P-rw" ping -q -c 2 -W 1 -I 10.1.50.1 10.0.0.10 >/dev/null 2>&1 || true

group_spi() { gwctl hub --json list | python3 -c 'import json,sys; print(json.load(sys.stdin)["groups"][0]["spi"])'; }
child_out_spi() { # endpoint -> its child SA's outbound SPI
    gwctl "$1" --json list | python3 -c 'import json,sys; print(json.load(sys.stdin)["sas"][0]["children"][0]["spi_out"])'
}

if [ "$check" -eq 0 ]; then
    # ---- the live view ----------------------------------------------------
    say "traffic: a->b, b->c, c->a (group SA, direct), a/b/c->hub LAN (child SAs), rw->hub LAN; ${secs}s"
    for pair in "a 10.1.2.10" "b 10.1.3.10" "c 10.1.1.10" "a 10.0.0.10" "b 10.0.0.10" "c 10.0.0.10"; do
        set -- $pair
        host "$1" ping -q -i 0.2 -w "$secs" "$2" >"$RUN/ping-$1-$2" 2>&1 &
        PIDS+=($!)
    done
    ip netns exec "$P-rw" ping -q -i 0.2 -w "$secs" -I 10.1.50.1 10.0.0.10 >"$RUN/ping-rw" 2>&1 &
    PIDS+=($!)
    # Who sends ESP to whom on the wire (captured on the bridge).
    ip netns exec "$P-wan" tcpdump -l -n -i br0 esp or udp port 4500 >"$RUN/wire.txt" 2>/dev/null &
    PIDS+=($!)
    end=$((SECONDS + secs))
    while [ $SECONDS -lt $end ]; do
        sleep 5
        echo
        say "--- hub: gwctl list (IKE SAs, child SAs with counters, the group) ---"
        gwctl hub list | grep -E "^(members|group)|  child|    (in|out) " | sed 's/^/  /'
        for n in a b c; do
            gwctl "$n" list | grep "^group" | sed "s/^/  $n: /"
        done
        say "--- ESP on the wire so far, by path (tcpdump on the bridge) ---"
        awk '/spi=/ { split($3, s, "."); split($5, d, "."); src=s[4]; dst=d[4]; sub(":", "", dst);
               spi=$0; sub(/.*spi=/, "", spi); sub(/,.*/, "", spi);
               k = "192.0.2." src " -> 192.0.2." dst "  spi " spi (/UDP-encap/ ? " (in UDP 4500)" : ""); c[k]++ }
             END { for (k in c) printf "  %-44s %6d packets\n", k, c[k] }' "$RUN/wire.txt" | sort
    done
    echo
    for f in "$RUN"/ping-*; do
        printf '  %-28s %s\n' "$(basename "$f")" "$(grep -E 'packets transmitted' "$f" || echo '-')"
    done
    say "done; tearing down"
    exit 0
fi

# ---- checks (./test.sh) -----------------------------------------------------
ping_ok() { "$@" 2>&1 | grep -q ' 0% packet loss'; }
check "a -> b through the group SA" ping_ok host a ping -c 5 -i 0.1 -W 1 10.1.2.10
check "b -> c through the group SA" ping_ok host b ping -c 5 -i 0.1 -W 1 10.1.3.10
check "c -> a through the group SA" ping_ok host c ping -c 5 -i 0.1 -W 1 10.1.1.10
to_hub() { local n; for n in a b c; do ping_ok host "$n" ping -c 3 -i 0.1 -W 1 10.0.0.10 || return 1; done; }
check "a, b, c -> hub LAN through their child SAs" to_hub
check "strongSwan road warrior -> hub LAN" ping_ok ip netns exec "$P-rw" ping -c 3 -i 0.1 -W 1 -I 10.1.50.1 10.0.0.10
reached_all() { gwctl hub list | grep -q 'members 3 up of 4, delivered to 3'; }
check "the hub's group reached all three endpoints" reached_all
watched() { # two refreshes of gwctl watch, each with the hub's group
    local w
    w=$(gwctl hub watch --count 2 -n 0.3)
    [ "$(grep -c '^gwctl watch list' <<<"$w")" = 2 ] && [ "$(grep -c '^group mesh: gateway' <<<"$w")" = 2 ]
}
check "gwctl watch: the list twice, refreshed" watched
# The dataplane's own tables, through gwctl.
check "gwctl policies (a): the hub LAN protected with a's child SA" \
    bash -c "'$BIN/gwctl' -s '$RUN/a.sock' policies | grep -E '^10.0.0.0/24 +protect with SA [0-9a-f]{8}'"
check "gwctl routes (hub): its LAN on link" bash -c "'$BIN/gwctl' -s '$RUN/hub.sock' routes | grep -E '^10.0.0.0/24 +port [0-9]'"
check "gwctl neighbors (hub): a's outer address resolved" \
    bash -c "'$BIN/gwctl' -s '$RUN/hub.sock' neighbors | grep -E '^192.0.2.11 +([0-9a-f]{2}:){5}[0-9a-f]{2}'"
ports_counted() { gwctl hub ports | grep -A1 ': link up' | grep -qE 'rx +[1-9][0-9]* packets'; }
check "gwctl ports (hub): links up, packets counted" wait_for 3 ports_counted
telemetry() { echo /ethdev/list | timeout 10 dpdk-telemetry.py -f "$P-hub" 2>&1 | grep -q '"/ethdev/list": \[0, 1\]'; }
check "DPDK telemetry is on: dpdk-telemetry.py lists the hub's two ports" telemetry
check "gwctl drops (c): a table of reasons" bash -c "'$BIN/gwctl' -s '$RUN/c.sock' drops | grep -qE '^[a-z_]+ +[0-9]+$|^no drops$'"
mpsa_peers() { # a, b and c show MPSA at the hub; the road warrior is there without it
    local l
    l=$(gwctl hub list)
    [ "$(grep -c -E '\[[abc]\.lab\] MPSA' <<<"$l")" = 3 ] && grep -F '[rw.lab]' <<<"$l" | grep -vq MPSA
}
check "a, b, c negotiated MPSA; the strongSwan client did not (no V(MPSA)), so no group SA" mpsa_peers

# On the wire: a -> b is ESP with the group SPI from a's outer address
# straight to b's; the hub's port sees none of it. a -> hub is ESP with a's
# child SA.
spi_a=$(child_out_spi a)
ip netns exec "$P-wan" tcpdump -l -n -i p-b -c 200 esp >"$RUN/wire-b.txt" 2>/dev/null &
td_b=$!
PIDS+=($td_b)
ip netns exec "$P-wan" tcpdump -l -n -i p-hub esp >"$RUN/wire-hub.txt" 2>/dev/null &
td_h=$!
PIDS+=($td_h)
sleep 1
spi=$(group_spi)
host a ping -q -c 10 -i 0.05 -W 1 10.1.2.10 >/dev/null 2>&1 || true
host a ping -q -c 5 -i 0.05 -W 1 10.0.0.10 >/dev/null 2>&1 || true
sleep 1
kill "$td_b" "$td_h" 2>/dev/null || true
wait "$td_b" "$td_h" 2>/dev/null || true
check "a -> b on the wire: ESP 192.0.2.11 > 192.0.2.12 with group SPI 0x$spi" \
    grep -q "192.0.2.11 > 192.0.2.12: ESP(spi=0x$spi," "$RUN/wire-b.txt"
no_direct_at_hub() { ! grep -E '192.0.2.1[12] > 192.0.2.1[12]:' "$RUN/wire-hub.txt"; }
check "the hub's port saw no a <-> b ESP" no_direct_at_hub
check "a -> hub on the wire: ESP with a's child SA 0x$spi_a" \
    grep -q "192.0.2.11 > 192.0.2.1: ESP(spi=0x$spi_a," "$RUN/wire-hub.txt"

# BGP peer discovery (mpsa-04 section 4). Each LAN host's BIRD has an iBGP
# session over its endpoint's child SA to the hub's, a route reflector; an
# endpoint's control plane reads what its BIRD learned (prefix, and the
# member's ESP address as next hop) into the group's member table.
learned() { gwctl "$1" list | grep "learned by BGP:" | grep -qF "$2"; }
learned_abc() {
    learned a "10.1.2.0/24 via 192.0.2.12" && learned a "10.1.3.0/24 via 192.0.2.13" &&
        learned b "10.1.1.0/24 via 192.0.2.11" && learned c "10.1.2.0/24 via 192.0.2.12"
}
check "BGP: a, b and c learned each other's prefixes and ESP addresses through the hub's route reflector" \
    wait_for 30 learned_abc
check "BGP: the hub's member filter holds a, b and c at their ESP addresses" \
    grep -q "bgp: member filter: a.lab at 192.0.2.11, b.lab at 192.0.2.12, c.lab at 192.0.2.13" "$RUN/hub.controlplane.log"

# d joins: its gateway and BIRD start, no static routes in its config, none
# changed in a's, b's or c's. Within 10 s it reaches each of them, and each
# it, straight over the group SA.
say "d joins (no mpsa_routes anywhere for it)"
ip netns exec "$P-wan" tcpdump -l -n -i p-d esp >"$RUN/wire-d.txt" 2>/dev/null &
td_d=$!
PIDS+=($td_d)
sleep 0.5
t0=$(date +%s%N)
start_dataplane d
: >"$RUN/d.controlplane.log"
start_controlplane d
start_bird d
d_meshed() {
    local dst
    for dst in 10.1.1.10 10.1.2.10 10.1.3.10; do host d ping -c 1 -W 1 "$dst" >/dev/null 2>&1 || return 1; done
    for n in a b c; do host "$n" ping -c 1 -W 1 10.1.4.10 >/dev/null 2>&1 || return 1; done
}
joined=""
for _ in $(seq 60); do
    if d_meshed; then joined=$(python3 -c "print(f'{($(date +%s%N) - $t0) / 1e9:.1f}')"); break; fi
    sleep 0.2
done
check "d <-> a, b, c both ways ${joined:-never} s after d started (goal: within 10 s)" \
    python3 -c "import sys; sys.exit(not ('$joined' and float('$joined') <= 10))"
for n in a b c; do
    host d ping -q -c 3 -i 0.1 -W 1 "${LANNET[$n]}.10" >/dev/null 2>&1 || true
    host "$n" ping -q -c 3 -i 0.1 -W 1 10.1.4.10 >/dev/null 2>&1 || true
done
sleep 0.5
kill "$td_d" 2>/dev/null || true
wait "$td_d" 2>/dev/null || true
direct_d() { # ESP straight between d and each of a, b, c, both ways (no SA but the group's joins them)
    local x
    for x in 11 12 13; do
        grep -q "192.0.2.14 > 192.0.2.$x: ESP" "$RUN/wire-d.txt" && grep -q "192.0.2.$x > 192.0.2.14: ESP" "$RUN/wire-d.txt" || return 1
    done
}
check "on the wire (tcpdump at d's port): ESP straight between d and a, b, c, both ways" direct_d
check "a learned d's prefix by BGP: 10.1.4.0/24 via 192.0.2.14" learned a "10.1.4.0/24 via 192.0.2.14"
# The hub's filter (mpsa-04 section 5): d's child SA covers 10.1.44.0/24
# and d announces it, but the hub's group lets d announce only
# 10.1.4.0/24: BIRD refuses it, naming why, and no endpoint learns it.
hub_refused() {
    grep -q 'refused 10.1.44.0/24 from d.lab: not a prefix it may announce' "$RUN/hub.bird.log" &&
        ! gwctl a list | grep -q 10.1.44.0
}
check "the hub's filter refuses d's 10.1.44.0/24 (BIRD's log says why); a never learned it" wait_for 5 hub_refused
# A withdrawal: d's BIRD stops announcing (birdc disable); a drops the
# prefix from the group's member table and sends nothing towards d, then
# takes it back when d announces again.
birdc -s "$RUN/d.bird.ctl" disable gw_lan4 >/dev/null || say "birdc disable failed"
gone_at_a() { ! learned a "10.1.4.0/24"; }
check "d withdrew 10.1.4.0/24 (birdc disable gw_lan4): a's member table dropped it" wait_for 15 gone_at_a
check "a -> d after the withdrawal: nothing gets through" \
    bash -c "ip netns exec '$P-host-a' ping -q -c 3 -i 0.1 -W 1 10.1.4.10 2>&1 | grep -q ' 100% packet loss'"
birdc -s "$RUN/d.bird.ctl" enable gw_lan4 >/dev/null || say "birdc enable failed"
a_to_d() { ping_ok host a ping -c 2 -i 0.2 -W 1 10.1.4.10; }
check "d announces it again: a -> d flows again" wait_for 15 a_to_d
# A route whose next hop is not the announcing member's ESP address: d's
# BIRD, reconfigured, names 192.0.2.99 for its prefix. The hub's filter
# refuses it (BIRD's log says why), so a loses the route; d's own address
# again, and a has it back.
sed -i 's/bgp_next_hop = 192.0.2.14;/bgp_next_hop = 192.0.2.99;/' "$RUN/d.bird.conf"
birdc -s "$RUN/d.bird.ctl" configure >/dev/null || say "birdc configure failed"
wrong_next_hop() {
    grep -q 'refused 10.1.4.0/24 from d.lab: next hop 192.0.2.99 is not its ESP address 192.0.2.14' "$RUN/hub.bird.log" &&
        ! learned a "10.1.4.0/24"
}
check "d announcing 10.1.4.0/24 via 192.0.2.99: the hub's filter refuses it (not d's ESP address), a drops it" \
    wait_for 15 wrong_next_hop
sed -i 's/bgp_next_hop = 192.0.2.99;/bgp_next_hop = 192.0.2.14;/' "$RUN/d.bird.conf"
birdc -s "$RUN/d.bird.ctl" configure >/dev/null || say "birdc configure failed"
check "... via its own address again: a has it back" wait_for 15 learned a "10.1.4.0/24 via 192.0.2.14"
# d leaves for good: the rest of the lab runs with a, b and c.
gwctl d terminate hub >/dev/null
stop "${BIRD_PID[d]}"
d_gone() { ! gwctl hub list | grep -qF '[d.lab]'; }
check "d left: the hub has no IKE SA of d.lab" wait_for 10 d_gone

# Access control on the group SA (mpsa-04 section 5): a's LAN host claims
# an address of c's prefix towards b. a's key is good, so b decrypts it,
# then drops it: 10.1.3.0/24 is c's, and the packet came from a's outer
# address.
drops_b() { gwctl b stats | awk '/dataplane drop group_source_mismatch/ {print $4}'; }
g0=$(drops_b)
ip -n "$P-host-a" addr add 10.1.3.99/32 dev eth0
host a ping -q -c 5 -i 0.1 -W 1 -I 10.1.3.99 10.1.2.10 >"$RUN/spoof.txt" 2>&1 || true
ip -n "$P-host-a" addr del 10.1.3.99/32 dev eth0
sleep 1.5 # counters reach the control plane each second
g1=$(drops_b)
check "a's host sending from c's prefix to b: nothing gets through" grep -q ' 100% packet loss' "$RUN/spoof.txt"
check "b drops them as group_source_mismatch (${g0:-0} -> ${g1:-0})" test "${g1:-0}" -ge "$((${g0:-0} + 5))"
check "a -> b from a's own prefix still passes" ping_ok host a ping -c 3 -i 0.1 -W 1 10.1.2.10

# A group rekey (every 15 s here) under continuous a <-> b traffic loses
# nothing: 50 packets a second for 20 s, across at least one rollover.
before=$(group_spi)
host a ping -q -i 0.02 -c 1000 -W 1 10.1.2.10 >"$RUN/rollover.txt" 2>&1 || true
after=$(group_spi)
check "the group was rekeyed during the traffic ($before -> $after)" test "$before" != "$after"
check "group rekey under a <-> b traffic: $(grep -o '[0-9]* packets transmitted, [0-9]* received' "$RUN/rollover.txt")" \
    grep -q ' 0% packet loss' "$RUN/rollover.txt"
grep -h "group" "$RUN/a.controlplane.log" | tail -3 | sed 's/^/      a: /'

# gwctl reload under traffic: b takes a responder connection from a, a an
# initiator connection to b (a direct IKE SA, no MPSA), which comes up;
# then b drops its side and a's goes down. Meanwhile a -> b (group SA),
# b -> hub LAN (b's child SA) and the road warrior lose nothing, and the
# hub SAs keep their SPIs. A file with an error changes nothing.
ike_spi() { gwctl "$1" --json list | python3 -c 'import json,sys; print(" ".join(s["spi_i"] for s in json.load(sys.stdin)["sas"] if s["conn"] == sys.argv[1]))' "$2"; }
spi_a0=$(ike_spi a hub)
spi_b0=$(ike_spi b hub)
cp "$RUN/a.controlplane.toml" "$RUN/a.controlplane.orig"
cp "$RUN/b.controlplane.toml" "$RUN/b.controlplane.orig"
host a ping -q -i 0.05 -c 240 -W 1 10.1.2.10 >"$RUN/reload-ab.txt" 2>&1 &
ping_ab=$!
host b ping -q -i 0.05 -c 240 -W 1 10.0.0.10 >"$RUN/reload-bh.txt" 2>&1 &
ping_bh=$!
ip netns exec "$P-rw" ping -q -i 0.1 -c 120 -W 1 -I 10.1.50.1 10.0.0.10 >"$RUN/reload-rw.txt" 2>&1 &
ping_rw=$!
sleep 1
# lab_conn NAME ROLE LOCAL REMOTE LOCAL_ID REMOTE_ID LOCAL_TS REMOTE_TS: a [[connection]]
lab_conn() {
    printf '\n[[connection]]\nname = "%s"\nrole = "%s"\nlocal = "%s"\nremote = "%s"\n' "$1" "$2" "$3" "$4"
    printf 'local_id = "%s"\nremote_id = "%s"\npsk = "reload-lab-psk-4567"\n' "$5" "$6"
    printf 'local_ts = ["%s"]\nremote_ts = ["%s"]\n' "$7" "$8"
}
lab_conn from-a responder 192.0.2.12 192.0.2.11 b.lab a.lab 10.9.2.0/24 10.9.1.0/24 >>"$RUN/b.controlplane.toml"
lab_conn to-b initiator 192.0.2.11 192.0.2.12 a.lab b.lab 10.9.1.0/24 10.9.2.0/24 >>"$RUN/a.controlplane.toml"
check "gwctl reload on b: from-a added, hub kept" \
    bash -c "'$BIN/gwctl' -s '$RUN/b.sock' reload | grep -q 'kept hub; added from-a; removed none'"
check "gwctl reload on a: to-b added, hub kept" \
    bash -c "'$BIN/gwctl' -s '$RUN/a.sock' reload | grep -q 'kept hub; added to-b; removed none'"
to_b_up() { gwctl a list | awk '/^to-b: Established/ {f = 1; next} /^[^ ]/ {f = 0} f' | grep -q 'child .* Installed'; }
check "the added connection came up: a <-> b IKE SA and child SA" wait_for 10 to_b_up
cp "$RUN/b.controlplane.orig" "$RUN/b.controlplane.toml"
check "gwctl reload on b again: from-a removed" \
    bash -c "'$BIN/gwctl' -s '$RUN/b.sock' reload | grep -q 'removed from-a'"
to_b_down() { ! gwctl a list | grep -q '^to-b: Established'; }
check "the removed connection went down at both ends (a got the Delete)" wait_for 10 to_b_down
sed '/^\[daemon\]/a bogus = 1' "$RUN/b.controlplane.orig" >"$RUN/b.controlplane.toml"
bad_reload() {
    local out rc=0
    out=$("$BIN/gwctl" -s "$RUN/b.sock" reload 2>&1) || rc=$?
    [ "$rc" = 1 ] && grep -q 'nothing changed' <<<"$out" && grep -q 'bogus' <<<"$out"
}
check "a reload with an error is refused, naming it, and changes nothing" bad_reload
cp "$RUN/b.controlplane.orig" "$RUN/b.controlplane.toml"
cp "$RUN/a.controlplane.orig" "$RUN/a.controlplane.toml"
gwctl a reload >/dev/null || true
wait "$ping_ab" "$ping_bh" "$ping_rw" 2>/dev/null || true
check "the hub IKE SAs kept their SPIs through the reloads" test "$(ike_spi a hub) $(ike_spi b hub)" = "$spi_a0 $spi_b0"
for f in ab:"a -> b (group SA)" bh:"b -> hub LAN (child SA)" rw:"road warrior -> hub LAN"; do
    check "no loss during the reloads, $(cut -d: -f2 <<<"$f"): $(grep -o '[0-9]* packets transmitted, [0-9]* received' "$RUN/reload-${f%%:*}.txt")" \
        grep -q ' 0% packet loss' "$RUN/reload-${f%%:*}.txt"
done

# b's gw-dataplane is killed (kill -9) and started again under a -> b
# group traffic (50 packets a second). Its control plane installs
# everything again on the new dataplane's Hello, the group SA included,
# so the traffic comes back without a group rekey: right after one (the
# hub rekeys every 15 s), the SPI must be the same afterwards.
spi_now=$(group_spi)
rekeyed_since() { [ "$(group_spi)" != "$spi_now" ]; }
wait_for 17 rekeyed_since || true
sleep 1.5 # Rollover1 (1 s): everyone sends with the new SA
spi_r=$(group_spi)
# restart_b PID START READY OUT: under a -> b pings (one every 20 ms, 300,
# into OUT) kill -9 b's process PID, run START b, wait (15 s at most) for
# READY to hold a whole second: a process just started may still flush and
# fill the dataplane again after it first looks ready. Sets ready (1 once
# READY held that second, checked then: the hub's next timed rekey may come
# before the pings end), back_in (seconds from the start to the beginning
# of that second) and lost (pings lost).
restart_b() {
    host a ping -q -i 0.02 -c 300 -W 1 10.1.2.10 >"$RUN/$4" 2>&1 &
    local ping_r=$! t0 since="" now
    ready=0
    sleep 1
    kill -9 "$1"
    wait "$1" 2>/dev/null || true
    t0=$(date +%s%N)
    "$2" b
    for _ in $(seq 150); do
        if "$3" >/dev/null 2>&1; then
            now=$(date +%s%N)
            since=${since:-$now}
            if ((now - since >= 1000000000)); then
                ready=1
                break
            fi
        else
            since=""
        fi
        sleep 0.1
    done
    wait "$ping_r" 2>/dev/null || true
    back_in=$(python3 -c "print(f'{(${since:-$(date +%s%N)} - $t0) / 1e9:.1f}')")
    lost=$(awk '/packets transmitted/ {print $1 - $4}' "$RUN/$4")
}
b_has_group() { gwctl b dataplane-sas | grep -q "^group hub: sends with $spi_r, accepts .*$spi_r"; }
restart_b "${DP_PID[b]}" start_dataplane b_has_group restart-ab.txt
check "b's dataplane restarted (kill -9): gwctl shows the group SA $spi_r in it again ${back_in} s after its start" \
    test "$ready" = 1
check "... with no group rekey (the hub's group SA is still $spi_r)" test "$(group_spi)" = "$spi_r"
# 300 packets over 6 s; what is lost is the restart itself (EAL start,
# the Hello, the resync, neighbours solicited again), not a wait for a rekey.
check "a -> b through the group SA again after the restart: $lost of 300 lost, $((${lost:-0} * 20)) ms (one every 20 ms)" \
    test "${lost:-300}" -lt 150
check "a -> b after the restart, a fresh ping" ping_ok host a ping -c 5 -i 0.1 -W 1 10.1.2.10
grep -a "dataplane generation" "$RUN/b.controlplane.log" | tail -1 | sed 's/^/      b: /'

# b's gw-controlplane is killed (kill -9) and started again under a -> b
# group traffic. The new one flushes b's dataplane (fail_closed: nothing
# for a member's prefix leaves in the clear meanwhile), authenticates with
# the hub again (INITIAL_CONTACT: the hub drops b's old IKE SA) and gets
# the group SA after IKE_AUTH; the hub and b then agree on the group.
b_group_again() { # the new control plane got the hub's current group SA, b's dataplane sends with it
    local s
    s=$(group_spi)
    gwctl b list | grep -q "^group hub: endpoint, SA $s" && gwctl b dataplane-sas | grep -q "^group hub: sends with $s"
}
restart_b "${CP_PID[b]}" start_controlplane b_group_again restart-cp-ab.txt
check "b's control plane restarted (kill -9): it has the hub's group SA, its dataplane sends with it, ${back_in} s after the start" \
    test "$ready" = 1
check "... and the hub counts b up with the group delivered (3 of 3)" \
    wait_for 5 bash -c "'$BIN/gwctl' -s '$RUN/hub.sock' list | grep -q 'members 3 up of 4, delivered to 3'"
check "a -> b through the group SA again after it: $lost of 300 lost, $((${lost:-0} * 20)) ms (one every 20 ms)" \
    test "${lost:-300}" -lt 150

# c leaves (deletes its IKE SA and stays away): the hub gives a and b a new
# group SA that c never sees. What a sends towards c's LAN after the
# rollover reaches c with an SPI c does not have: c cannot decrypt it.
before=$(group_spi)
gwctl c terminate hub >/dev/null
rekeyed() { [ "$(group_spi)" != "$before" ]; }
check "c left: the hub rekeyed the group for a and b" wait_for 10 rekeyed
sleep 2 # Rollover1 (1 s): a and b send with the new SA
drops_c() { gwctl c stats | awk '/dataplane drop unknown_spi/ {print $4}'; }
d0=$(drops_c)
host a ping -q -c 5 -i 0.1 -W 1 10.1.3.10 >"$RUN/to-c.txt" 2>&1 || true
sleep 1.5 # counters reach the control plane each second
d1=$(drops_c)
check "a -> c after c left: nothing gets through" grep -q ' 100% packet loss' "$RUN/to-c.txt"
check "c cannot decrypt the new SA: its dataplane drops them as unknown SPI (${d0:-0} -> ${d1:-0})" \
    test "${d1:-0}" -ge "$((${d0:-0} + 5))"
check "a <-> b still through the new group SA" ping_ok host a ping -c 5 -i 0.1 -W 1 10.1.2.10

# What Prometheus scraped from the hub during all of the above.
check "Prometheus scraped the hub's metrics endpoint" wait_for 10 prom_is 'up{job="gw-hub"}' 1
check "Prometheus: the group reached 4 members up (d while it was there)" \
    prom_is 'max_over_time(gw_mpsa_group_members_up{group="mesh",role="gateway"}[10m])' 4
check "Prometheus: 5 IKE SAs established at the hub (a, b, c, d, rw), 3 after d and c left" \
    prom_is 'max_over_time(sum(gw_ike_sas{state="established"})[10m:1s])' 5
check "Prometheus: the hub's BIRD answered (gw_bgp_speaker_up)" prom_is 'max_over_time(gw_bgp_speaker_up[10m])' 1
check "Prometheus: ... and 3 now" wait_for 5 prom_is 'sum(gw_ike_sas{state="established"})' 3
check "Prometheus: the hub's child SAs carried ESP both ways" \
    prom_at_least 'min(sum by (direction) (max_over_time(gw_sa_packets_total[10m])))' 10
check "Prometheus: the group rekeys counted (timed, and c leaving)" \
    prom_at_least 'gw_mpsa_group_rekeys_total{group="mesh"}' 2
check "Prometheus: the dataplane up, IKE messages counted" \
    prom_at_least 'gw_dataplane_up * on() sum(gw_ike_messages_total)' 10
check "Prometheus: the hub's ports counted packets, the rings' depth is there" \
    prom_at_least 'sum(gw_port_packets_total{direction="rx"}) * on() (count(gw_ring_depth_bytes) > 0)' 100

# Membership rests on identity: a, b and c each have their own PSK at the
# hub (peer_psk), so the road warrior, which knows only the shared one,
# cannot claim a.lab (and so get the group SA). Its strongSwan restarted as
# "a.lab" is refused; the real a stays up.
ss start rw --netns "$P-rw" --role initiator --local 192.0.2.50 --remote 192.0.2.1 \
    --local-id a.lab --remote-id hub.lab --psk "$PSK" --local-ts 10.1.50.0/24 --remote-ts 10.0.0.0/24 \
    >/dev/null
ss initiate rw --timeout 10 >/dev/null 2>&1 && say "strongSwan claiming a.lab got in"
refused_a() { grep -q 'authentication of "a.lab" from 192.0.2.50' "$RUN/hub.controlplane.log"; }
check "the road warrior claiming a.lab with the shared PSK: AUTHENTICATION_FAILED at the hub" wait_for 5 refused_a
only_a() { [ "$(gwctl hub list | grep -c '\[a.lab\]')" = 1 ] && gwctl hub list | grep -F '[a.lab]' | grep -q MPSA; }
check "... and the hub still has one a.lab, the real one, with MPSA" only_a

# gwctl group remove: b is expelled. The hub rekeys at once for those left
# (a; c left earlier), b's IKE SA stays up, and what a sends towards b's
# LAN after the rollover reaches b with an SPI b never got.
before=$(group_spi)
check "gwctl group remove mesh b.lab" \
    bash -c "'$BIN/gwctl' -s '$RUN/hub.sock' group remove mesh b.lab | grep -q 'b.lab expelled'"
check "the hub rekeyed the group without b" wait_for 10 rekeyed
sleep 2 # Rollover1 (1 s): a sends with the new SA
unknown_b() { gwctl b stats | awk '/dataplane drop unknown_spi/ {print $4}'; }
u0=$(unknown_b)
host a ping -q -c 5 -i 0.1 -W 1 10.1.2.10 >"$RUN/to-b.txt" 2>&1 || true
sleep 1.5
u1=$(unknown_b)
check "a -> b after b was expelled: nothing gets through" grep -q ' 100% packet loss' "$RUN/to-b.txt"
check "b decrypts nothing: its dataplane drops them as unknown SPI (${u0:-0} -> ${u1:-0})" \
    test "${u1:-0}" -ge "$((${u0:-0} + 5))"
check "b's IKE SA with the hub stays up" bash -c "'$BIN/gwctl' -s '$RUN/hub.sock' list | grep -qF '[b.lab]'"

say "$pass passed, $fail failed"
if [ "$fail" -ne 0 ]; then
    for n in "${NODES[@]}"; do
        say "$n: last log lines"
        tail -n 12 "$RUN/$n.controlplane.log" >&2 || true
        grep -a "counters" "$RUN/$n.dataplane.log" >&2 || true
        tail -n 5 "$RUN/$n.bird.log" >&2 2>/dev/null || true
    done
    exit 1
fi
