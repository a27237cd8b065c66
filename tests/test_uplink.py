"""State out through the SQLite outbox: retained states, events in order, HA discovery,
availability by last will, commands in; a 60 s broker outage and a service restart lose
nothing and keep the order."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import aiomqtt

from edge.bus import SensorReading

from .peers import free_port, wait_port
from .sensor_helpers import publish, sensors_toml, wait_for

OUTAGE_S = float(__import__("os").environ.get("EDGE_TEST_OUTAGE_S", "60"))

SENSORS = """
[uplink]
device_id = "dev1"
prefix = "site/edge"
telemetry_interval_s = 0  # every change goes through the outbox (the guarantee under test)

[[sensors]]
id = "front_door"
kind = "contact"
topic = "zigbee2mqtt/front_door"

[[sensors]]
id = "boiler"
kind = "temperature"
topic = "zigbee2mqtt/boiler"

[[sensors]]
id = "counter"
kind = "generic"
topic = "plant/counter"
adapter = "generic"
fields.value = { path = "." }
"""


class Collector:
    """An external MQTT client that records what it receives (persistent session if asked)."""

    def __init__(self, port: int, *filters: str, identifier: str | None = None):
        self.port = port
        self.filters = filters
        self.identifier = identifier
        self.msgs: list[tuple[str, bytes, bool]] = []
        self.task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, identifier=self.identifier,
                                          clean_session=False if self.identifier else None) as c:
                    for f in self.filters:
                        await c.subscribe(f, qos=1)
                    self.connected.set()
                    async for m in c.messages:
                        self.msgs.append((m.topic.value, bytes(m.payload), bool(m.retain)))
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.1)

    async def __aenter__(self) -> "Collector":
        self.task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.connected.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def payloads(self, topic: str) -> list[dict]:
        return [json.loads(p) for t, p, _ in self.msgs if t == topic]

    def events(self, **match: object) -> list[dict]:
        return [e for e in self.payloads("site/edge/dev1/event") if all(e.get(k) == v for k, v in match.items())]


def counter_values(col: Collector) -> list[float]:
    """The counter's state messages as published (a re-subscribe also re-sends the retained
    copy of the latest one, flagged retained: not a second publication)."""
    return [json.loads(p)["value"] for t, p, retained in col.msgs if t == "site/edge/dev1/sensor/counter" and not retained]


async def test_states_events_discovery_and_availability(mosquitto, service_factory):
    async with Collector(mosquitto.port, "site/edge/dev1/#", "homeassistant/#") as col:
        async with service_factory(sensors_toml(mosquitto.port, SENSORS)) as svc:
            await wait_for(lambda: svc.component("uplink").connected and svc.component("sensors").ingest.connected)
            await publish(mosquitto.port, ("zigbee2mqtt/front_door", '{"contact": false, "battery": 90}'),
                          ("zigbee2mqtt/boiler", '{"temperature": 61.5}'))
            await wait_for(lambda: col.payloads("site/edge/dev1/sensor/boiler") and col.payloads("site/edge/dev1/sensor/front_door"),
                           what="boiler and door states")
            door = col.payloads("site/edge/dev1/sensor/front_door")[-1]
            assert door["contact"] is False and door["battery"] == 90 and door["ts"] > 0
            # HA discovery: a door binary_sensor and a temperature sensor, both with availability
            disc = {t: json.loads(p) for t, p, _ in col.msgs if t.startswith("homeassistant/")}
            door_cfg = disc["homeassistant/binary_sensor/dev1/front_door/config"]
            assert door_cfg["device_class"] == "door"
            assert door_cfg["state_topic"] == "site/edge/dev1/sensor/front_door"
            # available while edge is online and the sensor itself reports
            assert door_cfg["availability"] == [{"topic": "site/edge/dev1/availability"},
                                                {"topic": "site/edge/dev1/sensor/front_door/availability"}]
            assert door_cfg["availability_mode"] == "all"
            await wait_for(lambda: [p for t, p, _ in col.msgs if t == "site/edge/dev1/sensor/front_door/availability"],
                           what="the door's own availability")
            assert [p for t, p, _ in col.msgs if t == "site/edge/dev1/sensor/front_door/availability"][-1] == b"online"
            boiler_cfg = disc["homeassistant/sensor/dev1/boiler/config"]
            assert boiler_cfg["device_class"] == "temperature" and boiler_cfg["unit_of_measurement"] == "°C"
            assert [p for t, p, _ in col.msgs if t == "site/edge/dev1/availability"][-1] == b"online"
        # a fresh subscriber sees the retained state and availability
    async with Collector(mosquitto.port, "site/edge/dev1/sensor/#", "site/edge/dev1/availability") as late:
        await wait_for(lambda: len(late.msgs) >= 3, what="retained messages")
        retained = {t: p for t, p, r in late.msgs if r}
        assert json.loads(retained["site/edge/dev1/sensor/boiler"])["temperature"] == 61.5
        assert json.loads(retained["site/edge/dev1/sensor/front_door"])["contact"] is False
        assert retained["site/edge/dev1/availability"] == b"offline"  # said so on a clean stop


class Proxy:
    """socat between the service and the broker: killing it drops the TCP connection the way
    a power cut or a dead link does (no MQTT DISCONNECT), so the broker publishes the will."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([shutil.which("socat") or "/usr/bin/socat",
                                      f"TCP-LISTEN:{self.port},bind=127.0.0.1,fork,reuseaddr",
                                      f"TCP:127.0.0.1:{self.target}"], start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port("127.0.0.1", self.port)

    def kill(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None


async def test_last_will_marks_offline(mosquitto, service_factory):
    proxy = Proxy(mosquitto.port)
    proxy.start()
    try:
        async with Collector(mosquitto.port, "site/edge/dev1/availability") as col:
            async with service_factory(sensors_toml(proxy.port, SENSORS)) as svc:
                up = svc.component("uplink")
                await wait_for(lambda: up.connected)
                await wait_for(lambda: col.msgs and col.msgs[-1][1] == b"online", what="online")
                proxy.kill()  # the link dies under the service: no DISCONNECT reaches the broker
                await wait_for(lambda: col.msgs[-1][1] == b"offline", what="offline by last will", timeout=10)
                assert col.msgs[-1][2] is False  # live will delivery (retained flag not set on live messages)
                proxy.start()
                await wait_for(lambda: col.msgs[-1][1] == b"online", what="online again", timeout=15)
    finally:
        proxy.kill()


async def test_commands_and_malformed_commands(mosquitto, service_factory):
    async with Collector(mosquitto.port, "site/edge/dev1/cmd/reply") as col:
        async with service_factory(sensors_toml(mosquitto.port, SENSORS)) as svc:
            await wait_for(lambda: svc.component("uplink").connected)
            await publish(mosquitto.port,
                          ("site/edge/dev1/cmd", b"\xff not json"),
                          ("site/edge/dev1/cmd", '{"id": "a", "relay": "siren", "action": "explode"}'),
                          ("site/edge/dev1/cmd", '{"id": "b", "relay": "siren", "action": "pulse", "ms": -5}'),
                          ("site/edge/dev1/cmd", '{"id": "c", "relay": "no_such_relay", "action": "pulse", "ms": 100}'),
                          ("site/edge/dev1/relay/no_such_relay/set", "MAYBE"))
            await wait_for(lambda: len(col.msgs) >= 5, what="5 replies")
            replies = [json.loads(p) for _, p, _ in col.msgs]
            assert all(r["ok"] is False and r["error"] for r in replies)
            by_id = {r.get("id"): r for r in replies}
            assert "not JSON" in replies[0]["error"]
            assert "action" in by_id["a"]["error"]
            assert "ms" in by_id["b"]["error"]
            assert by_id["c"]["relay"] == "no_such_relay"
            assert svc.component("uplink").connected  # none of it hurt the connection


async def _count_changes(svc, n: int, start: int = 0, pause: float = 0.0) -> None:
    sensors = svc.component("sensors")
    for i in range(start, start + n):
        # a local input (GPIO/Modbus) keeps changing while the broker is away
        sensors.feed(SensorReading("counter", {"value": float(i)}, source="modbus"))
        if pause:
            await asyncio.sleep(pause)


async def test_broker_outage_loses_nothing_and_keeps_order(mosquitto, service_factory):
    async with Collector(mosquitto.port, "site/edge/dev1/sensor/counter", identifier="outage-collector") as col:
        async with service_factory(sensors_toml(mosquitto.port, SENSORS)) as svc:
            up = svc.component("uplink")
            await wait_for(lambda: up.connected)
            await _count_changes(svc, 20)
            await wait_for(lambda: len(counter_values(col)) == 20, what="first 20 events")
            # let the collector's own PUBACKs reach the broker: a QoS 1 message the broker has not
            # seen acknowledged is rightly sent to it again after the restart (not the uplink's doing)
            await asyncio.sleep(0.5)
            mosquitto.stop()
            await wait_for(lambda: not up.connected, what="uplink notices the outage")
            t0 = time.monotonic()
            # sensors keep changing through the whole outage
            n_during = 0
            while time.monotonic() - t0 < OUTAGE_S:
                await _count_changes(svc, 10, start=20 + n_during)
                n_during += 10
                await asyncio.sleep(1.0)
            from edge.store.readers import outbox_count

            await svc.ctx.store.flush()
            assert outbox_count(svc.ctx.store.path) >= n_during  # one state message per change waits on disk
            mosquitto.start()
            total = 20 + n_during
            await wait_for(lambda: len(counter_values(col)) >= total, timeout=30, what=f"all {total} events")
            await asyncio.sleep(1.0)  # anything duplicated would arrive now
            assert counter_values(col) == [float(i) for i in range(total)]  # each once, in order
            await svc.ctx.store.flush()
            await wait_for(lambda: outbox_count(svc.ctx.store.path) == 0, what="outbox drained")


async def test_restart_with_waiting_messages_loses_none(mosquitto, service_factory, tmp_path: Path):
    data = tmp_path / "svc"
    dead = free_port()  # nothing listens here: the uplink cannot deliver
    async with service_factory(sensors_toml(dead, SENSORS), data_dir=data) as svc:
        await _count_changes(svc, 50)
    # the service stopped with 50 messages in its outbox; it comes back with the broker reachable
    async with Collector(mosquitto.port, "site/edge/dev1/sensor/counter") as col:
        async with service_factory(sensors_toml(mosquitto.port, SENSORS), data_dir=data) as svc:
            await wait_for(lambda: len(counter_values(col)) >= 50, timeout=20, what="the 50 waiting events")
            await asyncio.sleep(0.5)
            assert counter_values(col) == [float(i) for i in range(50)]
            states = col.payloads("site/edge/dev1/sensor/counter")
            assert states[-1]["value"] == 49.0


async def test_telemetry_states_are_paced_state_changes_are_not(mosquitto, service_factory):
    toml = sensors_toml(mosquitto.port, SENSORS).replace("telemetry_interval_s = 0", "telemetry_interval_s = 0.5")
    async with Collector(mosquitto.port, "site/edge/dev1/sensor/#") as col:
        async with service_factory(toml) as svc:
            await wait_for(lambda: svc.component("uplink").connected)
            sensors = svc.component("sensors")
            for i in range(20):  # a chatty thermometer
                sensors.feed(SensorReading("boiler", {"temperature": 60.0 + i}, source="mqtt"))
            sensors.feed(SensorReading("front_door", {"contact": False}, source="mqtt"))
            await wait_for(lambda: col.payloads("site/edge/dev1/sensor/front_door"), what="door state at once")
            t_door = time.monotonic()
            await wait_for(lambda: len(col.payloads("site/edge/dev1/sensor/boiler")) == 2, what="latest boiler state")
            assert time.monotonic() - t_door >= 0.3  # held for its interval
            assert [p["temperature"] for p in col.payloads("site/edge/dev1/sensor/boiler")] == [60.0, 79.0]
            await asyncio.sleep(0.8)
            assert len(col.payloads("site/edge/dev1/sensor/boiler")) == 2
