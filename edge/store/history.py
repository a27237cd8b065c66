"""``interfaces.History``: the store's readers for status pages, each on its own read-only
connection in a thread (never the writer's lock, never the event loop)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from . import readers
from .readers import AuditRow, EventRow, HourlyRow


class StoreHistory:
    def __init__(self, path: Path):
        self.path = Path(path)

    def _run(self, fn: Any, *args: Any, **kw: Any) -> "asyncio.Future[Any]":
        return asyncio.to_thread(fn, *args, **kw)  # type: ignore[return-value]

    async def events(self, *, kind: str | None = None, source: str | None = None, since: float | None = None,
                     until: float | None = None, before_id: int | None = None, limit: int = 50) -> list[EventRow]:
        return await self._run(readers.page_events, self.path, kind=kind, source=source, since=since, until=until,
                               before_id=before_id, limit=limit)

    async def audit(self, *, relay: str | None = None, limit: int = 50) -> list[AuditRow]:
        return await self._run(readers.last_audit, self.path, relay=relay, limit=limit)

    async def readings(self, sensor: str, field: str, since: float) -> list[tuple[float, float]]:
        return await self._run(readers.field_readings, self.path, sensor, field, since)

    async def hourly(self, sensor: str, field: str, since: float) -> list[HourlyRow]:
        return await self._run(readers.query_hourly, self.path, sensor=sensor, field=field, since=since)

    async def backup(self, dest: Any) -> None:
        def copy() -> None:
            src = readers.open_reader(self.path)
            try:
                out = sqlite3.connect(str(dest))
                try:
                    src.backup(out)
                finally:
                    out.close()
            finally:
                src.close()

        await asyncio.to_thread(copy)
