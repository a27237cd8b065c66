"""Zigbee2MQTT: ``zigbee2mqtt/<friendly name>`` carries a JSON object of the device's exposes.

Names are Zigbee2MQTT's own (``contact`` true = closed, ``occupancy``, ``water_leak``, ...);
``carbon_monoxide`` becomes ``co``. Unknown keys (voltage, last_seen, update...) are ignored;
a message with none of the known keys does not match.
"""

from __future__ import annotations

from typing import Any

from ..config import SensorConfig
from .base import BadPayload, as_bool, as_number, payload_time, require_object

BOOL_FIELDS = {"contact": "contact", "occupancy": "occupancy", "water_leak": "water_leak", "smoke": "smoke",
               "tamper": "tamper", "vibration": "vibration", "carbon_monoxide": "co", "battery_low": "battery_low"}
NUM_FIELDS = {"battery": ("battery", 0, 100), "linkquality": ("linkquality", 0, 255),
              "temperature": ("temperature", -80, 200), "humidity": ("humidity", 0, 100)}


class Zigbee2Mqtt:
    name = "zigbee2mqtt"
    needs_json = True

    def sent_at(self, data: Any) -> float | None:
        """``last_seen`` when Zigbee2MQTT adds it (``advanced.last_seen``: ISO_8601,
        ISO_8601_local or epoch): when the device last spoke, i.e. when this state is from."""
        return payload_time(data.get("last_seen")) if isinstance(data, dict) else None

    def decode(self, topic: str, data: Any, raw: bytes, sensor: SensorConfig) -> dict[str, Any] | None:
        obj = require_object(data)
        out: dict[str, Any] = {}
        for key, field in BOOL_FIELDS.items():
            if key in obj and obj[key] is not None:
                out[field] = as_bool(key, obj[key])
        for key, (field, lo, hi) in NUM_FIELDS.items():
            if key in obj and obj[key] is not None:
                out[field] = as_number(key, obj[key], lo, hi)
        if not out:
            raise BadPayload("no Zigbee2MQTT field this sensor knows (contact, occupancy, temperature, ...)")
        return out
