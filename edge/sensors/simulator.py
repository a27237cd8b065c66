"""Demo only (``edge demo``, on the simulated platform): realistic readings so the dashboard moves.

MQTT sensors get payloads in their adapter's own format published to the broker (so the
whole ingest path runs), GPIO inputs get their mock pins driven, Modbus inputs their
simulated bank set. Sensors that a rule wires to a relay are left to the user (they only get
one calm reading at start), so the front door is yours to open with mosquitto_pub.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import Any

import aiomqtt

from ..backoff import Backoff
from ..mqtt.client import make_client, raise_if_cancelling
from ..mqtt.config import MqttConfig
from .config import SensorConfig

log = logging.getLogger("edge.sensors.sim")

_YL_TYPE = {"contact": "DoorSensor", "motion": "MotionSensor", "leak": "LeakSensor", "vibration": "VibrationSensor",
            "smoke": "COSmokeSensor", "co": "COSmokeSensor", "temperature": "THSensor", "humidity": "THSensor"}
_ZW_LABEL = {"temperature": "Temperature", "humidity": "Humidity", "contact": "Door/Window", "motion": "Motion",
             "leak": "Water", "smoke": "Smoke", "co": "CO", "tamper": "Tamper", "vibration": "Vibration"}


class Simulator:
    def __init__(self, sensors: list[SensorConfig], mqtt: MqttConfig, identifier: str, hands_off: set[str],
                 gpio: Any = None, period_s: float = 3.0, ready: asyncio.Event | None = None, bank: Any = None):
        self.sensors = sensors
        self.mqtt = mqtt
        self.identifier = identifier
        self.hands_off = hands_off
        self.gpio = gpio
        self.bank = bank  # the simulated platform's Modbus input bank
        self.period_s = period_s
        self.ready = ready  # set once the ingest subscribed (its first readings are not lost)
        self.rng = random.Random()
        self.values: dict[str, Any] = {}
        self.published = 0

    # ---- the value model ------------------------------------------------------------
    @staticmethod
    def _numeric(s: SensorConfig) -> bool:
        return s.kind == "generic" and s.modbus is not None and s.modbus.table in ("holding", "input")

    def initial(self, s: SensorConfig) -> Any:
        if self._numeric(s):
            return round(self.rng.uniform(40, 60), 1)
        if s.kind == "temperature":
            return round(self.rng.uniform(19.5, 23.0), 1)
        if s.kind == "humidity":
            return round(self.rng.uniform(38, 55), 1)
        if s.kind == "contact":
            return True
        return False

    def step(self, s: SensorConfig, v: Any) -> Any:
        if self._numeric(s):
            return round(min(100.0, max(0.0, v + self.rng.uniform(-2.0, 2.0))), 1)
        if s.kind == "temperature":
            return round(min(30.0, max(12.0, v + self.rng.uniform(-0.3, 0.3))), 1)
        if s.kind == "humidity":
            return round(min(90.0, max(20.0, v + self.rng.uniform(-1.0, 1.0))), 1)
        if s.kind in ("contact", "motion", "vibration"):
            return not v
        # leaks, smoke, CO, tamper: rare, and back to normal soon
        return (not v) if (v or self.rng.random() < 0.1) else v

    # ---- payloads in each adapter's format ---------------------------------------------
    def payload(self, s: SensorConfig, v: Any) -> bytes | None:
        field = s.primary_field
        if s.adapter == "zigbee2mqtt":
            z2m = {"co": "carbon_monoxide"}.get(field, field)
            return json.dumps({z2m: v, "battery": 90 + self.rng.randint(0, 10), "linkquality": self.rng.randint(60, 200),
                               "voltage": 3000}).encode()
        if s.adapter == "zwave":
            label = _ZW_LABEL.get(s.kind)
            if label is None:
                return None
            if isinstance(v, bool):
                data = ("Closed" if v else "Open") if s.kind == "contact" else ("255" if v else "0")
            else:
                data = str(v)
            return json.dumps({"vendor": "demo", "version": "3.0.0", "timestampMs": str(int(time.time() * 1000)),
                               "clientType": "gateway", "deviceId": s.device_id or "demo-zwave", "deviceType": "sensor",
                               "protocol": "zwave", "messageType": "sensorData", "nodeId": "19",
                               "sensorType": "SENSOR MULTILEVEL" if not isinstance(v, bool) else "SENSOR BINARY",
                               "label": label, "sensorData": data, "units": "C" if s.kind == "temperature" else "%"}).encode()
        if s.adapter == "yolink":
            yt = _YL_TYPE.get(s.kind)
            if yt is None:
                return None
            data: dict[str, Any] = {"battery": 4, "loraInfo": {"signal": -self.rng.randint(40, 90)}}
            if yt == "DoorSensor":
                data.update(state="closed" if v else "open", alertType="normal")
            elif yt == "THSensor":
                data.update(state="normal", **{s.kind: v})
            elif yt == "COSmokeSensor":
                data["state"] = {"smokeAlarm": bool(v) and s.kind == "smoke", "gasAlarm": bool(v) and s.kind == "co",
                                 "unexpected": False, "sLowBattery": False}
            else:
                data["state"] = "alert" if v else "normal"
            return json.dumps({"event": f"{yt}.Report", "time": int(time.time() * 1000), "msgid": str(self.rng.getrandbits(40)),
                               "data": data, "deviceId": s.device_id or "demo-yolink"}).encode()
        return None

    # ---- driving ------------------------------------------------------------------------
    def _drive_local(self, s: SensorConfig, v: Any) -> None:
        if s.source == "gpio" and self.gpio is not None and s.id in self.gpio.devices and s.gpio is not None:
            normal = v if s.kind == "contact" else not v
            closed = normal == (s.gpio.normally == "closed")
            pin = self.gpio.pin(s.id)
            # with a pull-up the closed contact pulls the pin low
            (pin.drive_low if closed == s.gpio.pull_up else pin.drive_high)()
        elif s.source == "modbus" and s.modbus is not None and s.modbus.url is not None and self.bank is not None:
            m = s.modbus
            raw: Any = bool(v) != m.invert if isinstance(v, bool) else int(round((v - m.offset) / (m.scale or 1)))
            self.bank.set(m.url, m.table, m.address, raw)

    async def _send(self, client: aiomqtt.Client | None, s: SensorConfig, v: Any) -> None:
        self.values[s.id] = v
        if s.source == "mqtt":
            p = self.payload(s, v)
            topic = (s.topic or "").replace("+", s.device_id or "demo").replace("#", "report")
            if p is not None and client is not None and topic:
                await client.publish(topic, p, qos=1)
                raise_if_cancelling()
                self.published += 1
        else:
            self._drive_local(s, v)

    async def run(self) -> None:
        backoff = Backoff(0.5, 10)
        first = True
        if self.ready is not None:
            await self.ready.wait()
        while True:
            try:
                async with make_client(self.mqtt, self.identifier, clean_session=True) as client:
                    raise_if_cancelling()
                    backoff.reset()
                    if first:
                        for s in self.sensors:
                            await self._send(client, s, self.initial(s))
                        first = False
                    movable = [s for s in self.sensors if s.id not in self.hands_off]
                    while movable:
                        await asyncio.sleep(self.period_s * self.rng.uniform(0.5, 1.5))
                        s = self.rng.choice(movable)
                        await self._send(client, s, self.step(s, self.values.get(s.id, self.initial(s))))
                    await asyncio.Event().wait()
            except aiomqtt.MqttError as exc:
                log.debug("simulator: broker unavailable (%s)", exc)
            await asyncio.sleep(backoff.next())
