"""Front-panel LCD: I2C traffic and time per frame, and the menu's render cost.

Counts the bytes the driver sends to the PCF8574 for a full 16x2 redraw and for the usual
one-line change (home screen cycling), converts them to wire time at 100 kHz standard-mode
I2C (9 bit times per byte, plus address byte and start/stop per transaction), and times the
menu's render(). Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.setup import menu as m  # noqa: E402
from hw.lcd import Hd44780Pcf8574, Lcd  # noqa: E402


class CountingBus:
    def __init__(self) -> None:
        self.bytes = 0
        self.transactions = 0

    def write_byte(self, addr: int, value: int) -> None:
        self.bytes += 1
        self.transactions += 1

    def write_i2c_block_data(self, addr: int, register: int, data: list[int]) -> None:
        self.bytes += 1 + len(data)
        self.transactions += 1

    def close(self) -> None:
        pass


def wire_ms(nbytes: int, transactions: int, hz: int = 100_000) -> float:
    bits = 9 * (nbytes + transactions) + 2 * transactions  # data + address bytes, start/stop
    return bits / hz * 1000


def main() -> None:
    bus = CountingBus()
    lcd = Lcd(lambda: Hd44780Pcf8574(bus, 0x27, 16, 2), 16, 2)
    lcd.start()
    lcd.show(["x", ""])
    lcd.wait_idle()
    lcd.show([" " * 16, " " * 16])
    lcd.wait_idle()

    def measure(frame: list[str]) -> tuple[int, int]:
        b0, t0 = bus.bytes, bus.transactions
        lcd.show(frame)
        lcd.wait_idle()
        return bus.bytes - b0, bus.transactions - t0

    full = measure(["Password (admin)", "abcd-efgh-jkmn9x"])
    cycle = measure(["RTSP", "rtsp://10.0.0.7:"])
    one = measure(["RTSP", "rtsp://10.0.0.8:"])
    n = 200
    t0 = time.perf_counter()
    for i in range(n):
        lcd.show([f"frame {i}", "x" * (i % 16)])
    show_us = (time.perf_counter() - t0) / n * 1e6
    lcd.close()

    d = m.MenuData(user="admin", password="abcd-efgh-jkmn", ip="10.0.0.7", rtsp_url="rtsp://10.0.0.7:8554/stream",
                   version="0.1.0", relays=["gate"])
    menu = m.Menu(d, 16, 2)
    k = 5000
    t0 = time.perf_counter()
    for i in range(k):
        menu.tick(i * 0.2)
        menu.render(i * 0.2)
    render_us = (time.perf_counter() - t0) / k * 1e6

    print(json.dumps({
        "bench": "lcd",
        "full_redraw_bytes": full[0],
        "full_redraw_ms_at_100khz": round(wire_ms(*full), 1),
        "home_cycle_bytes": cycle[0],
        "home_cycle_ms_at_100khz": round(wire_ms(*cycle), 1),
        "one_char_bytes": one[0],
        "one_char_ms_at_100khz": round(wire_ms(*one), 2),
        "show_call_us": round(show_us, 1),
        "menu_tick_render_us": round(render_us, 1),
    }))


if __name__ == "__main__":
    main()
