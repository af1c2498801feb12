#!/usr/bin/env bash
# test.sh - every test of the gateway, from a clean clone: installs what is
# missing, builds, lints, runs unit, in-memory and real-component tests
# (DPDK on virtual devices), checks the static build, and smoke-runs the
# benchmark harness (which reports, never asserts, speed).
# Needs root: DPDK's runtime directory, network namespaces, apt-get.
#
# Two tiers: plain `cargo test` runs the unit and in-memory tests anywhere
# the workspace builds, as any user; the real-component tests (the DPDK
# EAL, gw-dataplane on virtual devices, Scapy) are #[ignore]d there and
# run here with --include-ignored, beside the namespace labs below. Every
# step has a time limit, so a hung step fails the run instead of stalling it.
set -euo pipefail
cd "$(dirname "$0")"
timeout 1800 env SETUP_QUIET=1 ./setup.sh
[[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"
if [[ $EUID -ne 0 ]]; then
    echo "test.sh: the DPDK and namespace tests need root (sudo ./test.sh); as a user, cargo test runs the rest" >&2
    exit 1
fi

# step SECONDS "what" COMMAND...: runs COMMAND (a shell function or a
# program) under a time limit.
step() {
    local secs=$1 what=$2
    shift 2
    printf '\n==> %s\n' "$what"
    local rc=0
    timeout --kill-after=15 "$secs" bash -c "set -euo pipefail; $*" || rc=$?
    if [[ $rc -eq 124 || $rc -eq 137 ]]; then
        echo "test.sh: \"$what\" did not finish within $secs s" >&2
    fi
    if [[ $rc -ne 0 ]]; then
        exit "$rc"
    fi
}

quiet_dpdk() { grep -a -v -E '^EAL: |^TELEMETRY: '; }
fuzz() { # fuzz DIR TARGET
    (cd "$1" && RUSTC_BOOTSTRAP=1 cargo fuzz run "$2" -- -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 2>&1 \
        | grep -E '^(Done|stat::number_of_executed_units|#[0-9]+[[:space:]]+DONE|==[0-9]+==|SUMMARY|thread)') || { echo "fuzzing found a failure" >&2; exit 1; }
}
static_build() {
    cargo build --release --quiet -p dataplane --features static --target-dir target/static
    local bin=target/static/release/gw-dataplane
    if ldd "$bin" | grep -q librte_; then
        echo "static gw-dataplane still links DPDK shared libraries:" >&2
        ldd "$bin" | grep librte_ >&2
        exit 1
    fi
    GW_DATAPLANE_BIN="$PWD/$bin" cargo test -q -p dataplane --test forward -- --include-ignored 2>&1 | quiet_dpdk
}
ike_load() {
    ../shared/interop/build-extra-plugins.sh 2>&1 | tail -n 1
    cargo build --release --quiet -p dataplane -p controlplane -p benches
    ./target/release/gw-bench ike --count 500 --runs 1 --no-strongswan --established 5000 2>&1 | quiet_dpdk
}
smoke() {
    cargo build --release --quiet -p dataplane -p benches
    ./target/release/gw-bench forward --runs 1 --sizes 64 --warmup 0.5 --interval 0.5 --windows 1
    ./target/release/gw-bench mpsa --members 100
    ./target/release/gw-bench clone --runs 1 --vpns 2
    ./target/release/gw-bench failover --clients 50 --ike aes128gcm16-prfsha256-x25519
}
# Disk: a full run builds about 10 GB (debug, release, static, loom, the
# fuzzers, without incremental state). Where the disk is short, each build
# directory goes once no later step needs it.
export CARGO_INCREMENTAL=0
free_gb() { df --output=avail -BG . | tail -n 1 | tr -dc 0-9; }
done_with() { # done_with DIR...: removes them when under 20 GB is free
    if [[ $(free_gb) -lt 20 ]]; then
        echo "test.sh: $(free_gb) GB free: removing $* (no later step needs it)"
        rm -rf "$@"
    fi
}
export FUZZ_SECONDS=${FUZZ_SECONDS:-30}
export -f quiet_dpdk fuzz static_build ike_load smoke

step 120 "format" cargo fmt --all -- --check
step 1800 "clippy (warnings denied)" cargo clippy --workspace --all-targets --quiet -- -D warnings
# The filter hides DPDK's start-up chatter; with pipefail cargo's status counts.
step 2400 "unit, in-memory and real-component tests" \
    "cargo test --workspace -- --include-ignored 2>&1 | quiet_dpdk"
step 900 "loom: every interleaving of the cp<->dp ring's producer and consumer" \
    RUSTFLAGS=\"--cfg loom\" cargo test --quiet --release -p cpdp --target-dir target/loom --lib
done_with target/loom
step 900 "fuzz: the receive pipeline (raw frames, tampered ESP, fuzzer plaintexts sealed with the SA's key), $FUZZ_SECONDS s" fuzz dataplane pipeline
step 900 "fuzz: IKE datagrams into a responder, $FUZZ_SECONDS s" fuzz controlplane/fuzz ike_responder
step 900 "fuzz: MPSA_PUT notification data into the endpoint's parser, $FUZZ_SECONDS s" fuzz controlplane/fuzz mpsa_put
step 900 "fuzz: MOBIKE-X parameters and SELECTOR sets into the responder's readers, $FUZZ_SECONDS s" fuzz controlplane/fuzz mobikex_params
done_with dataplane/fuzz/target controlplane/fuzz/target
step 1800 "static build: gw-dataplane without DPDK shared libraries" static_build
# The debug build's last user was the static build's forward test.
done_with target/debug
step 1500 "the .deb: built, installed with apt into a fresh Debian 12 root, --check run from it, units verified, gw-setup's NIC checks" \
    "controlplane/tests/package.sh 2>&1 | quiet_dpdk"
done_with target/static
step 1200 "interop: strongSwan <-> gw-controlplane + gw-dataplane in network namespaces" \
    "cargo build --release --quiet -p dataplane -p controlplane && controlplane/tests/interop-strongswan.sh 2>&1 | quiet_dpdk"
step 600 "the MPSA lab: hub + three endpoints + a strongSwan road warrior in network namespaces" \
    "LAB_NO_SETUP=1 ./lab.sh mpsa --check 2>&1 | quiet_dpdk"
step 300 "the MOBIKE-X lab: a CPE with two uplinks and a hub, both ours, in network namespaces" \
    "LAB_NO_SETUP=1 ./lab.sh mobikex 2>&1 | quiet_dpdk"
step 300 "the Clone IKE SA lab: a CPE with two uplinks, one IKE SA per uplink by cloning, then against strongSwan" \
    "LAB_NO_SETUP=1 ./lab.sh clone 2>&1 | quiet_dpdk"
step 900 "the failover lab: hub A dies under traffic, standby B rebuilds its clients from stubs in gw-stubbank on etcd, then A takes one back" \
    "LAB_NO_SETUP=1 ./lab.sh failover 2>&1 | quiet_dpdk"
step 900 "IKE under load: 500 SAs from strongSwan's load-tester, into the kernel-UDP responder and the appliance path (gw-dataplane + rings); every SA must come up" \
    ike_load
step 600 "benchmark harness smoke run (figures are reported, not asserted)" smoke
echo
echo "test.sh: all tests passed"
