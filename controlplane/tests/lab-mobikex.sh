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
LAB=mobikex
# shellcheck source=controlplane/tests/lab-common.sh
. "$ROOT/controlplane/tests/lab-common.sh"
trap lab_cleanup EXIT
trap 'exit 130' INT TERM
need_binaries

# ---- topology ----
cpe_hub_lab
child() { # NAME LOCAL REMOTE
    printf '[[connection.child]]\nname = "%s"\nlocal_ts = ["%s"]\nremote_ts = ["%s"]\n' "$1" "$2" "$3"
}
# A transport-mode child SA between the two gateways' own addresses: its
# selectors are the IKE addresses, anywhere in 10.80.0.0/12.
tchild() { printf '[[connection.child]]\nname = "mgmt"\nmode = "transport"\nlocal_ts = ["10.80.0.0/12"]\nremote_ts = ["10.80.0.0/12"]\n'; }
cp_config cpe hq initiator 10.81.0.1 10.80.0.1 cpe.lab hub.lab 10.91.1.0/24 10.92.1.0/24
cat >>"$RUN/cpe.cp.toml" <<EOF
additional_addresses = ["10.82.0.1"]
$(child voice 10.91.2.0/24 10.92.2.0/24)
$(tchild)
EOF
cp_config hub cpe responder 10.80.0.1 %any hub.lab cpe.lab 10.92.1.0/24 10.91.1.0/24
cat >>"$RUN/hub.cp.toml" <<EOF
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
check "the daemon logged the new paths" wait_for 5 grep -q "now on 10.80.0.1 <-> 10.81.0.1, then 10.80.0.1 <-> 10.82.0.1" "$RUN/hub.cp.log"
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
lost=$(pings_across cpe up1 "$out" 10.91.2.10 10.92.2.10 800)
say "     voice (multihomed) while up1's link went down: $(grep 'packet loss' "$out") ($lost lost, ping every 5 ms)"
check "the CPE saw up1 go and moved its IKE SA to up2" wait_for 5 grep -qE "moved from 10.81.0.1:[0-9]+ .* to 10.82.0.1:[0-9]+ .*our address on the path went away" "$RUN/cpe.cp.log"
check "data flows after the move" wait_for 5 ping_from 10.91.1.10 10.92.1.10
check "voice flows after the move" ping_from 10.91.2.10 10.92.2.10
check "the transport-mode child SA moved with its selectors (hub and CPE)" wait_for 5 bash -c "$(declare -f hub cpe mgmt_ts); BIN=$BIN RUN=$RUN; mgmt_ts hub '10.80.0.1/32 === 10.82.0.1/32' && mgmt_ts cpe '10.82.0.1/32 === 10.80.0.1/32'"
ip -n "$P-cpe" link set up1 up

lab_result cpe.cp hub.cp
