#!/usr/bin/env bash
# test.sh - every test of the gateway, from a clean clone: installs what is
# missing, builds, lints, runs unit, in-memory and real-component tests
# (DPDK on virtual devices), checks the static build, and smoke-runs the
# benchmark harness (which reports, never asserts, speed).
# Needs root: DPDK's runtime directory, network namespaces, apt-get.
set -euo pipefail
cd "$(dirname "$0")"
SETUP_QUIET=1 ./setup.sh
[[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"
if [[ $EUID -ne 0 ]]; then
    echo "test.sh: the DPDK and namespace tests need root (sudo ./test.sh)" >&2
    exit 1
fi

step() { printf '\n==> %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "clippy (warnings denied)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "unit, in-memory and real-component tests"
# The filter hides DPDK's start-up chatter; with pipefail cargo's status counts.
cargo test --workspace 2>&1 | grep -v -E '^EAL: |^TELEMETRY: '

step "loom: every interleaving of the cp<->dp ring's producer and consumer"
RUSTFLAGS="--cfg loom" cargo test --quiet --release -p cpdp --target-dir target/loom --lib

step "fuzz: the receive pipeline (raw frames and tampered ESP), ${FUZZ_SECONDS:=30} s"
(cd dataplane && RUSTC_BOOTSTRAP=1 cargo fuzz run pipeline -- -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 2>&1 \
    | grep -E '^(Done|stat::number_of_executed_units|==[0-9]+==|SUMMARY|thread)' ) || { echo "fuzzing found a failure" >&2; exit 1; }

step "fuzz: IKE datagrams into a responder, ${FUZZ_SECONDS} s"
(cd controlplane/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run ike_responder -- -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 2>&1 \
    | grep -E '^(Done|stat::number_of_executed_units|==[0-9]+==|SUMMARY|thread)' ) || { echo "fuzzing found a failure" >&2; exit 1; }

step "fuzz: MPSA_PUT notification data into the endpoint's parser, ${FUZZ_SECONDS} s"
(cd controlplane/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run mpsa_put -- -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 2>&1 \
    | grep -E '^(Done|stat::number_of_executed_units|==[0-9]+==|SUMMARY|thread)' ) || { echo "fuzzing found a failure" >&2; exit 1; }

step "static build: gw-dataplane without DPDK shared libraries"
cargo build --release --quiet -p dataplane --features static --target-dir target/static
static_bin=target/static/release/gw-dataplane
if ldd "$static_bin" | grep -q librte_; then
    echo "static gw-dataplane still links DPDK shared libraries:" >&2
    ldd "$static_bin" | grep librte_ >&2
    exit 1
fi
GW_DATAPLANE_BIN="$PWD/$static_bin" cargo test -q -p dataplane --test forward 2>&1 | grep -v -E '^EAL: |^TELEMETRY: '

step "interop: strongSwan <-> gw-controlplane + gw-dataplane in network namespaces"
cargo build --release --quiet -p dataplane -p controlplane
controlplane/tests/interop-strongswan.sh 2>&1 | grep -a -v -E '^EAL: |^TELEMETRY: '

step "the MPSA lab: hub + three endpoints + a strongSwan road warrior in network namespaces"
LAB_NO_SETUP=1 ./lab.sh mpsa --check 2>&1 | grep -a -v -E '^EAL: |^TELEMETRY: '

step "IKE under load: 500 SAs from strongSwan's load-tester, into the kernel-UDP responder and the appliance path (gw-dataplane + rings); every SA must come up"
../shared/interop/build-extra-plugins.sh 2>&1 | tail -n 1
cargo build --release --quiet -p dataplane -p controlplane -p benches
./target/release/gw-bench ike --count 500 --runs 1 --no-strongswan --established 5000 2>&1 | grep -a -v -E '^EAL: |^TELEMETRY: '

step "benchmark harness smoke run (figures are reported, not asserted)"
cargo build --release --quiet -p dataplane -p benches
./target/release/gw-bench forward --runs 1 --sizes 64 --warmup 0.5 --interval 0.5 --windows 1
./target/release/gw-bench mpsa --members 100
echo
echo "test.sh: all tests passed"
