"""Zigbee2MQTT: ``zigbee2mqtt/<friendly name>`` carries a JSON object of the device's exposes.

Names are Zigbee2MQTT's own (``contact`` true = closed, ``occupancy``, ``water_leak``, ...);
``carbon_monoxide`` becomes ``co``. Unknown keys (voltage, last_seen, update...) are ignored;
a message with none of the known keys does not match.

``zigbee2mqtt/<friendly name>/availability`` (when Zigbee2MQTT's availability feature is on) is
subscribed too: ``{"state": "online"|"offline"}``, or the legacy plain ``online``/``offline``.
"""

from __future__ import annotations

from typing import Any

from ..availability import AVAILABLE
from ..config import SensorConfig
from .base import BadPayload, as_bool, as_number, parse_json, require_object, stamped

BOOL_FIELDS = {"contact": "contact", "occupancy": "occupancy", "water_leak": "water_leak", "smoke": "smoke",
               "tamper": "tamper", "vibration": "vibration", "carbon_monoxide": "co", "battery_low": "battery_low"}
NUM_FIELDS = {"battery": ("battery", 0, 100), "linkquality": ("linkquality", 0, 255),
              "temperature": ("temperature", -80, 200), "humidity": ("humidity", 0, 100)}
AVAILABILITY = "/availability"


def availability(raw: bytes, data: Any) -> tuple[bool, str]:
    if data is None:
        text = raw.strip()[:64].decode("utf-8", "replace")
        if text in ("online", "offline"):
            return text == "online", f"zigbee2mqtt: {text}"
        data = parse_json(raw, 4096)
    state = require_object(data).get("state")
    if state not in ("online", "offline"):
        raise BadPayload(f"availability: expected state online/offline, got {str(state)[:30]!r}")
    return state == "online", f"zigbee2mqtt: {state}"


class Zigbee2Mqtt:
    name = "zigbee2mqtt"
    needs_json = False  # the legacy availability payload is plain text; device messages are parsed here

    def extra_topics(self, sensor: SensorConfig) -> list[str]:
        t = sensor.topic or ""
        return [] if ("+" in t or "#" in t or t.endswith(AVAILABILITY)) else [t + AVAILABILITY]

    def decode(self, topic: str, data: Any, raw: bytes, sensor: SensorConfig) -> dict[str, Any] | None:
        if topic != sensor.topic and topic.endswith(AVAILABILITY):
            return {AVAILABLE: availability(raw, data)}
        obj = require_object(data if data is not None else parse_json(raw))
        out: dict[str, Any] = {}
        for key, field in BOOL_FIELDS.items():
            if key in obj and obj[key] is not None:
                out[field] = as_bool(key, obj[key])
        for key, (field, lo, hi) in NUM_FIELDS.items():
            if key in obj and obj[key] is not None:
                out[field] = as_number(key, obj[key], lo, hi)
        if not out:
            raise BadPayload("no Zigbee2MQTT field this sensor knows (contact, occupancy, temperature, ...)")
        # ``last_seen`` when Zigbee2MQTT adds it (advanced.last_seen: ISO_8601, ISO_8601_local or
        # epoch): when the device last spoke, i.e. when this state is from
        return stamped(out, obj.get("last_seen"))
