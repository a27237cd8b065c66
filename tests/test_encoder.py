"""Choosing the H.264 encoder, and the encoders themselves with real GStreamer/FFmpeg."""

from __future__ import annotations

import logging
import time

import pytest
from PIL import Image

from hw import encoder as enc_mod
from hw.encoder import EncoderSettings, EncoderUnavailable, choose_encoder, make_encoder, probe_forced_keyframe


def test_auto_on_a_machine_without_hardware_encoder_picks_x264_and_says_why(caplog, monkeypatch):
    monkeypatch.setattr(enc_mod, "gst_has", lambda e: e == "x264enc")
    with caplog.at_level(logging.INFO, logger="hw.encoder"):
        c = choose_encoder("auto")
    assert c.name == "x264" and "no hardware" in c.reason
    assert "H.264 encoder: x264" in caplog.text and "no hardware" in caplog.text


def test_auto_falls_back_when_the_pi_encoder_ignores_forced_keyframes(monkeypatch):
    monkeypatch.setattr(enc_mod, "gst_has", lambda e: e in ("x264enc", "v4l2h264enc"))
    probed = []

    def probe(name):
        probed.append(name)
        return (name != "v4l2h264enc", "forced keyframe ignored" if name == "v4l2h264enc" else "forced keyframe honoured")

    monkeypatch.setattr(enc_mod, "pyav_has", lambda c: c == "h264_v4l2m2m")
    monkeypatch.setattr(enc_mod, "PI_ENCODER_DEVICE", enc_mod.Path("/"))  # "exists"
    c = choose_encoder("auto", probe=probe)
    assert c.name == "pyav-v4l2m2m" and "ignored" in c.reason and probed == ["v4l2h264enc", "pyav-v4l2m2m"]
    # hardware that works is preferred
    c = choose_encoder("auto", probe=lambda n: (True, "forced keyframe honoured"))
    assert c.name == "v4l2h264enc"
    # nothing hardware works: software
    c = choose_encoder("auto", probe=lambda n: (False, "does not open"))
    assert c.name == "x264" and "unusable" in c.reason


def test_a_forced_encoder_that_is_missing_is_a_clear_error():
    if enc_mod.gst_has("v4l2h264enc"):
        pytest.skip("this machine has the Pi encoder")
    with pytest.raises(EncoderUnavailable, match="v4l2h264enc"):
        choose_encoder("v4l2h264enc")
    assert choose_encoder("x264").reason == "forced by [video] encoder"


@pytest.mark.parametrize("name", ["x264", "pyav-x264"])
def test_real_encoders_honour_forced_keyframes(name):
    ok, detail = probe_forced_keyframe(name)
    assert ok, detail


@pytest.mark.parametrize("name, width", [("x264", 320), ("x264", 1368), ("pyav-x264", 320)])
def test_encoded_access_units_decode_and_keyframes_carry_sps(name, width):
    """Decoded by FFmpeg with the colours kept (our own RGB -> I420 conversion for GStreamer)."""
    import av

    got: list[tuple[bytes, bool]] = []
    e = make_encoder(name, EncoderSettings(width, 240, 5, 500, 100, "ultrafast"))
    e.start(lambda d, k: got.append((d, k)))
    try:
        colours = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0)]
        for i, c in enumerate(colours):
            e.encode(Image.new("RGB", (width, 240), c), keyframe=(i == 2))
            deadline = time.monotonic() + 3
            while len(got) <= i and time.monotonic() < deadline:
                time.sleep(0.005)
    finally:
        e.stop()
    assert [k for _, k in got] == [True, False, True, False]
    assert 7 in enc_mod._nal_types(got[2][0])  # SPS before the forced IDR: a late client can start there
    dec = av.CodecContext.create("h264", "r")
    frames = []
    for data, _ in got[2:]:  # start decoding at the forced keyframe
        frames += dec.decode(av.Packet(data))
    frames += dec.decode(None)
    assert len(frames) == 2
    assert frames[0].width == width
    px = frames[0].to_image().getpixel((160, 120))
    assert abs(px[2] - 200) < 12 and px[0] < 12 and px[1] < 12, px  # the blue picture, colours kept
    px = frames[1].to_image().getpixel((160, 120))
    assert abs(px[0] - 200) < 12 and abs(px[1] - 200) < 12 and px[2] < 12, px
