"""MQTT ingest as a sender sees it: a message is acknowledged once what it produced is
committed, a message the broker delivers again is recorded once, old news (stale or
retained) drives no relay, and a pulse asked for without a length lasts the relay's pulse_ms."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path

from edge.store.readers import query_events

from .sensor_helpers import publish, wait_for

TOML = """
[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "acks"
backoff_initial_s = 0.1
backoff_max_s = 0.5

[uplink]
device_id = "dev1"

[relays.boards.pi]
type = "gpio"

[relays.channels.strike]
board = "pi"
pin = 17
pulse_ms = 400

[[sensors]]
id = "door"
kind = "contact"
topic = "zigbee2mqtt/door"

[[sensors]]
id = "gate"
kind = "contact"
topic = "yolink/gate"
adapter = "yolink"

[[sensors]]
id = "seq"
kind = "generic"
topic = "gw/seq"
adapter = "generic"
fields.n = {{ path = "n" }}

[[rules]]
sensor = "door"
actions = [{{ pulse = "strike" }}, {{ alarm = "Door open" }}]

[[rules]]
sensor = "gate"
actions = [{{ pulse = "strike" }}]
"""


def pin_pulses(pin) -> list[float]:
    """Lengths (ms) of the pin's completed on-periods."""
    out, t_on = [], None
    for t, state in pin.history:
        if state:
            t_on = t
        elif t_on is not None:
            out.append((t - t_on) * 1000)
            t_on = None
    return out


def strike_pin(svc):
    relays = svc.component("relays")
    ch = relays.channels["strike"]
    return ch.board.pin(ch.index)


def events(db: Path, kind: str, source: str | None = None):
    return [e for e in query_events(db, limit=100_000) if e.kind == kind and (source is None or e.source == source)]


async def test_acknowledged_only_after_commit_while_the_relay_acts_at_once(mosquitto, service_factory, tmp_path):
    async with service_factory(TOML.format(port=mosquitto.port)) as svc:
        lane = svc.component("sensors").ingest.lanes[0]
        await wait_for(lambda: lane.connected, what="ingest connected")
        db = svc.ctx.store.path
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # the disk does not take the commit for now
        try:
            await publish(mosquitto.port, ("zigbee2mqtt/door", '{"contact": false}'))
            await wait_for(lambda: lane.received == 1, what="delivered")
            pin = strike_pin(svc)
            await wait_for(lambda: pin.state, 1, what="the relay acts without waiting for the disk")
            await asyncio.sleep(0.5)
            assert lane.acks.acked == 0 and len(lane.acks.pending) == 1, "acknowledged before its commit"
        finally:
            other.execute("ROLLBACK")
            other.close()
        await wait_for(lambda: lane.acks.acked == 1, 10, what="acknowledged once committed")
        assert [e.payload["changed"] for e in events(db, "state_change", "door")] == [{"contact": False}]
        assert [e.payload["active"] for e in events(db, "alarm", "door")] == [True]
        # a message that produces nothing (no sensor field in it) is acknowledged at once
        await publish(mosquitto.port, ("zigbee2mqtt/door", '{"nothing": 1}'))
        await wait_for(lambda: lane.acks.acked == 2, 2, what="acknowledged at once")


async def test_delivered_again_is_recorded_once(mosquitto, service_factory, tmp_path):
    """Committed but not acknowledged (a crash between the two): the broker delivers the
    messages again, DUP set, to the next run and after a reconnect; each is recorded once."""
    data = tmp_path / "data"
    toml = TOML.format(port=mosquitto.port)
    N = 15  # fewer than the broker's in-flight window (20): none waits for a PUBACK to be sent
    async with service_factory(toml, data_dir=data) as svc:
        lane = svc.component("sensors").ingest.lanes[1]  # the bulk lane: generic telemetry
        await wait_for(lambda: lane.connected, what="ingest connected")
        lane.acks._ack = lambda mid, qos: None  # the PUBACKs never leave (edge "dies" right after commit)
        await publish(mosquitto.port, *[("gw/seq", json.dumps({"n": i})) for i in range(N)])
        await wait_for(lambda: lane.received == N, what="delivered")
        await svc.ctx.store.flush()
        # the broker restarts: the same run reconnects and gets them again
        mosquitto.restart()
        await wait_for(lambda: lane.duplicates == N, 10, what="recognised after a reconnect")
        await svc.ctx.store.flush()
        db = svc.ctx.store.path
    assert sorted(e.payload["n"] for e in events(db, "sensor", "seq")) == list(range(N))
    # the next run: it knows them from the store
    async with service_factory(toml, data_dir=data) as svc:
        lane = svc.component("sensors").ingest.lanes[1]
        await wait_for(lambda: lane.duplicates == N, 10, what="recognised by the next run")
        await wait_for(lambda: lane.acks.acked == N and lane.connected, 5, what="and acknowledged")
        assert f"{N} duplicates" in svc.component("sensors").health().detail
    assert sorted(e.payload["n"] for e in events(db, "sensor", "seq")) == list(range(N))
    async with service_factory(toml, data_dir=data) as svc:  # acknowledged: nothing comes again
        lane = svc.component("sensors").ingest.lanes[1]
        await wait_for(lambda: lane.connected, what="ingest connected")
        await asyncio.sleep(0.5)
        assert lane.received == 0


def z2m(contact: bool, seen: float) -> str:
    iso = datetime.fromtimestamp(seen, timezone.utc).isoformat()
    return json.dumps({"contact": contact, "battery": 90, "last_seen": iso})


async def test_stale_news_is_recorded_and_fires_nothing(mosquitto, service_factory):
    async with service_factory(TOML.format(port=mosquitto.port)) as svc:
        await wait_for(lambda: svc.component("sensors").ingest.connected, what="ingest connected")
        pin = strike_pin(svc)
        db = svc.ctx.store.path
        # queued at a broker for 10 minutes: the door opened then
        old = time.time() - 600
        await publish(mosquitto.port, ("zigbee2mqtt/door", z2m(False, old)),
                      ("yolink/gate", json.dumps({"event": "DoorSensor.Alert", "time": int(old * 1000),
                                                  "data": {"state": "open"}, "deviceId": "x"})))
        await wait_for(lambda: svc.component("sensors").state("gate").get("contact") is False, what="gate state")
        await svc.ctx.store.flush()
        assert svc.component("sensors").state("door")["contact"] is False, "shown: the state is what it says"
        await asyncio.sleep(0.3)
        assert not pin.history or not any(s for _, s in pin.history), "stale news pulsed the strike"
        assert not [a for a in svc.component("rules").alarms.values() if a.active], "stale news raised an alarm"
        for sensor in ("door", "gate"):
            [change] = events(db, "state_change", sensor)
            assert change.payload["stale"] is True and 590 < change.payload["age_s"] < 700
            assert abs(change.ts - old) < 1, "the event carries the payload's own time"
            reading = events(db, "sensor", sensor)[-1]
            assert reading.payload["_stale"] is True and reading.payload["_age_s"] > 590
        skipped = [e.payload for e in events(db, "rule")]
        assert {(p["sensor"], p["action"]) for p in skipped} == {("door", "pulse"), ("door", "alarm"), ("gate", "pulse")}
        assert all("stale" in p["skipped"] for p in skipped)
        # fresh news acts: it closes, then opens now -> the strike pulses for its pulse_ms
        await publish(mosquitto.port, ("zigbee2mqtt/door", z2m(True, time.time())),
                      ("zigbee2mqtt/door", z2m(False, time.time())))
        await wait_for(lambda: pin_pulses(pin), 3, what="a fresh opening pulses the strike")
        assert abs(pin_pulses(pin)[0] - 400) <= 40, "{ pulse = \"strike\" } lasts the relay's pulse_ms"
        assert [a.active for a in svc.component("rules").alarms.values()] == [True]
        # an older message arriving after a newer one changes nothing
        await publish(mosquitto.port, ("zigbee2mqtt/door", z2m(True, time.time() - 30)))
        await asyncio.sleep(0.3)
        assert svc.component("sensors").state("door")["contact"] is False
        await svc.ctx.store.flush()
        [late] = [e for e in events(db, "sensor", "door") if e.payload.get("_late")]
        assert late.payload["contact"] is True and not late.payload.get("_stale")


async def test_retained_command_never_drives_a_relay_and_no_length_means_pulse_ms(mosquitto, service_factory):
    # retained commands wait at the broker for every new subscriber
    await publish(mosquitto.port, ("site/edge/dev1/cmd", '{"id": "r", "relay": "strike", "action": "pulse"}'),
                  ("site/edge/dev1/relay/strike/pulse", "PRESS"), retain=True)
    toml = TOML.format(port=mosquitto.port).replace('[uplink]\ndevice_id = "dev1"', '[uplink]\ndevice_id = "dev1"\nprefix = "site/edge"')
    async with service_factory(toml) as svc:
        uplink = svc.component("uplink")
        await wait_for(lambda: uplink.connected, what="uplink connected")
        await wait_for(lambda: uplink.retained_ignored == 2, 5, what="both retained commands seen")
        pin = strike_pin(svc)
        await asyncio.sleep(0.3)
        assert not any(s for _, s in pin.history), "a retained command pulsed the relay"
        # the same commands, live: pulses of the relay's own pulse_ms (400 ms)
        await publish(mosquitto.port, ("site/edge/dev1/cmd", '{"id": "1", "relay": "strike", "action": "pulse"}'))
        await wait_for(lambda: len(pin_pulses(pin)) == 1, 3, what="JSON pulse")
        await publish(mosquitto.port, ("site/edge/dev1/relay/strike/pulse", "PRESS"))
        await wait_for(lambda: len(pin_pulses(pin)) == 2, 3, what="Home Assistant PRESS")
        assert all(abs(ms - 400) <= 40 for ms in pin_pulses(pin)), pin_pulses(pin)
        await svc.ctx.store.flush()
        ignored = [e.payload for e in events(svc.ctx.store.path, "command") if not e.payload["ok"]]
        assert len(ignored) == 2 and all("retained" in p["error"] for p in ignored)
    await publish(mosquitto.port, ("site/edge/dev1/cmd", b""), ("site/edge/dev1/relay/strike/pulse", b""), retain=True)
