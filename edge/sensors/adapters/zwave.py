"""The Z-Wave gateway JSON message (seed 001): one reading per message.

    {"deviceId": "...", "deviceType": "sensor", "protocol": "zwave", "messageType": "sensorData",
     "nodeId": "19", "sensorType": "SENSOR MULTILEVEL", "label": "Temperature",
     "sensorData": "26.1", "units": "C", ...}

``label`` picks the field, ``sensorData`` (a string) is its value, ``units`` converts F to C.
Camera messages (``deviceType`` camera) carry ``messageType`` deviceState with
``deviceState`` streamingOn/streamingOff (-> ``streaming``), or sensorData from the camera's
motion detector (-> ``occupancy``). ``preview`` and ``command`` messages are not readings.
A sensor's ``device_id`` matches the message's deviceId or nodeId.
"""

from __future__ import annotations

import re
from typing import Any

from ..config import SensorConfig
from .base import BadPayload, as_number, require_object, stamped

LABELS: dict[str, tuple[str, str]] = {
    # label (lower case) -> (field, type)
    "temperature": ("temperature", "temp"),
    "air temperature": ("temperature", "temp"),
    "humidity": ("humidity", "pct"),
    "relative humidity": ("humidity", "pct"),
    "battery": ("battery", "pct"),
    "luminance": ("illuminance", "num"),
    "illuminance": ("illuminance", "num"),
    "power": ("power", "num"),
    "energy": ("energy", "num"),
    "door/window": ("contact", "contact"),
    "access control": ("contact", "contact"),
    "contact": ("contact", "contact"),
    "motion": ("occupancy", "bool"),
    "motion sensor": ("occupancy", "bool"),
    "home security": ("occupancy", "bool"),
    "water": ("water_leak", "bool"),
    "water alarm": ("water_leak", "bool"),
    "flood": ("water_leak", "bool"),
    "smoke": ("smoke", "bool"),
    "smoke alarm": ("smoke", "bool"),
    "co": ("co", "bool"),
    "carbon monoxide": ("co", "bool"),
    "co alarm": ("co", "bool"),
    "tamper": ("tamper", "bool"),
    "vibration": ("vibration", "bool"),
}
_ON = {"on", "true", "1", "255", "alarm", "alert", "detected", "motion detected", "active", "open"}
_OFF = {"off", "false", "0", "idle", "clear", "normal", "inactive", "closed", "no event"}
_SLUG = re.compile(r"[^a-z0-9]+")


def _text(obj: dict[str, Any], key: str) -> str | None:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, (str, int, float)) and not isinstance(v, bool):
        return str(v)
    raise BadPayload(f"{key}: expected text, got {type(v).__name__}", "type")


def _state_bool(label: str, v: Any) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in _ON:
        return True
    if s in _OFF:
        return False
    raise BadPayload(f"{label}: cannot read {str(v)[:30]!r} as on/off", "type")


class ZWave:
    name = "zwave"
    needs_json = True

    def decode(self, topic: str, data: Any, raw: bytes, sensor: SensorConfig) -> dict[str, Any] | None:
        # ``timestampMs``: when the gateway made the message (epoch ms, as text)
        return stamped(self._fields(data, sensor), data.get("timestampMs") if isinstance(data, dict) else None)

    def _fields(self, data: Any, sensor: SensorConfig) -> dict[str, Any] | None:
        obj = require_object(data)
        if sensor.device_id is not None and sensor.device_id not in (_text(obj, "deviceId"), _text(obj, "nodeId")):
            return None
        mtype = _text(obj, "messageType")
        if mtype is None:
            raise BadPayload("no messageType")
        if mtype in ("preview", "command"):
            return None
        dtype = (_text(obj, "deviceType") or "sensor").lower()
        if mtype == "deviceState":
            state = _text(obj, "deviceState")
            if state is None:
                raise BadPayload("deviceState message without deviceState")
            if state in ("streamingOn", "streamingOff"):
                return {"streaming": state == "streamingOn"}
            return {"device_state": state[:64]}
        if mtype != "sensorData":
            raise BadPayload(f"unknown messageType {mtype[:30]!r}")
        label = _text(obj, "label")
        value = obj.get("sensorData")
        if value is None:
            raise BadPayload("sensorData message without sensorData")
        if isinstance(value, (dict, list)):
            raise BadPayload(f"sensorData: expected a value, got {type(value).__name__}", "type")
        if dtype == "camera" and label is None:
            return {"occupancy": _state_bool("sensorData", value)}
        if label is None:
            raise BadPayload("sensorData message without label")
        field, typ = LABELS.get(label.strip().lower(), (_SLUG.sub("_", label.strip().lower()).strip("_")[:32] or "value", "num"))
        units = (_text(obj, "units") or "").strip().upper()
        if typ == "temp":
            t = float(as_number(label, value, -200, 400))
            if units in ("F", "°F", "FAHRENHEIT"):
                t = (t - 32) * 5 / 9
            return {field: round(t, 2)}
        if typ == "pct":
            return {field: as_number(label, value, 0, 100)}
        if typ == "num":
            return {field: as_number(label, value)}
        b = _state_bool(label, value)
        if typ == "contact":
            # the gateway reports the alarm sense ("open"/255 = open); contact True = closed
            return {"contact": not b}
        return {field: b}
