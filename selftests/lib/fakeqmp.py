#!/usr/bin/env python3
"""fakeqmp.py SOCKET MODE: a scripted QMP server for the orchestrator's
error paths (selftests/qemu_migrate.bats).  Serves one client, then exits.

  src       greeting; query-status: running; migrate-set-capabilities: a
            GenericError with QEMU's own wording; events before each reply
  dst       greeting; query-status: inmigrate; everything else: {}
  garbage   greeting, then a line that is not JSON
  huge      greeting, then 100 KB without a newline
"""
import json
import os
import socket
import sys


def main():
    path, mode = sys.argv[1], sys.argv[2]
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    c, _ = srv.accept()
    f = c.makefile("rwb", buffering=0)

    def send(obj):
        f.write(json.dumps(obj).encode() + b"\r\n")

    send({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""},
                  "capabilities": ["oob"]}})
    if mode == "garbage":
        f.readline()
        f.write(b"{\"return\": {}, oops\r\n")
    elif mode == "huge":
        f.readline()
        f.write(b"{\"return\": \"" + b"x" * 100000)
    for line in f:
        cmd = json.loads(line)
        name, rid = cmd.get("execute"), cmd.get("id")
        send({"event": "MIGRATION", "data": {"status": "setup"},
              "timestamp": {"seconds": 1, "microseconds": 2}})
        if name == "query-status":
            st = "running" if mode == "src" else "inmigrate"
            send({"return": {"status": st, "running": mode == "src"}, "id": rid})
        elif mode == "src" and name == "migrate-set-capabilities":
            send({"error": {"class": "GenericError",
                            "desc": "Postcopy is not supported \"here\" \u00e9"}, "id": rid})
        else:
            send({"return": {}, "id": rid})
    return 0


if __name__ == "__main__":
    sys.exit(main())
