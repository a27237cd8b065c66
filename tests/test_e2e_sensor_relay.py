"""End to end: a Zigbee2MQTT contact message from an external client opens the door, pulses
the mapped relay on the simulated Modbus board, writes the events, and publishes the new
state; the door held open past its timer raises the door-prop alarm; closing clears both."""

from __future__ import annotations

import asyncio
import json
import time

from edge.store.readers import query_audit, query_events

from .sensor_helpers import publish, wait_for
from .test_uplink import Collector

TOML = """
[mqtt]
host = "127.0.0.1"
port = {port}
backoff_initial_s = 0.1
backoff_max_s = 1.0

[uplink]
device_id = "dev1"

[relays.boards.main]
type = "simulated"
profile = "waveshare-8"
port = 0

[relays.channels.siren]
board = "main"
channel = 2
mode = "pulse"
pulse_ms = 400

[[sensors]]
id = "front_door"
name = "Front door"
kind = "contact"
topic = "zigbee2mqtt/front_door"

[[rules]]
name = "front-door"
sensor = "front_door"
door_prop_s = 1.0
door_prop_message = "Front door held open"
actions = [{{ pulse = "siren", ms = 400 }}, {{ alarm = "Front door open", kind = "intrusion" }}]
"""


async def test_door_opens_siren_pulses_event_stored_state_published(mosquitto, service_factory):
    async with Collector(mosquitto.port, "edge/dev1/#") as col:
        async with service_factory(TOML.format(port=mosquitto.port)) as svc:
            ctx = svc.ctx
            board = svc.component("relays").sim_servers["main"].board
            await wait_for(lambda: svc.component("sensors").ingest.connected and svc.component("uplink").connected)
            t0 = time.monotonic()
            await publish(mosquitto.port, ("zigbee2mqtt/front_door", '{"contact":false,"battery":97,"linkquality":120}'))

            # the relay: channel 2 on the board goes on at once and off ~400 ms later (board-timed)
            await wait_for(lambda: [h for h in board.history if h[1] == 2 and not h[2]], timeout=5, what="pulse end")
            (t_on, _, on), (t_off, _, off) = [h for h in board.history if h[1] == 2][:2]
            assert on and not off
            assert t_on - t0 < 1.0, f"relay on {1000 * (t_on - t0):.0f} ms after the publish"
            assert 0.35 <= t_off - t_on <= 0.8

            # the new state and the alarm are published
            await wait_for(lambda: col.payloads("edge/dev1/sensor/front_door"), what="state published")
            assert col.payloads("edge/dev1/sensor/front_door")[-1]["contact"] is False
            await wait_for(lambda: [e for e in col.payloads("edge/dev1/event") if e["type"] == "alarm"], what="alarm event")
            assert [e for e in col.payloads("edge/dev1/event") if e["type"] == "alarm"][0]["alarm"] == "front_door:front-door"

            # held open past 1 s: the door-prop alarm, on the bus, in the store and out
            await wait_for(lambda: [e for e in col.payloads("edge/dev1/event") if e.get("kind") == "door_prop"],
                           timeout=5, what="door-prop alarm")
            prop = [e for e in col.payloads("edge/dev1/event") if e.get("kind") == "door_prop"][0]
            assert prop["active"] is True and prop["message"] == "Front door held open"
            assert prop["ts"] - prop["since"] < 0.1 and time.monotonic() - t0 >= 1.0

            # closing clears both alarms
            await publish(mosquitto.port, ("zigbee2mqtt/front_door", '{"contact":true}'))
            await wait_for(lambda: len([e for e in col.payloads("edge/dev1/event")
                                        if e["type"] == "alarm" and not e["active"]]) == 2, what="alarms cleared")
            await wait_for(lambda: col.payloads("edge/dev1/sensor/front_door")[-1]["contact"] is True, what="closed state")

            # everything is in the store
            await asyncio.sleep(0.1)
            await ctx.store.flush()
            path = ctx.store.path
            kinds = [(e.kind, e.source) for e in query_events(path, limit=None)]
            assert ("sensor", "front_door") in kinds and ("state_change", "front_door") in kinds
            rule = [e.payload for e in query_events(path, kind="rule")]
            assert len(rule) == 1 and rule[0]["ok"] is True and rule[0]["relay"] == "siren" and rule[0]["action"] == "pulse"
            assert rule[0]["latency_ms"] < 1000
            alarms = [(e.payload["alarm"], e.payload["active"]) for e in query_events(path, kind="alarm")]
            assert alarms == [("front_door:front-door", True), ("front_door:door_prop", True),
                              ("front_door:front-door", False), ("front_door:door_prop", False)]
            audit = query_audit(path, relay="siren")
            assert any("pulse" in a.command for a in audit)
            from edge.store.readers import get_state

            assert get_state(path, "front_door")["front_door"][0]["contact"] is True


async def test_relay_commands_over_mqtt_and_ha_discovery(mosquitto, service_factory):
    async with Collector(mosquitto.port, "edge/dev1/cmd/reply", "edge/dev1/relay/#", "homeassistant/#") as col:
        async with service_factory(TOML.format(port=mosquitto.port)) as svc:
            ctx = svc.ctx
            board = svc.component("relays").sim_servers["main"].board
            await wait_for(lambda: svc.component("uplink").connected)
            # Home Assistant sees the relay as a switch and a button on the device's topics
            await wait_for(lambda: any(t == "homeassistant/button/dev1/siren_pulse/config" for t, _, _ in col.msgs),
                           what="relay discovery")
            disc = {t: json.loads(p) for t, p, _ in col.msgs if t.startswith("homeassistant/")}
            assert disc["homeassistant/switch/dev1/siren/config"]["command_topic"] == "edge/dev1/relay/siren/set"
            assert disc["homeassistant/button/dev1/siren_pulse/config"]["command_topic"] == "edge/dev1/relay/siren/pulse"
            h0 = len(board.history)
            await publish(mosquitto.port, ("edge/dev1/cmd", '{"id": "p1", "relay": "siren", "action": "pulse", "ms": 200}'))
            await wait_for(lambda: col.payloads("edge/dev1/cmd/reply"), what="reply")
            reply = col.payloads("edge/dev1/cmd/reply")[0]
            assert reply["id"] == "p1" and reply["ok"] is True and reply["relay"] == "siren" and reply["ms"] == 200
            await wait_for(lambda: len([h for h in board.history[h0:] if h[1] == 2]) >= 2, what="the pulse on the board")
            on, off = [h for h in board.history[h0:] if h[1] == 2][:2]
            assert on[2] and not off[2] and 0.15 <= off[0] - on[0] <= 0.5
            # the relay's state goes out retained: ON then OFF
            await wait_for(lambda: [p for t, p, _ in col.msgs if t == "edge/dev1/relay/siren"][-2:] == [b"ON", b"OFF"],
                           what="relay state published")
            # the HA button pulses it too
            await publish(mosquitto.port, ("edge/dev1/relay/siren/pulse", "PRESS"))
            await wait_for(lambda: len(col.payloads("edge/dev1/cmd/reply")) == 2, what="second reply")
            assert col.payloads("edge/dev1/cmd/reply")[1]["ok"] is True
