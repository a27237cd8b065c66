"""What every relay command leaves behind: a row in the store's audit table, the metrics and a
log line. The relay path never fails because of the disk: an audit that cannot be recorded is
logged and the command goes on."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..interfaces import CommandResult, EventStore

log = logging.getLogger("edge.relays")


class Recorder:
    def __init__(self, registry: CollectorRegistry, store: Callable[[], EventStore | None]):
        self._store = store
        self.m_latency = Histogram("edge_relay_command_seconds", "Relay command latency (call to board acknowledged)",
                                   ["result"], registry=registry,
                                   buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.m_commands = Counter("edge_relay_commands", "Relay commands", ["relay", "result"], registry=registry)
        self.m_board_up = Gauge("edge_relay_board_up", "1 while the relay board answers its polls", ["board"],
                                registry=registry)
        self.m_faulted = Gauge("edge_relay_faulted", "1 while a relay's pulse end could not be written", ["relay"],
                               registry=registry)

    def result(self, name: str, command: str, t0: float, error: str, source: str, *, known: bool,
               detail: str = "") -> CommandResult:
        """A command asked of the service is done (``error`` empty) or refused/failed: its
        answer, measured from ``t0`` (``time.perf_counter()``), audited, counted and logged."""
        ok = not error
        latency_ms = (time.perf_counter() - t0) * 1000
        self.m_latency.labels("ok" if ok else "failed").observe(latency_ms / 1000)
        if known:
            self.m_commands.labels(name, "ok" if ok else "failed").inc()
        note = "; ".join(x for x in (f"source={source}" if source else "", detail, error) if x)
        self.audit(name, command, ok, t0, note, latency_ms)
        if ok:
            log.info("relay %s: %s ok in %.1f ms (%s)", name, command, latency_ms, note)
        else:
            log.warning("relay %s: %s FAILED in %.1f ms: %s", name, command, latency_ms, note)
        return CommandResult(ok, name, command, round(latency_ms, 3), error)

    def audit(self, relay: str, command: str, ok: bool, t0: float, detail: str = "",
              latency_ms: float | None = None) -> None:
        store = self._store()
        if store is None:
            return  # no store (tests of the relays alone)
        if latency_ms is None:
            latency_ms = (time.perf_counter() - t0) * 1000
        try:
            fut = store.audit_relay(relay, command, "ok" if ok else "failed", round(latency_ms, 3), detail)
        except Exception as exc:  # noqa: BLE001 - the relay path never fails because of the disk
            log.error("relay audit not recorded (%s %s): %s", relay, command, exc)
            return
        if isinstance(fut, asyncio.Future):
            fut.add_done_callback(_log_audit_failure)

    def board_up(self, board: str, up: bool) -> None:
        self.m_board_up.labels(board).set(1 if up else 0)

    def faulted(self, relay: str, faulted: bool) -> None:
        self.m_faulted.labels(relay).set(1 if faulted else 0)


def _log_audit_failure(fut: "asyncio.Future[Any]") -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.error("relay audit not recorded: %s", fut.exception())
