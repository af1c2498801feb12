#!/usr/bin/env bash
# benches/mobike.sh - how long traffic stops when an initiator's uplink
# goes down and MOBIKE moves its SAs to the other uplink (issue 16): our
# gateway (gw-dataplane + gw-controlplane) and a strongSwan initiator, in
# the same namespaces, against the same strongSwan responder, measured the
# same way, MOVES times each (default 20; the link that goes alternates,
# so every move is the same kind), median and spread.
#
#   mob-l (10.77.1.10) -- [lan | initiator | wan0 10.77.0.1, wan1 10.78.0.1] == mob-b: strongSwan responder
#                                   10.77.9.1 (IKE), via 10.77.0.2 or 10.78.0.2; inner 10.77.2.1
#
# The initiator is our gateway (ns mob-a, probed from mob-l through the
# dataplane) or strongSwan 5.9.8 (ns mob-s, probed from its inner address).
# Traffic: an ICMP echo request every INTERVAL_MS (default 1) to 10.77.2.1
# through the child SA, sent at a constant rate by benches/probe.py (ping
# slows down while unanswered, which stretches what it shows); a move's
# outage is the longest run of unanswered requests around the moment the
# link goes down (`ip link set down`): from the last answered request
# before to the first after, by send time, less one interval; lost is the
# requests in that run. Needs root, strongSwan, release builds.
# Writes a Markdown table on stdout (and to $OUT if set).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
IOP=${GW_INTEROP_DIR:-$ROOT/../shared/interop}
BIN=${GW_BIN_DIR:-$ROOT/target/release}
MOVES=${MOVES:-20}
INTERVAL_MS=${INTERVAL_MS:-1}
P=mob$$
T=$(mktemp -d /tmp/gw-mobike.XXXXXX)
export SSLAB_RUN_DIR=$T/sslab
A=$P-a B=$P-b L=$P-l S=$P-s
PSK=mobike-bench-psk
PIDS=()
say() { printf '%s mobike: %s\n' "$(date +%T)" "$*" >&2; }

cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    if [ -n "${MOBIKE_KEEP:-}" ]; then cp -r "$T" "$MOBIKE_KEEP"; fi
    "$IOP/strongswan-peer.sh" stop-all --purge >/dev/null 2>&1
    for n in "$A" "$B" "$L" "$S"; do ip netns del "$n" 2>/dev/null; done
    rm -rf "/var/run/dpdk/$P-dp"
    rm -rf "$T"
}
trap cleanup EXIT

for b in gw-dataplane gw-controlplane gwctl; do
    [ -x "$BIN/$b" ] || { echo "mobike: $BIN/$b missing (cargo build --release)" >&2; exit 2; }
done

for n in "$A" "$B" "$L" "$S"; do
    ip netns add "$n"
    ip -n "$n" link set lo up
    # IPv4 only: without this, IPv6 link-local addresses finishing DAD on
    # the responder's fresh veths make strongSwan re-evaluate its own
    # address right after the IKE SA comes up (see the closing note).
    ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
link() { # link NS1 IF1 NS2 IF2
    ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
    ip netns exec "$1" ethtool -K "$2" tx off >/dev/null
    ip netns exec "$3" ethtool -K "$4" tx off >/dev/null
    ip -n "$1" link set "$2" up
    ip -n "$3" link set "$4" up
}
link "$A" wan0 "$B" wan0
link "$A" wan1 "$B" wan1
link "$L" lanh "$A" lang
ip -n "$B" addr add 10.77.0.2/24 dev wan0
ip -n "$B" addr add 10.78.0.2/24 dev wan1
ip -n "$B" addr add 10.77.2.1/32 dev lo
# The responder's own address is on no uplink (a veth's far end goes down
# with its near end; a real responder keeps its address when the
# initiator's uplink fails).
ip -n "$B" addr add 10.77.9.1/32 dev lo
ip -n "$L" addr add 10.77.1.10/24 dev lanh
ip -n "$L" route add default via 10.77.1.1
for i in wan0 wan1 lang; do ip netns exec "$A" sysctl -qw "net.ipv6.conf.$i.disable_ipv6=1"; done

# The responder, for both initiators.
"$IOP/strongswan-peer.sh" start resp --netns "$B" --role responder --local 10.77.9.1 \
    --local-id right.lab --remote-id left.lab --psk "$PSK" \
    --local-ts 10.77.2.0/24 --remote-ts 10.77.1.0/24 >/dev/null

