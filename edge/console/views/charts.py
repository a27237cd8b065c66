"""Charts: per sensor, the raw readings of the last day or the hourly aggregates (mean line,
min-max band) of the last week, month or year, as server-side SVG."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from markupsafe import Markup

from ... import kinds
from ...interfaces import HISTORY, SENSORS
from .. import svg

RANGES = {"day": 86400, "week": 7 * 86400, "month": 31 * 86400, "year": 366 * 86400}


def numeric_fields(console: Any, s: Any) -> list[str]:
    """The sensor's chartable fields: its kind's numeric field, then numbers in its state."""
    out = []
    k = kinds.get(s.kind)
    if not k.binary or s.kind == "generic":
        out.append(s.primary_field)
    states = console.ctx.registry.get(SENSORS)
    state = states.state(s.id) if states is not None else {}
    for f, v in state.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and f not in out:
            out.append(f)
    return out


def add_routes(router: web.UrlDispatcher, console: Any) -> None:
    async def index(request: web.Request) -> web.Response:
        rows = [(s, numeric_fields(console, s)) for s in console.ctx.config.sensors]
        return console.page(request, "charts.html", {"rows": [(s, f) for s, f in rows if f], "ranges": RANGES})

    async def chart(request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        s = next((x for x in console.ctx.config.sensors if x.id == sid), None)
        if s is None:
            raise web.HTTPNotFound(text=f"no sensor {sid!r}\n")
        fields = numeric_fields(console, s)
        field = request.query.get("field") or (fields[0] if fields else s.primary_field)
        rng = request.query.get("range", "day")
        if rng not in RANGES:
            raise web.HTTPBadRequest(text=f"range: one of {', '.join(RANGES)}\n")
        now = time.time()
        t0 = now - RANGES[rng]
        history = console.ctx.registry.get(HISTORY)
        unit = s.unit or kinds.get(s.kind).unit
        stats: dict[str, Any] = {}
        if history is None:
            picture = svg.chart([], t0=t0, t1=now)
        elif rng == "day":
            pts = await history.readings(sid, field, t0)
            picture = svg.chart(svg.thin(pts), t0=t0, t1=now, unit=unit, title=f"{s.name} {field}, last day")
            if pts:
                vals = [v for _, v in pts]
                stats = {"min": min(vals), "max": max(vals), "mean": sum(vals) / len(vals), "n": len(vals)}
        else:
            rows = await history.hourly(sid, field, t0)
            mean, band = svg.bucket([(r.hour, r.count, r.sum, r.min, r.max) for r in rows])
            picture = svg.chart(mean, band, t0=t0, t1=now, unit=unit, title=f"{s.name} {field}, hourly, last {rng}")
            if rows:
                n = sum(r.count for r in rows)
                stats = {"min": min(r.min for r in rows), "max": max(r.max for r in rows),
                         "mean": sum(r.sum for r in rows) / max(1, n), "n": n}
        return console.page(request, "chart.html", {"s": s, "field": field, "fields": fields, "range": rng,
                                                    "ranges": RANGES, "svg": Markup(picture), "stats": stats,
                                                    "unit": unit})

    router.add_get("/charts", index)
    router.add_get("/charts/{sid}", chart)
