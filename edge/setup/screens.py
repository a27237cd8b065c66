"""The front panel's own screens: home, first boot, an alarm, and the main menu's entries
(credentials, network, relays, sensors, alarms, system with reboot and factory reset).

Built from the reusable ``widgets``; they read ``Menu.data`` (``views.MenuData``) and ask for
work with ``Menu.emit(action)`` (``actions``), never doing I/O themselves.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Callable

from hw.buttons import ButtonEvent

from .actions import AcknowledgeCredentials, AckAlarm, ApplyNetwork, FactoryReset, Pulse, Reboot, RotateCredentials
from .network import NetSettings
from .text import age, sensor_summary
from .widgets import AddressEditor, ConfirmScreen, HoldToConfirm, Page, PagesScreen, Screen

if TYPE_CHECKING:
    from .menu import Menu

FACTORY_HOLD_S = 10.0


class HomeScreen(Screen):
    """Cycles the IP address, the RTSP URL, active alarms and link health."""

    def __init__(self) -> None:
        self.index = 0
        self.shown_at = 0.0

    @staticmethod
    def items(m: "Menu") -> list[tuple[str, str]]:
        d = m.data
        n = len(d.alarms)
        return [
            ("IP address", d.ip or "no address"),
            ("RTSP", d.rtsp_url or "no video stream"),
            ("Alarms", f"{n} active" if n else "none active"),
            ("Links", "all OK" if not d.link_problems else "; ".join(d.link_problems)),
        ]

    def shown(self, now: float) -> None:
        self.shown_at = now  # back on the home screen: its item stays a full cycle

    def scroll_since(self) -> float:
        return self.shown_at

    def tick(self, m: "Menu", now: float) -> None:
        if now - self.shown_at >= m.home_cycle_s:
            self.index = (self.index + (2 if m.rows >= 4 else 1)) % 4
            self.shown_at = now

    def render(self, m: "Menu", now: float) -> list[str]:
        items = self.items(m)
        lines = list(items[self.index])
        if m.rows >= 4:
            lines += list(items[(self.index + 1) % 4])
        return lines

    def button(self, m: "Menu", ev: ButtonEvent, now: float) -> None:
        if ev.kind != "press":
            return
        if ev.button == "select":
            m.push(main_menu())
        elif ev.button in ("up", "down"):
            step = 1 if ev.button == "down" else -1
            self.index = (self.index + step) % 4
            self.shown_at = now


class FirstBootScreen(Screen):
    """The credentials, until the installer says they were noted."""

    def render(self, m: "Menu", now: float) -> list[str]:
        d = m.data
        if m.rows >= 4:
            return [f"User: {d.user}", "Password:", d.password, "SELECT when noted"]
        # two lines: the password never leaves the screen; the line above alternates
        hints = [f"Password ({d.user})" if len(d.user) <= 6 else "Password", "SELECT if noted"]
        return [hints[int(now / 3.0) % 2], d.password]

    def button(self, m: "Menu", ev: ButtonEvent, now: float) -> None:
        if ev.kind == "press" and ev.button == "select":
            m.emit(AcknowledgeCredentials())


def alarm_lines(m: "Menu", alarm_id: str, others: int) -> list[str]:
    """An alarm shown over everything (``others``: more alarms waiting under it)."""
    a = m.data.alarms.get(alarm_id)
    if a is None:
        return ["ALARM", ""]
    more = f" +{others}" if others else ""
    lines = [f"ALARM {a.sensor}{more}", a.message]
    if m.rows >= 4:
        lines += [f"since {age(m.data.wall() - a.since)}", "SEL=ack BACK=hide"]
    return lines


# ---- the main menu and its entries -----------------------------------------------------------
def main_menu() -> PagesScreen:
    entries: list[tuple[str, Callable[[], Screen]]] = [
        ("Credentials", credentials_screen),
        ("Network", network_screen),
        ("Relays", relays_screen),
        ("Sensors", sensors_screen),
        ("Alarms", alarms_screen),
        ("System", system_screen),
    ]

    def pages(m: "Menu") -> list[Page]:
        return [Page(f"Menu {i + 1}/{len(entries)}", f"> {name}", lambda mm, t, f=factory: mm.push(f()))
                for i, (name, factory) in enumerate(entries)]

    return PagesScreen(pages, "Menu")


def credentials_screen() -> PagesScreen:
    def rotate(m: "Menu", now: float) -> None:
        m.push(ConfirmScreen("New password?", lambda mm, t: mm.emit(RotateCredentials(), "Credentials", "new password")))

    def pages(m: "Menu") -> list[Page]:
        d = m.data
        return [
            Page("User", d.user),
            Page("Password", d.password),
            Page("Serial", d.serial),
            Page("New password", "SELECT to make", rotate),
            # what an installer compares with the browser's certificate, and what gateways log in with
            *([Page("TLS SHA-256", d.tls_fingerprint)] if d.tls_fingerprint else []),
            *([Page("MQTT gateway", d.gateway_user), Page("Gateway passwd", d.gateway_password)]
              if d.gateway_password else []),
        ]

    return PagesScreen(pages, "Credentials")


def network_screen() -> PagesScreen:
    def use_dhcp(m: "Menu", now: float) -> None:
        m.push(ConfirmScreen("Switch to DHCP?", lambda mm, t: mm.emit(ApplyNetwork(NetSettings("dhcp")), "Network", "applying")))

    def use_static(m: "Menu", now: float) -> None:
        cur = m.data.network
        initial = cur.address if cur is not None and cur.mode == "static" and cur.address else \
            (f"{m.data.ip}/24" if m.data.ip else "192.168.1.100/24")

        def address_done(mm: "Menu", t: float, address: str) -> None:
            net = ipaddress.IPv4Interface(address).network
            gw0 = cur.gateway if cur is not None and cur.gateway else str(next(net.hosts(), net.network_address))

            def gateway_done(m3: "Menu", t3: float, gateway: str) -> None:
                target = NetSettings("static", address, gateway, (gateway,))
                m3.push(ConfirmScreen(f"Use {address.split('/')[0]}",
                                      lambda m4, t4: m4.emit(ApplyNetwork(target), "Network", "applying")))

            mm.push(AddressEditor("Gw", gw0, False, gateway_done))

        m.push(AddressEditor("IP", initial, True, address_done))

    def pages(m: "Menu") -> list[Page]:
        d = m.data
        mode = d.network.describe() if d.network is not None else "unknown"
        return [
            Page("Network now", mode if d.network is None or d.network.mode == "dhcp" else "static"),
            Page("Address", d.ip or "none"),
            Page("Use DHCP", "SELECT to switch", use_dhcp),
            Page("Static address", "SELECT to set", use_static),
        ]

    return PagesScreen(pages, "Network")


def relays_screen() -> PagesScreen:
    def pages(m: "Menu") -> list[Page]:
        if not m.data.relays:
            return [Page("Relays", "none configured")]
        n = len(m.data.relays)
        states = {True: "ON ", False: "off", None: "?  "}
        return [Page(f"Relay {i + 1}/{n} {name}" if len(name) + 10 <= m.cols else name,
                     f"{states[m.data.relay_on.get(name)]} SEL=pulse",
                     lambda mm, t, r=name: mm.emit(Pulse(r), f"Pulse {r}", "pulsing"))
                for i, name in enumerate(m.data.relays)]

    return PagesScreen(pages, "Relays")


def sensors_screen() -> PagesScreen:
    def pages(m: "Menu") -> list[Page]:
        d = m.data
        if not d.sensors:
            return [Page("Sensors", "none seen yet")]
        out = []
        for s in sorted(d.sensors.values(), key=lambda s: s.name):
            seen = age(d.wall() - s.last_seen) if s.last_seen else "never"
            what = "OFFLINE" if s.offline else sensor_summary(s.state)
            out.append(Page(s.name, f"{what}{' BATT' if s.battery_low else ''} {seen}"))
        return out

    return PagesScreen(pages, "Sensors")


def alarms_screen() -> PagesScreen:
    def pages(m: "Menu") -> list[Page]:
        d = m.data
        if not d.alarms:
            return [Page("Alarms", "none active")]
        items = sorted(d.alarms.values(), key=lambda a: a.since)
        pages = []
        for i, a in enumerate(items):
            title = ("ACK " if a.acked else "") + a.sensor
            counter = f" {i + 1}/{len(items)}"
            if len(title) + len(counter) <= m.cols:
                title += counter
            pages.append(Page(title, a.message, None if a.acked else (lambda mm, t, a=a: mm.emit(AckAlarm(a.alarm)))))
        return pages

    return PagesScreen(pages, "Alarms")


def system_screen() -> PagesScreen:
    def reboot(m: "Menu", now: float) -> None:
        m.push(ConfirmScreen("Reboot now?", lambda mm, t: mm.emit(Reboot(), "Reboot", "rebooting")))

    def factory_reset(m: "Menu", now: float) -> None:
        # SELECT is down now: it must stay down FACTORY_HOLD_S, then a fresh SELECT confirms
        m.push(HoldToConfirm("Factory reset", FACTORY_HOLD_S, now, lambda mm, t: mm.push(
            ConfirmScreen("Wipe all+reboot?", lambda m3, t3: m3.emit(FactoryReset(), "Factory reset", "wiping")))))

    def pages(m: "Menu") -> list[Page]:
        d = m.data
        return [
            Page("Version", d.version),
            Page("Uptime", age(m.now - d.started)),
            Page("Reboot", "SELECT to reboot", reboot),
            Page("Factory reset", f"hold SEL {FACTORY_HOLD_S:.0f}s", factory_reset),
        ]

    return PagesScreen(pages, "System")
