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

from pydantic import Field, field_validator

from ..section import Section

_LEVEL = re.compile(r"^[^#+/\x00]{1,64}$")


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
