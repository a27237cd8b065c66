"""The [video] config section: the dashboard picture and the RTSP camera serving it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..section import KeyProblem, Section

ENCODERS = ("auto", "x264", "v4l2h264enc", "pyav-v4l2m2m", "pyav-x264")


class VideoConfig(Section):
    enabled: bool = Field(True, description="serve the dashboard as an RTSP camera")
    width: int = Field(1280, ge=160, le=3840, multiple_of=8, description="picture width in pixels (a multiple of 8)")
    height: int = Field(720, ge=120, le=2160, multiple_of=2, description="picture height in pixels (even)")
    fps: float = Field(1.0, gt=0, le=30, description="idle frame rate; changes are sent at once regardless")
    rtsp_host: str = Field("0.0.0.0", description="address the RTSP server listens on")
    rtsp_port: int = Field(554, ge=0, le=65535, description="RTSP port (554 on the appliance, 0 = any free port)")
    mount: str = Field("/dashboard", description="RTSP path of the stream, e.g. rtsp://host:554/dashboard")
    encoder: Literal["auto", "x264", "v4l2h264enc", "pyav-v4l2m2m", "pyav-x264"] = Field(
        "auto", description="H.264 encoder: auto picks the Pi 4's hardware encoder when it works, else x264")
    x264_preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = Field(
        "ultrafast", description="x264 speed: ultrafast keeps an alarm frame fastest and is plenty for flat dashboard graphics")
    bitrate_kbps: int = Field(2000, ge=64, le=50_000, description="target bitrate")
    gov_length: int = Field(10, ge=1, le=600, description="frames between periodic IDR frames")
    page_seconds: float = Field(5.0, ge=1, le=3600, description="seconds per page when the sensors do not fit one")
    max_tiles_per_page: int = Field(9, ge=1, le=16, description="sensor tiles on one page (9 stays readable on a 1/16 NVR tile)")
    repeat_frame_ms: int = Field(20, ge=20, le=50, description="repeat an alarm frame after this many ms (ffmpeg-based clients hold a frame until the next)")
    stall_s: float = Field(5.0, ge=1, le=60, description="no encoded frame for this long: the pipeline is rebuilt")
    jpeg_quality: int = Field(85, ge=30, le=95)
    max_clients: int = Field(32, ge=1, le=256, description="RTSP connections at once (more are closed); NVRs hold one or two each")
    idle_timeout_s: float = Field(30.0, ge=2, le=3600, description="an RTSP connection with no session after this long is closed")
    substream: bool = Field(True, description="also serve a low-resolution stream (NVR multi-view grids) at <mount>_sub")
    substream_width: int | None = Field(None, ge=160, le=3840, multiple_of=8,
                                        description="substream width (a multiple of 8); default half the width")
    substream_height: int | None = Field(None, ge=90, le=2160, multiple_of=2,
                                         description="substream height (even); default half the height")
    substream_bitrate_kbps: int = Field(400, ge=64, le=50_000, description="substream target bitrate")

    @property
    def substream_size(self) -> tuple[int, int]:
        """The substream size: the configured one, else half the picture (rounded to what H.264 takes)."""
        w = self.substream_width or max(160, (self.width // 2) // 8 * 8)
        h = self.substream_height or max(90, (self.height // 2) // 2 * 2)
        return w, h

    @property
    def substream_mount(self) -> str:
        return self.mount + "_sub"

    @model_validator(mode="after")
    def _substream_fits(self) -> "VideoConfig":
        w, h = self.substream_size
        problems = []
        if w > self.width:
            problems.append((("substream_width",), f"substream width {w} is larger than the picture width {self.width}"))
        if h > self.height:
            problems.append((("substream_height",), f"substream height {h} is larger than the picture height {self.height}"))
        if problems:
            raise KeyProblem(problems)
        return self

    @field_validator("mount")
    @classmethod
    def _mount(cls, v: str) -> str:
        if not v.startswith("/") or len(v) < 2 or any(c in v for c in " ?#\\") or "//" in v:
            raise ValueError("must be a path like '/dashboard' (leading '/', no spaces, '?', '#' or '//')")
        return v.rstrip("/")
