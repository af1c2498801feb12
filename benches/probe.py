#!/usr/bin/python3
"""A constant-rate ICMP echo prober for the move benchmark (benches/mobike.sh).

ping(8) slows down when its requests go unanswered, which stretches and
quantizes the outage it shows; this sends one echo request every INTERVAL
milliseconds whatever comes back, and records when each was sent and when
(if at all) its reply came.

  probe.py --dst 10.77.2.1 [--src 10.77.1.1] --interval-ms 1 --seconds 4.5 \
      --out FILE

FILE: one line per request, "seq sent_epoch_s replied_epoch_s|-". Needs
root (a raw ICMP socket).
"""
import argparse
import os
import select
import socket
import struct
import time


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dst", required=True)
    p.add_argument("--src")
    p.add_argument("--interval-ms", type=float, default=1.0)
    p.add_argument("--seconds", type=float, required=True, help="at most 65535 requests")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    if a.src:
        s.bind((a.src, 0))
    s.setblocking(False)
    ident = os.getpid() & 0xFFFF
    sent, replied = {}, {}
    step = a.interval_ms / 1000.0
    start = time.time()
    nxt, seq = start, 0
    end = start + a.seconds
    while True:
        now = time.time()
        if now >= nxt and now < end:
            hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq & 0xFFFF)
            body = struct.pack("!d", now) + b"probe" * 4
            pkt = struct.pack("!BBHHH", 8, 0, checksum(hdr + body), ident, seq & 0xFFFF) + body
            try:
                s.sendto(pkt, (a.dst, 0))
            except OSError:
                pass
            sent[seq] = now
            seq += 1
            nxt += step
        if now >= end + 1.0:
            break
        wait = max(0.0, min(nxt - time.time(), 0.005)) if now < end else 0.005
        r, _, _ = select.select([s], [], [], wait)
        while r:
            try:
                data = s.recv(2048)
            except BlockingIOError:
                break
            hl = (data[0] & 0x0F) * 4
            typ, _, _, rid, rseq = struct.unpack("!BBHHH", data[hl:hl + 8])
            if typ == 0 and rid == ident:
                # Runs stay under 2^16 requests: the sequence number is the key.
                if rseq in sent and rseq not in replied:
                    replied[rseq] = time.time()
    with open(a.out, "w") as f:
        for k in sorted(sent):
            r = replied.get(k)
            f.write(f"{k} {sent[k]:.6f} {r:.6f}\n" if r else f"{k} {sent[k]:.6f} -\n")


if __name__ == "__main__":
    main()
