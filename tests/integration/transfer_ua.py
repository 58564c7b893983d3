#!/usr/bin/env python3
"""Attended transfer (RFC 3515 REFER with an RFC 3891 Replaces in Refer-To)
through the relay, by two small SIP user agents on UDP. SIPp cannot carry
one call's dialog identifiers into another call's REFER, so this does.

  transfer_ua.py pbx   LOCAL_IP:PORT RESULT.json
      Answers INVITEs (200 with an SDP answer), accepts a REFER with 202 and
      reports on it with a NOTIFY (message/sipfrag "SIP/2.0 200 OK",
      subscription terminated), answers BYEs; after two BYEs writes what it
      saw (its calls' dialog identifiers, the REFER's Refer-To and dialog).
  transfer_ua.py phone LOCAL_IP:PORT RELAY_IP:PORT RESULT.json
      Calls 201 and then 202 through the relay, sends REFER in the first
      call with Refer-To <sip:202@RELAY?Replaces=(the second call's dialog,
      escaped)>, expects 202 and the NOTIFY, then hangs up both calls.

Every wait is bounded (5 s per answer, 20 s for the PBX in all); exit 0 when
the flow completed, 1 otherwise.
"""
import json
import random
import re
import socket
import sys
import time
import urllib.parse


def tag():
    return "%x" % random.getrandbits(40)


def parse(data):
    text = data.decode("utf-8", "replace")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    hdrs = []
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            hdrs.append((k.strip().lower(), v.strip()))
    return lines[0], hdrs, body


def hdr(hdrs, name):
    for k, v in hdrs:
        if k == name:
            return v
    return ""


def tag_of(value):
    m = re.search(r";\s*tag=([^;>\s]+)", value)
    return m.group(1) if m else ""


def uri_of(value):
    m = re.search(r"<([^>]+)>", value)
    return m.group(1) if m else value.split(";")[0].strip()


def build(start, headers, body=""):
    out = start + "\r\n"
    for k, v in headers:
        out += "%s: %s\r\n" % (k, v)
    out += "Content-Length: %d\r\n\r\n%s" % (len(body.encode()), body)
    return out.encode()


def response(hdrs, code, reason, to_tag=None, extra=(), body=""):
    hs = []
    for k, v in hdrs:
        if k == "via":
            hs.append(("Via", v))
    hs.append(("From", hdr(hdrs, "from")))
    to = hdr(hdrs, "to")
    if to_tag and not tag_of(to):
        to += ";tag=" + to_tag
    hs.append(("To", to))
    hs.append(("Call-ID", hdr(hdrs, "call-id")))
    hs.append(("CSeq", hdr(hdrs, "cseq")))
    hs.extend(extra)
    return build("SIP/2.0 %d %s" % (code, reason), hs, body)


def sdp(ip, port):
    return ("v=0\r\no=ua 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"
            "m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n" % (ip, ip, port))


class UA:
    def __init__(self, local):
        ip, port = local.rsplit(":", 1)
        self.ip, self.port = ip, int(port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, self.port))
        self.pending = []  # requests that came while waiting for a response

    def send(self, data, addr):
        self.sock.sendto(data, addr)

    def recv(self, timeout):
        self.sock.settimeout(max(timeout, 0.01))
        data, addr = self.sock.recvfrom(65535)
        start, hdrs, body = parse(data)
        return start, hdrs, body, addr

    def wait_response(self, call_id, method, timeout=5.0):
        end = time.time() + timeout
        while time.time() < end:
            try:
                start, hdrs, body, addr = self.recv(end - time.time())
            except socket.timeout:
                break
            if not start.startswith("SIP/2.0"):
                self.pending.append((start, hdrs, body, addr))
                continue
            code = int(start.split()[1])
            if hdr(hdrs, "call-id") == call_id and hdr(hdrs, "cseq").endswith(method) and code >= 200:
                return code, hdrs, body
        raise SystemExit("no final response to %s" % method)

    def wait_request(self, method, timeout=5.0):
        end = time.time() + timeout
        while True:
            for i, p in enumerate(self.pending):
                if p[0].startswith(method + " "):
                    return self.pending.pop(i)
            if time.time() >= end:
                raise SystemExit("no %s" % method)
            try:
                msg = self.recv(end - time.time())
            except socket.timeout:
                continue
            if not msg[0].startswith("SIP/2.0"):
                self.pending.append(msg)


