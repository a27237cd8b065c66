"""The dashboard served as an RTSP camera (GStreamer + gst-rtsp-server through python3-gi).

Contract for other components (ONVIF, web), provided as ``interfaces.VIDEO``:

    video.stream_uri(host) -> "rtsp://host:port/mount"   (no credentials in it)
    video.snapshot_path    -> "/snapshot.jpg"            (on ctx.web, needs credentials)
    await video.snapshot_jpeg() -> bytes                 (the current picture)
    video.profiles         -> [VideoProfile(...)]

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
