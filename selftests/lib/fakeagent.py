#!/usr/bin/env python3
"""A stand-in for QEMU's chardev socket with clat-guest agent behind it, for
host-only tests of `clat-load guest attach --channel`.

fakeagent.py SOCK MODE [GPA]: listens on SOCK, serves one client, exits.
MODE: good (a stale answer with another id first, then the answer echoing
the request's id), noid (an answer without id only), silent (reads the
request, never answers), error (the agent's error echoing the id),
badhex (bat_gpa not hex), long (an answer line with no end).
"""
import json
import os
import socket
import sys

path, mode = sys.argv[1], sys.argv[2]
gpa = sys.argv[3] if len(sys.argv) > 3 else "0x1000"
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(1)
conn, _ = srv.accept()
req = b""
while not req.endswith(b"\n"):
    d = conn.recv(256)
    if not d:
        sys.exit(1)
    req += d
rid = json.loads(req).get("id", "")


def send(obj):
    conn.sendall((json.dumps(obj, separators=(",", ":")) + "\n").encode())


ans = {"bat_gpa": gpa, "generation": 1, "ntypes": 1}
if mode == "good":
    send({"bat_gpa": "0x7000", "generation": 9, "ntypes": 1, "id": "stale-1"})
    send(dict(ans, id=rid))
elif mode == "noid":
    send(ans)
elif mode == "error":
    send({"error": "invalid tables at GPA 0x3800000: bad magic", "id": rid})
elif mode == "badhex":
    send({"bat_gpa": "0x12g4", "generation": 1, "ntypes": 1, "id": rid})
elif mode == "long":
    conn.sendall(b'{"bat_gpa":"' + b"0" * 5000)
if mode in ("silent", "long"):
    conn.recv(1)  # until the client gives up and closes
conn.close()
os.unlink(path)
