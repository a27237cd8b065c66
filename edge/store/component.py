"""The supervisor's store component.

The ``Store`` is built (and provided as ``interfaces.STORE``) with the component, so every
other component can queue records from its first moment, before the database is open: they
wait in memory for the disk. start() starts the writer thread, which opens
``config.store.path`` (default ``<data dir>/edge.db``) and runs the migrations; a database
that cannot be opened (read-only or full card, corrupt file) does not fail the start: the
writer keeps trying, the component reports itself degraded with the reason, and the relays
and rules go on without it (it is not ``critical``). run() fails (so the supervisor restarts
the component, which starts a new writer) if the writer thread ever dies, and checks for a
hung write: one running longer than ``write_timeout_s`` stops the watchdog. stop() commits
what is queued and closes.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from ..component import Component, Health
from ..interfaces import HISTORY, STORE
from .history import StoreHistory
from .store import STALLED_AFTER_S, Store, StoreStats

log = logging.getLogger("edge.store")

DB_NAME = "edge.db"
STOP_TIMEOUT_S = 1.0
CHECK_S = 0.25


def db_path(config, data_dir: Path) -> Path:
    return Path(config.store.path) if config.store.path else Path(data_dir) / DB_NAME


class StoreComponent(Component):
    name = "store"

    def __init__(self, ctx):
        super().__init__()
        self.ctx = ctx
        self.path = db_path(ctx.config, ctx.data_dir)
        cfg = ctx.config.store
        self.write_timeout_s = cfg.write_timeout_s
        self.store = Store(self.path, cfg.retention_days, cfg.aggregate_retention_days, cfg.batch_ms,
                           telemetry_batch_ms=cfg.telemetry_batch_ms, prune_batch_rows=cfg.prune_batch_rows,
                           prune_interval_s=cfg.prune_interval_s, on_batch=self._publish,
                           stalled_after_s=min(STALLED_AFTER_S, cfg.write_timeout_s),
                           outbox_max_messages=cfg.outbox_max_messages)
        ctx.registry.provide(STORE, self.store)
        ctx.registry.provide(HISTORY, StoreHistory(self.path))
        self._started = False

    def _publish(self, stats: StoreStats) -> None:  # writer thread, after each batch with events
        self.ctx.metrics.events_persisted.set(stats.events_persisted)

    async def start(self) -> None:
        opened = await self.store.start(open_wait_s=0.5)
        if self._started:
            log.info("store writer restarted: %s", self.path)
        elif opened:
            log.info("store open: %s", self.path)
        self._started = True

    async def run(self) -> None:
        dead = self.store.dead
        assert dead is not None
        while not dead.done():
            await asyncio.wait([dead], timeout=CHECK_S)
            self.store.refresh()  # a stalled write shows up here
        raise RuntimeError(f"store writer stopped: {dead.result()}")

    async def stop(self) -> None:
        await self.store.close(STOP_TIMEOUT_S)

    # ---- what the supervisor asks --------------------------------------------------------
    def stalled_for(self) -> float:
        """Seconds a write has run past ``write_timeout_s`` (0 when fine)."""
        return max(0.0, self.store.busy_for() - self.write_timeout_s)

    def stall_detail(self) -> str:
        return (f"store writer hung: one write has run {self.store.busy_for():.1f} s "
                f"(bound {self.write_timeout_s:g} s) on {self.path}")

    def health(self) -> Health:
        s = self.store
        st = s.stats
        if not s.durable:
            return Health(False, s.problem)
        return Health(True, f"{st.events_persisted} events persisted, queue {st.queue_len}")
