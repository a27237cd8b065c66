"""The producer thread: idle rate, a frame at once on a change, IDR + repeat frame on alarms."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace as NS

from edge.bus import Alarm, SensorChanged
from edge.dashboard.model import Dashboard
from edge.dashboard.render import Renderer
from edge.video.producer import Producer


class Recorder:
    def __init__(self) -> None:
        self.frames: list[tuple[float, object, bool]] = []
        self.lock = threading.Lock()

    def __call__(self, img, key: bool) -> None:
        with self.lock:
            self.frames.append((time.monotonic(), img, key))

    def after(self, t: float):
        with self.lock:
            return [f for f in self.frames if f[0] >= t]


def _producer(fps: float = 0.5, repeat_ms: int = 20):
    db = Dashboard("Site", [NS(id="door", name="Door", kind="contact")])
    rec = Recorder()
    p = Producer(db, Renderer(320, 180), rec, fps=fps, repeat_ms=repeat_ms)
    return db, rec, p


def _wait(cond, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.002)


def test_alarm_frame_is_an_idr_followed_by_a_repeat_of_the_same_picture():
    db, rec, p = _producer(fps=0.5, repeat_ms=20)
    p.start()
    try:
        _wait(lambda: len(rec.frames) >= 1)  # the first idle frame
        time.sleep(0.1)
        t0 = time.monotonic()
        db.apply(Alarm("door:open", "door", True, "intrusion", "Door forced open"))
        p.request("alarm")
        _wait(lambda: len(rec.after(t0)) >= 2)
        first, repeat = rec.after(t0)[:2]
        assert first[2] is True, "the alarm frame is a keyframe"
        assert repeat[1] is first[1] and repeat[2] is False, "then the same picture again"
        gap_ms = (repeat[0] - first[0]) * 1000
        assert 18 <= gap_ms < 250, gap_ms  # scheduled at 20 ms; generous upper bound for a loaded CI box
        assert first[0] - t0 < 1.0  # not the next 2 s idle tick
    finally:
        p.stop()


def test_sensor_change_draws_at_once_without_forcing_an_idr_and_idle_rate_holds():
    db, rec, p = _producer(fps=4)
    p.start()
    try:
        time.sleep(1.05)
        n_idle = len(rec.frames)
        assert 3 <= n_idle <= 6, n_idle  # ~4 fps
        t0 = time.monotonic()
        db.apply(SensorChanged("door", {"contact": False}, ("contact",)))
        p.request("sensor")
        _wait(lambda: len(rec.after(t0)) >= 1)
        f = rec.after(t0)[0]
        assert f[2] is False
        assert f[0] - t0 < 0.2
    finally:
        p.stop()


def test_a_failing_encoder_is_reported_not_hidden():
    db = Dashboard("Site")

    def broken(img, key):
        raise RuntimeError("encoder gone")

    p = Producer(db, Renderer(320, 180), broken, fps=10, repeat_ms=20)
    p.start()
    _wait(lambda: p.error is not None)
    p.stop()
    assert p.error and "encoder gone" in p.error
