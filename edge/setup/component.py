"""The front panel as a supervised component: LCD + buttons driving the menu.

One loop task owns the menu: button events (from gpiozero threads, debounced on the loop) and
bus events (alarms, sensor changes, component health) arrive on one queue; every 0.2 s the
menu ticks, actions it asked for run as tasks, and the frame goes to the LCD's writer thread.

Web routes (all behind the device credentials):
  GET  /api/lcd              the screen as text
  POST /api/buttons/{name}   press a simulated button, body {} ({"hold_s": 11} holds it); refused (409)
                             when the buttons are real hardware
  GET  /panel                a page with the screen and the four buttons (the demo)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

from hw.buttons import NAMES as BUTTON_NAMES
from hw.buttons import ButtonEvent, Buttons
from hw.lcd import Lcd

from .. import __version__
from .. import config as config_mod
from .. import credentials as credentials_mod
from .. import paths
from .. import tls
from ..bus import Alarm, ComponentHealth, RelayChanged, SensorChanged, SensorReading
from ..component import Component, Health
from ..interfaces import RELAYS, VIDEO
from . import menu as m
from hw.system import keep_factory_copy

from .network import NetSettings, change, settings_from_config

log = logging.getLogger("edge.setup")

TICK_S = 0.2
REFRESH_S = 10.0  # ip address, relay list, link health


def primary_ip() -> str:
    """The address this host would use to reach the outside (no packet is sent)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))
        return s.getsockname()[0]
    return ""


