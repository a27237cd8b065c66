"""Modbus relay boards (RTU over RS485, TCP, RTU framing over TCP) driven by a profile.

One ``ModbusLine`` per physical line (a serial port, or a host:port): every board on the line
shares its pymodbus client, and a lock makes sure one transaction at a time is on the wire
(with the RTU t3.5 silence between frames, which the async client does not enforce). The
line reconnects on demand; any failure closes it so no late reply can be taken for the next
request's answer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from .base import BoardError
from .profiles import BoardProfile


log = logging.getLogger("hw.relays.modbus")


class _LinkNoiseFilter(logging.Filter):
    """pymodbus logs every refused connect and every timeout at ERROR: with a board unplugged
    that is two lines a second forever. The relay service reports board problems itself (once,
    on the transition), so those messages are dropped; anything else pymodbus says stays."""

    NOISE = ("Failed to connect", "No response received", "Not connected, trying to connect",
             "Connection lost", "Client cannot connect", "Repeating....")

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(n in msg for n in self.NOISE)


_pymodbus_log = logging.getLogger("pymodbus.logging")  # the one logger pymodbus logs on
if not any(isinstance(f, _LinkNoiseFilter) for f in _pymodbus_log.filters):
    _pymodbus_log.addFilter(_LinkNoiseFilter())


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

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
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
        except (asyncio.TimeoutError, OSError, ModbusException) as exc:
            client.close()
            raise BoardError(f"cannot connect to {self.spec.describe()}: {exc or type(exc).__name__}") from None
        if not ok:
            client.close()
            raise BoardError(f"cannot connect to {self.spec.describe()} (connection refused or no such device)")
        self.client = client
        return client

    async def transact(self, what: str, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        """Run one request on the line, alone. Raises BoardError with ``what`` in the message."""
        async with self.lock:
            client = await self._ensure_connected()
            if self.spec.kind == "serial":  # a shared RS485 bus needs the silence; TCP does not
                wait = self._last_frame_end + self._gap_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                resp = await fn(client)
            except (ModbusException, OSError, asyncio.TimeoutError) as exc:
                self.close()
                msg = str(exc) or type(exc).__name__
                if "No response" in msg or isinstance(exc, asyncio.TimeoutError):
                    msg = f"no answer within {self.spec.timeout_s * 1000:.0f} ms"
                raise BoardError(f"{what} on {self.spec.describe()}: {msg}") from None
            finally:
                self._last_frame_end = time.monotonic()
            if resp is None or resp.isError():
                code = getattr(resp, "exception_code", "?")
                raise BoardError(f"{what} on {self.spec.describe()}: board answered with Modbus exception {code}")
            return resp

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001 - closing a broken client must not raise
                pass
            self.client = None


class LinePool:
    """One ModbusLine per physical line, shared by the boards on it."""

    def __init__(self) -> None:
        self.lines: dict[tuple[Any, ...], ModbusLine] = {}

    def get(self, spec: LineSpec) -> ModbusLine:
        line = self.lines.get(spec.key)
        if line is None:
            line = self.lines[spec.key] = ModbusLine(spec)
        elif line.spec != spec:
            raise BoardError(f"line {spec.describe()} is configured twice with different settings")
        line.users += 1
        return line

    def release(self, line: ModbusLine) -> None:
        line.users -= 1
        if line.users <= 0:
            line.close()
            self.lines.pop(line.spec.key, None)


class ModbusBoard:
    """A relay board on a Modbus line, speaking its profile."""

    def __init__(self, name: str, profile: BoardProfile, line: ModbusLine, device_id: int, channels: int | None = None):
        self.name = name
        self.profile = profile
        self.line = line
        self.device_id = device_id
        self.channels = channels or profile.channels

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
            await self.line.transact(f"switch channel {channel} {'on' if on else 'off'}",
                                     lambda c: c.write_coil(addr, on, device_id=dev))
        else:
            addr = w.base + channel - 1
            value = w.on_value if on else w.off_value
            await self.line.transact(f"switch channel {channel} {'on' if on else 'off'}",
                                     lambda c: c.write_register(addr, value, device_id=dev))

    async def read(self) -> list[bool]:
        r = self.profile.read
        n = self.channels
        dev = self.device_id
        if r.kind == "coils":
            resp = await self.line.transact("read relays", lambda c: c.read_coils(r.base, count=n, device_id=dev))
            bits = list(resp.bits[:n])
        else:
            resp = await self.line.transact("read relays",
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
            await self.line.transact(what, lambda c: c.execute(False, req))
        else:
            addr = p.base + channel - 1
            await self.line.transact(what, lambda c: c.write_register(addr, p.command | units, device_id=dev))
