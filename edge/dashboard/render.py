"""Draw the dashboard with Pillow.

Normal view: a header (site name, link health, page, clock) over a grid of sensor tiles. A
tile is filled with its state's colour and carries the sensor's name, its state in words,
battery, signal bars and the time since the last change. Sizes scale with the picture and
the grid so that a 1280x720 picture shown on a 1/16 NVR multi-view tile (320x180) still has
state words >= 12 px and names >= 8 px high. Sensors that do not fit one page are paged every
``page_seconds``.

Alarm view: any active alarm takes the whole picture in red: the largest (most severe,
newest) alarm big, the others below it in smaller rows, each with the sensor's name, what
happened and since when.

Fonts come from Debian's fonts-dejavu-core (never fetched at run time).
"""

from __future__ import annotations

import math
import time
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from . import words
from .model import AlarmView, SensorView, View

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_BOLD = FONT_DIR / "DejaVuSans-Bold.ttf"
FONT_REGULAR = FONT_DIR / "DejaVuSans.ttf"

BACKGROUND = (16, 20, 28)
HEADER_BG = (34, 40, 54)
WHITE = (255, 255, 255)
ALARM_RED = (205, 10, 10)
ALARM_DARK = (150, 0, 0)

_GRIDS = [(1, 1, 1), (2, 2, 1), (4, 2, 2), (6, 3, 2), (9, 3, 3), (12, 4, 3), (16, 4, 4)]


def grid_for(n: int) -> tuple[int, int]:
    """(columns, rows) for n tiles on one page."""
    for limit, cols, rows in _GRIDS:
        if n <= limit:
            return cols, rows
    return 4, 4


@lru_cache(maxsize=256)
def font(size: int, bold: bool = True) -> ImageFont.FreeTypeFont:
    path = FONT_BOLD if bold else FONT_REGULAR
    try:
        return ImageFont.truetype(str(path), max(6, int(size)))
    except OSError as exc:  # pragma: no cover - the package is in APT_PKGS
        raise RuntimeError(f"font {path} missing: install Debian's fonts-dejavu-core") from exc


def fit_font(draw: ImageDraw.ImageDraw, text: str, size: int, max_width: float, bold: bool = True,
             min_size: int = 8) -> ImageFont.FreeTypeFont:
    """The largest font <= size in which text fits max_width (not below min_size)."""
    s = int(size)
    while s > min_size and draw.textlength(text, font=font(s, bold)) > max_width:
        s = max(min_size, int(s * 0.9))
    return font(s, bold)


def ellipsize(draw: ImageDraw.ImageDraw, text: str, f: ImageFont.FreeTypeFont, max_width: float) -> str:
    if draw.textlength(text, font=f) <= max_width:
        return text
    while text and draw.textlength(text + "…", font=f) > max_width:
        text = text[:-1]
    return text + "…"


def darker(c: tuple[int, int, int], k: float = 0.6) -> tuple[int, int, int]:
    return (int(c[0] * k), int(c[1] * k), int(c[2] * k))


