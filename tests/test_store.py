"""The SQLite store: group commit, commit-then-resolve, migrations, retention, outbox."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from edge.store import Store, StoreClosed, query_events
from edge.store import schema
from edge.store.readers import get_state, open_reader, outbox_count, query_audit, query_hourly

DAY = 86400


@pytest.fixture
async def store(tmp_path: Path):
    s = Store(tmp_path / "edge.db", batch_ms=20)
    await s.start()
    yield s
    await s.close()


def _count(path: Path, table: str = "events") -> int:
    with sqlite3.connect(path) as c:
        return c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


async def test_future_resolves_only_after_its_batch_committed(tmp_path: Path):
    path = tmp_path / "edge.db"
    s = Store(path, batch_ms=400)
    await s.start()
    reader = open_reader(path)
    seen_at_resolution: list[int] = []
    fut = s.record_event("sensor", "front_door", {"contact": False})
    # what another connection sees at the very moment the future resolves
    fut.add_done_callback(lambda f: seen_at_resolution.append(
        reader.execute("SELECT count(*) FROM events WHERE id = ?", (f.result(),)).fetchone()[0]))
    await asyncio.sleep(0.1)
    assert not fut.done(), "resolved before the group-commit window ended"
    assert reader.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    event_id = await asyncio.wait_for(fut, 5)
    assert seen_at_resolution == [1]
    row = reader.execute("SELECT kind, source, json_extract(payload, '$.contact') FROM events WHERE id = ?",
                         (event_id,)).fetchone()
    assert row == ("sensor", "front_door", 0)
    reader.close()
    await s.close()


async def test_concurrent_events_share_few_commits(store: Store):
    before = store.stats.batches
    ids = await asyncio.wait_for(asyncio.gather(*(
        store.record_event("sensor", f"s{i % 7}", {"temperature": 20 + i % 5}) for i in range(2000))), 20)
    assert len(set(ids)) == 2000
    assert ids == sorted(ids), "ids follow the order of the calls"
    batches = store.stats.batches - before
    assert 1 <= batches <= 5, f"2000 concurrent events took {batches} commits"
    assert store.stats.events_persisted == 2000


async def test_flush_commits_everything_queued(store: Store, tmp_path: Path):
    futs = [store.record_event("alarm", "leak", {"n": i}) for i in range(50)]
    store.set_state("leak", {"water_leak": True})
    await asyncio.wait_for(store.flush(), 5)
    assert all(f.done() for f in futs)
    assert _count(tmp_path / "edge.db") == 50
    assert get_state(tmp_path / "edge.db")["leak"][0] == {"water_leak": True}


async def test_state_upsert_keeps_newest(store: Store, tmp_path: Path):
    now = time.time()
    store.set_state("door", {"contact": True}, ts=now)
    store.set_state("door", {"contact": False}, ts=now - 10)  # late, older reading
    store.set_state("window", {"contact": False}, ts=now)
    await store.flush()
    st = get_state(tmp_path / "edge.db")
    assert st["door"] == ({"contact": True}, now)
    assert st["window"][0] == {"contact": False}


async def test_sensor_events_feed_hourly_aggregates(store: Store, tmp_path: Path):
    hour = (int(time.time()) // 3600) * 3600
    for v in (20.0, 22.0, 24.5):
        store.record_event("sensor", "attic", {"temperature": v, "contact": True, "name": "x"}, ts=hour + 10)
    store.record_event("sensor", "attic", {"temperature": 30.0}, ts=hour - 100)  # the previous hour
    store.record_event("alarm", "attic", {"temperature": 99.0}, ts=hour + 20)  # not a sensor reading
    await store.flush()
    rows = query_hourly(tmp_path / "edge.db", sensor="attic")
    assert [(r.hour, r.field, r.count, r.min, r.max) for r in rows] == [
        (hour - 3600, "temperature", 1, 30.0, 30.0),
        (hour, "temperature", 3, 20.0, 24.5),
    ]
    assert rows[1].mean == pytest.approx(22.1666, abs=1e-3)


async def test_aggregates_are_written_in_bulk_and_on_flush(tmp_path: Path):
    path = tmp_path / "edge.db"
    s = Store(path, batch_ms=5, aggregate_flush_s=0.3)
    await s.start()
    for v in (1.0, 2.0, 3.0):
        await s.record_event("sensor", "cellar", {"humidity": v})
    assert query_hourly(path) == [], "not one hourly write per event"
    deadline = time.monotonic() + 5
    while not query_hourly(path) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    (row,) = query_hourly(path)
    assert (row.sensor, row.field, row.count, row.sum) == ("cellar", "humidity", 3, 6.0)
    await s.record_event("sensor", "cellar", {"humidity": 10.0})
    await s.flush()  # flush() writes them at once
    (row,) = query_hourly(path)
    assert (row.count, row.max) == (4, 10.0)
    await s.close()


async def test_audit_and_readers(store: Store, tmp_path: Path):
    aid = await store.audit_relay("gate", "pulse 500ms", "ok", 3.2, detail="rule front_door")
    await store.audit_relay("gate", "on", "error", None, detail="board unreachable")
    rows = query_audit(tmp_path / "edge.db", since=time.time() - 60)
    assert [(r.id, r.command, r.outcome, r.latency_ms) for r in rows][0] == (aid, "pulse 500ms", "ok", 3.2)
    assert rows[1].detail == "board unreachable" and rows[1].latency_ms is None


async def test_bad_input_fails_clearly_and_only_that_call(store: Store):
    with pytest.raises(ValueError, match="payload is not JSON"):
        await store.record_event("sensor", "x", {"when": object()})
    with pytest.raises(ValueError, match="must be a dict"):
        await store.record_event("sensor", "x", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="qos must be"):
        await store.outbox_put("t", b"x", qos=5)
    assert await store.record_event("sensor", "x", {"ok": 1}) >= 1


async def test_one_failing_op_does_not_fail_its_batch(tmp_path: Path):
    path = tmp_path / "edge.db"
    s = Store(path, batch_ms=100)
    await s.start()
    await s.close()
    with sqlite3.connect(path) as c:  # something in the database refuses one event
        c.execute("CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.source = 'poison' "
                  "BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END")
    s = Store(path, batch_ms=100)
    await s.start()
    good1 = s.record_event("sensor", "a", {"v": 1})
    bad = s.record_event("sensor", "poison", {"v": 2})
    good2 = s.record_event("sensor", "b", {"v": 3})
    assert await good1 < await good2
    with pytest.raises(sqlite3.IntegrityError, match="refused by trigger"):
        await bad
    assert s.stats.events_persisted == 2
    assert [e.source for e in query_events(path)] == ["a", "b"]
    await s.close()


async def test_closed_store_refuses(tmp_path: Path):
    s = Store(tmp_path / "edge.db")
    await s.start()
    f = s.record_event("sensor", "a", {"v": 1})
    await s.close()
    assert f.done() and f.result() == 1, "close commits what was queued"
    with pytest.raises(StoreClosed):
        await s.record_event("sensor", "a", {"v": 2})


async def test_writer_death_is_reported_not_silent(tmp_path: Path, caplog):
    s = Store(tmp_path / "edge.db", batch_ms=10)
    await s.start()
    assert await s.record_event("sensor", "a", {"v": 1}) == 1

    def broken(batch):
        raise MemoryError("simulated")

    s._writer._apply = broken  # type: ignore[union-attr,method-assign]
    f = s.record_event("sensor", "a", {"v": 2})
    with pytest.raises(StoreClosed, match="simulated"):
        await asyncio.wait_for(f, 5)
    exc = await asyncio.wait_for(s.dead, 5)  # type: ignore[arg-type]
    assert isinstance(exc, MemoryError)
    assert "store writer died" in caplog.text
    assert not s.durable and "writer died" in s.problem
    waiting = s.record_event("sensor", "a", {"v": 3})  # waits in memory for the next writer
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await s.start()  # the same object gets a new writer (what the component does on restart)
    assert await asyncio.wait_for(waiting, 5) == 2
    assert await s.record_event("sensor", "a", {"v": 4}) == 3
    assert s.stats.events_persisted == 3 and s.durable
    await asyncio.wait_for(s.close(), 5)


async def test_migrations_run_once_and_survive_reopen(tmp_path: Path):
    path = tmp_path / "edge.db"
    s = Store(path)
    await s.start()
    assert s._writer.migrations_applied == list(range(1, schema.SCHEMA_VERSION + 1))  # type: ignore[union-attr]
    await s.record_event("sensor", "a", {"v": 1})
    await s.close()
    for _ in range(2):
        s = Store(path)
        await s.start()
        assert s._writer.migrations_applied == []  # type: ignore[union-attr]
        await s.close()
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.execute("SELECT count(*) FROM events").fetchone()[0] == 1


async def test_failed_migration_step_leaves_previous_version(tmp_path: Path, monkeypatch):
    path = tmp_path / "edge.db"
    s = Store(path)
    await s.start()
    await s.close()
    bad_step = ("CREATE TABLE half_done (x)", "THIS IS NOT SQL")
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, bad_step])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", len(schema.MIGRATIONS))
    s = Store(path)
    assert await s.start() is False, "a store that cannot open does not raise: it says why and retries"
    assert not s.durable and "OperationalError" in s.problem
    await s.close(0.5)
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == len(schema.MIGRATIONS) - 1
        assert c.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()[0] == 0


async def test_newer_schema_is_refused(tmp_path: Path):
    path = tmp_path / "edge.db"
    with sqlite3.connect(path) as c:
        c.execute("PRAGMA user_version = 99")
    s = Store(path)
    assert await s.start() is False
    assert "newer than this edge knows" in s.problem
    f = s.record_event("sensor", "a", {"v": 1})  # waits: a downgraded service never touches the file
    await s.close(0.2)
    with pytest.raises(StoreClosed):
        await f
    with sqlite3.connect(path) as c:
        assert c.execute("SELECT count(*) FROM sqlite_master WHERE name = 'events'").fetchone()[0] == 0


async def test_retention_prunes_in_small_steps(tmp_path: Path):
    path = tmp_path / "edge.db"
    now = time.time()
    s = Store(path, retention_days=30, aggregate_retention_days=365, prune_batch_rows=10,
              prune_first_delay_s=3600)
    await s.start()
    for i in range(45):
        s.record_event("sensor", "old", {"temperature": float(i)}, ts=now - 40 * DAY + i)
    s.record_event("sensor", "ancient", {"temperature": 1.0}, ts=now - 400 * DAY)
    s.audit_relay("gate", "pulse", "ok", 1.0, ts=now - 400 * DAY)
    recent = [await s.record_event("sensor", "new", {"temperature": 20.0}, ts=now - i) for i in range(5)]
    steps = []
    while (n := await s.prune_step()) > 0:
        steps.append(n)
    # 46 raw events and 1 audit row and 1 hourly row past their retention, 10 rows per step
    assert steps == [10, 10, 10, 10, 8]
    assert [e.source for e in query_events(path)] == ["new"] * 5
    assert sorted(e.id for e in query_events(path)) == sorted(recent)
    hourly = {r.sensor for r in query_hourly(path)}
    assert hourly == {"old", "new"}, "aggregates outlive raw events; the 400-day-old one is gone"
    assert query_audit(path) == []
    await s.close()


async def test_retention_runs_by_itself_spaced_out(tmp_path: Path):
    path = tmp_path / "edge.db"
    now = time.time()
    s = Store(path, retention_days=1, prune_batch_rows=10, prune_interval_s=0.05, prune_idle_s=0.2,
              prune_first_delay_s=0.0)
    await s.start()
    for i in range(35):
        s.record_event("door", "old", {"n": i}, ts=now - 2 * DAY)
    await s.record_event("door", "new", {"n": 0})
    deadline = time.monotonic() + 10
    while _count(path) > 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert [e.source for e in query_events(path)] == ["new"]
    assert s.pruner.steps >= 4, "35 rows at 10 per step take at least 4 steps"
    await s.close()


async def test_newest_event_is_kept_so_ids_are_not_reused(tmp_path: Path):
    path = tmp_path / "edge.db"
    s = Store(path, retention_days=1, prune_first_delay_s=3600)
    await s.start()
    for i in range(3):
        await s.record_event("door", "old", {"n": i}, ts=time.time() - 2 * DAY)
    while await s.prune_step():
        pass
    assert [e.id for e in query_events(path)] == [3]
    assert await s.record_event("door", "new", {}) == 4
    await s.close()


async def test_outbox_keeps_order_until_acked(tmp_path: Path):
    path = tmp_path / "edge.db"
    s = Store(path, batch_ms=5)
    await s.start()
    ids = [await s.outbox_put(f"edge/s/{i}", f"m{i}".encode(), qos=i % 3, retain=i == 2) for i in range(5)]
    first = await s.outbox_peek(3)
    assert [(m.id, m.topic, m.payload, m.qos, m.retain) for m in first] == [
        (ids[0], "edge/s/0", b"m0", 0, False), (ids[1], "edge/s/1", b"m1", 1, False),
        (ids[2], "edge/s/2", b"m2", 2, True)]
    assert await s.outbox_ack([ids[0], ids[1]]) == 2
    assert await s.outbox_ack([ids[0]]) == 0  # acking twice is harmless
    await s.close()
    assert outbox_count(path) == 3

    s = Store(path, batch_ms=5)  # survives a restart, order kept, new ids after old ones
    await s.start()
    new = await s.outbox_put("edge/s/5", b"m5")
    assert new > ids[-1]
    assert [m.payload for m in await s.outbox_peek(10)] == [b"m2", b"m3", b"m4", b"m5"]
    await s.outbox_ack(m.id for m in await s.outbox_peek(10))
    assert await s.outbox_peek(10) == []
    assert await s.outbox_put("edge/s/6", b"m6") > new, "ids are not reused after the outbox emptied"
    await s.close()


async def test_locked_database_keeps_the_batch_until_the_disk_takes_it(tmp_path: Path, monkeypatch, caplog):
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "edge.db"
    s = Store(path, batch_ms=10)
    await s.start()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    t0 = time.perf_counter()
    futs = [s.record_event("sensor", "door", {"n": i}) for i in range(200)]
    assert time.perf_counter() - t0 < 0.5, "queueing must not wait for the disk"
    await asyncio.sleep(1.0)
    assert not any(f.done() for f in futs), "nothing is dropped while the disk refuses it"
    assert not s.ok and not s.durable and "locked" in s.problem
    assert "not written: OperationalError: database is locked (kept; retrying)" in caplog.text
    later = s.record_event("sensor", "door", {"n": "after"})
    other.execute("ROLLBACK")
    other.close()
    ids = await asyncio.wait_for(asyncio.gather(*futs, later), 10)
    assert ids == sorted(ids) and len(set(ids)) == 201
    assert s.ok and s.durable and s.stats.events_persisted == 201
    assert s.committed == s.submitted
    await s.close()


async def test_telemetry_waits_for_company_and_rides_along_with_an_urgent_event(tmp_path: Path):
    s = Store(tmp_path / "t.db", batch_ms=20, telemetry_batch_ms=3000)
    await s.start()
    try:
        reading = s.record_event("sensor", "temp1", {"temperature": 21.5}, telemetry=True)
        await asyncio.sleep(0.3)
        assert not reading.done(), "a routine reading should wait for company, not cost a commit of its own"
        batches = s.stats.batches
        t0 = time.monotonic()
        alarm = s.record_event("alarm", "front_door", {"active": True})
        await asyncio.wait_for(alarm, 1)
        assert time.monotonic() - t0 < 0.5
        assert reading.done() and reading.result() < alarm.result()
        assert s.stats.batches == batches + 1  # one commit for both
        lone = s.record_event("sensor", "temp1", {"temperature": 21.6}, telemetry=True)
        await asyncio.wait_for(lone, 5)  # and a lone reading still commits within its window
    finally:
        await s.close()


async def test_outbox_is_capped_oldest_dropped_first(tmp_path: Path, caplog):
    """A broker away for long, or a flood of state changes: the outbox keeps the newest
    ``outbox_max_messages`` and says so, instead of filling the card."""
    path = tmp_path / "edge.db"
    s = Store(path, batch_ms=5, prune_batch_rows=50, prune_first_delay_s=3600, outbox_max_messages=100)
    await s.start()
    for i in range(230):
        s.outbox_put(f"edge/s/{i}", f"m{i}".encode())
    await s.outbox_peek(1)  # everything committed
    while await s.prune_step():
        pass
    kept = await s.outbox_peek(1000)
    assert [m.payload for m in kept] == [f"m{i}".encode() for i in range(130, 230)]
    assert s.pruner.outbox_dropped == 130
    assert "dropped the" in caplog.text
    await s.close()
    assert outbox_count(path) == 100


async def test_groups_commit_together_in_order_with_their_window(tmp_path: Path):
    """What one message produced is one group: one transaction, the watermark moves past it
    once committed, telemetry alone waits for company, anything urgent commits at once."""
    s = Store(tmp_path / "g.db", batch_ms=20, telemetry_batch_ms=3000)
    await s.start()
    try:
        s.begin_group()
        reading = s.record_event("sensor", "temp", {"temperature": 21.5}, telemetry=True)
        seq = s.end_group(("lane", 7, 1234))
        assert seq == s.submitted and s.committed < seq
        await asyncio.sleep(0.3)
        assert not reading.done(), "a telemetry-only group waits for its window"
        s.begin_group()
        ev = s.record_event("sensor", "door", {"contact": False}, telemetry=True)
        change = s.record_event("state_change", "door", {"changed": {"contact": False}})
        state = s.set_state("door", {"contact": False})
        seq2 = s.end_group(("lane", 8, 5678))
        await asyncio.wait_for(change, 1)
        assert reading.done() and ev.done() and state.done() and s.committed >= seq2
        assert reading.result() < ev.result() < change.result()
        s.begin_group()
        assert s.end_group(("lane", 9, 1)) == 0, "an empty group is nothing to wait for"
        assert await s.seen_keys("lane", 10) == {7: 1234, 8: 5678}
        assert await s.seen_keys("other", 10) == {}
    finally:
        await s.close()
    s.begin_group()
    late = s.record_event("sensor", "x", {"v": 1})
    assert s.end_group(None) == -1, "a closed store refuses the group"
    with pytest.raises(StoreClosed):
        await late
