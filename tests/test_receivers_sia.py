"""SIA DC-09 to pysiaalarm as the receiving centre, through the whole service: door messages
over MQTT become BA/BH with the right account, zone and text (TCP and UDP, plain and AES);
Contact ID; a NAK with a skewed clock; a lost ACK; garbage answers; link failure and restore;
failover to the backup path and return; a restart with reports waiting."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from edge.receivers.queue import QUEUE_PREFIX
from edge.store.readers import outbox_count, query_events

from .peers import free_port
from .receiver_helpers import BusLog, door, sia_toml
from .receiver_peers import KEY128, KEY256, SiaPeer, SpoilingProxy, write_key
from .sensor_helpers import publish, wait_for


def _xdata(ev) -> dict[str, str]:
    return {x.identifier: x.value for x in (ev.extended_data or [])}


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
@pytest.mark.parametrize("key", [None, KEY128, KEY256], ids=["plain", "aes128", "aes256"])
async def test_door_open_and_closed_reach_the_receiver(protocol, key, mosquitto, service_factory, tmp_path):
    peer = await SiaPeer(key=key, protocol=protocol).start()
    data = tmp_path / "data"
    rel = write_key(data, "arc", key) if key else None
    try:
        async with service_factory(sia_toml(peer.port, key=rel, protocol=protocol, mqtt_port=mosquitto.port), data):
            await publish(mosquitto.port, ("z/front_door", '{"contact":true}'))  # the first state: quiet
            await publish(mosquitto.port, ("z/front_door", '{"contact":false}'))
            await wait_for(lambda: peer.reports, 5, "BA at the receiver")
            await publish(mosquitto.port, ("z/front_door", '{"contact":true}'))
            await wait_for(lambda: len(peer.reports) == 2, 5, "BH at the receiver")
    finally:
        await peer.stop()
    ba, bh = peer.reports
    assert [ev.code for ev in peer.reports] == ["BA", "BH"]
    for ev in (ba, bh):
        assert ev.account == "1234" and ev.ri == "1" and ev.message == "001" and ev.encrypted == bool(key)
    assert _xdata(ba) == {"I": "Front door: OPEN", "S": "Test site"}
    assert _xdata(bh) == {"I": "Front door: CLOSED", "S": "Test site"}
    assert int(bh.sequence) == int(ba.sequence) + 1


async def test_contact_id_receiver(service_factory, tmp_path):
    peer = await SiaPeer().start()
    try:
        async with service_factory(sia_toml(peer.port, fmt="ADM-CID")) as svc:
            assert door(svc, True) and door(svc, False)
            await wait_for(lambda: len(peer.reports) == 2, 5, "two Contact ID reports")
    finally:
        await peer.stop()
    opened, closed = peer.reports
    assert (opened.event_qualifier, opened.event_type, opened.partition, opened.ri, opened.code) == ("1", "131", "01", "001", "BA")
    assert (closed.event_qualifier, closed.code) == ("3", "BH")


async def test_a_nak_with_the_receivers_time_corrects_the_clock(service_factory, caplog, tmp_path):
    peer = await SiaPeer(key=KEY128).start()
    data = tmp_path / "data"
    rel = write_key(data, "arc", KEY128)
    try:
        async with service_factory(sia_toml(peer.port, key=rel), data) as svc:
            rx = svc.component("receivers").receivers["arc"]
            rx.clock = lambda: time.time() + 600  # ten minutes fast: pysiaalarm allows -40..+20 s
            with caplog.at_level(logging.WARNING, logger="edge.receivers"):
                assert door(svc, True)
                await wait_for(lambda: peer.reports, 10, "the report accepted after the correction")
            assert abs(rx.transport.offset + 600) < 3
            assert any("NAK" in r.getMessage() and "receiver arc" in r.getMessage() for r in caplog.records)
    finally:
        await peer.stop()
    assert [ev.code for ev in peer.events] == ["BA"], "the skewed message was refused, the corrected one taken"


async def test_a_lost_ack_is_resent_with_the_same_sequence_number(service_factory):
    peer = await SiaPeer().start()
    proxy = await SpoilingProxy(peer.port, ["drop"]).start()
    try:
        async with service_factory(sia_toml(proxy.port)) as svc:
            assert door(svc, True)
            await wait_for(lambda: len(peer.events) == 2, 10, "the resend")
            await wait_for(lambda: not len(svc.component("receivers").receivers["arc"].queue), 5, "the queue empty")
    finally:
        await proxy.stop()
        await peer.stop()
    first, again = peer.events
    assert first.sequence == again.sequence and first.code == again.code == "BA"
    assert [ev.code for ev in peer.reports] == ["BA"], "the receiver drops the duplicate: accepted once"


async def test_garbage_from_the_receiver_is_logged_and_retried(service_factory, caplog):
    peer = await SiaPeer().start()
    script = ["badcrc", "wrongseq", "random", "half", "close"]
    proxy = await SpoilingProxy(peer.port, script).start()
    try:
        with caplog.at_level(logging.WARNING, logger="edge.receivers"):
            async with service_factory(sia_toml(proxy.port)) as svc:
                assert door(svc, True)
                await wait_for(lambda: not proxy.script and peer.reports, 15, "delivery after the garbage")
                assert door(svc, False)  # the queue still moves
                await wait_for(lambda: "BH" in peer.codes(), 5, "the next report")
                comp = svc.component("receivers")
                # (the receiver calls back after it sent its ACK: our side may still be reading it)
                await wait_for(lambda: len(comp.receivers["arc"].queue) == 0 and comp.health().ok, 5, "queue empty, ok")
                assert svc.supervisor.slots[[s.component.name for s in svc.supervisor.slots].index("receivers")].restarts == 0
    finally:
        await proxy.stop()
        await peer.stop()
    # (two bad answers in a row count as link trouble: YS, then YK once it answered)
    assert [c for c in peer.codes() if c.startswith("B")] == ["BA", "BH"]
    log = [r.getMessage() for r in caplog.records if "receiver arc" in r.getMessage()]
    for why in ("bad CRC", "for sequence", "not a DC-09 frame", "half a frame", "closed the connection"):
        assert any(why in line for line in log), (why, log)


async def test_a_receiver_that_closes_after_each_answer(service_factory):
    peer = await SiaPeer().start()
    proxy = await SpoilingProxy(peer.port, ["pass_close"] * 4).start()
    try:
        async with service_factory(sia_toml(proxy.port)) as svc:
            rx = svc.component("receivers").receivers["arc"]
            for opened in (True, False, True, False):  # back to back: the close comes after the next message left
                assert door(svc, opened)
            await wait_for(lambda: len(peer.reports) == 4 and len(rx.queue) == 0, 5, "four reports")
            assert rx.failures == 0
    finally:
        await proxy.stop()
        await peer.stop()


async def test_a_receiver_that_never_answers_raises_the_communication_failure(service_factory, tmp_path):
    port = free_port()
    silent_conns = []

    async def black_hole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent_conns.append(writer)
        await reader.read(-1)

    hole = await asyncio.start_server(black_hole, "127.0.0.1", port, reuse_address=True)
    interval, grace = 2.0, 1.0
    peer = SiaPeer(port=port)
    try:
        toml = sia_toml(port, null_interval_s=interval, extra=f"grace_s = {grace}\nfailover_after = 3\n")
        async with service_factory(toml) as svc:
            bus = BusLog(svc)
            t0 = time.monotonic()
            await wait_for(lambda: bus.alarms("receiver:arc:primary") == [True], interval + grace + 2, "comm failure")
            assert time.monotonic() - t0 <= interval + grace + 1.0
            assert bus.health("receiver/arc")[-1] is False
            hole.close()
            for w in silent_conns:
                w.close()
            await peer.start()  # it answers again on the same address
            await wait_for(lambda: bus.alarms("receiver:arc:primary") == [True, False], 10, "restore")
            await wait_for(lambda: [ev.code for ev in peer.reports] == ["YS", "YK"], 10, "YS then YK at the receiver")
            assert bus.health("receiver/arc")[-1] is True
            await wait_for(lambda: peer.nulls, interval + 1, "a NULL link test once the queue is empty")
            bus.close()
    finally:
        await peer.stop()
    ys, yk = peer.reports
    assert ys.message == "001" and "not answering" in _xdata(ys)["I"]


async def test_the_backup_path_while_the_primary_is_down_and_the_return(service_factory):
    primary_port = free_port()
    backup = await SiaPeer().start()
    primary = SiaPeer(port=primary_port)
    try:
        toml = sia_toml(primary_port, backup=backup.port, null_interval_s=1.0, extra="failover_after = 1\n")
        async with service_factory(toml) as svc:
            bus = BusLog(svc)
            assert door(svc, True)
            await wait_for(lambda: "BA" in backup.codes(), 5, "BA over the backup path")
            assert bus.alarms("receiver:arc:primary") == [True]
            await wait_for(lambda: "YS" in backup.codes(), 5, "the primary's trouble told over the backup")
            await primary.start()
            await wait_for(lambda: bus.alarms("receiver:arc:primary") == [True, False], 5, "primary answers again")
            assert door(svc, False)
            await wait_for(lambda: "BH" in primary.codes(), 5, "BH over the primary again")
            assert "BH" not in backup.codes()
            bus.close()
    finally:
        await primary.stop()
        await backup.stop()


async def test_a_restart_with_reports_waiting_loses_nothing(service_factory, tmp_path):
    port = free_port()
    data = tmp_path / "data"
    toml = sia_toml(port)
    async with service_factory(toml, data) as svc:
        for i in range(3):
            assert door(svc, True) and door(svc, False)
        rx = svc.component("receivers").receivers["arc"]
        await wait_for(lambda: rx.links and rx.links[0].up is False, 5, "the link down")
    db = data / "edge.db"
    assert outbox_count(db, QUEUE_PREFIX + "arc") == 7  # and the link trouble, YS
    peer = await SiaPeer(port=port).start()
    try:
        async with service_factory(toml, data):
            await wait_for(lambda: outbox_count(db, QUEUE_PREFIX + "arc") == 0, 10, "the outbox drained")
            await wait_for(lambda: len([c for c in peer.codes() if c.startswith("B")]) == 6, 5, "six door reports")
            # the link trouble queued before the restart is restored once the receiver answers
            await wait_for(lambda: peer.codes()[-2:] == ["YS", "YK"], 5, "YS then YK")
    finally:
        await peer.stop()
    assert [c for c in peer.codes() if c.startswith("B")] == ["BA", "BH"] * 3
    seqs = [ev.sequence for ev in peer.events]
    assert len(seqs) == len(set(seqs)), "nothing accepted twice"
    delivered = [e.payload for e in query_events(db, kind="report")]
    assert [p["code"] for p in delivered if p["code"].startswith("B")] == ["BA", "BH"] * 3
    assert all(p["ok"] for p in delivered)


async def test_a_code_the_receiver_does_not_know_is_dropped_and_the_queue_moves_on(service_factory, caplog):
    peer = await SiaPeer().start()
    try:
        async with service_factory(sia_toml(peer.port)) as svc:
            with caplog.at_level(logging.ERROR, logger="edge.receivers"):
                assert door(svc, True, code="QQ")  # pysiaalarm answers DUH
                assert door(svc, True)
                await wait_for(lambda: peer.reports, 5, "the next report")
            rx = svc.component("receivers").receivers["arc"]
            await wait_for(lambda: len(rx.queue) == 0, 5, "the queue empty")
            assert rx.rejected == 1
            await svc.ctx.store.flush()
            db = svc.ctx.data_dir / "edge.db"
            outcomes = [(e.payload["code"], e.payload["ok"]) for e in query_events(db, kind="report")]
            assert outcomes == [("QQ", False), ("BA", True)]
    finally:
        await peer.stop()
    assert peer.codes() == ["BA"]
    assert any("receiver arc" in r.getMessage() and "DUH" in r.getMessage() and "dropped" in r.getMessage()
               for r in caplog.records)


def test_the_daily_test_report_time():
    from datetime import datetime, timedelta, timezone

    from edge.receivers.receiver import next_daily

    tz = timezone(timedelta(hours=2))
    assert next_daily(datetime(2024, 5, 1, 2, 59, tzinfo=tz), "03:00") == datetime(2024, 5, 1, 3, 0, tzinfo=tz)
    assert next_daily(datetime(2024, 5, 1, 3, 0, tzinfo=tz), "03:00") == datetime(2024, 5, 2, 3, 0, tzinfo=tz)
    assert next_daily(datetime(2024, 12, 31, 23, 30, tzinfo=tz), "00:15") == datetime(2025, 1, 1, 0, 15, tzinfo=tz)
