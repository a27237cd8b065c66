"""Modbus inputs: discrete inputs, coils and registers polled from boards, scaled into a
sensor field. One poller per board/line; a reading is emitted when a value changes (and once
at start), so a 200 ms poll does not flood the store.

Reads go through the platform's Modbus lines (``hw.modbus``): an input on a relay board
(``board = "main"``) reads through the line that board published, and one on the same serial
line / TCP endpoint as a board shares that line, so one transaction at a time is on the wire.
On the simulated platform ``url`` inputs read from its in-memory bank
(``platform.modbus.bank.set(url, table, address, value)``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any, Callable, Protocol

from hw.modbus import LineSpec, ModbusLines

from ..backoff import Backoff
from ..bus import SensorReading
from ..interfaces import relay_board_line
from .config import ModbusInput, SensorConfig

log = logging.getLogger("edge.sensors.modbus")


class InputTransport(Protocol):
    async def connect(self) -> None: ...
    async def read(self, table: str, address: int, device_id: int) -> int | bool: ...
    def close(self) -> None: ...


def line_spec(url: str, timeout_s: float = 0.5) -> LineSpec:
    """tcp://host:port, rtu-tcp://host:port or rtu:///dev/ttyUSB0?baudrate=9600&parity=N&stopbits=1."""
    return LineSpec.from_url(url, timeout_s)


class LineTransport:
    """Reads on one of the platform's Modbus lines (shared with the relay boards on it: one
    transaction at a time on the wire, the t3.5 gap kept)."""

    def __init__(self, line: Any, release: Callable[[], None] | None = None):
        self.line = line
        self._release = release

    async def connect(self) -> None:
        return None  # the line connects on demand

    async def read(self, table: str, address: int, device_id: int) -> int | bool:
        what = f"read {table} {address} of device {device_id}"
        if table == "discrete":
            rr = await self.line.transact(what, lambda c: c.read_discrete_inputs(address, count=1, device_id=device_id))
        elif table == "coil":
            rr = await self.line.transact(what, lambda c: c.read_coils(address, count=1, device_id=device_id))
        elif table == "input":
            rr = await self.line.transact(what, lambda c: c.read_input_registers(address, count=1, device_id=device_id))
        else:
            rr = await self.line.transact(what, lambda c: c.read_holding_registers(address, count=1, device_id=device_id))
        return bool(rr.bits[0]) if table in ("discrete", "coil") else int(rr.registers[0])

    def close(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None


def scale(m: ModbusInput, raw: int | bool) -> float | int:
    v = int(raw)
    if m.signed and v >= 0x8000:
        v -= 0x10000
    x = v * m.scale + m.offset
    return x if (m.scale != 1 or m.offset != 0) else v


def value_for(s: SensorConfig, raw: int | bool) -> Any:
    m = s.modbus
    assert m is not None
    if m.table in ("discrete", "coil") or s.binary:
        return bool(raw) != m.invert
    return scale(m, raw)


class ModbusInputs:
    def __init__(self, sensors: list[SensorConfig], feed: Callable[[SensorReading], Any], lines: ModbusLines):
        self.sensors = [s for s in sensors if s.source == "modbus" and s.modbus is not None]
        self.feed = feed
        self.lines = lines
        self.by_source: dict[str, list[SensorConfig]] = defaultdict(list)
        for s in self.sensors:
            m = s.modbus
            assert m is not None
            self.by_source[f"board:{m.board}" if m.board else (m.url or "")].append(s)
        self.last: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.polls = 0
        self._board_device: dict[str, int] = {}

    def transport(self, source: str) -> InputTransport:
        if source.startswith("board:"):
            name = source[len("board:"):]
            found = self.lines.named(relay_board_line(name))
            if found is None:
                raise ConnectionError(f"relay board {name!r} is not a running Modbus board")
            line, device_id = found
            self._board_device[source] = device_id
            return LineTransport(line)
        spec = line_spec(source)
        line = self.lines.input_line(spec)
        if line is self.lines.lines.get(spec.key):
            return LineTransport(line, lambda: self.lines.release(line))
        return LineTransport(line)

    async def run(self) -> None:
        if not self.by_source:
            await asyncio.Event().wait()
        async with asyncio.TaskGroup() as tg:
            for source, sensors in self.by_source.items():
                tg.create_task(self._poll(source, sensors))

    def _device_id(self, source: str, m: ModbusInput) -> int:
        if m.device_id is not None:
            return m.device_id
        return self._board_device.get(source, 1)

    async def _poll(self, source: str, sensors: list[SensorConfig]) -> None:
        period = min(s.modbus.poll_ms for s in sensors) / 1000  # type: ignore[union-attr]
        backoff = Backoff(0.5, 30)
        transport: InputTransport | None = None
        try:
            while True:
                try:
                    if transport is None:
                        transport = self.transport(source)
                    await transport.connect()
                    for s in sensors:
                        m = s.modbus
                        assert m is not None
                        raw = await transport.read(m.table, m.address, self._device_id(source, m))
                        v = value_for(s, raw)
                        if self.last.get(s.id, object()) != v:
                            self.last[s.id] = v
                            self.feed(SensorReading(s.id, {s.primary_field: v}, source="modbus"))
                    self.polls += 1
                    if self.errors.pop(source, None) is not None:
                        log.info("modbus inputs %s: answering again", source)
                    backoff.reset()
                    await asyncio.sleep(period)
                except Exception as exc:  # noqa: BLE001 - BoardError, OSError, bad config: report, retry
                    msg = str(exc) or type(exc).__name__
                    if self.errors.get(source) != msg:
                        log.warning("modbus inputs %s: %s", source, msg)
                    self.errors[source] = msg
                    await asyncio.sleep(backoff.next())
        finally:
            if transport is not None:
                transport.close()