# One move: link $1 of namespace $2 goes down while $3 probes; prints
# "outage_ms lost".
measure() { # measure NS IF PROBENS [SRC]
    local ns=$1 ifc=$2 pns=$3 src=${4:-}
    local out=$T/probe.$RANDOM
    ip netns exec "$pns" python3 "$ROOT/benches/probe.py" --dst 10.77.2.1 ${src:+--src $src} \
        --interval-ms "$INTERVAL_MS" --seconds 4.5 --out "$out" &
    local pp=$!
    sleep 1.5
    local t0
    t0=$(date +%s.%N)
    ip -n "$ns" link set "$ifc" down
    wait "$pp" || true
    python3 - "$out" "$t0" "$INTERVAL_MS" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
t0, step = float(sys.argv[2]), float(sys.argv[3]) / 1000
sent = [(float(r[1]), r[2] != "-") for r in rows]
ok = [t for t, answered in sent if answered]
end = sent[-1][0] if sent else t0
# The longest run of unanswered requests around the loss: from the last
# answered request before it to the first answered one after (send times,
# less one interval); none answered after t0: unanswered to the end.
best, lost = 0.0, 0
for a, b in zip(ok, ok[1:] + [end + step]):
    if b >= t0 and a <= t0 + 1.0 and b - a - step > best:
        best = b - a - step
        lost = sum(1 for t, answered in sent if a < t < b and not answered)
print(f"{best * 1000:.1f} {lost}")
PY
}

median() { sort -n | awk '{v[NR]=$1} END {if (NR==0) {print "-"; exit} m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.1f", m}'; }
minmax() { sort -n | awk 'NR==1{a=$1} {b=$1} END {printf "%s-%s", a, b}'; }

# ---- ours ----------------------------------------------------------------
mkdir -p "$T/run"
cat >"$T/dp.toml" <<EOF
mode = "gateway"
[eal]
lcores = "0,1"
file_prefix = "$P-dp"
memory_mb = 256
[mempool]
mbufs = 8191
[[port]]
name = "wan"
device = "net_af_packet0,iface=wan0,qpairs=2"
addresses = ["10.77.0.1/24"]
[[port]]
name = "lan"
device = "net_af_packet1,iface=lang,qpairs=2"
addresses = ["10.77.1.1/24"]
[[port]]
name = "wan2"
device = "net_af_packet2,iface=wan1,qpairs=2"
addresses = ["10.78.0.1/24"]
[[route]]
dst = "10.77.9.0/24"
port = "wan"
via = "10.77.0.2"
[[route]]
dst = "0.0.0.0/0"
port = "wan2"
via = "10.78.0.2"
[control]
dir = "$T/run"
wait_for_sync = true
EOF
cat >"$T/cp.toml" <<EOF
[daemon]
transport = "dataplane"
control_dir = "$T/run"
admin_socket = "$T/cp.sock"
retransmit_base_ms = 500
[[connection]]
name = "lab"
role = "initiator"
local = "10.77.0.1"
remote = "10.77.9.1"
local_id = "left.lab"
remote_id = "right.lab"
psk = "$PSK"
local_ts = ["10.77.1.0/24"]
remote_ts = ["10.77.2.0/24"]
additional_addresses = ["10.78.0.1"]
EOF
ip netns exec "$A" "$BIN/gw-dataplane" --config "$T/dp.toml" >"$T/dp.log" 2>&1 &
PIDS+=($!)
ip netns exec "$A" "$BIN/gw-controlplane" --config "$T/cp.toml" >"$T/cp.log" 2>&1 &
PIDS+=($!)
up() { "$BIN/gwctl" -s "$T/cp.sock" list 2>/dev/null | grep -q "child .* Installed"; }
for _ in $(seq 100); do up && break; sleep 0.1; done
up || { say "our gateway did not come up"; tail "$T/cp.log" >&2; exit 1; }
ip netns exec "$L" ping -q -c 3 -i 0.2 -W 1 10.77.2.1 >/dev/null 2>&1 || true
ours=()
for i in $(seq "$MOVES"); do
    # Odd moves lose wan0 (to 10.78.0.1), even ones wan1 (back).
    ifc=$([ $((i % 2)) -eq 1 ] && echo wan0 || echo wan1)
    r=$(measure "$A" "$ifc" "$L")
    ours+=("$r")
    say "ours, move $i ($ifc down): outage ${r% *} ms, lost ${r#* }"
    ip -n "$A" link set "$ifc" up
    sleep 1.5
