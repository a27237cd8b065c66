"""The ``[web]`` config section: where the HTTP server (status, metrics, APIs, ONVIF) listens,
HTTPS, and the limits every connection lives under."""

from __future__ import annotations

from pydantic import Field, model_validator

from ..section import Section


class WebConfig(Section):
    host: str = "0.0.0.0"
    port: int = Field(80, ge=1, le=65535, description="plain HTTP; with tls on it answers ONVIF (NVRs speak "
                                                      "plain HTTP) and the snapshot, and redirects the rest to HTTPS")
    tls: bool = Field(False, description="serve the web surfaces on HTTPS with the device certificate "
                                         "(made at first start; fingerprint: `edge credentials`)")
    https_port: int = Field(443, ge=1, le=65535)
    max_connections: int = Field(64, ge=4, le=10_000, description="open connections at once (per listener)")
    max_connections_per_client: int = Field(16, ge=1, le=10_000, description="open connections from one address")
    idle_timeout_s: float = Field(15.0, gt=0, le=600, description="a connection without a complete request "
                                                                   "(headers included) for this long is closed")
    body_timeout_s: float = Field(15.0, gt=0, le=600, description="time to send a request body")
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    auth_free_failures: int = Field(3, ge=0, le=100, description="failed logins from one address before answers slow down")
    auth_delay_max_s: float = Field(5.0, ge=0, le=60, description="longest delay of an answer to a failed login")

    @model_validator(mode="after")
    def _ports_differ(self) -> "WebConfig":
        if self.tls and self.https_port == self.port:
            raise ValueError(f"https_port and port must differ (both {self.port})")
        if self.max_connections_per_client > self.max_connections:
            raise ValueError("max_connections_per_client cannot exceed max_connections")
        return self
