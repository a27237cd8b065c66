"""ONVIF PullPoint events with the real client (onvif-zeep-async): bus alarms and relay
changes become DigitalInput / MotionAlarm / Relay notifications, Initialized then Changed;
subscriptions renew, end, expire and are bounded; the long poll is capped."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
import zeep.exceptions
from onvif import ONVIFCamera

from edge.bus import Alarm, RelayChanged

from .peers import free_port

CONFIG = """
[onvif]
discovery = false
max_subscriptions = 3
pull_timeout_max_s = 1.0
"""


def notes(result) -> list[tuple[str, dict, dict, str]]:
    """(topic, source items, data items, PropertyOperation) of a PullMessages result."""
    out = []
    for msg in result.NotificationMessage:
        topic = msg.Topic._value_1
        m = msg.Message._value_1
        src = {i.Name: i.Value for i in m.Source.SimpleItem}
        data = {i.Name: i.Value for i in m.Data.SimpleItem}
        out.append((topic, src, data, m.PropertyOperation))
    return out


@pytest.fixture
async def camera(service_factory):
    port = free_port()
    async with service_factory(CONFIG + f'\n[web]\nhost = "127.0.0.1"\nport = {port}\n') as svc:
        cam = ONVIFCamera("127.0.0.1", port, svc.user, svc.password)
        await cam.update_xaddrs()
        try:
            yield svc, cam
        finally:
            await cam.close()


async def pull(pp, timeout_s: float = 1.0, limit: int = 100):
    return await pp.PullMessages({"MessageLimit": limit, "Timeout": dt.timedelta(seconds=timeout_s)})


async def test_alarms_and_relays_become_onvif_events(camera):
    svc, cam = camera
    bus = svc.ctx.bus
    bus.publish(Alarm("garage:open", "garage", True, "open", "Garage open"))  # active before anyone subscribed
    mgr = await cam.create_pullpoint_manager(dt.timedelta(seconds=60), lambda: None)
    pp = mgr.get_service()
    first = notes(await pull(pp))
    assert ("tns1:Device/Trigger/DigitalInput", {"InputToken": "garage"}, {"LogicalState": "true"}, "Initialized") in first

    # a door alarm: DigitalInput Changed, delivered to a waiting long poll within 1 s
    waiting = asyncio.create_task(pull(pp, timeout_s=10))
    await asyncio.sleep(0.2)
    t0 = time.monotonic()
    bus.publish(Alarm("front_door:open", "front_door", True, "open", "Front door open"))
    got = notes(await asyncio.wait_for(waiting, 5))
    assert time.monotonic() - t0 < 1.0
    assert got == [("tns1:Device/Trigger/DigitalInput", {"InputToken": "front_door"}, {"LogicalState": "true"}, "Changed")]

    # a second alarm on the same sensor changes nothing; clearing one of two keeps it active
    bus.publish(Alarm("front_door:tamper", "front_door", True, "tamper", "tamper"))
    bus.publish(Alarm("front_door:open", "front_door", False, "open", "closed"))
    assert notes(await pull(pp, 0.3)) == []
    bus.publish(Alarm("front_door:tamper", "front_door", False, "tamper", "ok"))
    assert notes(await pull(pp)) == [
        ("tns1:Device/Trigger/DigitalInput", {"InputToken": "front_door"}, {"LogicalState": "false"}, "Changed")]

    # motion alarms also raise VideoSource/MotionAlarm; relays raise Device/Trigger/Relay
    bus.publish(Alarm("hall:motion", "hall", True, "motion", "Motion in the hall"))
    bus.publish(RelayChanged("gate", True, source="test"))
    got = notes(await pull(pp))
    assert ("tns1:Device/Trigger/DigitalInput", {"InputToken": "hall"}, {"LogicalState": "true"}, "Changed") in got
    assert ("tns1:VideoSource/MotionAlarm", {"VideoSourceToken": "dashboard_source"}, {"State": "true"}, "Changed") in got
    assert ("tns1:Device/Trigger/Relay", {"RelayToken": "gate"}, {"LogicalState": "active"}, "Changed") in got
    # a second motion sensor: the one video source stays in motion until both are quiet
    bus.publish(Alarm("yard:motion", "yard", True, "motion", "Motion in the yard"))
    bus.publish(Alarm("hall:motion", "hall", False, "motion", "quiet"))
    got = notes(await pull(pp))
    assert [n for n in got if n[0] == "tns1:VideoSource/MotionAlarm"] == []
    bus.publish(Alarm("yard:motion", "yard", False, "motion", "quiet"))
    got = notes(await pull(pp))
    assert ("tns1:VideoSource/MotionAlarm", {"VideoSourceToken": "dashboard_source"}, {"State": "false"}, "Changed") in got

    # SetSynchronizationPoint: every current state again as Initialized
    await mgr.set_synchronization_point()
    sync = notes(await pull(pp))
    assert all(n[3] == "Initialized" for n in sync) and sync
    states = {(n[0], tuple(n[1].values())): tuple(n[2].values())[0] for n in sync}
    assert states[("tns1:Device/Trigger/DigitalInput", ("front_door",))] == "false"
    assert states[("tns1:Device/Trigger/DigitalInput", ("garage",))] == "true"
    assert states[("tns1:Device/Trigger/Relay", ("gate",))] == "active"

    # MessageLimit is honoured: the rest stays queued
    bus.publish(RelayChanged("gate", False))
    bus.publish(RelayChanged("gate", True))
    bus.publish(RelayChanged("gate", False))
    assert len(notes(await pull(pp, limit=2))) == 2
    assert len(notes(await pull(pp, limit=2))) == 1
    await mgr.shutdown()


async def test_subscription_lifecycle_bounds_and_long_poll_cap(camera):
    svc, cam = camera
    hub = svc.component("onvif").core.events
    events = await cam.create_events_service()
    subs = []
    for _ in range(3):
        r = await events.CreatePullPointSubscription({"InitialTerminationTime": "PT60S"})
        assert 55 <= (r.TerminationTime - r.CurrentTime).total_seconds() <= 60
        subs.append(r.SubscriptionReference.Address._value_1)
    # bounded: the fourth is refused with a clear fault
    with pytest.raises(zeep.exceptions.Fault) as exc:
        await events.CreatePullPointSubscription({"InitialTerminationTime": "PT60S"})
    assert "pull points are in use" in exc.value.message
    assert len(hub.subs) == 3

    # Renew moves the termination time; a termination time far away is capped
    cam.xaddrs["http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"] = subs[0]
    sub_svc = await cam.create_subscription_service("PullPointSubscription")
    r = await sub_svc.Renew("PT120S")
    assert 115 <= (r.TerminationTime - r.CurrentTime).total_seconds() <= 120
    r = await sub_svc.Renew("P30D")
    assert (r.TerminationTime - r.CurrentTime).total_seconds() <= 3600

    # the long poll is capped (pull_timeout_max_s = 1): a 60 s request comes back empty and early
    pp = await cam.create_pullpoint_service()
    await pull(pp)  # drain the Initialized messages
    t0 = time.monotonic()
    assert notes(await pull(pp, timeout_s=60)) == []
    assert 0.9 <= time.monotonic() - t0 < 10

    # Unsubscribe ends it: pulling again is a fault, and a new subscription fits again
    await sub_svc.Unsubscribe()
    with pytest.raises(zeep.exceptions.Fault) as exc:
        await pull(pp)
    assert "no such subscription" in exc.value.message
    await events.CreatePullPointSubscription({"InitialTerminationTime": "PT2S"})
    # subscriptions expire: the 2 s one is gone after its termination time
    deadline = time.monotonic() + 6
    while len(hub.subs) == 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert len(hub.subs) == 2
    # bad termination times are faults, not crashes
    for bad in ("yesterday", "PT", "2001-01-01T00:00:00Z"):
        with pytest.raises(zeep.exceptions.Fault):
            await events.CreatePullPointSubscription({"InitialTerminationTime": bad})


async def test_event_properties_advertise_the_topics(camera):
    _, cam = camera
    events = await cam.create_events_service()
    props = await events.GetEventProperties()
    tree = props.TopicSet._value_1
    names = {el.tag.split("}")[1] for top in tree for el in top.iter()}
    assert {"Device", "Trigger", "DigitalInput", "Relay", "VideoSource", "MotionAlarm"} <= names
    assert "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet" in props.TopicExpressionDialect
    caps = await events.GetServiceCapabilities()
    assert caps.WSPullPointSupport is True and caps.MaxPullPoints == 3


async def test_a_client_in_a_reconnect_loop_replaces_its_own_pull_points(service_factory):
    """One address holds at most max_subscriptions_per_client: its next subscription ends its
    oldest, so other NVRs still find a free slot; expiry runs on the monotonic clock."""
    from edge.onvif.soap import HttpInfo

    from . import onvif_soap as s

    toml = "[onvif]\ndiscovery = false\nmax_subscriptions = 4\nmax_subscriptions_per_client = 2\n"
    async with service_factory(toml) as svc:
        comp = svc.component("onvif")
        hub, d = comp.core.events, comp.dispatcher

        async def create(remote: str) -> bytes:
            info = HttpInfo(remote=remote, host="127.0.0.1:80", path="/onvif/events_service")
            body = s.envelope(s.op("CreatePullPointSubscription", s.TEV, "<ns0:InitialTerminationTime>PT600S"
                                                                          "</ns0:InitialTerminationTime>"),
                              s.security(svc.user, svc.password))
            return (await d.handle(body, info)).body

        looping = "192.0.2.10"
        first = None
        for _ in range(10):  # reconnects without unsubscribing
            assert not s.is_fault(await create(looping))
            first = first or next(iter(hub.subs))
        assert sorted(x.client for x in hub.subs.values()) == [looping, looping]
        assert first not in hub.subs  # its oldest went first
        # the other slots are still there for other NVRs
        for nvr in ("192.0.2.20", "192.0.2.21"):
            assert not s.is_fault(await create(nvr))
        assert len(hub.subs) == 4
        assert "in use" in s.fault_reason(await create("192.0.2.22"))  # full: a newcomer is refused
        # termination is a monotonic deadline: stepping the wall clock changes nothing
        sub = next(iter(hub.subs.values()))
        assert 590 <= sub.expires - time.monotonic() <= 600
        assert hub.expire() == 0
        assert hub.expire(now=time.monotonic() + 601) == 4