done
moved=$(grep -c "our address on the path went away" "$T/cp.log" || true)
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
sleep 1
PIDS=()

# ---- strongSwan ----------------------------------------------------------
for i in wan0 wan1 lang; do ip -n "$A" link set "$i" netns "$S" 2>/dev/null || true; done
ip -n "$S" link set wan0 up
ip -n "$S" link set wan1 up
ip -n "$S" addr add 10.77.0.1/24 dev wan0
ip -n "$S" addr add 10.78.0.1/24 dev wan1
ip -n "$S" addr add 10.77.1.1/32 dev lo
# A lost link's routes go with it; the other uplink is the way then.
ip netns exec "$S" sysctl -qw net.ipv4.conf.all.ignore_routes_with_linkdown=1
ip -n "$S" route add default via 10.78.0.2 dev wan1 metric 200
ip -n "$S" route add default via 10.77.0.2 dev wan0 metric 100
"$IOP/strongswan-peer.sh" start init --netns "$S" --role initiator --local 10.77.0.1,10.78.0.1 --remote 10.77.9.1 \
    --local-id left.lab --remote-id right.lab --psk "$PSK" \
    --local-ts 10.77.1.0/24 --remote-ts 10.77.2.0/24 >/dev/null
"$IOP/strongswan-peer.sh" initiate init --timeout 10 >/dev/null
ip netns exec "$S" ping -q -c 3 -i 0.2 -W 1 -I 10.77.1.1 10.77.2.1 >/dev/null 2>&1 || true
theirs=()
for i in $(seq "$MOVES"); do
    ifc=$([ $((i % 2)) -eq 1 ] && echo wan0 || echo wan1)
    r=$(measure "$S" "$ifc" "$S" 10.77.1.1)
    theirs+=("$r")
    say "strongSwan, move $i ($ifc down): outage ${r% *} ms, lost ${r#* }"
    ip -n "$S" link set "$ifc" up
    ip -n "$S" route replace default via 10.77.0.2 dev wan0 metric 100 2>/dev/null || true
    sleep 2.5
done

cpu=$(awk -F: '/model name/ {gsub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo)
o_med=$(printf '%s\n' "${ours[@]}" | awk '{print $1}' | median)
t_med=$(printf '%s\n' "${theirs[@]}" | awk '{print $1}' | median)
report=$(
    echo "## MOBIKE: traffic stopped by a lost uplink ($(date -u +%F), $cpu, $(nproc) vCPUs)"
    echo
    echo "\`MOVES=$MOVES benches/mobike.sh\`: the initiator's uplink goes down (\`ip link set down\`), MOBIKE moves"
    echo "its IKE SA and child SA to the other uplink; an ICMP echo request every $INTERVAL_MS ms through the child SA"
    echo "at a constant rate (benches/probe.py); outage = the longest run of unanswered requests around the"
    echo "loss, by send time, less one interval. The responder's IKE address (10.77.9.1) is on neither uplink."
    echo "Same namespaces, same responder (strongSwan 5.9.8), same measurement for both initiators."
    echo "Our moves logged: $moved of $MOVES."
    echo
    echo "| initiator | moves | outage, median | outage, min-max | requests lost, median |"
    echo "|---|---:|---:|---:|---:|"
    echo "| ours (gw-dataplane + gw-controlplane) | $MOVES | $o_med ms | $(printf '%s\n' "${ours[@]}" | awk '{print $1}' | minmax) ms | $(printf '%s\n' "${ours[@]}" | awk '{print $2}' | median) |"
    echo "| strongSwan 5.9.8 (kernel-libipsec) | $MOVES | $t_med ms | $(printf '%s\n' "${theirs[@]}" | awk '{print $1}' | minmax) ms | $(printf '%s\n' "${theirs[@]}" | awk '{print $2}' | median) |"
    echo
    echo "Ratio (strongSwan / ours, median outage): $(awk -v a="$t_med" -v b="$o_med" 'BEGIN {if (b > 0) printf "%.1fx", a / b; else print "-"}')"
)
echo "$report"
[ -n "${OUT:-}" ] && echo "$report" >"$OUT"
exit 0
