"""The ``[onvif]`` config section."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ..section import Section


class OnvifConfig(Section):
    enabled: bool = Field(True, description="serve ONVIF on the web port")
    discovery: bool = Field(True, description="answer WS-Discovery probes, send Hello/Bye")
    discovery_port: int = Field(3702, ge=1, le=65535, description="WS-Discovery UDP port (3702 on the appliance)")
    name: str | None = Field(None, max_length=64, description="onvif://www.onvif.org/name/ scope; default [site] name")
    hardware: str = Field("edge", min_length=1, max_length=64, description="onvif://www.onvif.org/hardware/ scope")
    location: str | None = Field(None, max_length=64, description="onvif://www.onvif.org/location/ scope; default [site] location")
    extra_scopes: list[str] = Field(default_factory=list, description="more scope URIs, e.g. onvif://www.onvif.org/location/city/Oslo")
    manufacturer: str = Field("edge", min_length=1, max_length=64)
    model: str = Field("edge sensor dashboard", min_length=1, max_length=64)
    clock_skew_s: int = Field(300, ge=5, le=86400, description="WS-UsernameToken Created accepted within +- this")
    max_body_bytes: int = Field(256 * 1024, ge=4096, le=4 * 1024 * 1024, description="largest SOAP request accepted")
    auth_free_failures: int = Field(3, ge=0, le=100, description="failed logins per address before answers slow down")
    auth_delay_max_s: float = Field(5.0, ge=0, le=60, description="longest delay added to a failed login")
    max_subscriptions: int = Field(8, ge=1, le=100, description="event subscriptions (PullPoint and push) alive at once")
    max_subscriptions_per_client: int = Field(4, ge=1, le=100, description="subscriptions one address may hold; "
                                              "its next one ends its oldest (a reconnect loop cannot take every slot)")
    subscription_default_s: int = Field(60, ge=5, le=86400)
    subscription_max_s: int = Field(3600, ge=10, le=86400, description="longest termination time granted")
    pull_timeout_max_s: float = Field(20.0, gt=0, le=60, description="PullMessages long-poll cap")
    queue_per_subscription: int = Field(200, ge=10, le=10000)
    motion_mirror: Literal["motion", "alarms", "off"] = Field(
        "motion", description="which sensor alarms also show as motion of the camera (VideoSource/MotionAlarm and "
                              "RuleEngine/CellMotionDetector/Motion) for NVRs that record on motion only: motion "
                              "sensors, every alarm, or none")
    push_timeout_s: float = Field(5.0, gt=0, le=60, description="a push subscription's Notify POST gives up after this long")

    @field_validator("extra_scopes")
    @classmethod
    def _scopes_are_uris(cls, v: list[str]) -> list[str]:
        for s in v:
            if " " in s or "://" not in s:
                raise ValueError(f"scope {s!r} must be a URI without spaces (e.g. onvif://www.onvif.org/location/lab)")
        return v
