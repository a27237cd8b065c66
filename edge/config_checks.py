"""Checks across config sections, in one place.

Each section validates itself; what needs two sections is checked here, after every section
is valid: a rule's sensor and relays exist, a Modbus input's board is a Modbus board, sensor
ids and rule names are unique, and every shared resource (a GPIO pin, the LCD's I2C pins, a
serial device) has one user (ESPHome's model: pins validated once across components). Every
problem names its key path; a clash names both keys, and ``edge.config`` adds their lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from . import kinds
from .relays.config import MAX_PULSE_MS
from .section import Loc, Problem

if TYPE_CHECKING:
    from .config import Config

# The Pi's 40-pin header (J8): physical pin -> BCM GPIO number.
HEADER_TO_BCM = {3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24, 19: 10, 21: 9, 22: 25,
                 23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5, 31: 6, 32: 12, 33: 13, 35: 19, 36: 16, 37: 26, 38: 20, 40: 21}
# I2C bus -> the GPIO pins it uses (SDA, SCL) on a Pi
I2C_PINS = {0: (0, 1), 1: (2, 3)}
# The UART on the GPIO header, by the device names it goes by
GPIO_UART_DEVICES = ("/dev/serial0", "/dev/ttyAMA0", "/dev/ttyS0")
GPIO_UART_PINS = (14, 15)


def bcm_pin(spec: int | str) -> int | str:
    """A gpiozero pin spec as a BCM number (17, "GPIO17", "BCM17", "BOARD11", "J8:11"), or the
    spec itself when it is none of those."""
    if isinstance(spec, int):
        return spec
    s = spec.strip().upper()
    if m := re.fullmatch(r"(?:GPIO|BCM)?(\d+)", s):
        return int(m.group(1))
    if m := re.fullmatch(r"(?:BOARD|J8:)(\d+)", s):
        return HEADER_TO_BCM.get(int(m.group(1)), spec)
    return spec


@dataclass(frozen=True)
class Claim:
    resource: str  # "GPIO 17", "serial device /dev/ttyUSB0"
    loc: Loc
    share: Any = None  # claims with equal non-None ``share`` may use the resource together
    why: str = ""  # "" or what it is used for, when not plain from the key


def _claims(cfg: "Config") -> Iterator[Claim]:
    relays = cfg.relays
    for name, ch in relays.channels.items():
        board = relays.boards.get(ch.board)
        if board is not None and board.type == "gpio" and ch.pin is not None:
            yield Claim(f"GPIO {bcm_pin(ch.pin)}", ("relays", "channels", name, "pin"))
    for name, b in relays.boards.items():
        if b.type == "modbus_rtu" and b.device:
            yield from _serial_claims(b.device, ("relays", "boards", name, "device"), (b.baudrate, b.parity, b.stopbits))
    for i, s in enumerate(cfg.sensors):
        if s.source == "gpio" and s.gpio is not None:
            yield Claim(f"GPIO {bcm_pin(s.gpio.pin)}", ("sensors", i, "gpio", "pin"))
        if s.source == "modbus" and s.modbus is not None and s.modbus.url and s.modbus.url.startswith("rtu:"):
            from urllib.parse import parse_qs, urlparse

            u = urlparse(s.modbus.url)
            q = {k: v[-1] for k, v in parse_qs(u.query).items()}
            settings = (int(q.get("baudrate", 9600)), q.get("parity", "N"), int(q.get("stopbits", 1)))
            yield from _serial_claims(u.path, ("sensors", i, "modbus", "url"), settings)
    if cfg.lcd.enabled:
        if cfg.lcd.driver != "simulated":
            for pin in I2C_PINS.get(cfg.lcd.i2c_bus, ()):
                yield Claim(f"GPIO {pin}", ("lcd", "i2c_bus"), why=f"the LCD's I2C bus {cfg.lcd.i2c_bus}")
        b = cfg.buttons
        for key in ("up", "down", "select", "back"):
            yield Claim(f"GPIO {bcm_pin(getattr(b, key))}", ("buttons", key))


def _serial_claims(device: str, loc: Loc, settings: tuple[Any, ...]) -> Iterator[Claim]:
    # every Modbus user of one RS485 line shares it, with one set of line settings
    yield Claim(f"serial device {device}", loc, share=("modbus",) + settings,
                why=f"Modbus at {settings[0]} baud {settings[1]}{settings[2]}")
    if device in GPIO_UART_DEVICES:
        for pin in GPIO_UART_PINS:
            yield Claim(f"GPIO {pin}", loc, why=f"the GPIO UART {device}")


def _resource_problems(cfg: "Config") -> Iterator[Problem]:
    first: dict[str, Claim] = {}
    for c in _claims(cfg):
        other = first.get(c.resource)
        if other is None:
            first[c.resource] = c
            continue
        if c.share is not None and c.share == other.share:
            continue
        if other.share is not None and c.share is not None:
            msg = (f"{c.resource} is also opened by {{0}} with other settings ({other.why}, here {c.why}); "
                   "one line, one setting")
        else:
            used = f" (as {other.why})" if other.why else ""
            here = f" (here as {c.why})" if c.why else ""
            msg = f"{c.resource} is already claimed by {{0}}{used}{here}; each pin or device has one user"
        yield Problem(c.loc, msg, (other.loc,))


def _sensor_problems(cfg: "Config") -> Iterator[Problem]:
    seen: dict[str, int] = {}
    boards = cfg.relays.boards
    for i, s in enumerate(cfg.sensors):
        if s.id in seen:
            yield Problem(("sensors", i, "id"), f"duplicate sensor id {s.id!r}, first used at {{0}}",
                          (("sensors", seen[s.id], "id"),))
        else:
            seen[s.id] = i
        if s.source == "yolink":
            names = sorted(cfg.yolink)
            if s.yolink is not None and s.yolink not in cfg.yolink:
                yield Problem(("sensors", i, "yolink"),
                              f"{s.yolink!r} is not a [yolink.NAME] section (have: {', '.join(names) or 'none'})")
            elif s.yolink is None and len(names) != 1:
                yield Problem(("sensors", i, "source"), "source 'yolink' needs a [yolink.NAME] section" if not names else
                              f"several YoLink sources ({', '.join(names)}): say which with yolink = \"NAME\"")
        if s.modbus is not None and s.modbus.board is not None:
            b = boards.get(s.modbus.board)
            if b is None or b.type == "gpio":
                modbus_boards = sorted(n for n, c in boards.items() if c.type != "gpio")
                yield Problem(("sensors", i, "modbus", "board"),
                              f"{s.modbus.board!r} is not a Modbus board in [relays.boards] "
                              f"(have: {', '.join(modbus_boards) or 'none'})")


def _rule_problems(cfg: "Config") -> Iterator[Problem]:
    ids = {s.id for s in cfg.sensors}
    channels = cfg.relays.channels
    names: dict[str, int] = {}
    for i, r in enumerate(cfg.rules):
        if r.sensor not in ids:
            yield Problem(("rules", i, "sensor"),
                          f"sensor {r.sensor!r} is not in [[sensors]] (have: {', '.join(sorted(ids)) or 'none'})")
        n = r.name or f"{r.sensor}-{i}"
        if n in names:
            yield Problem(("rules", i, "name"), f"duplicate rule name {n!r}, first used at {{0}}",
                          (("rules", names[n], "name" if r.name else "sensor"),))
        else:
            names[n] = i
        for j, a in enumerate(r.actions):
            relay = a.relay
            if relay is None:
                continue
            if relay not in channels:
                yield Problem(("rules", i, "actions", j, a.type),
                              f"unknown relay {relay!r} (relays: {', '.join(channels) or 'none configured'})")
            if a.type == "pulse" and a.ms is not None and a.ms > MAX_PULSE_MS:
                yield Problem(("rules", i, "actions", j, "ms"),
                              f"{a.ms} ms is longer than the relay service runs a pulse ({MAX_PULSE_MS} ms at most)")


def _receiver_problems(cfg: "Config") -> Iterator[Problem]:
    """Zones name known sensors; a rule's report action names a known receiver and a code it
    can send (a Contact ID receiver needs a Contact ID event for it)."""
    rc = cfg.receivers
    ids = {s.id for s in cfg.sensors}
    have = ", ".join(sorted(ids)) or "none"
    tables: list[tuple[tuple[str, ...], dict[str, int]]] = [(("receivers", "zones"), rc.zones)]
    for table in ("sia", "chekt", "webhook"):
        for name, r in getattr(rc, table).items():
            tables.append((("receivers", table, name, "zones"), r.zones))
    for loc, zones in tables:
        for sensor in zones:
            if sensor not in ids:
                yield Problem(loc + (sensor,), f"sensor {sensor!r} is not in [[sensors]] (have: {have})")
    receivers = rc.all()
    sensors = {s.id: s for s in cfg.sensors}
    for i, r in enumerate(cfg.rules):
        for j, a in enumerate(r.actions):
            if a.report is None:
                continue
            loc = ("rules", i, "actions", j)
            target = receivers.get(a.report)
            if target is None:
                yield Problem(loc + ("report",), f"unknown receiver {a.report!r} "
                                                 f"(receivers: {', '.join(receivers) or 'none configured'})")
                continue
            sensor = sensors.get(r.sensor)
            kind = a.kind or (sensor.kind if sensor is not None else "")
            codes = kinds.report_codes(kind)
            if a.code is None and codes is None:
                yield Problem(loc + ("report",), f"kind {kind!r} has no report codes: give the action a code "
                                                 "(e.g. code = \"KA\")")
                continue
            if rc.type_of(a.report) == "sia" and getattr(target, "format", "") == "ADM-CID":
                cid = a.cid or (kinds.cid_code(a.code) if a.code else codes.cid if codes else None)
                if cid is None:
                    yield Problem(loc + ("code",), f"{a.report!r} is a Contact ID receiver and code {a.code} has no "
                                                   "Contact ID event in the kinds table: give the action a cid")
                if a.zone is not None and a.zone > 999:
                    yield Problem(loc + ("zone",), "Contact ID zones are 0-999")


CHECKS = (_sensor_problems, _rule_problems, _resource_problems, _receiver_problems)


def problems(cfg: "Config") -> list[Problem]:
    """Every cross-section problem of a config whose sections are each valid."""
    out: list[Problem] = []
    for check in CHECKS:
        out.extend(check(cfg))
    return out


