#!/usr/bin/env python3
"""qmp.py SOCKET JSON [TIMEOUT]: one QMP command over a QEMU monitor socket.

Reads the greeting, negotiates capabilities, sends JSON and prints the
first reply line ("return" or "error"), skipping asynchronous events.
Exit status: 0 on "return", 1 on "error", 2 on a transport failure or
timeout (the whole exchange is bounded by TIMEOUT seconds, default 10).
"""
import json
import socket
import sys
import time


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path, cmd = sys.argv[1], sys.argv[2]
    deadline = time.monotonic() + (float(sys.argv[3]) if len(sys.argv) == 4 else 10.0)
    try:
        json.loads(cmd)
    except ValueError as e:
        print(f"qmp: invalid JSON command: {e}", file=sys.stderr)
        return 2
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    buf = b""

    def line():
        nonlocal buf
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer in time")
            s.settimeout(left)
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("monitor closed the connection")
            buf += chunk
        ln, buf = buf.split(b"\n", 1)
        return ln.decode()

    def reply():
        while True:
            ln = line()
            msg = json.loads(ln)
            if "event" not in msg:
                return ln, msg

    try:
        # A QEMU that was just started may not listen yet: retry until the deadline.
        while True:
            try:
                s.settimeout(max(deadline - time.monotonic(), 0.001))
                s.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() + 0.05 >= deadline:
                    raise
                time.sleep(0.05)
        if "QMP" not in json.loads(line()):
            raise ConnectionError("no QMP greeting")
        s.sendall(b'{"execute":"qmp_capabilities"}\n')
        _, msg = reply()
        if "return" not in msg:
            raise ConnectionError("qmp_capabilities refused")
        s.sendall(cmd.encode() + b"\n")
        ln, msg = reply()
    except (OSError, ValueError, TimeoutError, ConnectionError) as e:
        print(f"qmp: failed to talk to {path}: {e}", file=sys.stderr)
        return 2
    finally:
        s.close()
    print(ln)
    return 0 if "return" in msg else 1


if __name__ == "__main__":
    sys.exit(main())
