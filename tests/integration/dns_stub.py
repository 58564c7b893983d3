#!/usr/bin/env python3
"""A tiny authoritative DNS server for the lab: answers NAPTR, SRV and A
queries over UDP from records given on the command line, NXDOMAIN for
anything else, and exits after --seconds.  Used to test
sluice-controlplane's DNS upstreams (RFC 3263 NAPTR, RFC 2782 SRV).

  dns_stub.py --bind 127.0.0.1:53 --ttl 5 \
      --srv _sip._udp.pbx.lab=10:1:5090:pbx-a.lab --srv _sip._udp.pbx.lab=20:1:5060:pbx-b.lab \
      --a pbx-a.lab=198.51.100.10 --a pbx-b.lab=198.51.100.10 \
      --naptr pbx.lab=10:10:s:SIP+D2U:_sip._udp.pbx.lab
"""
import argparse, socket, struct, sys, time


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def read_name(msg, off):
    labels = []
    while True:
        n = msg[off]
        if n == 0:
            return ".".join(labels).lower(), off + 1
        if n & 0xC0:
            raise ValueError("compressed question name")
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n


def rr(name, rtype, ttl, rdata):
    return encode_name(name) + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="127.0.0.1:53")
    ap.add_argument("--srv", action="append", default=[], help="NAME=PRIO:WEIGHT:PORT:TARGET")
    ap.add_argument("--a", action="append", default=[], help="NAME=IPV4")
    ap.add_argument("--naptr", action="append", default=[], help="NAME=ORDER:PREF:FLAGS:SERVICE:REPLACEMENT")
    ap.add_argument("--ttl", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=120)
    args = ap.parse_args()
    srv, a, naptr = {}, {}, {}
    for s in args.naptr:
        name, v = s.split("=", 1)
        order, pref, flags, service, repl = v.split(":")
        naptr.setdefault(name.lower(), []).append((int(order), int(pref), flags, service, repl.lower()))
    for s in args.srv:
        name, v = s.split("=", 1)
        p, w, port, target = v.split(":")
        srv.setdefault(name.lower(), []).append((int(p), int(w), int(port), target.lower()))
    for s in args.a:
        name, ip = s.split("=", 1)
        a[name.lower()] = ip
    host, port = args.bind.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, int(port)))
    sock.settimeout(0.5)
    end = time.time() + args.seconds
    print("dns_stub: serving on %s" % args.bind, flush=True)
    while time.time() < end:
        try:
            msg, peer = sock.recvfrom(2048)
        except socket.timeout:
            continue
        try:
            qid, flags, qd = struct.unpack("!HHH", msg[:6])
            name, off = read_name(msg, 12)
            qtype, qclass = struct.unpack("!HH", msg[off:off + 4])
            question = msg[12:off + 4]
        except (ValueError, IndexError, struct.error):
            continue  # not a query we can answer: drop
        answers, additional = [], []
        if qtype == 33 and name in srv:
            for p, w, prt, target in srv[name]:
                answers.append(rr(name, 33, args.ttl, struct.pack("!HHH", p, w, prt) + encode_name(target)))
                if target in a:
                    additional.append(rr(target, 1, args.ttl, socket.inet_aton(a[target])))
        elif qtype == 35 and name in naptr:
            cs = lambda t: bytes([len(t)]) + t.encode()
            for order, pref, nflags, service, repl in naptr[name]:
                answers.append(rr(name, 35, args.ttl, struct.pack("!HH", order, pref) + cs(nflags) + cs(service)
                                  + cs("") + encode_name(repl)))
        elif qtype == 1 and name in a:
            answers.append(rr(name, 1, args.ttl, socket.inet_aton(a[name])))
        known = name in srv or name in a or name in naptr
        rcode = 0 if known else 3
        out = struct.pack("!HHHHHH", qid, 0x8400 | (flags & 0x0100) | 0x0080 | rcode, 1,
                          len(answers), 0, len(additional)) + question + b"".join(answers) + b"".join(additional)
        sock.sendto(out, peer)
        print("dns_stub: %s %s -> %d answers" % ({35: "NAPTR", 33: "SRV", 1: "A"}.get(qtype, qtype), name, len(answers)),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
