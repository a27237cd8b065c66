"""The supervisor's store component: opens the store before anything else starts.

start() opens ``config.store.path`` (default ``<data dir>/edge.db``), runs the migrations and
sets ``ctx.store``. run() fails (so the supervisor restarts the component, which reopens the
store) if the writer thread ever dies. stop() commits what is queued and closes.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from ..component import Component, Health
from ..interfaces import HISTORY, STORE
from .history import StoreHistory
from .store import Store, StoreStats

log = logging.getLogger("edge.store")

DB_NAME = "edge.db"
STOP_TIMEOUT_S = 1.0


def db_path(config, data_dir: Path) -> Path:
    return Path(config.store.path) if config.store.path else Path(data_dir) / DB_NAME


class StoreComponent(Component):
    name = "store"
    critical = True

    def __init__(self, ctx):
        super().__init__()
        self.ctx = ctx
        self.path = db_path(ctx.config, ctx.data_dir)
        self.store: Store | None = None
        ctx.registry.provide(HISTORY, StoreHistory(self.path))

    def _publish(self, stats: StoreStats) -> None:  # writer thread, after each batch with events
        self.ctx.metrics.events_persisted.set(stats.events_persisted)

    async def start(self) -> None:
        if self.store is not None:  # restarted after the writer died: same object, new writer
            await self.store.start()
            log.info("store writer restarted: %s", self.path)
            return
        cfg = self.ctx.config.store
        store = Store(self.path, cfg.retention_days, cfg.aggregate_retention_days, cfg.batch_ms,
                      telemetry_batch_ms=cfg.telemetry_batch_ms, prune_batch_rows=cfg.prune_batch_rows, prune_interval_s=cfg.prune_interval_s,
                      on_batch=self._publish)
        await store.start()
        self.store = store
        self.ctx.registry.provide(STORE, store)
        log.info("store open: %s", self.path)

    async def run(self) -> None:
        assert self.store is not None and self.store.dead is not None
        exc = await self.store.dead
        raise RuntimeError(f"store writer stopped: {exc}")

    async def stop(self) -> None:
        if self.store is None:
            return
        try:
            await asyncio.wait_for(self.store.close(), STOP_TIMEOUT_S)
        except TimeoutError:
            log.error("store did not close within %.1f s (disk stalled?); committed batches are safe", STOP_TIMEOUT_S)

    def health(self) -> Health:
        s = self.store
        if s is None or not s.running:
            return Health(False, "store not open")
        st = s.stats
        detail = f"{st.events_persisted} events persisted, queue {st.queue_len}"
        if not s.ok:
            return Health(False, f"{detail}; {st.failed_batches} failed batches, last: {st.last_error}")
        return Health(True, detail)
