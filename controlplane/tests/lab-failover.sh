#!/usr/bin/env bash
# lab-failover.sh - IKE SA stub synchronization (draft-xu-ike-sa-sync,
# issue 20): hub A dies under traffic and standby hub B takes its clients
# over without Diffie-Hellman or IKE_AUTH. Every gateway is a gw-dataplane
# + gw-controlplane pair on net_af_packet ports, in network namespaces
# (prefix gwf<pid>):
#
#   lan 10.0.0.10 (bridge)          ctl: etcd x3 on its loopback, gw-stubbank
#     |lan 10.0.0.1   |lan 10.0.0.2      172.31.0.100 (mgmt bridge, mutual TLS)
#   [ha] 192.0.2.1   [hb] 192.0.2.2       ha 172.31.0.1, hb 172.31.0.2 (kernel)
#     +--------+------+----------- br0 (wan) ------------+
#   [a] 192.0.2.11  [b] .12  [c] .13                rw 192.0.2.50 (strongSwan)
#    each: lan 10.1.<n>.1 -- host-<x> 10.1.<n>.10   inner 10.1.50.1
#
# A and B are one cluster (identity hub.lab, the same MPSA group "mesh");
# both send their stubs to the bank, which files them in etcd. Endpoints
# a, b, c list B as their standby; the strongSwan road warrior reaches
# the hub by the name hub.vpn. A is killed (kill -9, both processes)
# under traffic, and one etcd member with it. Each endpoint's liveness
# check fails, it sends IKE_SA_SYN to B, B fetches the stub from the bank
# and answers with Nr alone; child SAs and the group SA come from B. The
# LAN's route moves to B (what routing would do) and hub.vpn now names B:
# strongSwan, which has no SYN, reconnects by a full exchange. Packets
# lost during the move are counted and reported. Then A comes back and
# `gwctl redirect` on B sends endpoint a back to A, where it arrives by
# SYN; b and c stay on B.
#
# Checks print "ok"/"FAIL"; exits non-zero on a failure. Needs root,
# release builds, etcd (Debian etcd-server), openssl and strongSwan.
# Creates and removes only its own namespaces, processes and files.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${GW_BIN_DIR:-$ROOT/target/release}
IOP=${GW_INTEROP_DIR:-$ROOT/../shared/interop}
P=gwf$$
RUN=$(mktemp -d /tmp/gw-failover.XXXXXX)
export SSLAB_RUN_DIR=$RUN/sslab
PSK=failover-lab-psk-0123
LAB=failover
KEY=5f1d2a8c3b4e6f7081928374a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e
declare -A PID_OF=()
# shellcheck source=controlplane/tests/lab-common.sh
. "$ROOT/controlplane/tests/lab-common.sh"
cleanup() {
    set +e
    local i p
    # etcd members first, quietly (bash reports a job killed by a signal).
    for i in 0 1 2; do
        p=${PID_OF[etcd$i]:-}
        [ -n "$p" ] && kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    [ -x "$IOP/strongswan-peer.sh" ] && "$IOP/strongswan-peer.sh" stop-all --purge >/dev/null 2>&1
    rm -rf "/etc/netns/$P-rw"
    lab_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM
need_binaries
[ -x "$BIN/gw-stubbank" ] || { echo "$LAB: $BIN/gw-stubbank missing (cargo build --release)" >&2; exit 2; }
command -v etcd >/dev/null || { echo "$LAB: etcd missing (setup.sh installs etcd-server)" >&2; exit 2; }

# ---- topology ----
lab_namespaces wan lan ctl ha hb a b c host-a host-b host-c rw
for br in wan lan ctl; do
    ip -n "$P-$br" link add br0 type bridge
    ip -n "$P-$br" link set br0 up
done
on_bridge() { # on_bridge BRIDGE-NS NODE-NS NODE-IF: NODE-IF plugged into BRIDGE-NS's br0
    veth "$2" "$3" "$1" "p-$2"
    ip -n "$P-$1" link set "p-$2" master br0
}
for n in ha hb a b c rw; do on_bridge wan "$n" wan; done
for n in ha hb; do on_bridge lan "$n" lan; done
for n in ha hb; do on_bridge ctl "$n" mgmt; done
ip -n "$P-lan" addr add 10.0.0.10/24 dev br0
ip -n "$P-lan" route add 10.1.0.0/16 via 10.0.0.1
ip -n "$P-ctl" addr add 172.31.0.100/24 dev br0
ip -n "$P-ha" addr add 172.31.0.1/24 dev mgmt
ip -n "$P-hb" addr add 172.31.0.2/24 dev mgmt
declare -A NUM=([a]=1 [b]=2 [c]=3)
for n in a b c; do
    veth "$n" lan "host-$n" eth0
    ip -n "$P-host-$n" addr add "10.1.${NUM[$n]}.10/24" dev eth0
    ip -n "$P-host-$n" route add default via "10.1.${NUM[$n]}.1"
    dataplane "$n" wan "192.0.2.1${NUM[$n]}/24" lan "10.1.${NUM[$n]}.1/24"
done
dataplane ha wan 192.0.2.1/24 lan 10.0.0.1/24
dataplane hb wan 192.0.2.2/24 lan 10.0.0.2/24
ip -n "$P-rw" addr add 192.0.2.50/24 dev wan
ip -n "$P-rw" addr add 10.1.50.1/32 dev lo
# strongSwan finds the hub by name; the name moves to B when A dies.
mkdir -p "/etc/netns/$P-rw"
echo "192.0.2.1 hub.vpn" >"/etc/netns/$P-rw/hosts"

# ---- certificates: one CA, the bank's (its address), each hub's ----
pki() {
    local d=$RUN/pki n
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=lab-ca \
        -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
    for n in bank ha hb; do
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$n" \
            -keyout "$d/$n.key" -out "$d/$n.csr" 2>/dev/null
        printf 'subjectAltName = IP:172.31.0.100, DNS:%s\n' "$n" >"$d/$n.ext"
        openssl x509 -req -in "$d/$n.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
            -extfile "$d/$n.ext" -out "$d/$n.pem" 2>/dev/null
    done
}
pki

# ---- etcd (three members on ctl's loopback) and the bank ----
ETCD_CLUSTER="m0=http://127.0.0.1:23800,m1=http://127.0.0.1:23801,m2=http://127.0.0.1:23802"
etcd_member() { # etcd_member I
    ip netns exec "$P-ctl" etcd --name "m$1" --data-dir "$RUN/etcd-m$1" \
        --listen-client-urls "http://127.0.0.1:2379$1" --advertise-client-urls "http://127.0.0.1:2379$1" \
        --listen-peer-urls "http://127.0.0.1:2380$1" --initial-advertise-peer-urls "http://127.0.0.1:2380$1" \
        --initial-cluster "$ETCD_CLUSTER" --initial-cluster-state new --initial-cluster-token "$P" \
        --max-txn-ops 1024 --log-level warn >"$RUN/etcd-m$1.log" 2>&1 &
    PIDS+=($!)
    PID_OF[etcd$1]=$!
}
for i in 0 1 2; do etcd_member "$i"; done
cat >"$RUN/bank.toml" <<EOF
listen = "172.31.0.100:7410"
etcd = ["http://127.0.0.1:23790", "http://127.0.0.1:23791", "http://127.0.0.1:23792"]
max_txn_ops = 1024
[tls]
cert = "$RUN/pki/bank.pem"
key = "$RUN/pki/bank.key"
ca = "$RUN/pki/ca.pem"
EOF
ip netns exec "$P-ctl" "$BIN/gw-stubbank" --config "$RUN/bank.toml" >"$RUN/bank.log" 2>&1 &
PIDS+=($!)

# ---- the gateways' control planes ----
hub_config() { # hub_config NAME ADDR
    CP_DAEMON_EXTRA='mpsa = "gateway"' cp_config "$1" members responder "$2" %any hub.lab %any 10.0.0.0/24 10.1.0.0/16
    cat >>"$RUN/$1.cp.toml" <<EOF
esp_proposals = ["aes128gcm16-x25519", "aes128gcm16"]
dpd_secs = 10
stubs = true
[stubs]
cluster_key = "$KEY"
bank = ["172.31.0.100:7410"]
fetch_ms = 3000
[stubs.tls]
cert = "$RUN/pki/$1.pem"
key = "$RUN/pki/$1.key"
ca = "$RUN/pki/ca.pem"
[[group]]
name = "mesh"
members = ["a.lab", "b.lab", "c.lab"]
esp = "aes128gcm16"
prf = "prfsha256"
lifetime_secs = 600
rollover1_secs = 1
rollover2_secs = 5
EOF
}
hub_config ha 192.0.2.1
hub_config hb 192.0.2.2
# The endpoints: liveness every second, three retransmits from 250 ms.
for n in a b c; do
    routes=""
    for m in a b c; do
        [ "$m" = "$n" ] || routes+="    { prefix = \"10.1.${NUM[$m]}.0/24\", endpoint = \"192.0.2.1${NUM[$m]}\" },"$'\n'
    done
    CP_RETRANSMIT_MS=250 CP_DAEMON_EXTRA=$'retransmit_tries = 3\nmpsa = "endpoint"' \
        cp_config "$n" hub initiator "192.0.2.1${NUM[$n]}" 192.0.2.1 "$n.lab" hub.lab "10.1.${NUM[$n]}.0/24" 10.0.0.0/24
    cat >>"$RUN/$n.cp.toml" <<EOF
esp_proposals = ["aes128gcm16-x25519", "aes128gcm16"]
dpd_secs = 1
standby = ["192.0.2.2"]
mpsa_routes = [
$routes]
EOF
done
for n in ha hb a b c; do
    "$BIN/gw-dataplane" --config "$RUN/$n.dp.toml" --check >/dev/null
    "$BIN/gw-controlplane" --config "$RUN/$n.cp.toml" --check >/dev/null
done
start_node() { # start_node NAME: its dataplane and control plane
    ip netns exec "$P-$1" "$BIN/gw-dataplane" --config "$RUN/$1.dp.toml" --stats-interval 0 >>"$RUN/$1.dp.log" 2>&1 &
    PIDS+=($!)
    PID_OF[$1-dp]=$!
    ip netns exec "$P-$1" "$BIN/gw-controlplane" --config "$RUN/$1.cp.toml" >>"$RUN/$1.log" 2>&1 &
    PIDS+=($!)
    PID_OF[$1-cp]=$!
    wait_for 10 test -S "$RUN/$1.sock"
}
gwctl() { "$BIN/gwctl" -s "$RUN/$1.sock" "${@:2}"; }
ss() { "$IOP/strongswan-peer.sh" "$@"; }
host() { ip netns exec "$P-host-$1" "${@:2}"; }
stat_of() { gwctl "$1" stats | awk -v k="$2" '$1 == k {print $2}'; }

say "etcd x3, the stub bank, hubs A and B, then endpoints a, b, c"
start_node ha
start_node hb
bank_up() { gwctl "$1" stats | grep -q "^stub_bank .* reachable"; }
check "A reaches the bank over mutual TLS" wait_for 30 bank_up ha
check "B reaches the bank over mutual TLS" wait_for 10 bank_up hb
for n in a b c; do start_node "$n"; done
has_group() { gwctl "$1" list | grep -q "^group hub: endpoint, SA [0-9a-f]"; }
all_groups() { has_group a && has_group b && has_group c; }
check "a, b, c up with A, the group SA delivered" wait_for 20 all_groups
ss start rw --netns "$P-rw" --role initiator --local 192.0.2.50 --remote hub.vpn \
    --local-id rw.lab --remote-id hub.lab --psk "$PSK" --local-ts 10.1.50.0/24 --remote-ts 10.0.0.0/24 \
    --ike-opt dpd_delay=1s --child-opt dpd_action=restart \
    --charon-opt retransmit_tries=2 --charon-opt retransmit_timeout=1.0 --charon-opt retransmit_base=1.0 >/dev/null
check "strongSwan road warrior -> A" ss initiate rw --timeout 15
for pair in "a 10.1.2.10" "b 10.1.3.10" "c 10.1.1.10" "a 10.0.0.10" "b 10.0.0.10" "c 10.0.0.10"; do
    set -- $pair
    host "$1" ping -q -c 2 -W 1 "$2" >/dev/null 2>&1 || true
done
ip netns exec "$P-rw" ping -q -c 2 -W 1 -I 10.1.50.1 10.0.0.10 >/dev/null 2>&1 || true
ping_ok() { "$@" 2>&1 | grep -q ' 0% packet loss'; }
to_lan() { local n; for n in a b c; do ping_ok host "$n" ping -c 3 -i 0.1 -W 1 10.0.0.10 || return 1; done; }
group_ok() { ping_ok host a ping -c 3 -i 0.1 -W 1 10.1.2.10 && ping_ok host b ping -c 3 -i 0.1 -W 1 10.1.3.10 \
    && ping_ok host c ping -c 3 -i 0.1 -W 1 10.1.1.10; }
rw_ok() { ping_ok ip netns exec "$P-rw" ping -c 3 -i 0.1 -W 1 -I 10.1.50.1 10.0.0.10; }
check "before: a, b, c -> LAN through A" to_lan
check "before: a -> b -> c -> a through the group SA" group_ok
check "before: strongSwan -> LAN through A" rw_ok
exported() { [ "$(stat_of ha stubs_exported)" -ge 4 ]; }
check "A exported a stub of each of its four IKE SAs" wait_for 5 exported

# ---- A dies under traffic, and an etcd member with it ----
FLOWS=("a 10.1.2.10" "b 10.1.3.10" "c 10.1.1.10" "a 10.0.0.10" "b 10.0.0.10" "c 10.0.0.10")
MOVE=()
for f in "${FLOWS[@]}"; do
    set -- $f
    host "$1" ping -q -i 0.05 -c 400 -W 1 "$2" >"$RUN/move-$1-$2" 2>&1 &
    MOVE+=($!)
done
ip netns exec "$P-rw" ping -q -i 0.05 -c 400 -W 1 -I 10.1.50.1 10.0.0.10 >"$RUN/move-rw" 2>&1 &
MOVE+=($!)
PIDS+=("${MOVE[@]}")
sleep 2
say "kill -9 hub A (both processes) and etcd member m0"
kill -9 "${PID_OF[ha-cp]}" "${PID_OF[ha-dp]}" "${PID_OF[etcd0]}"
wait "${PID_OF[ha-cp]}" "${PID_OF[ha-dp]}" "${PID_OF[etcd0]}" 2>/dev/null || true
t0=$SECONDS
# What routing and DNS would do: the LAN's route and hub.vpn go to B.
ip -n "$P-lan" route replace 10.1.0.0/16 via 10.0.0.2
echo "192.0.2.2 hub.vpn" >"/etc/netns/$P-rw/hosts"
rebuilt3() { [ "$(stat_of hb syn_rebuilt)" = 3 ]; }
check "a, b, c rebuilt on B by IKE_SA_SYN" wait_for 30 rebuilt3
say "     B rebuilt them $((SECONDS - t0)) s after A died (liveness 1 s, 3 tries)"
no_full() { [ "$(stat_of hb syn_unknown)" = 0 ] && [ "$(stat_of hb stub_fetch_missed)" = 0 ] \
    && ! grep -E "IKE SA .* established with [abc]\.lab" "$RUN/hb.log"; }
check "no endpoint needed the full exchange (no IKE_AUTH at B; the bank had every stub)" no_full
check "B fetched the three stubs from the bank" test "$(stat_of hb stub_fetches)" = 3
rw_moved() { ss sas rw | grep -q "192.0.2.2"; }
check "strongSwan (no SYN) reconnected to B by a full exchange" wait_for 40 rw_moved
grep -h "rebuilt\|bank" "$RUN/hb.log" | head -4 | sed 's/^/      B: /'
wait_groups_from_b() {
    local spi
    spi=$(gwctl hb --json list | python3 -c 'import json,sys; print(json.load(sys.stdin)["groups"][0]["spi"])')
    local n
    for n in a b c; do gwctl "$n" list | grep -q "^group hub: endpoint, SA $spi" || return 1; done
}
check "B's group SA delivered to the rebuilt members" wait_for 10 wait_groups_from_b
wait "${MOVE[@]}" || true
for f in "${FLOWS[@]}" rw; do
    set -- $f
    out=$RUN/move-$1${2:+-$2}
    say "     lost during the move, $1 -> ${2:-10.0.0.10}: $(awk '/packets transmitted/ {print $1 - $4 " of " $1}' "$out")"
done
check "after: a, b, c -> LAN through B" to_lan
check "after: group traffic a -> b -> c -> a (B's group SA)" group_ok
check "after: strongSwan -> LAN through B" rw_ok
check "the bank went on without etcd member m0" bank_up hb

# ---- A comes back; B redirects a there (RFC 5685), a arrives by SYN ----
say "hub A starts again; gwctl redirect on B sends a back to A"
start_node ha
check "A reaches the bank again" wait_for 30 bank_up ha
stubs_out() { [ "$(stat_of hb stubs_exported)" -ge 3 ]; }
check "B exported stubs of the rebuilt SAs" stubs_out
check "gwctl redirect on B" gwctl hb redirect members --to 192.0.2.1 --peer a.lab
on_a() { [ "$(stat_of ha syn_rebuilt)" = 1 ] && gwctl a list | grep -q -- "<-> 192.0.2.1:"; }
check "a arrived at A by IKE_SA_SYN" wait_for 20 on_a
others_stay() { gwctl b list | grep -q "192.0.2.2" && gwctl c list | grep -q "192.0.2.2" \
    && [ "$(gwctl hb list | grep -c -E '\[[bc]\.lab\]')" = 2 ]; }
check "b and c stay on B" others_stay
ip -n "$P-lan" route replace 10.1.1.0/24 via 10.0.0.1
check "a -> LAN through A again" wait_for 10 ping_ok host a ping -c 3 -i 0.1 -W 1 10.0.0.10
check "b -> LAN still through B" ping_ok host b ping -c 5 -i 0.1 -W 1 10.0.0.10
lab_result ha hb a bank
