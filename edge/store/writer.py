"""The writer thread: the only connection that writes, with group commit.

The event loop puts ``Op``s on a ``queue.SimpleQueue`` (never blocks). The writer takes the
first op, then everything else that arrives until ``batch_s`` after that first op was queued
(or at once when an op was already waiting that long; telemetry ops carry a longer window of
their own, and the batch closes at the earliest deadline of the ops it holds), runs the whole batch in one
transaction, commits (``synchronous=FULL``: on disk when COMMIT returns), and only then
resolves the callers' futures, with one ``loop.call_soon_threadsafe`` per batch.

If one op of a batch fails, the batch is replayed with a savepoint per op so only the bad op
fails; if the commit itself fails, every op of the batch fails. Either way the error is logged
and the writer goes on with the next batch. Anything that would end the thread unexpectedly
is logged, fails everything still queued and is reported through ``on_dead``.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import schema
from .aggregates import HourlyAggregates
from .retention import Pruner

log = logging.getLogger("edge.store.writer")

MAX_BATCH = 5000

# op codes
EVENT, STATE, AUDIT, OUTBOX_PUT, OUTBOX_PEEK, OUTBOX_ACK, FLUSH, PRUNE, CHECKPOINT, CLOSE, META_SET, META_GET = range(12)
URGENT = frozenset({FLUSH, CLOSE, CHECKPOINT, PRUNE})


class StoreClosed(RuntimeError):
    """The store is closed (or its writer stopped): nothing more is written."""


@dataclass(slots=True)
class Op:
    code: int
    args: tuple[Any, ...]
    fut: asyncio.Future[Any] | None
    t: float = field(default_factory=time.monotonic)
    window: float | None = None  # this op's own commit window (telemetry waits longer)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    queue: str = ""
    seq: int | None = None


def _settle(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, value, exc in results:
        if fut.done():
            continue
        if exc is None:
            fut.set_result(value)
        else:
            fut.set_exception(exc)
            fut.exception()  # the writer logged it; a caller that ignores the future is fine


_SQL_EVENT = "INSERT INTO events (ts, kind, source, payload) VALUES (?, ?, ?, ?)"
_SQL_STATE = (
    "INSERT INTO state (sensor, state, ts) VALUES (?, ?, ?) ON CONFLICT (sensor) DO UPDATE "
    "SET state = excluded.state, ts = excluded.ts WHERE excluded.ts >= state.ts"
)
_SQL_AUDIT = "INSERT INTO relay_audit (ts, relay, command, outcome, latency_ms, detail) VALUES (?, ?, ?, ?, ?, ?)"
_SQL_OUTBOX = "INSERT INTO outbox (ts, topic, payload, qos, retain, queue, seq) VALUES (?, ?, ?, ?, ?, ?, ?)"
_SQL_META = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"


class Writer:
    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop, batch_s: float, pruner: Pruner,
                 aggregates: HourlyAggregates,
                 on_batch: Callable[["Writer"], None] | None = None,
                 on_dead: Callable[[BaseException], None] | None = None):
        self.path = path
        self.loop = loop
        self.batch_s = batch_s
        self.pruner = pruner
        self.aggregates = aggregates
        self.on_batch = on_batch
        self.on_dead = on_dead
        self.q: queue.SimpleQueue[Op] = queue.SimpleQueue()
        self.conn: sqlite3.Connection | None = None
        self.thread = threading.Thread(target=self._main, name="edge-store-writer", daemon=True)
        self.ready: asyncio.Future[None] = loop.create_future()
        # stats, written by the writer thread only
        self.events_persisted = 0
        self.batches = 0
        self.ops_committed = 0
        self.failed_batches = 0
        self.last_error = ""
        self.last_batch_ok = True
        self.migrations_applied: list[int] = []
        self.alive = False

    # ---- loop side --------------------------------------------------------------------
    def start(self) -> None:
        self.alive = True
        self.thread.start()

    def put(self, op: Op) -> None:
        self.q.put(op)

    # ---- thread side ------------------------------------------------------------------
    def _call_loop(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed: nobody is waiting any more
            pass

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            schema.configure(conn)
            self.migrations_applied = schema.migrate(conn)
            self.aggregates.recover(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _main(self) -> None:
        try:
            self.conn = self._open()
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self.alive = False
            log.error("cannot open the store %s: %s", self.path, exc)
            self._call_loop(_set_exc_if_pending, self.ready, exc)
            return
        if self.migrations_applied:
            log.info("store %s migrated to schema version %d", self.path, self.migrations_applied[-1])
        self._call_loop(_set_result_if_pending, self.ready, None)
        err: BaseException | None = None
        batch: list[Op] = []
        try:
            while True:
                batch = self._collect()
                if batch:
                    if self._apply(batch):
                        batch = []
                        break
                    batch = []
                if self.aggregates.due():
                    self._flush_aggregates()
                if self.pruner.due():
                    self._prune_step()
        except BaseException as exc:  # noqa: BLE001 - the writer never dies silently
            err = exc
            self.last_error = f"writer died: {type(exc).__name__}: {exc}"
            log.critical("store writer died: %s", exc, exc_info=True)
        finally:
            self.alive = False
            try:
                self.conn.close()
            except Exception as exc:  # noqa: BLE001
                log.error("closing the store: %s", exc)
            gone = StoreClosed(self.last_error or "store closed")
            if batch:  # the batch in hand when the writer died: not committed, say so
                self._call_loop(_settle, [(op.fut, None, gone) for op in batch if op.fut is not None])
            self._fail_queued(gone)
            if err is not None and self.on_dead is not None:
                self._call_loop(self.on_dead, err)

    def _fail_queued(self, exc: BaseException) -> None:
        results = []
        while True:
            try:
                op = self.q.get_nowait()
            except queue.Empty:
                break
            if op.fut is not None:
                results.append((op.fut, None, exc))
        if results:
            self._call_loop(_settle, results)

    def _collect(self) -> list[Op]:
        q = self.q
        wait = min(self.pruner.seconds_until_due(), self.aggregates.seconds_until_due())
        try:
            first = q.get(timeout=wait) if wait > 0 else q.get_nowait()
        except queue.Empty:
            return []
        batch = [first]
        if first.code in URGENT:
            return self._drain(batch)
        # The batch commits at the earliest deadline of the ops it holds: an urgent op (alarm,
        # state, audit: the 50 ms window) takes waiting telemetry along with it.
        deadline = first.t + (self.batch_s if first.window is None else first.window)
        while len(batch) < MAX_BATCH:
            remaining = deadline - time.monotonic()
            try:
                op = q.get(timeout=remaining) if remaining > 0 else q.get_nowait()
            except queue.Empty:
                break
            batch.append(op)
            deadline = min(deadline, op.t + (self.batch_s if op.window is None else op.window))
            if op.code in URGENT:
                return self._drain(batch)
        return batch

    def _drain(self, batch: list[Op]) -> list[Op]:
        """Add what is already queued, without waiting (up to MAX_BATCH)."""
        if batch[-1].code == CLOSE:
            return batch
        while len(batch) < MAX_BATCH:
            try:
                op = self.q.get_nowait()
            except queue.Empty:
                break
            batch.append(op)
            if op.code == CLOSE:
                break
        return batch

    def _apply(self, batch: list[Op]) -> bool:
        """Run one batch in one transaction. Returns True when the batch closed the store."""
        conn = self.conn
        assert conn is not None
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        folds: list[tuple[int, tuple[Any, ...]]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                value = self._do(op)
                if op.fut is not None:
                    results.append((op.fut, value, None))
                if op.code == EVENT:
                    folds.append((value, op.args))
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            results, folds = self._apply_one_by_one(batch, exc)
        else:
            self.batches += 1
            self.ops_committed += len(batch)
            self.events_persisted += len(folds)
            self.last_batch_ok = True
        events = len(folds)
        agg = self.aggregates
        for event_id, (ts, _kind, source, _payload, numeric) in folds:  # committed: fold them
            agg.add(event_id, ts, source, numeric)
        closing = batch[-1].code == CLOSE
        if agg.due() or any(op.code in (FLUSH, CLOSE) for op in batch):
            self._flush_aggregates()
        if any(op.code in (CHECKPOINT, PRUNE) for op in batch):
            codes = {id(op.fut): op.code for op in batch if op.code in (CHECKPOINT, PRUNE)}
            results = [self._post(codes.get(id(f)), f, v, e) for f, v, e in results]
        if self.on_batch is not None and events:
            try:
                self.on_batch(self)
            except Exception as exc:  # noqa: BLE001
                log.error("store on_batch callback failed: %s", exc)
        if results:
            self._call_loop(_settle, results)
        return closing

    def _apply_one_by_one(self, batch: list[Op], first_exc: Exception):
        """Replay a failed batch with a savepoint per op: only the ops that fail, fail."""
        conn = self.conn
        assert conn is not None
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        folds: list[tuple[int, tuple[Any, ...]]] = []
        failed = 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                conn.execute("SAVEPOINT op")
                try:
                    value = self._do(op)
                except Exception as exc:  # noqa: BLE001
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    failed += 1
                    log.error("store: %s failed: %s: %s", _describe(op), type(exc).__name__, exc)
                    if op.fut is not None:
                        results.append((op.fut, None, exc))
                    continue
                conn.execute("RELEASE op")
                if op.fut is not None:
                    results.append((op.fut, value, None))
                if op.code == EVENT:
                    folds.append((value, op.args))
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - the commit (or the disk) failed: the whole batch failed
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            self.failed_batches += 1
            self.last_batch_ok = False
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("store: batch of %d ops failed: %s (first error: %s)", len(batch), self.last_error, first_exc)
            return [(op.fut, None, exc) for op in batch if op.fut is not None], []
        if failed:
            self.last_error = f"{type(first_exc).__name__}: {first_exc}"
        self.last_batch_ok = True  # the store works; single bad ops were refused
        self.batches += 1
        self.ops_committed += len(batch) - failed
        self.events_persisted += len(folds)
        return results, folds

    def _do(self, op: Op) -> Any:
        conn = self.conn
        assert conn is not None
        code, a = op.code, op.args
        if code == EVENT:
            return conn.execute(_SQL_EVENT, a[:4]).lastrowid
        if code == STATE:
            conn.execute(_SQL_STATE, a)
            return None
        if code == AUDIT:
            return conn.execute(_SQL_AUDIT, a).lastrowid
        if code == OUTBOX_PUT:
            return conn.execute(_SQL_OUTBOX, a).lastrowid
        if code == OUTBOX_PEEK:
            rows = conn.execute("SELECT id, topic, payload, qos, retain, queue, seq FROM outbox WHERE queue = ? "
                                "ORDER BY id LIMIT ?", a).fetchall()
            return [OutboxMessage(i, t, bytes(p), q, bool(r), qu, s) for i, t, p, q, r, qu, s in rows]
        if code == META_SET:
            conn.execute(_SQL_META, a)
            return None
        if code == META_GET:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", a).fetchone()
            return None if row is None else row[0]
        if code == OUTBOX_ACK:
            (ids,) = a
            n = 0
            for chunk in range(0, len(ids), 500):
                part = ids[chunk:chunk + 500]
                n += conn.execute(f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(part))})", part).rowcount
            return n
        if code in (FLUSH, CHECKPOINT, PRUNE, CLOSE):  # CHECKPOINT, PRUNE: after the commit, see _post
            return None
        raise ValueError(f"unknown store op {code}")

    def _post(self, code: int | None, fut: asyncio.Future[Any], value: Any, exc: BaseException | None):
        """Ops that run after the batch committed, outside its transaction."""
        if exc is not None or code not in (CHECKPOINT, PRUNE):
            return fut, value, exc
        try:
            if code == CHECKPOINT:
                return fut, self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone(), None  # type: ignore[union-attr]
            self._flush_aggregates()  # never prune raw events not yet folded into the table
            return fut, self.pruner.step(self.conn), None  # type: ignore[arg-type]
        except sqlite3.Error as err:
            log.error("store %s failed: %s", "checkpoint" if code == CHECKPOINT else "retention step", err)
            return fut, None, err

    def _flush_aggregates(self) -> None:
        try:
            self.aggregates.flush(self.conn)  # type: ignore[arg-type]
        except sqlite3.Error as exc:  # kept in memory; the next flush tries again
            self.last_error = f"hourly aggregates: {type(exc).__name__}: {exc}"
            log.error("store: writing hourly aggregates failed: %s", exc)

    def _prune_step(self) -> None:
        self._flush_aggregates()  # never prune raw events not yet folded into the table
        try:
            self.pruner.step(self.conn)  # type: ignore[arg-type]
        except sqlite3.Error as exc:
            self.last_error = f"prune: {type(exc).__name__}: {exc}"
            log.error("store retention step failed: %s", exc)


def _describe(op: Op) -> str:
    names = {EVENT: "record_event", STATE: "set_state", AUDIT: "audit_relay", OUTBOX_PUT: "outbox_put",
             OUTBOX_PEEK: "outbox_peek", OUTBOX_ACK: "outbox_ack", META_SET: "meta_set", META_GET: "meta_get"}
    name = names.get(op.code, f"op {op.code}")
    if op.code == EVENT:
        return f"{name}({op.args[1]!r}, {op.args[2]!r})"
    if op.code in (STATE, AUDIT):
        return f"{name}({op.args[0]!r})" if op.code == STATE else f"{name}({op.args[1]!r})"
    return name


def _set_result_if_pending(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exc_if_pending(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
