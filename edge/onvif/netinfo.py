"""What this machine looks like on the network: IPv4 interfaces with their MAC, and the local
address the kernel would use to reach a peer. Linux only (ioctl + /sys), stdlib only."""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

SIOCGIFADDR = 0x8915
SIOCGIFNETMASK = 0x891B
SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_MULTICAST = 0x1000


@dataclass(frozen=True)
class Interface:
    name: str
    index: int
    ipv4: str
    prefix_len: int
    mac: str
    mtu: int
    up: bool
    loopback: bool
    multicast: bool


def _ioctl(sock: socket.socket, req: int, name: str) -> bytes:
    return fcntl.ioctl(sock.fileno(), req, struct.pack("256s", name[:15].encode()))


def interfaces() -> list[Interface]:
    """IPv4 interfaces (one primary address each), loopback included and flagged."""
    out: list[Interface] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for index, name in socket.if_nameindex():
            try:
                addr = socket.inet_ntoa(_ioctl(s, SIOCGIFADDR, name)[20:24])
                mask = socket.inet_ntoa(_ioctl(s, SIOCGIFNETMASK, name)[20:24])
                flags = struct.unpack("H", _ioctl(s, SIOCGIFFLAGS, name)[16:18])[0]
            except OSError:
                continue  # no IPv4 address
            base = Path("/sys/class/net") / name
            try:
                mac = (base / "address").read_text().strip()
            except OSError:
                mac = "00:00:00:00:00:00"
            try:
                mtu = int((base / "mtu").read_text().strip())
            except (OSError, ValueError):
                mtu = 1500
            out.append(Interface(
                name=name, index=index, ipv4=addr,
                prefix_len=ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen,
                mac=mac, mtu=mtu, up=bool(flags & IFF_UP), loopback=bool(flags & IFF_LOOPBACK),
                multicast=bool(flags & IFF_MULTICAST),
            ))
    return out


def local_ip_towards(peer: str) -> str | None:
    """The source address the kernel picks to reach ``peer`` (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((peer, 9))
            ip = s.getsockname()[0]
            return None if ip == "0.0.0.0" else ip
    except OSError:
        return None


def ip_of_index(index: int) -> str | None:
    for itf in interfaces():
        if itf.index == index:
            return itf.ipv4
    return None
