"""The front-panel menu as a pure state machine: buttons and time in, screen text and actions out.

No I/O here: ``Menu.button(ev, now)`` and ``Menu.tick(now)`` change the state and may queue
``Action``s (``Menu.take_actions()``); the component performs them and reports back with
``Menu.done(...)``. ``Menu.render(now)`` gives the lines a person reads. Tests drive it with a
controllable clock.

Precedence on the screen: an active alarm that was not dismissed > first-boot credentials
(until acknowledged) > the menu stack (home at the bottom).

Buttons: UP/DOWN move, SELECT enters/does, BACK goes back. In the address editor a held
UP/DOWN steps by 10. Factory reset needs SELECT held 10 s, then a fresh SELECT to confirm.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from hw.buttons import ButtonEvent

from ..dashboard import words
from .network import NetSettings

FACTORY_HOLD_S = 10.0
SCROLL_STEP_S = 0.4  # a line longer than the display scrolls one character per step
SCROLL_PAUSE_STEPS = 4


# ---- actions the component performs ----------------------------------------------------
@dataclass(frozen=True)
class Action:
    pass


@dataclass(frozen=True)
class AcknowledgeCredentials(Action):
    pass


@dataclass(frozen=True)
class RotateCredentials(Action):
    pass


@dataclass(frozen=True)
class Pulse(Action):
    relay: str


@dataclass(frozen=True)
class AckAlarm(Action):
    alarm: str


@dataclass(frozen=True)
class ApplyNetwork(Action):
    settings: NetSettings


@dataclass(frozen=True)
class Reboot(Action):
    pass


@dataclass(frozen=True)
class FactoryReset(Action):
    pass


# ---- what the screens show ---------------------------------------------------------------
@dataclass
class SensorView:
    name: str
    state: dict[str, Any]
    last_seen: float  # wall time


@dataclass
class AlarmView:
    alarm: str
    sensor: str
    kind: str
    message: str
    since: float
    acked: bool = False


@dataclass
class MenuData:
    """Kept current by the component; the menu only reads it."""

    user: str = ""
    password: str = field(default="")  # none until the component sets the device's
    serial: str = ""
    acknowledged: bool = True
    tls_fingerprint: str = ""  # SHA-256 of the device certificate (HTTPS, MQTT over TLS)
    gateway_user: str = ""  # the broker account of LAN sensor gateways
    gateway_password: str = ""
    ip: str = ""
    rtsp_url: str = ""
    link_problems: list[str] = field(default_factory=list)
    alarms: dict[str, AlarmView] = field(default_factory=dict)  # active only
    sensors: dict[str, SensorView] = field(default_factory=dict)
    relays: list[str] = field(default_factory=list)
    relay_on: dict[str, bool | None] = field(default_factory=dict)  # None: not known (board offline)
    network: NetSettings | None = None
    version: str = ""
    started: float = 0.0  # clock time the service started
    wall: Callable[[], float] = lambda: 0.0


def fit(text: str, cols: int, t: float = 0.0) -> str:
    """``text`` in ``cols`` characters; longer text scrolls with ``t`` (seconds on screen)."""
    if len(text) <= cols:
        return text.ljust(cols)
    span = len(text) - cols
    cycle = span + 2 * SCROLL_PAUSE_STEPS
    step = int(t / SCROLL_STEP_S) % cycle
    off = min(max(0, step - SCROLL_PAUSE_STEPS), span)
    return text[off:off + cols]


def age(seconds: float) -> str:
    """Compact age for a 16-character line: '12s', '2h05m'."""
    return words.age(seconds, sep="")


def sensor_summary(state: dict[str, Any]) -> str:
    parts = []
    if "contact" in state:
        parts.append("closed" if state["contact"] else "OPEN")
    if "occupancy" in state:
        parts.append("MOTION" if state["occupancy"] else "still")
    if "water_leak" in state:
        parts.append("LEAK" if state["water_leak"] else "dry")
    if "smoke" in state:
        parts.append("SMOKE" if state["smoke"] else "no smoke")
    if state.get("tamper"):
        parts.append("TAMPER")
    if state.get("vibration"):
        parts.append("VIBRATION")
    if "temperature" in state and isinstance(state["temperature"], (int, float)):
        parts.append(f"{state['temperature']:.1f}C")
    if "humidity" in state and isinstance(state["humidity"], (int, float)):
        parts.append(f"{state['humidity']:.0f}%")
    if "battery" in state and isinstance(state["battery"], (int, float)) and state["battery"] < 20:
        parts.append(f"batt {state['battery']:.0f}%")
    if not parts:
        parts = [f"{k}={v}" for k, v in state.items() if k != "linkquality"][:2] or ["no data"]
    return " ".join(parts)


# ---- screens -------------------------------------------------------------------------------
@dataclass
class Page:
    title: str
    value: str
    select: Callable[["Menu", float], None] | None = None


class Screen:
    since: float = 0.0

    def render(self, m: "Menu", now: float) -> list[str]:
        raise NotImplementedError

    def button(self, m: "Menu", ev: ButtonEvent, now: float) -> None:
        if ev.kind == "press" and ev.button == "back":
            m.pop()

    def tick(self, m: "Menu", now: float) -> None:
        pass


class PagesScreen(Screen):
    """One page at a time: a title line and a value line; UP/DOWN between pages."""

    def __init__(self, pages: Callable[["Menu"], list[Page]], name: str = ""):
        self.pages_fn = pages
        self.name = name
        self.index = 0

    def pages(self, m: "Menu") -> list[Page]:
        pages = self.pages_fn(m)
        self.index = min(self.index, max(0, len(pages) - 1))
        return pages

    def render(self, m: "Menu", now: float) -> list[str]:
        pages = self.pages(m)
        if not pages:
            return [self.name, "(empty)"]
        p = pages[self.index]
        lines = [p.title, p.value]
        if m.rows >= 4:
            hint = "UP/DN  SEL  BACK" if p.select else "UP/DN       BACK"
            lines += ["", f"{self.index + 1}/{len(pages)}".ljust(m.cols - len(hint))[: max(0, m.cols - len(hint))] + hint]
        return lines

    def button(self, m: "Menu", ev: ButtonEvent, now: float) -> None:
        if ev.kind != "press":
            return
        pages = self.pages(m)
        if ev.button == "back":
            m.pop()
        elif ev.button == "up" and pages:
            self.index = (self.index - 1) % len(pages)
        elif ev.button == "down" and pages:
            self.index = (self.index + 1) % len(pages)
        elif ev.button == "select" and pages and pages[self.index].select is not None:
            pages[self.index].select(m, now)


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


class ConfirmScreen(Screen):
    def __init__(self, question: str, on_yes: Callable[["Menu", float], None]):
        self.question = question
        self.on_yes = on_yes

    def render(self, m: "Menu", now: float) -> list[str]:
        return [self.question, "SEL=yes BACK=no"]

    def button(self, m: "Menu", ev: ButtonEvent, now: float) -> None:
        if ev.kind != "press":
            return  # the release of a hold that led here is not a yes
        if ev.button == "select":
            m.pop()
            self.on_yes(m, now)
        elif ev.button == "back":
            m.pop()


class MessageScreen(Screen):
    """A result: any button goes back."""

    def __init__(self, title: str, message: str):
        self.title = title
        self.message = message

    def render(self, m: "Menu", now: float) -> list[str]:
        return [self.title, self.message]

    def button(self, m: "Menu", ev: ButtonEvent, now: float) -> None:
        if ev.kind == "press":
            m.pop()


class BusyScreen(Screen):
    """An action in progress; buttons wait."""

    def __init__(self, title: str, message: str, action: Action):
        self.title = title
        self.message = message
        self.action = action

    def render(self, m: "Menu", now: float) -> list[str]:
        dots = "." * (1 + int(now - self.since) % 3)
        return [self.title, self.message + dots]

    def button(self, m: "Menu", ev: ButtonEvent, now: float) -> None:
        pass


class AddressEditor(Screen):
    """Edit a dotted IPv4 address (and optionally its prefix) field by field."""

    def __init__(self, title: str, initial: str, with_prefix: bool, on_done: Callable[["Menu", float, str], None]):
        self.title = title
        self.with_prefix = with_prefix
        self.on_done = on_done
        if with_prefix:
            iface = ipaddress.IPv4Interface(initial)
            octets = str(iface.ip).split(".")
            self.fields = [int(o) for o in octets] + [iface.network.prefixlen]
        else:
            self.fields = [int(o) for o in str(ipaddress.IPv4Address(initial)).split(".")]
        self.field = 0

    def value(self) -> str:
        ip = ".".join(str(f) for f in self.fields[:4])
        return f"{ip}/{self.fields[4]}" if self.with_prefix else ip

    def render(self, m: "Menu", now: float) -> list[str]:
        name = f"part {self.field + 1}/4" if self.field < 4 else "prefix"
        v = self.value()
        if len(v) > m.cols and self.field == 4:
            v = f"prefix /{self.fields[4]}"
        elif len(v) > m.cols:
            v = v.split("/")[0]
        return [f"{self.title} {name}", v]

    def button(self, m: "Menu", ev: ButtonEvent, now: float) -> None:
        if ev.kind not in ("press", "hold"):
            return
        hi = 32 if self.field == 4 else 255
        lo = 1 if self.field == 4 else 0
        step = 10 if ev.kind == "hold" else 1
        if ev.button in ("up", "down"):
            delta = step if ev.button == "up" else -step
            self.fields[self.field] = lo + (self.fields[self.field] - lo + delta) % (hi - lo + 1)
        elif ev.kind != "press":
            return
        elif ev.button == "select":
            if self.field + 1 < len(self.fields):
                self.field += 1
            else:
                m.pop()
                self.on_done(m, now, self.value())
        elif ev.button == "back":
            if self.field > 0:
                self.field -= 1
            else:
                m.pop()


class FactoryResetScreen(Screen):
    """Entered by pressing SELECT on System > Factory reset: it must stay held 10 s (measured
    with the menu's clock); letting go earlier goes back. Then a fresh SELECT confirms."""

    def __init__(self, held_since: float):
        self.held_since: float | None = held_since

    def render(self, m: "Menu", now: float) -> list[str]:
        left = max(0.0, FACTORY_HOLD_S - (now - (self.held_since if self.held_since is not None else now)))
        return ["Factory reset", f"keep holding {math.ceil(left)}s"]

    def button(self, m: "Menu", ev: ButtonEvent, now: float) -> None:
        if ev.button == "select" and ev.kind == "press":
            self.held_since = now
        elif ev.button == "select" and ev.kind == "release":
            self.held_since = None
            m.pop()
        elif ev.button == "back" and ev.kind == "press":
            self.held_since = None
            m.pop()

    def tick(self, m: "Menu", now: float) -> None:
        if self.held_since is not None and now - self.held_since >= FACTORY_HOLD_S:
            self.held_since = None
            m.pop()
            m.push(ConfirmScreen("Wipe all+reboot?", lambda mm, t: mm.emit(FactoryReset(), "Factory reset", "wiping")))


# ---- the menus --------------------------------------------------------------------------------
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
            out.append(Page(s.name, f"{sensor_summary(s.state)} {seen}"))
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

    def pages(m: "Menu") -> list[Page]:
        d = m.data
        return [
            Page("Version", d.version),
            Page("Uptime", age(m.now - d.started)),
            Page("Reboot", "SELECT to reboot", reboot),
            Page("Factory reset", f"hold SEL {FACTORY_HOLD_S:.0f}s", lambda mm, t: mm.push(FactoryResetScreen(t))),
        ]

    return PagesScreen(pages, "System")


# ---- the machine ----------------------------------------------------------------------------
class Menu:
    def __init__(self, data: MenuData, cols: int = 16, rows: int = 2, *, home_cycle_s: float = 4.0,
                 menu_timeout_s: float = 300.0, now: float = 0.0):
        self.data = data
        self.cols = cols
        self.rows = rows
        self.home_cycle_s = home_cycle_s
        self.menu_timeout_s = menu_timeout_s
        self.now = now
        home = HomeScreen()
        home.since = home.shown_at = now
        self.stack: list[Screen] = [home]
        self.interrupts: list[str] = []  # alarm ids shown over everything, newest last
        self._actions: list[Action] = []
        self.last_input = now
        self._first_boot = FirstBootScreen()
        self._alarm_since = now
        self._shown: Screen | None = home

    # -- stack ---------------------------------------------------------------------------
    def push(self, screen: Screen) -> None:
        screen.since = self.now
        self.stack.append(screen)

    def pop(self) -> None:
        if len(self.stack) > 1:
            self.stack.pop()

    def home(self) -> None:
        del self.stack[1:]

    def emit(self, action: Action, busy_title: str = "", busy_message: str = "") -> None:
        self._actions.append(action)
        if busy_title:
            self.push(BusyScreen(busy_title, busy_message, action))

    def take_actions(self) -> list[Action]:
        out, self._actions = self._actions, []
        return out

    def done(self, action: Action, title: str, message: str) -> None:
        """The component finished ``action``: replace its busy screen with the result."""
        for i in range(len(self.stack) - 1, 0, -1):
            s = self.stack[i]
            if isinstance(s, BusyScreen) and s.action is action:
                del self.stack[i:]
                break
        if title:
            self.push(MessageScreen(title, message))

    @property
    def top(self) -> Screen:
        return self.stack[-1]

    def current(self) -> Screen | None:
        """The screen on display (None: an alarm)."""
        if self.interrupts:
            return None
        if not self.data.acknowledged:
            return self._first_boot
        return self.top

    # -- inputs --------------------------------------------------------------------------
    def alarm(self, view: AlarmView, active: bool) -> None:
        if active:
            if view.alarm not in self.interrupts:
                self.interrupts.append(view.alarm)
                self._alarm_since = self.now
        elif view.alarm in self.interrupts:
            self.interrupts.remove(view.alarm)

    def button(self, ev: ButtonEvent, now: float) -> None:
        self.now = now
        if ev.kind == "press":
            self.last_input = now
        if self.interrupts:
            if ev.kind != "press":
                # a release still reaches the screen underneath (a hold there has ended)
                under = self._first_boot if not self.data.acknowledged else self.top
                under.button(self, ev, now)
                return
            alarm_id = self.interrupts[-1]
            if ev.button == "select":
                self.emit(AckAlarm(alarm_id))
            self.interrupts.pop()  # dismissed (still listed under Alarms while active)
            return
        scr = self.current()
        assert scr is not None
        scr.button(self, ev, now)

    def tick(self, now: float) -> None:
        self.now = now
        # drop interrupts of alarms no longer active
        self.interrupts = [a for a in self.interrupts if a in self.data.alarms]
        if (now - self.last_input >= self.menu_timeout_s and len(self.stack) > 1
                and not any(isinstance(s, (BusyScreen, FactoryResetScreen)) for s in self.stack)):
            self.home()
        scr = self.current()
        if isinstance(scr, HomeScreen) and scr is not self._shown:
            scr.shown_at = now  # back on the home screen: its item stays a full cycle
        self._shown = scr
        if scr is not None:
            scr.tick(self, now)

    # -- output --------------------------------------------------------------------------
    def render(self, now: float | None = None) -> list[str]:
        now = self.now if now is None else now
        if self.interrupts:
            a = self.data.alarms.get(self.interrupts[-1])
            more = f" +{len(self.interrupts) - 1}" if len(self.interrupts) > 1 else ""
            if a is None:
                lines = ["ALARM", ""]
            else:
                lines = [f"ALARM {a.sensor}{more}", a.message]
                if self.rows >= 4:
                    lines += [f"since {age(self.data.wall() - a.since)}", "SEL=ack BACK=hide"]
            since = self._alarm_since
        else:
            scr = self.current()
            assert scr is not None
            lines = scr.render(self, now)
            since = scr.since if not isinstance(scr, HomeScreen) else scr.shown_at
        lines = (list(lines) + [""] * self.rows)[: self.rows]
        return [fit(line, self.cols, now - since) for line in lines]
