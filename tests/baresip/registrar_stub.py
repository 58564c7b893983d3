#!/usr/bin/env python3
"""Minimal UDP SIP registrar for the baresip self-test.

Challenges every REGISTER without an Authorization header with a 401 (digest,
so the phone's credentials path runs), accepts the retry with 200 OK, and
prints one JSON line per request.  Answers OPTIONS with 200; anything else
with 501.  Credentials are not verified.  Exits after --seconds.
"""
import argparse, json, re, socket, sys, time


def header(msg, name):
    m = re.search(r"^%s\s*:\s*(.*?)\r?$" % name, msg, re.M | re.I)
    return m.group(1) if m else None


def reply(req, code, reason, extra=()):
    lines = ["SIP/2.0 %d %s" % (code, reason)]
    for h in ("Via", "From", "To", "Call-ID", "CSeq"):
        for v in re.findall(r"^%s\s*:\s*(.*?)\r?$" % h, req, re.M | re.I):
            if h == "To" and code != 100 and ";tag=" not in v:
                v += ";tag=stub%d" % (hash(header(req, "Call-ID")) & 0xffff)
            lines.append("%s: %s" % (h, v))
    lines += list(extra)
    lines += ["Server: sluice-registrar-stub", "Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="0.0.0.0:5060")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--realm", default="sluice-test")
    a = ap.parse_args()
    host, port = a.bind.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, int(port)))
    end = time.monotonic() + a.seconds
    while time.monotonic() < end:
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            data, peer = s.recvfrom(65535)
        except socket.timeout:
            break
        msg = data.decode(errors="replace")
        if msg.startswith("SIP/2.0"):
            continue
        method = msg.split(" ", 1)[0]
        info = {"t": time.time(), "method": method, "from": "%s:%d" % peer,
                "to": header(msg, "To"), "contact": header(msg, "Contact"),
                "expires": header(msg, "Expires"),
                "auth": header(msg, "Authorization") is not None}
        if method == "REGISTER" and not info["auth"]:
            out = reply(msg, 401, "Unauthorized",
                        ['WWW-Authenticate: Digest realm="%s", nonce="%x", algorithm=MD5, qop="auth"'
                         % (a.realm, int(time.time() * 1000))])
            info["answer"] = 401
        elif method == "REGISTER":
            contact = info["contact"] or "*"
            exp = info["expires"] or "60"
            out = reply(msg, 200, "OK", ["Contact: %s;expires=%s" % (contact.split(";expires")[0], exp)])
            info["answer"] = 200
        elif method == "OPTIONS":
            out = reply(msg, 200, "OK")
            info["answer"] = 200
        elif method == "ACK":
            continue
        else:
            out = reply(msg, 501, "Not Implemented")
            info["answer"] = 501
        s.sendto(out, peer)
        print(json.dumps(info), flush=True)
    return 0


sys.exit(main())
