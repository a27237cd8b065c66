"""Modbus inputs: discrete inputs, coils and registers polled from boards, scaled into a
sensor field. One poller per board/line; a reading is emitted when a value changes (and once
at start), so a 200 ms poll does not flood the store.

Reads go through the relay developer's Modbus line (``hw.relays.modbus.ModbusLine``): an input
on a relay board (``board = "main"``) or on the same serial line / TCP endpoint as one shares
that board's line, so one transaction at a time is on the wire. Simulated mode reads ``url``
inputs from an in-memory bank (``SimulatedInputs``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any, Callable, Protocol
from urllib.parse import parse_qs, urlparse

from ..bus import SensorReading
from .config import ModbusInput, SensorConfig
from .mqtt import Backoff

log = logging.getLogger("edge.sensors.modbus")


class InputTransport(Protocol):
    async def connect(self) -> None: ...
    async def read(self, table: str, address: int, device_id: int) -> int | bool: ...
    def close(self) -> None: ...


def line_spec(url: str, timeout_s: float = 0.5) -> Any:
    """tcp://host:port, rtu-tcp://host:port or rtu:///dev/ttyUSB0?baudrate=9600&parity=N&stopbits=1."""
    from hw.relays.modbus import LineSpec

    u = urlparse(url)
    q = {k: v[-1] for k, v in parse_qs(u.query).items()}
    if u.scheme == "tcp":
        return LineSpec("tcp", u.hostname or "127.0.0.1", u.port or 502, framing="tcp", timeout_s=timeout_s)
    if u.scheme == "rtu-tcp":
        return LineSpec("tcp", u.hostname or "127.0.0.1", u.port or 4196, framing="rtu", timeout_s=timeout_s)
    if u.scheme == "rtu":
        return LineSpec("serial", u.path, framing="rtu", baudrate=int(q.get("baudrate", 9600)), parity=q.get("parity", "N"),
                        stopbits=int(q.get("stopbits", 1)), timeout_s=timeout_s)
    raise ValueError(f"modbus url {url!r}: scheme must be tcp, rtu-tcp or rtu")


class LineTransport:
    """Reads on a ``hw.relays.modbus.ModbusLine``: the relay service's own line when the input
    is on a relay board or on the same RS485 line (one transaction at a time on the wire, the
    t3.5 gap kept), else a line of our own."""

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


class SimulatedInputs:
    """In-memory inputs for simulated mode and tests: ``set(url, table, address, value)``."""

    banks: dict[tuple[str, str, int], int | bool] = {}

    def __init__(self, url: str):
        self.url = url

    async def connect(self) -> None:
        return None

    async def read(self, table: str, address: int, device_id: int) -> int | bool:
        return self.banks.get((self.url, table, address), False if table in ("discrete", "coil") else 0)

    @classmethod
    def set(cls, url: str, table: str, address: int, value: int | bool) -> None:
        cls.banks[(url, table, address)] = value

    def close(self) -> None:
        return None


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
    def __init__(self, sensors: list[SensorConfig], feed: Callable[[SensorReading], Any], simulated: bool,
                 relays: Callable[[], Any] = lambda: None):
        self.sensors = [s for s in sensors if s.source == "modbus" and s.modbus is not None]
        self.feed = feed
        self.simulated = simulated
        self.relays = relays
        self.by_source: dict[str, list[SensorConfig]] = defaultdict(list)
        for s in self.sensors:
            m = s.modbus
            assert m is not None
            self.by_source[f"board:{m.board}" if m.board else (m.url or "")].append(s)
        self.last: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.polls = 0
        self._own_pool: Any = None

    def transport(self, source: str) -> InputTransport:
        if source.startswith("board:"):
            name = source[len("board:"):]
            relays = self.relays()
            rt = getattr(relays, "boards", {}).get(name) if relays is not None else None
            line = getattr(getattr(rt, "board", None), "line", None)
            if line is None:
                raise ConnectionError(f"relay board {name!r} is not a running Modbus board")
            return LineTransport(line)
        if self.simulated:
            return SimulatedInputs(source)
        relays = self.relays()
        pool = getattr(relays, "pool", None)
        if pool is None:
            if self._own_pool is None:
                from hw.relays.modbus import LinePool

                self._own_pool = LinePool()
            pool = self._own_pool
        line = pool.get(line_spec(source))
        return LineTransport(line, lambda: pool.release(line))

    async def run(self) -> None:
        if not self.by_source:
            await asyncio.Event().wait()
        async with asyncio.TaskGroup() as tg:
            for source, sensors in self.by_source.items():
                tg.create_task(self._poll(source, sensors))

    def _device_id(self, source: str, m: ModbusInput) -> int:
        if m.device_id is not None:
            return m.device_id
        if source.startswith("board:"):
            relays = self.relays()
            rt = getattr(relays, "boards", {}).get(source[len("board:"):]) if relays is not None else None
            return int(getattr(getattr(rt, "board", None), "device_id", 1))
        return 1

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
