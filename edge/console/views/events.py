"""Events: filter by kind, sensor (source) and time, newest first with paging, CSV export."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import datetime
from typing import Any

from aiohttp import web

from ...interfaces import HISTORY

PAGE = 50
KINDS = ("sensor", "state_change", "alarm", "alarm_ack", "rule", "relay")
CSV_MAX = 100_000


def _when(raw: str) -> float | None:
    """A datetime-local value (``2026-11-01T14:30``) as local time, else None."""
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw).timestamp()
    except ValueError:
        raise web.HTTPBadRequest(text=f"not a date and time: {raw!r} (e.g. 2026-11-01T14:30)\n") from None


def filters(request: web.Request) -> dict[str, Any]:
    q = request.query
    return {"kind": q.get("kind") or None, "source": q.get("source") or None, "since": _when(q.get("since", "")),
            "until": _when(q.get("until", ""))}


def add_routes(router: web.UrlDispatcher, console: Any) -> None:
    def history() -> Any:
        h = console.ctx.registry.get(HISTORY)
        if h is None:
            raise web.HTTPServiceUnavailable(text="no store\n")
        return h

    async def index(request: web.Request) -> web.Response:
        f = filters(request)
        before = request.query.get("before")
        before_id = int(before) if before and before.isdigit() else None
        rows = await history().events(**f, before_id=before_id, limit=PAGE + 1)
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        q = {k: v for k, v in request.query.items() if k != "before" and v}
        sources = sorted({s.id for s in console.ctx.config.sensors})
        return console.page(request, "events.html", {
            "rows": [(r, json.dumps(r.payload, ensure_ascii=False)[:300]) for r in rows], "q": q, "kinds": KINDS,
            "sources": sources, "next_before": rows[-1].id if more and rows else None,
            "csv_query": "&".join(f"{k}={v}" for k, v in q.items())})

    async def export(request: web.Request) -> web.StreamResponse:
        f = filters(request)
        resp = web.StreamResponse(headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="edge-events-{time.strftime("%Y%m%d-%H%M")}.csv"'})
        await resp.prepare(request)
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["id", "time", "kind", "source", "payload"])
        before_id, sent = None, 0
        while sent < CSV_MAX:
            rows = await history().events(**f, before_id=before_id, limit=2000)
            if not rows:
                break
            for r in rows:
                w.writerow([r.id, datetime.fromtimestamp(r.ts).isoformat(timespec="milliseconds"), r.kind, r.source,
                            json.dumps(r.payload, ensure_ascii=False)])
            await resp.write(buf.getvalue().encode())
            buf.seek(0)
            buf.truncate()
            sent += len(rows)
            before_id = rows[-1].id
        await resp.write_eof()
        return resp

    router.add_get("/events", index)
    router.add_get("/events.csv", export)
