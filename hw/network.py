"""The wired interface's addressing, behind a small interface with a simulated twin.

``Nmcli`` drives one NetworkManager connection (nmcli as an asyncio subprocess, never blocking
the loop, with its own ``--wait`` bound); ``SimulatedNetwork`` keeps settings in memory. The
change-with-roll-back procedure that uses them is the front panel's (``edge.setup.network``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Callable, Protocol

log = logging.getLogger("hw.network")


@dataclass(frozen=True)
class NetSettings:
    mode: str  # "dhcp" | "static"
    address: str = ""  # CIDR, static only
    gateway: str = ""
    dns: tuple[str, ...] = ()

    def describe(self) -> str:
        return "DHCP" if self.mode == "dhcp" else f"static {self.address}"


@dataclass(frozen=True)
class NetStatus:
    settings: NetSettings
    addresses: tuple[str, ...] = ()  # CIDRs actually on the interface
    connected: bool = False

    @property
    def ip(self) -> str:
        return self.addresses[0].split("/")[0] if self.addresses else ""


class NetworkBackend(Protocol):
    async def status(self) -> NetStatus: ...
    async def apply(self, settings: NetSettings) -> None: ...


class NetworkError(Exception):
    pass


def is_up(status: NetStatus, target: NetSettings) -> bool:
    """The target settings are in effect: connected, and for static the address is on it."""
    if not status.connected or not status.addresses:
        return False
    if target.mode == "static":
        want = ipaddress.IPv4Interface(target.address)
        return any(ipaddress.ip_interface(a) == want for a in status.addresses)
    return True


class Nmcli:
    """The real backend: one NetworkManager connection on one interface."""

    def __init__(self, interface: str = "eth0", connection: str = "", exe: str = "nmcli", wait_s: int = 20):
        self.interface = interface
        self.connection = connection
        self.exe = exe
        self.wait_s = wait_s

    async def _run(self, *args: str) -> str:
        try:
            proc = await asyncio.create_subprocess_exec(
                self.exe, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except FileNotFoundError:
            raise NetworkError(f"{self.exe} not found (is NetworkManager installed?)") from None
        out, err = await asyncio.wait_for(proc.communicate(), self.wait_s + 10)
        if proc.returncode != 0:
            raise NetworkError(f"nmcli {' '.join(args[:3])}: {err.decode(errors='replace').strip() or proc.returncode}")
        return out.decode(errors="replace")

    async def _connection(self) -> str:
        if self.connection:
            return self.connection
        name = (await self._run("-t", "-g", "GENERAL.CONNECTION", "device", "show", self.interface)).strip()
        if not name:
            raise NetworkError(f"no NetworkManager connection is active on {self.interface}")
        self.connection = name  # keep it: while switching, the device may have none active
        return name

    async def status(self) -> NetStatus:
        conn = await self._connection()
        values = (await self._run(
            "-t", "-g", "ipv4.method,ipv4.addresses,ipv4.gateway,ipv4.dns", "connection", "show", conn)).splitlines()
        method, addrs, gw, dns = (values + ["", "", "", ""])[:4]  # empty values may be left off at the end
        dev = await self._run("-t", "-g", "GENERAL.STATE,IP4.ADDRESS", "device", "show", self.interface)
        lines = [ln.strip() for ln in dev.splitlines() if ln.strip()]
        connected = bool(lines) and lines[0].startswith("100")
        on_if = tuple(a for ln in lines[1:] for a in ln.split(" | ") if a)
        settings = NetSettings(
            mode="static" if method.strip() == "manual" else "dhcp",
            address=addrs.split(",")[0].strip(),
            gateway=gw.strip(),
            dns=tuple(d for d in dns.replace(" ", "").split(",") if d),
        )
        return NetStatus(settings, on_if, connected)

    async def apply(self, settings: NetSettings) -> None:
        conn = await self._connection()
        if settings.mode == "static":
            args = ["ipv4.method", "manual", "ipv4.addresses", settings.address,
                    "ipv4.gateway", settings.gateway, "ipv4.dns", ",".join(settings.dns)]
        else:
            args = ["ipv4.method", "auto", "ipv4.addresses", "", "ipv4.gateway", "", "ipv4.dns", ""]
        await self._run("connection", "modify", conn, *args)
        try:
            await self._run("--wait", str(self.wait_s), "connection", "up", conn)
        except NetworkError as exc:
            log.warning("bringing %s up failed: %s", conn, exc)  # the roll-back decides


@dataclass
class SimulatedNetwork:
    """The twin: settings in memory. ``comes_up`` decides whether applied settings work (a
    static address on the wrong subnet would not, on a real site)."""

    settings: NetSettings = field(default_factory=lambda: NetSettings("dhcp"))
    dhcp_address: str = "192.168.1.50/24"
    comes_up: Callable[[NetSettings], bool] = lambda s: True
    applied: list[NetSettings] = field(default_factory=list)
    _up: bool = True

    async def status(self) -> NetStatus:
        if not self._up:
            return NetStatus(self.settings, (), False)
        addr = self.settings.address if self.settings.mode == "static" else self.dhcp_address
        return NetStatus(self.settings, (addr,), True)

    async def apply(self, settings: NetSettings) -> None:
        self.applied.append(settings)
        self.settings = settings
        self._up = bool(self.comes_up(settings))
