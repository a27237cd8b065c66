"""What the screens show: the data the component keeps current and the menu only reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .network import NetSettings


@dataclass
class SensorView:
    name: str
    state: dict[str, Any]
    last_seen: float  # wall time
    offline: bool = False  # silent past its expected interval (SensorAvailability)
    battery_low: bool = False


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
    gateway_password: str = ""  # none until the component sets the generated one
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
