"""A simulated relay board that is a real Modbus server (pymodbus), for the demo and tests.

It implements the board profiles of hw/boards/: coils (FC01/05/15), register commands (FC03/06)
and the hardware-timed pulses, timed by the board itself (``loop.call_later``), so a service
that dies mid-pulse still sees the relay released. Every coil transition is recorded with its
time (``history``) and handed to listeners: that is the board-side measurement tests and the
benchmark use.

Run it as its own process (the crash test does)::

    python -m hw.relays.sim --profile waveshare-8 --tcp 127.0.0.1:5020 [--framing rtu]
    python -m hw.relays.sim --profile waveshare-8 --serial /dev/pts/7

It prints one JSON line per coil transition: {"t": <unix time>, "m": <CLOCK_MONOTONIC, which
other processes on this machine share>, "channel": n, "on": bool}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Callable

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.bit_message import ReadCoilsRequest, ReadCoilsResponse, WriteMultipleCoilsRequest, WriteMultipleCoilsResponse
from pymodbus.pdu.register_message import ReadHoldingRegistersRequest, ReadHoldingRegistersResponse, WriteSingleRegisterRequest, WriteSingleRegisterResponse
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from .modbus import RawWriteCoilRequest
from .profiles import BoardProfile, get_profile

Listener = Callable[[float, int, bool], None]


class SimBoard:
    """The relays of one simulated board and the profile's commands on them."""

    def __init__(self, profile: BoardProfile, channels: int | None = None):
        self.profile = profile
        self.channels = channels or profile.channels
        self.coils = [False] * self.channels
        self.history: list[tuple[float, int, bool]] = []  # (time.monotonic(), channel, on)
        self.listeners: list[Listener] = []
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self.requests = 0
        self.bulk_writes = 0  # FC15 requests (several coils at once)

    # ---- relay state ----------------------------------------------------------------
    def _set(self, channel: int, on: bool) -> None:
        if self.coils[channel - 1] != on:
            self.coils[channel - 1] = on
            now = time.monotonic()
            self.history.append((now, channel, on))
            del self.history[:-10000]
            for cb in self.listeners:
                cb(now, channel, on)

    def switch(self, channel: int, on: bool) -> None:
        """A plain write: cancels any running board-timed pulse on the channel."""
        t = self._timers.pop(channel, None)
        if t is not None:
            t.cancel()
        self._set(channel, on)

    def timed(self, channel: int, level: bool, ms: int) -> None:
        """``level`` now, the opposite after ``ms``, timed here (a new one restarts the timer)."""
        self.switch(channel, level)
        loop = asyncio.get_running_loop()
        self._timers[channel] = loop.call_later(ms / 1000, self._timer_end, channel, not level)

    def _timer_end(self, channel: int, level: bool) -> None:
        self._timers.pop(channel, None)
        self._set(channel, level)

    def last_change(self, channel: int) -> tuple[float, bool] | None:
        for t, ch, on in reversed(self.history):
            if ch == channel:
                return t, on
        return None

    # ---- Modbus requests, per the profile ---------------------------------------------
    def _channel_for(self, address: int, base: int) -> int | None:
        ch = address - base + 1
        return ch if 1 <= ch <= self.channels else None

    def fc05(self, address: int, value: int) -> bool:
        p, w = self.profile.pulse, self.profile.write
        if w.kind == "coil" and (ch := self._channel_for(address, w.base)) is not None:
            if value == 0xFF00:
                self.switch(ch, True)
            elif value == 0x0000:
                self.switch(ch, False)
            elif value == 0x5500:
                self.switch(ch, not self.coils[ch - 1])
            else:
                return False
            return True
        if w.kind == "coil" and address == 0x00FF and value in (0xFF00, 0x0000, 0x5500):  # all channels
            for ch in range(1, self.channels + 1):
                self.switch(ch, (not self.coils[ch - 1]) if value == 0x5500 else value == 0xFF00)
            return True
        if p is not None and p.kind == "fc05_flash" and 1 <= value <= p.max_units:
            if (ch := self._channel_for(address, p.on_base)) is not None:
                self.timed(ch, True, value * p.unit_ms)
                return True
            if p.off_base is not None and (ch := self._channel_for(address, p.off_base)) is not None:
                self.timed(ch, False, value * p.unit_ms)
                return True
        return False

    def fc06(self, address: int, value: int) -> bool:
        w, p = self.profile.write, self.profile.pulse
        if w.kind != "register_command" or (ch := self._channel_for(address, w.base)) is None:
            return False
        cmd, arg = value >> 8, value & 0xFF
        if value == w.on_value:
            self.switch(ch, True)
        elif value == w.off_value:
            self.switch(ch, False)
        elif cmd == 0x03:
            self.switch(ch, not self.coils[ch - 1])
        elif cmd == 0x04:  # latch: this channel on, all others off
            for other in range(1, self.channels + 1):
                self.switch(other, other == ch)
        elif cmd == 0x05:  # momentary: on for one second
            self.timed(ch, True, 1000)
        elif p is not None and p.kind == "fc06_delay" and cmd == p.command >> 8 and arg >= 1:
            self.timed(ch, True, arg * p.unit_ms)
        else:
            return False
        return True

    def read_bits(self, address: int, count: int) -> list[bool] | None:
        r = self.profile.read
        if r.kind != "coils" or address < r.base or address - r.base + count > self.channels:
            return None
        i = address - r.base
        return self.coils[i:i + count]

    def read_registers(self, address: int, count: int) -> list[int] | None:
        r = self.profile.read
        if r.kind != "holding_registers" or address < r.base or address - r.base + count > self.channels:
            return None
        i = address - r.base
        return [int(b) for b in self.coils[i:i + count]]


