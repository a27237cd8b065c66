"""The store as the event loop sees it: every call queues an op and returns a future."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from . import writer as w
from .aggregates import FLUSH_S, HourlyAggregates, numeric_fields
from .retention import Pruner
from .writer import OutboxMessage, StoreClosed

log = logging.getLogger("edge.store")

# events of these kinds are sensor readings: ``source`` is the sensor id and every numeric
# top-level payload field feeds the hourly aggregates (sensor, field, hour)
AGGREGATE_KINDS = frozenset({"sensor"})
MAX_QUEUE = 200_000


class StoreOverloaded(RuntimeError):
    """The writer is this far behind (disk stalled?): the op was refused, not queued."""


@dataclass(frozen=True, slots=True)
class StoreStats:
    events_persisted: int  # events committed since the store was opened
    batches: int  # transactions committed
    queue_len: int  # ops waiting for the writer
    failed_batches: int = 0
    last_error: str = ""
    rows_pruned: int = 0


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class Store:
    def __init__(self, path: str | Path, retention_days: float = 30, aggregate_retention_days: float = 3650,
                 batch_ms: float = 50, *, telemetry_batch_ms: float = 10000, prune_batch_rows: int = 500, prune_interval_s: float = 1.0,
                 prune_idle_s: float = 600.0, prune_first_delay_s: float = 5.0,
                 aggregate_kinds: Iterable[str] = AGGREGATE_KINDS, aggregate_flush_s: float = FLUSH_S,
                 on_batch: Callable[[StoreStats], None] | None = None, max_queue: int = MAX_QUEUE):
        self.path = Path(path)
        self.batch_s = batch_ms / 1000
        self.telemetry_batch_s = max(batch_ms, telemetry_batch_ms) / 1000
        self.aggregate_kinds = frozenset(aggregate_kinds)
        self.max_queue = max_queue
        self._on_batch = on_batch
        self.pruner = Pruner(retention_days, aggregate_retention_days, prune_batch_rows, prune_interval_s,
                             prune_idle_s, prune_first_delay_s)
        self.aggregates = HourlyAggregates(self.aggregate_kinds, aggregate_flush_s)
        self._writer: w.Writer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False  # close() was called
        self._base = (0, 0, 0)  # counts of earlier writers (restarted after a death)
        self.dead: asyncio.Future[BaseException] | None = None  # resolves if the writer dies

    # ---- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Open the database, run the migrations and start the writer thread.

        After the writer died (``dead`` resolved), ``start()`` again starts a new writer on the
        same Store object, so references to it held elsewhere keep working.
        """
        old = self._writer
        if self._closed:
            raise StoreClosed(f"store {self.path} was closed")
        if old is not None:
            if old.alive:
                raise RuntimeError("store already started")
            if old.thread.is_alive():  # the dead writer is still finishing its clean-up
                await asyncio.get_running_loop().run_in_executor(None, old.thread.join, 5.0)
            self._base = (self._base[0] + old.events_persisted, self._base[1] + old.batches,
                          self._base[2] + old.failed_batches)
        loop = self._loop = asyncio.get_running_loop()
        self.dead = loop.create_future()
        self.aggregates = HourlyAggregates(self.aggregate_kinds, self.aggregates.flush_s)  # recovered at open
        wr = w.Writer(self.path, loop, self.batch_s, self.pruner, self.aggregates,
                      on_batch=self._batch_done if self._on_batch else None, on_dead=self._writer_died)
        self._writer = wr
        wr.start()
        await wr.ready

    def _writer_died(self, exc: BaseException) -> None:
        if self.dead is not None and not self.dead.done():
            self.dead.set_result(exc)

    def _batch_done(self, _writer: w.Writer) -> None:  # on the writer thread
        assert self._on_batch is not None
        self._on_batch(self.stats)

    async def close(self) -> None:
        """Commit everything queued, then stop the writer and close the database."""
        wr = self._writer
        self._closed = True
        if wr is None:
            return
        if wr.alive:
            fut = self._loop.create_future()  # type: ignore[union-attr]
            wr.put(w.Op(w.CLOSE, (), fut))
            if not wr.alive:
                self._fail_stranded(wr)
            try:
                await fut
            except StoreClosed:
                pass
        if wr.thread.is_alive():
            await asyncio.get_running_loop().run_in_executor(None, wr.thread.join, 2.0)

    @property
    def running(self) -> bool:
        return self._writer is not None and self._writer.alive and not self._closed

    @property
    def ok(self) -> bool:
        """Running, and the last batch committed."""
        return self.running and self._writer.last_batch_ok  # type: ignore[union-attr]

    @property
    def stats(self) -> StoreStats:
        wr = self._writer
        if wr is None:
            return StoreStats(0, 0, 0)
        e, b, f = self._base
        return StoreStats(e + wr.events_persisted, b + wr.batches, wr.q.qsize(), f + wr.failed_batches,
                          wr.last_error, self.pruner.rows_deleted)

    # ---- queueing ------------------------------------------------------------------------
    def _submit(self, code: int, args: tuple[Any, ...], window: float | None = None) -> asyncio.Future[Any]:
        wr = self._writer
        if wr is None:
            raise RuntimeError("store not started: await store.start() first")
        fut = self._loop.create_future()  # type: ignore[union-attr]
        if self._closed or not wr.alive:
            return self._fail(fut, StoreClosed(wr.last_error if not self._closed and wr.last_error
                                               else f"store {self.path} is closed"))
        if wr.q.qsize() >= self.max_queue:
            return self._fail(fut, StoreOverloaded(
                f"store writer is {self.max_queue} ops behind (disk stalled?); op refused"))
        wr.put(w.Op(code, args, fut, window=window))
        if not wr.alive:  # the writer stopped meanwhile: nobody will take it
            self._fail_stranded(wr)
        return fut

    def _fail_stranded(self, wr: w.Writer) -> None:
        exc = StoreClosed(wr.last_error or f"store {self.path} is closed")
        while True:
            try:
                op = wr.q.get_nowait()
            except Exception:  # noqa: BLE001 - queue.Empty
                break
            if op.fut is not None and not op.fut.done():
                op.fut.set_exception(exc)
                op.fut.exception()

    @staticmethod
    def _fail(fut: asyncio.Future[Any], exc: BaseException) -> asyncio.Future[Any]:
        log.error("store: %s", exc)
        fut.set_exception(exc)
        fut.exception()  # logged here; a caller that drops the future is not warned twice
        return fut

    def _bad(self, what: str) -> asyncio.Future[Any]:
        if self._writer is None:
            raise RuntimeError("store not started: await store.start() first")
        return self._fail(self._loop.create_future(), ValueError(what))  # type: ignore[union-attr]

    # ---- writes ----------------------------------------------------------------------------
    def record_event(self, kind: str, source: str, payload: dict[str, Any], ts: float | None = None, *,
                     telemetry: bool = False) -> asyncio.Future[int]:
        """Queue an event; the future resolves to its id once the batch holding it committed.

        ``telemetry=True`` is for routine readings that changed nothing (a temperature report,
        a battery level): they may wait up to ``telemetry_batch_ms`` for company, so a steady
        trickle costs one SD-card commit per few seconds instead of one per reading. Anything
        that matters (state changes, alarms, relay audit) keeps the short window and takes the
        waiting telemetry along in its commit.
        """
        if not isinstance(payload, dict):
            return self._bad(f"record_event({kind!r}, {source!r}): payload must be a dict, got {type(payload).__name__}")
        try:
            text = _dumps(payload)
        except (TypeError, ValueError) as exc:
            return self._bad(f"record_event({kind!r}, {source!r}): payload is not JSON: {exc}")
        if ts is None:
            ts = time.time()
        numeric = numeric_fields(payload) if kind in self.aggregate_kinds else None
        return self._submit(w.EVENT, (float(ts), str(kind), str(source), text, numeric),
                            self.telemetry_batch_s if telemetry else None)

    def set_state(self, sensor: str, state: dict[str, Any], ts: float | None = None) -> asyncio.Future[None]:
        """Upsert the sensor's current state (an older ``ts`` never overwrites a newer one)."""
        try:
            text = _dumps(state)
        except (TypeError, ValueError) as exc:
            return self._bad(f"set_state({sensor!r}): state is not JSON: {exc}")
        return self._submit(w.STATE, (str(sensor), text, time.time() if ts is None else float(ts)))

    def audit_relay(self, relay: str, command: str, outcome: str, latency_ms: float | None, detail: str = "",
                    ts: float | None = None) -> asyncio.Future[int]:
        """Record what a relay command did; resolves to the audit row id once committed."""
        return self._submit(w.AUDIT, (time.time() if ts is None else float(ts), str(relay), str(command),
                                      str(outcome), None if latency_ms is None else float(latency_ms), str(detail)))

    def outbox_put(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, *, queue: str = "",
                   seq: int | None = None, urgent: bool = False) -> asyncio.Future[int]:
        """Queue a message for the uplink (``queue`` ""), or for another ordered queue (an alarm
        receiver's: ``queue="receiver:<name>"``, with the report's sequence number ``seq``);
        resolves to its id once committed. ``urgent=True`` commits at once instead of waiting
        up to ``batch_ms`` for company (an alarm report is sent only once it is on disk)."""
        if isinstance(payload, str):
            payload = payload.encode()
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            return self._bad(f"outbox_put({topic!r}): payload must be bytes, got {type(payload).__name__}")
        if qos not in (0, 1, 2):
            return self._bad(f"outbox_put({topic!r}): qos must be 0, 1 or 2, got {qos!r}")
        return self._submit(w.OUTBOX_PUT, (time.time(), str(topic), bytes(payload), int(qos), int(bool(retain)),
                                           str(queue), None if seq is None else int(seq)),
                            0.0 if urgent else None)

    # ---- reads and control -----------------------------------------------------------------
    async def outbox_peek(self, limit: int = 100, queue: str = "") -> list[OutboxMessage]:
        """The oldest ``limit`` messages of ``queue`` not yet acknowledged, oldest first."""
        return await self._submit(w.OUTBOX_PEEK, (str(queue), int(limit)))

    async def outbox_ack(self, ids: Iterable[int]) -> int:
        """Remove acknowledged messages; returns how many were removed."""
        ids = [int(i) for i in ids]
        if not ids:
            return 0
        return await self._submit(w.OUTBOX_ACK, (ids,))

    def meta_set(self, key: str, value: int | float | str | None) -> asyncio.Future[None]:
        """Keep a small value (a counter, a mark) in the ``meta`` table; resolves once committed."""
        return self._submit(w.META_SET, (str(key), value))

    async def meta_get(self, key: str) -> Any:
        """The value ``meta_set`` kept under ``key`` (None when there is none)."""
        return await self._submit(w.META_GET, (str(key),))

    async def flush(self) -> None:
        """Return once everything queued before this call has committed."""
        await self._submit(w.FLUSH, ())

    async def prune_step(self) -> int:
        """Run one retention step now (after what is queued); returns the rows deleted."""
        return await self._submit(w.PRUNE, ())

    async def checkpoint(self) -> tuple[int, int, int] | None:
        """Commit what is queued, then a passive WAL checkpoint: (busy, wal pages, checkpointed)."""
        return await self._submit(w.CHECKPOINT, ())


__all__ = ["Store", "StoreStats", "StoreClosed", "StoreOverloaded", "OutboxMessage", "AGGREGATE_KINDS"]
