#!/usr/bin/env python3
# A VLAN-aware peer on a raw packet socket, for a kernel without 802.1Q
# devices (CONFIG_VLAN_8021Q is off here, and the bridge has no VLAN
# filtering): it sends and receives tagged frames itself.
#
#   vlanpeer.py ping IFACE VID MY_IP DST_IP [COUNT]
#       ARP for DST_IP, then ICMP echo, every frame tagged VID (0: none);
#       only replies tagged VID count.  Prints JSON; exit 0 if every echo
#       was answered.
#   vlanpeer.py send IFACE VID DST_MAC DST_IP PORT [COUNT]
#       COUNT UDP datagrams (DST_MAC may be ff:ff:ff:ff:ff:ff).
#   vlanpeer.py count IFACE PORT SECONDS
#       UDP frames to PORT received in SECONDS, by VLAN: {"0": n, "10": m}.
import json, os, socket, struct, sys, time

ETH_P_ALL = 0x0003
SOL_PACKET, PACKET_AUXDATA = 263, 8
TP_STATUS_VLAN_VALID = 0x10


def mac_bytes(s):
    return bytes(int(b, 16) for b in s.split(":"))


def my_mac(iface):
    with open(f"/sys/class/net/{iface}/address") as f:
        return mac_bytes(f.read().strip())


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def eth(dst, src, vid, etype, payload):
    tag = struct.pack("!HH", 0x8100, vid) if vid else b""
    frame = dst + src + tag + struct.pack("!H", etype) + payload
    return frame + b"\0" * max(0, 60 - len(frame))


def ipv4(src, dst, proto, payload):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def open_sock(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.bind((iface, 0))
    return s


def recv(s, deadline):
    """(vid, ethertype, payload, frame) of the next incoming frame, or None."""
    while True:
        left = deadline - time.time()
        if left <= 0:
            return None
        s.settimeout(left)
        try:
            data, anc, _, addr = s.recvmsg(65535, socket.CMSG_SPACE(20))
        except socket.timeout:
            return None
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        vid = 0
        for level, typ, cdata in anc:
            if level == SOL_PACKET and typ == PACKET_AUXDATA:
                status, _, _, _, _, tci = struct.unpack("IIIHHH", cdata[:18])
                if status & TP_STATUS_VLAN_VALID:
                    vid = tci & 0xFFF
        etype = struct.unpack("!H", data[12:14])[0]
        off = 14
        if etype == 0x8100:  # the tag left in the frame
            vid = struct.unpack("!H", data[14:16])[0] & 0xFFF
            etype = struct.unpack("!H", data[16:18])[0]
            off = 18
        return vid, etype, data[off:], data


def cmd_ping(iface, vid, my_ip, dst_ip, count=3):
    s = open_sock(iface)
    me = my_mac(iface)
    vid = int(vid)
    out = {"arp": None, "replies": 0, "sent": int(count)}
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, me, socket.inet_aton(my_ip),
                      b"\0" * 6, socket.inet_aton(dst_ip))
    deadline = time.time() + 3
    s.send(eth(b"\xff" * 6, me, vid, 0x0806, arp))
    peer = None
    while peer is None:
        r = recv(s, deadline)
        if r is None:
            break
        rvid, etype, p, _ = r
        if rvid == vid and etype == 0x0806 and p[6:8] == b"\0\2" and \
                p[14:18] == socket.inet_aton(dst_ip):
            peer = p[8:14]
    if peer is None:
        print(json.dumps(out))
        return 1
    out["arp"] = ":".join(f"{b:02x}" for b in peer)
    for seq in range(int(count)):
        icmp = struct.pack("!BBHHH", 8, 0, 0, os.getpid() & 0xFFFF, seq) + b"clat" * 8
        icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
        s.send(eth(peer, me, vid, 0x0800, ipv4(my_ip, dst_ip, 1, icmp)))
        deadline = time.time() + 2
        while True:
            r = recv(s, deadline)
            if r is None:
                break
            rvid, etype, p, _ = r
            if rvid == vid and etype == 0x0800 and p[9] == 1 and p[20] == 0 and \
                    p[12:16] == socket.inet_aton(dst_ip) and struct.unpack("!H", p[26:28])[0] == seq:
                out["replies"] += 1
                break
    print(json.dumps(out))
    return 0 if out["replies"] == out["sent"] else 1


def cmd_send(iface, vid, dst_mac, dst_ip, port, count=1):
    s = open_sock(iface)
    me = my_mac(iface)
    udp = struct.pack("!HHHH", 40000, int(port), 8 + 5, 0) + b"vlan\n"
    frame = eth(mac_bytes(dst_mac), me, int(vid), 0x0800, ipv4("0.0.0.0", dst_ip, 17, udp))
    for _ in range(int(count)):
        s.send(frame)
    return 0


def cmd_count(iface, port, seconds):
    s = open_sock(iface)
    by_vlan = {}
    deadline = time.time() + float(seconds)
    while True:
        r = recv(s, deadline)
        if r is None:
            break
        vid, etype, p, _ = r
        if etype == 0x0800 and p[9] == 17 and struct.unpack("!H", p[22:24])[0] == int(port):
            by_vlan[str(vid)] = by_vlan.get(str(vid), 0) + 1
    print(json.dumps(by_vlan), flush=True)
    return 0


if __name__ == "__main__":
    cmds = {"ping": cmd_ping, "send": cmd_send, "count": cmd_count}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.stderr.write(__doc__ or "usage: vlanpeer.py ping|send|count ...\n")
        sys.exit(2)
    sys.exit(cmds[sys.argv[1]](*sys.argv[2:]))