# ---- pymodbus glue: requests that act on SimBoards instead of a datastore ---------------
class _BoardsContext(ModbusServerContext):
    def __init__(self, boards: dict[int, SimBoard]):  # noqa: D107 - bypasses the deprecated datastore
        self.old_simulator = True
        self.simdevices = []
        self.boards = boards

    def device_ids(self) -> list[int]:
        return list(self.boards)

    def board(self, device_id: int) -> SimBoard:
        b = self.boards.get(device_id)
        if b is None:
            raise NoSuchIdException(f"no board with device id {device_id}")
        b.requests += 1
        return b


def _exc(fc: int, code: ExcCodes = ExcCodes.ILLEGAL_ADDRESS) -> ExceptionResponse:
    return ExceptionResponse(fc, code)


class _ReadCoils(ReadCoilsRequest):
    async def datastore_update(self, context, device_id):  # type: ignore[override]
        bits = context.board(device_id).read_bits(self.address, self.count)
        return _exc(1) if bits is None else ReadCoilsResponse(bits=bits)


class _WriteCoil(RawWriteCoilRequest):
    async def datastore_update(self, context, device_id):  # type: ignore[override]
        if not context.board(device_id).fc05(self.address, self.value):
            return _exc(5, ExcCodes.ILLEGAL_VALUE)
        return RawWriteCoilRequest(address=self.address, value=self.value)


class _WriteCoils(WriteMultipleCoilsRequest):
    async def datastore_update(self, context, device_id):  # type: ignore[override]
        board = context.board(device_id)
        board.bulk_writes += 1
        for i, bit in enumerate(self.bits):
            if not board.fc05(self.address + i, 0xFF00 if bit else 0):
                return _exc(15)
        return WriteMultipleCoilsResponse(address=self.address, count=len(self.bits))


class _ReadRegisters(ReadHoldingRegistersRequest):
    async def datastore_update(self, context, device_id):  # type: ignore[override]
        regs = context.board(device_id).read_registers(self.address, self.count)
        return _exc(3) if regs is None else ReadHoldingRegistersResponse(registers=regs)


class _WriteRegister(WriteSingleRegisterRequest):
    async def datastore_update(self, context, device_id):  # type: ignore[override]
        value = self.registers[0]
        if not context.board(device_id).fc06(self.address, value):
            return _exc(6, ExcCodes.ILLEGAL_VALUE)
        return WriteSingleRegisterResponse(address=self.address, registers=[value])


CUSTOM_PDUS: list[type[ModbusPDU]] = [_ReadCoils, _WriteCoil, _WriteCoils, _ReadRegisters, _WriteRegister]


class SimServer:
    """A pymodbus server (TCP, RTU over TCP, or RTU on a serial port/pty) for SimBoards.

    ``await start()`` returns once it listens; ``port`` is then the bound TCP port (pass 0 to
    get a free one). ``stop()`` closes it (a board "unplugged"); ``start()`` again replugs it
    with the same relays.
    """

    def __init__(self, boards: dict[int, SimBoard], *, host: str = "127.0.0.1", port: int = 0,
                 framing: str = "tcp", serial: str | None = None, baudrate: int = 9600):
        self.boards = boards
        self.host = host
        self.port = port
        self.framing = framing
        self.serial = serial
        self.baudrate = baudrate
        self.server: ModbusTcpServer | ModbusSerialServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def board(self) -> SimBoard:
        return next(iter(self.boards.values()))

    async def start(self) -> None:
        ctx = _BoardsContext(self.boards)
        if self.serial:
            self.server = ModbusSerialServer(ctx, framer=FramerType.RTU, port=self.serial, baudrate=self.baudrate,
                                             ignore_missing_devices=True, custom_pdu=CUSTOM_PDUS)
        else:
            framer = FramerType.RTU if self.framing == "rtu" else FramerType.SOCKET
            self.server = ModbusTcpServer(ctx, framer=framer, address=(self.host, self.port),
                                          ignore_missing_devices=True, custom_pdu=CUSTOM_PDUS)
        try:
            await self.server.serve_forever(background=True)
        except Exception as exc:
            # forget the half-made server so the next start() tries again from scratch
            self.server = None
            where = self.serial or f"{self.host}:{self.port}"
            raise RuntimeError(f"simulated relay board cannot listen on {where}: {exc} "
                               f"(is another edge demo running?)") from None
        if not self.serial and self.port == 0:
            sock = self.server.transport.sockets[0]  # type: ignore[union-attr]
            self.port = sock.getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m hw.relays.sim", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="waveshare-8")
    ap.add_argument("--device-id", type=int, default=1)
    ap.add_argument("--channels", type=int, default=None)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", metavar="HOST:PORT")
    where.add_argument("--serial", metavar="DEVICE")
    ap.add_argument("--framing", choices=["tcp", "rtu"], default="tcp")
    ap.add_argument("--baudrate", type=int, default=115200)
    return ap.parse_args(argv)


async def _amain(args: argparse.Namespace) -> None:
    board = SimBoard(get_profile(args.profile), args.channels)
    # unix time derived from the monotonic stamp, so other processes can compare
    offset = time.time() - time.monotonic()

    def emit(t: float, ch: int, on: bool) -> None:
        sys.stdout.write(json.dumps({"t": t + offset, "m": t, "channel": ch, "on": on}) + "\n")
        sys.stdout.flush()

    board.listeners.append(emit)
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        srv = SimServer({args.device_id: board}, host=host or "127.0.0.1", port=int(port), framing=args.framing)
    else:
        srv = SimServer({args.device_id: board}, serial=args.serial, baudrate=args.baudrate)
    await srv.start()
    sys.stdout.write(json.dumps({"listening": srv.port if args.tcp else args.serial}) + "\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    try:
        asyncio.run(_amain(_parse_args(argv)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
