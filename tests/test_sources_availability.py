"""Z-Wave JS UI on real-shaped payloads; sensor availability (silent -> offline, back on the next
message, bridges' own availability, battery low) on every surface and in rules; `edge sources check`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiomqtt
import pytest

from edge.bus import Alarm, SensorAvailability, SensorReading
from edge.dashboard.model import Dashboard
from edge.dashboard.render import Renderer
from edge.sensors.badpayload import BadPayloadReporter
from edge.sensors.config import SensorConfig
from edge.sensors.router import Router
from edge.setup.screens import sensors_screen
from edge.setup.views import MenuData, SensorView

from .peers import venv_bin
from .sensor_helpers import metric, publish, sensors_toml, wait_for

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "zwave_js_ui.json").read_text())


@pytest.mark.parametrize("msg", FIXTURES["messages"], ids=lambda m: m["topic"].split("/", 3)[-1])
def test_zwave_js_ui_value_topics(msg):
    got: list[SensorReading] = []
    s = SensorConfig(id="s", kind="contact", topic=msg["topic"], adapter="zwave_js_ui")
    bad = BadPayloadReporter(None)
    Router([s], got.append, bad).handle(msg["topic"], msg["payload"].encode())
    assert bad.total == 0 and [r.fields for r in got] == [msg["fields"]]


@pytest.mark.parametrize("st", FIXTURES["status"], ids=lambda s: s["payload"][:40])
def test_zwave_js_ui_node_status(st):
    seen: list[tuple[str, bool, str]] = []
    s = SensorConfig(id="door", kind="contact", topic="zwave/nodeID_7/notification/endpoint_0/Access_Control/Door_state_simple",
                     adapter="zwave_js_ui")
    r = Router([s], lambda _r: None, BadPayloadReporter(None), on_availability=lambda sid, ok, why, ts: seen.append((sid, ok, why)))
    assert "zwave/nodeID_7/status" in r.filters  # subscribed beside the value topic
    r.handle(st["topic"], st["payload"].encode())
    assert [(sid, ok) for sid, ok, _ in seen] == [("door", st["online"])]


TOML = """
[[sensors]]
id = "front_door"
kind = "contact"
topic = "zigbee2mqtt/front_door"
offline_after_s = 0.6

[[sensors]]
id = "hall_door"
kind = "contact"
adapter = "zwave_js_ui"
topic = "zwave/Hallway/hall_door/#"

[[sensors]]
id = "boiler"
kind = "temperature"
topic = "zigbee2mqtt/boiler"
offline_after_s = 0          # not supervised

[[rules]]
name = "door-silent"
sensor = "front_door"
when = "offline"
actions = [{ alarm = "Front door sensor silent" }]

[[rules]]
name = "door-battery"
sensor = "front_door"
when = "battery_low"
actions = [{ alarm = "Front door battery low" }]

