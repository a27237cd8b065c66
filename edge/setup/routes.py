"""The front panel on the web (all behind the device credentials, like every route):

  GET  /api/lcd              the screen as text
  POST /api/buttons/{name}   press a simulated button, body {} ({"hold_s": 11} holds it); refused (409)
                             when the buttons are real hardware
  GET  /panel                a page with the screen and the four buttons (the demo)
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from aiohttp import web

from hw.buttons import NAMES as BUTTON_NAMES
from hw.buttons import Buttons

MAX_HOLD_S = 30.0


class PanelSurface(Protocol):
    """What the routes read and press (the component)."""

    buttons: Buttons | None  # None until started, or when the pins could not be had

    def screen(self) -> dict[str, Any]: ...


def add_routes(router: web.UrlDispatcher, panel: PanelSurface, settle_s: float) -> None:
    """``settle_s``: how long a button press waits for the menu to draw its result."""

    async def lcd(request: web.Request) -> web.Response:
        return web.json_response(panel.screen())

    async def button(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in BUTTON_NAMES:
            return web.json_response({"error": f"unknown button {name!r}; buttons are {', '.join(BUTTON_NAMES)}"},
                                     status=404)
        buttons = panel.buttons
        if buttons is None or not buttons.simulated:
            return web.json_response({"error": "the buttons are real hardware here; press them on the box"}, status=409)
        raw = (await request.json()).get("hold_s", 0)  # a JSON object: the web guard checked it
        try:
            hold = -1.0 if isinstance(raw, bool) else float(raw)
        except (TypeError, ValueError):
            hold = -1.0
        if not 0 <= hold <= MAX_HOLD_S:
            return web.json_response({"error": f"hold_s must be a number of seconds from 0 to {MAX_HOLD_S:.0f}, "
                                               f"got {raw!r}"}, status=400)
        await buttons.press(name, hold)
        await asyncio.sleep(settle_s)  # let the menu draw the result
        return web.json_response(panel.screen())

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PANEL_HTML, content_type="text/html")

    router.add_get("/api/lcd", lcd)
    router.add_post("/api/buttons/{name}", button)
    router.add_get("/panel", page)


PANEL_HTML = """<!doctype html><html><head><meta charset="utf-8"><title>edge front panel</title>
<style>body{font-family:sans-serif;margin:2em}#lcd{font:28px monospace;background:#2d4;color:#021;padding:.4em;
display:inline-block;white-space:pre;border:6px solid #333}#lcd.off{background:#353}button{font-size:20px;margin:.3em}</style>
</head><body><h1>Front panel (simulated)</h1><div id="lcd"></div><p>
<button onclick="b('up')">&#9650; up</button><button onclick="b('down')">&#9660; down</button>
<button onclick="b('select')">select</button><button onclick="b('back')">back</button>
<button onclick="b('select',11)">hold select 11 s</button></p>
<p>Keys: arrows up/down, Enter = select, Backspace/Escape = back.</p>
<script>
function show(s){const e=document.getElementById('lcd');e.textContent=s.lines.join('\\n');e.className=s.backlight?'':'off'}
async function poll(){try{const r=await fetch('/api/lcd');if(r.ok)show(await r.json())}catch(e){}}
async function b(n,h){const r=await fetch('/api/buttons/'+n,{method:'POST',headers:{'Content-Type':'application/json'},
body:JSON.stringify({hold_s:h||0})});if(r.ok)show(await r.json())}
document.addEventListener('keydown',e=>{const k={ArrowUp:'up',ArrowDown:'down',Enter:'select',Backspace:'back',Escape:'back'}[e.key];
if(k){e.preventDefault();b(k)}});
poll();setInterval(poll,500);
</script></body></html>
"""
