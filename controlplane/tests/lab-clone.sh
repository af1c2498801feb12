#!/usr/bin/env bash
# lab-clone.sh - Clone IKE SA (RFC 7791, issue 13): a CPE with two uplinks
# and a hub with one WAN address, each a gw-dataplane + gw-controlplane
# pair on net_af_packet ports, in network namespaces (prefix gwk<pid>):
#
#   cpe-lan 10.91.1.10 (VPN_0)             hub-lan 10.92.1.10 (VPN_0)
#           10.91.2.10 (VPN_1)                     10.92.2.10 (VPN_1)
#      | lan 10.91.0.1                         | lan 10.92.0.1
#    [cpe] up1 10.81.0.1 ---+              [hub] wan 10.80.0.1
#          up2 10.82.0.1 ---+--- isp (router) ---+
#
# The CPE's connection lists both uplinks (local = up1, interfaces =
# [up2]). It authenticates once on up1, clones the IKE SA, moves the
# clone to up2 with MOBIKE and opens VPN_1 there, while VPN_0 stays on the
# original IKE SA on up1 (Appendix B). A capture in the ISP on each uplink
# shows VPN_0's ESP on up1 only and VPN_1's on up2 only. up1's link goes
# down: VPN_0's IKE SA moves to up2 (MOBIKE) and its traffic goes on, the
# loss counted; up1 comes back: the layout is restored. Then the hub is
# replaced by strongSwan (no Clone IKE SA) and the CPE, same config, puts
# both VPNs on one IKE SA; strongSwan never receives CLONE_IKE_SA.
#
# Checks print "ok"/"FAIL"; exits non-zero on a failure. Needs root and
# release builds. Creates and removes only its own namespaces and processes.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${GW_BIN_DIR:-$ROOT/target/release}
IOP=${GW_INTEROP_DIR:-$ROOT/../shared/interop}
P=gwk$$
RUN=$(mktemp -d /tmp/gw-clone.XXXXXX)
export SSLAB_RUN_DIR=$RUN/sslab
PSK=clone-lab-psk-0123
LAB=clone
CAPS=()
# shellcheck source=controlplane/tests/lab-common.sh
. "$ROOT/controlplane/tests/lab-common.sh"
cleanup() {
    set +e
    stop "${CAPS[@]}"
    [ -x "$IOP/strongswan-peer.sh" ] && "$IOP/strongswan-peer.sh" stop-all --purge >/dev/null 2>&1
    lab_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM
need_binaries

# ---- topology and dataplanes (lab-common.sh) ----
cpe_hub_lab
# The CPE: VPN_0 (the connection's own selectors) on the original IKE SA,
# VPN_1 on the clone of up2.
cp_config cpe hq initiator 10.81.0.1 10.80.0.1 cpe.lab hub.lab 10.91.1.0/24 10.92.1.0/24
cat >>"$RUN/cpe.cp.toml" <<EOF
clone = true
interfaces = ["10.82.0.1"]
[[connection.child]]
name = "vpn1"
local_ts = ["10.91.2.0/24"]
remote_ts = ["10.92.2.0/24"]
interface = "10.82.0.1"
EOF
cp_config hub cpe responder 10.80.0.1 %any hub.lab cpe.lab 10.92.1.0/24 10.91.1.0/24
cat >>"$RUN/hub.cp.toml" <<EOF
clone = true
[[connection.child]]
name = "vpn1"
local_ts = ["10.92.2.0/24"]
remote_ts = ["10.91.2.0/24"]
EOF
for n in hub cpe; do
    "$BIN/gw-dataplane" --config "$RUN/$n.dp.toml" --check >/dev/null
    "$BIN/gw-controlplane" --config "$RUN/$n.cp.toml" --check >/dev/null
done
declare -A GW
start() { # start NAME: its dataplane and control plane
    ip netns exec "$P-$1" "$BIN/gw-dataplane" --config "$RUN/$1.dp.toml" >>"$RUN/$1.dp.log" 2>&1 &
    PIDS+=($!)
    GW[$1]="$!"
    ip netns exec "$P-$1" "$BIN/gw-controlplane" --config "$RUN/$1.cp.toml" >>"$RUN/$1.cp.log" 2>&1 &
    PIDS+=($!)
    GW[$1]="${GW[$1]} $!"
}
cpe() { "$BIN/gwctl" -s "$RUN/cpe.sock" "$@"; }
hub() { "$BIN/gwctl" -s "$RUN/hub.sock" "$@"; }
ping_from() { # ping_from SRC DST [COUNT]
    ip netns exec "$P-cpe-lan" ping -q -c "${3:-5}" -i 0.05 -W 1 -I "$1" "$2" 2>&1 | grep -q ' 0% packet loss'
}
# The hub's IKE SA whose peer is at ADDR: its block of `gwctl list`.
sa_from() { hub list | awk -v a="<-> $1:" '/^[^ ]/ {on = index($0, a) > 0} on'; }
# The CPE's outbound SPI (the hub's inbound) of child NAME ("" = VPN_0).
spi_out() {
    cpe list | awk -v n="$1" '/^  child / {ok = (n == "" ? $0 !~ /\[/ : index($0, "[" n "]") > 0); if (ok) {sub(/_o$/, "", $3); print $3}}'
}
two_sas_laid_out() {
    sa_from 10.81.0.1 | grep -q 'child .*Installed' && sa_from 10.81.0.1 | grep -vq '\[vpn1\]' &&
        sa_from 10.82.0.1 | grep -q 'child .*Installed.*\[vpn1\]' && sa_from 10.82.0.1 | grep -q 'clone of IKE SA'
}
capture() { # capture NAME IFACE: ESP seen on one uplink, in the ISP
    ip netns exec "$P-isp" tcpdump -i "$2" -n -U -w "$RUN/$1.pcap" esp >/dev/null 2>&1 &
    CAPS+=($!)
}
esp_spis() { # esp_spis NAME: the SPIs of the ESP captured, one per line
    tcpdump -n -r "$RUN/$1.pcap" 2>/dev/null | grep -o 'spi=0x[0-9a-f]*' | sed 's/spi=0x//' | sort -u
}
has_spi() { esp_spis "$1" | grep -qx "$2"; }
lacks_spi() { ! esp_spis "$1" | grep -qx "$2"; }
export -f cpe hub sa_from spi_out two_sas_laid_out esp_spis has_spi lacks_spi
export BIN RUN P

say "phase 1: our hub (Clone IKE SA on both sides)"
start hub
start cpe
check "the CPE authenticates once, clones, and lays out one IKE SA per uplink (hub's view)" wait_for 20 two_sas_laid_out
check "gwctl list on the CPE: two IKE SAs, the clone listed after its original" bash -c \
    "cpe list | grep -E '^hq: ' | wc -l | grep -qx 2 && cpe list | grep -A3 '^hq: ' | tail -n +2 | grep -q 'clone of IKE SA'"
check "one IKE_AUTH only: the hub authenticated the CPE once, then cloned" bash -c \
    "[ \$(grep -c 'established with' '$RUN/hub.cp.log') -eq 1 ] && grep -q 'cloned as' '$RUN/hub.cp.log'"
ip netns exec "$P-cpe-lan" ping -q -c 2 -W 1 -I 10.91.1.10 10.92.1.10 >/dev/null 2>&1 || true
ip netns exec "$P-cpe-lan" ping -q -c 2 -W 1 -I 10.91.2.10 10.92.2.10 >/dev/null 2>&1 || true
capture up1 i-up1
capture up2 i-up2
sleep 1
check "VPN_0 flows (10.91.1.10 -> 10.92.1.10)" wait_for 5 ping_from 10.91.1.10 10.92.1.10 20
check "VPN_1 flows (10.91.2.10 -> 10.92.2.10)" wait_for 5 ping_from 10.91.2.10 10.92.2.10 20
sleep 1
stop "${CAPS[@]}"
CAPS=()
V0=$(spi_out "")
V1=$(spi_out vpn1)
say "     VPN_0 sends with SPI $V0, VPN_1 with SPI $V1"
check "tcpdump: VPN_0's ESP on uplink 1" has_spi up1 "$V0"
check "tcpdump: VPN_1's ESP on uplink 2" has_spi up2 "$V1"
check "tcpdump: no VPN_1 on uplink 1, no VPN_0 on uplink 2" bash -c "lacks_spi up1 $V1 && lacks_spi up2 $V0"

# Uplink 1's link goes down while VPN_0 sends every 5 ms.
capture up2cut i-up2
out=$RUN/ping.vpn0
lost=$(pings_across cpe up1 "$out" 10.91.1.10 10.92.1.10 1000)
say "     VPN_0 while up1's link went down: $(grep 'packet loss' "$out") ($lost lost, ping every 5 ms: about $((lost * 5)) ms without service)"
check "VPN_0's IKE SA moved to uplink 2 (the hub sees it there)" wait_for 10 bash -c "sa_from 10.82.0.1 | grep -v vpn1 | grep -q 'child .*Installed' && ! sa_from 10.81.0.1 | grep -q child"
check "VPN_0's traffic continues on uplink 2" wait_for 5 ping_from 10.91.1.10 10.92.1.10 20
check "VPN_1 unaffected" ping_from 10.91.2.10 10.92.2.10 10
check "VPN_0 lost less than 2 s of pings in the move" test "$lost" -lt 400
sleep 0.5
stop "${CAPS[@]}"
CAPS=()
check "tcpdump: VPN_0's ESP now on uplink 2" has_spi up2cut "$V0"

# Uplink 1 comes back: VPN_0's IKE SA returns to it.
ip -n "$P-cpe" link set up1 up
check "up1 back: the layout is restored (VPN_0 on up1, VPN_1 on up2)" wait_for 15 two_sas_laid_out
check "the CPE logged the return" wait_for 5 grep -q "back on its interface" "$RUN/cpe.cp.log"
capture up1back i-up1
sleep 0.5
check "VPN_0 flows on uplink 1 again" wait_for 5 ping_from 10.91.1.10 10.92.1.10 20
check "VPN_1 still flows" ping_from 10.91.2.10 10.92.2.10 10
sleep 0.5
stop "${CAPS[@]}"
CAPS=()
check "tcpdump: VPN_0's ESP back on uplink 1" has_spi up1back "$V0"

# ---- phase 2: strongSwan as the hub, the CPE's config unchanged ----
say "phase 2: strongSwan hub (no Clone IKE SA), same CPE config"
# shellcheck disable=SC2086
stop ${GW[cpe]} ${GW[hub]}
rm -rf "/var/run/dpdk/$P-cpe" "/var/run/dpdk/$P-hub"
ip -n "$P-hub" addr add 10.80.0.1/24 dev wan
ip -n "$P-hub" route add default via 10.80.0.254
ip -n "$P-hub" addr add 10.92.1.1/32 dev lo
ip -n "$P-hub" addr add 10.92.2.1/32 dev lo
"$IOP/strongswan-peer.sh" start hubss --netns "$P-hub" --local 10.80.0.1 --local-id hub.lab --remote-id cpe.lab \
    --psk "$PSK" --local-ts 10.92.0.0/16 --remote-ts 10.91.0.0/16 --esp-proposals aes128gcm16 --log-level 2 >/dev/null
start cpe
ss_children() { [ "$(cpe list | grep -c 'child .*Installed')" -eq 2 ]; }
export -f ss_children
check "the CPE brings up both VPNs with strongSwan" wait_for 20 ss_children
check "one IKE SA for both (no clone without the peer's support)" bash -c "[ \$(cpe list | grep -c '^hq: ') -eq 1 ] && ! cpe list | grep -q 'clone of'"
check "strongSwan agrees: one IKE SA, two child SAs" bash -c \
    "'$IOP/strongswan-peer.sh' sas hubss | grep -c ESTABLISHED | grep -qx 1 && [ \$('$IOP/strongswan-peer.sh' sas hubss | grep -c INSTALLED) -eq 2 ]"
ip netns exec "$P-cpe-lan" ping -q -c 2 -W 1 -I 10.91.1.10 10.92.1.1 >/dev/null 2>&1 || true
ip netns exec "$P-cpe-lan" ping -q -c 2 -W 1 -I 10.91.2.10 10.92.2.1 >/dev/null 2>&1 || true
check "VPN_0 flows to strongSwan" wait_for 5 ping_from 10.91.1.10 10.92.1.1 10
check "VPN_1 flows to strongSwan" wait_for 5 ping_from 10.91.2.10 10.92.2.1 10
check "strongSwan has the CPE on up1" bash -c "'$IOP/strongswan-peer.sh' sas hubss | grep -q '@ 10.81.0.1\['"
ip -n "$P-cpe" link set up1 down
check "up1 down: the CPE moves the one IKE SA to up2 (MOBIKE), strongSwan follows" wait_for 15 bash -c \
    "'$IOP/strongswan-peer.sh' sas hubss | grep -q '@ 10.82.0.1\['"
check "VPN_0 flows after the move" wait_for 5 ping_from 10.91.1.10 10.92.1.1 10
check "VPN_1 flows after the move" wait_for 5 ping_from 10.91.2.10 10.92.2.1 10
ip -n "$P-cpe" link set up1 up
"$IOP/strongswan-peer.sh" log hubss 100000 >"$RUN/ss.log"
check "strongSwan parsed our IKE_AUTH (its CLONE_IKE_SA_SUPPORTED ignored)" grep -q 'parsed IKE_AUTH request' "$RUN/ss.log"
check "strongSwan never received CLONE_IKE_SA (16433)" bash -c "! grep -qE 'N\\(16433\\)|CLONE_IKE_SA([^_]|\$)' '$RUN/ss.log'"

if [ "$fail" -ne 0 ]; then "$IOP/strongswan-peer.sh" log hubss 30 2>/dev/null || true; fi
lab_result cpe.cp hub.cp
