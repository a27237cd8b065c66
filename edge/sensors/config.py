"""Config of the sensor model: ``[[sensors]]`` (one table per sensor). The broker they come
from is ``[mqtt]`` (``edge.mqtt.config``).

A sensor has a stable ``id`` (used in topics, the store and rules), a display ``name``, a
``kind`` (contact, motion, leak, ...) and a ``source``: ``mqtt`` (a topic decoded by an
adapter), ``gpio`` (a dry-contact input) or ``modbus`` (a polled discrete input/register).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from .. import kinds
from ..section import Section

KINDS = kinds.KIND_NAMES
Kind = Literal[kinds.KIND_NAMES]  # type: ignore[valid-type] - the table is the vocabulary

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
    # old news: a reading whose payload says it is older than this (YoLink ``time``, the Z-Wave
    # gateway's ``timestampMs``, Zigbee2MQTT's ``last_seen``) is stored and shown but fires no
    # pulse and raises no new alarm (queued at a broker while edge was away, replayed); 0: never
    max_age_s: float = Field(120.0, ge=0, le=86400 * 365,
                             description="readings older than this (by the payload's own time) act on nothing; 0 = no limit")
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
    def kind_info(self) -> kinds.Kind:
        return kinds.get(self.kind)

    @property
    def primary_field(self) -> str:
        return self.field or self.kind_info.field

    @property
    def binary(self) -> bool:
        return self.kind_info.binary
