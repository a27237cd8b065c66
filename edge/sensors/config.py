"""Config of the sensor model: ``[[sensors]]`` (one table per sensor) and ``[mqtt]`` (the broker
that MQTT ingest and the uplink connect to).

A sensor has a stable ``id`` (used in topics, the store and rules), a display ``name``, a
``kind`` (contact, motion, leak, ...) and a ``source``: ``mqtt`` (a topic decoded by an
adapter), ``gpio`` (a dry-contact input) or ``modbus`` (a polled discrete input/register).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ..config import Section

KINDS = ("contact", "motion", "leak", "smoke", "vibration", "temperature", "humidity", "co", "tamper", "generic")
Kind = Literal["contact", "motion", "leak", "smoke", "vibration", "temperature", "humidity", "co", "tamper", "generic"]

# The field that carries a kind's main state (rules and the uplink default to it).
PRIMARY_FIELD: dict[str, str] = {
    "contact": "contact",
    "motion": "occupancy",
    "leak": "water_leak",
    "smoke": "smoke",
    "vibration": "vibration",
    "temperature": "temperature",
    "humidity": "humidity",
    "co": "co",
    "tamper": "tamper",
    "generic": "value",
}
BINARY_KINDS = {"contact", "motion", "leak", "smoke", "vibration", "co", "tamper"}

_ID = re.compile(r"^[a-z0-9_][a-z0-9_\-]{0,63}$")


def _check_topic_filter(t: str) -> str:
    if not t or len(t) > 512:
        raise ValueError("topic must be 1..512 characters")
    parts = t.split("/")
    for i, p in enumerate(parts):
        if "#" in p and (p != "#" or i != len(parts) - 1):
            raise ValueError(f"'#' must be a whole last level in topic filter {t!r}")
        if "+" in p and p != "+":
            raise ValueError(f"'+' must be a whole level in topic filter {t!r}")
    return t


class GenericField(Section):
    """One field of the generic JSON adapter: where it is in the payload and how to map it."""

    path: str = Field(..., min_length=1, description="dotted path in the JSON payload, e.g. 'state.door' or 'items.0.v'")
    map: dict[str, Any] = Field(default_factory=dict, description="raw value (as text) -> value, e.g. {open=false, closed=true}")
    scale: float = 1.0
    offset: float = 0.0
    type: Literal["auto", "bool", "number", "string"] = "auto"


class GpioInput(Section):
    pin: int | str = Field(..., description="BCM number or gpiozero pin name (e.g. 17 or 'GPIO17')")
    normally: Literal["open", "closed"] = Field("open", description="contact wiring: normally-open or normally-closed")
    pull_up: bool = True
    debounce_ms: int = Field(50, ge=0, le=5000)


class ModbusInput(Section):
    url: str | None = Field(None, description="tcp://host:port, rtu-tcp://host:port or rtu:///dev/ttyUSB0?baudrate=9600")
    board: str | None = Field(None, description="or a Modbus board of [relays.boards] (shares its line)")
    device_id: int | None = Field(None, ge=0, le=247, description="default: the board's, else 1")
    table: Literal["discrete", "coil", "input", "holding"] = "discrete"
    address: int = Field(0, ge=0, le=65535)
    poll_ms: int = Field(200, ge=20, le=3_600_000)
    scale: float = 1.0
    offset: float = 0.0
    signed: bool = False
    invert: bool = False

    @model_validator(mode="after")
    def _where(self) -> "ModbusInput":
        if (self.url is None) == (self.board is None):
            raise ValueError("give exactly one of url (tcp://host:port, rtu:///dev/...) or board (a [relays.boards] name)")
        if self.url is not None and not re.match(r"^(tcp|rtu-tcp)://[^/:]+(:\d+)?/?$|^rtu:///", self.url):
            raise ValueError(f"url {self.url!r}: expected tcp://host:port, rtu-tcp://host:port or rtu:///dev/ttyUSB0?baudrate=9600")
        return self


class SensorConfig(Section):
    id: str = Field(..., description="stable id: lower-case letters, digits, _ and -")
    name: str = Field("", max_length=64)
    kind: Kind = "generic"
    source: Literal["mqtt", "gpio", "modbus"] = "mqtt"
    # mqtt
    topic: str | None = None
    adapter: Literal["zigbee2mqtt", "zwave", "yolink", "generic"] = "zigbee2mqtt"
    device_id: str | None = Field(None, description="zwave/yolink: match the payload's deviceId (or zwave nodeId)")
    fields: dict[str, GenericField] = Field(default_factory=dict, description="generic adapter: field name -> path/map")
    # gpio / modbus
    gpio: GpioInput | None = None
    modbus: ModbusInput | None = None
    field: str | None = Field(None, description="gpio/modbus: which field the input sets (default: the kind's)")
    # presentation
    zone: str = ""
    unit: str = ""

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name") and isinstance(data.get("id"), str):
            data = {**data, "name": data["id"].replace("_", " ").capitalize()}
        return data

    @model_validator(mode="after")
    def _check(self) -> "SensorConfig":
        if not _ID.match(self.id):
            raise ValueError(f"id {self.id!r}: use lower-case letters, digits, '_' and '-' (max 64)")
        if self.source == "mqtt":
            if not self.topic:
                raise ValueError("source 'mqtt' needs a topic")
            _check_topic_filter(self.topic)
            if self.adapter == "generic" and not self.fields:
                raise ValueError("adapter 'generic' needs [sensors.fields] (field = {path = ..., map = {...}})")
        elif self.source == "gpio" and self.gpio is None:
            raise ValueError("source 'gpio' needs gpio = {pin = ...}")
        elif self.source == "modbus" and self.modbus is None:
            raise ValueError("source 'modbus' needs modbus = {url = ..., address = ...}")
        return self

    @property
    def primary_field(self) -> str:
        return self.field or PRIMARY_FIELD[self.kind]

    @property
    def binary(self) -> bool:
        return self.kind in BINARY_KINDS


class MqttTls(Section):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = Field(False, description="skip hostname verification (self-signed test brokers only)")


class MqttConfig(Section):
    """The broker. Both ingest and the uplink use it (the appliance runs Mosquitto locally)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    password_file: Path | None = Field(None, description="read the password from this file (keep it 0600)")
    tls: MqttTls | None = None
    client_id: str | None = Field(None, description="stable client id prefix; default edge-<serial>")
    keepalive_s: int = Field(30, ge=5, le=3600)
    backoff_initial_s: float = Field(0.5, gt=0, le=60)
    backoff_max_s: float = Field(30.0, gt=0, le=3600)
    max_payload_bytes: int = Field(65536, ge=64, le=16 * 1024 * 1024)

    def read_password(self) -> str | None:
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return self.password


def check_sensors(sensors: list[SensorConfig], relay_boards: dict[str, Any] | None = None) -> None:
    seen: set[str] = set()
    for i, s in enumerate(sensors):
        if s.id in seen:
            raise ValueError(f"sensors[{i}]: duplicate id {s.id!r}")
        seen.add(s.id)
        if s.modbus is not None and s.modbus.board is not None and relay_boards is not None:
            b = relay_boards.get(s.modbus.board)
            if b is None or getattr(b, "type", "") == "gpio":
                modbus_boards = sorted(n for n, c in relay_boards.items() if getattr(c, "type", "") != "gpio")
                raise ValueError(f"sensors[{i}] ({s.id}): modbus board {s.modbus.board!r} is not a Modbus board in "
                                 f"[relays.boards] (have: {', '.join(modbus_boards) or 'none'})")
