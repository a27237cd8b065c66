"""The front panel as a supervised component: LCD + buttons driving the menu.

One loop task owns the menu: button events (from gpiozero threads, debounced on the loop) and
bus events (alarms, sensor changes, component health) arrive on one queue; every 0.2 s the
menu ticks, actions it asked for run as tasks (``handlers``), and the frame goes to the LCD's
writer thread. What the menu shows is kept current by ``feed``; the web routes are ``routes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Callable

from hw.buttons import ButtonEvent, Buttons
from hw.lcd import Lcd
from hw.network import NetworkBackend
from hw.system import SystemControl

from .. import __version__
from .. import credentials as credentials_mod
from ..bus import SensorReading
from ..component import Component, Health
from .actions import Action
from .feed import EVENTS, MenuFeed
from .handlers import perform
from .menu import Menu
from .network import settings_from_config
from .routes import add_routes
from .views import MenuData

log = logging.getLogger("edge.setup")

TICK_S = 0.2


class SetupComponent(Component):
    name = "setup"

    def __init__(self, ctx: Any, *, clock: Callable[[], float] = time.monotonic, network: NetworkBackend | None = None,
                 system: SystemControl | None = None):
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
        self._redraw_queued = False  # a bus event asked for a redraw the loop has not done yet
        self.data = MenuData(version=__version__, started=clock(), wall=time.time)
        self.menu = Menu(self.data, cfg.cols, cfg.rows, home_cycle_s=cfg.home_cycle_s,
                         menu_timeout_s=cfg.menu_timeout_s, now=clock())
        self.feed = MenuFeed(ctx, self.menu, self.network, self.lcd)
        self.feed.credentials(ctx.credentials.get())
        ctx.credentials.listeners.append(self._on_credentials)
        add_routes(ctx.web.router, self, settle_s=TICK_S)

    def _on_credentials(self, c: credentials_mod.Credentials) -> None:
        self.feed.credentials(c)
        self._queue.put_nowait(None)  # redraw now

    def _on_button(self, ev: ButtonEvent) -> None:
        self._queue.put_nowait(ev)

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
        sub = self.ctx.bus.subscribe(*EVENTS, maxsize=1000, name="setup")
        reader = asyncio.create_task(self._read_bus(sub), name="setup-bus")
        refresher = asyncio.create_task(self.feed.refresh_forever(), name="setup-refresh")
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
                self._redraw_queued = False  # the frame below shows every bus event fed so far
                now = self.clock()
                if isinstance(item, ButtonEvent):
                    was_lit = self.lcd.backlight
                    self.lcd.wake()
                    if was_lit or item.kind != "press":
                        self.menu.button(item, now)  # in the dark, the first press only lights the screen
                    log.debug("button %s %s", item.button, item.kind)
                self.menu.tick(now)
                for action in self.menu.take_actions():
                    self.spawn(self._perform(action), name=f"setup-{type(action).__name__}")
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
            self.feed.on_bus(ev)
            # redraw now, once for however many changes come before the loop gets to it (a
            # redraw per change cost 8 % of the loop at 2,000 readings a second)
            if not isinstance(ev, SensorReading) and not self._redraw_queued:
                self._redraw_queued = True
                self._queue.put_nowait(None)

    async def _perform(self, action: Action) -> None:
        title, message = await perform(self, action)
        self.menu.done(action, title, message)
        self._queue.put_nowait(None)

    async def stop(self) -> None:
        await self.cancel_spawned()  # actions in flight, before their buttons and screen go
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

    async def _simulated_reboot(self) -> None:
        """The demo's "reboot": back to the home screen, new credentials if they were wiped."""
        await asyncio.to_thread(credentials_mod.load_or_create, self.ctx.data_dir)
        self.ctx.credentials.reload()
        self.menu.home()
        self.menu.interrupts.clear()

    def screen(self) -> dict[str, Any]:
        """The screen as the web shows it (``routes``)."""
        return {"lines": self.lcd.text(), "backlight": self.lcd.backlight, "cols": self.cfg.cols,
                "rows": self.cfg.rows, "buttons": "simulated" if self.buttons is not None and self.buttons.simulated else "hardware"}
