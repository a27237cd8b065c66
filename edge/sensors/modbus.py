"""Modbus inputs: discrete inputs, coils and registers polled from boards, scaled into a
sensor field. One poller per board connection; a reading is emitted when a value changes
(and once at start), so a 200 ms poll does not flood the store.

The transport is a small interface (``InputTransport.read``): pymodbus for TCP, RTU over
TCP and serial RTU, and an in-memory bank for simulated mode.
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


class PymodbusTransport:
    def __init__(self, url: str, timeout: float = 1.0):
        from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
        from pymodbus.framer import FramerType

        u = urlparse(url)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        if u.scheme == "tcp":
            self.client: Any = AsyncModbusTcpClient(u.hostname or "127.0.0.1", port=u.port or 502, timeout=timeout, retries=0)
        elif u.scheme == "rtu-tcp":
            self.client = AsyncModbusTcpClient(u.hostname or "127.0.0.1", port=u.port or 4196, framer=FramerType.RTU,
                                               timeout=timeout, retries=0)
        elif u.scheme == "rtu":
            self.client = AsyncModbusSerialClient(u.path, framer=FramerType.RTU, baudrate=int(q.get("baudrate", 9600)),
                                                  parity=q.get("parity", "N"), stopbits=int(q.get("stopbits", 1)),
                                                  timeout=timeout, retries=0)
        else:
            raise ValueError(f"modbus url {url!r}: scheme must be tcp, rtu-tcp or rtu")

    async def connect(self) -> None:
        if not self.client.connected:
            ok = await self.client.connect()
            if not ok:
                raise ConnectionError("cannot connect")

    async def read(self, table: str, address: int, device_id: int) -> int | bool:
        c = self.client
        if table == "discrete":
            rr = await c.read_discrete_inputs(address, count=1, device_id=device_id)
        elif table == "coil":
            rr = await c.read_coils(address, count=1, device_id=device_id)
        elif table == "input":
            rr = await c.read_input_registers(address, count=1, device_id=device_id)
        else:
            rr = await c.read_holding_registers(address, count=1, device_id=device_id)
        if rr.isError():
            raise IOError(f"modbus exception response: {rr}")
        return bool(rr.bits[0]) if table in ("discrete", "coil") else int(rr.registers[0])

    def close(self) -> None:
        self.client.close()


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
                 transport_factory: Callable[[str], InputTransport] | None = None):
        self.sensors = [s for s in sensors if s.source == "modbus" and s.modbus is not None]
        self.feed = feed
        self.factory = transport_factory or (SimulatedInputs if simulated else PymodbusTransport)
        self.by_url: dict[str, list[SensorConfig]] = defaultdict(list)
        for s in self.sensors:
            self.by_url[s.modbus.url].append(s)  # type: ignore[union-attr]
        self.last: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.polls = 0

    async def run(self) -> None:
        if not self.by_url:
            await asyncio.Event().wait()
        async with asyncio.TaskGroup() as tg:
            for url, sensors in self.by_url.items():
                tg.create_task(self._poll_board(url, sensors))

    async def _poll_board(self, url: str, sensors: list[SensorConfig]) -> None:
        period = min(s.modbus.poll_ms for s in sensors) / 1000  # type: ignore[union-attr]
        backoff = Backoff(0.5, 30)
        transport = self.factory(url)
        try:
            while True:
                try:
                    await transport.connect()
                    for s in sensors:
                        m = s.modbus
                        assert m is not None
                        raw = await transport.read(m.table, m.address, m.device_id)
                        v = value_for(s, raw)
                        if self.last.get(s.id, object()) != v:
                            self.last[s.id] = v
                            self.feed(SensorReading(s.id, {s.primary_field: v}, source="modbus"))
                    self.polls += 1
                    self.errors.pop(url, None)
                    backoff.reset()
                    await asyncio.sleep(period)
                except (OSError, ConnectionError, asyncio.TimeoutError, Exception) as exc:  # noqa: BLE001
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    msg = f"{type(exc).__name__}: {exc}"
                    if self.errors.get(url) != msg:
                        log.warning("modbus inputs %s: %s", url, msg)
                    self.errors[url] = msg
                    transport.close()
                    transport = self.factory(url)
                    await asyncio.sleep(backoff.next())
        finally:
            transport.close()
