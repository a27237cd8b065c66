"""Store benchmark: durable events/s on one core, and bytes written to disk per event.

1. Throughput: many concurrent ``await store.record_event(...)`` (every one waits for its
   commit, synchronous=FULL) for a few seconds, the process pinned to one CPU.
2. Disk cost: a steady 10 events/s for ~30 s, twice: as routine readings (``telemetry=True``,
   sharing commits within the telemetry window: ``bytes_written_per_event``) and as events
   that matter (each its own commit at this rate with the 50 ms window:
   ``bytes_written_per_urgent_event``), ``write_bytes`` from /proc/self/io before and after (the writer thread
   is in this process), including a final WAL checkpoint so the copy into the main file counts.

Prints one JSON line: {"bench": "store", "durable_events_per_s": ..., "bytes_written_per_event": ...}
The database lives under $EDGE_BENCH_DIR, else /var/tmp (disk-backed, unlike a tmpfs /tmp).
Options (for experiments): --seconds, --rate-seconds, --rate, --batch-ms, --page-size, --detail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.store import Store, schema  # noqa: E402

PAYLOAD = {"contact": True, "battery": 87, "linkquality": 120, "temperature": 21.5}


def write_bytes() -> int:
    with open("/proc/self/io") as fh:
        for line in fh:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/self/io")


async def throughput(path: Path, seconds: float, batch_ms: float, workers: int = 2000) -> dict[str, float]:
    store = Store(path, batch_ms=batch_ms)
    await store.start()
    done = 0
    stop = False

    async def worker(w: int) -> None:
        nonlocal done
        src = f"sensor{w % 50}"
        while not stop:
            await store.record_event("sensor", src, PAYLOAD)
            done += 1

    tasks = [asyncio.create_task(worker(w)) for w in range(workers)]
    await asyncio.sleep(1.0)  # warm up
    n0, t0, b0 = done, time.perf_counter(), store.stats.batches
    await asyncio.sleep(seconds)
    n1, t1, b1 = done, time.perf_counter(), store.stats.batches
    stop = True
    await asyncio.gather(*tasks)
    await store.close()
    return {"events_per_s": (n1 - n0) / (t1 - t0), "events_per_commit": (n1 - n0) / max(1, b1 - b0)}


async def disk_cost(path: Path, seconds: float, rate: float, batch_ms: float, telemetry: bool) -> dict[str, float]:
    store = Store(path, batch_ms=batch_ms)
    await store.start()
    for _ in range(20):  # the first pages of each table exist, as on a running device
        await store.record_event("sensor", "warmup", PAYLOAD)
    await store.checkpoint()
    n = int(seconds * rate)
    b0, c0 = write_bytes(), store.stats.batches
    t0 = time.monotonic()
    futs = []
    for i in range(n):
        await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        futs.append(store.record_event("sensor", f"sensor{i % 5}", PAYLOAD, telemetry=telemetry))
    await asyncio.gather(*futs)
    commits = store.stats.batches - c0
    before_ckpt = write_bytes()
    await store.checkpoint()
    b1 = write_bytes()
    await store.close()
    return {"bytes_per_event": (b1 - b0) / n, "wal_bytes_per_event": (before_ckpt - b0) / n,
            "checkpoint_bytes_per_event": (b1 - before_ckpt) / n, "commits": commits, "events": n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0, help="throughput measuring time")
    ap.add_argument("--rate-seconds", type=float, default=30.0, help="duration of the steady-rate part")
    ap.add_argument("--rate", type=float, default=10.0, help="events/s of the steady-rate part")
    ap.add_argument("--batch-ms", type=float, default=50.0)
    ap.add_argument("--page-size", type=int, default=None, help="override schema.PAGE_SIZE (new databases)")
    ap.add_argument("--detail", action="store_true", help="also print the details on stderr")
    args = ap.parse_args()
    if args.page_size:
        schema.PAGE_SIZE = args.page_size
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    except (AttributeError, OSError):
        pass
    base = Path(os.environ.get("EDGE_BENCH_DIR", "/var/tmp"))
    d = Path(tempfile.mkdtemp(prefix="edge-bench-store-", dir=base))
    try:
        tp = asyncio.run(throughput(d / "tp.db", args.seconds, args.batch_ms))
        dc = asyncio.run(disk_cost(d / "dc.db", args.rate_seconds, args.rate, args.batch_ms, telemetry=True))
        urgent = asyncio.run(disk_cost(d / "dcu.db", args.rate_seconds, args.rate, args.batch_ms, telemetry=False))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if args.detail:
        print(json.dumps({"page_size": schema.PAGE_SIZE, **tp, "telemetry": dc, "urgent": urgent}), file=sys.stderr)
    print(json.dumps({"bench": "store", "durable_events_per_s": round(tp["events_per_s"]),
                      "bytes_written_per_event": round(dc["bytes_per_event"]),
                      "bytes_written_per_urgent_event": round(urgent["bytes_per_event"])}))


if __name__ == "__main__":
    main()
