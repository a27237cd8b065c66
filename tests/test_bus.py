from __future__ import annotations

import asyncio

from edge.bus import Alarm, Bus, RelayChanged, SensorChanged


async def test_slow_subscriber_drops_and_counts_without_stalling_publisher():
    bus = Bus()
    slow = bus.subscribe(SensorChanged, maxsize=10, name="slow")
    for i in range(100):
        bus.publish(SensorChanged("s", {"n": i}, ("n",)))
    assert len(slow) == 10
    assert slow.dropped == 90 and bus.dropped == 90
    first = await slow.get()
    assert first.state["n"] == 90  # oldest dropped, newest kept


async def test_last_value_per_key_replayed_to_new_subscriber():
    bus = Bus()
    bus.publish(SensorChanged("door", {"contact": True}, ("contact",)))
    bus.publish(SensorChanged("door", {"contact": False}, ("contact",)))
    bus.publish(SensorChanged("leak", {"water_leak": False}, ("water_leak",)))
    bus.publish(RelayChanged("siren", True))
    sub = bus.subscribe(SensorChanged)
    got = [sub.get_nowait(), sub.get_nowait(), sub.get_nowait()]
    assert got[2] is None
    assert {(e.sensor, tuple(e.state.values())) for e in got[:2]} == {("door", (False,)), ("leak", (False,))}


async def test_type_filter_and_close():
    bus = Bus()
    sub = bus.subscribe(Alarm, replay=False)
    bus.publish(RelayChanged("siren", True))
    bus.publish(Alarm("door:open", "door", True, "open", "Front door open"))
    ev = await asyncio.wait_for(sub.get(), 1)
    assert isinstance(ev, Alarm)
    sub.close()
    assert bus.subscriber_count == 0


async def test_publish_threadsafe_from_another_thread():
    bus = Bus()
    bus.bind_loop(asyncio.get_running_loop())
    sub = bus.subscribe(RelayChanged)
    await asyncio.to_thread(bus.publish_threadsafe, RelayChanged("zone1", True))
    ev = await asyncio.wait_for(sub.get(), 1)
    assert ev.relay == "zone1"
