"""The relay-board seam: what the relay service needs from any board.

Channels are numbered from 1, as printed on the boards. Every implementation raises
``BoardError`` (with a message an installer can act on) when the board cannot be reached or
refuses a command; nothing else escapes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class BoardError(Exception):
    """The board did not do what was asked (unreachable, timeout, refused)."""


@runtime_checkable
class RelayBoard(Protocol):
    name: str
    channels: int

    async def open(self) -> None:
        """Connect (may raise BoardError; the service retries on its poll)."""

    async def close(self) -> None:
        """Release the line/pins. Never raises."""

    async def write(self, channel: int, on: bool) -> None:
        """Switch one channel on or off."""

    async def read(self) -> list[bool]:
        """The state of every channel (index 0 is channel 1)."""

    async def write_many(self, states: dict[int, bool]) -> int:
        """Switch several channels (channel -> on) in as few requests as the board allows (one
        per run of consecutive channels where it takes a multiple write, else one each);
        returns the number of requests."""

    def can_time(self, ms: int, level: bool = True) -> bool:
        """Whether the board can hold ``channel`` at ``level`` for ``ms`` and then switch it
        back by itself, so a crash or a lost link mid-pulse still ends the pulse."""

    async def timed_pulse(self, channel: int, ms: int, level: bool = True) -> None:
        """Hardware-timed pulse: ``level`` now, the opposite after ``ms`` (board-timed)."""
