"""hw/lcd.py and hw/buttons.py against a fake SMBus that decodes the HD44780 protocol and
gpiozero's MockFactory pins: what a person would read and what a finger would do."""

from __future__ import annotations

import asyncio
import time

import pytest
from gpiozero.pins.mock import MockFactory

from hw.buttons import ButtonEvent, Buttons
from hw.lcd import Hd44780Pcf8574, Lcd

from .fake_smbus import FakeLcdBus


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_lcd(bus: FakeLcdBus, cols: int = 16, rows: int = 2, **kw) -> Lcd:
    lcd = Lcd(lambda: Hd44780Pcf8574(bus, bus.address, cols, rows), cols, rows, **kw)
    lcd.start()
    return lcd


@pytest.mark.parametrize("cols,rows", [(16, 2), (20, 4)])
def test_text_lands_where_a_person_reads_it(cols, rows):
    bus = FakeLcdBus(0x27, cols, rows)
    lcd = make_lcd(bus, cols, rows)
    try:
        lines = [f"row {i} " + "abcdefghijklmnop"[: cols - 6] for i in range(rows)]
        lcd.show(lines)
        assert lcd.wait_idle()
        assert bus.text() == [s[:cols].ljust(cols) for s in lines]
        assert bus.backlight and bus.wrong_address == 0 and bus.violations == 0
        lcd.show(["short"])  # the rest of the screen is blanked, nothing left over
        assert lcd.wait_idle()
        assert bus.text() == ["short".ljust(cols)] + [" " * cols] * (rows - 1)
    finally:
        lcd.close()


def test_only_changed_characters_are_rewritten():
    bus = FakeLcdBus()
    lcd = make_lcd(bus)
    try:
        lcd.show(["Alarms", "0 active"])
        assert lcd.wait_idle()
        before = bus.data_writes
        lcd.show(["Alarms", "1 active"])
        assert lcd.wait_idle()
        assert bus.text() == ["Alarms".ljust(16), "1 active".ljust(16)]
        assert bus.data_writes - before == 1
        before = bus.data_writes
        lcd.show(["Alarms", "1 active"])  # the same frame: nothing goes over I2C
        time.sleep(0.05)
        assert bus.data_writes == before
    finally:
        lcd.close()


def test_backlight_goes_off_after_timeout_and_a_wake_lights_it():
    bus = FakeLcdBus()
    clock = Clock()
    lcd = make_lcd(bus, backlight_timeout_s=30, clock=clock)
    try:
        lcd.show(["hello"])
        assert lcd.wait_idle() and bus.backlight
        clock.t += 29
        lcd.poll()
        time.sleep(0.05)
        assert bus.backlight
        clock.t += 2
        lcd.poll()
        deadline = time.monotonic() + 2
        while bus.backlight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not bus.backlight and bus.text()[0].startswith("hello")
        lcd.wake()
        deadline = time.monotonic() + 2
        while not bus.backlight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert bus.backlight
    finally:
        lcd.close()


def test_unplugged_lcd_is_reported_and_recovers():
    bus = FakeLcdBus()
    lcd = make_lcd(bus)
    try:
        lcd.show(["one"])
        assert lcd.wait_idle()
        bus.fail = True
        lcd.show(["two"])
        deadline = time.monotonic() + 2
        while not lcd.error and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "Remote I/O" in lcd.error
        tries = bus.attempts
        time.sleep(0.5)  # retried about once a second, not hammered
        assert lcd.error and bus.attempts - tries <= 1
        bus.fail = False  # plugged back: re-initialised and the whole frame written
        assert lcd.wait_idle(timeout=4)
        assert bus.text()[0] == "two".ljust(16)
    finally:
        lcd.close()


def test_show_never_waits_for_a_slow_bus():
    class SlowBus(FakeLcdBus):
        def write_i2c_block_data(self, addr, register, data):
            time.sleep(0.02)
            super().write_i2c_block_data(addr, register, data)

    bus = SlowBus()
    lcd = make_lcd(bus)
    try:
        t0 = time.perf_counter()
        for i in range(50):
            lcd.show([f"frame {i}", "x" * (i % 16)])
        assert time.perf_counter() - t0 < 0.05
        assert lcd.wait_idle(timeout=10)
        assert bus.text()[0] == "frame 49".ljust(16)  # frames in between were coalesced
    finally:
        lcd.close()


async def test_bouncing_contact_gives_one_press_and_hold_is_reported():
    loop = asyncio.get_running_loop()
    events: list[ButtonEvent] = []
    factory = MockFactory()
    b = Buttons({"up": 5, "down": 6, "select": 13, "back": 19}, events.append, loop=loop,
                pin_factory=factory, bounce_s=0.02, hold_s=0.3)
    try:
        pin = b.pin("select")
        for _ in range(5):  # a bouncing contact closing
            pin.drive_low()
            pin.drive_high()
        pin.drive_low()
        await asyncio.sleep(0.1)
        assert events == [ButtonEvent("select", "press")]
        await asyncio.sleep(0.35)
        assert events[-1] == ButtonEvent("select", "hold")
        pin.drive_high()
        pin.drive_low()
        pin.drive_high()  # bounce on release
        await asyncio.sleep(0.1)
        assert events == [ButtonEvent("select", "press"), ButtonEvent("select", "hold"), ButtonEvent("select", "release")]
        events.clear()
        await b.press("down")  # the simulated finger
        assert events == [ButtonEvent("down", "press"), ButtonEvent("down", "release")]
        # a busy loop that only gets to both edges after the finger let go still sees the press
        events.clear()
        pin = b.pin("up")
        pin.drive_low()
        time.sleep(0.05)  # blocks the loop: both edges wait in its queue
        pin.drive_high()
        await asyncio.sleep(0.1)
        assert events == [ButtonEvent("up", "press"), ButtonEvent("up", "release")]
        # while a contact shorter than the bounce time is a bounce
        events.clear()
        pin.drive_low()
        pin.drive_high()
        await asyncio.sleep(0.1)
        assert events == []
    finally:
        b.close()
