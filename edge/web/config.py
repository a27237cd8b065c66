"""The ``[web]`` config section: where the HTTP server (status, metrics, APIs, ONVIF) listens."""

from __future__ import annotations

from pydantic import Field

from ..section import Section


class WebConfig(Section):
    host: str = "0.0.0.0"
    port: int = Field(80, ge=1, le=65535)
