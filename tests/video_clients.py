"""Real RTSP clients for the video tests: PyAV (libavformat), ffmpeg/ffprobe, GStreamer
rtspsrc (gst-launch-1.0), a raw RTSP request over a socket; and the running service on its
own thread so a whole test module can share one."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

from PIL import Image, ImageChops, ImageStat

from .peers import run_service_from_toml


def is_red(rgb_mean: tuple[float, ...] | list[float]) -> bool:
    r, g, b = rgb_mean[:3]
    return r > 150 and g < 70 and b < 70


def mean_rgb(img: Image.Image) -> list[float]:
    return ImageStat.Stat(img.convert("RGB").resize((64, 36))).mean


def image_diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel (0-255) of two pictures scaled to 64x36."""
    a2 = a.convert("RGB").resize((64, 36))
    b2 = b.convert("RGB").resize((64, 36))
    return sum(ImageStat.Stat(ImageChops.difference(a2, b2)).mean) / 3


class ServiceThread:
    """The real service running on its own event loop thread (module-scoped fixtures)."""

    def __init__(self, toml_text: str, data_dir: Path):
        self.toml_text = toml_text
        self.data_dir = data_dir
        self.svc: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="service", daemon=True)

    def _main(self) -> None:
        async def run() -> None:
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            async with run_service_from_toml(self.toml_text, self.data_dir) as svc:
                self.svc = svc
                self._ready.set()
                await self._stop.wait()

        try:
            asyncio.run(run())
        except BaseException as exc:  # noqa: BLE001
            self._error = exc
            self._ready.set()

    def start(self, timeout: float = 30) -> "ServiceThread":
        self._thread.start()
        self._ready.wait(timeout)
        if self._error:
            raise self._error
        self.wait_video_up(timeout)
        return self

    @property
    def ctx(self) -> Any:
        return self.svc.ctx

    @property
    def video(self) -> Any:
        return self.svc.component("video")

    def wait_video_up(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = self.video
            if v.rtsp is not None and v.producer is not None and v.rtsp.port:
                return
            time.sleep(0.05)
        raise TimeoutError(f"video pipeline not up after {timeout} s: {self.video.health()}")

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn(*args) on the service's loop thread and return its result."""
        assert self.loop is not None

        async def wrap() -> Any:
            r = fn(*args)
            return await r if asyncio.iscoroutine(r) else r

        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(15)

    def publish(self, ev: Any) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.ctx.bus.publish, ev)

    def url(self, user: str | None = None, password: str | None = None) -> str:
        c = self.ctx.credentials.get()
        user = c.user if user is None else user
        password = c.password if password is None else password
        base = self.video.stream_uri("127.0.0.1")
        return base.replace("rtsp://", f"rtsp://{user}:{password}@") if user else base

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)


class PyAVReader:
    """Decodes the stream on a thread; keeps (time, mean RGB, key_frame) of every frame and the last picture."""

    def __init__(self, url: str, transport: str = "tcp"):
        self.url = url
        self.transport = transport
        self.frames: list[tuple[float, list[float], bool]] = []
        self.last: Image.Image | None = None
        self.error: BaseException | None = None
        self.size: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import av

        try:
            with av.open(self.url, options={"rtsp_transport": self.transport, "flags": "low_delay",
                                          # at 1 fps the default 5 s of probing is 5 frames: 1 s is plenty
                                          "analyzeduration": "1000000"},
                         timeout=10) as c:
                for f in c.decode(video=0):
                    self.size = (f.width, f.height)
                    img = f.to_image()
                    self.last = img
                    self.frames.append((time.time(), mean_rgb(img), bool(f.key_frame)))
                    if self._stop.is_set():
                        return
        except BaseException as exc:  # noqa: BLE001
            self.error = exc

    def start(self) -> "PyAVReader":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def wait_for(self, pred: Callable[[tuple[float, list[float], bool]], bool], after: int = 0, timeout: float = 10):
        """The first frame from index ``after`` on that satisfies pred, else None."""
        deadline = time.monotonic() + timeout
        i = after
        while time.monotonic() < deadline:
            while i < len(self.frames):
                if pred(self.frames[i]):
                    return self.frames[i]
                i += 1
            if self.error is not None:
                raise AssertionError(f"reader failed: {self.error}")
            time.sleep(0.01)
        return None


def rtsp_request(host: str, port: int, method: str, url: str, headers: dict[str, str] | None = None,
                 timeout: float = 5) -> tuple[int, dict[str, list[str]]]:
    """One raw RTSP request; returns (status code, headers)."""
    lines = [f"{method} {url} RTSP/1.0", "CSeq: 1", "User-Agent: edge-test"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    head = buf.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")
    status = int(head[0].split()[1])
    hdrs: dict[str, list[str]] = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    return status, hdrs


def run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, check=False)
