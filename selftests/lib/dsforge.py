#!/usr/bin/env python3
"""A hostile or garbled device-state stream for `clat-load migrate-in --listen`.

usage: dsforge.py SOCK SCENARIO MEM_SIZE BAT_GPA MAC [GPA]

Connects to the unix socket SOCK, sends the frames of SCENARIO, then prints
what came back: one JSON line {"frames": [...], "status": N, "msg": "..."}
(status/msg of a DONE, if any).  The wire format is user/lib/devstate.h's.
"""
import json
import socket
import struct
import sys

MAGIC, VERSION = 0x5344434C, 1
HELLO, BLOCKS, STOPPED, COMMIT, DONE, ABORT = 1, 2, 3, 4, 5, 6
NAMES = {1: "HELLO", 2: "BLOCKS", 3: "STOPPED", 4: "COMMIT", 5: "DONE", 6: "ABORT"}


def frame(ftype, payload=b"", magic=MAGIC, length=None):
    n = len(payload) if length is None else length
    return struct.pack("<IHHII", magic, VERSION, ftype, n, 0) + payload


def hello(mem_size, bat, mac, block_max=4096):
    m = bytes(int(x, 16) for x in mac.split(":"))
    return frame(HELLO, struct.pack("<IIQQ6s2sII", 1, 1, bat, mem_size, m, b"\0\0", block_max, 0))


def blocks(rnd, items):
    body = struct.pack("<II", rnd, len(items))
    for gpa, data in items:
        body += struct.pack("<QII", gpa, len(data), 0) + data
    return frame(BLOCKS, body)


def scenario(name, mem_size, bat, mac, gpa):
    h = hello(mem_size, bat, mac)
    page = b"\xa5" * 4096
    if name == "bad-magic":
        return [frame(HELLO, b"\0" * 40, magic=0xDEADBEEF)]
    if name == "gpa-outside":
        return [h, blocks(0, [(mem_size, page)])]
    if name == "len-over-block":  # HELLO promised 4 KiB blocks
        return [h, blocks(0, [(gpa, page * 2)])]
    if name == "truncated":  # a BLOCKS frame that announces more than it holds
        body = blocks(0, [(gpa, page)])
        return [h, body[:100]]
    if name == "flood":  # the same block, far more often than a round can hold
        per = blocks(0, [(gpa, page)] * 400)
        return [h] + [per] * (2 * mem_size // 4096 // 400 + 2)
    if name == "not-a-block":  # a whole page of the guest's own tables
        return [h, blocks(0, [(bat, page)]),
                frame(STOPPED, struct.pack("<IIQ", 1, 0, 1)), frame(COMMIT)]
    if name == "commit-early":
        return [h, frame(COMMIT)]
    if name == "hold":  # a good start, then silence (the caller kills someone)
        return [h, blocks(0, [(gpa, page)])]
    if name == "abort":
        return [h, blocks(0, [(gpa, page)]), frame(ABORT, b"operator said so")]
    raise SystemExit("unknown scenario " + name)


def main():
    sock, name, mem_size, bat, mac = sys.argv[1:6]
    mem_size, bat = int(mem_size, 0), int(bat, 0)
    gpa = int(sys.argv[6], 0) if len(sys.argv) > 6 else 0x1000
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    sent_all = True
    try:
        for f in scenario(name, mem_size, bat, mac, gpa):
            s.sendall(f)
    except (BrokenPipeError, ConnectionResetError):
        sent_all = False  # the destination gave up on us: what we want
    if name == "hold":
        import time
        time.sleep(60)
    s.shutdown(socket.SHUT_WR) if sent_all else None
    s.settimeout(20)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    out = {"frames": [], "sent_all": sent_all}
    while len(data) >= 16:
        magic, _, ftype, n, _ = struct.unpack("<IHHII", data[:16])
        body, data = data[16:16 + n], data[16 + n:]
        out["frames"].append(NAMES.get(ftype, str(ftype)))
        if ftype == DONE and len(body) == 264:
            out["status"] = struct.unpack("<i", body[:4])[0]
            out["msg"] = body[64:].split(b"\0")[0].decode(errors="replace")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
