#!/usr/bin/python3
"""ESP transport-mode encryption with ../shared/interop/esp-oracle's own
Scapy security association (its CLI encrypts in tunnel mode only: without
a tunnel header, Scapy's SecurityAssociation puts ESP after the packet's
own IP header, RFC 4303 3.1.1).

  oracle-transport-encap.py ORACLE --spi 0x1001 --alg aes128gcm --key HEX \
      [--auth-key HEX] [--seq N] --in clear.pcap --out esp.pcap
"""
import argparse
import importlib.machinery
import importlib.util
import sys

p = argparse.ArgumentParser()
p.add_argument("oracle")
p.add_argument("--spi", required=True)
p.add_argument("--alg", required=True)
p.add_argument("--key", required=True)
p.add_argument("--auth-key")
p.add_argument("--seq", type=int, default=1)
p.add_argument("--in", dest="inp", required=True)
p.add_argument("--out", required=True)
a = p.parse_args()

loader = importlib.machinery.SourceFileLoader("esp_oracle", a.oracle)
spec = importlib.util.spec_from_loader("esp_oracle", loader)
oracle = importlib.util.module_from_spec(spec)
loader.exec_module(oracle)
oracle.conf.verb = 0

# The oracle's SA with no tunnel header (transport), no NAT-T, no ESN.
a.src = a.dst = None
a.natt = a.esn = False
a.cmd = "encap"
sa = oracle.make_sa(a)
out = []
for i, pkt in enumerate(oracle.rdpcap(a.inp)):
    ip = oracle.ip_layer(pkt)
    if ip is None:
        sys.exit(f"packet {i}: no IP header")
    oracle.use_seq(sa, a, a.seq + i)
    out.append(oracle.rewrap(pkt, sa.encrypt(ip.copy())))
oracle.wrpcap(a.out, out)
print(f"transport encap: {len(out)} packets -> {a.out}")
