"""Config of the sensor model: ``[[sensors]]`` (one table per sensor). The broker they come
from is ``[mqtt]`` (``edge.mqtt.config``).

A sensor has a stable ``id`` (used in topics, the store and rules), a display ``name``, a
``kind`` (contact, motion, leak, ...) and a ``source``: ``mqtt`` (a topic decoded by an
adapter), ``gpio`` (a dry-contact input), ``modbus`` (a polled discrete input/register) or
``yolink`` (a device of a ``[yolink.NAME]`` account or Local Hub, picked by its name).

``[yolink.NAME]`` (``YoLinkSource``) is the account or hub itself: credentials (the secret in a
0600 file, never in this file), API and broker addresses by region or explicit.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from .. import kinds
from ..section import KeyProblem, Section

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


YOLINK_REGIONS = {
    # region -> (API base URL, MQTT broker host:port), from YoLink's Open API V2 documentation
    "us": ("https://api.yosmart.com", "mqtt.api.yosmart.com:8003"),
    "eu": ("https://api-eu.yosmart.com", "api-eu.yosmart.com:8003"),
}
LOCAL_HUB_API_PORT = 1080  # the Local Hub's local API (token + /open/yolink/v2/api)
LOCAL_HUB_MQTT_PORT = 18080


class YoLinkSource(Section):
    """One YoLink account (``mode = "cloud"``: User Access Credentials) or one YoLink Local
    Hub (``mode = "local"``: its Local API client id and secret, and its sub-net id)."""

    mode: Literal["cloud", "local"] = "cloud"
    region: Literal["us", "eu"] = Field("us", description="cloud: which YoLink server (US or EU)")
    uaid: str = Field(..., min_length=1, max_length=200, description=(
        "cloud: the UAID of the User Access Credentials (YoLink app: Account > Advanced Settings); "
        "local: the Local API client id"))
    secret_file: Path | None = Field(None, description=(
        "file holding the Secret Key (local: the client secret), mode 0600; default <data dir>/yolink-<name>.secret, "
        "written by `edge sources set-secret NAME`"))
    hub: str | None = Field(None, description="local: the Local Hub's address (API on :1080, broker on :18080)")
    net_id: str | None = Field(None, description="local: the hub's Sub-Net Id (YoLink app: Local Hub > Local Network)")
    api_url: str | None = Field(None, description="API base URL (default: by region, or http://<hub>:1080)")
    broker: str | None = Field(None, description="MQTT broker host:port (default: by region, or <hub>:18080)")
    backoff_initial_s: float = Field(2.0, gt=0, le=600)
    backoff_max_s: float = Field(300.0, gt=0, le=3600, description=(
        "YoLink allows 10 new connections per 5 minutes per credential: keep retries slow"))
    refresh_s: float = Field(3600.0, ge=60, le=86400, description="how often the device list is read again")

    @model_validator(mode="after")
    def _check(self) -> "YoLinkSource":
        problems: list[tuple[tuple[str, ...], str]] = []
        if self.mode == "local":
            if not self.net_id:
                problems.append((("net_id",), "mode 'local' needs the hub's Sub-Net Id (YoLink app: Local Hub > Local Network)"))
            if not self.hub and not (self.api_url and self.broker):
                problems.append((("hub",), "mode 'local' needs the Local Hub's address (or both api_url and broker)"))
        for key in ("api_url",):
            v = getattr(self, key)
            if v is not None and not re.match(r"^https?://[^/\s]+", v):
                problems.append(((key,), f"{v!r}: expected http(s)://host[:port]"))
        if self.broker is not None and not re.match(r"^[^:/\s]+:\d{1,5}$", self.broker):
            problems.append((("broker",), f"{self.broker!r}: expected host:port"))
        if problems:
            raise KeyProblem(problems)
        return self

    def base_url(self) -> str:
        if self.api_url:
            return self.api_url.rstrip("/")
        if self.mode == "local":
            return f"http://{self.hub}:{LOCAL_HUB_API_PORT}"
        return YOLINK_REGIONS[self.region][0]

    def broker_address(self) -> tuple[str, int]:
        b = self.broker or (f"{self.hub}:{LOCAL_HUB_MQTT_PORT}" if self.mode == "local" else YOLINK_REGIONS[self.region][1])
        host, _, port = b.rpartition(":")
        return host, int(port)

    def secret_path(self, data_dir: Path, name: str) -> Path:
        return self.secret_file or Path(data_dir) / f"yolink-{name}.secret"


class SensorConfig(Section):
    id: str = Field(..., description="stable id: lower-case letters, digits, _ and -")
    name: str = Field("", max_length=64)
    kind: Kind = "generic"
    source: Literal["mqtt", "gpio", "modbus", "yolink"] = "mqtt"
    # mqtt
    topic: str | None = None
    adapter: Literal["zigbee2mqtt", "zwave", "zwave_js_ui", "yolink", "generic"] = "zigbee2mqtt"
    device_id: str | None = Field(None, description="zwave/yolink: match the payload's deviceId (or zwave nodeId)")
    fields: dict[str, GenericField] = Field(default_factory=dict, description="generic adapter: field name -> path/map")
    # gpio / modbus
    gpio: GpioInput | None = None
    modbus: ModbusInput | None = None
    field: str | None = Field(None, description="gpio/modbus: which field the input sets (default: the kind's)")
    # yolink
    device: str | None = Field(None, max_length=200, description="yolink: the device's name in the YoLink app, or its deviceId")
    yolink: str | None = Field(None, description="yolink: which [yolink.NAME] (default: the only one)")
    # availability
    offline_after_s: float | None = Field(None, ge=0, le=30 * 86400, description=(
        "silent longer than this -> offline (default: the kind's; GPIO and Modbus inputs: 0 = not supervised)"))
    battery_low_pct: float | None = Field(None, ge=0, le=100, description="battery low at or below (default: the kind's)")
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
        elif self.source == "yolink" and not self.device:
            raise ValueError("source 'yolink' needs device = \"<its name in the YoLink app>\" (or its deviceId)")
        return self

    @property
    def expected_interval_s(self) -> float:
        """Silent longer than this -> offline; 0 = not supervised."""
        if self.offline_after_s is not None:
            return self.offline_after_s
        if self.source in ("gpio", "modbus"):
            return 0.0  # wired inputs report on change only; their line's errors show in health
        return self.kind_info.offline_after_s

    @property
    def battery_threshold(self) -> float:
        return self.battery_low_pct if self.battery_low_pct is not None else self.kind_info.battery_low_pct

    @property
    def kind_info(self) -> kinds.Kind:
        return kinds.get(self.kind)

    @property
    def primary_field(self) -> str:
        return self.field or self.kind_info.field

    @property
    def binary(self) -> bool:
        return self.kind_info.binary
