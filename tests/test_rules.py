"""Rules: edges only, alarms on the bus, the door-prop timer, numeric thresholds."""

from __future__ import annotations

import asyncio

from edge.bus import Alarm, SensorReading

from .sensor_helpers import wait_for

TOML = """
[mqtt]
enabled = false

[[sensors]]
id = "front_door"
kind = "contact"
topic = "zigbee2mqtt/front_door"

[[sensors]]
id = "server_room"
kind = "temperature"
topic = "zwave/server_room"
adapter = "zwave"

[[rules]]
name = "door"
sensor = "front_door"
door_prop_s = 0.4
door_prop_message = "Front door held open"
actions = [{ alarm = "Front door open", kind = "intrusion" }]

[[rules]]
name = "hot"
sensor = "server_room"
above = 28
actions = [{ alarm = "Server room hot" }]
"""


async def test_door_alarm_and_door_prop_timer(service_factory):
    async with service_factory(TOML) as svc:
        sensors = svc.component("sensors")
        alarms: list[Alarm] = []
        sub = svc.ctx.bus.subscribe(Alarm, name="test")
        collector = asyncio.create_task(_collect(sub, alarms))

        def door(closed: bool) -> None:
            sensors.feed(SensorReading("front_door", {"contact": closed, "linkquality": 100}, source="mqtt"))

        door(True)
        door(False)  # opens
        await wait_for(lambda: alarms, what="door alarm")
        assert (alarms[0].alarm, alarms[0].active, alarms[0].kind, alarms[0].message) == \
            ("front_door:door", True, "intrusion", "Front door open")
        door(False)  # the same report again: nothing new
        sensors.feed(SensorReading("front_door", {"contact": False, "linkquality": 90}, source="mqtt"))
        await asyncio.sleep(0.1)
        assert len(alarms) == 1
        # held open past 0.4 s: its own alarm
        await wait_for(lambda: len(alarms) == 2, timeout=5, what="door-prop alarm")
        prop = alarms[1]
        assert (prop.alarm, prop.active, prop.kind, prop.message) == ("front_door:door_prop", True, "door_prop",
                                                                      "Front door held open")
        assert prop.ts - alarms[0].ts >= 0.39
        door(True)  # closes: both clear
        await wait_for(lambda: len(alarms) == 4, what="both alarms cleared")
        assert {(a.alarm, a.active) for a in alarms[2:]} == {("front_door:door", False), ("front_door:door_prop", False)}
        # opened and closed quickly: the prop timer never fires
        door(False)
        door(True)
        await asyncio.sleep(0.8)
        assert [a.alarm for a in alarms[4:]] == ["front_door:door", "front_door:door"]
        assert not any(a.kind == "door_prop" for a in alarms[4:])
        collector.cancel()
        sub.close()


async def test_threshold_rule_fires_on_crossing_only(service_factory):
    async with service_factory(TOML) as svc:
        sensors = svc.component("sensors")
        alarms: list[Alarm] = []
        sub = svc.ctx.bus.subscribe(Alarm, name="test")
        collector = asyncio.create_task(_collect(sub, alarms))
        for t in (25.0, 27.9, 28.5, 29.0, 30.1, 27.0, 26.0):
            sensors.feed(SensorReading("server_room", {"temperature": t}, source="mqtt"))
        await wait_for(lambda: len(alarms) == 2, what="raise and clear")
        await asyncio.sleep(0.1)
        assert [(a.alarm, a.active) for a in alarms] == [("server_room:hot", True), ("server_room:hot", False)]
        collector.cancel()
        sub.close()


async def _collect(sub, out: list) -> None:
    async for ev in sub:
        out.append(ev)
