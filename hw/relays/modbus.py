"""Modbus relay boards (RTU over RS485, TCP, RTU framing over TCP) driven by a profile.

A board talks through a ``hw.modbus.ModbusLine`` (one per physical line, shared with the other
boards and the Modbus inputs on it); a line failure becomes a ``BoardError``.
"""

from __future__ import annotations

import struct
from typing import Any, Awaitable, Callable

from pymodbus.pdu import ModbusPDU

from ..modbus import ModbusError, ModbusLine
from .base import BoardError
from .profiles import BoardProfile


class RawWriteCoilRequest(ModbusPDU):
    """FC05 with any 16-bit value. pymodbus' write_coil only encodes FF00/0000; the Waveshare
    flash commands put the pulse length (n x 100 ms) in the value field."""

    function_code = 5
    rtu_frame_size = 8

    def __init__(self, address: int = 0, value: int = 0, dev_id: int = 0, transaction_id: int = 0) -> None:
        super().__init__(dev_id=dev_id, transaction_id=transaction_id, address=address)
        self.value = value

    def encode(self) -> bytes:
        return struct.pack(">HH", self.address, self.value)

    def decode(self, data: bytes) -> None:
        self.address, self.value = struct.unpack(">HH", data[:4])
        self.bits = [bool(self.value)]


class ModbusBoard:
    """A relay board on a Modbus line, speaking its profile."""

    def __init__(self, name: str, profile: BoardProfile, line: ModbusLine, device_id: int, channels: int | None = None):
        self.name = name
        self.profile = profile
        self.line = line
        self.device_id = device_id
        self.channels = channels or profile.channels

    async def _tx(self, what: str, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        try:
            return await self.line.transact(what, fn)
        except ModbusError as exc:
            raise BoardError(str(exc)) from None

    def _check(self, channel: int) -> None:
        if not 1 <= channel <= self.channels:
            raise BoardError(f"channel {channel} is out of range 1..{self.channels} on board {self.name}")

    async def open(self) -> None:
        await self.read()

    async def close(self) -> None:
        return None  # the line is closed by its pool

    async def write(self, channel: int, on: bool) -> None:
        self._check(channel)
        w = self.profile.write
        dev = self.device_id
        if w.kind == "coil":
            addr = w.base + channel - 1
            await self._tx(f"switch channel {channel} {'on' if on else 'off'}",
                                     lambda c: c.write_coil(addr, on, device_id=dev))
        else:
            addr = w.base + channel - 1
            value = w.on_value if on else w.off_value
            await self._tx(f"switch channel {channel} {'on' if on else 'off'}",
                                     lambda c: c.write_register(addr, value, device_id=dev))

    async def write_many(self, states: dict[int, bool]) -> int:
        for ch in states:
            self._check(ch)
        w = self.profile.write
        if w.kind != "coil" or not w.multiple:
            for ch, on in sorted(states.items()):
                await self.write(ch, on)
            return len(states)
        dev = self.device_id
        runs = consecutive_runs(states)
        for first, bits in runs:
            addr = w.base + first - 1
            await self._tx(f"switch channels {first}..{first + len(bits) - 1}",
                           lambda c, a=addr, b=bits: c.write_coils(a, b, device_id=dev))
        return len(runs)

    async def read(self) -> list[bool]:
        r = self.profile.read
        n = self.channels
        dev = self.device_id
        if r.kind == "coils":
            resp = await self._tx("read relays", lambda c: c.read_coils(r.base, count=n, device_id=dev))
            bits = list(resp.bits[:n])
        else:
            resp = await self._tx("read relays",
                                            lambda c: c.read_holding_registers(r.base, count=n, device_id=dev))
            bits = [bool(v) for v in resp.registers[:n]]
        if len(bits) < n:
            raise BoardError(f"read relays on {self.line.spec.describe()}: board returned {len(bits)} of {n} channels")
        return bits

    def can_time(self, ms: int, level: bool = True) -> bool:
        p = self.profile.pulse
        return p is not None and p.supports(level) and p.units_for(ms) is not None

    async def timed_pulse(self, channel: int, ms: int, level: bool = True) -> None:
        self._check(channel)
        p = self.profile.pulse
        units = p.units_for(ms) if p is not None else None
        if p is None or units is None or not p.supports(level):
            raise BoardError(f"board {self.name} ({self.profile.name}) cannot time a {ms} ms pulse itself")
        dev = self.device_id
        what = f"hardware-timed {ms} ms pulse on channel {channel}"
        if p.kind == "fc05_flash":
            base = p.on_base if level else p.off_base
            assert base is not None
            req = RawWriteCoilRequest(address=base + channel - 1, value=units, dev_id=dev)
            await self._tx(what, lambda c: c.execute(False, req))
        else:
            addr = p.base + channel - 1
            await self._tx(what, lambda c: c.write_register(addr, p.command | units, device_id=dev))


def consecutive_runs(states: dict[int, bool]) -> list[tuple[int, list[bool]]]:
    """(first channel, states) for each run of consecutive channels in ``states``."""
    runs: list[tuple[int, list[bool]]] = []
    for ch in sorted(states):
        if runs and runs[-1][0] + len(runs[-1][1]) == ch:
            runs[-1][1].append(states[ch])
        else:
            runs.append((ch, [states[ch]]))
    return runs
