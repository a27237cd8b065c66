"""Z-Wave JS UI's MQTT gateway (the seed-001 JSON format is the ``zwave`` adapter).

Z-Wave JS UI publishes one topic per Z-Wave value, in one of two automatic layouts:

    named:    <prefix>/<?location>/<node name>/<class name>/<?endpoint_N>/<property>/<propertyKey>
              zwave/Hallway/Front_door/notification/endpoint_0/Access_Control/Door_state_simple
    value id: <prefix>/<?location>/<node id>/<cc>/<endpoint>/<property>/<propertyKey>
              zwave/Kitchen/7/113/0/Access_Control/Door_state

with a payload of ``{"time": ms, "value": v}`` (JSON Time-Value), the whole value id object
(``{"value": v, "unit": ...}``) or just the value. The node's status is
``<prefix>/<?location>/<node name>/status``: ``true``/``false``, or JSON with ``status``
``Alive``/``Awake``/``Asleep``/``Dead``.

A sensor's ``topic`` is either one value topic (its node's status topic is subscribed beside
it) or the node with a wildcard (``zwave/Hallway/Front_door/#``): every value this adapter
knows becomes a field (door -> ``contact``, motion -> ``occupancy``, battery level ->
``battery``, ...), other values of the node are ignored.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..availability import AVAILABLE
from ..config import SensorConfig
from .base import BadPayload, as_number, stamped

CLASS_NAMES = {"notification": 113, "alarm": 113, "sensor_binary": 48, "binary_sensor": 48, "sensor_multilevel": 49,
               "multilevel_sensor": 49, "battery": 128, "basic": 32, "switch_binary": 37, "binary_switch": 37}
NOTIFICATION, BINARY, MULTILEVEL, BATTERY = 113, 48, 49, 128
_NORM = re.compile(r"[^a-z0-9]+")

# Notification CC (113): (type, event) -> field and the values meaning True / False
NOTIFICATIONS: dict[tuple[str, str], tuple[str, frozenset[int], frozenset[int]]] = {
    # Access Control door state: 22 "Window/door is open", 23 "... is closed" (contact True = closed)
    ("access_control", "door_state"): ("contact", frozenset({23}), frozenset({22})),
    ("access_control", "door_state_simple"): ("contact", frozenset({23}), frozenset({22})),
    ("home_security", "motion_sensor_status"): ("occupancy", frozenset({7, 8}), frozenset({0})),
    ("home_security", "cover_status"): ("tamper", frozenset({3}), frozenset({0})),
    ("water_alarm", "sensor_status"): ("water_leak", frozenset({1, 2}), frozenset({0})),
    ("smoke_alarm", "sensor_status"): ("smoke", frozenset({1, 2}), frozenset({0})),
    ("co_alarm", "sensor_status"): ("co", frozenset({1, 2}), frozenset({0})),
}
# Binary Sensor CC (48) sensor types; True means triggered (a door: open)
BINARY_TYPES = {"door_window": "contact", "motion": "occupancy", "water": "water_leak", "smoke": "smoke", "co": "co",
                "tamper": "tamper", "general_purpose": None, "any": None}
MULTILEVEL_TYPES = {"air_temperature": ("temperature", -80, 200), "temperature": ("temperature", -80, 200),
                    "humidity": ("humidity", 0, 100), "illuminance": ("illuminance", 0, 1e6)}


def norm(level: str) -> str:
    return _NORM.sub("_", level.lower()).strip("_")


def split_value_topic(levels: list[str]) -> tuple[int, int, list[str]] | None:
    """(number of node levels, command class, property levels) of a value topic, else None."""
    for i in range(1, len(levels) - 2):  # value id layout: three numbers, node / cc / endpoint
        if levels[i].isdigit() and levels[i + 1].isdigit() and levels[i + 2].isdigit():
            return i + 1, int(levels[i + 1]), levels[i + 3:]
    for i in range(1, len(levels)):  # named layout: the first level that is a class name
        cc = CLASS_NAMES.get(levels[i].lower())
        if cc is not None:
            rest = levels[i + 1:]
            if rest and re.fullmatch(r"endpoint_\d+", rest[0]):
                rest = rest[1:]
            return i, cc, rest
    return None


def node_base(topic: str) -> str | None:
    if topic.endswith("/#"):
        return topic[:-2]
    levels = topic.split("/")
    found = split_value_topic(levels)
    return "/".join(levels[:found[0]]) if found else None


def payload_value(raw: bytes) -> tuple[Any, str]:
    """(value, unit) from a Time-Value, value id object or plain payload."""
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadPayload("not UTF-8 text", "parse") from None
    try:
        data = json.loads(text, parse_constant=lambda c: None)
    except (ValueError, RecursionError):
        return text[:64], ""  # "just value" with a string value
    if isinstance(data, dict):
        unit = data.get("unit")
        return data.get("value"), unit if isinstance(unit, str) else ""
    if isinstance(data, list):
        raise BadPayload("expected a value or {\"time\", \"value\"}, got a list", "type")
    return data, ""


def _int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
        raise BadPayload(f"{name}: expected a notification number, got {str(v)[:30]!r}", "type")
    return int(v)


def _bool(name: str, v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1, 255):
        return v != 0
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise BadPayload(f"{name}: expected true/false, got {str(v)[:30]!r}", "type")


def node_status(raw: bytes) -> tuple[bool, str]:
    value, _ = payload_value(raw)
    status = None
    try:
        data = json.loads(raw)
        if isinstance(data, dict) and isinstance(data.get("status"), str):
            status = data["status"]
    except ValueError:
        pass
    if status is not None:
        return status.lower() != "dead", f"z-wave node {status}"
    online = _bool("status", value)
    return online, "z-wave node " + ("ready" if online else "not ready")


def _time(raw: bytes) -> Any:
    """The ``time`` of a JSON Time-Value payload (epoch ms), when it is one."""
    if not raw.lstrip().startswith(b"{"):
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return data.get("time") if isinstance(data, dict) else None


class ZWaveJsUi:
    name = "zwave_js_ui"
    needs_json = False  # "just value" payloads are plain text

    def extra_topics(self, sensor: SensorConfig) -> list[str]:
        t = sensor.topic or ""
        if t.endswith("/#"):
            return []  # the node's status topic is under the filter
        base = node_base(t)
        return [base + "/status"] if base and "#" not in base else []

    def decode(self, topic: str, data: Any, raw: bytes, sensor: SensorConfig) -> dict[str, Any] | None:
        filt = sensor.topic or ""
        node = filt[:-2] if filt.endswith("/#") else None
        if topic.endswith("/status") and (topic != filt) and (node is None or topic.count("/") == node.count("/") + 1):
            return {AVAILABLE: node_status(raw)}
        if node is not None and topic.rsplit("/", 1)[-1] in ("lastActive", "nodeinfo", "status"):
            return None
        levels = topic.split("/")
        found = split_value_topic(levels)
        fields = self._value(found, raw, sensor) if found else None
        if fields is None and node is None:
            raise BadPayload(f"not a Z-Wave value this adapter reads ({'/'.join(levels[-3:])[:60]})")
        return stamped(fields, _time(raw)) if fields else fields


    def _value(self, found: tuple[int, int, list[str]], raw: bytes, sensor: SensorConfig) -> dict[str, Any] | None:
        _, cc, rest = found
        prop = [norm(p) for p in rest]
        if cc == NOTIFICATION and len(prop) >= 2:
            spec = NOTIFICATIONS.get((prop[0], prop[1]))
            if spec is None:
                return None
            field, on, off = spec
            value, _ = payload_value(raw)
            if value is None:
                return None
            n = _int(f"{rest[0]}/{rest[1]}", value)
            if n not in on and n not in off:
                if field == "contact":
                    raise BadPayload(f"{rest[1]}: unknown door state {n}", "range")
                return None  # another event of the same type (e.g. a motion location): not this field
            return {field: n in on}
        if cc == BINARY and prop:
            kind_field = sensor.primary_field
            field = BINARY_TYPES.get(prop[0], "?")
            if field == "?":
                return None
            field = field or kind_field
            value, _ = payload_value(raw)
            if value is None:
                return None
            b = _bool(rest[0], value)
            return {field: (not b) if field == "contact" else b}
        if cc == MULTILEVEL and prop:
            spec2 = MULTILEVEL_TYPES.get(prop[0])
            if spec2 is None:
                return None
            field, lo, hi = spec2
            value, unit = payload_value(raw)
            if value is None:
                return None
            x = float(as_number(rest[0], value, -1e6, 1e6))
            if field == "temperature" and unit.upper().lstrip("°") == "F":
                x = (x - 32) * 5 / 9
            return {field: round(float(as_number(rest[0], x, lo, hi)), 2)}
        if cc == BATTERY and prop:
            value, _ = payload_value(raw)
            if value is None:
                return None
            if prop[0] == "level":
                return {"battery": as_number("battery level", value, 0, 100)}
            if prop[0] == "islow":
                return {"battery_low": _bool("battery isLow", value)}
        return None

