"""The receivers' queues in the store's outbox: separate from the uplink's, ordered, the
sequence number kept with each report, numbers never reused across a restart."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from edge.receivers.queue import SEQ_BLOCK, ReportQueue
from edge.receivers.report import Report
from edge.store import Store
from edge.store import schema
from edge.store.readers import outbox_count


async def test_queues_are_apart_and_keep_their_sequence_numbers(tmp_path: Path):
    path = tmp_path / "edge.db"
    s = Store(path, batch_ms=200)
    await s.start()
    up = await s.outbox_put("edge/x", b"uplink")
    t0 = time.monotonic()
    a = await s.outbox_put("report", b"a1", queue="receiver:a", seq=7, urgent=True)
    assert time.monotonic() - t0 < 0.15, "an urgent put does not wait for the 200 ms batch window"
    b = await s.outbox_put("report", b"b1", queue="receiver:b", seq=1)
    a2 = await s.outbox_put("report", b"a2", queue="receiver:a", seq=8)
    assert [m.id for m in await s.outbox_peek(10)] == [up], "the uplink sees only its own queue"
    assert [(m.id, m.payload, m.seq) for m in await s.outbox_peek(10, queue="receiver:a")] == [(a, b"a1", 7), (a2, b"a2", 8)]
    assert [m.id for m in await s.outbox_peek(10, queue="receiver:b")] == [b]
    await s.meta_set("seq:receiver:a", 107)
    assert await s.meta_get("seq:receiver:a") == 107 and await s.meta_get("nope") is None
    await s.outbox_ack([a])
    await s.close()
    assert outbox_count(path, "receiver:a") == 1 and outbox_count(path) == 3


async def test_migration_keeps_waiting_uplink_messages(tmp_path: Path):
    path = tmp_path / "edge.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for step in schema.MIGRATIONS[:2]:
        for stmt in step:
            conn.execute(stmt)
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO outbox (ts, topic, payload, qos, retain) VALUES (1, 'edge/old', x'6f6c64', 1, 0)")
    conn.close()
    s = Store(path, batch_ms=5)
    await s.start()
    (m,) = await s.outbox_peek(10)
    assert (m.topic, m.payload, m.queue, m.seq) == ("edge/old", b"old", "", None)
    await s.close()


def _report(code: str) -> Report:
    return Report(code, 131, 1, 1, f"text {code}")


async def test_sequence_numbers_continue_above_anything_used_before_a_restart(tmp_path: Path):
    path = tmp_path / "edge.db"
    s = Store(path, batch_ms=5)
    await s.start()
    acks: list[asyncio.Task] = []
    q = ReportQueue("arc", lambda: s, lambda c: acks.append(asyncio.ensure_future(c)))
    assert await q.load() == 0
    for code in ("BA", "BH", "BA"):
        q.put(_report(code))
    first = await q.head()
    assert first.report.n == 1 and first.id is not None
    q.ack(first)
    null_n = await q.next_seq()  # a NULL link test takes a number too (not queued)
    assert null_n == 4
    await asyncio.gather(*acks)
    await s.close()

    s = Store(path, batch_ms=5)
    await s.start()
    q2 = ReportQueue("arc", lambda: s, lambda c: None)
    assert await q2.load() == 2  # BH and BA wait, with their numbers
    assert [(it.report.code, it.report.n) for it in q2.items] == [("BH", 2), ("BA", 3)]
    q2.put(_report("FA"))
    assert q2.items[-1].report.n == SEQ_BLOCK + 1, "after a restart, numbers start above the reserved block"
    await q2.items[-1].committed
    await s.close()
