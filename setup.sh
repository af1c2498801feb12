#!/usr/bin/env bash
# setup.sh - installs what building, running and testing the gateway needs.
# Idempotent: quiet and quick when everything is there already. Both README
# commands (./lab.sh and ./test.sh) call it first. Needs root for apt-get.
set -euo pipefail

# Debian 12 packages, and why:
PKGS=(
    libdpdk-dev dpdk dpdk-dev  # DPDK 22.11: headers, .so/.a, PMDs, dpdk-testpmd
    libipsec-mb-dev            # intel-ipsec-mb (DPDK's crypto_ipsec_mb PMD)
    libpcap-dev                # net_pcap virtual device
    pkg-config                 # finds libdpdk
    clang libclang-dev         # bindgen (dpdk-sys)
    build-essential            # cc for the DPDK shim
    python3-scapy              # ../shared anchors' pcap generator and ESP oracle
    tcpdump iproute2 procps    # captures, network namespaces, ps/kill in tests
    iputils-ping ethtool       # interop traffic; veth checksum offload off
    nftables                   # a NAT (masquerade) on the path in the MOBIKE interop
    etcd-server                # the stub bank's replicated store (gw-stubbank, failover lab)
    protobuf-compiler          # protoc: the etcd-client crate's build script
    libprotobuf-dev            # ... and the well-known .proto files it imports (only Recommended by protoc)
    bird2                      # BIRD 2: the BGP speakers of the MPSA lab's peer discovery (mpsa-04 section 4)
    prometheus                 # scrapes gw-controlplane's /metrics in the MPSA lab
    mmdebstrap                 # a fresh Debian 12 root to install the .deb into (package test)
    # strongSwan 5.9.8, the independent IKEv2 peer of the interop tests
    # (../shared/interop: charon-systemd with kernel-libipsec)
    charon-systemd strongswan-swanctl libcharon-extra-plugins
    libstrongswan-standard-plugins libstrongswan-extra-plugins
    strongswan-pki             # pki: the certificates of the certificate interop (issue 17)
)

log() { [[ "${SETUP_QUIET:-0}" == 1 ]] || echo "setup: $*"; }

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $EUID -ne 0 ]]; then
        echo "setup: missing Debian packages: ${missing[*]}; run as root (sudo ./setup.sh)" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq \
        || { echo "setup: apt-get update failed: are the Debian mirrors reachable?" >&2; exit 1; }
    if ! apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/tmp/gw-setup-apt.log 2>&1; then
        echo "setup: apt-get install ${missing[*]} failed; last lines of /tmp/gw-setup-apt.log:" >&2
        tail -n 15 /tmp/gw-setup-apt.log >&2
        exit 1
    fi
else
    log "Debian packages present"
fi

if ! pkg-config --atleast-version=22.11 libdpdk; then
    echo "setup: pkg-config finds no DPDK >= 22.11 (libdpdk-dev installed?)" >&2
    exit 1
fi

# Rust: the stable toolchain from rustup (Debian's cargo is too old).
if ! command -v cargo >/dev/null 2>&1; then
    for d in "$HOME/.cargo/bin" /root/.cargo/bin; do
        [[ -x "$d/cargo" ]] && export PATH="$d:$PATH" && break
    done
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found: install the stable Rust toolchain (https://rustup.rs), then run again" >&2
    exit 1
fi
need="1.85.0"
have=$(rustc --version | awk '{print $2}')
if [[ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]]; then
    echo "setup: rustc $have is older than $need: rustup update stable" >&2
    exit 1
fi
for comp in rustfmt clippy; do
    if ! cargo "${comp/rustfmt/fmt}" --version >/dev/null 2>&1; then
        log "adding rustup component $comp"
        rustup component add "$comp" >/dev/null
    fi
done
# cargo-fuzz runs the fuzz targets in ./test.sh (on stable, with RUSTC_BOOTSTRAP=1).
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz (once, about 2 minutes)"
    cargo install --quiet --locked cargo-fuzz \
        || { echo "setup: cargo install cargo-fuzz failed (is crates.io reachable?)" >&2; exit 1; }
fi
# cargo-deb builds the appliance's .deb (./test.sh installs it in a fresh root).
if ! cargo deb --version >/dev/null 2>&1; then
    log "installing cargo-deb (once, about 2 minutes)"
    cargo install --quiet --locked cargo-deb \
        || { echo "setup: cargo install cargo-deb failed (is crates.io reachable?)" >&2; exit 1; }
fi
log "ready: DPDK $(pkg-config --modversion libdpdk), $(rustc --version)"
