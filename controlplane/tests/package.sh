#!/usr/bin/env bash
# package.sh - the appliance package, as an operator installs it:
#   1. the .deb built from this tree (cargo-deb; gw-dataplane static, so
#      it needs no DPDK on the target);
#   2. installed with apt into a fresh Debian 12 root this test makes from
#      Debian's packages (mmdebstrap), its dependencies pulled from the
#      archive as on a real machine;
#   3. from that root: gw-dataplane --check and gw-controlplane --check on
#      the installed /etc/gw, gwctl and gw-setup answering, the units
#      passing `systemd-analyze verify`;
#   4. gw-setup on a made-up sysfs in a namespace whose default route
#      leaves by one "NIC": that NIC refused (the management address),
#      the other bound and given back (dry run: no NIC is touched).
# Needs root (mmdebstrap, chroot, namespaces). Cleans up on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
LAB=package
P=gwpkg$$
RUN=$(mktemp -d /tmp/gw-pkg.XXXXXX)
# shellcheck source=controlplane/tests/lab-common.sh
. controlplane/tests/lab-common.sh
cleanup() {
    set +e
    for m in proc sys dev; do umount -l "$RUN/root/$m" 2>/dev/null; done
    lab_cleanup
}
trap cleanup EXIT
[[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"

say "building the binaries (release; gw-dataplane static) and the .deb"
cargo build --release --quiet -p controlplane -p stubbank -p benches
cargo build --release --quiet -p dataplane --features static --target-dir target/static
deb=$RUN/ipsec-gw.deb
cargo deb -p controlplane --no-build --quiet --output "$deb" >"$RUN/cargo-deb.log" 2>&1 || {
    cat "$RUN/cargo-deb.log" >&2
    exit 1
}
say "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
check "the package lists its dependencies (the static dataplane's libraries, no DPDK)" \
    bash -c "dpkg-deb -f '$deb' Depends | grep -q libpcap0.8 && ! dpkg-deb -f '$deb' Depends | grep -q librte"
check "/etc/gw files are conffiles (an upgrade keeps the operator's)" \
    bash -c "dpkg-deb -e '$deb' '$RUN/ctl' && grep -q '^/etc/gw/controlplane.toml' '$RUN/ctl/conffiles'"

say "a fresh Debian 12 root from Debian's packages, the .deb installed with apt"
cp "$deb" "$RUN/gw.deb"
# The archive is reached over the network: a failed fetch is tried again
# (three tries, 20 s apart) before the test gives up, and each failure's
# log tail is shown.
make_root() {
    rm -rf "$RUN/root"
    timeout 600 mmdebstrap --quiet --variant=apt --include=systemd,iproute2 \
        --customize-hook="upload $RUN/gw.deb /tmp/gw.deb" \
        --customize-hook='chroot "$1" apt-get install -y -q --no-install-recommends /tmp/gw.deb >/dev/null' \
        bookworm "$RUN/root" >"$RUN/mmdebstrap.log" 2>&1
}
made=0
for try in 1 2 3; do
    if make_root; then made=1; break; fi
    say "mmdebstrap try $try of 3 failed; its log ends:"
    tail -n 20 "$RUN/mmdebstrap.log"
    [[ $try -lt 3 ]] && sleep 20
done
if [[ $made -ne 1 ]]; then
    echo "package: mmdebstrap failed three times (are Debian's mirrors reachable?)" >&2
    exit 1
fi
in_root() { chroot "$RUN/root" "$@"; }
for m in proc sys dev; do mount --bind "/$m" "$RUN/root/$m"; done
check "installed: dpkg says ipsec-gw is installed" bash -c "chroot '$RUN/root' dpkg-query -W -f='\${Status}' ipsec-gw | grep -q 'install ok installed'"
check "gw-dataplane --check on the installed /etc/gw/dataplane.toml" \
    in_root /usr/bin/gw-dataplane --config /etc/gw/dataplane.toml --check
# The two daemons meet: the dataplane in gateway mode with its control
# link where gw-controlplane's control_dir points.
control_dirs_meet() {
    local dp cp
    dp=$(awk '/^\[control\]/ {c = 1} c && /^dir *=/ {gsub(/[" ]/, "", $3); print $3; exit}' "$RUN/root/etc/gw/dataplane.toml")
    cp=$(awk -F'"' '/^control_dir *=/ {print $2; exit}' "$RUN/root/etc/gw/controlplane.toml")
    grep -q '^mode = "gateway"' "$RUN/root/etc/gw/dataplane.toml" && [ -n "$dp" ] && [ "$dp" = "$cp" ]
}
check "the installed dataplane.toml is in gateway mode, its [control] dir the control plane's control_dir" \
    control_dirs_meet
check "gw-controlplane --check on the installed /etc/gw/controlplane.toml" \
    in_root /usr/bin/gw-controlplane --config /etc/gw/controlplane.toml --check
check "gwctl runs (and says the daemon is not there)" \
    bash -c "! chroot '$RUN/root' /usr/bin/gwctl list 2>&1 | grep -q panicked && chroot '$RUN/root' /usr/bin/gwctl --help | grep -q reload"
check "gw-stubbank runs" bash -c "chroot '$RUN/root' /usr/bin/gw-stubbank --help | grep -q config"
check "gw-setup check on the installed /etc/gw/setup.conf (no NICs named: nothing to do)" in_root /usr/sbin/gw-setup check
units="gw-dataplane.service gw-controlplane.service gw-setup.service gw-stubbank.service"
verify() {
    local u out
    for u in $units; do
        [ -f "$RUN/root/lib/systemd/system/$u" ] || { echo "$u not installed"; return 1; }
    done
    # Every unit, its ExecStart binaries resolved in the new root.
    out=$(cd "$RUN/root/lib/systemd/system" && systemd-analyze verify --root="$RUN/root" $units 2>&1) || { echo "$out"; return 1; }
    # Anything said about our units is a finding (other units' notes are not).
    if grep -E 'gw-(dataplane|controlplane|setup|stubbank)' <<<"$out"; then return 1; fi
}
check "systemd-analyze verify: the four units" verify
check "either daemon restarts alone: Restart=always, neither bound to the other" \
    bash -c "cd '$RUN/root/lib/systemd/system' && grep -q '^Restart=always' gw-dataplane.service && grep -q '^Restart=always' gw-controlplane.service && ! grep -qE '^(BindsTo|PartOf|Requires)=' gw-dataplane.service gw-controlplane.service"
check "the dataplane unit checks its config before each start" \
    grep -q '^ExecStartPre=/usr/bin/gw-dataplane --config /etc/gw/dataplane.toml --check' "$RUN/root/lib/systemd/system/gw-dataplane.service"
check "the Grafana dashboard is in the package" test -s "$RUN/root/usr/share/ipsec-gw/grafana/gw-dashboard.json"

say "gw-setup on a made-up sysfs: mgmt0 carries the default route, eth9 does not"
ip netns add "$P-host"
ip -n "$P-host" link add mgmt0 type veth peer name mgmt0p
ip -n "$P-host" link set mgmt0 up && ip -n "$P-host" link set mgmt0p up
ip -n "$P-host" addr add 198.51.100.2/24 dev mgmt0
ip -n "$P-host" route add default via 198.51.100.1
sys=$RUN/sys
mkdir -p "$sys/bus/pci/drivers/ixgbe" "$sys/bus/pci/drivers/vfio-pci"
for d in "0000:03:00.0 eth9" "0000:04:00.0 mgmt0"; do
    set -- $d
    mkdir -p "$sys/bus/pci/devices/$1/net/$2"
    ln -s ../../drivers/ixgbe "$sys/bus/pci/devices/$1/driver"
done
gs() { # gs CONF-TEXT ARGS...: gw-setup from the package, in the namespace
    printf '%s\n' "$1" >"$RUN/setup.conf"
    GW_SETUP_CONF="$RUN/setup.conf" GW_SETUP_SYSFS="$sys" GW_SETUP_STATE="$RUN/state" \
        ip netns exec "$P-host" "$RUN/root/usr/sbin/gw-setup" "${@:2}"
}
refused() { local out; ! out=$(gs 'NICS="0000:04:00.0"' apply --dry-run 2>&1) && grep -q 'mgmt0, which carries the management address' <<<"$out" && ! grep -q 'would run: dpdk-devbind' <<<"$out"; }
check "the NIC the default route leaves by is refused, and nothing is bound" refused
applied() {
    local out
    out=$(gs "$(printf 'NICS="0000:03:00.0"\nHUGEPAGES="2M:512"')" apply --dry-run) || return 1
    grep -q 'would run: dpdk-hugepages.py -p 2M --setup 1024M' <<<"$out" &&
        grep -q 'would remember: 0000:03:00.0 ixgbe' <<<"$out" &&
        grep -q 'would run: dpdk-devbind.py -b vfio-pci 0000:03:00.0' <<<"$out"
}
check "another NIC: hugepages reserved, bound to vfio-pci, its driver (ixgbe) remembered" applied
reverted() {
    mkdir -p "$RUN/state" && echo "0000:03:00.0 ixgbe" >"$RUN/state/bound"
    gs 'NICS="0000:03:00.0"' revert --dry-run | grep -q 'would run: dpdk-devbind.py -b ixgbe 0000:03:00.0'
}
check "revert gives it back to ixgbe" reverted
badconf() { local out; ! out=$(gs 'rm -rf /' check 2>&1) && grep -q 'not a setting this file takes (line 1)' <<<"$out"; }
check "a setup.conf line that is not a setting is refused, naming the line" badconf
badnic() { local out; ! out=$(gs 'NICS="03:00.0 0000:09:00.0"' check 2>&1) && grep -q '03:00.0 is not a PCI address' <<<"$out" && grep -q '0000:09:00.0: no such PCI device' <<<"$out"; }
check "NICS with a malformed or absent address is refused, naming each" badnic

say "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
