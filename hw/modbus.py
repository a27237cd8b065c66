"""Modbus lines: one per physical line (a serial port, or a host:port), shared by every
user of it (relay boards and Modbus inputs), so one transaction at a time is on the wire.

``ModbusLine`` keeps the RTU t3.5 silence between frames (the async pymodbus client does not
enforce it), reconnects on demand, and closes on any failure so no late reply is taken for the
next request's answer. ``ModbusLines`` is the platform's registry of lines (one per physical
line, reference counted) and of named endpoints ("relay board main" -> its line and device id)
that other users of the same board reach it by. ``InputBank`` is the simulated twin of Modbus
input devices: a line-like object that answers reads from memory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

if TYPE_CHECKING:
    from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

# pymodbus (~50 modules, ~1.5 MB) is imported when a line first connects: a config without
# Modbus boards or inputs never loads it

log = logging.getLogger("hw.modbus")


class ModbusError(Exception):
    """A Modbus line or device did not do what was asked (unreachable, timeout, refused)."""


class _LinkNoiseFilter(logging.Filter):
    """pymodbus logs every refused connect and every timeout at ERROR: with a board unplugged
    that is two lines a second forever. The users of a line report its problems themselves (once,
    on the transition), so those messages are dropped; anything else pymodbus says stays."""

    NOISE = ("Failed to connect", "No response received", "Not connected, trying to connect",
             "Connection lost", "Client cannot connect", "Repeating....")

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(n in msg for n in self.NOISE)


_pymodbus_log = logging.getLogger("pymodbus.logging")  # the one logger pymodbus logs on
if not any(isinstance(f, _LinkNoiseFilter) for f in _pymodbus_log.filters):
    _pymodbus_log.addFilter(_LinkNoiseFilter())


@dataclass(frozen=True)
class LineSpec:
    """Where a line is: a serial port with its settings, or a TCP endpoint and its framing."""

    kind: str  # "serial" | "tcp"
    target: str  # serial device path, or host
    port: int = 502
    framing: str = "tcp"  # tcp: "tcp" (MBAP) or "rtu"; serial: always rtu
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8
    timeout_s: float = 0.3

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.kind, self.target, self.port) if self.kind == "tcp" else (self.kind, self.target)

    def describe(self) -> str:
        if self.kind == "tcp":
            return f"{self.target}:{self.port}" + (" (RTU over TCP)" if self.framing == "rtu" else "")
        return f"{self.target} {self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"

    @classmethod
    def from_url(cls, url: str, timeout_s: float = 0.5) -> "LineSpec":
        """tcp://host:port, rtu-tcp://host:port or rtu:///dev/ttyUSB0?baudrate=9600&parity=N&stopbits=1."""
        from urllib.parse import parse_qs, urlparse

        u = urlparse(url)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        if u.scheme == "tcp":
            return cls("tcp", u.hostname or "127.0.0.1", u.port or 502, framing="tcp", timeout_s=timeout_s)
        if u.scheme == "rtu-tcp":
            return cls("tcp", u.hostname or "127.0.0.1", u.port or 4196, framing="rtu", timeout_s=timeout_s)
        if u.scheme == "rtu":
            return cls("serial", u.path, framing="rtu", baudrate=int(q.get("baudrate", 9600)), parity=q.get("parity", "N"),
                       stopbits=int(q.get("stopbits", 1)), timeout_s=timeout_s)
        raise ValueError(f"modbus url {url!r}: scheme must be tcp, rtu-tcp or rtu")

    @property
    def source(self) -> str:
        """The line as a URL: tcp://host:port, rtu-tcp://host:port or rtu:///dev/tty...?baudrate=..."""
        if self.kind == "tcp":
            return f"{'rtu-tcp' if self.framing == 'rtu' else 'tcp'}://{self.target}:{self.port}"
        return f"rtu://{self.target}?baudrate={self.baudrate}&parity={self.parity}&stopbits={self.stopbits}"


