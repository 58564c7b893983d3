#!/usr/bin/env python3
"""Companion of one baresip instance: holds its single ctrl_tcp connection.

baresip 1.0.0's ctrl_tcp serves one TCP client at a time (a new connection
replaces the old one), so this agent keeps the only connection open, logs
every event, and multiplexes commands coming in on a unix socket:

  bsagent.py serve --addr 127.0.0.1:4444 --sock DIR/ctl.sock --events DIR/events.jsonl
      (run inside the instance's network namespace; exits when baresip closes
      the connection)
  bsagent.py cmd --sock DIR/ctl.sock [--timeout S] COMMAND [PARAMS...]
      (from anywhere: a path-named unix socket works across namespaces)
      prints the response text; exit 0 when baresip said ok, 1 when not,
      2 on timeout, 3 when the agent cannot be reached.
"""
import argparse, json, os, select, socket, sys, time


def connect_tcp(addr, timeout):
    host, port = addr.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            s = socket.create_connection((host, int(port)), timeout=1)
            s.setblocking(False)
            return s
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def netstrings(buf):
    """Split complete netstrings off buf; return (messages, rest)."""
    out = []
    while True:
        colon = buf.find(b":")
        if colon < 0:
            return out, buf
        n = int(buf[:colon])
        end = colon + 1 + n
        if len(buf) < end + 1:
            return out, buf
        out.append(json.loads(buf[colon + 1:end]))
        buf = buf[end + 1:]


def serve(a):
    bs = connect_tcp(a.addr, a.connect_timeout)
    try:
        os.unlink(a.sock)
    except FileNotFoundError:
        pass
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(a.sock)
    ls.listen(16)
    ls.setblocking(False)
    ev = open(a.events, "a", buffering=1)
    ev.write(json.dumps({"event": True, "type": "AGENT_CONNECTED",
                         "time": time.time()}) + "\n")
    bbuf = b""
    clients = {}   # socket -> bytes received so far (one request line)
    pending = {}   # token -> client socket
    seq = 0
    while True:
        rl = [bs, ls] + list(clients)
        r, _, _ = select.select(rl, [], [], 1.0)
        for s in r:
            if s is bs:
                try:
                    chunk = bs.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    ev.write(json.dumps({"event": True, "type": "AGENT_EOF",
                                         "time": time.time()}) + "\n")
                    for c in pending.values():
                        c.close()
                    return 0
                msgs, bbuf = netstrings(bbuf + chunk)
                for m in msgs:
                    if m.get("event"):
                        m["time"] = time.time()
                        ev.write(json.dumps(m) + "\n")
                    elif m.get("response"):
                        c = pending.pop(m.get("token"), None)
                        if c is not None:
                            try:
                                c.setblocking(True)
                                c.sendall(json.dumps(m).encode() + b"\n")
                            except OSError:
                                pass
                            c.close()
            elif s is ls:
                c, _ = ls.accept()
                c.setblocking(False)
                clients[c] = b""
            else:
                try:
                    chunk = s.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    clients.pop(s, None)
                    s.close()
                    continue
                clients[s] += chunk
                if b"\n" not in clients[s]:
                    continue
                line = clients.pop(s).split(b"\n", 1)[0].decode().strip()
                cmd, _, params = line.partition(" ")
                seq += 1
                token = "a%d" % seq
                msg = {"command": cmd, "token": token}
                if params:
                    msg["params"] = params
                body = json.dumps(msg).encode()
                bs.setblocking(True)
                bs.sendall(b"%d:%s," % (len(body), body))
                bs.setblocking(False)
                pending[token] = s


def cmd(a):
    deadline = time.monotonic() + a.timeout
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(a.timeout)
        s.connect(a.sock)
        line = " ".join([a.command] + a.params)
        s.sendall(line.encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except socket.timeout:
        print("bsagent: timeout waiting for '%s'" % a.command, file=sys.stderr)
        return 2
    except OSError as ex:
        print("bsagent: %s: %s" % (a.sock, ex), file=sys.stderr)
        return 3
    if not buf.strip():
        print("bsagent: no response to '%s'" % a.command, file=sys.stderr)
        return 3
    m = json.loads(buf.split(b"\n", 1)[0])
    sys.stdout.write(m.get("data", "") or "")
    return 0 if m.get("ok") else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--addr", default="127.0.0.1:4444")
    s.add_argument("--sock", required=True)
    s.add_argument("--events", required=True)
    s.add_argument("--connect-timeout", type=float, default=10.0)
    c = sub.add_parser("cmd")
    c.add_argument("--sock", required=True)
    c.add_argument("--timeout", type=float, default=5.0)
    c.add_argument("command")
    c.add_argument("params", nargs="*")
    a = ap.parse_args()
    return serve(a) if a.mode == "serve" else cmd(a)


sys.exit(main())
