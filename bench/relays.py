"""Relay command latency: from the relay service's command to the coil written on a simulated
board (its own process, over Modbus TCP and over a socat pty pair standing in for RS485), and
to the pin set on gpiozero's MockFactory. p50/p99 over 1,000 commands each.

The relay service runs with the real store (every command audited), the board in its own
process. Goal: p99 <= 5 ms over TCP and the pty, <= 2 ms on GPIO. Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge import config as config_mod  # noqa: E402
from edge.relays.service import RelayService  # noqa: E402
from edge.service import build_context  # noqa: E402
from edge.store.component import StoreComponent  # noqa: E402

N = int(os.environ.get("BENCH_RELAY_COMMANDS", "1000"))
# idle time between commands: relays are not switched back to back at 1 kHz, and on RS485 a
# request right after a reply first waits the t3.5 silence (1.75 ms at 115200), which would
# then be measured instead of the command. The health polls still run in between.
GAP_S = 0.01

CHANNEL = """
[relays.channels.bench]
board = "b"
{where}
mode = "latch"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sim:
    """python -m hw.relays.sim in its own process; collects the board-side transition times."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "hw.relays.sim", "--profile", "waveshare-8", *args],
                                     cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.events: list[float] = []
        self.listening = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.listening.wait(15):
            raise SystemExit("simulated board did not start")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            ev = json.loads(line)
            if "listening" in ev:
                self.listening.set()
            elif ev["channel"] == 1:
                self.events.append(ev["m"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


async def run_commands(board_toml: str, where: str, simulated: bool, board_time) -> list[float]:
    cfg = config_mod.loads(board_toml + CHANNEL.format(where=where))
    with tempfile.TemporaryDirectory() as d:
        logging.getLogger("edge.service").setLevel(logging.ERROR)  # the throwaway credentials
        ctx = build_context(cfg, Path(d), simulated=simulated)
        ctx.bus.bind_loop(asyncio.get_running_loop())
        store = StoreComponent(ctx)  # every command is audited, as in the service
        await store.start()
        svc = RelayService(ctx)
        await svc.start()
        runner = asyncio.create_task(svc.run())
        starts = []
        try:
            for i in range(N):
                t = time.monotonic()
                res = await svc.set("bench", i % 2 == 0, source="bench")
                if not res.ok:
                    raise SystemExit(f"command {i} failed: {res.error}")
                starts.append(t)
                await asyncio.sleep(GAP_S)
            latencies = await board_time(svc, starts)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await svc.stop()
            await store.stop()
    return latencies


async def wait_events(sim: Sim, starts: list[float]) -> list[float]:
    deadline = time.monotonic() + 10
    while len(sim.events) < len(starts) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    if len(sim.events) != len(starts):
        raise SystemExit(f"board saw {len(sim.events)} transitions for {len(starts)} commands")
    return [(e - s) * 1000 for e, s in zip(sim.events, starts)]


async def bench_tcp() -> list[float]:
    port = free_port()
    sim = Sim("--tcp", f"127.0.0.1:{port}")
    try:
        toml = f'[relays.boards.b]\ntype = "modbus_tcp"\nprofile = "waveshare-8"\nhost = "127.0.0.1"\nport = {port}\n'
        return await run_commands(toml, "channel = 1", False, lambda svc, starts: wait_events(sim, starts))
    finally:
        sim.stop()


async def bench_pty() -> list[float]:
    with tempfile.TemporaryDirectory() as d:
        a, b = f"{d}/board", f"{d}/service"
        socat = subprocess.Popen([shutil.which("socat") or "socat", f"pty,raw,echo=0,link={a}",
                                  f"pty,raw,echo=0,link={b}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not (os.path.exists(a) and os.path.exists(b)):
                time.sleep(0.01)
            sim = Sim("--serial", a, "--baudrate", "115200")
            try:
                toml = f'[relays.boards.b]\ntype = "modbus_rtu"\nprofile = "waveshare-8"\ndevice = "{b}"\nbaudrate = 115200\n'
                return await run_commands(toml, "channel = 1", False, lambda svc, starts: wait_events(sim, starts))
            finally:
                sim.stop()
        finally:
            socat.terminate()
            socat.wait(5)


async def bench_gpio() -> list[float]:
    async def pin_times(svc: RelayService, starts: list[float]) -> list[float]:
        hist = svc.boards["b"].board.pin(1).history  # type: ignore[attr-defined]
        changes = [t for t, _ in hist][-len(starts):]
        return [(e - s) * 1000 for e, s in zip(changes, starts)]

    return await run_commands('[relays.boards.b]\ntype = "gpio"\n', "pin = 17", True, pin_times)


def pct(values: list[float], q: float) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 3)


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    out: dict[str, object] = {"bench": "relays"}
    for name, fn in (("tcp", bench_tcp), ("pty", bench_pty), ("gpio", bench_gpio)):
        lat = await fn()
        out[f"{name}_p50_ms"] = pct(lat, 50)
        out[f"{name}_p99_ms"] = pct(lat, 99)
    out["commands"] = N
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