class Renderer:
    def __init__(self, width: int = 1280, height: int = 720, *, max_tiles_per_page: int = 9, page_seconds: float = 5.0):
        self.width = width
        self.height = height
        self.max_tiles = max(1, max_tiles_per_page)
        self.page_seconds = page_seconds
        self.last_layout: dict[str, float] = {}  # font sizes of the last normal view (tests, legibility)

    # ---- public -------------------------------------------------------------------
    def render(self, view: View, now: float | None = None) -> Image.Image:
        now = time.time() if now is None else now
        img = Image.new("RGB", (self.width, self.height), BACKGROUND)
        d = ImageDraw.Draw(img)
        if view.alarms:
            self._alarm_view(d, view, now)
        else:
            self._normal_view(d, view, now)
        return img

    def pages(self, n_sensors: int) -> int:
        return max(1, math.ceil(n_sensors / self.max_tiles))

    def page_at(self, n_sensors: int, now: float) -> int:
        return int(now // self.page_seconds) % self.pages(n_sensors)

    # ---- normal view --------------------------------------------------------------
    def _header(self, d: ImageDraw.ImageDraw, view: View, now: float, page: int, pages: int, bg=HEADER_BG) -> int:
        W, H = self.width, self.height
        hh = max(24, round(H * 0.11))
        d.rectangle((0, 0, W, hh), fill=bg)
        pad = round(hh * 0.2)
        clock = time.strftime("%H:%M:%S", time.localtime(now))
        fclock = font(round(hh * 0.55))
        cw = d.textlength(clock, font=fclock)
        d.text((W - pad - cw, hh / 2), clock, font=fclock, fill=WHITE, anchor="lm")
        right = W - pad - cw - pad
        if pages > 1:
            ptxt = f"{page + 1}/{pages}"
            fp = font(round(hh * 0.45), bold=False)
            pw = d.textlength(ptxt, font=fp)
            d.text((right - pw, hh / 2), ptxt, font=fp, fill=(200, 205, 215), anchor="lm")
            right -= pw + pad
        # link health: a dot and the worst link in words
        down = [ln for ln in view.links if not ln.ok]
        ltxt = "links ok" if not down else (f"{down[0].name} DOWN" + (f" +{len(down) - 1}" if len(down) > 1 else ""))
        lcol = words.GREEN if not down else words.RED
        fl = font(round(hh * 0.42))
        lw = d.textlength(ltxt, font=fl)
        r = round(hh * 0.15)
        lx = right - lw
        d.text((lx, hh / 2), ltxt, font=fl, fill=WHITE if not down else (255, 200, 200), anchor="lm")
        d.ellipse((lx - pad - 2 * r, hh / 2 - r, lx - pad, hh / 2 + r), fill=lcol)
        name_w = lx - pad - 2 * r - 3 * pad
        fs = fit_font(d, view.site, round(hh * 0.55), name_w)
        d.text((pad, hh / 2), ellipsize(d, view.site, fs, name_w), font=fs, fill=WHITE, anchor="lm")
        return hh

    def _normal_view(self, d: ImageDraw.ImageDraw, view: View, now: float) -> None:
        sensors = view.sensors
        pages = self.pages(len(sensors))
        page = self.page_at(len(sensors), now)
        hh = self._header(d, view, now, page, pages)
        W, H = self.width, self.height
        m = max(4, round(H * 0.015))
        on_page = sensors[page * self.max_tiles:(page + 1) * self.max_tiles]
        if not on_page:
            f = fit_font(d, "No sensors configured", round(H * 0.08), W * 0.9)
            d.text((W / 2, (H + hh) / 2), "No sensors configured", font=f, fill=(180, 185, 195), anchor="mm")
            return
        # a partially filled last page keeps the tile size of the full pages (no jumping)
        cols, rows = grid_for(min(len(sensors), self.max_tiles))
        tw = (W - m * (cols + 1)) / cols
        th = (H - hh - m * (rows + 1)) / rows
        for i, s in enumerate(on_page):
            c, r = i % cols, i // cols
            x0 = m + c * (tw + m)
            y0 = hh + m + r * (th + m)
            self._tile(d, s, now, x0, y0, tw, th)

    def _tile(self, d: ImageDraw.ImageDraw, s: SensorView, now: float, x0: float, y0: float, tw: float, th: float) -> None:
        sw = words.describe(s.kind, s.state) if s.online else words.StateWords("OFFLINE", words.GREY)
        radius = round(min(tw, th) * 0.06)
        d.rounded_rectangle((x0, y0, x0 + tw, y0 + th), radius=radius, fill=sw.colour)
        pad = max(3, round(min(tw, th) * 0.07))
        inner = tw - 2 * pad
        # three bands: name (24%), state words (40%), details (20%), with gaps
        fname = fit_font(d, s.name, round(th * 0.2), inner, min_size=max(8, round(th * 0.12)))
        d.text((x0 + pad, y0 + pad), ellipsize(d, s.name, fname, inner), font=fname, fill=WHITE, anchor="lt")
        fstate = fit_font(d, sw.text, round(th * 0.32), inner)
        d.text((x0 + pad, y0 + th * 0.53), sw.text, font=fstate, fill=WHITE, anchor="lm")
        # details: battery, signal, age
        fsmall = font(round(th * 0.15))
        ybase = y0 + th - pad
        x = x0 + pad
        bat = words.battery_level(s.state)
        bh = fsmall.size * 0.8
        if bat is not None:
            bw = bh * 1.8
            low = bat <= 20
            d.rectangle((x, ybase - bh, x + bw, ybase), outline=WHITE, width=max(1, round(bh / 8)))
            d.rectangle((x + bw, ybase - bh * 0.7, x + bw + bh * 0.2, ybase - bh * 0.3), fill=WHITE)
            fillw = max(0.0, min(1.0, bat / 100)) * (bw - 4)
            d.rectangle((x + 2, ybase - bh + 2, x + 2 + fillw, ybase - 2), fill=(255, 230, 0) if low else WHITE)
            x += bw + bh * 0.35
            t = f"{bat:.0f}%"
            d.text((x, ybase), t, font=fsmall, fill=WHITE, anchor="ls")
            x += d.textlength(t, font=fsmall) + bh * 0.6
        elif s.battery_low:
            d.text((x, ybase), "BATT LOW", font=fsmall, fill=(255, 230, 0), anchor="ls")
            x += d.textlength("BATT LOW", font=fsmall) + bh * 0.6
        bars = words.signal_bars(s.state)
        if bars is not None:
            bwid = bh * 0.3
            for b in range(4):
                hgt = bh * (b + 1) / 4
                box = (x + b * bwid * 1.4, ybase - hgt, x + b * bwid * 1.4 + bwid, ybase)
                if b < bars:
                    d.rectangle(box, fill=WHITE)
                else:
                    d.rectangle(box, outline=WHITE, width=1)
            x += 4 * bwid * 1.4 + bh * 0.5
        since = s.changed_at if s.online else s.last_seen  # offline: how long it has been silent
        if since is not None:
            t = words.age(now - since)
            tw_ = d.textlength(t, font=fsmall)
            if x0 + tw - pad - tw_ > x:
                d.text((x0 + tw - pad, ybase), t, font=fsmall, fill=WHITE, anchor="rs")
        self.last_layout = {"name_px": fname.size, "state_px": fstate.size, "detail_px": fsmall.size, "tile_h": th}

    # ---- alarm view ---------------------------------------------------------------
    def _alarm_view(self, d: ImageDraw.ImageDraw, view: View, now: float) -> None:
        W, H = self.width, self.height
        d.rectangle((0, 0, W, H), fill=ALARM_RED)
        alarms = view.alarms
        hh = max(24, round(H * 0.11))
        d.rectangle((0, 0, W, hh), fill=ALARM_DARK)
        pad = round(hh * 0.25)
        title = "ALARM" if len(alarms) == 1 else f"{len(alarms)} ALARMS"
        ft = font(round(hh * 0.62))
        d.text((pad, hh / 2), title, font=ft, fill=WHITE, anchor="lm")
        clock = time.strftime("%H:%M:%S", time.localtime(now))
        fc = font(round(hh * 0.55))
        d.text((W - pad, hh / 2), clock, font=fc, fill=WHITE, anchor="rm")
        site_w = W - 4 * pad - d.textlength(title, font=ft) - d.textlength(clock, font=fc)
        fs = fit_font(d, view.site, round(hh * 0.45), site_w, bold=False)
        d.text((W / 2, hh / 2), ellipsize(d, view.site, fs, site_w), font=fs, fill=(255, 220, 220), anchor="mm")
        inner = W - 2 * pad
        # the largest alarm takes the upper part; the others share what is left
        top = hh + pad
        main_h = (H - top - pad) * (1.0 if len(alarms) == 1 else 0.55)
        self._alarm_block(d, alarms[0], now, pad, top, inner, main_h)
        rest = alarms[1:]
        if not rest:
            return
        y = top + main_h + pad
        avail = H - y - pad
        row_h = max(avail / len(rest), H * 0.09)
        fit_rows = max(1, int(avail // row_h))
        shown = rest if len(rest) <= fit_rows else rest[:fit_rows - 1]
        for a in shown:
            d.line((pad, y, W - pad, y), fill=(255, 160, 160), width=max(1, round(H / 360)))
            self._alarm_row(d, a, now, pad, y, inner, row_h)
            y += row_h
        if len(shown) < len(rest):
            more = f"+ {len(rest) - len(shown)} more"
            d.text((pad, y + row_h / 2), more, font=font(round(row_h * 0.45)), fill=WHITE, anchor="lm")

    @staticmethod
    def _since(a: AlarmView, now: float) -> str:
        return f"since {time.strftime('%H:%M:%S', time.localtime(a.since))} ({words.age(now - a.since)})"

    def _alarm_block(self, d: ImageDraw.ImageDraw, a: AlarmView, now: float, x: float, y: float, w: float, h: float) -> None:
        fname = fit_font(d, a.sensor_name, round(h * 0.32), w)
        what = a.message or a.kind
        fwhat = fit_font(d, what, round(h * 0.2), w)
        fsince = fit_font(d, self._since(a, now), round(h * 0.14), w, bold=False)
        d.text((x, y + h * 0.22), ellipsize(d, a.sensor_name, fname, w), font=fname, fill=WHITE, anchor="lm")
        d.text((x, y + h * 0.58), ellipsize(d, what, fwhat, w), font=fwhat, fill=WHITE, anchor="lm")
        d.text((x, y + h * 0.86), self._since(a, now), font=fsince, fill=(255, 225, 225), anchor="lm")

    def _alarm_row(self, d: ImageDraw.ImageDraw, a: AlarmView, now: float, x: float, y: float, w: float, h: float) -> None:
        since = self._since(a, now)
        fsince = font(round(h * 0.32), bold=False)
        sw = d.textlength(since, font=fsince)
        text = f"{a.sensor_name}: {a.message or a.kind}"
        ftext = fit_font(d, text, round(h * 0.5), w - sw - h * 0.3)
        d.text((x, y + h / 2), ellipsize(d, text, ftext, w - sw - h * 0.3), font=ftext, fill=WHITE, anchor="lm")
        d.text((x + w, y + h / 2), since, font=fsince, fill=(255, 225, 225), anchor="rm")
