"""The store as the event loop sees it: every call queues an op and returns a future.

The queue is the store's own: a ``Store`` accepts records from the moment it is built, before
the database is open and while the disk is away; they wait in memory (at most ``max_queue``
ops) and are written once the writer can. ``committed`` is the seq of the last op whose batch
committed (ops commit in the order they were queued), ``durable`` says whether the store is
writing right now (and ``problem`` why not).
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from . import writer as w
from .aggregates import FLUSH_S, HourlyAggregates, numeric_fields
from .ops import (AUDIT, CHECKPOINT, CLOSE, EVENT, FLUSH, GROUP, META_GET, META_SET, OUTBOX_ACK, OUTBOX_PEEK, OUTBOX_PUT,
                  PRUNE, SEEN_KEYS, STATE, URGENT, Member, Op, OutboxMessage)
from .retention import Pruner
from .writer import StoreClosed

log = logging.getLogger("edge.store")

# events of these kinds are sensor readings: ``source`` is the sensor id and every numeric
# top-level payload field feeds the hourly aggregates (sensor, field, hour)
AGGREGATE_KINDS = frozenset({"sensor"})
MAX_QUEUE = 200_000
# a write running this long means the disk is stalling: the store is not durable meanwhile
STALLED_AFTER_S = 5.0


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


# one encoder for every record (json.dumps with options builds a new one per call)
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


class Store:
    def __init__(self, path: str | Path, retention_days: float = 30, aggregate_retention_days: float = 3650,
                 batch_ms: float = 50, *, telemetry_batch_ms: float = 10000, prune_batch_rows: int = 500, prune_interval_s: float = 1.0,
                 prune_idle_s: float = 600.0, prune_first_delay_s: float = 5.0,
                 aggregate_kinds: Iterable[str] = AGGREGATE_KINDS, aggregate_flush_s: float = FLUSH_S,
                 on_batch: Callable[[StoreStats], None] | None = None, max_queue: int = MAX_QUEUE,
                 outbox_max_messages: int = 100_000, stalled_after_s: float = STALLED_AFTER_S):
        self.path = Path(path)
        self.batch_s = batch_ms / 1000
        self.telemetry_batch_s = max(batch_ms, telemetry_batch_ms) / 1000
        self.aggregate_kinds = frozenset(aggregate_kinds)
        self.max_queue = max_queue
        self.stalled_after_s = stalled_after_s
        self._on_batch = on_batch
        self.pruner = Pruner(retention_days, aggregate_retention_days, prune_batch_rows, prune_interval_s,
                             prune_idle_s, prune_first_delay_s)
        self.pruner.outbox_max_messages = outbox_max_messages
        self.aggregates = HourlyAggregates(self.aggregate_kinds, aggregate_flush_s)
        self.q: queue.SimpleQueue[Op] = queue.SimpleQueue()
        self._wake = threading.Event()  # the writer's: an op that cannot wait for its batch's deadline
        self._give_up = threading.Event()
        self._writer: w.Writer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False  # close() was called
        self._base = (0, 0, 0)  # counts of earlier writers (restarted after a death)
        self.dead: asyncio.Future[BaseException] | None = None  # resolves if the writer dies
        self.submitted = 0  # seq of the last op queued
        self.committed = 0  # seq of the last op settled (committed, or failed for good)
        self.durable = False  # writing now: open, the last batch committed, no write stalled
        self.problem = "not started"
        self._group: list[Member] | None = None
        self._group_window = 0.0  # the shortest commit window of the open group's members
        self._listeners: list[Callable[[], None]] = []

    # ---- lifecycle ----------------------------------------------------------------------
    async def start(self, open_wait_s: float = 2.0) -> bool:
        """Start the writer thread, which opens the database (migrations, recovery) and then
        writes what is queued. Returns True once open, False when the first attempt failed
        or took longer than ``open_wait_s``: the writer keeps trying by itself (``problem``
        says why) and ops wait in memory meanwhile; nothing here raises for the disk.

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
        wr = w.Writer(self.path, loop, self.q, self.batch_s, self.pruner, self.aggregates, self._give_up,
                      on_settled=self._settled, on_state=self.refresh,
                      on_batch=self._batch_done if self._on_batch else None, on_dead=self._writer_died,
                      wake=self._wake)
        self._writer = wr
        wr.start()
        try:
            opened = await asyncio.wait_for(asyncio.shield(wr.ready), open_wait_s)
        except TimeoutError:
            opened = False
        self.refresh()
        return opened

    def _writer_died(self, exc: BaseException) -> None:
        if self.dead is not None and not self.dead.done():
            self.dead.set_result(exc)

    def _batch_done(self, _writer: w.Writer) -> None:  # on the writer thread
        assert self._on_batch is not None
        self._on_batch(self.stats)

    def _settled(self, results: w.Results, upto: int) -> None:
        """A batch is done (on the loop): resolve its futures, move the watermark, tell listeners."""
        w.settle(results)
        if upto > self.committed:
            self.committed = upto
        if not self.durable:
            self.refresh()
        for cb in self._listeners:
            cb()

    async def close(self, timeout_s: float = 5.0) -> None:
        """Commit everything queued, then stop the writer and close the database. A disk
        that does not take it within ``timeout_s`` is given up on (what waits fails)."""
        wr = self._writer
        self._closed = True
        if wr is None:
            return
        loop = asyncio.get_running_loop()
        if wr.alive:
            fut = loop.create_future()
            self._put(Op(CLOSE, (), fut))
            try:
                await asyncio.wait_for(asyncio.shield(fut), timeout_s)
            except TimeoutError:
                log.error("store: %s not closed within %.1f s (%s); what was not written is lost",
                          self.path, timeout_s, self.problem or "disk stalled?")
            except StoreClosed:
                pass
        self._give_up.set()
        if wr.thread.is_alive():
            await loop.run_in_executor(None, wr.thread.join, 1.0)
        self.refresh()

    @property
    def running(self) -> bool:
        return self._writer is not None and self._writer.alive and not self._closed

    @property
    def ok(self) -> bool:
        """Running, and the last batch committed."""
        return self.running and self._writer.last_batch_ok  # type: ignore[union-attr]

    def busy_for(self) -> float:
        """How long the writer's current open/write attempt has run (0 when idle)."""
        wr = self._writer
        return wr.busy_for() if wr is not None and wr.alive else 0.0

    def refresh(self) -> None:
        """Work out ``durable`` and ``problem`` again (after a batch, on the writer's news, and
        periodically for a stall); listeners hear of a change."""
        wr = self._writer
        waiting = self.q.qsize()
        if wr is None:
            problem = "not started"
        elif self._closed:
            problem = "closed"
        elif wr.open_error:
            problem = f"{wr.open_error}; {waiting} records wait in memory"
        elif not wr.alive:
            problem = f"writer stopped ({wr.last_error or 'starting'}); {waiting} records wait in memory"
        elif not wr.last_batch_ok:
            problem = f"writes fail: {wr.last_error}; retrying, {waiting} records wait in memory"
        elif (busy := wr.busy_for()) > self.stalled_after_s:
            problem = f"one write has run {busy:.1f} s (disk stalled?); {waiting} records wait in memory"
        elif wr.conn is None:
            problem = "opening the database"
        else:
            problem = ""
        changed = (not problem) != self.durable
        self.problem = problem
        self.durable = not problem
        if changed:
            (log.info if self.durable else log.warning)("store %s", "writes again" if self.durable else f"not durable: {problem}")
            for cb in self._listeners:
                cb()

    def add_listener(self, cb: Callable[[], None]) -> None:
        """``cb()`` runs on the loop after every batch and when ``durable`` changes."""
        self._listeners.append(cb)

    def remove_listener(self, cb: Callable[[], None]) -> None:
        if cb in self._listeners:
            self._listeners.remove(cb)

    @property
    def stats(self) -> StoreStats:
        wr = self._writer
        if wr is None:
            return StoreStats(0, 0, self.q.qsize())
        e, b, f = self._base
        return StoreStats(e + wr.events_persisted, b + wr.batches, self.q.qsize(), f + wr.failed_batches,
                          wr.last_error, self.pruner.rows_deleted)

    # ---- queueing ------------------------------------------------------------------------
    def _loop_now(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _put(self, op: Op) -> int:
        self.submitted += 1
        op.seq = self.submitted
        self.q.put(op)
        wr = self._writer
        # the writer takes ops in bulk at its batch's deadline; wake it only for one that
        # cannot wait that long (an idle writer wakes on the queue itself)
        if (wr is not None and not self._wake.is_set()
                and (op.code in URGENT or op.t + (self.batch_s if op.window is None else op.window) < wr.deadline)):
            self._wake.set()
        return op.seq

    def _submit(self, code: int, args: tuple[Any, ...], window: float | None = None) -> asyncio.Future[Any]:
        fut = self._loop_now().create_future()
        if self._group is not None:
            self._group.append((code, args, fut))
            w = self.batch_s if window is None else window
            if w < self._group_window:
                self._group_window = w
            return fut
        if self._closed:
            return self._fail(fut, StoreClosed(f"store {self.path} is closed"))
        if self.q.qsize() >= self.max_queue:
            return self._fail(fut, StoreOverloaded(
                f"store writer is {self.max_queue} ops behind ({self.problem or 'disk slow?'}); op refused"))
        self._put(Op(code, args, fut, window=window))
        return fut

    @staticmethod
    def _fail(fut: asyncio.Future[Any], exc: BaseException) -> asyncio.Future[Any]:
        log.error("store: %s", exc)
        fut.set_exception(exc)
        fut.exception()  # logged here; a caller that drops the future is not warned twice
        return fut

    def _bad(self, what: str) -> asyncio.Future[Any]:
        return self._fail(self._loop_now().create_future(), ValueError(what))

    # ---- groups: what one message produced commits together ----------------------------------
    def begin_group(self) -> None:
        """Collect the ops queued from now until ``end_group`` into one (same transaction)."""
        self._group = []
        self._group_window = self.telemetry_batch_s

    def end_group(self, seen: tuple[str, int, int] | None = None) -> int:
        """Queue the group; returns its seq (acknowledge the message once ``committed`` reaches
        it), 0 when the group is empty, -1 when the store refused it (closed or overloaded:
        its ops failed). ``seen`` (lane, packet id, digest) is written with it."""
        members, self._group = self._group, None
        if not members:
            return 0
        if self._closed or self.q.qsize() >= self.max_queue:
            exc: BaseException = StoreClosed(f"store {self.path} is closed") if self._closed else StoreOverloaded(
                f"store writer is {self.max_queue} ops behind ({self.problem or 'disk slow?'}); message not recorded")
            log.error("store: %s", exc)
            for _, _, fut in members:
                if fut is not None and not fut.done():
                    fut.set_exception(exc)
                    fut.exception()
            return -1
        # the group commits within the shortest window of its members (telemetry alone may wait)
        return self._put(Op(GROUP, (members, seen), None, window=self._group_window))

    def commit_soon(self) -> None:
        """Commit what is queued now rather than at its window's end (the ingest asks when the
        broker's in-flight window is filling up)."""
        if not self._closed:
            self._put(Op(FLUSH, (), None))

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
        return self._submit(EVENT, (float(ts), str(kind), str(source), text, numeric),
                            self.telemetry_batch_s if telemetry else None)

    def set_state(self, sensor: str, state: dict[str, Any], ts: float | None = None) -> asyncio.Future[None]:
        """Upsert the sensor's current state (an older ``ts`` never overwrites a newer one)."""
        try:
            text = _dumps(state)
        except (TypeError, ValueError) as exc:
            return self._bad(f"set_state({sensor!r}): state is not JSON: {exc}")
        return self._submit(STATE, (str(sensor), text, time.time() if ts is None else float(ts)))

    def audit_relay(self, relay: str, command: str, outcome: str, latency_ms: float | None, detail: str = "",
                    ts: float | None = None) -> asyncio.Future[int]:
        """Record what a relay command did; resolves to the audit row id once committed."""
        return self._submit(AUDIT, (time.time() if ts is None else float(ts), str(relay), str(command),
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
        return self._submit(OUTBOX_PUT, (time.time(), str(topic), bytes(payload), int(qos), int(bool(retain)),
                                         str(queue), None if seq is None else int(seq)),
                            0.0 if urgent else None)

    # ---- reads and control -----------------------------------------------------------------
    async def outbox_peek(self, limit: int = 100, queue: str = "") -> list[OutboxMessage]:
        """The oldest ``limit`` messages of ``queue`` not yet acknowledged, oldest first."""
        return await self._submit(OUTBOX_PEEK, (str(queue), int(limit)))

    async def outbox_ack(self, ids: Iterable[int]) -> int:
        """Remove acknowledged messages; returns how many were removed."""
        ids = [int(i) for i in ids]
        if not ids:
            return 0
        return await self._submit(OUTBOX_ACK, (ids,))

    def meta_set(self, key: str, value: int | float | str | None) -> asyncio.Future[None]:
        """Keep a small value (a counter, a mark) in the ``meta`` table; resolves once committed."""
        return self._submit(META_SET, (str(key), value))

    async def meta_get(self, key: str) -> Any:
        """The value ``meta_set`` kept under ``key`` (None when there is none)."""
        return await self._submit(META_GET, (str(key),))

    async def seen_keys(self, lane: str, limit: int) -> dict[int, int]:
        """The keys (packet id -> digest) of the last ``limit`` messages recorded from ``lane``."""
        return await self._submit(SEEN_KEYS, (str(lane), int(limit)))

    async def flush(self) -> None:
        """Return once everything queued before this call has committed."""
        await self._submit(FLUSH, ())

    async def prune_step(self) -> int:
        """Run one retention step now (after what is queued); returns the rows deleted."""
        return await self._submit(PRUNE, ())

    async def checkpoint(self) -> tuple[int, int, int] | None:
        """Commit what is queued, then a passive WAL checkpoint: (busy, wal pages, checkpointed)."""
        return await self._submit(CHECKPOINT, ())


__all__ = ["Store", "StoreStats", "StoreClosed", "StoreOverloaded", "OutboxMessage", "AGGREGATE_KINDS"]
