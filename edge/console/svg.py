"""Line charts as SVG text, drawn on the server (no chart library in the browser): a mean
line, an optional min-max band, value and time ticks. Presentation attributes only (the
console's Content-Security-Policy allows no inline styles)."""

from __future__ import annotations

import math
import time
from html import escape

W, H = 800, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    out, v = [], first
    while v <= hi + step * 1e-9:
        out.append(round(v, 10))
        v += step
    return out


def _time_label(ts: float, span: float) -> str:
    fmt = "%H:%M" if span <= 2 * 86400 else ("%a %d" if span <= 10 * 86400 else "%d %b")
    return time.strftime(fmt, time.localtime(ts))


def chart(mean: list[tuple[float, float]], band: list[tuple[float, float, float]] | None = None, *,
          t0: float, t1: float, unit: str = "", title: str = "") -> str:
    """``mean``: (ts, value); ``band``: (ts, min, max). Empty data draws an empty frame that says so."""
    values = [v for _, v in mean] + [x for _, lo, hi in (band or []) for x in (lo, hi)]
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" class="chart">',
             f"<title>{escape(title)}</title>",
             f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999" stroke-width="1"/>']
    if not values:
        parts.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" fill="#666">no readings in this period</text>')
        parts.append("</svg>")
        return "".join(parts)
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad
    span = max(1.0, t1 - t0)

    def x(ts: float) -> float:
        return LEFT + (ts - t0) / span * pw

    def y(v: float) -> float:
        return TOP + (hi - v) / (hi - lo) * ph

    for v in nice_ticks(lo, hi):
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
                     f'<text x="{LEFT - 4}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11" fill="#444">'
                     f"{v:g}{escape(unit)}</text>")
    for i in range(6):
        ts = t0 + span * i / 5
        parts.append(f'<text x="{x(ts):.1f}" y="{H - 8}" text-anchor="middle" font-size="11" fill="#444">'
                     f"{_time_label(ts, span)}</text>")
    if band:
        upper = " ".join(f"{x(t):.1f},{y(hi_):.1f}" for t, _, hi_ in band)
        lower = " ".join(f"{x(t):.1f},{y(lo_):.1f}" for t, lo_, _ in reversed(band))
        parts.append(f'<polygon points="{upper} {lower}" fill="#9cc3e6" fill-opacity="0.5" stroke="none"/>')
    if mean:
        pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in mean)
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#1f5f99" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def bucket(rows: list[tuple[float, int, float, float, float]], max_points: int = 400
           ) -> tuple[list[tuple[float, float]], list[tuple[float, float, float]]]:
    """Hourly (ts, count, sum, min, max) rows merged into at most ``max_points`` buckets:
    the mean line and the min-max band."""
    if not rows:
        return [], []
    size = max(1, math.ceil(len(rows) / max_points))
    mean, band = [], []
    for i in range(0, len(rows), size):
        chunk = rows[i:i + size]
        count = sum(r[1] for r in chunk)
        ts = chunk[0][0] + 1800 * len(chunk)  # the middle of the bucket's hours
        mean.append((ts, sum(r[2] for r in chunk) / max(1, count)))
        band.append((ts, min(r[3] for r in chunk), max(r[4] for r in chunk)))
    return mean, band


def thin(points: list[tuple[float, float]], max_points: int = 1500) -> list[tuple[float, float]]:
    """Raw readings cut to at most ``max_points`` (every n-th, the last one kept)."""
    if len(points) <= max_points:
        return points
    step = math.ceil(len(points) / max_points)
    out = points[::step]
    if out[-1] != points[-1]:
        out.append(points[-1])
    return out
