"""One receiver's ordered queue of reports, kept in the store's outbox (queue
``receiver:<name>``), mirrored in memory in the same order.

- ``put`` gives the report the next sequence number and writes it to the outbox at once
  (``urgent``: committed without waiting for a batch); the sender awaits that commit before
  the report leaves, so a report is on disk before any receiver sees it.
- ``ack`` drops the head once its receiver accepted it, and deletes its row; a crash before
  that delete sends it again after the restart with the same sequence number, which the
  receiver recognises as a duplicate.
- Sequence numbers: an unbounded counter per receiver (the wire number is 0001-9999). The
  counter is reserved on disk in blocks (``meta`` ``seq:<queue>``) before a number of the
  block is used, so after a restart numbers continue above anything sent before, and a NULL
  link test (which is not queued) never reuses a number a report had.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Callable

from ..interfaces import EventStore, record
from .report import Report
from .transport import Delivery

log = logging.getLogger("edge.receivers")

QUEUE_PREFIX = "receiver:"
SEQ_BLOCK = 100
LOAD_LIMIT = 1_000_000


@dataclass(eq=False)
class Item:
    report: Report
    committed: "asyncio.Future[int] | None" = None  # resolves to the outbox id once on disk
    id: int | None = None  # outbox id
    waiter: "asyncio.Future[Delivery] | None" = None  # someone waits for the answer (a test report)


class ReportQueue:
    def __init__(self, receiver: str, store: Callable[[], EventStore | None], spawn: Callable[[Any], Any]):
        self.receiver = receiver
        self.name = QUEUE_PREFIX + receiver
        self._meta_key = "seq:" + self.name
        self._store = store
        self._spawn = spawn
        self.items: deque[Item] = deque()
        self._pending: list[Item] = []  # put before load() (normally never: we start before the sensors)
        self.ready = False
        self.n = 0  # last sequence number given out
        self.reserved = 0  # numbers up to this are reserved on disk
        self._reserving: asyncio.Future[None] | None = None
        self._wake: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self.items) + len(self._pending)

    async def load(self) -> int:
        """Read what waits in the outbox (oldest first) and the reserved numbers; returns how
        many reports were waiting."""
        if self.ready:
            return len(self.items)
        store = self._store()
        if store is None:
            raise RuntimeError("the store is not open: reports cannot be queued")
        reserved = int(await store.meta_get(self._meta_key) or 0)
        rows = await store.outbox_peek(LOAD_LIMIT, queue=self.name)
        for row in rows:
            try:
                report = Report.from_json(row.payload, n=row.seq)
            except (ValueError, TypeError) as exc:
                log.error("receiver %s: outbox row %d is unreadable (%s); dropped", self.receiver, row.id, exc)
                record(asyncio.ensure_future(store.outbox_ack([row.id])))
                continue
            self.items.append(Item(report, id=row.id))
        self.n = self.reserved = max([reserved] + [it.report.n for it in self.items])
        self.ready = True
        pending, self._pending = self._pending, []
        for it in pending:
            self._enqueue(it)
        if self.items:
            self._wakeup()
        return len(rows)

    # ---- sequence numbers --------------------------------------------------------------------
    def _next_n(self) -> int:
        self.n += 1
        if self.n > self.reserved:
            self.reserved = self.n + SEQ_BLOCK - 1
            store = self._store()
            if store is not None:
                self._reserving = store.meta_set(self._meta_key, self.reserved)
                record(self._reserving)
        return self.n

    async def next_seq(self) -> int:
        """A number for a message that is not queued (a NULL link test), on disk before use."""
        n = self._next_n()
        fut = self._reserving
        if fut is not None and not fut.done():
            await asyncio.shield(fut)
        return n

    # ---- the queue ----------------------------------------------------------------------------
    def put(self, report: Report, waiter: "asyncio.Future[Delivery] | None" = None) -> Item:
        item = Item(report, waiter=waiter)
        if not self.ready:
            self._pending.append(item)
        else:
            self._enqueue(item)
        return item

    def _enqueue(self, item: Item) -> None:
        item.report = replace(item.report, n=self._next_n())
        store = self._store()
        if store is not None:
            item.committed = store.outbox_put("report", item.report.to_json(), queue=self.name, seq=item.report.n,
                                              urgent=True)
            record(item.committed)
        self.items.append(item)
        self._wakeup()

    def _wakeup(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def head(self) -> Item:
        """The oldest report, once it is on disk (waits for one)."""
        if self._wake is None:
            self._wake = asyncio.Event()
        while not self.items:
            self._wake.clear()
            await self._wake.wait()
        item = self.items[0]
        if item.id is None and item.committed is not None:
            # on disk first; but a store that is not writing (it keeps the row in memory until
            # the disk takes it) must not hold an alarm back
            store = self._store()
            while not item.committed.done() and (store is None or store.durable):
                await asyncio.wait({item.committed}, timeout=0.25)
            if not item.committed.done():
                log.error("receiver %s: report %s not on disk yet (store: %s); sending it anyway", self.receiver,
                          item.report.code, store.problem if store is not None else "none")
                return item
            try:
                item.id = item.committed.result()
            except Exception as exc:  # noqa: BLE001 - an alarm is sent even when the disk refused it
                log.error("receiver %s: report %s not on disk (%s); sending it anyway", self.receiver,
                          item.report.code, exc)
                item.committed = None
        return item

    def ack(self, item: Item) -> None:
        """``item`` (the head) was accepted or rejected for good: drop it and its row."""
        if self.items and self.items[0] is item:
            self.items.popleft()
        else:
            try:
                self.items.remove(item)
            except ValueError:
                pass
        store = self._store()
        if item.id is not None and store is not None:
            self._spawn(store.outbox_ack([item.id]))
        elif item.committed is not None and not item.committed.done() and store is not None:
            # sent before its row was on disk: remove the row once it is
            def drop(fut: "asyncio.Future[int]") -> None:
                if not fut.cancelled() and fut.exception() is None:
                    self._spawn(store.outbox_ack([fut.result()]))

            item.committed.add_done_callback(drop)
