"""The writer thread: the only connection that writes, with group commit.

The event loop puts ``Op``s on a ``queue.SimpleQueue`` (never blocks); the queue belongs to
the ``Store``, so ops queued while the database cannot be opened, or while a writer is being
restarted, wait there for the disk. The writer takes the first op, then everything else that
arrives until ``batch_s`` after that first op was queued (or at once when an op was already
waiting that long; telemetry ops carry a longer window of their own, and the batch closes at
the earliest deadline of the ops it holds), runs the whole batch in one transaction, commits
(``synchronous=FULL``: on disk when COMMIT returns), and only then resolves the callers'
futures and moves the commit watermark, with one ``loop.call_soon_threadsafe`` per batch.

Failures:

- The database cannot be opened (read-only or missing directory, corrupt file, schema too
  new): the writer says why (``open_error``) and tries again with backoff; ops wait.
- One op of a batch fails on its own (a constraint, a bad value): the batch is replayed with
  a savepoint per op and only that op fails.
- The disk fails the batch (I/O error, full, read-only, locked past the busy timeout): the
  batch is kept and tried again with backoff until it commits; ops keep waiting in memory
  (bounded by the store). Nothing is dropped while the disk is away.
- Anything that would end the thread unexpectedly is logged and reported through
  ``on_dead``; the batch in hand fails, queued ops wait for the next writer.

``busy_for()`` is how long the current open or write attempt has been running: the store
reports a writer that hangs in the disk (a stall), the supervisor's watchdog acts on it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

from . import ops, schema
from .aggregates import HourlyAggregates
from .ops import CHECKPOINT, CLOSE, EVENT, FLUSH, GROUP, PRUNE, URGENT, Op
from .retention import Pruner

log = logging.getLogger("edge.store.writer")

MAX_BATCH = 5000
OPEN_RETRY_INITIAL_S = 0.5
OPEN_RETRY_MAX_S = 30.0
WRITE_RETRY_INITIAL_S = 0.2
WRITE_RETRY_MAX_S = 5.0
# errors of a single op that retrying will not cure; anything else from SQLite is the disk's
OP_ERRORS = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.ProgrammingError, sqlite3.NotSupportedError,
             ValueError, TypeError, OverflowError)

Results = list[tuple[asyncio.Future[Any], Any, BaseException | None]]


class StoreClosed(RuntimeError):
    """The store is closed (or its writer gave up): nothing more is written."""


class _DiskFailed(Exception):
    """The disk failed the batch; it is kept and tried again."""


def settle(results: Results) -> None:
    for fut, value, exc in results:
        if fut.done():
            continue
        if exc is None:
            fut.set_result(value)
        else:
            fut.set_exception(exc)
            fut.exception()  # the writer logged it; a caller that ignores the future is fine


def futures_of(batch: list[Op]) -> list[asyncio.Future[Any]]:
    out = []
    for op in batch:
        if op.code == GROUP:
            out += [fut for _, _, fut in op.args[0] if fut is not None]
        elif op.fut is not None:
            out.append(op.fut)
    return out


class Writer:
    """One writer thread. ``on_settled(results, upto_seq)`` runs on the loop after every
    batch (committed, or failed for good); ``on_state()`` on the loop when the writer's
    health changed (opened, a batch failed, writes work again)."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop, q: "queue.SimpleQueue[Op]", batch_s: float,
                 pruner: Pruner, aggregates: HourlyAggregates, give_up: threading.Event, *,
                 on_settled: Callable[[Results, int], None], on_state: Callable[[], None],
                 on_batch: Callable[["Writer"], None] | None = None,
                 on_dead: Callable[[BaseException], None] | None = None, wake: threading.Event | None = None):
        self.path = path
        self.loop = loop
        self.q = q
        self.batch_s = batch_s
        self.pruner = pruner
        self.aggregates = aggregates
        self.give_up = give_up  # set by the store: stop retrying, fail what waits, exit
        self.on_settled = on_settled
        self.on_state = on_state
        self.on_batch = on_batch
        self.on_dead = on_dead
        # set by the store for an op that cannot wait until ``deadline`` (urgent, or due
        # sooner): the writer takes ops as they come without waking for each one
        self.wake = wake if wake is not None else threading.Event()
        self.deadline = math.inf  # when the batch being collected commits (inf: none)
        self.conn: sqlite3.Connection | None = None
        self.thread = threading.Thread(target=self._main, name="edge-store-writer", daemon=True)
        self.ready: asyncio.Future[bool] = loop.create_future()  # the first open attempt: opened or not
        # stats and health, written by the writer thread only
        self.events_persisted = 0
        self.batches = 0
        self.ops_committed = 0
        self.failed_batches = 0
        self.last_error = ""
        self.open_error = ""  # why the database is not open ("" once it is)
        self.last_batch_ok = True
        self.migrations_applied: list[int] = []
        self.busy_since = 0.0  # monotonic start of the running open/write attempt (0: idle)
        self.alive = False

    # ---- loop side --------------------------------------------------------------------
    def start(self) -> None:
        self.alive = True
        self.thread.start()

    def busy_for(self) -> float:
        since = self.busy_since
        return time.monotonic() - since if since else 0.0

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

    def _open_until_ok(self) -> bool:
        """Open the database, trying again with backoff; False when told to give up."""
        delay = OPEN_RETRY_INITIAL_S
        first = True
        while True:
            self.busy_since = time.monotonic()
            try:
                conn = self._open()
            except Exception as exc:  # noqa: BLE001 - the disk or the file: reported, retried
                self.busy_since = 0.0
                why = f"cannot open the database {self.path}: {type(exc).__name__}: {exc}"
                if why != self.open_error:
                    log.error("%s; retrying every %.0f s at most, records wait in memory", why, OPEN_RETRY_MAX_S)
                self.open_error = self.last_error = why
                if first:
                    first = False
                    self._call_loop(_resolve, self.ready, False)
                self._call_loop(self.on_state)
                if self.give_up.wait(delay):
                    return False
                delay = min(delay * 2, OPEN_RETRY_MAX_S)
                continue
            self.busy_since = 0.0
            self.conn = conn
            if self.open_error:
                log.warning("store %s open after all (%s before)", self.path, self.open_error)
            self.open_error = ""
            if self.migrations_applied:
                log.info("store %s migrated to schema version %d", self.path, self.migrations_applied[-1])
            self._call_loop(_resolve, self.ready, True)
            self._call_loop(self.on_state)
            return True

    def _main(self) -> None:
        err: BaseException | None = None
        batch: list[Op] = []
        closed = False
        try:
            if not self._open_until_ok():
                closed = True
                return
            while True:
                batch = self._collect()
                if batch:
                    closed = self._commit(batch)
                    batch = []
                    if closed:
                        break
                if self.aggregates.due():
                    self._housekeeping(self._flush_aggregates)
                if self.pruner.due():
                    self._housekeeping(self._prune_step)
        except BaseException as exc:  # noqa: BLE001 - the writer never dies silently
            err = exc
            self.last_error = f"writer died: {type(exc).__name__}: {exc}"
            log.critical("store writer died: %s", exc, exc_info=True)
        finally:
            self.alive = False
            self.busy_since = 0.0
            if self.conn is not None:
                try:
                    self.conn.close()
                except Exception as exc:  # noqa: BLE001
                    log.error("closing the store: %s", exc)
            gone = StoreClosed(self.last_error or "store closed")
            if batch:  # the batch in hand when the writer died: not committed, say so
                self._call_loop(self.on_settled, [(f, None, gone) for f in futures_of(batch)], batch[-1].seq)
            if closed or self.give_up.is_set():
                self._fail_queued(gone)  # nobody will write them: the store is closed
            if err is not None and self.on_dead is not None:
                self._call_loop(self.on_dead, err)
            self._call_loop(self.on_state)

    def _fail_queued(self, exc: BaseException) -> None:
        batch = []
        while True:
            try:
                batch.append(self.q.get_nowait())
            except queue.Empty:
                break
        if batch:
            self._call_loop(self.on_settled, [(f, None, exc) for f in futures_of(batch)], batch[-1].seq)

    def _collect(self) -> list[Op]:
        """The next batch: the first op, then what comes until the earliest deadline of the
        ops taken (an urgent op, or MAX_BATCH, closes it at once). Ops that come meanwhile
        are taken in bulk at the deadline, or when the store wakes the writer for one that
        cannot wait that long: waking for each op cost a thread switch per reading."""
        q = self.q
        wait = min(self.pruner.seconds_until_due(), self.aggregates.seconds_until_due(), 1.0)
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
        wake = self.wake
        try:
            while True:
                wake.clear()  # before taking: a wake for an op put after this is not lost
                while len(batch) < MAX_BATCH:
                    try:
                        op = q.get_nowait()
                    except queue.Empty:
                        break
                    batch.append(op)
                    if op.code in URGENT:
                        return self._drain(batch)
                    due = op.t + (self.batch_s if op.window is None else op.window)
                    if due < deadline:
                        deadline = due
                if len(batch) >= MAX_BATCH:
                    return batch
                self.deadline = deadline
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return batch
                wake.wait(remaining)
        finally:
            self.deadline = math.inf

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

    def _commit(self, batch: list[Op]) -> bool:
        """Commit ``batch``, trying again while the disk fails it. True when it closed the
        store (or the store gave up on the disk)."""
        delay = WRITE_RETRY_INITIAL_S
        while True:
            try:
                return self._apply(batch)
            except _DiskFailed:
                pass
            if self.give_up.wait(delay):
                gone = StoreClosed(f"store closed while the disk failed: {self.last_error}")
                self._call_loop(self.on_settled, [(f, None, gone) for f in futures_of(batch)], batch[-1].seq)
                return True
            delay = min(delay * 2, WRITE_RETRY_MAX_S)

    def _apply(self, batch: list[Op]) -> bool:
        """Run one batch in one transaction. Returns True when the batch closed the store;
        raises ``_DiskFailed`` (nothing settled) when the disk failed it."""
        conn = self.conn
        assert conn is not None
        results: Results = []
        folds: list[tuple[int, tuple[Any, ...]]] = []
        self.busy_since = time.monotonic()
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
                for op in batch:
                    self._run(op, results, folds)
                conn.execute("COMMIT")
            except Exception as exc:  # noqa: BLE001
                self._rollback()
                results, folds = self._apply_one_by_one(batch, exc)
            else:
                self.ops_committed += len(batch)
        finally:
            self.busy_since = 0.0
        self.batches += 1
        self.events_persisted += len(folds)
        recovered = not self.last_batch_ok
        self.last_batch_ok = True
        if recovered:
            log.warning("store: writes work again (%s before)", self.last_error)
        events = len(folds)
        agg = self.aggregates
        for event_id, (ts, _kind, source, _payload, numeric) in folds:  # committed: fold them
            agg.add(event_id, ts, source, numeric)
        closing = batch[-1].code == CLOSE
        if agg.due() or any(op.code in (FLUSH, CLOSE) for op in batch):
            self._housekeeping(self._flush_aggregates)
        if any(op.code in (CHECKPOINT, PRUNE) for op in batch):
            codes = {id(op.fut): op.code for op in batch if op.code in (CHECKPOINT, PRUNE)}
            results = [self._post(codes.get(id(f)), f, v, e) for f, v, e in results]
        if self.on_batch is not None and events:
            try:
                self.on_batch(self)
            except Exception as exc:  # noqa: BLE001
                log.error("store on_batch callback failed: %s", exc)
        self._call_loop(self.on_settled, results, batch[-1].seq)
        if recovered:
            self._call_loop(self.on_state)
        return closing

    def _run(self, op: Op, results: Results, folds: list[tuple[int, tuple[Any, ...]]]) -> None:
        conn = self.conn
        if op.code == GROUP:
            members, seen = op.args
            for code, args, fut in members:
                value = ops.execute(conn, code, args)  # type: ignore[arg-type]
                if fut is not None:
                    results.append((fut, value, None))
                if code == EVENT:
                    folds.append((value, args))
            if seen is not None:
                ops.write_seen(conn, seen)  # type: ignore[arg-type]
            return
        value = ops.execute(conn, op.code, op.args)  # type: ignore[arg-type]
        if op.fut is not None:
            results.append((op.fut, value, None))
        if op.code == EVENT:
            folds.append((value, op.args))

    def _rollback(self) -> None:
        conn = self.conn
        if conn is not None and conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def _apply_one_by_one(self, batch: list[Op], first_exc: Exception):
        """Replay a failed batch with a savepoint per op: only the ops that fail on their own
        fail. Raises ``_DiskFailed`` when the disk (not an op) is what failed."""
        results: Results = []
        folds: list[tuple[int, tuple[Any, ...]]] = []
        failed = 0
        conn = self.conn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                failed += self._guarded(op, results, folds)
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - the commit (or the disk) failed: the whole batch waits
            self._rollback()
            self.failed_batches += 1
            first = self.last_batch_ok
            self.last_batch_ok = False
            self.last_error = f"{type(exc).__name__}: {exc}"
            (log.error if first else log.debug)("store: batch of %d ops not written: %s (kept; retrying)",
                                                len(batch), self.last_error)
            if first:
                self._call_loop(self.on_state)
            raise _DiskFailed from exc
        if failed:
            self.last_error = f"{type(first_exc).__name__}: {first_exc}"
        self.ops_committed += len(batch) - failed
        return results, folds

    def _guarded(self, op: Op, results: Results, folds: list[tuple[int, tuple[Any, ...]]]) -> int:
        """Run ``op`` in a savepoint; an op's own error fails only it (returns 1), a disk error
        propagates."""
        conn = self.conn
        assert conn is not None
        if op.code == GROUP:
            members, seen = op.args
            failed = sum(self._guarded_one(code, args, fut, results, folds) for code, args, fut in members)
            if seen is not None:
                ops.write_seen(conn, seen)
            return failed
        return self._guarded_one(op.code, op.args, op.fut, results, folds)

    def _guarded_one(self, code: int, args: tuple[Any, ...], fut: asyncio.Future[Any] | None, results: Results,
                     folds: list[tuple[int, tuple[Any, ...]]]) -> int:
        conn = self.conn
        assert conn is not None
        conn.execute("SAVEPOINT op")
        try:
            value = ops.execute(conn, code, args)
        except OP_ERRORS as exc:
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            log.error("store: %s failed: %s: %s", ops.describe(code, args), type(exc).__name__, exc)
            if fut is not None:
                results.append((fut, None, exc))
            return 1
        conn.execute("RELEASE op")
        if fut is not None:
            results.append((fut, value, None))
        if code == EVENT:
            folds.append((value, args))
        return 0

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

    def _housekeeping(self, fn: Callable[[], None]) -> None:
        self.busy_since = time.monotonic()
        try:
            fn()
        finally:
            self.busy_since = 0.0

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


def _resolve(fut: asyncio.Future[bool], value: bool) -> None:
    if not fut.done():
        fut.set_result(value)