class SetupComponent(Component):
    name = "setup"

    def __init__(self, ctx: Any, *, clock: Callable[[], float] = time.monotonic, network: Any = None,
                 system: Any = None):
        super().__init__()
        self.ctx = ctx
        self.clock = clock
        cfg = ctx.config.lcd
        self.cfg = cfg
        platform = ctx.platform
        display, self.sim_display = platform.char_display(cfg.driver, i2c_bus=cfg.i2c_bus, address=cfg.address,
                                                          cols=cfg.cols, rows=cfg.rows)
        self.lcd = Lcd(display, cfg.cols, cfg.rows, cfg.backlight_timeout_s, clock)
        ncfg = ctx.config.network
        self.network = network or platform.network(ncfg.driver, ncfg.interface, ncfg.connection,
                                                     settings_from_config(ncfg))
        # a simulated reboot (the demo) goes back to the home screen
        self.system = system or platform.system(ctx.data_dir, ctx.config_path, on_reboot=self._simulated_reboot,
                                                driver=ctx.config.service.system)
        self.buttons: Buttons | None = None
        self.buttons_error = ""
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._health_problems: dict[str, str] = {}
        self._sensor_names = {getattr(s, "id", ""): getattr(s, "name", "") for s in getattr(ctx.config, "sensors", []) or []}
        self.data = m.MenuData(version=__version__, started=clock(), wall=time.time)
        for sid, name in self._sensor_names.items():
            self.data.sensors[sid] = m.SensorView(name or sid, {}, 0.0)
        self._set_credentials(ctx.credentials.get())
        self.menu = m.Menu(self.data, cfg.cols, cfg.rows, home_cycle_s=cfg.home_cycle_s,
                           menu_timeout_s=cfg.menu_timeout_s, now=clock())
        ctx.credentials.listeners.append(self._on_credentials)
        ctx.web.router.add_get("/api/lcd", self._http_lcd)
        ctx.web.router.add_post("/api/buttons/{name}", self._http_button)
        ctx.web.router.add_get("/panel", self._http_panel)

    # ---- state fed to the menu -------------------------------------------------------------
    def _set_credentials(self, c: credentials_mod.Credentials) -> None:
        self.data.user, self.data.password, self.data.serial = c.user, c.password, c.serial
        self.data.acknowledged = c.acknowledged
        self.data.gateway_user, self.data.gateway_password = c.gateway_user, c.gateway_password
        cert = tls.load(self.ctx.data_dir)
        self.data.tls_fingerprint = cert.fingerprint if cert is not None else ""

    def _on_credentials(self, c: credentials_mod.Credentials) -> None:
        self._set_credentials(c)
        self._queue.put_nowait(None)  # redraw now

    def _on_button(self, ev: ButtonEvent) -> None:
        self._queue.put_nowait(ev)

    def _on_bus(self, ev: Any) -> None:
        d = self.data
        if isinstance(ev, Alarm):
            name = self._sensor_names.get(ev.sensor) or ev.sensor
            if ev.active:
                prev = d.alarms.get(ev.alarm)
                view = m.AlarmView(ev.alarm, name, ev.kind, ev.message or ev.kind, ev.since,
                                   acked=prev.acked if prev else False)
                d.alarms[ev.alarm] = view
                if prev is None:
                    self.menu.alarm(view, True)
                    self.lcd.wake()
            else:
                view = d.alarms.pop(ev.alarm, None)
                if view is not None:
                    self.menu.alarm(view, False)
        elif isinstance(ev, SensorChanged):
            name = self._sensor_names.get(ev.sensor) or ev.sensor
            d.sensors[ev.sensor] = m.SensorView(name, dict(ev.state), ev.ts)
        elif isinstance(ev, SensorReading):  # "last seen" counts readings that changed nothing too
            view = d.sensors.get(ev.sensor)
            if view is not None:
                view.last_seen = max(view.last_seen, ev.ts)
        elif isinstance(ev, RelayChanged):
            d.relay_on[ev.relay] = ev.on
        elif isinstance(ev, ComponentHealth):
            if ev.ok:
                self._health_problems.pop(ev.component, None)
            else:
                self._health_problems[ev.component] = f"{ev.component} {ev.detail or 'down'}"
            self._refresh_links()

    def _refresh_links(self) -> None:
        problems = list(self._health_problems.values())
        relays = self.ctx.registry.get(RELAYS)
        if relays is not None:
            try:
                for info in relays.describe():
                    if getattr(info, "reachable", None) is False:  # None: not known yet
                        problems.append(f"relay {info.name} offline")
                    elif getattr(info, "faulted", False):
                        problems.append(f"relay {info.name} fault")
            except Exception as exc:  # noqa: BLE001
                problems.append(f"relays: {exc}")
        if self.lcd.error:
            problems.append("lcd error")
        self.data.link_problems = problems

    async def _refresh(self) -> None:
        """Address, RTSP URL, relays, link health: now and every REFRESH_S."""
        while True:
            try:
                status = await self.network.status()
                self.data.network = status.settings
                ip = status.ip
            except Exception as exc:  # noqa: BLE001 - no NetworkManager: still show an address
                log.debug("network status: %s", exc)
                ip = ""
            self.data.ip = ip or await asyncio.to_thread(primary_ip)
            video = self.ctx.registry.get(VIDEO)
            if video is not None:
                try:
                    bound = getattr(getattr(self.ctx.config, "video", None), "rtsp_host", "") or ""
                    host = bound if bound not in ("", "0.0.0.0", "::") else (self.data.ip or "127.0.0.1")
                    self.data.rtsp_url = video.stream_uri(host)  # the address it listens on, e.g. 127.0.0.1 in the demo
                except Exception as exc:  # noqa: BLE001
                    self.data.rtsp_url = f"error: {exc}"
            relays = self.ctx.registry.get(RELAYS)
            if relays is not None:
                try:
                    self.data.relays = list(relays.names())
                    for name in self.data.relays:
                        self.data.relay_on[name] = relays.state(name)
                except Exception as exc:  # noqa: BLE001
                    log.warning("relay list: %s", exc)
            self._refresh_links()
            await asyncio.sleep(REFRESH_S)

    # ---- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.lcd.start()
        bcfg = self.ctx.config.buttons
        pins = {"up": bcfg.up, "down": bcfg.down, "select": bcfg.select, "back": bcfg.back}
        kw = dict(loop=loop, bounce_s=bcfg.bounce_ms / 1000, hold_s=bcfg.hold_s)
        if self.buttons is None:
            try:
                self.buttons = Buttons(pins, self._on_button, pin_factory=self.ctx.platform.pin_factory, **kw)
                self.buttons_error = ""
            except Exception as exc:  # noqa: BLE001 - the LCD still informs without buttons
                self.buttons_error = f"{type(exc).__name__}: {exc}"
                log.error("buttons unavailable (%s); the LCD shows status only", self.buttons_error)
        self.lcd.show(self.menu.render(self.clock()))

    async def run(self) -> None:
        sub = self.ctx.bus.subscribe(Alarm, SensorChanged, SensorReading, RelayChanged, ComponentHealth, maxsize=1000,
                                     name="setup")
        reader = asyncio.create_task(self._read_bus(sub), name="setup-bus")
        refresher = asyncio.create_task(self._refresh(), name="setup-refresh")
        try:
            while True:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that arrives as the queue yields an item, and the component never stops
                try:
                    async with asyncio.timeout(TICK_S):
                        item = await self._queue.get()
                    got_item = True  # a button, a bus event or a finished action
                except TimeoutError:
                    item, got_item = None, False
                now = self.clock()
                if isinstance(item, ButtonEvent):
                    was_lit = self.lcd.backlight
                    self.lcd.wake()
                    if was_lit or item.kind != "press":
                        self.menu.button(item, now)  # in the dark, the first press only lights the screen
                    log.debug("button %s %s", item.button, item.kind)
                self.menu.tick(now)
                for action in self.menu.take_actions():
                    self._spawn(self._perform(action))
                self.lcd.poll()
                frame = self.menu.render(now)
                if got_item and frame != self.lcd.text() and self.sim_display is not None:
                    log.info("lcd | %s |", " | ".join(frame))
                self.lcd.show(frame)
                self.beat()
                if reader.done():
                    reader.result()
                    raise RuntimeError("bus reader ended")
        finally:
            sub.close()
            for t in (reader, refresher):
                t.cancel()
            await asyncio.gather(reader, refresher, return_exceptions=True)

    async def _read_bus(self, sub: Any) -> None:
        async for ev in sub:
            self._on_bus(ev)
            if not isinstance(ev, SensorReading):
                self._queue.put_nowait(None)  # redraw now

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.buttons is not None:
            self.buttons.close()
            self.buttons = None
        await asyncio.to_thread(self.lcd.close)
        with contextlib.suppress(ValueError):
            self.ctx.credentials.listeners.remove(self._on_credentials)

    def health(self) -> Health:
        problems = []
        if self.lcd.error:
            problems.append(f"lcd: {self.lcd.error}")
        if self.buttons_error:
            problems.append(f"buttons: {self.buttons_error}")
        if problems:
            return Health(False, "; ".join(problems))
        # the screen as text for /healthz (the password is masked: STATUS= may show details)
        screen = " | ".join(line.rstrip() for line in self.lcd.text())
        for secret in (self.data.password, self.data.gateway_password):
            if secret:
                screen = screen.replace(secret, "*" * len(secret))
        return Health(True, f"lcd: {screen}")

    def _spawn(self, coro: Any) -> None:
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # ---- actions ---------------------------------------------------------------------------------
    async def _perform(self, action: m.Action) -> None:
        try:
            title, message = await self._do(action)
        except Exception as exc:  # noqa: BLE001 - show it, keep the menu alive
            log.exception("front panel action %s failed", action)
            title, message = "Failed", f"{type(exc).__name__}: {exc}"
        self.menu.done(action, title, message)
        self._queue.put_nowait(None)

    async def _do(self, action: m.Action) -> tuple[str, str]:
        ctx = self.ctx
        if isinstance(action, m.AcknowledgeCredentials):
            await asyncio.to_thread(credentials_mod.acknowledge, ctx.data_dir)
            ctx.credentials.reload()
            log.info("installer confirmed the credentials were noted")
            return "", ""
        if isinstance(action, m.RotateCredentials):
            await asyncio.to_thread(credentials_mod.rotate, ctx.data_dir)
            ctx.credentials.reload()
            log.warning("credentials rotated from the front panel")
            return "", ""  # the new password is shown until confirmed
        if isinstance(action, m.Pulse):
            relays = ctx.registry.get(RELAYS)
            if relays is None:
                return action.relay, "no relay service"
            res = await relays.pulse(action.relay, self.cfg.relay_test_pulse_ms, source="front-panel")
            if res.ok:
                return action.relay, f"pulsed OK {res.latency_ms:.0f}ms"
            return action.relay, f"FAILED {res.error}"
        if isinstance(action, m.AckAlarm):
            view = self.data.alarms.get(action.alarm)
            if view is not None:
                view.acked = True
            store = ctx.store
            if store is not None and hasattr(store, "record_event"):
                await store.record_event("alarm_ack", "front-panel", {"alarm": action.alarm})
            log.info("alarm %s acknowledged on the front panel", action.alarm)
            return "", ""
        if isinstance(action, m.ApplyNetwork):
            outcome = await change(self.network, action.settings, ctx.config.network.rollback_s)
            if outcome.ok:
                await asyncio.to_thread(self._write_network, action.settings)
                self.data.network = action.settings
                if action.settings.mode == "static":
                    self.data.ip = action.settings.address.split("/")[0]
                return "Network OK", outcome.message
            return "Rolled back" if outcome.rolled_back else "Network failed", outcome.message
        if isinstance(action, m.Reboot):
            await self.system.reboot()
            return "", ""
        if isinstance(action, m.FactoryReset):
            log.warning("factory reset from the front panel")
            await self.system.factory_reset()
            return "", ""
        raise ValueError(f"unknown action {action!r}")

    def _write_network(self, s: NetSettings) -> None:
        path = self.ctx.config_path
        if path is None:
            return
        if Path(path).resolve() == paths.DEMO_CONFIG.resolve():
            log.info("demo: the demo config is part of the source tree, not written (network %s)", s.describe())
            return
        keep_factory_copy(Path(path))
        if s.mode == "static":
            config_mod.write_value(path, "network.address", s.address)
            config_mod.write_value(path, "network.gateway", s.gateway)
            config_mod.write_value(path, "network.dns", list(s.dns))
        config_mod.write_value(path, "network.mode", s.mode)

    async def _simulated_reboot(self) -> None:
        """The demo's "reboot": back to the home screen, new credentials if they were wiped."""
        await asyncio.to_thread(credentials_mod.load_or_create, self.ctx.data_dir)
        self.ctx.credentials.reload()
        self.menu.home()
        self.menu.interrupts.clear()

    # ---- web ---------------------------------------------------------------------------------------
    def screen(self) -> dict[str, Any]:
        return {"lines": self.lcd.text(), "backlight": self.lcd.backlight, "cols": self.cfg.cols,
                "rows": self.cfg.rows, "buttons": "simulated" if self.buttons is not None and self.buttons.simulated else "hardware"}

    async def _http_lcd(self, request: web.Request) -> web.Response:
        return web.json_response(self.screen())

    async def _http_button(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in BUTTON_NAMES:
            return web.json_response({"error": f"unknown button {name!r}; buttons are {', '.join(BUTTON_NAMES)}"}, status=404)
        if self.buttons is None or not self.buttons.simulated:
            return web.json_response({"error": "the buttons are real hardware here; press them on the box"}, status=409)
        raw = (await request.json()).get("hold_s", 0)  # a JSON object: the web guard checked it
        try:
            hold = -1.0 if isinstance(raw, bool) else float(raw)
        except (TypeError, ValueError):
            hold = -1.0
        if not 0 <= hold <= 30:
            return web.json_response({"error": f"hold_s must be a number of seconds from 0 to 30, got {raw!r}"}, status=400)
        await self.buttons.press(name, hold)
        await asyncio.sleep(TICK_S)  # let the menu draw the result
        return web.json_response(self.screen())

    async def _http_panel(self, request: web.Request) -> web.Response:
        return web.Response(text=PANEL_HTML, content_type="text/html")


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
