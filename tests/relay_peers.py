"""Real peers for the relay tests: the simulated relay board (a pymodbus server) in this loop
or in its own process, and a socat pty pair standing in for an RS485 line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import AsyncIterator, Iterator

from hw.relays.profiles import get_profile
from hw.relays.sim import SimBoard, SimServer

from .peers import free_port, wait_port

SOCAT = shutil.which("socat") or "/usr/bin/socat"
REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def pty_pair() -> Iterator[tuple[str, str]]:
    """Two linked ptys (board end, service end), like the two ends of an RS485 line."""
    with tempfile.TemporaryDirectory(prefix="edge-pty-") as d:
        a, b = f"{d}/board", f"{d}/service"
        proc = subprocess.Popen([SOCAT, f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 5
            while not (os.path.exists(a) and os.path.exists(b)):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("socat did not create the pty pair")
                time.sleep(0.01)
            yield a, b
        finally:
            proc.terminate()
            proc.wait(5)


@contextlib.asynccontextmanager
async def sim_board(profile: str = "waveshare-8", *, framing: str = "tcp", serial: str | None = None,
                    device_id: int = 1) -> AsyncIterator[SimServer]:
    """A simulated board served from this event loop (TCP on a free port, or on a pty)."""
    srv = SimServer({device_id: SimBoard(get_profile(profile))}, framing=framing, serial=serial, baudrate=115200)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def pulses(board: SimBoard, channel: int) -> list[tuple[float, float]]:
    """(on time, length in ms) of every completed on-period of ``channel``, board side."""
    out, on_at = [], None
    for t, ch, on in board.history:
        if ch != channel:
            continue
        if on:
            on_at = t
        elif on_at is not None:
            out.append((on_at, (t - on_at) * 1000))
            on_at = None
    return out


async def wait_for(pred, timeout: float, step: float = 0.01, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(step)


class SimProcess:
    """The simulated board in its own process (python -m hw.relays.sim), recording the coil
    transitions it prints (unix time, board side)."""

    def __init__(self, profile: str = "waveshare-8", port: int | None = None):
        self.port = port or free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hw.relays.sim", "--profile", profile, "--tcp", f"127.0.0.1:{self.port}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
        self.events: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_port("127.0.0.1", self.port)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if "channel" in ev:
                self.events.append(ev)

    def changes(self, channel: int) -> list[tuple[float, bool]]:
        return [(e["t"], e["on"]) for e in list(self.events) if e["channel"] == channel]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
