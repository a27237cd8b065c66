"""The wired interface's addressing, behind a small interface with a simulated twin.

``Networkd`` (the SD image: systemd-networkd) writes one ``.network`` file and has networkd
reload it; ``Nmcli`` drives one NetworkManager connection (Raspberry Pi OS); both run their
tools as asyncio subprocesses, never blocking the loop. ``SimulatedNetwork`` keeps settings in
memory. The change-with-roll-back procedure that uses them is the front panel's
(``edge.setup.network``).
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import logging
import os
import shutil
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Protocol

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


async def _run(*cmd: str, timeout_s: float = 20.0) -> str:
    try:
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except FileNotFoundError:
        raise NetworkError(f"{cmd[0]} not found") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        raise NetworkError(f"{' '.join(cmd[:3])}: no answer within {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        raise NetworkError(f"{' '.join(cmd[:3])}: {err.decode(errors='replace').strip() or proc.returncode}")
    return out.decode(errors="replace")


NETWORKD_FILE = "10-edge.network"


def render_networkd(interface: str, s: NetSettings) -> str:
    """The .network file for ``s`` (first in name order, so it wins over the image's defaults)."""
    lines = ["# Written by edge (front panel network settings); root's edge-ctl installs it as",
             "# /etc/systemd/network/10-edge.network. The settings themselves: [network] in edge.toml.",
             "[Match]", f"Name={interface}", "", "[Network]"]
    if s.mode == "static":
        lines += ["DHCP=no", f"Address={s.address}"]
        lines += [f"Gateway={s.gateway}"] if s.gateway else []
        lines += [f"DNS={d}" for d in s.dns]
        lines += ["LinkLocalAddressing=no", "IPv6AcceptRA=yes"]
    else:
        lines += ["DHCP=yes", "LinkLocalAddressing=yes", "IPv6AcceptRA=yes", "", "[DHCPv4]", "UseDomains=yes"]
    return "\n".join(lines) + "\n"


def parse_networkd(text: str) -> NetSettings:
    values: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if section == "Network" and "=" in line:
            k, v = line.split("=", 1)
            values.setdefault(k.strip(), []).append(v.strip())
    if values.get("DHCP", ["no"])[-1] in ("yes", "ipv4", "true") or not values.get("Address"):
        return NetSettings("dhcp")
    return NetSettings("static", values["Address"][0], (values.get("Gateway") or [""])[0], tuple(values.get("DNS", [])))


SIOCGIFFLAGS, SIOCGIFADDR, SIOCGIFNETMASK = 0x8913, 0x8915, 0x891B
IFF_UP, IFF_RUNNING = 0x1, 0x40


def ipv4_of(interface: str) -> tuple[tuple[str, ...], bool]:
    """(the interface's IPv4 address as CIDR, or nothing; whether it is up with a carrier),
    from the kernel (ioctl: no tool to run, works inside the service's sandbox)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        def ioctl(req: int) -> bytes:
            return fcntl.ioctl(s.fileno(), req, struct.pack("256s", interface[:15].encode()))

        try:
            flags = struct.unpack("H", ioctl(SIOCGIFFLAGS)[16:18])[0]
        except OSError as exc:
            raise NetworkError(f"no interface {interface}: {exc.strerror}") from None
        up = bool(flags & IFF_UP) and bool(flags & IFF_RUNNING)
        try:
            addr = socket.inet_ntoa(ioctl(SIOCGIFADDR)[20:24])
            mask = socket.inet_ntoa(ioctl(SIOCGIFNETMASK)[20:24])
        except OSError:
            return (), up  # no IPv4 address (yet)
    prefix = ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen
    return (f"{addr}/{prefix}",), up


class Networkd:
    """systemd-networkd: the settings are one file edge owns (``directory``/10-edge.network);
    ``reload`` has it installed in /etc/systemd/network and networkd reconfigure the link (on
    the appliance root's edge-ctl unit does both, as the service user may not; elsewhere
    ``networkctl reload`` for a file already in networkd's directory). The address comes from
    the kernel (``ipv4_of``)."""

    def __init__(self, interface: str = "eth0", directory: Path = Path("/etc/edge/network"),
                 reload: Callable[[], Awaitable[None]] | None = None,
                 addresses: Callable[[str], tuple[tuple[str, ...], bool]] = ipv4_of,
                 sys_net: Path = Path("/sys/class/net")):
        self.configured = interface
        self.path = Path(directory) / NETWORKD_FILE
        self.reload = reload or self._networkctl_reload
        self.addresses = addresses
        self.sys_net = sys_net
        self._interface: str | None = None

    @property
    def interface(self) -> str:
        """The configured interface, or, when there is none of that name (Debian names the
        Pi's Ethernet end0, qemu's enp0s1), the first wired one (en*, eth*)."""
        if self._interface is None:
            name = self.configured
            try:
                present = sorted(p.name for p in self.sys_net.iterdir())
            except OSError:
                present = []
            if present and name not in present:
                wired = [n for n in present if n.startswith(("en", "eth"))]
                if wired:
                    log.info("network: no interface %s here; using %s", name, wired[0])
                    name = wired[0]
            self._interface = name
        return self._interface

    async def _networkctl_reload(self) -> None:
        await _run("networkctl", "reload")

    def _read(self) -> NetSettings:
        try:
            return parse_networkd(self.path.read_text())
        except FileNotFoundError:
            return NetSettings("dhcp")  # the image's default for wired interfaces

    async def status(self) -> NetStatus:
        settings = await asyncio.to_thread(self._read)
        addrs, up = await asyncio.to_thread(self.addresses, self.interface)
        return NetStatus(settings, addrs, up and bool(addrs))

    async def apply(self, settings: NetSettings) -> None:
        text = render_networkd(self.interface, settings)
        await asyncio.to_thread(self._write, text)
        try:
            await self.reload()
        except NetworkError as exc:
            log.warning("networkd reload failed: %s", exc)  # the roll-back decides

    def _write(self, text: str) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        tmp.replace(self.path)


def default_driver() -> str:
    """What runs this machine's network: networkd when it is up and NetworkManager is not."""
    if shutil.which("nmcli") is None and Path("/run/systemd/netif/state").exists():
        return "networkd"
    return "nmcli"


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
