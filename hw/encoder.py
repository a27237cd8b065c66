"""H.264 encoders for the dashboard picture, and the choice between them at start.

Choices (``[video] encoder``):

- ``v4l2h264enc``: the Raspberry Pi 4's hardware encoder through GStreamer.
- ``pyav-v4l2m2m``: the same hardware through FFmpeg's ``h264_v4l2m2m`` (PyAV); used when the
  GStreamer element ignores forced keyframes (seen on some Pi 4 kernels), because an alarm
  and every client's PLAY need an IDR at once.
- ``x264``: software (x264enc, tune=zerolatency); what a Pi 5 (no hardware encoder) and a PC use.
- ``pyav-x264``: libx264 through PyAV (the fallback path with a software codec; tests run it).
- ``auto``: the Pi's hardware encoder when it exists *and* honours a forced keyframe (probed
  with a few tiny frames), else the PyAV hardware path when that opens, else x264. The
  choice and the reason are logged.

Every encoder takes Pillow RGB images (``encode(img, keyframe)``) and hands H.264 access units
(Annex B byte-stream, SPS/PPS before every IDR) to ``on_au(data, is_keyframe)``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Protocol

log = logging.getLogger("hw.encoder")

AuCallback = Callable[[bytes, bool], None]
NAMES = ("x264", "v4l2h264enc", "pyav-v4l2m2m", "pyav-x264")
CONVERT_THREADS = 2  # RGB -> I420 (or the encoder's own layout, e.g. NV12) on two cores
PI_ENCODER_DEVICE = Path("/dev/video11")  # bcm2835-codec encode node on a Pi 4


class EncoderUnavailable(RuntimeError):
    """The requested encoder cannot run here (the message says why)."""


@dataclass(frozen=True)
class EncoderSettings:
    width: int = 1280
    height: int = 720
    fps: float = 1.0
    bitrate_kbps: int = 2000
    gov_length: int = 10
    x264_preset: str = "veryfast"
    # x264's threads (0: its own choice, 1.5 per core). One: at ultrafast a 720p frame takes
    # the same ~8 ms on one thread as on three here, and each thread holds its own frame
    # buffers (3 MB less at 720p per encoder, 4 threads fewer)
    threads: int = 1


@dataclass(frozen=True)
class EncoderChoice:
    name: str
    reason: str

    @property
    def kind(self) -> str:
        return "pyav" if self.name.startswith("pyav-") else "gst"


class H264Encoder(Protocol):
    name: str
    error: str | None

    def start(self, on_au: AuCallback) -> None: ...
    def encode(self, img, keyframe: bool = False) -> None: ...
    def poll_error(self) -> str | None: ...
    def stop(self) -> None: ...


# ---- availability --------------------------------------------------------------------
def _gst():
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstVideo", "1.0")
    from gi.repository import Gst, GstVideo

    if not Gst.is_initialized():
        Gst.init(None)
    return Gst, GstVideo


def gst_has(element: str) -> bool:
    Gst, _ = _gst()
    return Gst.ElementFactory.find(element) is not None


def pyav_has(codec: str) -> bool:
    try:
        import av
    except ImportError:
        return False
    return codec in av.codecs_available


def board_model() -> str:
    try:
        return Path("/proc/device-tree/model").read_text().strip("\0\n ")
    except OSError:
        return ""


# ---- GStreamer encoders --------------------------------------------------------------
def gst_encoder_launch(name: str, s: EncoderSettings) -> str:
    if name == "x264":
        return (f"x264enc name=enc tune=zerolatency speed-preset={s.x264_preset} bitrate={s.bitrate_kbps} "
                f"key-int-max={s.gov_length} bframes=0 byte-stream=true threads={s.threads}")
    if name == "v4l2h264enc":
        return (f'v4l2h264enc name=enc extra-controls="controls,video_bitrate={s.bitrate_kbps * 1000},'
                f'h264_i_frame_period={s.gov_length},repeat_sequence_header=1" '
                "! video/x-h264,level=(string)4,profile=(string)high")
    raise EncoderUnavailable(f"{name!r} is not a GStreamer encoder")


class GstEncoder:
    """appsrc (the picture's RGB bytes) ! videoconvert (to I420, BT.601 limited range, in C on
    two threads) ! <encoder> ! h264parse ! appsink, in its own pipeline.

    The picture is copied into the buffer pushed (``Image.tobytes``; nothing is kept after
    the push, a repeat frame copies again: 1 ms at 720p): converting it to I420 in Python
    with Pillow, as before, cost 5 ms and ~10 MB of intermediate pictures per 720p frame.

    Keyframes are forced with an upstream force-key-unit event on the encoder's src pad just
    before the frame is pushed. Errors on the pipeline's bus are read by ``poll_error``.
    """

    def __init__(self, name: str, settings: EncoderSettings):
        self.name = name
        self.s = settings
        self.error: str | None = None
        self.pipeline = None
        self._src = None
        self._enc = None
        self._on_au: AuCallback | None = None

    def start(self, on_au: AuCallback) -> None:
        Gst, _ = _gst()
        s = self.s
        fr = Fraction(s.fps).limit_denominator(1000)
        if s.width % 8:  # GStreamer pads rows to 4 bytes; tobytes() does not (a 1366-wide picture sheared)
            raise EncoderUnavailable(f"width {s.width} is not a multiple of 8")
        desc = (
            f"appsrc name=src is-live=true do-timestamp=true format=time block=false max-bytes=0 "
            f"caps=video/x-raw,format=RGB,width={s.width},height={s.height},framerate={fr.numerator}/{fr.denominator} "
            f"! videoconvert n-threads={CONVERT_THREADS} ! video/x-raw,format=I420,colorimetry=bt601 "
            f"! {gst_encoder_launch(self.name, s)} "
            "! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au "
            "! appsink name=sink emit-signals=true sync=false max-buffers=16 drop=true"
        )
        try:
            self.pipeline = Gst.parse_launch(desc)
        except Exception as exc:  # GLib.Error
            raise EncoderUnavailable(f"cannot build the {self.name} pipeline: {exc}") from None
        self._on_au = on_au
        self._src = self.pipeline.get_by_name("src")
        self._enc = self.pipeline.get_by_name("enc")
        self.pipeline.get_by_name("sink").connect("new-sample", self._on_sample)
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            err = self.poll_error() or "state change to PLAYING failed"
            self.stop()
            raise EncoderUnavailable(f"{self.name}: {err}")

    def _on_sample(self, sink):
        Gst, _ = _gst()
        sample = sink.emit("pull-sample")
        if sample is None:
            return Gst.FlowReturn.EOS
        buf = sample.get_buffer()
        data = buf.extract_dup(0, buf.get_size())
        key = not buf.has_flags(Gst.BufferFlags.DELTA_UNIT)
        cb = self._on_au
        if cb is not None:
            try:
                cb(data, key)
            except Exception:  # noqa: BLE001 - never raise into GStreamer's streaming thread
                log.exception("access unit consumer failed")
        return Gst.FlowReturn.OK

    def encode(self, img, keyframe: bool = False) -> None:
        Gst, GstVideo = _gst()
        if self._src is None:
            raise RuntimeError("encoder not started")
        if keyframe:
            ev = GstVideo.video_event_new_upstream_force_key_unit(Gst.CLOCK_TIME_NONE, True, 0)
            self._enc.get_static_pad("src").send_event(ev)
        ret = self._src.emit("push-buffer", Gst.Buffer.new_wrapped(img.tobytes()))
        if ret not in (Gst.FlowReturn.OK,):
            self.error = self.error or f"appsrc push returned {ret.value_nick}"

    def poll_error(self) -> str | None:
        Gst, _ = _gst()
        if self.pipeline is not None:
            bus = self.pipeline.get_bus()
            while True:
                msg = bus.pop_filtered(Gst.MessageType.ERROR)
                if msg is None:
                    break
                err, dbg = msg.parse_error()
                src = msg.src.get_name() if msg.src else "?"
                self.error = self.error or f"{src}: {err.message}"
        return self.error

    def stop(self) -> None:
        Gst, _ = _gst()
        self._on_au = None
        if self.pipeline is not None:
            self.pipeline.set_state(Gst.State.NULL)
            self.pipeline = None
        self._src = self._enc = None


# ---- PyAV encoders ---------------------------------------------------------------------
def _nal_types(data: bytes) -> set[int]:
    out = set()
    i = 0
    n = len(data)
    while True:
        i = data.find(b"\x00\x00\x01", i)
        if i < 0 or i + 3 >= n:
            return out
        out.add(data[i + 3] & 0x1F)
        i += 3


class PyAVEncoder:
    """FFmpeg's encoder through PyAV, run in the caller's (producer) thread.

    Keyframes via ``frame.pict_type = I``. SPS/PPS are put in front of every IDR when the
    codec keeps them only in extradata (h264_v4l2m2m does), so clients joining late decode.
    """

    def __init__(self, name: str, settings: EncoderSettings):
        self.name = name
        self.codec = {"pyav-v4l2m2m": "h264_v4l2m2m", "pyav-x264": "libx264"}[name]
        self.s = settings
        self.error: str | None = None
        self._ctx = None
        self._on_au: AuCallback | None = None
        self._t0 = 0.0
        self._last_pts = -1
        self._lock = threading.Lock()

    def start(self, on_au: AuCallback) -> None:
        import av

        s = self.s
        try:
            ctx = av.CodecContext.create(self.codec, "w")
            ctx.width, ctx.height = s.width, s.height
            ctx.pix_fmt = "yuv420p"
            ctx.time_base = Fraction(1, 1000)
            ctx.framerate = Fraction(s.fps).limit_denominator(1000)
            ctx.gop_size = s.gov_length
            ctx.max_b_frames = 0
            ctx.bit_rate = s.bitrate_kbps * 1000
            if self.codec == "libx264":
                ctx.options = {"preset": s.x264_preset, "tune": "zerolatency"}
                ctx.thread_count = s.threads
            ctx.open()
        except Exception as exc:  # noqa: BLE001 - av raises many types
            raise EncoderUnavailable(f"{self.codec} does not open here: {exc}") from None
        self._ctx = ctx
        self._on_au = on_au
        self._t0 = time.monotonic()

    def encode(self, img, keyframe: bool = False) -> None:
        import av
        from av.video.frame import PictureType

        with self._lock:
            ctx = self._ctx
            if ctx is None:
                raise RuntimeError("encoder not started")
            frame = av.VideoFrame.from_image(img).reformat(format="yuv420p")
            pts = max(self._last_pts + 1, int((time.monotonic() - self._t0) * 1000))
            self._last_pts = pts
            frame.pts = pts
            frame.time_base = ctx.time_base
            if keyframe:
                frame.pict_type = PictureType.I
            try:
                packets = ctx.encode(frame)
            except Exception as exc:  # noqa: BLE001
                self.error = f"{self.codec}: {exc}"
                return
            for p in packets:
                data = bytes(p)
                key = bool(p.is_keyframe)
                if key and 7 not in _nal_types(data) and ctx.extradata:
                    data = bytes(ctx.extradata) + data
                cb = self._on_au
                if cb is not None:
                    cb(data, key)

    def poll_error(self) -> str | None:
        return self.error

    def stop(self) -> None:
        with self._lock:
            self._on_au = None
            self._ctx = None


def make_encoder(name: str, settings: EncoderSettings) -> H264Encoder:
    if name in ("x264", "v4l2h264enc"):
        return GstEncoder(name, settings)
    if name in ("pyav-v4l2m2m", "pyav-x264"):
        return PyAVEncoder(name, settings)
    raise EncoderUnavailable(f"unknown encoder {name!r} (one of: auto, {', '.join(NAMES)})")


# ---- probing and choosing -------------------------------------------------------------
def probe_forced_keyframe(name: str, timeout_s: float = 5.0) -> tuple[bool, str]:
    """Encode a few tiny frames, force a keyframe on the 4th; (honoured, detail)."""
    from PIL import Image

    s = EncoderSettings(width=320, height=240, fps=30, bitrate_kbps=500, gov_length=300, x264_preset="ultrafast")
    got: list[bool] = []
    done = threading.Event()

    def on_au(data: bytes, key: bool) -> None:
        got.append(key)
        if len(got) >= 5:
            done.set()

    enc = make_encoder(name, s)
    try:
        enc.start(on_au)
        for i in range(5):
            img = Image.new("RGB", (s.width, s.height), (i * 40, 80, 160))
            before = len(got)
            enc.encode(img, keyframe=(i == 3))
            # wait for this frame's output so the forced one is identifiable
            deadline = time.monotonic() + timeout_s / 5
            while len(got) == before and time.monotonic() < deadline and not enc.poll_error():
                time.sleep(0.005)
        done.wait(0.5)
        err = enc.poll_error()
        if err:
            return False, err
        if len(got) < 4:
            return False, f"only {len(got)} of 5 frames came out"
        return (got[3], "forced keyframe honoured" if got[3] else "forced keyframe ignored")
    except EncoderUnavailable as exc:
        return False, str(exc)
    finally:
        enc.stop()


def choose_encoder(requested: str = "auto", *, probe: Callable[[str], tuple[bool, str]] = probe_forced_keyframe) -> EncoderChoice:
    """Pick the encoder. A forced one that cannot run raises EncoderUnavailable (clear reason)."""
    if requested != "auto":
        if requested in ("x264", "v4l2h264enc"):
            element = "x264enc" if requested == "x264" else "v4l2h264enc"
            if not gst_has(element):
                raise EncoderUnavailable(f"[video] encoder = {requested!r}, but GStreamer has no {element} element here")
        elif requested in ("pyav-v4l2m2m", "pyav-x264"):
            codec = "h264_v4l2m2m" if requested == "pyav-v4l2m2m" else "libx264"
            if not pyav_has(codec):
                raise EncoderUnavailable(f"[video] encoder = {requested!r}, but PyAV has no {codec} codec here")
        else:
            raise EncoderUnavailable(f"unknown encoder {requested!r} (one of: auto, {', '.join(NAMES)})")
        choice = EncoderChoice(requested, "forced by [video] encoder")
        log.info("H.264 encoder: %s (%s)", choice.name, choice.reason)
        return choice
    model = board_model()
    hw_reason = ""
    if gst_has("v4l2h264enc"):
        ok, detail = probe("v4l2h264enc")
        if ok:
            choice = EncoderChoice("v4l2h264enc", f"hardware encoder on {model or 'this board'}; {detail}")
            log.info("H.264 encoder: %s (%s)", choice.name, choice.reason)
            return choice
        hw_reason = f"v4l2h264enc unusable ({detail})"
        if pyav_has("h264_v4l2m2m") and PI_ENCODER_DEVICE.exists():
            ok2, detail2 = probe("pyav-v4l2m2m")
            if ok2:
                choice = EncoderChoice("pyav-v4l2m2m", f"{hw_reason}; PyAV h264_v4l2m2m {detail2}")
                log.info("H.264 encoder: %s (%s)", choice.name, choice.reason)
                return choice
            hw_reason += f"; PyAV h264_v4l2m2m unusable ({detail2})"
    else:
        hw_reason = "no hardware H.264 encoder (no v4l2h264enc element" + (f" on {model}" if model else "") + ")"
    if not gst_has("x264enc"):
        raise EncoderUnavailable(f"{hw_reason}, and no x264enc (install gstreamer1.0-plugins-ugly)")
    choice = EncoderChoice("x264", f"{hw_reason}: software x264")
    log.info("H.264 encoder: %s (%s)", choice.name, choice.reason)
    return choice
