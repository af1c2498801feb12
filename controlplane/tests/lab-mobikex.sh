#!/usr/bin/env bash
# lab-mobikex.sh - MOBIKE-X (issue 16) between two of our gateways, each a
# gw-dataplane + gw-controlplane pair on net_af_packet ports, in network
# namespaces (prefix gwx<pid>):
#
#   cpe-lan 10.91.1.10 (data)              hub-lan 10.92.1.10 (data)
#           10.91.2.10 (voice)                     10.92.2.10 (voice)
#      | lan 10.91.0.1                         | lan 10.92.0.1
#    [cpe] up1 10.81.0.1 ---+              [hub] wan 10.80.0.1
#          up2 10.82.0.1 ---+--- isp (router) ---+
#
# The CPE (initiator) has two uplinks and three child SAs, "data" and
# "voice" (tunnel mode) and "mgmt" (transport mode, between the two
# gateways' own addresses); MOBIKE-X is negotiated (both offer version 2). It adds
# its second address to the voice child SA (ADD_SA_ADDRESS with a SELECTOR
# naming its SPI), removes the first (REMOVE_SA_ADDRESS): voice goes on
# over up2, and with up1 blocked in the ISP, voice flows and data does
# not. Then voice is multihomed on both uplinks and up1's link goes down:
# the CPE's dataplane sends on up2 at once and its control plane moves the
# IKE SA and data there (UPDATE with OLD/NEW), and mgmt's selectors move
# with it; packets lost are counted.
# Checks print "ok"/"FAIL"; exits non-zero on a failure. Needs root and
# release builds. Creates and removes only its own namespaces and processes.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${GW_BIN_DIR:-$ROOT/target/release}
P=gwx$$
RUN=$(mktemp -d /tmp/gw-mobikex.XXXXXX)
PSK=mobikex-lab-psk-0123
PIDS=()
pass=0
fail=0
say() { printf '%s mobikex: %s\n' "$(date +%T)" "$*"; }
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
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
    rm -rf "/var/run/dpdk/$P-cpe" "/var/run/dpdk/$P-hub"
    if [ "$fail" -ne 0 ] && [ -n "${GW_LAB_KEEP_LOGS:-}" ]; then cp -r "$RUN" "$GW_LAB_KEEP_LOGS"; fi
    rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for b in gw-dataplane gw-controlplane gwctl; do
    [ -x "$BIN/$b" ] || { echo "mobikex: $BIN/$b missing (cargo build --release)" >&2; exit 2; }
done

# ---- topology ----
for n in cpe hub isp cpe-lan hub-lan; do
    ip netns add "$P-$n"
    ip netns exec "$P-$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$P-$n" link set lo up
done
veth() { # veth NS1 IF1 NS2 IF2
    ip link add "$2" netns "$P-$1" type veth peer name "$4" netns "$P-$3"
    ip netns exec "$P-$1" ethtool -K "$2" tx off >/dev/null
    ip netns exec "$P-$3" ethtool -K "$4" tx off >/dev/null
    ip -n "$P-$1" link set "$2" up
    ip -n "$P-$3" link set "$4" up
}
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

