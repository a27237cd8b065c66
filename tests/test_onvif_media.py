"""Media ver10 with the real client against the real video component: H.264 profiles with the
fields strict NVRs check, a stream URI ffprobe opens with the device credentials, a snapshot
URI whose JPEG decodes."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import subprocess
from urllib.parse import urlsplit, urlunsplit

import pytest
import zeep.exceptions
from onvif import ONVIFCamera

from .peers import free_port

FFPROBE = shutil.which("ffprobe")
CONFIG = """
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
"""


def ffprobe(uri: str) -> dict:
    out = subprocess.run([FFPROBE, "-v", "error", "-rtsp_transport", "tcp", "-rw_timeout", "10000000",
                          "-show_streams", "-of", "json", uri], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    return json.loads(out.stdout)


@pytest.mark.skipif(FFPROBE is None, reason="ffprobe not installed (apt ffmpeg)")
async def test_media_profiles_stream_and_snapshot(service_factory):
    from PIL import Image

    port = free_port()
    async with service_factory(CONFIG + f'[web]\nhost = "127.0.0.1"\nport = {port}\n') as svc:
        creds = svc.ctx.credentials.get()
        cam = ONVIFCamera("127.0.0.1", port, creds.user, creds.password)
        try:
            await cam.update_xaddrs()
            media = await cam.create_media_service()
            assert (await media.GetServiceCapabilities()).SnapshotUri is True
            profiles = await media.GetProfiles()
            assert len(profiles) == len(svc.component("video").profiles) >= 1
            p = profiles[0]
            enc = p.VideoEncoderConfiguration
            assert enc.Encoding == "H264"
            assert (enc.Resolution.Width, enc.Resolution.Height) == (640, 360)
            assert (enc.RateControl.FrameRateLimit, enc.RateControl.BitrateLimit) == (2, 800)
            assert enc.H264.GovLength == 8 and enc.H264.H264Profile in ("Baseline", "Main", "High")
            assert enc.SessionTimeout.total_seconds() > 0
            assert p.VideoSourceConfiguration.SourceToken == (await media.GetVideoSources())[0].token
            opts = await media.GetVideoEncoderConfigurationOptions({"ProfileToken": p.token})
            assert (opts.H264.ResolutionsAvailable[0].Width, opts.H264.ResolutionsAvailable[0].Height) == (640, 360)

            req = media.create_type("GetStreamUri")
            req.ProfileToken = p.token
            req.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
            uri = (await media.GetStreamUri(req)).Uri
            u = urlsplit(uri)
            assert u.scheme == "rtsp" and u.hostname == "127.0.0.1" and "@" not in u.netloc
            streams = (await asyncio.to_thread(
                ffprobe, urlunsplit(u._replace(netloc=f"{creds.user}:{creds.password}@{u.netloc}"))))["streams"]
            assert streams[0]["codec_name"] == "h264" and (streams[0]["width"], streams[0]["height"]) == (640, 360)
            # the profile advertised is the one in the stream
            assert streams[0]["profile"].replace("Constrained ", "") == enc.H264.H264Profile, streams[0]["profile"]

            jpeg = await cam.get_snapshot(p.token)
            img = Image.open(io.BytesIO(jpeg))
            img.load()
            assert img.format == "JPEG" and img.size == (640, 360)

            # what is not offered is a clear fault
            req.StreamSetup = {"Stream": "RTP-Multicast", "Transport": {"Protocol": "UDP"}}
            with pytest.raises(zeep.exceptions.Fault) as exc:
                await media.GetStreamUri(req)
            assert "RTP-Unicast" in exc.value.message
            with pytest.raises(zeep.exceptions.Fault) as exc:
                await media.GetSnapshotUri({"ProfileToken": "nope"})
            assert "no media profile" in exc.value.message
        finally:
            await cam.close()
