"""GPIO dry-contact inputs (gpiozero): debounced, normally-open or normally-closed wiring.

``normally`` names the circuit in the normal (secure) state: a door's reed contact wired
normally-closed is a closed circuit while the door is closed. For a contact sensor the field
``contact`` is True (closed door) in the normal state; for the other kinds (motion, leak,
smoke, tamper...) the field is True when the circuit leaves its normal state.

Debounce is "stable for debounce_ms": an edge starts a timer on the loop, every further edge
restarts it, and the level is read and reported when it fires. A glitch shorter than the
window is never reported, and every pin factory (lgpio on the Pi, the mock in tests) behaves
the same. gpiozero calls back on its own threads: edges are handed to the loop with
``call_soon_threadsafe``. The pins come from the platform's pin factory; on the simulated
platform they are mock pins (``pin.drive_low()/drive_high()`` move them).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from ..bus import SensorReading
from .config import SensorConfig

log = logging.getLogger("edge.sensors.gpio")

class GpioInputs:
    def __init__(self, sensors: list[SensorConfig], feed: Callable[[SensorReading], Any], pin_factory: Any = None):
        self.sensors = [s for s in sensors if s.source == "gpio" and s.gpio is not None]
        self.feed = feed
        self.pin_factory = pin_factory  # the platform's: shared with relays and buttons
        self.devices: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[str, asyncio.TimerHandle] = {}
        self._reported: dict[str, bool] = {}

    def value_for(self, s: SensorConfig, circuit_closed: bool) -> bool:
        assert s.gpio is not None
        normal = circuit_closed == (s.gpio.normally == "closed")
        return normal if s.kind == "contact" else not normal

    def start(self) -> None:
        if not self.sensors:
            return
        from gpiozero import DigitalInputDevice

        self._loop = asyncio.get_running_loop()
        factory = self.pin_factory
        for s in self.sensors:
            g = s.gpio
            assert g is not None
            try:
                dev = DigitalInputDevice(g.pin, pull_up=g.pull_up, bounce_time=None, pin_factory=factory)
            except Exception as exc:  # noqa: BLE001 - one bad pin must not take the others down
                self.errors[s.id] = f"GPIO {g.pin}: {exc}"
                log.error("sensor %s: cannot open GPIO %s: %s", s.id, g.pin, exc)
                continue
            # active = the contact closes the circuit (pulled to ground with pull-up, to 3V3 with pull-down)
            dev.when_activated = self._callback(s, True)
            dev.when_deactivated = self._callback(s, False)
            self.devices[s.id] = dev
            self._emit(s, bool(dev.is_active))

    def _callback(self, s: SensorConfig, closed: bool) -> Callable[[], None]:
        def cb() -> None:  # on a gpiozero thread
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._edge, s, closed)
        return cb

    def _edge(self, s: SensorConfig, closed: bool) -> None:
        h = self._pending.pop(s.id, None)
        if h is not None:
            h.cancel()
        assert s.gpio is not None and self._loop is not None
        if s.gpio.debounce_ms == 0:
            self._emit(s, closed)
            return
        self._pending[s.id] = self._loop.call_later(s.gpio.debounce_ms / 1000, self._settle, s)

    def _settle(self, s: SensorConfig) -> None:
        self._pending.pop(s.id, None)
        dev = self.devices.get(s.id)
        if dev is not None:
            self._emit(s, bool(dev.is_active))

    def _emit(self, s: SensorConfig, circuit_closed: bool) -> None:
        if self._reported.get(s.id) is circuit_closed:
            return
        self._reported[s.id] = circuit_closed
        self.feed(SensorReading(s.id, {s.primary_field: self.value_for(s, circuit_closed)}, source="gpio"))

    def pin(self, sensor_id: str) -> Any:
        """The gpiozero pin of an input (a mock pin on the simulated platform)."""
        return self.devices[sensor_id].pin

    def close(self) -> None:
        for h in self._pending.values():
            h.cancel()
        self._pending.clear()
        self._reported.clear()
        for dev in self.devices.values():
            try:
                dev.close()
            except Exception:  # noqa: BLE001
                pass
        self.devices.clear()
