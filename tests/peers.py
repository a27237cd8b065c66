"""Real peers for tests: a Mosquitto broker, free ports, the service itself in-process.

Tests start and stop these themselves; nothing here is a mock of a peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


@dataclass
class Broker:
    host: str
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    extra_conf: str = ""  # more mosquitto.conf lines (e.g. queue limits for a benchmark)

    def start(self) -> None:
        # started as root, mosquitto drops to its own user: it must be able to write its
        # persistence file and log here, or sessions do not survive a restart
        os.chmod(self.workdir, 0o777)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\nallow_anonymous true\n"
            f"persistence true\npersistence_location {self.workdir}/\n"
            f"log_dest file {self.workdir}/mosquitto.log\n{self.extra_conf}"
        )
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.host, self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def mosquitto_broker(extra_conf: str = "") -> Iterator[Broker]:
    with tempfile.TemporaryDirectory(prefix="edge-mosq-") as d:
        b = Broker("127.0.0.1", free_port(), Path(d), extra_conf=extra_conf)
        b.start()
        try:
            yield b
        finally:
            b.stop()


@dataclass
class RunningService:
    ctx: Any
    supervisor: Any
    task: asyncio.Task[object]
    base_url: str
    user: str
    password: str

    def component(self, name: str) -> Any:
        """The running component called ``name`` ("relays", "sensors", "uplink", ...)."""
        return self.supervisor.component(name)

    async def stop(self) -> None:
        self.supervisor.request_stop()  # type: ignore[attr-defined]
        await asyncio.wait_for(self.task, 10)


@contextlib.asynccontextmanager
async def run_service_from_toml(toml_text: str, data_dir: Path, *, simulated: bool = True,
                                ready_timeout: float = 15.0, demo: bool = False,
                                platform: Any = None) -> AsyncIterator[RunningService]:
    """Run the real service in this event loop from a TOML string (web on a free port unless
    the TOML sets [web]; the video camera off unless it sets [video]). Yields once READY=1
    was sent. ``platform``: a hw.platform.Platform with the test's own fakes, else the simulated
    one (the real one with ``simulated=False``)."""
    from edge import config as config_mod
    from edge.service import build_service

    if "[onvif]" not in toml_text:  # never the fixed udp/3702 in tests
        toml_text += "\n[onvif]\ndiscovery = false\n"
    if "[web]" not in toml_text:
        toml_text += f"\n[web]\nhost = \"127.0.0.1\"\nport = {free_port()}\n"
    if "[video]" not in toml_text:
        # the RTSP camera costs CPU and wants port 554: only tests that configure [video] run it
        toml_text += "\n[video]\nenabled = false\n"
    cfg_path = Path(data_dir) / "edge.toml"
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(toml_text)
    cfg = config_mod.load(cfg_path)
    service = build_service(cfg, Path(data_dir), platform=platform, simulated=simulated, config_path=cfg_path, demo=demo)
    ctx, sup = service.ctx, service.supervisor
    task = asyncio.create_task(sup.run())
    deadline = time.monotonic() + ready_timeout
    while not sup.ready:
        if task.done():
            task.result()
            raise RuntimeError("service stopped before READY")
        if time.monotonic() > deadline:
            sup.request_stop()
            await asyncio.wait_for(task, 10)
            raise TimeoutError(f"service not READY within {ready_timeout} s: {sup.health_summary()}")
        await asyncio.sleep(0.02)
    creds = ctx.credentials.get()
    svc = RunningService(ctx, sup, task, f"http://{cfg.web.host}:{cfg.web.port}", creds.user, creds.password)
    try:
        yield svc
    finally:
        if not task.done():
            await svc.stop()
        ctx.platform.close()


def venv_bin(name: str) -> str:
    """Path of a console script in the venv that runs the tests."""
    import sys

    p = Path(sys.executable).parent / name
    return str(p) if p.exists() else name


def env_for_child(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def basic_auth(user: str, password: str) -> dict[str, str]:
    """An Authorization header for HTTP Basic (refused over plain HTTP: only for HTTPS tests and
    for checking that refusal)."""
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def digest_session(user: str, password: str, **kw: Any) -> Any:
    """An aiohttp ClientSession that answers the device's Digest challenges (as the CLI does)."""
    import aiohttp

    return aiohttp.ClientSession(middlewares=(aiohttp.DigestAuthMiddleware(user, password),), **kw)


class FakeSystemd:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []

    def drain(self) -> list[tuple[float, str]]:
        while True:
            try:
                data = self.sock.recv(4096)
            except (socket.timeout, BlockingIOError):
                return self.messages
            self.messages.append((time.monotonic(), data.decode()))

    def lines(self) -> list[str]:
        return [line for _, m in self.drain() for line in m.splitlines()]

    def wait_for(self, needle: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            self.drain()
            for t, m in self.messages[seen:]:
                if needle in m:
                    return t
            seen = len(self.messages)
        raise AssertionError(f"{needle!r} not received within {timeout} s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()
