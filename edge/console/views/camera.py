"""Camera: the dashboard snapshot refreshing, and the RTSP and ONVIF addresses to copy."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...interfaces import VIDEO


def add_routes(router: web.UrlDispatcher, console: Any) -> None:
    async def camera(request: web.Request) -> web.Response:
        cfg = console.ctx.config
        video = console.ctx.registry.get(VIDEO)
        host = request.url.host or "127.0.0.1"
        bound = cfg.video.rtsp_host
        rtsp_host = bound if bound not in ("", "0.0.0.0", "::") else host
        values = {
            "video": video is not None,
            "rtsp": video.stream_uri(rtsp_host) if video is not None else "",
            "snapshot": video.snapshot_path if video is not None else "",
            "onvif": f"{request.scheme}://{request.host}/onvif/device_service" if cfg.onvif.enabled else "",
        }
        return console.page(request, "camera.html", values)

    router.add_get("/camera", camera)
