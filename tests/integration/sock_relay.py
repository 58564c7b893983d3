#!/usr/bin/env python3
"""Relays connections from one unix socket to another, byte for byte.

Tests put it between the control plane and the dataplane's gRPC socket so
that the link alone can be held up (SIGSTOP this process, then SIGCONT)
while SIP and media still flow.  Single-threaded, so a stop holds every
connection at once.  Exits after --seconds.
"""
import argparse
import os
import selectors
import socket
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True, help="unix socket path to create")
    ap.add_argument("--target", required=True, help="unix socket path to connect to")
    ap.add_argument("--seconds", type=float, default=600)
    a = ap.parse_args()
    if os.path.exists(a.listen):
        os.unlink(a.listen)
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(a.listen)
    ls.listen(16)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    peer = {}
    end = time.monotonic() + a.seconds

    def close(s):
        for x in (s, peer.pop(s, None)):
            if x is None:
                continue
            peer.pop(x, None)
            try:
                sel.unregister(x)
            except (KeyError, ValueError):
                pass
            x.close()

    while time.monotonic() < end:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            if s is ls:
                c, _ = ls.accept()
                t = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    t.connect(a.target)
                except OSError:
                    c.close()
                    t.close()
                    continue
                peer[c], peer[t] = t, c
                sel.register(c, selectors.EVENT_READ, None)
                sel.register(t, selectors.EVENT_READ, None)
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data or s not in peer:
                close(s)
                continue
            try:
                peer[s].sendall(data)
            except OSError:
                close(s)
    os.unlink(a.listen)


if __name__ == "__main__":
    main()
