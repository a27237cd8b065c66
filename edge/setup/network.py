"""Addressing of the wired interface through NetworkManager (nmcli on Bookworm), behind a
small interface with a simulated twin, and the change-with-roll-back procedure the menu uses.

``change()``: remember the current settings, apply the new ones, wait up to ``rollback_s``
for the new address to be up; if it is not, put the old settings back. nmcli runs as an
asyncio subprocess (never blocks the loop) with its own ``--wait`` bound.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol

log = logging.getLogger("edge.setup.network")


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


@dataclass(frozen=True)
class ChangeOutcome:
    ok: bool
    message: str
    rolled_back: bool = False


async def change(backend: NetworkBackend, target: NetSettings, rollback_s: float, *,
                 poll_s: float = 0.5, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> ChangeOutcome:
    """Apply ``target``; roll back to the previous settings if it is not up within rollback_s."""
    try:
        before = (await backend.status()).settings
    except NetworkError as exc:
        return ChangeOutcome(False, str(exc))
    try:
        await backend.apply(target)
    except NetworkError as exc:
        log.warning("applying %s failed: %s", target.describe(), exc)
        await _restore(backend, before)
        return ChangeOutcome(False, f"not applied: {exc}", rolled_back=True)
    deadline = clock() + rollback_s
    while True:
        try:
            if is_up(await backend.status(), target):
                log.info("network now %s", target.describe())
                return ChangeOutcome(True, f"now {target.describe()}")
        except NetworkError as exc:
            log.info("network status: %s", exc)
        if clock() >= deadline:
            break
        await sleep(poll_s)
    log.warning("%s did not come up within %.0f s; rolling back to %s", target.describe(), rollback_s, before.describe())
    await _restore(backend, before)
    return ChangeOutcome(False, f"back to {before.describe()}", rolled_back=True)


async def _restore(backend: NetworkBackend, before: NetSettings) -> None:
    try:
        await backend.apply(before)
    except NetworkError as exc:
        log.error("roll-back to %s failed: %s", before.describe(), exc)


def settings_from_config(cfg: object) -> NetSettings:
    return NetSettings(getattr(cfg, "mode"), getattr(cfg, "address"), getattr(cfg, "gateway"), tuple(getattr(cfg, "dns")))

