"""The ``[mqtt]`` config section: the broker that MQTT ingest and the uplink connect to."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ..section import Section


class MqttTls(Section):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = Field(False, description="skip hostname verification (self-signed test brokers only)")


class MqttConfig(Section):
    """The broker. Both ingest and the uplink use it (the appliance runs Mosquitto locally)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    password_file: Path | None = Field(None, description="read the password from this file (keep it 0600)")
    tls: MqttTls | None = None
    client_id: str | None = Field(None, description="stable client id prefix; default edge-<serial>")
    keepalive_s: int = Field(30, ge=5, le=3600)
    backoff_initial_s: float = Field(0.5, gt=0, le=60)
    backoff_max_s: float = Field(30.0, gt=0, le=3600)
    max_payload_bytes: int = Field(65536, ge=64, le=16 * 1024 * 1024)
    inflight_window: int = Field(
        20, ge=1, le=65535,
        description="QoS 1 messages the broker sends before it waits for acknowledgements (Mosquitto's "
                    "max_inflight_messages: 20 by default, 1000 on the appliance); ingest acknowledges a "
                    "message once it is committed, and commits at once when half this many wait")

    def read_password(self) -> str | None:
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return self.password
