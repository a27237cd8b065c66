"""The four front-panel buttons (up, down, select, back) through gpiozero.

gpiozero calls back on its own threads; every edge is stamped with its time and handed to
the event loop with ``call_soon_threadsafe``, and debounced there: a level counts once it
stayed ``bounce_s`` without another edge, so a bouncing contact gives one press and one
release (judged on the edges' timestamps, so a late loop loses no press). A button held ``hold_s`` gives a ``hold`` event (once; the menu measures longer
holds itself with its own clock).

The simulated twin is the simulated platform's ``MockFactory`` (shared with relays and inputs):
``press(name)`` drives the mock pin like a finger would (the demo's HTTP route and tests use it). Buttons are wired to ground with the
Pi's internal pull-ups (active low).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger("hw.buttons")

NAMES = ("up", "down", "select", "back")


@dataclass(frozen=True, slots=True)
class ButtonEvent:
    button: str
    kind: str  # "press" | "release" | "hold"


class Buttons:
    def __init__(self, pins: dict[str, int | str], on_event: Callable[[ButtonEvent], None], *,
                 loop: asyncio.AbstractEventLoop, pin_factory: Any = None, bounce_s: float = 0.03,
                 hold_s: float = 1.0):
        from gpiozero import Button

        self.on_event = on_event
        self.loop = loop
        self.bounce_s = bounce_s
        self.hold_s = hold_s
        self.pin_factory = pin_factory
        self._buttons: dict[str, Any] = {}
        self._pressed: dict[str, bool] = {}
        self._settle: dict[str, asyncio.TimerHandle] = {}
        self._pending: dict[str, tuple[bool, float]] = {}  # last edge: (level, time.monotonic())
        self._hold: dict[str, asyncio.TimerHandle] = {}
        try:
            for name, pin in pins.items():
                # debounce is done here on the loop, the same for real and mock pins
                b = Button(pin, pull_up=True, bounce_time=None, pin_factory=pin_factory)
                b.when_pressed = self._threadsafe(name, True)
                b.when_released = self._threadsafe(name, False)
                self._buttons[name] = b
                self._pressed[name] = False
        except Exception:
            self.close()
            raise

    def _threadsafe(self, name: str, level: bool) -> Callable[[], None]:
        def cb() -> None:
            ts = time.monotonic()  # when the edge happened, not when the loop gets to it
            try:
                self.loop.call_soon_threadsafe(self._edge, name, level, ts)
            except RuntimeError:
                pass  # loop closed during shutdown

        return cb

    # -- on the loop -------------------------------------------------------------------
    # A level counts once it stayed bounce_s without another edge. Stability is judged on the
    # edges' own timestamps, so a loop that is late (busy machine) still sees a short press.
    def _edge(self, name: str, level: bool, ts: float) -> None:
        pending = self._pending.get(name)
        if pending is not None and ts - pending[1] >= self.bounce_s:
            self._accept(name, *pending)
        self._pending[name] = (level, ts)
        h = self._settle.pop(name, None)
        if h is not None:
            h.cancel()
        self._settle[name] = self.loop.call_at(self._loop_time(ts + self.bounce_s), self._settled, name)

    def _loop_time(self, mono: float) -> float:
        return self.loop.time() + (mono - time.monotonic())

    def _settled(self, name: str) -> None:
        self._settle.pop(name, None)
        pending = self._pending.pop(name, None)
        if pending is not None:
            self._accept(name, *pending)

    def _accept(self, name: str, level: bool, ts: float) -> None:
        if name not in self._buttons or level == self._pressed[name]:
            return  # a bounce that came back to where it was
        self._pressed[name] = level
        if level:
            self._emit(ButtonEvent(name, "press"))
            self._hold[name] = self.loop.call_at(self._loop_time(ts + self.hold_s), self._held, name)
        else:
            h = self._hold.pop(name, None)
            if h is not None:
                h.cancel()
            self._emit(ButtonEvent(name, "release"))

    def _held(self, name: str) -> None:
        self._hold.pop(name, None)
        if self._pressed.get(name):
            self._emit(ButtonEvent(name, "hold"))

    def _emit(self, ev: ButtonEvent) -> None:
        try:
            self.on_event(ev)
        except Exception:  # noqa: BLE001
            log.exception("button handler failed for %s", ev)

    def is_pressed(self, name: str) -> bool:
        return self._pressed.get(name, False)

    # -- the simulated twin: a finger --------------------------------------------------
    @property
    def simulated(self) -> bool:
        """The pins are mock pins (the platform's MockFactory): software can press them."""
        return bool(self._buttons) and all(hasattr(b.pin, "drive_low") for b in self._buttons.values())

    def pin(self, name: str) -> Any:
        """The mock pin of a button (simulated platform only)."""
        if not self.simulated:
            raise RuntimeError("buttons are real hardware; they cannot be pressed from software")
        return self._buttons[name].pin

    async def press(self, name: str, hold_s: float = 0.0) -> None:
        """Press and release a simulated button, holding it ``hold_s`` seconds."""
        if name not in self._buttons:
            raise KeyError(name)
        pin = self.pin(name)
        pin.drive_low()
        await asyncio.sleep(max(hold_s, self.bounce_s * 2 + 0.01))
        pin.drive_high()
        await asyncio.sleep(self.bounce_s * 2 + 0.01)

    def close(self) -> None:
        for h in list(self._settle.values()) + list(self._hold.values()):
            h.cancel()
        self._settle.clear()
        self._hold.clear()
        for b in self._buttons.values():
            try:
                b.close()
            except Exception:  # noqa: BLE001
                pass
        self._buttons.clear()
