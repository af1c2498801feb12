#!/usr/bin/env bash
# lab.sh - the main job: a self-contained lab on DPDK virtual devices.
# Builds the gateway, writes IMIX test traffic, and runs gw-dataplane
# forwarding it from a line-rate pcap source to a sink, printing live
# counters, for LAB_SECONDS (default 10; Ctrl-C stops it sooner).
# Needs root (DPDK runtime directory, apt-get on first run).
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
[[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"
secs=${LAB_SECONDS:-10}
echo "lab: building (release)"
cargo build --release --quiet -p dataplane -p benches
mkdir -p target/lab
./target/release/gw-bench pcap --size imix --count 252 target/lab/traffic.pcap
echo "lab: gw-dataplane forwarding wan (net_pcap, IMIX replayed) -> lan (net_null) for ${secs}s"
timeout -s INT -k 5 "$secs" ./target/release/gw-dataplane --config configs/lab/forward.toml \
    2> >(grep -v -E '^EAL: |^TELEMETRY: ' >&2) || [[ $? == 124 ]]
echo "lab: done"
