#!/usr/bin/env python3
"""A PBX in "direct media" mode, for the lab: a registrar and a stateless
record-routing proxy over UDP that passes every body through untouched.

Teleworkers register through sluice (the relay's Contact is stored per
user); a call to a registered user is proxied to that Contact, so a
teleworker-to-teleworker call crosses the relay twice and each call's inside
SDP names the other call's relay port (the relay's own inside address).
That is what PBXs with direct media or media bypass do, and what makes the
dataplane relay media to its own address (NAT loopback).

Prints one JSON line per message it forwards or answers.  OPTIONS to the
proxy itself get 200; a call to an unknown user gets 404.  Exits after
--seconds.
"""
import argparse
import hashlib
import json
import re
import socket
import sys
import time

COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
           "l": "content-length", "c": "content-type"}


def parse(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    hdrs = []  # (lower-case name, value) in order
    for ln in lines[1:]:
        if ln[:1] in (" ", "\t") and hdrs:
            hdrs[-1] = (hdrs[-1][0], hdrs[-1][1] + " " + ln.strip())
            continue
        name, _, value = ln.partition(":")
        name = name.strip().lower()
        hdrs.append((COMPACT.get(name, name), value.strip()))
    return lines[0], hdrs, body


def get(hdrs, name):
    return next((v for n, v in hdrs if n == name), None)


def build(first, hdrs, body):
    out = [first] + ["%s: %s" % ("-".join(p.capitalize() for p in n.split("-")), v)
                     for n, v in hdrs if n != "content-length"]
    out += ["Content-Length: %d" % len(body), "", ""]
    return "\r\n".join(out).encode() + body


def hostport(uri_or_via):
    """host, port of a SIP URI or a Via value (received/rport honoured)."""
    m = re.search(r"SIP/2\.0/\w+\s+([^;:\s]+)(?::(\d+))?", uri_or_via)
    if m:
        host, port = m.group(1), int(m.group(2) or 5060)
        r = re.search(r";received=([^;\s]+)", uri_or_via)
        p = re.search(r";rport=(\d+)", uri_or_via)
        return (r.group(1) if r else host), (int(p.group(1)) if p else port)
    m = re.search(r"sips?:(?:[^@;>]*@)?([^;:>\s]+)(?::(\d+))?", uri_or_via)
    return m.group(1), int(m.group(2) or 5060)


def user_of(uri):
    m = re.search(r"sips?:([^@;>:]+)@", uri)
    return m.group(1) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="0.0.0.0:5060")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--trace", help="write every message received and sent to this file")
    a = ap.parse_args()
    trace = open(a.trace, "w") if a.trace else None
    host, port = a.bind.rsplit(":", 1)
    me = "%s:%s" % (host, port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, int(port)))

    class Traced:  # the socket, tracing what crosses it
        def sendto(self, data, addr):
            if trace:
                trace.write("--> %s:%d\n%s\n" % (addr[0], addr[1], data.decode("utf-8", "replace")))
                trace.flush()
            return sock.sendto(data, addr)

        def recvfrom(self, n):
            data, addr = sock.recvfrom(n)
            if trace:
                trace.write("<-- %s:%d\n%s\n" % (addr[0], addr[1], data.decode("utf-8", "replace")))
                trace.flush()
            return data, addr

        def settimeout(self, t):
            sock.settimeout(t)

    s = Traced()
    contacts = {}  # user -> (contact uri, expiry time)
    end = time.monotonic() + a.seconds

    def log(**kw):
        print(json.dumps(kw), flush=True)

    def answer(first, hdrs, code, reason, extra=()):
        keep = [(n, v) for n, v in hdrs if n in ("via", "from", "to", "call-id", "cseq")]
        if code > 100:
            keep = [(n, v + ";tag=pbx%d" % (hash(get(hdrs, "call-id")) & 0xffff))
                    if n == "to" and ";tag=" not in v else (n, v) for n, v in keep]
        s.sendto(build("SIP/2.0 %d %s" % (code, reason), keep + list(extra), b""),
                 hostport(get(hdrs, "via")))
        log(answered=first.split(" ")[0], status=code)

    while time.monotonic() < end:
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            data, src = s.recvfrom(65535)
        except socket.timeout:
            continue
        try:
            first, hdrs, body = parse(data)
        except Exception:  # not SIP: ignore
            continue
        if first.startswith("SIP/2.0 "):
            vias = [i for i, (n, _) in enumerate(hdrs) if n == "via"]
            if len(vias) < 2 or me not in hdrs[vias[0]][1]:
                continue
            del hdrs[vias[0]]
            s.sendto(build(first, hdrs, body), hostport(get(hdrs, "via")))
            log(response=int(first.split(" ")[1]), cseq=get(hdrs, "cseq"))
            continue
        method, ruri, _ = first.split(" ", 2)
        to = get(hdrs, "to") or ""
        if method == "REGISTER":
            user = user_of(to)
            c = get(hdrs, "contact") or ""
            m = re.search(r"<([^>]+)>", c)
            uri = m.group(1) if m else c.split(";")[0].strip()
            e = re.search(r";\s*expires=(\d+)", c)
            exp = int(e.group(1)) if e else int(get(hdrs, "expires") or 3600)
            if exp == 0:
                contacts.pop(user, None)
                answer(first, hdrs, 200, "OK")
            else:
                contacts[user] = (uri, time.monotonic() + exp)
                answer(first, hdrs, 200, "OK", [("contact", "<%s>;expires=%d" % (uri, exp))])
            continue
        # Our own Route entry (record-routed dialogs) is consumed here.
        routes = [i for i, (n, v) in enumerate(hdrs) if n == "route"]
        if routes and me in hdrs[routes[0]][1]:
            del hdrs[routes[0]]
        in_dialog = ";tag=" in to
        if in_dialog or any(n == "route" for n, _ in hdrs):
            target = ruri
        else:
            user = user_of(ruri)
            c = contacts.get(user)
            if c and c[1] < time.monotonic():
                contacts.pop(user, None)
                c = None
            if not c:
                if method == "OPTIONS":
                    answer(first, hdrs, 200, "OK")
                elif method != "ACK":
                    answer(first, hdrs, 404, "Not Found")
                continue
            target = c[0]
        mf = int(get(hdrs, "max-forwards") or 70)
        if mf <= 1:
            if method != "ACK":
                answer(first, hdrs, 483, "Too Many Hops")
            continue
        hdrs = [(n, str(mf - 1) if n == "max-forwards" else v) for n, v in hdrs]
        if get(hdrs, "max-forwards") is None:
            hdrs.append(("max-forwards", str(mf - 1)))
        # Stateless branch: the same for an INVITE and its CANCEL.
        top = get(hdrs, "via") or ""
        b = re.search(r";branch=([^;\s]+)", top)
        branch = "z9hG4bK" + hashlib.md5(((b.group(1) if b else top) + me).encode()).hexdigest()[:16]
        if method == "ACK" and not in_dialog:
            branch += "a"
        hdrs.insert(0, ("via", "SIP/2.0/UDP %s;branch=%s" % (me, branch)))
        if method == "INVITE" and not in_dialog:
            hdrs.insert(1, ("record-route", "<sip:%s;lr>" % me))  # before the Vias it passes
        s.sendto(build("%s %s SIP/2.0" % (method, target), hdrs, body), hostport(target))
        sdp_c = re.search(rb"^c=IN IP4 (\S+)", body, re.M)
        sdp_m = re.search(rb"^m=audio (\d+)", body, re.M)
        log(method=method, to=target, call_id=get(hdrs, "call-id"),
            sdp=("%s:%s" % (sdp_c.group(1).decode(), sdp_m.group(1).decode())
                 if sdp_c and sdp_m else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
