#!/usr/bin/env bash
# Interop: our gateway (gw-dataplane on net_af_packet + gw-controlplane with
# IKE through the dataplane) against strongSwan 5.9.8 in network
# namespaces, PSK, both directions, the three proposals of issue 5;
# traffic through the child SA both ways, child and IKE SA rekeys (ours,
# theirs, and by short lifetimes) under continuous traffic, liveness
# checks and deletes; the same over IPv6 outer addresses (inner IPv4 and
# IPv6), both roles; two IKE SAs between the same identities; MOBIKE both
# ways, by hand and after a lost link, without and with a NAT on the path.
#
#   gwi-lan (10.77.1.10)  --veth--  gwi-a: [lan | gw-dataplane | wan] --veth-- gwi-b: strongSwan
#   fd77:1::10                       10.77.1.1        10.77.0.1    10.77.0.2, inner 10.77.2.1
#                                    fd77:1::1        fd77::1      fd77::2,   inner fd77:2::1
#                                                     [wan2] --veth-- gwi-b (10.78.0.2)
#                                                     10.78.0.1
#   gwi-c: strongSwan behind gwi-b's NAT (nftables masquerade, and a port
#   forward of 500/4500 when it is the responder): 192.168.77.2, inner 10.77.3.1
#
# Needs root, strongSwan (../shared/interop/install-deps.sh) and release
# builds of gw-dataplane, gw-controlplane and gwctl. Prints
# "interop: N passed, M failed" and exits non-zero on any failure.
# Creates only its own namespaces, processes and temp dir; removes them.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IOP=${GW_INTEROP_DIR:-$ROOT/../shared/interop}
BIN=${GW_BIN_DIR:-$ROOT/target/release}
P=gwi$$
T=$(mktemp -d /tmp/gw-interop.XXXXXX)
export SSLAB_RUN_DIR=$T/sslab
A=$P-a
B=$P-b
LAN=$P-lan
PSK=interop-psk-0123
pass=0
fail=0
GW_PIDS=()

say() { printf '%s interop: %s\n' "$(date +%T)" "$*"; }
ok() {
    pass=$((pass + 1))
    say "ok   $*"
}
FAILED=()
bad() {
    fail=$((fail + 1))
    FAILED+=("$*")
    say "FAIL $*"
}
check() { # check "description" command...
    local d=$1
    shift
    local out
    if out=$("$@" 2>&1); then ok "$d"; else
        bad "$d"
        printf '%s\n' "$out" | tail -4 | sed 's/^/      /'
    fi
}

stop_gw() {
    local p
    for p in "${GW_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${GW_PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    GW_PIDS=()
}

cleanup() {
    set +e
    stop_gw
    "$IOP/strongswan-peer.sh" stop-all --purge >/dev/null 2>&1
    ip netns del "$LAN" 2>/dev/null
    ip netns del "$P-c" 2>/dev/null
    "$IOP/netns-lab.sh" --prefix "$P" down >/dev/null 2>&1
    rm -rf "/var/run/dpdk/$P-dp"
    if [ "$fail" -ne 0 ] && [ -n "${GW_INTEROP_KEEP_LOGS:-}" ]; then
        cp -r "$T" "$GW_INTEROP_KEEP_LOGS"
    fi
    rm -rf "$T"
}
trap cleanup EXIT

for b in gw-dataplane gw-controlplane gwctl; do
    [ -x "$BIN/$b" ] || { echo "interop: $BIN/$b missing (cargo build --release)" >&2; exit 2; }
done
command -v charon-systemd >/dev/null || [ -x /usr/sbin/charon-systemd ] || {
    echo "interop: strongSwan missing (../shared/interop/install-deps.sh)" >&2
    exit 2
}

"$IOP/netns-lab.sh" --prefix "$P" up --ipv6 >/dev/null
# The DPDK dataplane owns 10.77.0.1: the kernel of node a must not answer.
ip -n "$A" addr flush dev wan0
# veth leaves UDP checksums partial for the receiver (interop NOTES.md).
ip netns exec "$B" ethtool -K wan0 tx off >/dev/null
ip netns add "$LAN"
ip link add lanh netns "$LAN" type veth peer name lang netns "$A"
ip -n "$LAN" addr add 10.77.1.10/24 dev lanh
ip -n "$LAN" -6 addr add fd77:1::10/64 dev lanh nodad
ip -n "$LAN" link set lo up
ip -n "$LAN" link set lanh up
ip -n "$LAN" route add default via 10.77.1.1
ip -n "$LAN" -6 route add default via fd77:1::1
# Node a's kernel must not answer for the dataplane's addresses either.
ip netns exec "$A" sysctl -qw net.ipv6.conf.lang.disable_ipv6=1 net.ipv6.conf.wan0.disable_ipv6=1
# A second inner address behind strongSwan (scenario 5's second IKE SA).
ip -n "$B" addr add 10.77.2.129/32 dev lo
ip netns exec "$LAN" ethtool -K lanh tx off >/dev/null
ip -n "$A" link set lang up
# A second uplink of the gateway (MOBIKE after a lost link: scenario 6).
ip link add wan1 netns "$A" type veth peer name wan1 netns "$B"
ip -n "$B" addr add 10.78.0.2/24 dev wan1
ip netns exec "$B" ethtool -K wan1 tx off >/dev/null
ip netns exec "$A" sysctl -qw net.ipv6.conf.wan1.disable_ipv6=1
ip -n "$A" link set wan1 up
ip -n "$B" link set wan1 up
# A strongSwan behind a NAT (node b routes and masquerades for it).
C=$P-c
ip netns add "$C"
ip link add natc netns "$C" type veth peer name natb netns "$B"
ip -n "$C" addr add 192.168.77.2/24 dev natc
ip -n "$C" addr add 10.77.3.1/32 dev lo
ip -n "$C" link set lo up
ip -n "$C" link set natc up
ip -n "$C" route add default via 192.168.77.1
ip -n "$B" addr add 192.168.77.1/24 dev natb
ip -n "$B" link set natb up
for ns in "$B" "$C"; do ip netns exec "$ns" ethtool -K "$([ "$ns" = "$B" ] && echo natb || echo natc)" tx off >/dev/null; done
ip netns exec "$B" sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$B" nft -f - <<'NFT'
table ip gwnat {
    chain post {
        type nat hook postrouting priority 100;
        ip saddr 192.168.77.0/24 oifname { "wan0", "wan1" } masquerade
    }
}
NFT