# ---- the gateways ----
dataplane() { # NAME PORTS...
    local n=$1
    shift
    mkdir -p "$RUN/$n"
    {
        printf 'mode = "gateway"\n[eal]\nlcores = "0,1"\nfile_prefix = "%s"\nmemory_mb = 256\n' "$P-$n"
        printf '[mempool]\nmbufs = 4095\n[worker]\nidle_sleep_max_us = 2000\n'
        local i=0
        while [ $# -gt 0 ]; do
            printf '[[port]]\nname = "%s"\ndevice = "net_af_packet%d,iface=%s,qpairs=2"\naddresses = ["%s"]\n' "$1" "$i" "$1" "$2"
            i=$((i + 1))
            shift 2
        done
        cat "$RUN/$n.routes" 2>/dev/null || true
        printf '[control]\ndir = "%s"\nwait_for_sync = true\n' "$RUN/$n"
    } >"$RUN/$n.dp.toml"
}
printf '[[route]]\ndst = "10.80.0.0/24"\nport = "up1"\nvia = "10.81.0.254"\n[[route]]\ndst = "0.0.0.0/0"\nport = "up2"\nvia = "10.82.0.254"\n' >"$RUN/cpe.routes"
printf '[[route]]\ndst = "0.0.0.0/0"\nport = "wan"\nvia = "10.80.0.254"\n' >"$RUN/hub.routes"
dataplane cpe up1 10.81.0.1/24 up2 10.82.0.1/24 lan 10.91.0.1/16
dataplane hub wan 10.80.0.1/24 lan 10.92.0.1/16
child() { # NAME LOCAL REMOTE
    printf '[[connection.child]]\nname = "%s"\nlocal_ts = ["%s"]\nremote_ts = ["%s"]\n' "$1" "$2" "$3"
}
# A transport-mode child SA between the two gateways' own addresses: its
# selectors are the IKE addresses, anywhere in 10.80.0.0/12.
tchild() { printf '[[connection.child]]\nname = "mgmt"\nmode = "transport"\nlocal_ts = ["10.80.0.0/12"]\nremote_ts = ["10.80.0.0/12"]\n'; }
cat >"$RUN/cpe.cp.toml" <<EOF
[daemon]
transport = "dataplane"
control_dir = "$RUN/cpe"
admin_socket = "$RUN/cpe.sock"
retransmit_base_ms = 500
[[connection]]
name = "hq"
role = "initiator"
local = "10.81.0.1"
remote = "10.80.0.1"
local_id = "cpe.lab"
remote_id = "hub.lab"
psk = "$PSK"
local_ts = ["10.91.1.0/24"]
remote_ts = ["10.92.1.0/24"]
additional_addresses = ["10.82.0.1"]
$(child voice 10.91.2.0/24 10.92.2.0/24)
$(tchild)
EOF
cat >"$RUN/hub.cp.toml" <<EOF
[daemon]
transport = "dataplane"
control_dir = "$RUN/hub"
admin_socket = "$RUN/hub.sock"
retransmit_base_ms = 500
[[connection]]
name = "cpe"
role = "responder"
local = "10.80.0.1"
remote = "%any"
local_id = "hub.lab"
remote_id = "cpe.lab"
psk = "$PSK"
local_ts = ["10.92.1.0/24"]
remote_ts = ["10.91.1.0/24"]
$(child voice 10.92.2.0/24 10.91.2.0/24)
$(tchild)
EOF
for n in hub cpe; do
    "$BIN/gw-dataplane" --config "$RUN/$n.dp.toml" --check >/dev/null
    "$BIN/gw-controlplane" --config "$RUN/$n.cp.toml" --check >/dev/null
done
for n in hub cpe; do
    ip netns exec "$P-$n" "$BIN/gw-dataplane" --config "$RUN/$n.dp.toml" >"$RUN/$n.dp.log" 2>&1 &
    PIDS+=($!)
    ip netns exec "$P-$n" "$BIN/gw-controlplane" --config "$RUN/$n.cp.toml" >"$RUN/$n.cp.log" 2>&1 &
    PIDS+=($!)
done
cpe() { "$BIN/gwctl" -s "$RUN/cpe.sock" "$@"; }
hub() { "$BIN/gwctl" -s "$RUN/hub.sock" "$@"; }
wait_for() { # wait_for SECONDS command...
    local s=$1
    shift
    for _ in $(seq $((s * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}
three_children() { [ "$(hub list | grep -c 'child .* Installed')" -eq 3 ]; }
mgmt_ts() { # mgmt_ts gwctl-function "SELECTORS": the transport child's selectors
    "$1" list | grep -A1 'transport .*\[mgmt\]' | grep -q "$2"
}
ping_from() { # ping_from SRC DST [COUNT]
    ip netns exec "$P-cpe-lan" ping -q -c "${3:-5}" -i 0.05 -W 1 -I "$1" "$2" 2>&1 | grep -q ' 0% packet loss'
}
no_reply() { ! ip netns exec "$P-cpe-lan" ping -q -c 3 -i 0.1 -W 1 -I "$1" "$2" >/dev/null 2>&1; }
voice_paths() { hub list | grep -A6 '\[voice\]' | grep 'paths'; }

check "the CPE brings up its IKE SA and its three child SAs with the hub" wait_for 15 three_children
check "mgmt is in transport mode on the IKE addresses (USE_TRANSPORT_MODE)" bash -c "$(declare -f hub cpe mgmt_ts); BIN=$BIN RUN=$RUN; mgmt_ts hub '10.80.0.1/32 === 10.81.0.1/32' && mgmt_ts cpe '10.81.0.1/32 === 10.80.0.1/32'"
check "MOBIKE-X negotiated (gwctl list: MOBIKE-X, both sides)" bash -c "$(declare -f cpe hub); BIN=$BIN RUN=$RUN; cpe list | grep -q 'MOBIKE-X' && hub list | grep -q 'MOBIKE-X'"
ip netns exec "$P-cpe-lan" ping -q -c 2 -W 1 -I 10.91.1.10 10.92.1.10 >/dev/null 2>&1 || true
ip netns exec "$P-cpe-lan" ping -q -c 2 -W 1 -I 10.91.2.10 10.92.2.10 >/dev/null 2>&1 || true
check "data flows (10.91.1.10 -> 10.92.1.10)" wait_for 5 ping_from 10.91.1.10 10.92.1.10
check "voice flows (10.91.2.10 -> 10.92.2.10)" wait_for 5 ping_from 10.91.2.10 10.92.2.10

# ADD the second uplink to voice only.
check "gwctl address add hq 10.82.0.1 --child voice" cpe address add hq 10.82.0.1 --child voice
check "the hub's voice child SA has both paths" wait_for 5 bash -c "$(declare -f hub voice_paths); BIN=$BIN RUN=$RUN; voice_paths | grep -q '10.80.0.1 <-> 10.81.0.1, 10.80.0.1 <-> 10.82.0.1'"
check "data stays on the IKE SA's path (one paths line: voice's)" bash -c "[ \$('$BIN/gwctl' -s '$RUN/hub.sock' list | grep -c 'paths (preferred first)') -eq 1 ]"
check "the daemon logged the new paths" grep -q "now on 10.80.0.1 <-> 10.81.0.1, then 10.80.0.1 <-> 10.82.0.1" "$RUN/hub.cp.log"
# REMOVE the first from voice.
check "gwctl address remove hq 10.81.0.1 --child voice" cpe address remove hq 10.81.0.1 --child voice
check "the hub's voice child SA is on 10.82.0.1 alone" wait_for 5 bash -c "$(declare -f hub voice_paths); BIN=$BIN RUN=$RUN; voice_paths | grep -q 'paths (preferred first): 10.80.0.1 <-> 10.82.0.1$'"
check "voice flows after the remove" wait_for 5 ping_from 10.91.2.10 10.92.2.10
# The ISP drops everything from up1: voice goes on, data stops.
ip netns exec "$P-isp" nft -f - <<'NFT'
table ip cut {
    chain block {
        type filter hook forward priority 0;
        ip saddr 10.81.0.1 drop
        ip daddr 10.81.0.1 drop
    }
}
NFT
check "with up1 cut: voice flows (on up2)" ping_from 10.91.2.10 10.92.2.10 10
check "with up1 cut: data does not (it was not selected)" no_reply 10.91.1.10 10.92.1.10
ip netns exec "$P-isp" nft delete table ip cut
check "up1 back: data flows again" wait_for 5 ping_from 10.91.1.10 10.92.1.10

# CHECK only: the hub would take an address, nothing changes.
check "gwctl address add --check: asked, nothing changed" bash -c "$(declare -f cpe); BIN=$BIN RUN=$RUN; cpe address add hq 10.81.0.1 --child voice --check"
check "the CPE logged the answer of the check" wait_for 5 grep -q "the peer would accept Add of 10.81.0.1" "$RUN/cpe.cp.log"

# Multihomed: voice on both uplinks, up1 preferred, then up1's link goes
# down: the CPE's dataplane sends voice on up2 at once; the hub learns of
# it from the CPE's UPDATE (OLD 10.81.0.1, NEW 10.82.0.1).
check "voice on up1 and up2 (add 10.81.0.1)" cpe address add hq 10.81.0.1 --child voice
check "the hub's voice has both paths" wait_for 5 bash -c "$(declare -f hub voice_paths); BIN=$BIN RUN=$RUN; voice_paths | grep -q '10.82.0.1, 10.80.0.1 <-> 10.81.0.1'"
check "voice on up1 first (remove 10.82.0.1, add it again)" bash -c "$(declare -f cpe); BIN=$BIN RUN=$RUN; cpe address remove hq 10.82.0.1 --child voice && sleep 1 && cpe address add hq 10.82.0.1 --child voice"
check "the hub's voice: up1, then up2" wait_for 5 bash -c "$(declare -f hub voice_paths); BIN=$BIN RUN=$RUN; voice_paths | grep -q '10.80.0.1 <-> 10.81.0.1, 10.80.0.1 <-> 10.82.0.1'"
check "voice flows" wait_for 5 ping_from 10.91.2.10 10.92.2.10
out=$RUN/ping.voice
ip netns exec "$P-cpe-lan" ping -D -n -i 0.005 -W 1 -c 800 -I 10.91.2.10 10.92.2.10 >"$out" 2>&1 &
pp=$!
sleep 1
ip -n "$P-cpe" link set up1 down
wait "$pp" || true
lost=$(awk '/packets transmitted/ {print $1 - $4}' "$out")
say "     voice (multihomed) while up1's link went down: $(grep 'packet loss' "$out") ($lost lost, ping every 5 ms)"
check "the CPE saw up1 go and moved its IKE SA to up2" wait_for 5 grep -qE "moved from 10.81.0.1:[0-9]+ .* to 10.82.0.1:[0-9]+ .*our address on the path went away" "$RUN/cpe.cp.log"
check "data flows after the move" wait_for 5 ping_from 10.91.1.10 10.92.1.10
check "voice flows after the move" ping_from 10.91.2.10 10.92.2.10
check "the transport-mode child SA moved with its selectors (hub and CPE)" wait_for 5 bash -c "$(declare -f hub cpe mgmt_ts); BIN=$BIN RUN=$RUN; mgmt_ts hub '10.80.0.1/32 === 10.82.0.1/32' && mgmt_ts cpe '10.82.0.1/32 === 10.80.0.1/32'"
ip -n "$P-cpe" link set up1 up

say "$pass passed, $fail failed"
if [ "$fail" -ne 0 ]; then
    for f in cpe.cp hub.cp; do say "$f log:"; tail -n 25 "$RUN/$f.log"; done
    exit 1
fi
