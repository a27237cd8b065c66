"""The receiving centre is gone for 60 s while 20 alarms happen: all of them arrive after it
returns, in order, none accepted twice (the issue's outage test; about 70 s)."""

from __future__ import annotations

import asyncio

import pytest

from .receiver_helpers import door, sia_toml
from .receiver_peers import KEY128, SiaPeer, write_key
from .sensor_helpers import wait_for

OUTAGE_S = 60.0
ALARMS = 20


@pytest.mark.timeout(180)
async def test_twenty_alarms_during_a_60_s_outage_arrive_in_order_once(service_factory, tmp_path):
    data = tmp_path / "data"
    rel = write_key(data, "arc", KEY128)
    peer = await SiaPeer(key=KEY128).start()
    # a real backoff (up to 5 s between attempts) and link tests every 10 s
    toml = sia_toml(peer.port, key=rel, null_interval_s=10, fast=False,
                    extra="timeout_s = 2\nbackoff_initial_s = 0.5\nbackoff_max_s = 5\ngrace_s = 5\n")
    try:
        async with service_factory(toml, data) as svc:
            assert door(svc, True) and door(svc, False)
            await wait_for(lambda: peer.codes() == ["BA", "BH"], 5, "reports before the outage")
            await peer.stop()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            for i in range(ALARMS):  # spread over the outage
                await asyncio.sleep(max(0.0, t0 + i * OUTAGE_S / ALARMS - loop.time()))
                assert door(svc, True, zone=10 + i)
                assert door(svc, False, zone=10 + i)
            await asyncio.sleep(max(0.0, t0 + OUTAGE_S - loop.time()))
            rx = svc.component("receivers").receivers["arc"]
            assert len(rx.queue) >= 2 * ALARMS and rx.failures > 0
            await peer.start()  # back on the same address
            await wait_for(lambda: len(rx.queue) == 0, 20, "the queue drained")
    finally:
        await peer.stop()
    doors = [(ev.code, int(ev.message)) for ev in peer.reports if ev.code in ("BA", "BH")]
    assert doors == [("BA", 1), ("BH", 1)] + [(c, 10 + i) for i in range(ALARMS) for c in ("BA", "BH")]
    seqs = [ev.sequence for ev in peer.events]
    assert len(seqs) == len(set(seqs)), "no report accepted twice"
    assert {"YS", "YK"} <= set(peer.codes()), "the outage itself is reported when the link is back"
