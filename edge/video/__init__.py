"""The dashboard served as an RTSP camera (GStreamer + gst-rtsp-server through python3-gi).

Contract for other components (ONVIF, web), provided as ``interfaces.VIDEO``:

    video.stream_uri(host, token=None) -> "rtsp://host:port/mount"  (no credentials in it)
    video.snapshot_path    -> "/snapshot.jpg"            (on ctx.web, needs credentials)
    await video.snapshot_jpeg() -> bytes                 (the current picture)
    video.profiles         -> [VideoProfile(...)]        (the main stream first, then the substream)
    video.encoder_options(token) -> settings.StreamOptions
    await video.configure(token, width=, height=, fps=, bitrate_kbps=, gov_length=)
                           -> applies and keeps them; raises settings.SettingRejected
    video.request_keyframe()                             (an IDR on every stream at once)

This module stays import-light (no GStreamer): the config imports from this package.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VideoProfile:
    token: str
    width: int
    height: int
    fps: float
    bitrate_kbps: int
    gov_length: int
    mount: str = ""
    stream: str = "main"  # "main" | "sub"
