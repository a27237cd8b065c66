"""The video component: dashboard -> producer thread -> H.264 encoder -> RTSP, supervised.

- Bus events (SensorChanged, Alarm, ComponentHealth) update the dashboard and wake the
  producer at once.
- The whole pipeline (encoder, producer, RTSP server on its GLib thread) is rebuilt when
  GStreamer reports an error or no encoded frame came out for ``stall_s``: ``run`` raises,
  the supervisor restarts the component (``start`` tears the old one down first) and clients
  reconnect. Its state is in /metrics (``edge_video_*``).
- Snapshot: the latest frame as JPEG on ``ctx.web`` (credentials required), also for ONVIF.
- Two streams from one render: the main stream and a substream (NVR multi-view grids), the
  rendered picture scaled down once per frame for the second encoder.
- Encoder settings an ONVIF client changes (``configure``) are checked against what the
  device supports, kept in the data dir (edge/video/settings.py) and applied at once: the
  encoders are rebuilt and the RTSP clients reconnect to the new stream.
- Provided as ``interfaces.VIDEO`` (see edge/video/__init__.py for the contract).
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from typing import Any

from aiohttp import web
from prometheus_client import Counter, Gauge

from hw.encoder import EncoderChoice, EncoderSettings, choose_encoder, make_encoder

from ..bus import Alarm, ComponentHealth, SensorAvailability, SensorChanged
from ..component import Component, Health
from ..dashboard.model import Dashboard
from ..dashboard.render import Renderer
from ..interfaces import VIDEO
from . import VideoProfile
from .settings import MAIN, SUB, SettingRejected, StreamOptions, StreamSettings, VideoSettings

log = logging.getLogger("edge.video")

SNAPSHOT_PATH = "/snapshot.jpg"
HW_FAILURES_BEFORE_X264 = 3  # auto mode: a hardware encoder failing this often in a row gives way to x264
STABLE_S = 60.0
TOKENS = {MAIN: "dashboard", SUB: "dashboard_sub"}  # ONVIF profile tokens


class _Metrics:
    def __init__(self, registry) -> None:
        r = registry
        self.up = Gauge("edge_video_pipeline_up", "1 while the video pipeline runs", registry=r)
        self.frames = Counter("edge_video_frames", "Dashboard frames rendered and encoded", registry=r)
        self.aus = Counter("edge_video_access_units", "Encoded H.264 access units out of the encoder", registry=r)
        self.keyframes = Counter("edge_video_keyframes", "IDR frames out of the encoder", registry=r)
        self.clients = Gauge("edge_video_rtsp_clients", "RTSP clients connected", registry=r)
        self.rebuilds = Counter("edge_video_rebuilds", "Pipeline rebuilds after an error or stall", registry=r)
        self.frame_age = Gauge("edge_video_last_frame_age_seconds", "Seconds since the last encoded frame", registry=r)
        self.render_ms = Gauge("edge_video_render_ms", "Time to draw the last frame", registry=r)
        self.encoder = Gauge("edge_video_encoder", "The H.264 encoder in use (label)", ["encoder"], registry=r)


class VideoComponent(Component):
    name = "video"

    def __init__(self, ctx: Any):
        super().__init__()
        self.ctx = ctx
        self.cfg = ctx.config.video
        sensors = getattr(ctx.config, "sensors", None)
        try:
            sensors = list(sensors) if sensors is not None else []
        except TypeError:
            sensors = []
        self.dashboard = Dashboard(ctx.config.site.name, sensors)
        self.settings = VideoSettings(self.cfg, getattr(ctx, "data_dir", None))
        self.renderer = self._renderer()
        self.m = _Metrics(ctx.metrics.registry)
        self.snapshot_path = SNAPSHOT_PATH
        self.encoder_choice = None
        self.rtsp = None
        self.encoder = None
        self.encoders: dict[str, Any] = {}  # stream -> encoder (main first)
        self.producer = None
        self._sub_size = (0, 0)  # what the running substream encoder takes
        self._configure_lock = asyncio.Lock()
        self._sub = None
        self._built = 0
        self._failures = 0  # consecutive pipeline failures (reset after a stable run)
        self._running_since = 0.0
        self._last_au = 0.0
        self._frame_no = 0  # frames drawn (the snapshot's JPEG is kept per frame)
        self.sub_access_units = 0  # out of the substream's encoder (none until a client watches it)
        self._jpeg: tuple[int, bytes] | None = None
        self._frame_lock = threading.Lock()
        self._state = "starting"
        ctx.web.router.add_get(SNAPSHOT_PATH, self._snapshot_handler)
        ctx.plain_paths.add(SNAPSHOT_PATH)  # GetSnapshotUri hands it to NVRs, which fetch it over plain HTTP
        ctx.credentials.listeners.append(self._credentials_rotated)
        ctx.registry.provide(VIDEO, self)

    # ---- the contract -------------------------------------------------------------
    @property
    def port(self) -> int:
        return (self.rtsp.port if self.rtsp is not None and self.rtsp.port else self.cfg.rtsp_port)

    def _mount(self, stream: str) -> str:
        return self.cfg.mount if stream == MAIN else self.cfg.substream_mount

    def _stream_of(self, token: str | None) -> str:
        for stream, t in TOKENS.items():
            if t == token and stream in self.settings.streams():
                return stream
        if token is None:
            return MAIN
        raise SettingRejected(f"no video profile {token!r}")

    def stream_uri(self, host: str, token: str | None = None) -> str:
        h = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"rtsp://{h}:{self.port}{self._mount(self._stream_of(token))}"

    @property
    def profiles(self) -> list[VideoProfile]:
        out = []
        for stream in self.settings.streams():
            s = self.settings.current[stream]
            out.append(VideoProfile(TOKENS[stream], s.width, s.height, s.fps, s.bitrate_kbps, s.gov_length,
                                    self._mount(stream), stream))
        return out

    def encoder_options(self, token: str) -> StreamOptions:
        return self.settings.options(self._stream_of(token))

    def request_keyframe(self) -> None:
        self._keyframe_needed("client asked")

    async def configure(self, token: str, *, width: int, height: int, fps: float, bitrate_kbps: int,
                        gov_length: int) -> None:
        """Change a stream's encoder (raises SettingRejected when the device cannot): checked,
        kept in the data dir, applied at once (clients reconnect)."""
        stream = self._stream_of(token)
        new = StreamSettings(int(width), int(height), float(fps), int(bitrate_kbps), int(gov_length))
        async with self._configure_lock:
            before = dict(self.settings.current)
            if before[stream] == new:
                return
            self.settings.check(stream, new)
            await asyncio.to_thread(self.settings.apply, stream, new)
            log.info("%s stream encoder set to %dx%d, %g fps, %d kbit/s, GOV %d", stream, new.width, new.height,
                     new.fps, new.bitrate_kbps, new.gov_length)
            if self.producer is not None:
                await asyncio.to_thread(self._rebuild_encoders)

    def _renderer(self) -> Renderer:
        main = self.settings.current[MAIN]
        return Renderer(main.width, main.height, max_tiles_per_page=self.cfg.max_tiles_per_page,
                        page_seconds=self.cfg.page_seconds)

    async def snapshot_jpeg(self) -> bytes:
        """The dashboard as JPEG, drawn for the request: no picture is kept between frames
        (3.7 MB at 720p, 8.3 MB at 1080p); asked again before the next frame, the same JPEG."""
        with self._frame_lock:
            key = self._frame_no
            cached = self._jpeg
        if key and cached is not None and cached[0] == key:
            return cached[1]
        data = await asyncio.to_thread(self._draw_jpeg)
        if key:
            with self._frame_lock:
                if self._frame_no == key:
                    self._jpeg = (key, data)
        return data

    def _draw_jpeg(self) -> bytes:
        return self._to_jpeg(self.renderer.render(self.dashboard.view()))

    def _to_jpeg(self, img) -> bytes:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=self.cfg.jpeg_quality)
        return buf.getvalue()

    async def _snapshot_handler(self, request: web.Request) -> web.Response:
        data = await self.snapshot_jpeg()
        return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    # ---- pipeline -----------------------------------------------------------------
    def _on_au(self, data: bytes, key: bool) -> None:
        self._last_au = time.monotonic()
        self.m.aus.inc()
        if key:
            self.m.keyframes.inc()
        rtsp = self.rtsp
        if rtsp is not None:
            rtsp.push_au(data, key, MAIN)

    def _on_sub_au(self, data: bytes, key: bool) -> None:
        self.sub_access_units += 1
        rtsp = self.rtsp
        if rtsp is not None:
            rtsp.push_au(data, key, SUB)

    def _encode(self, img, key: bool) -> None:
        """Producer thread: the picture to the main encoder, a scaled copy to the substream's
        while a client watches the substream. Until the first one does, its encoder gets no
        frame, and x264 sets up its buffers on the first (5 MB at 640x360, and ~4 ms a
        frame, for an NVR that records only the main stream); a client's arrival asks for a
        keyframe, so its first picture comes at once."""
        encs = self.encoders
        main = encs.get(MAIN)
        if main is not None:
            main.encode(img, key)
        sub = encs.get(SUB)
        rtsp = self.rtsp
        if sub is not None and (rtsp is None or rtsp.watched(SUB)):
            sub.encode(_scale(img, *self._sub_size), key)

    def _on_frame(self, img, wall: float) -> None:
        with self._frame_lock:
            self._frame_no += 1
        self.m.frames.inc()

    def _keyframe_needed(self, why: str) -> None:
        p = self.producer
        if p is not None:
            p.request("keyframe")

    def _credentials_rotated(self, creds) -> None:
        if self.rtsp is not None:
            self.rtsp.set_credentials(creds.user, creds.password)
            log.info("RTSP credentials switched")

    def _start_encoders(self) -> None:
        """Blocking: one encoder per stream, with the current settings."""
        c = self.cfg
        started: dict[str, Any] = {}
        try:
            for stream in self.settings.streams():
                s = self.settings.current[stream]
                enc = make_encoder(self.encoder_choice.name,
                                   EncoderSettings(s.width, s.height, s.fps, s.bitrate_kbps, s.gov_length, c.x264_preset))
                enc.start(self._on_au if stream == MAIN else self._on_sub_au)
                started[stream] = enc
        except Exception:
            for enc in started.values():
                enc.stop()
            raise
        if SUB in started:
            sub = self.settings.current[SUB]
            self._sub_size = (sub.width, sub.height)
        self.encoders = started
        self.encoder = started[MAIN]

    def _stop_encoders(self) -> None:
        encs, self.encoders, self.encoder = self.encoders, {}, None
        for enc in encs.values():
            enc.stop()

    def _start_producer(self) -> None:
        from .producer import Producer

        self._last_au = time.monotonic()
        self.producer = Producer(self.dashboard, self.renderer, self._encode, self.settings.current[MAIN].fps,
                                 self.cfg.repeat_frame_ms, self._on_frame)
        self.producer.start()

    def _rebuild_encoders(self) -> None:
        """Blocking: new encoders (and renderer when the size changed) under the running RTSP server."""
        p, self.producer = self.producer, None
        if p is not None:
            p.stop()
        self._stop_encoders()
        self._match_renderer()
        self._start_encoders()
        if self.rtsp is not None:
            self.rtsp.disconnect_clients()
        self._start_producer()

    def _match_renderer(self) -> None:
        """A new renderer when the main stream's size changed (the snapshot follows)."""
        main = self.settings.current[MAIN]
        if (self.renderer.width, self.renderer.height) != (main.width, main.height):
            self.renderer = self._renderer()
            with self._frame_lock:
                self._jpeg = None

    def _build(self) -> None:
        """Blocking: choose the encoder, start it, the producer and the RTSP server."""
        from .rtsp import RtspServer

        c = self.cfg
        if (self.encoder_choice is not None and c.encoder == "auto" and self.encoder_choice.name != "x264"
                and self._failures >= HW_FAILURES_BEFORE_X264):
            log.error("H.264 encoder %s failed %d times in a row: switching to x264", self.encoder_choice.name, self._failures)
            self.encoder_choice = EncoderChoice("x264", f"{self.encoder_choice.name} failed {self._failures} times in a row")
        if self.encoder_choice is None:
            self.encoder_choice = choose_encoder(c.encoder)
        self._match_renderer()
        creds = self.ctx.credentials.get()
        mounts = {stream: self._mount(stream) for stream in self.settings.streams()}
        rtsp = RtspServer(c.rtsp_host, c.rtsp_port, mounts, creds.user, creds.password, self._keyframe_needed,
                          max_clients=c.max_clients, idle_timeout_s=c.idle_timeout_s)
        try:
            self._start_encoders()
            rtsp.start()
            self.rtsp = rtsp
            now = self.ctx.credentials.get()
            if now != creds:  # rotated while we were building
                rtsp.set_credentials(now.user, now.password)
        except Exception:
            self._stop_encoders()
            raise
        self._start_producer()

    def _teardown(self) -> None:
        p, self.producer = self.producer, None
        if p is not None:
            p.stop()
        r, self.rtsp = self.rtsp, None
        if r is not None:
            r.stop()
        self._stop_encoders()

    async def start(self) -> None:
        if self._built:
            self.m.rebuilds.inc()
            log.warning("rebuilding the video pipeline")
        await asyncio.to_thread(self._teardown)
        self.m.up.set(0)
        try:
            await asyncio.to_thread(self._build)
        except Exception:
            self._failures += 1
            raise
        self._built += 1
        self.m.encoder.clear()
        self.m.encoder.labels(self.encoder_choice.name).set(1)
        self.m.up.set(1)
        self._state = "running"
        self._running_since = time.monotonic()
        if self._sub is not None:
            self._sub.close()
        self._sub = self.ctx.bus.subscribe(SensorChanged, Alarm, ComponentHealth, SensorAvailability, maxsize=1000,
                                          name="video")
        main = self.settings.current[MAIN]
        log.info("dashboard camera at %s (%dx%d, %s fps idle, encoder %s%s)", self.stream_uri(self.cfg.rtsp_host),
                 main.width, main.height, main.fps, self.encoder_choice.name,
                 "".join(f", substream {self.settings.current[SUB].width}x{self.settings.current[SUB].height} at "
                         f"{self.cfg.substream_mount}" for _ in [1] if SUB in self.encoders))

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._consume())
                tg.create_task(self._watch())
        except* RuntimeError as eg:
            self._state = f"failed: {eg.exceptions[0]}"
            stable = time.monotonic() - self._running_since > STABLE_S
            self._failures = 1 if stable else self._failures + 1
            self.m.up.set(0)
            raise eg.exceptions[0] from None

    async def _consume(self) -> None:
        sub = self._sub
        assert sub is not None
        async for ev in sub:
            what = self.dashboard.apply(ev)
            if what is not None and self.producer is not None:
                self.producer.request("alarm" if what == "alarm" else what)

    def problem(self) -> str | None:
        """Why the pipeline must be rebuilt, or None."""
        gst_err = next((e for e in (enc.poll_error() for enc in list(self.encoders.values())) if e), None) \
            or (self.rtsp.error if self.rtsp else None)
        if gst_err:
            return f"GStreamer error: {gst_err}"
        if self.producer is not None and self.producer.error:
            return self.producer.error
        age = time.monotonic() - self._last_au
        if age > self.cfg.stall_s:
            return f"stalled: no encoded frame for {age:.1f} s"
        return None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            self.beat()
            self.m.frame_age.set(round(time.monotonic() - self._last_au, 3))
            if self.rtsp is not None:
                self.m.clients.set(self.rtsp.clients)
            if self.producer is not None:
                self.m.render_ms.set(round(self.producer.render_s * 1000, 2))
            why = self.problem()
            if why:
                raise RuntimeError(why)

    async def stop(self) -> None:
        if self._sub is not None:
            self._sub.close()
        if self._credentials_rotated in self.ctx.credentials.listeners:
            self.ctx.credentials.listeners.remove(self._credentials_rotated)
        await asyncio.to_thread(self._teardown)
        self.m.up.set(0)
        self._state = "stopped"

    def health(self) -> Health:
        why = self.problem() if self.producer is not None else None
        if why:
            return Health(False, why)
        clients = self.rtsp.clients if self.rtsp is not None else 0
        enc = self.encoder_choice.name if self.encoder_choice else "?"
        return Health(self._state == "running", f"{self._state}, {enc}, {clients} RTSP clients")


def _scale(img, width: int, height: int):
    """The picture at the substream's size: a box reduce when the factor is whole (fastest)."""
    if img.size == (width, height):
        return img
    fx, fy = img.width / width, img.height / height
    if fx == fy and fx == int(fx):
        return img.reduce(int(fx))
    from PIL import Image

    return img.resize((width, height), Image.Resampling.BILINEAR)