def tune_usb_serial(device: str) -> str:
    """USB-RS485 adapters (FTDI) hold received bytes up to 16 ms before handing them over:
    set the adapter's latency_timer to 1 ms when it has one. Returns what was done, for the log."""
    try:
        name = os.path.basename(os.path.realpath(device))
        knob = f"/sys/bus/usb-serial/devices/{name}/latency_timer"
        if not os.path.exists(knob):
            return ""
        with open(knob) as fh:
            if fh.read().strip() == "1":
                return ""
        with open(knob, "w") as fh:
            fh.write("1")
        return f"{device}: USB serial latency_timer set to 1 ms"
    except OSError as exc:
        return f"{device}: cannot set the USB serial latency_timer to 1 ms ({exc.strerror}); replies may wait 16 ms"


class ModbusLine:
    def __init__(self, spec: LineSpec):
        self.spec = spec
        self.lock = asyncio.Lock()
        self.client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._last_frame_end = 0.0
        # t3.5: 3.5 character times of 11 bits, fixed at 1.75 ms above 19200 baud
        self._gap_s = 0.00175 if spec.baudrate > 19200 else 3.5 * 11 / spec.baudrate
        self.users = 0
        self._tuned = False
        self._failures: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError)  # + pymodbus' own

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        from pymodbus import FramerType
        from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
        from pymodbus.exceptions import ModbusException

        self._failures = (ModbusException, OSError, asyncio.TimeoutError)
        s = self.spec
        common: dict[str, Any] = dict(timeout=s.timeout_s, retries=0, reconnect_delay=0)
        if s.kind == "tcp":
            framer = FramerType.RTU if s.framing == "rtu" else FramerType.SOCKET
            return AsyncModbusTcpClient(s.target, port=s.port, framer=framer, **common)
        return AsyncModbusSerialClient(s.target, framer=FramerType.RTU, baudrate=s.baudrate, parity=s.parity,
                                       stopbits=s.stopbits, bytesize=s.bytesize, **common)

    async def _ensure_connected(self) -> Any:
        if self.client is not None and self.client.connected:
            return self.client
        self.close()
        if self.spec.kind == "serial" and not self._tuned:
            self._tuned = True
            if note := tune_usb_serial(self.spec.target):
                log.info("%s", note)
        client = self._make_client()
        try:
            ok = await asyncio.wait_for(client.connect(), self.spec.timeout_s * 3 + 0.5)
        except self._failures as exc:
            client.close()
            raise ModbusError(f"cannot connect to {self.spec.describe()}: {exc or type(exc).__name__}") from None
        if not ok:
            client.close()
            raise ModbusError(f"cannot connect to {self.spec.describe()} (connection refused or no such device)")
        self.client = client
        return client

    async def transact(self, what: str, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        """Run one request on the line, alone. Raises ModbusError with ``what`` in the message."""
        async with self.lock:
            client = await self._ensure_connected()
            if self.spec.kind == "serial":  # a shared RS485 bus needs the silence; TCP does not
                wait = self._last_frame_end + self._gap_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                resp = await fn(client)
            except self._failures as exc:
                self.close()
                msg = str(exc) or type(exc).__name__
                if "No response" in msg or isinstance(exc, asyncio.TimeoutError):
                    msg = f"no answer within {self.spec.timeout_s * 1000:.0f} ms"
                raise ModbusError(f"{what} on {self.spec.describe()}: {msg}") from None
            finally:
                self._last_frame_end = time.monotonic()
            if resp is None or resp.isError():
                code = getattr(resp, "exception_code", "?")
                raise ModbusError(f"{what} on {self.spec.describe()}: board answered with Modbus exception {code}")
            return resp

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001 - closing a broken client must not raise
                pass
            self.client = None


class ModbusLines:
    """The platform's Modbus lines: one ``ModbusLine`` per physical line, shared and reference
    counted; plus named endpoints (a relay board publishes its line and device id under its
    name, and Modbus inputs on that board read through it)."""

    bank: "InputBank | None" = None  # simulated Modbus input devices (the simulated platform's)

    def __init__(self) -> None:
        self.lines: dict[tuple[Any, ...], ModbusLine] = {}
        self._named: dict[str, tuple[ModbusLine, int]] = {}

    def get(self, spec: LineSpec) -> "ModbusLine":
        line = self.lines.get(spec.key)
        if line is None:
            line = self.lines[spec.key] = ModbusLine(spec)
        elif line.spec != spec:
            raise ModbusError(f"line {spec.describe()} is configured twice with different settings")
        line.users += 1
        return line

    def release(self, line: "ModbusLine") -> None:
        line.users -= 1
        if line.users <= 0:
            line.close()
            if self.lines.get(line.spec.key) is line:
                del self.lines[line.spec.key]
        for name, (ln, _) in list(self._named.items()):
            if ln is line and line.users <= 0:
                del self._named[name]

    def publish(self, name: str, line: "ModbusLine", device_id: int) -> None:
        """Make ``line`` (device ``device_id`` on it) reachable as ``name``."""
        self._named[name] = (line, device_id)

    def withdraw(self, name: str) -> None:
        self._named.pop(name, None)

    def named(self, name: str) -> tuple["ModbusLine", int] | None:
        return self._named.get(name)

    def input_line(self, spec: LineSpec) -> Any:
        """A line to read Modbus inputs on (see ``SimulatedModbusLines`` for the twin)."""
        return self.get(spec)


@dataclass
class _Bits:
    bits: list[bool]

    def isError(self) -> bool:  # noqa: N802 - pymodbus' name
        return False


@dataclass
class _Registers:
    registers: list[int]

    def isError(self) -> bool:  # noqa: N802 - pymodbus' name
        return False


class _BankClient:
    """Answers pymodbus read calls from an InputBank."""

    def __init__(self, bank: "InputBank", source: str):
        self.bank = bank
        self.source = source

    async def read_discrete_inputs(self, address: int, *, count: int = 1, device_id: int = 1) -> _Bits:
        return _Bits([bool(self.bank.value(self.source, "discrete", address + i)) for i in range(count)])

    async def read_coils(self, address: int, *, count: int = 1, device_id: int = 1) -> _Bits:
        return _Bits([bool(self.bank.value(self.source, "coil", address + i)) for i in range(count)])

    async def read_input_registers(self, address: int, *, count: int = 1, device_id: int = 1) -> _Registers:
        return _Registers([int(self.bank.value(self.source, "input", address + i)) for i in range(count)])

    async def read_holding_registers(self, address: int, *, count: int = 1, device_id: int = 1) -> _Registers:
        return _Registers([int(self.bank.value(self.source, "holding", address + i)) for i in range(count)])


class InputBank:
    """Simulated Modbus input devices: values set by ``set(source, table, address, value)``
    (source: the line, e.g. ``tcp://10.0.0.9:502``), read back through ``BankLine``s."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str, int], int | bool] = {}

    def set(self, source: str, table: str, address: int, value: int | bool) -> None:
        """``source`` as the config names the line (e.g. tcp://10.0.0.9:502)."""
        self.values[(LineSpec.from_url(source).source, table, address)] = value

    def value(self, source: str, table: str, address: int) -> int | bool:
        return self.values.get((source, table, address), False if table in ("discrete", "coil") else 0)


class BankLine:
    """A line-like object (``transact``) on an InputBank."""

    def __init__(self, bank: InputBank, spec: LineSpec):
        self.spec = spec
        self.client = _BankClient(bank, spec.source)

    async def transact(self, what: str, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        return await fn(self.client)

    def close(self) -> None:
        return None


class SimulatedModbusLines(ModbusLines):
    """Relay boards still talk to real Modbus servers (the simulated board is one, and tests
    run pymodbus servers); Modbus inputs named by a line read from ``bank``."""

    def __init__(self) -> None:
        super().__init__()
        self.bank = InputBank()

    def input_line(self, spec: LineSpec) -> Any:
        return BankLine(self.bank, spec)
