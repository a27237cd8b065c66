"""Relays on GPIO pins through gpiozero (lgpio on Bookworm / Pi 5), active-high or active-low
per channel. The simulated twin is gpiozero's MockFactory with pins that also record when
each change happened (``RecordingMockPin.history``), so tests measure on the pin side.

Writing a pin is one ioctl that does not wait on anything, so it is done on the event loop's
thread: a thread hop would cost more than the write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from gpiozero import OutputDevice
from gpiozero.exc import GPIOZeroError
from gpiozero.pins.mock import MockFactory, MockPin

from .base import BoardError


class RecordingMockPin(MockPin):
    """A MockPin that also keeps (time.monotonic(), state) of every change."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.history: list[tuple[float, bool]] = []
        super().__init__(*args, **kwargs)

    def _change_state(self, value: bool) -> bool:
        changed = super()._change_state(value)
        if changed:
            self.history.append((time.monotonic(), bool(value)))
            del self.history[:-10000]
        return changed


def mock_factory() -> MockFactory:
    return MockFactory(pin_class=RecordingMockPin)


@dataclass(frozen=True)
class GpioChannel:
    pin: int  # BCM number
    active_high: bool = True
    initial: bool = False  # logical state when the pin is claimed (the safe state: no glitch)


class GpioBoard:
    def __init__(self, name: str, channels: list[GpioChannel], pin_factory: Any = None):
        self.name = name
        self.spec = channels
        self.channels = len(channels)
        self.factory = pin_factory
        self.devices: list[OutputDevice] = []

    async def open(self) -> None:
        if self.devices:
            return
        try:
            for ch in self.spec:
                self.devices.append(OutputDevice(ch.pin, active_high=ch.active_high, initial_value=ch.initial,
                                                 pin_factory=self.factory))
        except (GPIOZeroError, OSError, RuntimeError) as exc:
            await self.close()
            raise BoardError(f"cannot claim GPIO pins for board {self.name}: {exc}") from None

    async def close(self) -> None:
        for d in self.devices:
            try:
                d.close()
            except Exception:  # noqa: BLE001
                pass
        self.devices = []

    def _dev(self, channel: int) -> OutputDevice:
        if not self.devices:
            raise BoardError(f"GPIO board {self.name} is not open")
        if not 1 <= channel <= self.channels:
            raise BoardError(f"channel {channel} is out of range 1..{self.channels} on board {self.name}")
        return self.devices[channel - 1]

    def pin(self, channel: int) -> Any:
        """The gpiozero pin object of a channel (tests read MockPin state/history from it)."""
        return self._dev(channel).pin

    async def write(self, channel: int, on: bool) -> None:
        dev = self._dev(channel)
        try:
            dev.on() if on else dev.off()
        except (GPIOZeroError, OSError) as exc:
            raise BoardError(f"GPIO {self.spec[channel - 1].pin}: {exc}") from None

    async def write_many(self, states: dict[int, bool]) -> int:
        """Each pin in turn: a pin write is one ioctl that does not wait (no bus to share)."""
        for ch, on in sorted(states.items()):
            await self.write(ch, on)
        return len(states)

    async def read(self) -> list[bool]:
        if not self.devices:
            raise BoardError(f"GPIO board {self.name} is not open")
        return [bool(d.is_active) for d in self.devices]

    def can_time(self, ms: int, level: bool = True) -> bool:
        return False  # a thread in this process is no hardware timer: a crash would leave it on

    async def timed_pulse(self, channel: int, ms: int, level: bool = True) -> None:
        raise BoardError(f"GPIO board {self.name} cannot time a pulse itself")
