"""What every transport (SIA DC-09, CHEKT, webhook) shares: the outcome of a delivery, and the
state of each link (path) as health, metrics and the communication-failure alarm see it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from .report import Report

log = logging.getLogger("edge.receivers")


@dataclass(frozen=True)
class Delivery:
    """A report the receiver accepted."""

    answer: str  # what it said: 'ACK 0005', 'HTTP 200 {"ok":true}'
    path: str  # the link that carried it: "primary", "backup", "http"
    where: str  # its address
    ms: float  # from the first byte sent to the answer


class DeliveryFailed(Exception):
    """Not delivered this time (no answer, garbage, refused, 5xx): retried later."""


class Rejected(Exception):
    """The receiver answered that it will never take this report (DUH): dropped, logged."""


@dataclass
class Link:
    """One path to a receiver. ``up`` is None until the first answer or failure."""

    receiver: str
    name: str  # primary, backup, http
    where: str
    failover_after: int = 1  # failed attempts in a row before the link counts as down
    up: bool | None = None
    fails: int = 0
    last_ack: float | None = None  # wall time of the last answer that took something
    last_ok: float = field(default_factory=time.monotonic)  # monotonic: last answer (or start)
    last_error: str = ""
    connected: bool = False
    on_change: Callable[["Link"], None] | None = None

    @property
    def label(self) -> str:
        return f"receiver {self.receiver} ({self.name} {self.where})"

    def ok(self) -> None:
        self.fails = 0
        self.last_ack = time.time()
        self.last_ok = time.monotonic()
        self.last_error = ""
        if self.up is not True:
            was = self.up
            self.up = True
            if was is False:
                log.warning("%s answers again", self.label)
            self._changed()

    def failed(self, reason: str) -> None:
        self.fails += 1
        self.last_error = reason
        log.warning("%s: %s", self.label, reason)
        if self.up is not False and self.fails >= self.failover_after:
            self.down(reason)

    def down(self, reason: str) -> None:
        self.last_error = reason
        if self.up is not False:
            self.up = False
            log.error("%s is down: %s", self.label, reason)
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)


class Transport(Protocol):
    links: list[Link]

    async def deliver(self, report: Report) -> Delivery: ...

    async def close(self) -> None: ...
