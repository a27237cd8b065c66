"""The one producer thread: render the dashboard, hand the picture to the encoder.

It draws a frame at the idle rate (``fps``) and at once when told something changed
(``request``): a sensor's state, an alarm, a client that needs a keyframe. Alarm changes and
keyframe requests force an IDR. Every frame drawn because of an event is sent a second time
``repeat_ms`` later: ffmpeg-based clients (most NVRs) hold a frame until the next one
arrives, so without the repeat the alarm would show only at the next idle tick.

Only this thread renders and encodes (a thread per client grew RSS ~6 MB each).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from PIL import Image

from ..dashboard.model import Dashboard
from ..dashboard.render import Renderer

log = logging.getLogger("edge.video.producer")

MIN_GAP_S = 0.02  # at most 50 event frames a second, however fast sensors flap
KEYFRAME_REASONS = frozenset({"alarm", "keyframe"})


class Producer:
    def __init__(self, dashboard: Dashboard, renderer: Renderer, encode: Callable[[Image.Image, bool], None],
                 fps: float, repeat_ms: int, on_frame: Callable[[Image.Image, float], None] | None = None):
        self.dashboard = dashboard
        self.renderer = renderer
        self.encode = encode
        self.period = 1.0 / fps
        self.repeat_s = repeat_ms / 1000
        self.on_frame = on_frame
        self.error: str | None = None
        self.frames = 0
        self.keyframes = 0
        self.render_s = 0.0
        self._pending: set[str] = set()
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="video-producer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(3)

    def request(self, reason: str) -> None:
        """Draw a frame now. reason: 'sensor', 'link', 'alarm' or 'keyframe' (the last two force an IDR)."""
        with self._cond:
            self._pending.add(reason)
            self._cond.notify()

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # noqa: BLE001 - the health check sees it and rebuilds
            self.error = f"producer: {type(exc).__name__}: {exc}"
            log.exception("video producer failed")

    def _loop(self) -> None:
        next_tick = time.monotonic()
        repeat_at: float | None = None
        last_img: Image.Image | None = None  # kept only until its repeat is sent
        last_frame = 0.0
        while True:
            with self._cond:
                while not self._stop and not self._pending:
                    now = time.monotonic()
                    due = next_tick if repeat_at is None else min(next_tick, repeat_at)
                    if now >= due:
                        break
                    self._cond.wait(due - now)
                if self._stop:
                    return
                reasons, self._pending = self._pending, set()
            now = time.monotonic()
            if not reasons and repeat_at is not None and now >= repeat_at and last_img is not None and now < next_tick:
                repeat_at = None
                self._push(last_img, False)
                last_img = None
                continue
            if reasons and now - last_frame < MIN_GAP_S:
                time.sleep(MIN_GAP_S - (now - last_frame))
            t0 = time.perf_counter()
            img = self.renderer.render(self.dashboard.view())
            self.render_s = time.perf_counter() - t0
            key = bool(reasons & KEYFRAME_REASONS)
            self._push(img, key)
            last_frame = time.monotonic()
            repeat_at = last_frame + self.repeat_s if reasons else None
            # an idle frame is not repeated: nothing holds the picture until the next one
            last_img = img if repeat_at is not None else None
            img = None
            next_tick = last_frame + self.period

    def _push(self, img: Image.Image, key: bool) -> None:
        self.encode(img, key)
        self.frames += 1
        if key:
            self.keyframes += 1
        if self.on_frame is not None:
            self.on_frame(img, time.time())
