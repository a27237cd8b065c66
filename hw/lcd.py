"""Character LCD: an HD44780 behind a PCF8574 I2C backpack, and its simulated twin.

Written straight on smbus2 (already a dependency) rather than through RPLCD: the PCF8574
protocol is a few lines, smbus2 lets a test put a fake bus in its place, and one library
fewer to pin on the image.

Layers, each with one job:

- ``CharDisplay``: the device seam. ``write(row, col, text)`` and ``set_backlight(on)``,
  both blocking. ``Hd44780Pcf8574`` is the real one, ``SimulatedDisplay`` keeps the screen as
  text (used by the demo and by ``edge demo``'s status page).
- ``Lcd``: what the application uses from the event loop. ``show(lines)`` never blocks: the
  newest frame is handed to a writer thread that rewrites only the characters that changed
  since the last frame it wrote (frames that arrive while it is busy are coalesced). It turns
  the backlight off after ``backlight_timeout_s`` without ``wake()``.

The backpack's usual wiring (PCF8574 port bit -> LCD pin): P0 RS, P1 RW, P2 E, P3 backlight,
P4-P7 D4-D7. The controller runs in 4-bit mode; a nibble is latched on the falling edge of E.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Protocol

log = logging.getLogger("hw.lcd")

RS = 0x01
RW = 0x02
EN = 0x04
BACKLIGHT = 0x08

# HD44780 commands
CLEAR = 0x01
ENTRY_MODE_INC = 0x06
DISPLAY_ON = 0x0C  # display on, cursor off, blink off
FUNCTION_4BIT_2LINE = 0x28
SET_DDRAM = 0x80

RETRY_S = 1.0  # a failed display (unplugged, wrong address) is reopened this often

ROW_OFFSETS_16 = (0x00, 0x40, 0x10, 0x50)
ROW_OFFSETS_20 = (0x00, 0x40, 0x14, 0x54)

# Characters the HD44780's A00 ROM shows as themselves; everything else becomes '?'
_PRINTABLE = {chr(c) for c in range(0x20, 0x7E)} - {"\\"}  # 0x5C is a yen sign, 0x7E an arrow


def row_offsets(cols: int) -> tuple[int, ...]:
    return ROW_OFFSETS_20 if cols >= 20 else ROW_OFFSETS_16


def to_rom(text: str) -> str:
    return "".join(c if c in _PRINTABLE else "?" for c in text)


class SMBusLike(Protocol):
    def write_byte(self, i2c_addr: int, value: int) -> None: ...
    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int]) -> None: ...
    def close(self) -> None: ...


class CharDisplay(Protocol):
    cols: int
    rows: int

    def write(self, row: int, col: int, text: str) -> None: ...
    def set_backlight(self, on: bool) -> None: ...
    def close(self) -> None: ...


class Hd44780Pcf8574:
    """The real display. Blocking: call it from the writer thread only."""

    def __init__(self, bus: SMBusLike, address: int = 0x27, cols: int = 16, rows: int = 2):
        self.bus = bus
        self.address = address
        self.cols = cols
        self.rows = rows
        self.offsets = row_offsets(cols)
        self.backlight = BACKLIGHT
        self._init()

    # -- low level ---------------------------------------------------------------------
    def _nibbles(self, items: list[tuple[int, int]]) -> list[int]:
        """Port values for (nibble, rs) pairs. Each nibble: E high with the data, then E low
        (latched on the falling edge). Where RS changes, the new RS is put on the port with E
        low first (RS must settle before E rises); within a run of the same RS it already has."""
        raw: list[int] = []
        rs_now: int | None = None
        for nibble, rs in items:
            data = ((nibble & 0x0F) << 4) | rs | self.backlight
            if rs != rs_now:
                raw.append(data)
                rs_now = rs
            raw += [data | EN, data]
        return raw

    @staticmethod
    def _split(value: int, rs: int) -> list[tuple[int, int]]:
        return [(value >> 4, rs), (value & 0x0F, rs)]

    def _send(self, raw: list[int]) -> None:
        # A PCF8574 takes a stream of port values in one transaction; SMBus blocks are <= 32.
        for i in range(0, len(raw), 32):
            chunk = raw[i:i + 32]
            if len(chunk) == 1:
                self.bus.write_byte(self.address, chunk[0])
            else:
                self.bus.write_i2c_block_data(self.address, chunk[0], chunk[1:])

    def _command(self, cmd: int) -> None:
        self._send(self._nibbles(self._split(cmd, 0)))

    def _init(self) -> None:
        self.bus.write_byte(self.address, self.backlight)
        time.sleep(0.02)  # > 15 ms after power-on
        # three times "8-bit mode" to get in sync from any state, then 4-bit
        for wait in (0.0045, 0.0002, 0.0002):
            self._send(self._nibbles([(0x03, 0)]))
            time.sleep(wait)
        self._send(self._nibbles([(0x02, 0)]))
        self._command(FUNCTION_4BIT_2LINE)
        self._command(DISPLAY_ON)
        self._command(CLEAR)
        time.sleep(0.002)  # clear takes 1.52 ms
        self._command(ENTRY_MODE_INC)

    # -- CharDisplay -------------------------------------------------------------------
    def write(self, row: int, col: int, text: str) -> None:
        items = self._split(SET_DDRAM | (self.offsets[row] + col), 0)
        for ch in to_rom(text):
            items += self._split(ord(ch), RS)
        self._send(self._nibbles(items))

    def set_backlight(self, on: bool) -> None:
        self.backlight = BACKLIGHT if on else 0
        self.bus.write_byte(self.address, self.backlight)

    def close(self) -> None:
        try:
            self.bus.close()
        except Exception:  # noqa: BLE001
            pass


class SimulatedDisplay:
    """The twin: the screen as text, what a person would read."""

    def __init__(self, cols: int = 16, rows: int = 2):
        self.cols = cols
        self.rows = rows
        self.lines = [" " * cols for _ in range(rows)]
        self.backlight = True
        self.chars_written = 0

    def write(self, row: int, col: int, text: str) -> None:
        text = to_rom(text)
        line = self.lines[row]
        self.lines[row] = (line[:col] + text + line[col + len(text):])[: self.cols]
        self.chars_written += len(text)

    def set_backlight(self, on: bool) -> None:
        self.backlight = on

    def text(self) -> list[str]:
        return list(self.lines)

    def close(self) -> None:
        pass


def changed_runs(old: list[str], new: list[str]) -> list[tuple[int, int, str]]:
    """(row, col, text) runs where ``new`` differs from ``old``; unchanged characters are skipped
    (a gap of up to 2 unchanged characters is rewritten instead: one DDRAM address command
    costs as much as two characters)."""
    runs: list[tuple[int, int, str]] = []
    for r, (a, b) in enumerate(zip(old, new)):
        diff = [i for i in range(len(b)) if i >= len(a) or a[i] != b[i]]
        if not diff:
            continue
        start = prev = diff[0]
        for i in diff[1:]:
            if i - prev > 3:  # more than 2 unchanged characters between: a new run
                runs.append((r, start, b[start:prev + 1]))
                start = i
            prev = i
        runs.append((r, start, b[start:prev + 1]))
    return runs


class Lcd:
    """The loop-side front of a CharDisplay: non-blocking frames, diffing, backlight timeout."""

    def __init__(self, opener: Callable[[], CharDisplay], cols: int, rows: int,
                 backlight_timeout_s: float = 0.0, clock: Callable[[], float] = time.monotonic):
        self._opener = opener
        self.cols = cols
        self.rows = rows
        self.backlight_timeout_s = backlight_timeout_s
        self.clock = clock
        self.display: CharDisplay | None = None
        self._frame = [" " * cols for _ in range(rows)]  # the newest frame asked for
        self._written: list[str] | None = None  # what the device shows (None: unknown)
        self._want_backlight = True
        self._backlight_on: bool | None = None
        self._last_wake = clock()
        self._cv = threading.Condition()
        self._dirty = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self.error = ""  # last device error, '' when fine
        self.frames_written = 0
        self.chars_written = 0

    # -- loop side ---------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._closing = False
            self._thread = threading.Thread(target=self._worker, name="lcd-writer", daemon=True)
            self._thread.start()

    def show(self, lines: list[str]) -> None:
        frame = [(to_rom(s)[: self.cols]).ljust(self.cols) for s in list(lines)[: self.rows]]
        frame += [" " * self.cols] * (self.rows - len(frame))
        with self._cv:
            if frame == self._frame:
                return
            self._frame = frame
            self._dirty = True
            self._cv.notify()

    def text(self) -> list[str]:
        """The frame on the screen (or about to be): what a person reads."""
        return list(self._frame)

    @property
    def backlight(self) -> bool:
        return self._want_backlight

    def wake(self) -> None:
        """A button or an alarm: backlight on, timeout restarted."""
        self._last_wake = self.clock()
        self._set_backlight(True)

    def poll(self) -> None:
        """Call now and then: turns the backlight off after the idle timeout."""
        if self.backlight_timeout_s > 0 and self.clock() - self._last_wake >= self.backlight_timeout_s:
            self._set_backlight(False)

    def _set_backlight(self, on: bool) -> None:
        with self._cv:
            if self._want_backlight != on:
                self._want_backlight = on
                self._dirty = True
                self._cv.notify()

    def close(self, timeout: float = 2.0) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_idle(self, timeout: float = 2.0) -> bool:
        """Tests/bench: until the writer has written the newest frame."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cv:
                if not self._dirty and self._written == self._frame and not self.error:
                    return True
            time.sleep(0.005)
        return False

    # -- writer thread -----------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            with self._cv:
                while not self._dirty and not self._closing:
                    self._cv.wait()
                if self._closing:
                    break
                frame = list(self._frame)
                backlight = self._want_backlight
                self._dirty = False
            try:
                self._write_frame(frame, backlight)
                if self.error:
                    log.info("lcd works again")
                self.error = ""
            except Exception as exc:  # noqa: BLE001 - an unplugged LCD must not kill the menu
                if not self.error:
                    log.warning("lcd write failed (%s: %s); retrying", type(exc).__name__, exc)
                self.error = f"{type(exc).__name__}: {exc}"
                self._drop_device()
                with self._cv:  # retry about once a second, not in a tight loop
                    self._cv.wait_for(lambda: self._closing, timeout=RETRY_S)
        self._drop_device()

    def _write_frame(self, frame: list[str], backlight: bool) -> None:
        if self.display is None:
            self.display = self._opener()
            self._written = [" " * self.cols for _ in range(self.rows)]  # init clears the screen
            self._backlight_on = True
        if backlight != self._backlight_on:
            self.display.set_backlight(backlight)
            self._backlight_on = backlight
        assert self._written is not None
        runs = changed_runs(self._written, frame)
        for row, col, text in runs:
            self.display.write(row, col, text)
            self.chars_written += len(text)
        self._written = frame
        if runs:
            self.frames_written += 1

    def _drop_device(self) -> None:
        if self.display is not None:
            try:
                self.display.close()
            except Exception:  # noqa: BLE001
                pass
        self.display = None
        self._written = None
        self._backlight_on = None
        with self._cv:
            self._dirty = True
