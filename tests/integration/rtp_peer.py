#!/usr/bin/env python3
"""A kernel-socket RTP endpoint for the lab and the integration tests.

Sends `count` RTP packets (payload derived from SSRC and sequence, so any
receiver can check it byte for byte) and receives concurrently; prints one
JSON object: sent, received, bad (payload or header mismatches), sources
(distinct source addresses seen), ttls/tos of received packets when asked.
Runs inside a network namespace given with --netns (setns), so one Python
process per endpoint. Bounded: stops after --wait seconds at most.
"""
import argparse, json, os, select, socket, struct, sys, time


def payload(ssrc, seq, size):
    seed = (ssrc * 2654435761 + seq * 40503) & 0xFFFFFFFF
    out = bytearray(size)
    for i in range(size):
        seed = (seed * 1103515245 + 12345) & 0xFFFFFFFF
        out[i] = seed >> 24
    return bytes(out)


def packet(ssrc, seq, pt, size):
    hdr = struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc)
    return hdr + payload(ssrc, seq & 0xFFFF, size)


def check(data, expect_ssrc, size):
    if len(data) != 12 + size:
        return False
    b0, pt, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
    if b0 != 0x80 or (expect_ssrc is not None and ssrc != expect_ssrc):
        return False
    return data[12:] == payload(ssrc, seq, size)


def setns(name):
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), "setns")
    os.close(fd)


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--to")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--pps", type=float, default=500.0)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--pt", type=int, default=0)
    ap.add_argument("--ssrc", type=int, default=1)
    ap.add_argument("--seq", type=int, default=1, help="first sequence number")
    ap.add_argument("--expect", type=int, default=0, help="stop once this many arrived")
    ap.add_argument("--expect-ssrc", type=int)
    ap.add_argument("--wait", type=float, default=5.0)
    ap.add_argument("--linger", type=float, default=0.5, help="receive this long after sending")
    ap.add_argument("--delay", type=float, default=0.0, help="receive only, this long, before sending")
    ap.add_argument("--netns")
    ap.add_argument("--raw", help="send this hex string once instead of RTP")
    ap.add_argument("--tos", action="store_true", help="report TOS/TTL of received packets")
    a = ap.parse_args()
    if a.netns:
        setns(a.netns)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    if a.tos:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
        s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVTTL", 12), 1)
    s.bind(hostport(a.bind))
    dst = hostport(a.to) if a.to else None
    sent = received = bad = 0
    sources = {}
    tos_seen, ttl_seen = set(), set()
    start = time.monotonic()
    deadline = start + a.delay + a.wait
    interval = 1.0 / a.pps if a.pps > 0 else 0
    next_send = start + a.delay
    if a.raw and dst:
        s.sendto(bytes.fromhex(a.raw), dst)
        sent = 1
    done_sending_at = None
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        if a.expect and received >= a.expect and sent >= a.count:
            break
        if sent >= a.count and done_sending_at is None:
            done_sending_at = now
        if done_sending_at is not None and not a.expect and now - done_sending_at >= a.linger:
            break
        if dst and not a.raw and sent < a.count and now >= next_send:
            s.sendto(packet(a.ssrc, a.seq + sent, a.pt, a.size), dst)
            sent += 1
            next_send += interval
            continue
        timeout = max(0.0, min(deadline, next_send if sent < a.count and dst else deadline) - now)
        r, _, _ = select.select([s], [], [], min(timeout, 0.05))
        if r:
            if a.tos:
                data, anc, _, src = s.recvmsg(2048, 256)
                for lvl, typ, val in anc:
                    if typ == socket.IP_TOS:
                        tos_seen.add(val[0])
                    elif typ == getattr(socket, "IP_TTL", 2):
                        ttl_seen.add(struct.unpack("i", val[:4])[0])
            else:
                data, src = s.recvfrom(2048)
            received += 1
            key = f"{src[0]}:{src[1]}"
            sources[key] = sources.get(key, 0) + 1
            if not check(data, a.expect_ssrc, a.size):
                bad += 1
    out = {"sent": sent, "received": received, "bad": bad, "sources": sources}
    if a.tos:
        out["tos"] = sorted(tos_seen)
        out["ttl"] = sorted(ttl_seen)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
