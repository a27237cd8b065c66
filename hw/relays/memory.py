"""An in-memory relay board: the ``RelayBoard`` seam on a ``SimBoard``, with no bus at all.

The Modbus boards' simulated twin is a real Modbus server (``hw.relays.sim``); this one skips
the wire, so code above the seam (the relay service's channel rules) can be tested alone and
fast. The relays, their history and the board-timed pulses are the ``SimBoard``'s, so a pulse
is measured the same way as on the server twin (``board.sim.history``).

Faults an installer meets, on demand:

- ``unplugged``: every call fails (``BoardError``), as with a lost link;
- ``fail_writes``: reads answer but writes fail (a board that refuses commands);
- ``broken_timer``: a board-timed pulse starts but the board never ends it.
"""

from __future__ import annotations

from .base import BoardError
from .modbus import consecutive_runs
from .profiles import BoardProfile, get_profile
from .sim import SimBoard


class MemoryBoard:
    def __init__(self, name: str = "memory", profile: BoardProfile | str = "waveshare-8", channels: int | None = None):
        self.name = name
        self.sim = SimBoard(get_profile(profile) if isinstance(profile, str) else profile, channels)
        self.channels = self.sim.channels
        self.unplugged = False
        self.fail_writes = False
        self.broken_timer = False
        self.writes = 0  # commands that reached the board (writes and timed pulses)
        self.bulk_writes = 0  # of which multiple writes (several channels in one request)

    def _reach(self, what: str) -> None:
        if self.unplugged:
            raise BoardError(f"{what} on board {self.name}: no answer (unplugged)")

    def _check(self, channel: int, what: str) -> None:
        self._reach(what)
        if self.fail_writes:
            raise BoardError(f"{what} on board {self.name}: refused")
        if not 1 <= channel <= self.channels:
            raise BoardError(f"channel {channel} is out of range 1..{self.channels} on board {self.name}")

    async def open(self) -> None:
        self._reach("open")

    async def close(self) -> None:
        return None

    async def write(self, channel: int, on: bool) -> None:
        self._check(channel, f"switch channel {channel} {'on' if on else 'off'}")
        self.writes += 1
        self.sim.switch(channel, on)

    async def write_many(self, states: dict[int, bool]) -> int:
        for ch in states:
            self._check(ch, f"switch channel {ch}")
        w = self.sim.profile.write
        if w.kind != "coil" or not w.multiple:
            for ch, on in sorted(states.items()):
                await self.write(ch, on)
            return len(states)
        runs = consecutive_runs(states)
        for first, bits in runs:
            self.writes += 1
            self.bulk_writes += 1
            for i, on in enumerate(bits):
                self.sim.switch(first + i, on)
        return len(runs)

    async def read(self) -> list[bool]:
        self._reach("read relays")
        return list(self.sim.coils)

    def can_time(self, ms: int, level: bool = True) -> bool:
        p = self.sim.profile.pulse
        return p is not None and p.supports(level) and p.units_for(ms) is not None

    async def timed_pulse(self, channel: int, ms: int, level: bool = True) -> None:
        self._check(channel, f"hardware-timed {ms} ms pulse on channel {channel}")
        if not self.can_time(ms, level):
            raise BoardError(f"board {self.name} ({self.sim.profile.name}) cannot time a {ms} ms pulse itself")
        self.writes += 1
        if self.broken_timer:
            self.sim.switch(channel, level)
        else:
            self.sim.timed(channel, level, ms)