def run_phone(local, relay, result):
    ua = UA(local)
    rip, rport = relay.rsplit(":", 1)
    raddr = (rip, int(rport))
    me = "<sip:phone@%s:%d>" % (ua.ip, ua.port)
    calls = []

    def request(call, method, extra=(), body="", ruri=None):
        call["cseq"] += 0 if method == "ACK" else 1
        hs = [("Via", "SIP/2.0/UDP %s:%d;branch=z9hG4bK%s;rport" % (ua.ip, ua.port, tag())),
              ("Max-Forwards", "70"),
              ("From", "%s;tag=%s" % (call["from"], call["from_tag"])),
              ("To", call["to"] + (";tag=" + call["to_tag"] if call.get("to_tag") else "")),
              ("Call-ID", call["call_id"]), ("CSeq", "%d %s" % (call["cseq"], method)),
              ("Contact", me)]
        hs.extend(extra)
        ua.send(build("%s %s SIP/2.0" % (method, ruri or call.get("target") or call["ruri"]), hs, body), raddr)

    for user in ("201", "202"):
        call = {"ruri": "sip:%s@%s" % (user, relay), "from": "<sip:phone@%s>" % rip,
                "to": "<sip:%s@%s>" % (user, rip), "from_tag": tag(),
                "call_id": "%s@phone" % tag(), "cseq": 0}
        request(call, "INVITE", [("Content-Type", "application/sdp")], sdp(ua.ip, 40000 + len(calls) * 2))
        code, hdrs, _ = ua.wait_response(call["call_id"], "INVITE")
        if code != 200:
            raise SystemExit("INVITE %s got %d" % (user, code))
        call["to_tag"] = tag_of(hdr(hdrs, "to"))
        call["target"] = uri_of(hdr(hdrs, "contact"))
        request(call, "ACK")  # CSeq kept: the INVITE's number
        calls.append(call)

    first, second = calls
    # The dialog to replace, as the transferee's INVITE will name it to the
    # target: to-tag is the target's (our peer's) tag, from-tag ours.
    replaces = "%s;to-tag=%s;from-tag=%s" % (second["call_id"], second["to_tag"], second["from_tag"])
    refer_to = "<sip:202@%s?Replaces=%s>" % (rip, urllib.parse.quote(replaces, safe=""))
    request(first, "REFER", [("Refer-To", refer_to), ("Referred-By", "<sip:phone@%s>" % rip)])
    code, _, _ = ua.wait_response(first["call_id"], "REFER")
    start, hdrs, body, addr = ua.wait_request("NOTIFY")
    ua.send(response(hdrs, 200, "OK"), addr)
    notify = {"call_id": hdr(hdrs, "call-id"), "event": hdr(hdrs, "event"),
              "state": hdr(hdrs, "subscription-state"), "body": body.strip()}
    byes = []
    for call in (second, first):
        request(call, "BYE")
        byes.append(ua.wait_response(call["call_id"], "BYE")[0])
    with open(result, "w") as f:
        json.dump({"calls": calls, "replaces": replaces, "refer_to": refer_to, "refer_status": code,
                   "notify": notify, "bye_status": byes}, f, indent=1)
    return 0 if code == 202 and byes == [200, 200] else 1


def run_pbx(local, result):
    ua = UA(local)
    calls, refer, byes = {}, {}, 0
    end = time.time() + 20
    while byes < 2 and time.time() < end:
        try:
            start, hdrs, body, addr = ua.recv(end - time.time())
        except socket.timeout:
            break
        if start.startswith("SIP/2.0"):
            continue
        method = start.split()[0]
        cid = hdr(hdrs, "call-id")
        if method == "INVITE":
            c = calls.setdefault(cid, {"call_id": cid, "from_tag": tag_of(hdr(hdrs, "from")), "to_tag": tag(),
                                       "user": re.sub(r"^sips?:([^@]*)@.*", r"\1", start.split()[1]),
                                       "from": hdr(hdrs, "from"), "to": hdr(hdrs, "to"),
                                       "target": uri_of(hdr(hdrs, "contact")), "addr": addr})
            ua.send(response(hdrs, 200, "OK", c["to_tag"],
                             [("Contact", "<sip:pbx@%s:%d>" % (ua.ip, ua.port)),
                              ("Content-Type", "application/sdp")],
                             sdp(ua.ip, 41000 + 2 * len(calls))), addr)
        elif method == "REFER":
            c = calls.get(cid)
            ua.send(response(hdrs, 202 if c else 481, "Accepted" if c else "No Dialog",
                             c and c["to_tag"], [("Contact", "<sip:pbx@%s:%d>" % (ua.ip, ua.port))]), addr)
            refer = {"call_id": cid, "refer_to": hdr(hdrs, "refer-to"), "referred_by": hdr(hdrs, "referred-by")}
            if c:
                frag = "SIP/2.0 200 OK\r\n"
                hs = [("Via", "SIP/2.0/UDP %s:%d;branch=z9hG4bK%s;rport" % (ua.ip, ua.port, tag())),
                      ("Max-Forwards", "70"), ("From", "%s;tag=%s" % (c["to"], c["to_tag"])),
                      ("To", c["from"]), ("Call-ID", cid), ("CSeq", "1 NOTIFY"),
                      ("Contact", "<sip:pbx@%s:%d>" % (ua.ip, ua.port)), ("Event", "refer"),
                      ("Subscription-State", "terminated;reason=noresource"),
                      ("Content-Type", "message/sipfrag;version=2.0")]
                ua.send(build("NOTIFY %s SIP/2.0" % c["target"], hs, frag), c["addr"])
        elif method == "BYE":
            ua.send(response(hdrs, 200, "OK"), addr)
            byes += 1
        elif method != "ACK":
            ua.send(response(hdrs, 501, "Not Implemented", tag()), addr)
    with open(result, "w") as f:
        json.dump({"calls": list(calls.values()), "refer": refer, "byes": byes}, f, indent=1, default=str)
    return 0 if byes == 2 and refer else 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "pbx":
        sys.exit(run_pbx(sys.argv[2], sys.argv[3]))
    if len(sys.argv) == 5 and sys.argv[1] == "phone":
        sys.exit(run_phone(sys.argv[2], sys.argv[3], sys.argv[4]))
    sys.exit(__doc__)
