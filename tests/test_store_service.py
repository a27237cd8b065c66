"""The store inside the running service, and `edge events` reading it while it runs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

from click.testing import CliRunner

from edge.cli import cli
import pytest

from edge.store import Store, StoreClosed
from edge.store.cli import parse_since

from .peers import venv_bin


async def test_service_opens_store_publishes_metric_and_closes_fast(service_factory, tmp_path: Path):
    data = tmp_path / "data"
    async with service_factory("[store]\nbatch_ms = 10\n", data_dir=data) as svc:
        store = svc.ctx.store
        assert isinstance(store, Store) and store.path == data / "edge.db"
        ids = await asyncio.gather(*(store.record_event("sensor", "door", {"contact": i % 2 == 0}) for i in range(30)))
        assert len(set(ids)) == 30
        assert svc.ctx.metrics.registry.get_sample_value("edge_events_persisted") == 30
        comp = next(s.component for s in svc.supervisor.slots if s.component.name == "store")
        assert comp.health().ok and "30 events persisted" in comp.health().detail
        late = store.record_event("sensor", "door", {"contact": True})  # queued just before shutdown
        t0 = time.monotonic()
        await comp.stop()
        assert time.monotonic() - t0 < 1.0
        assert late.done() and late.result() == ids[-1] + 1
    runner = CliRunner()
    res = runner.invoke(cli, ["events", "query", "--data-dir", str(data), "--since", "5m", "--json"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.output.splitlines()]
    assert len(lines) == 31 and lines[0]["source"] == "door" and lines[0]["payload"] == {"contact": True}


async def test_dead_writer_is_restarted_by_the_supervisor(service_factory):
    toml = "[service]\nrestart_backoff_initial_s = 0.05\n"
    async with service_factory(toml) as svc:
        store = svc.ctx.store
        first = await store.record_event("sensor", "door", {"contact": True})

        def broken(batch):
            raise RuntimeError("simulated writer bug")

        store._writer._apply = broken
        lost = store.record_event("sensor", "door", {"contact": False})
        with pytest.raises(StoreClosed):
            await asyncio.wait_for(lost, 5)
        slot = next(s for s in svc.supervisor.slots if s.component.name == "store")
        deadline = time.monotonic() + 10
        while not (slot.restarts >= 1 and store.running) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert slot.restarts == 1 and "simulated writer bug" in slot.last_error
        assert svc.ctx.store is store, "components holding the store keep a working one"
        assert await asyncio.wait_for(store.record_event("sensor", "door", {"contact": False}), 5) == first + 1


async def test_store_path_from_config(service_factory, tmp_path: Path):
    db = tmp_path / "elsewhere" / "my.db"
    async with service_factory(f'[store]\npath = "{db}"\n', data_dir=tmp_path / "data") as svc:
        await svc.ctx.store.record_event("boot", "edge", {})
    assert db.exists() and not (tmp_path / "data" / "edge.db").exists()


async def test_events_cli_reads_while_service_writes(tmp_path: Path):
    db = tmp_path / "edge.db"
    store = Store(db, batch_ms=5)
    await store.start()
    now = time.time()
    await store.record_event("sensor", "old", {"v": 1}, ts=now - 7200)
    await store.record_event("alarm", "door", {"active": True}, ts=now - 60)
    await store.record_event("sensor", "door", {"contact": False}, ts=now - 30)
    edge = venv_bin("edge")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([edge, "events", *args, "--db", str(db)], capture_output=True, text=True, timeout=30)

    r = await asyncio.to_thread(run, "query", "--since", "10m")
    assert r.returncode == 0, r.stderr
    assert [ln.split()[2] for ln in r.stdout.splitlines()] == ["alarm", "sensor"]
    r = await asyncio.to_thread(run, "query", "--since", "3h", "--kind", "sensor", "--json", "--limit", "1")
    assert [json.loads(ln)["source"] for ln in r.stdout.splitlines()] == ["old"]
    r = await asyncio.to_thread(run, "query", "--since", "last tuesday")
    assert r.returncode == 2 and "expected a duration like 10m" in r.stderr

    follower = subprocess.Popen([edge, "events", "tail", "--follow", "--json", "-n", "1", "--db", str(db)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(await asyncio.wait_for(asyncio.to_thread(follower.stdout.readline), 15))
        assert first["source"] == "door" and first["kind"] == "sensor"
        new_id = await store.record_event("alarm", "leak", {"water_leak": True})
        line = json.loads(await asyncio.wait_for(asyncio.to_thread(follower.stdout.readline), 15))
        assert (line["id"], line["source"], line["payload"]) == (new_id, "leak", {"water_leak": True})
    finally:
        follower.terminate()
        follower.wait(10)
        await store.close()


def test_events_cli_without_database(tmp_path: Path):
    res = CliRunner().invoke(cli, ["events", "tail", "--data-dir", str(tmp_path)])
    assert res.exit_code == 1 and "no database at" in res.output


def test_parse_since():
    now = 1_800_000_000.0
    assert parse_since("10m", now) == now - 600
    assert parse_since("2h", now) == now - 7200
    assert parse_since("1.5d", now) == now - 1.5 * 86400
    assert parse_since("90", now) == now - 90
    assert parse_since("2027-01-15T10:00:00+00:00", now) == 1800007200.0
