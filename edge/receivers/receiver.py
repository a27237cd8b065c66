"""One configured receiver at run time: its queue, its transport, and the loop that delivers
the queue in order, one report at a time, retrying with backoff until the receiver takes it."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any, Callable

from ..backoff import Backoff
from . import dc09
from .config import ChektReceiver, ReceiverBase, SiaReceiver, WebhookReceiver
from .keys import SecretError, read_secret
from .queue import Item, ReportQueue
from .report import make_test_report
from .sia import SiaTransmitter
from .transport import Delivery, DeliveryFailed, Link, Rejected, Transport
from .webhooks import ChektTransport, WebhookTransport

log = logging.getLogger("edge.receivers")


def next_daily(now: dt.datetime, hhmm: str) -> dt.datetime:
    """The next local time ``HH:MM`` strictly after ``now`` (an aware local datetime)."""
    h, m = (int(x) for x in hhmm.split(":"))
    at = now.replace(hour=h, minute=m, second=0, microsecond=0)
    return at if at > now else at + dt.timedelta(days=1)


class Receiver:
    def __init__(self, name: str, type_: str, cfg: ReceiverBase, queue: ReportQueue, *, data_dir: Any, site: str,
                 device: str, on_link: Callable[[Link], None], on_done: Callable[["Receiver", Item, Any], None]):
        self.name = name
        self.type = type_
        self.cfg = cfg
        self.queue = queue
        self.data_dir = data_dir
        self.site = site
        self.device = device
        self.on_link = on_link
        self.on_done = on_done  # (receiver, item, Delivery | Exception): the component records it
        self.transport: Transport | None = None
        self.broken = ""  # why there is no transport (a key file...)
        self.delivered = 0
        self.failures = 0
        self.rejected = 0
        self.last_delivery: Delivery | None = None
        self.last_error = ""
        self.clock: Callable[[], float] = time.time  # tests skew it (SIA NAK)

    @property
    def links(self) -> list[Link]:
        return self.transport.links if self.transport is not None else []

    def build(self) -> Transport:
        c = self.cfg
        if isinstance(c, SiaReceiver):
            key = None
            if c.key_file is not None:
                try:
                    key = dc09.key_bytes(read_secret(c.key_file, self.data_dir, "AES key"), c.key_format)
                except ValueError as exc:
                    raise SecretError(f"AES key ({c.key_format}): {exc}") from None
            return SiaTransmitter(self.name, c, key, site=self.site, clock=lambda: self.clock(), on_change=self.on_link)
        if isinstance(c, ChektReceiver):
            token = read_secret(c.token_file, self.data_dir, "CHEKT token") if c.token_file is not None else None
            return ChektTransport(self.name, c, token, site=self.site, on_change=self.on_link)
        assert isinstance(c, WebhookReceiver)
        secret = read_secret(c.secret_file, self.data_dir, "webhook secret").encode()
        return WebhookTransport(self.name, c, secret, site=self.site, device=self.device, on_change=self.on_link)

    # ---- running --------------------------------------------------------------------------------
    async def run(self) -> None:
        backoff = Backoff(self.cfg.backoff_initial_s, self.cfg.backoff_max_s)
        while self.transport is None:
            try:
                self.transport = self.build()
                self.broken = ""
            except SecretError as exc:
                if self.broken != str(exc):
                    log.error("receiver %s cannot start: %s; its reports wait in the outbox", self.name, exc)
                self.broken = str(exc)
                await asyncio.sleep(backoff.next())  # fixed files are picked up without a restart
        backoff.reset()
        t = self.transport
        async with asyncio.TaskGroup() as tg:
            if isinstance(t, SiaTransmitter):
                for p in t.links:
                    tg.create_task(t.supervise(p, self.queue.next_seq, lambda: len(self.queue) > 0),  # type: ignore[arg-type]
                                   name=f"receiver-{self.name}-{p.name}-supervision")
                if isinstance(self.cfg, SiaReceiver) and self.cfg.test_report_time:
                    tg.create_task(self._periodic_tests(self.cfg.test_report_time), name=f"receiver-{self.name}-rp")
            tg.create_task(self._deliver(t, backoff), name=f"receiver-{self.name}-deliver")

    async def _deliver(self, t: Transport, backoff: Backoff) -> None:
        while True:
            item = await self.queue.head()
            r = item.report
            try:
                d = await t.deliver(r)
            except Rejected as exc:
                self.rejected += 1
                self.last_error = str(exc)
                log.error("receiver %s: report %s zone %d (%s) dropped: %s", self.name, r.code, r.zone, r.text, exc)
                self.queue.ack(item)
                self._done(item, exc)
                continue
            except Exception as exc:  # noqa: BLE001 - DeliveryFailed, or a bug: never a crash, never a stuck queue
                self.failures += 1
                self.last_error = str(exc) or type(exc).__name__
                if not isinstance(exc, DeliveryFailed):
                    log.exception("receiver %s: sending %s failed", self.name, r.code)
                delay = backoff.next()
                log.warning("receiver %s: %s zone %d not delivered (%s); %d waiting, next try in %.1f s", self.name,
                            r.code, r.zone, self.last_error, len(self.queue), delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            self.delivered += 1
            self.last_delivery = d
            self.queue.ack(item)
            self._done(item, d)

    def _done(self, item: Item, outcome: Any) -> None:
        w = item.waiter
        if w is not None and not w.done():
            if isinstance(outcome, BaseException):
                w.set_exception(outcome)
            else:
                w.set_result(outcome)
        try:
            self.on_done(self, item, outcome)
        except Exception:  # noqa: BLE001
            log.exception("receiver %s: recording a delivery failed", self.name)

    async def _periodic_tests(self, hhmm: str) -> None:
        while True:
            now = dt.datetime.now().astimezone()
            at = next_daily(now, hhmm)
            await asyncio.sleep(max(1.0, (at - now).total_seconds()))
            self.queue.put(make_test_report(self.site, periodic=True))

    def test(self) -> "asyncio.Future[Delivery]":
        """Queue a manual test report; the future resolves with the receiver's answer."""
        waiter: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
        self.queue.put(make_test_report(self.site, periodic=False), waiter)
        return waiter

    async def close(self) -> None:
        if self.transport is not None:
            await self.transport.close()

    # ---- what it looks like --------------------------------------------------------------------
    @property
    def ok(self) -> bool:
        return not self.broken and all(link.up is not False for link in self.links)

    def detail(self, ages: bool = True) -> str:
        """One line: each path's state and the queue (``ages``: when it last answered)."""
        if self.broken:
            return f"{self.broken}; {len(self.queue)} queued"
        parts = []
        for link in self.links:
            if link.up is None:
                state = "not tried yet"
            elif link.up:
                ago = f", answered {time.time() - link.last_ack:.0f} s ago" if link.last_ack and ages else ""
                state = "ok" + ago
            else:
                state = f"DOWN: {link.last_error}"
            parts.append(f"{link.name} {link.where} {state}" if len(self.links) > 1 else state)
        return "; ".join(parts + [f"{len(self.queue)} queued"])

    def describe(self) -> dict[str, Any]:
        d = self.last_delivery
        return {"name": self.name, "type": self.type, "ok": self.ok, "queued": len(self.queue),
                "delivered": self.delivered, "failures": self.failures, "rejected": self.rejected,
                "error": self.broken or self.last_error,
                "last_answer": None if d is None else {"answer": d.answer, "path": d.path, "where": d.where,
                                                       "ms": round(d.ms, 1)},
                "links": [{"path": link.name, "where": link.where, "up": link.up, "last_ack": link.last_ack,
                           "error": link.last_error} for link in self.links]}

