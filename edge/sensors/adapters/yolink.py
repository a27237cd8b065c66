"""YoLink events, as the YoLink local hub / cloud MQTT API delivers them:

    {"event": "DoorSensor.Alert", "time": 1700000000000, "msgid": "...",
     "data": {"state": "open", "alertType": "openRemind", "battery": 4, "loraInfo": {"signal": -60}},
     "deviceId": "d88b4c01000000aa"}

The device type is the ``event`` prefix. ``battery`` is a 0-4 level (-> percent). A sensor's
``device_id`` selects its messages when several devices share a topic (yl-home/<home>/+/report).
"""

from __future__ import annotations

from typing import Any

from ..config import SensorConfig
from .base import BadPayload, as_number, require_object, stamped

_STATE_FIELD = {"DoorSensor": "contact", "MotionSensor": "occupancy", "LeakSensor": "water_leak",
                "VibrationSensor": "vibration", "THSensor": None, "COSmokeSensor": None}
# the sensor kinds each YoLink device type can be (a YoLink source checks the config against it)
KINDS_FOR_TYPE = {"DoorSensor": {"contact"}, "MotionSensor": {"motion"}, "LeakSensor": {"leak"},
                  "VibrationSensor": {"vibration"}, "THSensor": {"temperature", "humidity"},
                  "COSmokeSensor": {"smoke", "co"}}


def _alert_state(kind: str, s: Any) -> bool:
    if not isinstance(s, str):
        raise BadPayload(f"data.state: expected text for {kind}, got {type(s).__name__}", "type")
    s = s.lower()
    if s in ("alert", "full", "detected"):
        return True
    if s in ("normal", "dry", "ok", "nomotion"):
        return False
    raise BadPayload(f"data.state: unknown {kind} state {s[:30]!r}")


class YoLink:
    name = "yolink"
    needs_json = True

    @staticmethod
    def kinds_for(device_type: str) -> set[str] | None:
        """Kinds a device of this type can be configured as (None: a type this adapter does not read)."""
        k = KINDS_FOR_TYPE.get(device_type)
        return None if k is None else k | {"generic"}

    def decode(self, topic: str, data: Any, raw: bytes, sensor: SensorConfig) -> dict[str, Any] | None:
        obj = require_object(data)
        dev = obj.get("deviceId")
        if sensor.device_id is not None and dev != sensor.device_id:
            return None
        event = obj.get("event")
        if not isinstance(event, str) or "." not in event:
            raise BadPayload("no event like 'DoorSensor.Alert'")
        kind = event.split(".", 1)[0]
        if kind not in _STATE_FIELD:
            raise BadPayload(f"unsupported YoLink device type {kind[:30]!r}")
        d = obj.get("data")
        if not isinstance(d, dict):
            raise BadPayload("data: expected an object", "type")
        out: dict[str, Any] = {}
        state = d.get("state")
        if kind == "DoorSensor" and state is not None:
            if state not in ("open", "closed"):
                raise BadPayload(f"data.state: expected open/closed, got {str(state)[:30]!r}", "type")
            out["contact"] = state == "closed"
        elif kind == "COSmokeSensor" and state is not None:
            if isinstance(state, dict):
                if "smokeAlarm" in state:
                    out["smoke"] = bool(state["smokeAlarm"] is True)
                if "gasAlarm" in state:
                    out["co"] = bool(state["gasAlarm"] is True)
                if "highTempAlarm" in state:
                    out["heat"] = bool(state["highTempAlarm"] is True)
            else:
                out["smoke"] = _alert_state(kind, state)
        elif kind == "THSensor":
            if "temperature" in d:
                out["temperature"] = as_number("data.temperature", d["temperature"], -80, 200)
            if "humidity" in d:
                out["humidity"] = as_number("data.humidity", d["humidity"], 0, 100)
        elif state is not None:
            out[_STATE_FIELD[kind]] = _alert_state(kind, state)  # type: ignore[index]
        if "battery" in d and d["battery"] is not None:
            out["battery"] = int(as_number("data.battery", d["battery"], 0, 4)) * 25
        alert = d.get("alertType")
        if isinstance(alert, str) and alert:
            out["alert"] = alert[:32]
            if alert == "openRemind":
                out["open_remind"] = True
        lora = d.get("loraInfo")
        if isinstance(lora, dict) and "signal" in lora:
            out["signal"] = as_number("data.loraInfo.signal", lora["signal"], -200, 50)
        if not out:
            raise BadPayload(f"{event[:40]} carries no state this adapter reads")
        return stamped(out, obj.get("time"))  # when the hub sent the event (epoch ms)
