"""``[uplink]``: state and events out to the broker of ``[mqtt]``, Home Assistant discovery,
commands in. It runs when the config has an ``[mqtt]`` or ``[uplink]`` section (and neither
says ``enabled = false``). Topics (prefix and device id configurable):

    <prefix>/<device>/availability        online / offline (retained; offline is the last will)
    <prefix>/<device>/sensor/<id>         the sensor's state, JSON (retained)
    <prefix>/<device>/sensor/<id>/availability  online / offline: the sensor itself (retained)
    <prefix>/<device>/relay/<name>        ON / OFF (retained)
    <prefix>/<device>/relay/<name>/set    command in: ON / OFF       (Home Assistant switch)
    <prefix>/<device>/relay/<name>/pulse  command in: PRESS or ms    (Home Assistant button)
    <prefix>/<device>/event               every event, JSON, in order
    <prefix>/<device>/cmd                 command in, JSON {"id", "relay", "action": pulse|set, "ms", "on"}
    <prefix>/<device>/cmd/reply           the outcome of each command, JSON
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ..section import Section

_LEVEL = re.compile(r"^[^#+/\x00]{1,64}$")


_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+)(:\d{1,5})?$")


class BridgeTls(Section):
    """TLS to the central broker, the device authenticated by its own certificate."""

    ca_file: Path = Field(Path("/var/lib/mosquitto/uplink/ca.crt"), description="CA that signed the central broker's certificate")
    cert_file: Path | None = Field(Path("/var/lib/mosquitto/uplink/device.crt"), description="this device's certificate (client auth)")
    key_file: Path | None = Field(Path("/var/lib/mosquitto/uplink/device.key"), description="its private key (readable by the mosquitto user only)")
    insecure: bool = Field(False, description="skip the broker hostname check (test brokers only)")


class BridgeConfig(Section):
    """``[uplink.bridge]``: the appliance's Mosquitto forwards this device's uplink topics to a
    central broker or cluster (any MQTT 3.1.1/5 broker), remapped under
    ``<site_prefix>/<site_id>/``, with a persistent queue while the central side is away.
    edge writes the Mosquitto bridge config (``edge uplink bridge-config``); see
    image-build/README.md, "Fleet uplink"."""

    enabled: bool = True
    addresses: list[str] = Field(..., min_length=1, max_length=16, description=(
        "central broker(s), host:port, in order of preference (failover; back to the first when it returns)"))
    round_robin: bool = Field(False, description="true: stay on whichever address answered instead of returning to the first")
    site_prefix: str = Field("site", description="first topic level(s) on the central broker")
    site_id: str = Field("", description="this device's level under site_prefix; default: its serial")
    tls: BridgeTls | None = Field(default_factory=BridgeTls, description="TLS settings; tls = false only on a trusted network")
    username: str | None = None
    password_file: Path | None = Field(None, description="password for username, read when the bridge config is written")
    protocol: Literal["mqttv311", "mqttv50"] = "mqttv311"
    try_private: bool = Field(False, description="Mosquitto-to-Mosquitto bridge flag; some other brokers refuse it")
    keepalive_s: int = Field(60, ge=5, le=3600)
    restart_min_s: int = Field(5, ge=1, le=3600, description="reconnect backoff: first wait")
    restart_max_s: int = Field(60, ge=1, le=3600, description="reconnect backoff: longest wait")
    queue_max_messages: int = Field(100_000, ge=100, le=10_000_000, description=(
        "messages kept for the central broker while it is away (the oldest are dropped beyond it)"))
    autosave_s: int = Field(60, ge=1, le=86_400, description=(
        "the broker writes its queue to disk this often (and at every clean stop)"))
    output: Path = Field(Path("/etc/mosquitto/conf.d/edge-uplink-bridge.conf"), description="where the bridge config is written")

    @field_validator("tls", mode="before")
    @classmethod
    def _no_tls(cls, v: object) -> object:
        return None if v is False else v

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        for a in v:
            if not _ADDRESS.match(a) or (":" in a.rsplit("]", 1)[-1] and not 0 < int(a.rsplit(":", 1)[1]) < 65536):
                raise ValueError(f"address {a!r}: expected host or host:port (port 1..65535)")
        return v

    @field_validator("site_prefix")
    @classmethod
    def _site_prefix(cls, v: str) -> str:
        if not v or any(not _LEVEL.match(p) for p in v.split("/")):
            raise ValueError("topic prefix: non-empty levels without '#', '+'")
        return v

    @field_validator("site_id")
    @classmethod
    def _site_id(cls, v: str) -> str:
        if v and (not _LEVEL.match(v) or " " in v):
            raise ValueError("site_id: one topic level without '/', '#', '+' or spaces")
        return v


class UplinkConfig(Section):
    enabled: bool = True
    prefix: str = Field("edge", description="first topic level(s), e.g. 'edge' or 'site1/edge'")
    device_id: str = Field("", description="device id in topics; default edge-<serial>")
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    batch: int = Field(50, ge=1, le=10_000, description="outbox messages published per round")
    telemetry_interval_s: float = Field(1.0, ge=0, le=3600, description=(
        "a sensor whose change is numeric telemetry only (temperature, battery, linkquality) has its state "
        "published at most this often (the latest one); a state field change (contact, motion...) always "
        "goes out at once, in order. 0 = every change"))
    bridge: BridgeConfig | None = Field(None, description="fleet uplink: the appliance broker's bridge to a central broker")

    @field_validator("prefix", "discovery_prefix")
    @classmethod
    def _topic(cls, v: str) -> str:
        if not v or any(not _LEVEL.match(p) for p in v.split("/")):
            raise ValueError("topic prefix: non-empty levels without '#', '+'")
        return v

    @field_validator("device_id")
    @classmethod
    def _dev(cls, v: str) -> str:
        if v and not _LEVEL.match(v):
            raise ValueError("device_id: one topic level without '/', '#', '+'")
        return v
