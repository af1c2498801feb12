#!/usr/bin/env bash
# lab.sh - the main job: a self-contained lab on DPDK virtual devices.
# Builds the gateway, writes IMIX test traffic, and runs gw-dataplane on
# it from a line-rate pcap source to a sink, printing live counters: first
# plain forwarding (the floor), then the gateway encrypting it into an
# AES-128-GCM NAT-T tunnel, LAB_SECONDS each (default 8; Ctrl-C stops a
# phase sooner).
# Needs root (DPDK runtime directory, apt-get on first run).
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
[[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"
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