gwctl() { "$BIN/gwctl" -s "$T/cp.sock" "$@"; }
ss() { "$IOP/strongswan-peer.sh" "$@"; }

# What start_gw and start_ss use; scenario 4 switches them to IPv6 outer.
ipv4_outer() {
    GW_LOCAL=10.77.0.1
    GW_REMOTE=10.77.0.2
    GW_LTS='"10.77.1.0/24"'
    GW_RTS='"10.77.2.0/24"'
    SS_LTS=10.77.2.0/24
    SS_RTS=10.77.1.0/24
}
ipv4_outer
GW_MORE=""  # more [[connection]] tables

# start_gw ROLE IKE ESP [extra connection lines]
start_gw() {
    local role=$1 ike=$2 esp=$3 extra=${4:-}
    mkdir -p "$T/run"
    rm -f "$T/run"/*
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
addresses = ["10.77.0.1/24", "fd77::1/64", "10.77.0.11/24"]
[[port]]
name = "lan"
device = "net_af_packet1,iface=lang,qpairs=2"
addresses = ["10.77.1.1/24", "fd77:1::1/64"]
[[port]]
name = "wan2"
device = "net_af_packet2,iface=wan1,qpairs=2"
addresses = ["10.78.0.1/24"]
# The second uplink's way to everything else (and to the first's peers).
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
role = "$role"
local = "$GW_LOCAL"
remote = "$GW_REMOTE"
local_id = "left.lab"
remote_id = "right.lab"
psk = "$PSK"
ike_proposals = ["$ike"]
esp_proposals = ["$esp"]
local_ts = [$GW_LTS]
remote_ts = [$GW_RTS]
$extra
$GW_MORE
EOF
    ip netns exec "$A" "$BIN/gw-dataplane" --config "$T/dp.toml" >"$T/dp.log" 2>&1 &
    GW_PIDS+=($!)
    ip netns exec "$A" "$BIN/gw-controlplane" --config "$T/cp.toml" >"$T/cp.log" 2>&1 &
    GW_PIDS+=($!)
    for _ in $(seq 100); do [ -S "$T/cp.sock" ] && return 0; sleep 0.1; done
    say "gateway did not start"; cat "$T/dp.log" "$T/cp.log" >&2
    return 1
}

# start_ss ROLE IKE ESP [strongswan-peer.sh options]
start_ss() {
    local role=$1 ike=$2 esp=$3
    shift 3
    ss start ss --netns "$B" --role "$role" --local "$GW_REMOTE" --remote "$GW_LOCAL" \
        --local-id right.lab --remote-id left.lab --psk "$PSK" \
        --local-ts "$SS_LTS" --remote-ts "$SS_RTS" \
        --ike-proposals "$ike" --esp-proposals "$esp" "$@" >/dev/null
}

# A fresh dataplane has not learned the LAN host yet (its kernel kept the
# gateway's MAC from the scenario before), so the very first packet towards
# it is dropped while it is solicited (counted as no_neighbor): warm up.
warm_up() {
    ip netns exec "$LAN" ping -q -c 1 -W 1 10.77.2.1 >/dev/null 2>&1 || true
    ip netns exec "$B" ping -q -c 1 -W 1 -I 10.77.2.1 10.77.1.10 >/dev/null 2>&1 || true
}
ping_lan() { ip netns exec "$LAN" ping -q -c "${2:-5}" -i "${3:-0.1}" -W 1 "${1:-10.77.2.1}"; }
ping_ss() { ip netns exec "$B" ping -q -c "${1:-5}" -i 0.1 -W 1 -I 10.77.2.1 10.77.1.10; }
no_loss() { tee /dev/stderr | grep -q " 0% packet loss"; }

wait_for() { # wait_for SECONDS command...
    local s=$1
    shift
    for _ in $(seq $((s * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}
gw_up() { gwctl list | grep -q "Established"; }
gw_child() { gwctl list | grep -q "child .* Installed"; }
gw_none() { gwctl list | grep -q "no IKE SAs"; }
ss_up() { ss sas ss | grep -q "INSTALLED"; }
ss_none() { ! ss sas ss | grep -q "ESTABLISHED"; }
child_spis() { gwctl list | awk '/child .* Installed/ {print $2, $3}' | sort | tr '\n' ' '; }
ike_spis() { gwctl list | awk '/Established/ {print $3, $4}'; }

# Continuous traffic during an action; every packet must come back.
under_traffic() { # under_traffic SECONDS description command...
    local secs=$1 d=$2
    shift 2
    local out=$T/ping.out
    ip netns exec "$LAN" ping -q -c $((secs * 20)) -i 0.05 -W 1 "${TRAFFIC_DST:-10.77.2.1}" >"$out" 2>&1 &
    local pp=$!
    sleep 1
    "$@" || true
    wait "$pp" || true
    if no_loss <"$out"; then ok "$d: $(grep -o '[0-9]* received' "$out") of $((secs * 20)), none lost"; else
        bad "$d: $(grep 'packet loss' "$out")"
    fi
}

under_traffic_report() { # under_traffic_report SECONDS description command...: loss reported, not judged
    local secs=$1 d=$2
    shift 2
    local out=$T/ping.out
    ip netns exec "$LAN" ping -q -c $((secs * 20)) -i 0.05 -W 1 "${TRAFFIC_DST:-10.77.2.1}" >"$out" 2>&1 &
    local pp=$!
    sleep 1
    "$@" || true
    wait "$pp" || true
    say "     $d: $(grep 'packet loss' "$out")"
}

# ---- 7: certificates (RFC 7427 digital signatures), made by strongSwan's pki --
# ECDSA P-256 and RSA-3072 with RSA-PSS, both roles, then the CNSA suite
# (RFC 9206: ECDSA P-384, ECP-384, AES-256-GCM, SHA-384); then strongSwan
# presenting an expired, a revoked, a wrongly signed, a stranger CA's and a
# misnamed certificate, each refused with AUTHENTICATION_FAILED, a log line
# naming why and nothing left; and the gateway refusing strongSwan's
# expired certificate as initiator.
PKI=$T/pki
pki_() { pki "$@" 2>/dev/null; } # pki warns about TPM plugins on stderr
# make_ca NAME "DN" TYPE SIZE
make_ca() {
    pki_ --gen --type "$3" --size "$4" --outform pem >"$PKI/$1.key"
    pki_ --self --ca --lifetime 3650 --in "$PKI/$1.key" --type "$3" --dn "$2" --outform pem >"$PKI/$1.pem"
}
# make_cert NAME CA TYPE SIZE SAN [pki --issue options]
make_cert() {
    local name=$1 ca=$2 type=$3 size=$4 san=$5
    shift 5
    pki_ --gen --type "$type" --size "$size" --outform pem >"$PKI/$name.key"
    pki_ --pub --in "$PKI/$name.key" --type "$type" |
        pki_ --issue --cacert "$PKI/$ca.pem" --cakey "$PKI/$ca.key" --dn "C=CH, O=Lab, CN=$san" --san "$san" \
            --outform pem "$@" >"$PKI/$name.pem"
}
# Our side's lines for a connection with certificate NAME.
gw_cert() {
    printf 'auth = "pubkey"\ncert = "%s"\nkey = "%s"\ncas = ["%s"]\n%s' \
        "$PKI/$1.pem" "$PKI/$1.key" "$PKI/lab.pem" "${2:-}"
}
# ss_cert ROLE IKE ESP CERT [start options]: strongSwan with certificate
# CERT (and key), trusting the lab CA: started with a PSK, then its
# connection replaced by one with pubkey authentication both ways.
ss_cert() {
    local role=$1 ike=$2 esp=$3 cert=$4
    shift 4
    start_ss "$role" "$ike" "$esp" "$@"
    local d
    d=$(ss paths ss | sed -n 's/^STATE_DIR=//p')
    cp "$PKI/$cert.pem" "$d/swanctl/x509/"
    cp "$PKI/$cert.key" "$d/swanctl/private/"
    cp "$PKI/lab.pem" "$d/swanctl/x509ca/"
    cat >"$d/swanctl/swanctl.conf" <<EOF
connections {
    lab {
        version = 2
        local_addrs = $GW_REMOTE
        remote_addrs = $GW_LOCAL
        proposals = $ike
        local {
            auth = pubkey
            certs = $cert.pem
            id = right.lab
        }
        remote {
            auth = pubkey
            id = left.lab
        }
        children {
            net {
                local_ts = $SS_LTS
                remote_ts = $SS_RTS
                esp_proposals = $esp
                start_action = none
            }
        }
    }
}
EOF
    ss swanctl ss --load-all --noprompt --file "$d/swanctl/swanctl.conf" >/dev/null
}
gw_pubkey() { gwctl list | grep -q "auth: ours pubkey, peer's pubkey (certificate C=CH, O=Lab, CN=right.lab)"; }
gw_log() { grep -aq "$1" "$T/cp.log"; }

scenario_certs() {
    mkdir -p "$PKI"
    make_ca lab "C=CH, O=Lab, CN=Lab Root CA" ecdsa 256
    # An impostor: the same name, another key.
    make_ca fake "C=CH, O=Lab, CN=Lab Root CA" ecdsa 256
    make_ca other "C=CH, O=Elsewhere, CN=Other Root CA" ecdsa 256
    make_cert gw-p256 lab ecdsa 256 left.lab
    make_cert ss-p256 lab ecdsa 256 right.lab
    make_cert gw-rsa lab rsa 3072 left.lab
    make_cert ss-rsa lab rsa 3072 right.lab
    make_cert gw-p384 lab ecdsa 384 left.lab
    make_cert ss-p384 lab ecdsa 384 right.lab
    make_cert ss-expired lab ecdsa 256 right.lab --not-before "01.01.20 00:00:00" --not-after "01.01.21 00:00:00"
    make_cert ss-revoked lab ecdsa 256 right.lab
    make_cert ss-fake fake ecdsa 256 right.lab
    make_cert ss-other other ecdsa 256 right.lab
    make_cert ss-misnamed lab ecdsa 256 somebody.lab
    pki_ --signcrl --cacert "$PKI/lab.pem" --cakey "$PKI/lab.key" --cert "$PKI/ss-revoked.pem" \
        --reason key-compromise --outform pem >"$PKI/lab.crl"

    local ike esp gw s who tag opts
    for case in "strongswan p256 aes128gcm16-prfsha256-ecp256 aes128gcm16" \
        "gateway p256 aes128gcm16-prfsha256-x25519 aes128gcm16" \
        "strongswan rsa aes256gcm16-prfsha256-x25519 aes256gcm16" \
        "gateway rsa aes256gcm16-prfsha256-modp3072 aes256gcm16" \
        "strongswan p384 aes256gcm16-prfsha384-ecp384 aes256gcm16-ecp384" \
        "gateway p384 aes256gcm16-prfsha384-ecp384 aes256gcm16-ecp384"; do
        read -r who tag ike esp <<<"$case"
        opts=()
        [ "$tag" = rsa ] && opts=(--charon-opt rsa_pss=yes)
        say "scenario 7: $who initiates, certificates $tag, $ike"
        if [ "$who" = strongswan ]; then
            start_gw responder "$ike" "$esp" "$(gw_cert "gw-$tag")"
            ss_cert initiator "$ike" "$esp" "ss-$tag" "${opts[@]}"
            check "7 ($tag): strongSwan -> gateway, $ike" ss initiate ss --timeout 15
        else
            ss_cert responder "$ike" "$esp" "ss-$tag" "${opts[@]}"
            start_gw initiator "$ike" "$esp" "$(gw_cert "gw-$tag")"
            check "7 ($tag): gateway -> strongSwan, $ike" wait_for 15 ss_up
        fi
        check "7 ($tag): gateway shows the child SA" wait_for 5 gw_child
        check "7 ($tag): gateway shows both certificates' auth" gw_pubkey
        check "7 ($tag): gwctl certs lists our certificate and the CA with expiry" bash -c \
            "'$BIN/gwctl' -s '$T/cp.sock' certs | grep 'cert .*CN=left.lab .*expires in' && '$BIN/gwctl' -s '$T/cp.sock' certs | grep -q 'ca .*CN=Lab Root CA .*expires in'"
        local sig='.*'
        [ "$tag" = rsa ] && sig=RSA_EMSA_PSS_SHA2_256_SALT_32
        check "7 ($tag): strongSwan authenticated us by our certificate ($sig)" \
            grep -aq "authentication of 'left.lab' with $sig successful" "$(ss paths ss | sed -n 's/^LOG=//p')"
        # Up, so we verified it.
        [ "$tag" = rsa ] && check "7 ($tag): strongSwan signed with RSA-PSS" \
            grep -aq "authentication of 'right.lab' (myself) with RSA_EMSA_PSS" "$(ss paths ss | sed -n 's/^LOG=//p')"
        warm_up
        check "7 ($tag): LAN -> strongSwan" bash -c "$(declare -f ping_lan no_loss); LAN=$LAN ping_lan | no_loss"
        check "7 ($tag): strongSwan -> LAN" bash -c "$(declare -f ping_ss no_loss); B=$B ping_ss | no_loss"
        stop_gw
        ss stop ss >/dev/null
    done

    # Bad certificates from strongSwan, the gateway the responder.
    for case in "expired expired" "revoked revoked" "fake wrongly\\|no_chain" "other no_chain" "misnamed somebody"; do
        read -r tag why <<<"$case"
        why=${why//_/ }
        say "scenario 7: strongSwan presents the $tag certificate"
        start_gw responder aes128gcm16-prfsha256-x25519 aes128gcm16 \
            "$(gw_cert gw-p256 "crls = [\"$PKI/lab.crl\"]")"
        ss_cert initiator aes128gcm16-prfsha256-x25519 aes128gcm16 "ss-$tag"
        if ss initiate ss --timeout 10 >/dev/null 2>&1; then bad "7 ($tag): strongSwan got in"; else
            ok "7 ($tag): strongSwan refused"
        fi
        check "7 ($tag): the gateway's log says why ($why)" wait_for 5 gw_log "$why"
        check "7 ($tag): strongSwan was told AUTHENTICATION_FAILED" \
            grep -aq "AUTHENTICATION_FAILED" "$(ss paths ss | sed -n 's/^LOG=//p')"
        check "7 ($tag): nothing left on the gateway" wait_for 5 gw_none
        stop_gw
        ss stop ss >/dev/null
    done
    # The gateway refuses strongSwan's expired certificate as initiator.
    say "scenario 7: the gateway initiates to strongSwan's expired certificate"
    ss_cert responder aes128gcm16-prfsha256-x25519 aes128gcm16 ss-expired
    start_gw initiator aes128gcm16-prfsha256-x25519 aes128gcm16 "$(gw_cert gw-p256)"
    check "7 (expired, we initiate): the gateway's log says why" wait_for 10 gw_log "expired"
    check "7 (expired, we initiate): no child SA on the gateway" \
        bash -c "! '$BIN/gwctl' -s '$T/cp.sock' list | grep -q 'child .* Installed'"
    stop_gw
    ss stop ss >/dev/null
}

# The summary, and the exit status.
finish() {
    say "$pass passed, $fail failed"
    if [ "$fail" -ne 0 ]; then
        say "gateway logs (of the last scenario):"
        tail -n 40 "$T/cp.log" >&2 || true
        grep -a "counters" "$T/dp.log" >&2 || true
        ss log ss 60 >&2 || true
        # Last, so the tail of a CI log names them.
        for f in "${FAILED[@]}"; do say "failed: $f"; done
        exit 1
    fi
    exit 0
}
# GW_INTEROP_ONLY=certs: scenario 7 alone (while working on it).
if [ "${GW_INTEROP_ONLY:-}" = certs ]; then
    scenario_certs
    finish
fi

# ---- 1: strongSwan initiates, aes128gcm16-prfsha256-x25519 ---------------------
say "scenario 1: strongSwan initiates, aes128gcm16-prfsha256-x25519"
start_gw responder aes128gcm16-prfsha256-x25519 aes128gcm16-x25519 "dpd_secs = 2"
start_ss initiator aes128gcm16-prfsha256-x25519 aes128gcm16-x25519 --ike-opt dpd_delay=1s
check "1: strongSwan -> gateway IKE SA and child SA" ss initiate ss --timeout 10
check "1: gateway shows the IKE SA established" wait_for 5 gw_child
warm_up
check "1: LAN -> strongSwan through the child SA" bash -c "$(declare -f ping_lan no_loss); LAN=$LAN ping_lan | no_loss"
check "1: strongSwan -> LAN through the child SA" bash -c "$(declare -f ping_ss no_loss); B=$B ping_ss | no_loss"
counted() { gwctl list | grep -Eq 'in +[1-9][0-9]* packets' && gwctl list | grep -Eq 'out +[1-9][0-9]* packets'; }
check "1: gwctl shows the dataplane's ESP counters both ways" wait_for 3 counted
c0=$(child_spis)
under_traffic 4 "1: strongSwan rekeys the child SA (PFS x25519)" ss swanctl ss --rekey --child net
c1=$(child_spis)
[ "$c0" != "$c1" ] && ok "1: child SPIs changed ($c0-> $c1)" || bad "1: child SPIs unchanged after strongSwan's rekey"
under_traffic 4 "1: gateway rekeys the child SA" gwctl rekey lab
c2=$(child_spis)
[ "$c1" != "$c2" ] && ok "1: child SPIs changed again ($c2)" || bad "1: child SPIs unchanged after our rekey"
i0=$(ike_spis)
under_traffic 4 "1: strongSwan rekeys the IKE SA" ss swanctl ss --rekey --ike lab
i1=$(ike_spis)
under_traffic 4 "1: gateway rekeys the IKE SA" gwctl rekey lab --ike
i2=$(ike_spis)
[ "$i0" != "$i1" ] && [ "$i1" != "$i2" ] && [ -n "$i2" ] && ok "1: IKE SPIs changed twice" || bad "1: IKE rekeys ($i0 / $i1 / $i2)"
[ "$(child_spis)" = "$c2" ] && ok "1: child SAs moved to the new IKE SA" || bad "1: children after IKE rekey: $(child_spis)"
check "1: strongSwan still has one IKE SA" bash -c "'$IOP/strongswan-peer.sh' sas ss | grep -c ESTABLISHED | grep -qx 1"
sleep 3
check "1: liveness: strongSwan's DPD answered" bash -c "'$IOP/strongswan-peer.sh' log ss 400 | grep -q 'parsed INFORMATIONAL response'"
check "1: liveness: our DPD answered by strongSwan" bash -c "'$IOP/strongswan-peer.sh' log ss 400 | grep -q 'parsed INFORMATIONAL request'"
check "1: still established after liveness checks" gw_child
gwctl terminate lab >/dev/null
check "1: gateway delete removes strongSwan's SAs" wait_for 5 ss_none
check "1: gateway has no SAs after the delete" wait_for 5 gw_none
stop_gw
ss stop ss >/dev/null

# ---- 2: gateway initiates, aes256gcm16-prfsha384-ecp256, short lifetimes --------
say "scenario 2: gateway initiates, aes256gcm16-prfsha384-ecp256, short lifetimes"
start_ss responder aes256gcm16-prfsha384-ecp256 aes256gcm16-ecp256
start_gw initiator aes256gcm16-prfsha384-ecp256 aes256gcm16-ecp256 \
    "child_rekey_secs = 5
child_life_secs = 9
ike_rekey_secs = 8
jitter_percent = 10"
check "2: gateway -> strongSwan IKE SA and child SA" wait_for 10 ss_up
check "2: gateway shows it" wait_for 5 gw_child
warm_up
check "2: LAN -> strongSwan" bash -c "$(declare -f ping_lan no_loss); LAN=$LAN ping_lan | no_loss"
check "2: strongSwan -> LAN" bash -c "$(declare -f ping_ss no_loss); B=$B ping_ss | no_loss"
under_traffic 14 "2: child and IKE SA rekeys by lifetime" true
check "2: child SAs were rekeyed by lifetime" wait_for 3 grep -q "rekey of" "$T/cp.log"
check "2: the IKE SA was rekeyed by lifetime" wait_for 3 grep -q "rekeyed to" "$T/cp.log"
check "2: strongSwan agrees on one IKE SA" bash -c "'$IOP/strongswan-peer.sh' sas ss | grep -c ESTABLISHED | grep -qx 1"
ss swanctl ss --terminate --ike lab >/dev/null 2>&1 || true
check "2: strongSwan's delete removes the gateway's SAs" wait_for 5 gw_none
stop_gw
ss stop ss >/dev/null

# ---- 3: strongSwan initiates, aes256-sha256-modp2048, its short lifetimes ----------
say "scenario 3: strongSwan initiates, aes256-sha256-modp2048"
start_gw responder aes256-sha256-modp2048 aes256-sha256-modp2048
start_ss initiator aes256-sha256-modp2048 aes256-sha256-modp2048 --child-opt rekey_time=4s --child-opt life_time=7s --child-opt rand_time=1s --ike-opt rekey_time=7s --ike-opt over_time=30s
check "3: strongSwan -> gateway (AES-CBC, HMAC-SHA2-256, MODP-2048)" ss initiate ss --timeout 10
check "3: gateway shows it" wait_for 5 gw_child
warm_up
check "3: LAN -> strongSwan" bash -c "$(declare -f ping_lan no_loss); LAN=$LAN ping_lan | no_loss"
check "3: strongSwan -> LAN" bash -c "$(declare -f ping_ss no_loss); B=$B ping_ss | no_loss"
under_traffic 10 "3: strongSwan's lifetime rekeys (child, IKE)" true
# A rekey, not a re-creation after a hard expiry (which loses packets by
# design: hence life_time well past rekey_time above).
check "3: strongSwan rekeyed the child SA" wait_for 3 grep -q "installed (rekey of" "$T/cp.log"
check "3: strongSwan rekeyed the IKE SA" wait_for 3 grep -q "rekeyed to" "$T/cp.log"
stop_gw

# ---- 3b: the other groups strongSwan proposes (RFC 5903, RFC 3526) ----------
# ECP-384 and ECP-521, MODP-3072 and MODP-4096, each side initiating twice,
# the child SA with PFS in the same group, then a child rekey (a new KE);
# ChaCha20-Poly1305 for the IKE SA and ESP (RFC 7634); Curve448 (RFC 8031).
for case in "strongswan aes256gcm16-prfsha384-ecp384 aes256gcm16-ecp384" \
    "gateway aes256gcm16-prfsha512-ecp521 aes256gcm16-ecp521" \
    "strongswan aes256-sha256-modp3072 aes256-sha256-modp3072" \
    "gateway aes256-sha384-modp4096 aes256-sha256-modp4096" \
    "strongswan chacha20poly1305-prfsha256-x25519 chacha20poly1305-x25519" \
    "gateway aes256gcm16-prfsha512-curve448 aes256gcm16-curve448"; do
    read -r who ike esp <<<"$case"
    ss stop ss >/dev/null 2>&1 || true
    say "scenario 3b: $who initiates, $ike (PFS $esp)"
    if [ "$who" = strongswan ]; then
        start_gw responder "$ike" "$esp"
        start_ss initiator "$ike" "$esp"
        check "3b: strongSwan -> gateway, $ike" ss initiate ss --timeout 15
    else
        start_ss responder "$ike" "$esp"
        start_gw initiator "$ike" "$esp"
        check "3b: gateway -> strongSwan, $ike" wait_for 15 ss_up
    fi
    check "3b ($ike): gateway shows it" wait_for 5 gw_child
    warm_up
    check "3b ($ike): LAN -> strongSwan" bash -c "$(declare -f ping_lan no_loss); LAN=$LAN ping_lan | no_loss"
    check "3b ($ike): strongSwan -> LAN" bash -c "$(declare -f ping_ss no_loss); B=$B ping_ss | no_loss"
    c0=$(child_spis)
    under_traffic 4 "3b ($ike): gateway rekeys the child SA (PFS ${esp##*-})" gwctl rekey lab
    [ "$(child_spis)" != "$c0" ] && ok "3b ($ike): child SPIs changed" || bad "3b ($ike): child SPIs unchanged after the rekey"
    stop_gw
    ss stop ss >/dev/null
done

# ---- 4: IPv6 outer addresses, inner IPv4 and IPv6, both roles ----------------
# strongSwan's kernel-libipsec always encapsulates, so this is ESP in UDP
# over IPv6: the UDP checksum must be right and non-zero (RFC 8200 8.1),
# or strongSwan's kernel drops everything we send (Udp6InCsumErrors).
GW_LOCAL=fd77::1
GW_REMOTE=fd77::2
GW_LTS='"10.77.1.0/24", "fd77:1::/64"'
GW_RTS='"10.77.2.0/24", "fd77:2::/64"'
SS_LTS=10.77.2.0/24,fd77:2::/64
SS_RTS=10.77.1.0/24,fd77:1::/64
warm_up6() {
    warm_up
    ip netns exec "$LAN" ping -q -c 1 -W 1 fd77:2::1 >/dev/null 2>&1 || true
    ip netns exec "$B" ping -q -c 1 -W 1 -I fd77:2::1 fd77:1::10 >/dev/null 2>&1 || true
}
ping_ss6() { ip netns exec "$B" ping -q -c 5 -i 0.1 -W 1 -I fd77:2::1 fd77:1::10; }
csum_errors() { ip netns exec "$B" awk '/^Udp6InCsumErrors/ {print $2}' /proc/net/snmp6; }
pings_v6_outer() { # pings_v6_outer LABEL
    check "$1: LAN -> strongSwan, inner IPv4" bash -c "$(declare -f ping_lan no_loss); LAN=$LAN ping_lan 10.77.2.1 | no_loss"
    check "$1: LAN -> strongSwan, inner IPv6" bash -c "$(declare -f ping_lan no_loss); LAN=$LAN ping_lan fd77:2::1 | no_loss"
    check "$1: strongSwan -> LAN, inner IPv4" bash -c "$(declare -f ping_ss no_loss); B=$B ping_ss | no_loss"
    check "$1: strongSwan -> LAN, inner IPv6" bash -c "$(declare -f ping_ss6 no_loss); B=$B ping_ss6 | no_loss"
}
gw_v6_path() { gwctl list | grep -q "fd77::1\]:4500 <-> \[fd77::2\]:4500"; }

say "scenario 4a: IPv6 outer, strongSwan initiates"
csum0=$(csum_errors)
start_gw responder aes128gcm16-prfsha256-x25519 aes128gcm16-x25519
start_ss initiator aes128gcm16-prfsha256-x25519 aes128gcm16-x25519
check "4a: strongSwan -> gateway over IPv6: IKE SA and child SA" ss initiate ss --timeout 10
check "4a: gateway shows it" wait_for 5 gw_child
check "4a: gwctl shows the IPv6 path on port 4500 (NAT-T)" gw_v6_path
warm_up6
pings_v6_outer 4a
TRAFFIC_DST=fd77:2::1 under_traffic 4 "4a: strongSwan rekeys the child SA (inner IPv6 traffic)" ss swanctl ss --rekey --child net
TRAFFIC_DST=10.77.2.1 under_traffic 4 "4a: gateway rekeys the child SA (inner IPv4 traffic)" gwctl rekey lab
[ "$(csum_errors)" = "$csum0" ] && ok "4a: strongSwan counted no UDP checksum errors (Udp6InCsumErrors $csum0)" \
    || bad "4a: strongSwan counted UDP checksum errors: $csum0 -> $(csum_errors)"
stop_gw
ss stop ss >/dev/null

say "scenario 4b: IPv6 outer, gateway initiates"
start_ss responder aes256gcm16-prfsha384-ecp256 aes256gcm16-ecp256
start_gw initiator aes256gcm16-prfsha384-ecp256 aes256gcm16-ecp256
check "4b: gateway -> strongSwan over IPv6: IKE SA and child SA" wait_for 10 ss_up
check "4b: gateway shows it" wait_for 5 gw_child
warm_up6
pings_v6_outer 4b
TRAFFIC_DST=fd77:2::1 under_traffic 4 "4b: gateway rekeys the child SA (inner IPv6 traffic)" gwctl rekey lab
TRAFFIC_DST=10.77.2.1 under_traffic 4 "4b: strongSwan rekeys the child SA (inner IPv4 traffic)" ss swanctl ss --rekey --child net
[ "$(csum_errors)" = "$csum0" ] && ok "4b: strongSwan counted no UDP checksum errors" \
    || bad "4b: strongSwan counted UDP checksum errors: $csum0 -> $(csum_errors)"
ss swanctl ss --terminate --ike lab >/dev/null 2>&1 || true
check "4b: strongSwan's delete removes the gateway's SAs" wait_for 5 gw_none
stop_gw
ss stop ss >/dev/null

# ---- 5: two IKE SAs between the same identities --------------------------------
# Two connections of ours to the same strongSwan, one child SA each. RFC
# 7296 2.4: INITIAL_CONTACT would tell strongSwan the first IKE SA is
# stale ("destroying duplicate IKE_SA ... received INITIAL_CONTACT").
say "scenario 5: two IKE SAs between the same identities"
GW_LOCAL=10.77.0.1
GW_REMOTE=10.77.0.2
GW_LTS='"10.77.1.0/24"'
GW_RTS='"10.77.2.0/25"'
SS_LTS=10.77.2.0/24
SS_RTS=10.77.1.0/24
GW_MORE="[[connection]]
name = \"lab2\"
role = \"initiator\"
local = \"10.77.0.1\"
remote = \"10.77.0.2\"
local_id = \"left.lab\"
remote_id = \"right.lab\"
psk = \"$PSK\"
ike_proposals = [\"aes128gcm16-prfsha256-x25519\"]
esp_proposals = [\"aes128gcm16-x25519\"]
local_ts = [\"10.77.1.0/24\"]
remote_ts = [\"10.77.2.128/25\"]"
ss_two() { [ "$(ss sas ss | grep -c ESTABLISHED)" = 2 ] && [ "$(ss sas ss | grep -c INSTALLED)" = 2 ]; }
gw_two() { [ "$(gwctl list | grep -c ': Established')" = 2 ] && [ "$(gwctl list | grep -c 'child .* Installed')" = 2 ]; }
start_ss responder aes128gcm16-prfsha256-x25519 aes128gcm16-x25519
start_gw initiator aes128gcm16-prfsha256-x25519 aes128gcm16-x25519
check "5: strongSwan has both IKE SAs, one child SA each" wait_for 10 ss_two
check "5: the gateway has both" wait_for 5 gw_two
warm_up
ip netns exec "$LAN" ping -q -c 1 -W 1 10.77.2.129 >/dev/null 2>&1 || true
check "5: LAN -> 10.77.2.1 through lab's child SA" bash -c "$(declare -f ping_lan no_loss); LAN=$LAN ping_lan 10.77.2.1 | no_loss"
check "5: LAN -> 10.77.2.129 through lab2's child SA" bash -c "$(declare -f ping_lan no_loss); LAN=$LAN ping_lan 10.77.2.129 | no_loss"
ping_ss129() { ip netns exec "$B" ping -q -c 5 -i 0.1 -W 1 -I 10.77.2.129 10.77.1.10; }
check "5: 10.77.2.129 -> LAN through lab2's child SA" bash -c "$(declare -f ping_ss129 no_loss); B=$B ping_ss129 | no_loss"
sleep 2
check "5: both IKE SAs still up at strongSwan" ss_two
check "5: and at the gateway" gw_two
check "5: strongSwan destroyed no IKE SA as a duplicate" bash -c "! '$IOP/strongswan-peer.sh' log ss 400 | grep -q 'destroying duplicate'"
GW_MORE=""
stop_gw
ss stop ss >/dev/null

# ---- 6: MOBIKE (RFC 4555): strongSwan moves, then we move -----------------------
# 6a: strongSwan (the IKE SA's initiator) loses 10.77.0.2 and has 10.77.0.12:
# it sends UPDATE_SA_ADDRESSES from there; we follow with the IKE SA and
# the child SA (strongSwan's kernel-libipsec then rekeys its child SAs,
# which cannot move: ../shared/interop/NOTES.md).
say "scenario 6a: MOBIKE, strongSwan moves to another address"
start_gw responder aes128gcm16-prfsha256-x25519 aes128gcm16-x25519
ss start ss --netns "$B" --role initiator --local 10.77.0.2,10.77.0.12 --remote 10.77.0.1 \
    --local-id right.lab --remote-id left.lab --psk "$PSK" \
    --local-ts 10.77.2.0/24 --remote-ts 10.77.1.0/24 >/dev/null
check "6a: strongSwan -> gateway IKE SA and child SA, MOBIKE negotiated" ss initiate ss --timeout 10
check "6a: gwctl shows MOBIKE" bash -c "'$BIN/gwctl' -s '$T/cp.sock' list | grep -q MOBIKE"
warm_up
move_ss() {
    # Deleting the primary address would take the secondary with it.
    ip netns exec "$B" sysctl -qw net.ipv4.conf.wan0.promote_secondaries=1
    ip -n "$B" addr add 10.77.0.12/24 dev wan0
    sleep 0.5
    ip -n "$B" addr del 10.77.0.2/24 dev wan0
}
under_traffic_report 5 "6a: packets during strongSwan's move" move_ss
gw_moved() { gwctl list | grep -q "10.77.0.1:4500 <-> 10.77.0.12:4500"; }
check "6a: the gateway followed: IKE SA on 10.77.0.12" wait_for 5 gw_moved
check "6a: the daemon logged the move and why" wait_for 3 grep -q "moved from .*10.77.0.2:4500 to .*10.77.0.12:4500: the peer's UPDATE_SA_ADDRESSES" "$T/cp.log"
warm_up
check "6a: LAN -> strongSwan after the move" bash -c "$(declare -f ping_lan no_loss); LAN=$LAN ping_lan | no_loss"
check "6a: strongSwan -> LAN after the move" bash -c "$(declare -f ping_ss no_loss); B=$B ping_ss | no_loss"
stop_gw
ss stop ss >/dev/null
ip -n "$B" addr del 10.77.0.12/24 dev wan0 2>/dev/null || true
ip -n "$B" addr add 10.77.0.2/24 dev wan0 2>/dev/null || true

# 6b: we (the IKE SA's initiator) move to our other address 10.77.0.11 by
# hand (gwctl move); strongSwan follows.
say "scenario 6b: MOBIKE, the gateway moves (gwctl move)"
start_ss responder aes128gcm16-prfsha256-x25519 aes128gcm16-x25519
start_gw initiator aes128gcm16-prfsha256-x25519 aes128gcm16-x25519
check "6b: gateway -> strongSwan IKE SA and child SA" wait_for 10 ss_up
check "6b: gateway shows it" wait_for 5 gw_child
warm_up
under_traffic_report 4 "6b: packets during our move" gwctl move lab --local 10.77.0.11
gw_moved_ours() { gwctl list | grep -q "10.77.0.11:4500 <-> 10.77.0.2:4500"; }
check "6b: the IKE SA is on 10.77.0.11" wait_for 5 gw_moved_ours
check "6b: strongSwan follows" bash -c "'$IOP/strongswan-peer.sh' sas ss | grep -q '10.77.0.11'"
check "6b: the daemon logged the move" wait_for 3 grep -q "moved from 10.77.0.1:4500 .* to 10.77.0.11:4500 .*: our UPDATE_SA_ADDRESSES" "$T/cp.log"
warm_up
check "6b: LAN -> strongSwan after the move" bash -c "$(declare -f ping_lan no_loss); LAN=$LAN ping_lan | no_loss"
check "6b: strongSwan -> LAN after the move" bash -c "$(declare -f ping_ss no_loss); B=$B ping_ss | no_loss"
check "6b: a move with no MOBIKE IKE SA of ours is refused by name" bash -c "! '$BIN/gwctl' -s '$T/cp.sock' move nope --local 10.77.0.11"
stop_gw
ss stop ss >/dev/null

# 6c: as 6a, strongSwan behind a NAT: its move behind the NAT reaches us
# as a new NAT mapping (another source port); we follow it, ESP-in-UDP
# included.
say "scenario 6c: MOBIKE, strongSwan behind a NAT moves"
GW_RTS='"10.77.3.0/24"'
start_gw responder aes128gcm16-prfsha256-x25519 aes128gcm16-x25519
ss start ssn --netns "$C" --role initiator --local 192.168.77.2,192.168.77.12 --remote 10.77.0.1 \
    --local-id right.lab --remote-id left.lab --psk "$PSK" \
    --local-ts 10.77.3.0/24 --remote-ts 10.77.1.0/24 >/dev/null
check "6c: strongSwan behind the NAT -> gateway, MOBIKE negotiated" ss initiate ssn --timeout 10
nat_path() { gwctl list | grep -o '10.77.0.1:4500 <-> 10.77.0.2:[0-9]*' | head -1; }
before=$(nat_path)
check "6c: the gateway sees it through the NAT ($before)" test -n "$before"
warm_c() { ip netns exec "$LAN" ping -q -c 1 -W 1 10.77.3.1 >/dev/null 2>&1 || true; }
warm_c
move_ssn() {
    ip netns exec "$C" sysctl -qw net.ipv4.conf.natc.promote_secondaries=1
    ip -n "$C" addr add 192.168.77.12/24 dev natc
    sleep 0.5
    ip -n "$C" addr del 192.168.77.2/24 dev natc
}
TRAFFIC_DST=10.77.3.1 under_traffic_report 5 "6c: packets during strongSwan's move behind the NAT" move_ssn
nat_moved() { n=$(nat_path); [ -n "$n" ] && [ "$n" != "$before" ]; }
check "6c: the gateway followed the new mapping ($before -> \$(nat_path))" wait_for 8 nat_moved
say "     6c: now $(nat_path)"
warm_c
check "6c: LAN -> strongSwan behind the NAT after the move" wait_for 5 bash -c "ip netns exec $LAN ping -q -c 5 -i 0.1 -W 1 10.77.3.1 | grep -q ' 0% packet loss'"
check "6c: strongSwan -> LAN after the move" wait_for 5 bash -c "ip netns exec $C ping -q -c 5 -i 0.1 -W 1 -I 10.77.3.1 10.77.1.10 | grep -q ' 0% packet loss'"
stop_gw
ss stop ssn >/dev/null
ip -n "$C" addr del 192.168.77.12/24 dev natc 2>/dev/null || true
ip -n "$C" addr add 192.168.77.2/24 dev natc 2>/dev/null || true
ip -n "$C" route replace default via 192.168.77.1

# 6d, 6e: we initiate, with our second uplink announced; the first's link
# goes down (ip link set down: the dataplane sees it within 10 ms), and we
# move to the second by ourselves; strongSwan follows, behind a NAT (6d:
# node b forwards 500/4500 to it) and without (6e).
lose_wan() { ip -n "$A" link set wan0 down; }
mine_moved() { gwctl list | grep -q "10.78.0.1:4500 <-> 10.77.0.2:4500"; }
say "scenario 6d: MOBIKE, the gateway loses its link and moves; strongSwan behind a NAT follows"
# The NAT's public address for the forward: one no earlier flow used (its
# conntrack entries would bypass the forward).
ip -n "$B" addr add 10.77.0.3/24 dev wan0
ip netns exec "$B" nft -f - <<'NFT'
table ip gwfwd {
    chain pre {
        type nat hook prerouting priority -100;
        ip daddr 10.77.0.3 udp dport { 500, 4500 } dnat to 192.168.77.2
    }
}
NFT
GW_REMOTE=10.77.0.3
ss start ssn --netns "$C" --role responder --local 192.168.77.2 \
    --local-id right.lab --remote-id left.lab --psk "$PSK" \
    --local-ts 10.77.3.0/24 --remote-ts 10.77.1.0/24 >/dev/null
start_gw initiator aes128gcm16-prfsha256-x25519 aes128gcm16-x25519 'additional_addresses = ["10.78.0.1"]'
check "6d: gateway -> strongSwan behind the NAT" wait_for 10 bash -c "'$IOP/strongswan-peer.sh' sas ssn | grep -q INSTALLED"
check "6d: gateway shows it" wait_for 5 gw_child
warm_c
TRAFFIC_DST=10.77.3.1 under_traffic_report 5 "6d: packets while our link goes down" lose_wan
check "6d: the IKE SA moved to our second uplink" wait_for 5 bash -c "'$BIN/gwctl' -s '$T/cp.sock' list | grep -q '10.78.0.1:4500 <-> 10.77.0.3:4500'"
check "6d: the daemon logged the link and the move" bash -c "grep -q 'port 0 link down' '$T/cp.log' && grep -q 'moved from 10.77.0.1:4500 .* to 10.78.0.1:4500 .*our address on the path went away' '$T/cp.log'"
check "6d: strongSwan follows" bash -c "'$IOP/strongswan-peer.sh' sas ssn | grep -q '10.78.0.1'"
warm_c
check "6d: LAN -> strongSwan after the move" wait_for 5 bash -c "ip netns exec $LAN ping -q -c 5 -i 0.1 -W 1 10.77.3.1 | grep -q ' 0% packet loss'"
check "6d: strongSwan -> LAN after the move" wait_for 5 bash -c "ip netns exec $C ping -q -c 5 -i 0.1 -W 1 -I 10.77.3.1 10.77.1.10 | grep -q ' 0% packet loss'"
stop_gw
ss stop ssn >/dev/null
ip netns exec "$B" nft delete table ip gwfwd
ip -n "$B" addr del 10.77.0.3/24 dev wan0
ip -n "$A" link set wan0 up
GW_REMOTE=10.77.0.2

say "scenario 6e: MOBIKE, the gateway loses its link and moves; strongSwan follows"
GW_RTS='"10.77.2.0/24"'
start_ss responder aes128gcm16-prfsha256-x25519 aes128gcm16-x25519
start_gw initiator aes128gcm16-prfsha256-x25519 aes128gcm16-x25519 'additional_addresses = ["10.78.0.1"]'
check "6e: gateway -> strongSwan IKE SA and child SA" wait_for 10 ss_up
check "6e: gateway shows it" wait_for 5 gw_child
warm_up
under_traffic_report 5 "6e: packets while our link goes down" lose_wan
check "6e: the IKE SA moved to our second uplink" wait_for 5 mine_moved
check "6e: strongSwan follows" bash -c "'$IOP/strongswan-peer.sh' sas ss | grep -q '10.78.0.1'"
warm_up
check "6e: LAN -> strongSwan after the move" wait_for 5 bash -c "$(declare -f ping_lan no_loss); LAN=$LAN ping_lan | no_loss"
check "6e: strongSwan -> LAN after the move" wait_for 5 bash -c "$(declare -f ping_ss no_loss); B=$B ping_ss | no_loss"
stop_gw
ss stop ss >/dev/null
ip -n "$A" link set wan0 up

# IPv4 outer again for the certificates.
ipv4_outer
scenario_certs
finish
