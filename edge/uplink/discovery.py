"""Home Assistant MQTT discovery: every sensor a binary_sensor or sensor, every relay a
switch (set ON/OFF) and a button (pulse); all available via the device's last will."""

from __future__ import annotations

import json
from typing import Any, Iterable

from ..sensors.config import SensorConfig
from .topics import Topics



def _device(t: Topics, site: str) -> dict[str, Any]:
    return {"identifiers": [t.device], "name": site or t.device, "manufacturer": "edge", "model": "edge appliance"}


def _common(t: Topics, site: str, uid: str, name: str) -> dict[str, Any]:
    return {"name": name, "unique_id": uid, "object_id": uid, "availability_topic": t.availability,
            "payload_available": "online", "payload_not_available": "offline", "device": _device(t, site)}


def sensor_config(t: Topics, site: str, s: SensorConfig) -> tuple[str, dict[str, Any]]:
    uid = f"{t.device}_{s.id}".replace("-", "_")
    field = s.primary_field
    cfg = _common(t, site, uid, s.name)
    # available while edge is online AND the sensor itself reports (HA: availability_mode all)
    del cfg["availability_topic"], cfg["payload_available"], cfg["payload_not_available"]
    cfg["availability"] = [{"topic": t.availability}, {"topic": t.sensor_availability(s.id)}]
    cfg["availability_mode"] = "all"
    cfg["state_topic"] = t.sensor(s.id)
    kind = s.kind_info
    if s.binary:
        # HA's "on" means open / detected: on when the field has the kind's alarm value
        on = "true" if kind.alarm_value is True else "false"
        cfg.update(device_class=kind.ha_device_class, payload_on="ON", payload_off="OFF",
                   value_template="{{ 'ON' if (value_json.%s | string | lower) == '%s' else 'OFF' }}" % (field, on))
        comp = "binary_sensor"
    else:
        dc, unit = kind.ha_device_class, kind.unit or None
        cfg.update(value_template="{{ value_json.%s }}" % field, state_class="measurement")
        if dc:
            cfg["device_class"] = dc
        if unit or s.unit:
            cfg["unit_of_measurement"] = s.unit or unit
        comp = "sensor"
    return f"{comp}/{t.device}/{s.id}/config", {k: v for k, v in cfg.items() if v is not None}


def relay_configs(t: Topics, site: str, relay: str) -> list[tuple[str, dict[str, Any]]]:
    uid = f"{t.device}_{relay}".replace("-", "_")
    sw = _common(t, site, uid, relay.replace("_", " ").capitalize())
    sw.update(command_topic=t.relay_set(relay), state_topic=t.relay(relay), payload_on="ON", payload_off="OFF",
              state_on="ON", state_off="OFF")
    bt = _common(t, site, uid + "_pulse", relay.replace("_", " ").capitalize() + " pulse")
    bt.update(command_topic=t.relay_pulse(relay), payload_press="PRESS")
    return [(f"switch/{t.device}/{relay}/config", sw), (f"button/{t.device}/{relay}_pulse/config", bt)]


def discovery_messages(t: Topics, discovery_prefix: str, site: str, sensors: Iterable[SensorConfig],
                       relays: Iterable[str]) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for s in sensors:
        topic, cfg = sensor_config(t, site, s)
        out.append((f"{discovery_prefix}/{topic}", json.dumps(cfg).encode()))
    for r in relays:
        for topic, cfg in relay_configs(t, site, r):
            out.append((f"{discovery_prefix}/{topic}", json.dumps(cfg).encode()))
    return out
