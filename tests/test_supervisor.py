"""The supervisor as systemd sees it: READY, WATCHDOG pings, STATUS, STOPPING, restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge import config as config_mod
from edge.app import Supervisor
from edge.component import Component, Health
from edge.notify import Notifier
from edge.service import build_components, build_context

from .peers import FakeSystemd, free_port


def _toml(port: int, lag_ms: int = 300) -> str:
    return f'[service]\nloop_lag_max_ms = {lag_ms}\n[web]\nhost = "127.0.0.1"\nport = {port}\n[video]\nenabled = false\n'


async def _drain_async(fake: FakeSystemd, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        fake.drain()
        await asyncio.sleep(0.02)


async def test_ready_then_watchdog_pings_stop_while_loop_blocked(tmp_path, monkeypatch):
    fake = FakeSystemd(tmp_path / "notify.sock")
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # ping every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    cfg = config_mod.loads(_toml(free_port()))
    ctx = build_context(cfg, tmp_path / "data", simulated=True)
    holder: list[Supervisor] = []
    sup = Supervisor(ctx, build_components(ctx, lambda: holder[0]), Notifier(fake.path))
    holder.append(sup)
    task = asyncio.create_task(sup.run())
    try:
        for _ in range(500):
            if sup.ready:
                break
            await asyncio.sleep(0.01)
        assert sup.ready
        await _drain_async(fake, 1.0)
        msgs = [m for _, m in fake.messages]
        assert "READY=1" in msgs[0]
        pings = [t for t, m in fake.messages if m == "WATCHDOG=1"]
        assert 6 <= len(pings) <= 14, f"expected ~10 pings in 1 s at 0.1 s, got {len(pings)}"

        # block the event loop for longer than the 300 ms bound
        fake.drain()  # a ping sent in the last poll interval must not look like one sent after the block
        fake.messages.clear()
        time.sleep(1.0)
        await _drain_async(fake, 0.4)
        blocked = [m for _, m in fake.messages]
        assert not any(m == "WATCHDOG=1" for m in blocked[:1]), "a ping went out right after a blocked loop"
        status = [m for m in blocked if m.startswith("STATUS=")]
        assert status and "event loop lag" in status[0], blocked
        # pings resume once the loop is healthy again
        fake.messages.clear()
        await _drain_async(fake, 0.6)
        assert any(m == "WATCHDOG=1" for _, m in fake.messages)
    finally:
        sup.request_stop()
        await asyncio.wait_for(task, 10)
        fake.drain()
        assert any("STOPPING=1" in m for _, m in fake.messages)
        fake.close()


class Flaky(Component):
    """Fails its first runs, then keeps running."""

    name = "flaky"

    def __init__(self, failures: int):
        super().__init__()
        self.failures = failures
        self.runs = 0

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= self.failures:
            raise ConnectionError(f"peer gone (run {self.runs})")
        await asyncio.Event().wait()


class Steady(Component):
    name = "steady"

    def __init__(self):
        super().__init__()
        self.ticks = 0

    async def run(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0.01)


class Stuck(Component):
    name = "stuck"
    stall_timeout_s = 0.3

    async def run(self) -> None:
        await asyncio.Event().wait()  # never beats

    def health(self) -> Health:
        return Health(False, "no progress")


async def test_failed_component_restarts_with_backoff_others_keep_running(tmp_path):
    cfg = config_mod.loads("[service]\nrestart_backoff_initial_s = 0.05\nrestart_backoff_max_s = 0.2\n")
    ctx = build_context(cfg, tmp_path)
    flaky, steady = Flaky(3), Steady()
    sup = Supervisor(ctx, [steady, flaky], Notifier(""))
    task = asyncio.create_task(sup.run())
    try:
        for _ in range(300):
            if flaky.runs >= 4:
                break
            await asyncio.sleep(0.01)
        assert flaky.runs == 4
        assert sup.slots[1].restarts == 3
        assert "peer gone" in sup.slots[1].last_error
        ticks = steady.ticks
        await asyncio.sleep(0.1)
        assert steady.ticks > ticks  # never interrupted
        assert sup.slots[0].restarts == 0
        text = ctx.metrics.render()[0].decode()
        assert 'edge_component_restarts_total{component="flaky"} 3.0' in text
    finally:
        sup.request_stop()
        await asyncio.wait_for(task, 10)


async def test_stalled_component_withholds_watchdog(tmp_path, monkeypatch):
    fake = FakeSystemd(tmp_path / "n.sock")
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    ctx = build_context(config_mod.loads(""), tmp_path)
    sup = Supervisor(ctx, [Stuck()], Notifier(fake.path))
    task = asyncio.create_task(sup.run())
    try:
        await _drain_async(fake, 1.0)
        msgs = [m for _, m in fake.messages]
        assert any("READY=1" in m for m in msgs)
        assert any("stuck stalled" in m for m in msgs if m.startswith("STATUS=")), msgs
        last = msgs[-3:]
        assert "WATCHDOG=1" not in last
    finally:
        sup.request_stop()
        await asyncio.wait_for(task, 10)
        fake.close()


def test_edge_run_ready_and_clean_sigterm_exit(tmp_path):
    """The real CLI under a fake systemd: READY=1 within 10 s, exit 0 within 5 s of SIGTERM."""
    fake = FakeSystemd(tmp_path / "notify.sock")
    cfg = tmp_path / "edge.toml"
    cfg.write_text(_toml(free_port()))
    env = dict(os.environ, NOTIFY_SOCKET=fake.path, WATCHDOG_USEC="1000000")
    env.pop("WATCHDOG_PID", None)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(cfg), "--data-dir", str(tmp_path / "d"),
                             "--simulated"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        t_ready = fake.wait_for("READY=1", 10)
        assert t_ready - t0 < 10
        fake.wait_for("WATCHDOG=1", 3)
        t_term = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(5)
        assert rc == 0, proc.stdout.read().decode()
        assert time.monotonic() - t_term < 5
        assert any("STOPPING=1" in m for _, m in fake.drain())
        assert (tmp_path / "d" / "credentials.json").stat().st_mode & 0o777 == 0o600
    finally:
        if proc.poll() is None:
            proc.kill()
        fake.close()


class Stubborn(Component):
    """Swallows its cancellation (a bug in some library); stop() must still run."""

    name = "stubborn"

    def __init__(self):
        super().__init__()
        self.stopped = False

    async def run(self) -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if self.stopped:  # lets the test's loop close afterwards
                    raise
                continue

    async def stop(self) -> None:
        self.stopped = True


async def test_stop_is_bounded_when_a_component_ignores_cancellation(tmp_path):
    ctx = build_context(config_mod.loads(""), tmp_path)
    stubborn = Stubborn()
    sup = Supervisor(ctx, [stubborn], Notifier(""))
    task = asyncio.create_task(sup.run())
    for _ in range(200):
        if sup.ready:
            break
        await asyncio.sleep(0.01)
    t0 = time.monotonic()
    sup.request_stop()
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - t0 < 4.5
    assert stubborn.stopped


STUBBORN_SERVICE = r'''
import asyncio, sys
from pathlib import Path
from edge import config as config_mod
from edge.app import Supervisor
from edge.component import Component
from edge.notify import Notifier
from edge.service import build_context, run_to_exit

class Stubborn(Component):
    name = "stubborn"
    async def run(self):
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

async def main():
    ctx = build_context(config_mod.loads(""), Path(sys.argv[1]))
    sup = Supervisor(ctx, [Stubborn()], Notifier(""))
    asyncio.get_running_loop().call_later(0.5, lambda: print("up", flush=True))
    await sup.run()
    return sup

sys.exit(run_to_exit(main()))
'''


def test_process_exits_even_when_a_task_ignores_cancellation(tmp_path):
    """asyncio.run would wait forever for such a task; the service must leave within its stop budget."""
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN_SERVICE, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(8)
        assert time.monotonic() - t0 < 5
        assert rc == 0
        assert "ignored cancellation" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


class FallsOver(Component):
    """A critical component that starts, then fails and cannot start again (a board driver
    that lost its device for good)."""

    name = "relays"
    critical = True

    def __init__(self):
        super().__init__()
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        if self.starts > 1:
            raise RuntimeError("device gone")

    async def run(self) -> None:
        await asyncio.sleep(0.2)
        raise RuntimeError("device gone")


async def test_critical_component_down_past_its_bound_withholds_watchdog(tmp_path, monkeypatch):
    fake = FakeSystemd(tmp_path / "n.sock")
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    cfg = config_mod.loads("[service]\ncritical_down_max_s = 0.5\nrestart_backoff_initial_s = 0.05\n"
                           "restart_backoff_max_s = 0.1\n")
    ctx = build_context(cfg, tmp_path)
    sup = Supervisor(ctx, [FallsOver()], Notifier(fake.path))
    task = asyncio.create_task(sup.run())
    try:
        await _drain_async(fake, 0.5)
        assert sup.ready and sup.watchdog_pings > 0 and not sup.watchdog_withheld, "down, but not long yet"
        await _drain_async(fake, 1.0)
        assert "relays down for" in sup.watchdog_withheld and "device gone" in sup.watchdog_withheld
        pings = sup.watchdog_pings
        await _drain_async(fake, 0.4)
        assert sup.watchdog_pings == pings
        assert any("STATUS=watchdog withheld: relays down for" in m for _, m in fake.messages)
    finally:
        sup.request_stop()
        await asyncio.wait_for(task, 10)
        fake.close()
