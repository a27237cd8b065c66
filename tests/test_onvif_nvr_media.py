"""Media as NVRs use it, with onvif-zeep-async and ffprobe: a substream profile (NVR grids)
beside the main one, both with a complete VideoEncoderConfiguration; RTP over UDP as well as
TCP; SetVideoEncoderConfiguration within the options changes the stream ffprobe reads and is
kept across a restart, values outside are the faults the Media spec names; relay settings set
over ONVIF are kept across a restart too."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import zeep.exceptions
from onvif import ONVIFCamera

from .peers import free_port

FFPROBE = shutil.which("ffprobe")
pytestmark = pytest.mark.skipif(FFPROBE is None, reason="ffprobe not installed (apt ffmpeg)")


def config(port: int) -> str:
    return f"""
[web]
host = "127.0.0.1"
port = {port}

[onvif]
discovery = false

[video]
rtsp_host = "127.0.0.1"
rtsp_port = 0
width = 640
height = 360
fps = 2
gov_length = 8
bitrate_kbps = 800

[relays.boards.main]
type = "simulated"
profile = "waveshare-8"
port = 0

[relays.channels.gate]
board = "main"
channel = 1
mode = "pulse"
pulse_ms = 1000
"""


def ffprobe(uri: str, transport: str = "tcp") -> dict:
    out = subprocess.run([FFPROBE, "-v", "error", "-rtsp_transport", transport, "-rw_timeout", "10000000",
                          "-show_streams", "-of", "json", uri], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    return json.loads(out.stdout)["streams"][0]


async def stream(media, token: str, creds, transport: str = "tcp") -> dict:
    req = media.create_type("GetStreamUri")
    req.ProfileToken = token
    req.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "UDP" if transport == "udp" else "RTSP"}}
    u = urlsplit((await media.GetStreamUri(req)).Uri)
    uri = urlunsplit(u._replace(netloc=f"{creds.user}:{creds.password}@{u.netloc}"))
    return await asyncio.to_thread(ffprobe, uri, transport)


async def set_encoder(media, token: str, **change):
    cfg = await media.GetVideoEncoderConfiguration({"ConfigurationToken": token})
    if "size" in change:
        cfg.Resolution.Width, cfg.Resolution.Height = change.pop("size")
    for key, value in change.items():
        if key == "GovLength":
            cfg.H264.GovLength = value
        else:
            setattr(cfg.RateControl, key, value)
    await media.SetVideoEncoderConfiguration({"Configuration": cfg, "ForcePersistence": True})


async def fault_of(coro) -> str:
    with pytest.raises(zeep.exceptions.Fault) as exc:
        await coro
    return exc.value.message


async def test_substream_udp_and_encoder_changes_kept_across_restart(service_factory, tmp_path: Path):
    port = free_port()
    data = tmp_path / "data"
    async with service_factory(config(port), data_dir=data) as svc:
        creds = svc.ctx.credentials.get()
        cam = ONVIFCamera("127.0.0.1", port, creds.user, creds.password)
        try:
            await cam.update_xaddrs()
            media = await cam.create_media_service()
            assert (await media.GetServiceCapabilities()).ProfileCapabilities.MaximumNumberOfProfiles == 2
            main, sub = await media.GetProfiles()
            for p in (main, sub):  # complete on every profile (Protect: "Channel fps is not found" otherwise)
                enc = p.VideoEncoderConfiguration
                assert enc.RateControl.FrameRateLimit == 2 and enc.RateControl.EncodingInterval == 1
                assert enc.RateControl.BitrateLimit > 0 and enc.Quality is not None
                assert enc.H264.GovLength == 8 and enc.H264.H264Profile
                assert enc.Multicast is not None and enc.SessionTimeout.total_seconds() > 0
                assert p.VideoSourceConfiguration.token == main.VideoSourceConfiguration.token  # one source
            assert (sub.VideoEncoderConfiguration.Resolution.Width, sub.VideoEncoderConfiguration.Resolution.Height) \
                == (320, 180)

            # the substream over TCP, the main stream over UDP
            s = await stream(media, sub.token, creds)
            assert (s["codec_name"], s["width"], s["height"]) == ("h264", 320, 180)
            m = await stream(media, main.token, creds, transport="udp")
            assert (m["codec_name"], m["width"], m["height"]) == ("h264", 640, 360)
            caps = await cam.get_capabilities()
            assert caps["Media"]["StreamingCapabilities"]["RTP_RTSP_TCP"] is True

            # options, and a change within them: ffprobe reads the new stream
            opts = await media.GetVideoEncoderConfigurationOptions({"ProfileToken": main.token})
            sizes = {(r.Width, r.Height) for r in opts.H264.ResolutionsAvailable}
            assert {(640, 360), (960, 540)} <= sizes
            main_enc = main.VideoEncoderConfiguration.token
            await set_encoder(media, main_enc, size=(960, 540), FrameRateLimit=3, BitrateLimit=1200, GovLength=6)
            m = await stream(media, main.token, creds)
            assert (m["width"], m["height"]) == (960, 540)
            got = await media.GetVideoEncoderConfiguration({"ConfigurationToken": main_enc})
            assert (got.Resolution.Width, got.RateControl.FrameRateLimit, got.RateControl.BitrateLimit,
                    got.H264.GovLength) == (960, 3, 1200, 6)
            # the substream follows the main stream's frame rate
            assert (await media.GetProfile({"ProfileToken": sub.token})).VideoEncoderConfiguration \
                .RateControl.FrameRateLimit == 3

            # outside what the device offers: the fault the Media spec names, nothing changes
            sub_enc = sub.VideoEncoderConfiguration.token
            assert "not offered" in await fault_of(set_encoder(media, main_enc, size=(1000, 500)))
            assert "outside" in await fault_of(set_encoder(media, main_enc, BitrateLimit=10))
            assert "frame rate" in await fault_of(set_encoder(media, sub_enc, FrameRateLimit=1))
            assert "H264" in await fault_of(media.SetVideoEncoderConfiguration({"Configuration": {
                **{k: getattr(got, k) for k in ("Name", "UseCount", "Resolution", "Quality", "RateControl",
                                                "Multicast", "SessionTimeout")},
                "token": main_enc, "Encoding": "JPEG"}, "ForcePersistence": True}))
            assert (await media.GetVideoEncoderConfiguration({"ConfigurationToken": main_enc})).Resolution.Width == 960

            # relay settings
            dio = await cam.create_deviceio_service()
            await dio.SetRelayOutputSettings({"RelayOutput": {"token": "gate", "Properties": {
                "Mode": "Monostable", "DelayTime": dt.timedelta(milliseconds=400), "IdleState": "open"}}})
        finally:
            await cam.close()

    # a restart keeps what the NVR set
    async with service_factory(config(port), data_dir=data) as svc:
        creds = svc.ctx.credentials.get()
        cam = ONVIFCamera("127.0.0.1", port, creds.user, creds.password)
        try:
            await cam.update_xaddrs()
            media = await cam.create_media_service()
            main, sub = await media.GetProfiles()
            enc = main.VideoEncoderConfiguration
            assert (enc.Resolution.Width, enc.Resolution.Height, enc.RateControl.FrameRateLimit,
                    enc.RateControl.BitrateLimit, enc.H264.GovLength) == (960, 540, 3, 1200, 6)
            m = await stream(media, main.token, creds)
            assert (m["width"], m["height"]) == (960, 540)
            dm = await cam.create_devicemgmt_service()
            [gate] = await dm.GetRelayOutputs()
            assert (gate.Properties.Mode, gate.Properties.DelayTime) == ("Monostable", dt.timedelta(milliseconds=400))
        finally:
            await cam.close()


async def test_a_later_config_edit_wins_over_a_kept_change(tmp_path: Path):
    """The installer edits [video] width/height after an NVR changed them: the config wins."""
    from edge.video.config import VideoConfig
    from edge.video.settings import MAIN, StreamSettings, VideoSettings

    data = tmp_path / "data"
    cfg = VideoConfig(width=640, height=360, fps=2)
    vs = VideoSettings(cfg, data)
    vs.apply(MAIN, StreamSettings(960, 540, 2.0, cfg.bitrate_kbps, cfg.gov_length))
    assert VideoSettings(cfg, data).current[MAIN].width == 960  # kept
    edited = VideoConfig(width=1280, height=720, fps=2)
    now = VideoSettings(edited, data).current[MAIN]
    assert (now.width, now.height) == (1280, 720)


def _rtsp(sock, method: str, url: str, cseq: int, auth: str = "") -> tuple[int, dict[str, str], bytes]:
    lines = [f"{method} {url} RTSP/1.0", f"CSeq: {cseq}", "Accept: application/sdp", "User-Agent: edge-test"]
    if auth:
        lines.append(f"Authorization: {auth}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(4096)
    head, _, body = buf.partition(b"\r\n\r\n")
    hdrs = {}
    for line in head.decode().split("\r\n")[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get("content-length", "0"))
    while len(body) < n:
        body += sock.recv(4096)
    return int(head.split()[1]), hdrs, body


async def test_repeated_describe_on_one_connection_gives_one_track(service_factory):
    """Hikvision iSecure Center sends DESCRIBE again on the same connection when switching
    profiles; tracks piling up broke 80-90 % of its sessions with another server (go2rtc#2150)."""
    import hashlib
    import re
    import socket

    async with service_factory(config(free_port())) as svc:
        video = svc.component("video")
        creds = svc.ctx.credentials.get()

        def run() -> list[int]:
            counts = []
            with socket.create_connection(("127.0.0.1", video.port), timeout=10) as sock:
                for i, token in enumerate(("dashboard", "dashboard_sub", "dashboard")):
                    url = video.stream_uri("127.0.0.1", token)
                    status, hdrs, _ = _rtsp(sock, "DESCRIBE", url, 2 * i + 1)
                    assert status == 401
                    p = dict(re.findall(r'(\w+)="([^"]*)"', hdrs["www-authenticate"]))
                    ha1 = hashlib.md5(f"{creds.user}:{p['realm']}:{creds.password}".encode()).hexdigest()
                    ha2 = hashlib.md5(f"DESCRIBE:{url}".encode()).hexdigest()
                    resp = hashlib.md5(f"{ha1}:{p['nonce']}:{ha2}".encode()).hexdigest()
                    auth = (f'Digest username="{creds.user}", realm="{p["realm"]}", nonce="{p["nonce"]}", '
                            f'uri="{url}", response="{resp}"')
                    status, _, sdp = _rtsp(sock, "DESCRIBE", url, 2 * i + 2, auth)
                    assert status == 200, status
                    counts.append(sdp.count(b"\nm=video"))
            return counts

        assert await asyncio.to_thread(run) == [1, 1, 1]
