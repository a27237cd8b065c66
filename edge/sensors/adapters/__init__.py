"""Adapters: topic + payload -> the fields of a sensor reading. One module per source."""

from __future__ import annotations

from .base import Adapter, BadPayload, parse_json
from .generic import Generic
from .yolink import YoLink
from .zigbee2mqtt import Zigbee2Mqtt
from .zwave import ZWave
from .zwave_js_ui import ZWaveJsUi

ADAPTERS: dict[str, Adapter] = {a.name: a for a in (Zigbee2Mqtt(), ZWave(), ZWaveJsUi(), YoLink(), Generic())}

__all__ = ["ADAPTERS", "Adapter", "BadPayload", "parse_json"]
