"""A fake SMBus with a PCF8574 + HD44780 on it: decodes what the driver writes into the text a
person would read on the glass.

Written from the datasheets, independently of hw/lcd.py: the PCF8574's port bits are
P0 RS, P1 RW, P2 E, P3 backlight, P4-P7 D4-D7; the HD44780 latches D4-D7 on the falling edge
of E; it starts in 8-bit mode (one strobe = one byte, low nibble read as 0) until a function
set with DL=0; in 4-bit mode two strobes make a byte, high nibble first. RS=0 is a command,
RS=1 writes a character to DDRAM at the address counter, which then moves by one.
DDRAM in 2-line mode: line 1 is 0x00-0x27, line 2 0x40-0x67; a 20x4 shows rows 3/4 at
0x14/0x54, a 16x4 at 0x10/0x50.
"""

from __future__ import annotations

import threading

RS, RW, E, BL = 0x01, 0x02, 0x04, 0x08


class FakeLcdBus:
    def __init__(self, address: int = 0x27, cols: int = 16, rows: int = 2):
        self.address = address
        self.cols = cols
        self.rows = rows
        self.lock = threading.Lock()
        self.port = 0
        self.eight_bit = True
        self.half: int | None = None  # the high nibble waiting for its low half
        self.ddram = [0x20] * 128
        self.ac = 0
        self.increment = True
        self.display_on = False
        self.backlight = False
        self.data_writes = 0  # characters written (for "only changed characters" checks)
        self.strobes = 0
        self.wrong_address = 0
        self.violations = 0  # timing rules the driver broke
        self.attempts = 0  # every I2C transaction tried, failed or not
        self.closed = False
        self.fail = False  # set True to make every write raise OSError (unplugged)

    # -- smbus2 surface used by the driver --------------------------------------------------
    def write_byte(self, addr: int, value: int) -> None:
        self._check(addr)
        with self.lock:
            self._port(value)

    def write_i2c_block_data(self, addr: int, register: int, data: list[int]) -> None:
        self._check(addr)
        if len(data) > 32:
            raise OSError(22, "SMBus block longer than 32 bytes")
        with self.lock:
            for v in [register, *data]:
                self._port(v)

    def close(self) -> None:
        self.closed = True

    def _check(self, addr: int) -> None:
        self.attempts += 1
        if self.fail:
            raise OSError(121, "Remote I/O error")
        if addr != self.address:
            self.wrong_address += 1
            raise OSError(121, f"no device at 0x{addr:02x}")

    # -- the PCF8574 port -------------------------------------------------------------------
    def _port(self, value: int) -> None:
        prev, self.port = self.port, value & 0xFF
        self.backlight = bool(value & BL)
        if not prev & E and value & E and (prev ^ value) & (RS | RW):
            self.violations += 1  # RS/RW must be set up (tAS) before E rises, not with it
        if prev & E and not value & E:  # falling edge of E: latch D4-D7
            self.strobes += 1
            if prev & RW:
                return  # a read; the driver never reads
            self._nibble((prev >> 4) & 0x0F, bool(prev & RS))

    def _nibble(self, nib: int, rs: bool) -> None:
        if self.eight_bit:
            self._byte(nib << 4, rs)
            return
        if self.half is None:
            self.half = nib
            return
        byte = (self.half << 4) | nib
        self.half = None
        self._byte(byte, rs)

    # -- the HD44780 ------------------------------------------------------------------------
    def _byte(self, b: int, rs: bool) -> None:
        if rs:
            self.ddram[self.ac & 0x7F] = b
            self.data_writes += 1
            self._move()
            return
        if b & 0x80:  # set DDRAM address
            self.ac = b & 0x7F
        elif b & 0x40:  # set CGRAM address: not used
            pass
        elif b & 0x20:  # function set
            self.eight_bit = bool(b & 0x10)
            self.half = None
        elif b & 0x08:  # display control
            self.display_on = bool(b & 0x04)
        elif b & 0x04:  # entry mode
            self.increment = bool(b & 0x02)
        elif b & 0x02:  # return home
            self.ac = 0
        elif b & 0x01:  # clear
            self.ddram = [0x20] * 128
            self.ac = 0
            self.increment = True

    def _move(self) -> None:
        a = self.ac + (1 if self.increment else -1)
        # two-line mode: 0x27 -> 0x40, 0x67 -> 0x00
        if a == 0x28:
            a = 0x40
        elif a == 0x68:
            a = 0x00
        self.ac = a & 0x7F

    # -- what a person reads --------------------------------------------------------------
    def row_offsets(self) -> tuple[int, ...]:
        return (0x00, 0x40, 0x14, 0x54) if self.cols == 20 else (0x00, 0x40, 0x10, 0x50)

    def text(self) -> list[str]:
        """The screen, one string per row (blank when the display is off)."""
        with self.lock:
            if not self.display_on:
                return [" " * self.cols] * self.rows
            out = []
            for r in range(self.rows):
                base = self.row_offsets()[r]
                out.append("".join(chr(self.ddram[base + c]) for c in range(self.cols)))
            return out

    def screen(self) -> str:
        return "\n".join(self.text())