[uplink]
device_id = "dev1"
"""


async def test_offline_after_interval_back_on_next_message_rules_and_surfaces(mosquitto, service_factory):
    async with service_factory(sensors_toml(mosquitto.port, TOML)) as svc:
        sensors = svc.component("sensors")
        av = sensors.availability
        alarms: list[Alarm] = []
        sub = svc.ctx.bus.subscribe(Alarm, name="test")
        collector = asyncio.create_task(_collect(sub, alarms))
        await wait_for(lambda: sensors.ingest.connected and svc.component("uplink").connected, what="connected")
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as ha:
            await ha.subscribe("edge/dev1/sensor/front_door/availability")
            await publish(mosquitto.port, ("zigbee2mqtt/front_door", '{"contact": true, "battery": 90}'))
            await wait_for(lambda: sensors.state("front_door").get("contact") is True, what="door state")
            # silent past 0.6 s: offline, the supervision alarm fires, HA sees the entity unavailable
            await wait_for(lambda: not av.current["front_door"].online, timeout=5, what="door offline")
            assert "silent for" in av.current["front_door"].reason and "expected every" in av.current["front_door"].reason
            await wait_for(lambda: any(a.alarm == "front_door:door-silent" and a.active for a in alarms), what="alarm")
            a = next(a for a in alarms if a.alarm == "front_door:door-silent")
            assert a.kind == "supervision" and a.message == "Front door sensor silent"
            assert await _next_payload(ha) in (b"online", b"offline")  # retained start state, then the change
            assert av.current["boiler"].online  # not supervised: never offline
            # ONVIF subscribers get it as an event of their own
            hub = svc.component("onvif").core.events
            assert hub.availability["front_door"] == (False, False)
            # back on its next message, the alarm clears; a low battery is its own condition
            await publish(mosquitto.port, ("zigbee2mqtt/front_door", '{"contact": true, "battery": 12}'))
            await wait_for(lambda: av.current["front_door"].online and av.current["front_door"].battery_low, what="online, low")
            await wait_for(lambda: any(x.alarm == "front_door:door-silent" and not x.active for x in alarms), what="cleared")
            await wait_for(lambda: any(x.alarm == "front_door:door-battery" and x.active for x in alarms), what="battery alarm")
            assert hub.availability["front_door"] == (True, True)
            # Zigbee2MQTT's own availability topic says offline at once
            await publish(mosquitto.port, ("zigbee2mqtt/front_door/availability", '{"state": "offline"}'))
            await wait_for(lambda: not av.current["front_door"].online, timeout=2, what="bridge offline")
            assert av.current["front_door"].reason == "zigbee2mqtt: offline"
            payloads = [await _next_payload(ha) for _ in range(3)]
            assert payloads[-1] == b"offline"
        # Z-Wave JS UI: a node watched with a wildcard; its status topic; garbage counted, survived
        await publish(mosquitto.port,
                      ("zwave/Hallway/hall_door/notification/endpoint_0/Access_Control/Door_state_simple",
                       '{"time": 1702654592227, "value": 22}'),
                      ("zwave/Hallway/hall_door/status", '{"time": 1702654592230, "value": false, "status": "Dead", "nodeId": 4}'))
        await wait_for(lambda: sensors.state("hall_door").get("contact") is False and not av.current["hall_door"].online,
                       what="hall door open, node dead")
        await publish(mosquitto.port,
                      ("zwave/Hallway/hall_door/notification/endpoint_0/Access_Control/Door_state_simple", "{not json"),
                      ("zwave/Hallway/hall_door/notification/endpoint_0/Access_Control/Door_state_simple",
                       '{"time": 1, "value": "open"}'),
                      ("zwave/Hallway/hall_door/notification/endpoint_0/Access_Control/Door_state_simple",
                       '{"time": 1, "value": 99}'),
                      ("zwave/Hallway/hall_door/configuration/endpoint_0/LED_mode", '{"time": 1, "value": 2}'),
                      ("zwave/Hallway/hall_door/notification/endpoint_0/Access_Control/Door_state_simple",
                       '{"time": 1702654599999, "value": 23}'))
        await wait_for(lambda: sensors.state("hall_door").get("contact") is True and av.current["hall_door"].online,
                       what="closed and alive again after the garbage")
        assert await metric(svc, "edge_sensor_bad_payloads_total", adapter="zwave_js_ui") == 3
        # every change is in the store's event log
        sub.close()
        collector.cancel()


async def _next_payload(client: aiomqtt.Client) -> bytes:
    async with asyncio.timeout(5):
        async for msg in client.messages:
            return bytes(msg.payload)  # type: ignore[arg-type]
    raise AssertionError("no message")


def test_dashboard_and_lcd_show_offline():
    s = SensorConfig(id="front_door", name="Front door", kind="contact", topic="t")
    d = Dashboard("Site", [s])
    assert d.apply(SensorAvailability("front_door", False, True, 1000.0, "silent for 2 h")) == "sensor"
    view = d.view().sensors[0]
    assert (view.online, view.battery_low, view.last_seen) == (False, True, 1000.0)
    img = Renderer(640, 360).render(d.view(), now=1000.0 + 7300)
    assert img.getpixel((600, 70))[:3] == (95, 100, 110)  # the tile is grey: OFFLINE, not a state colour
    data = MenuData(wall=lambda: 1060.0)
    data.sensors["front_door"] = SensorView("Front door", {"contact": True}, 1000.0, offline=True, battery_low=True)

    class _M:
        pass

    mm = _M()
    mm.data = data  # type: ignore[attr-defined]
    page = sensors_screen().pages(mm)[0]  # type: ignore[attr-defined]
    assert page.value.startswith("OFFLINE BATT 1m")


async def test_sources_check_cli(mosquitto, service_factory):
    toml = sensors_toml(mosquitto.port, TOML)
    async with service_factory(toml) as svc:
        await wait_for(lambda: svc.component("sensors").ingest.connected, what="connected")
        await publish(mosquitto.port, ("zigbee2mqtt/boiler", '{"temperature": 61.5}'))
        await wait_for(lambda: svc.component("sensors").state("boiler"), what="boiler")
        # never heard: offline once its 0.6 s are over (the service may be up faster than that)
        await wait_for(lambda: not svc.component("sensors").availability.current["front_door"].online, 5,
                       what="front_door offline")
        proc = await asyncio.create_subprocess_exec(venv_bin("edge"), "sources", "check", "--config", str(svc.ctx.config_path),
                                                    "--data-dir", str(svc.ctx.data_dir), stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        text = out.decode()
        assert f"connected to 127.0.0.1:{mosquitto.port}" in text, text + err.decode()
        boiler = next(line for line in text.splitlines() if line.startswith("boiler"))
        assert "mqtt:zigbee2mqtt" in boiler and "s ago" in boiler and "not supervised" in boiler
        door = next(line for line in text.splitlines() if line.startswith("front_door"))
        assert "OFFLINE" in door and "never" in door  # never heard, past its 0.6 s
        assert proc.returncode == 1  # something is offline: a script can tell


async def _collect(sub, out):
    async for ev in sub:
        out.append(ev)
