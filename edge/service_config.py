"""The service's own config sections: ``[site]`` and ``[service]``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .section import Section


class SiteConfig(Section):
    name: str = Field("edge", min_length=1, max_length=64, description="site name on the dashboard header")
    location: str = ""


class ServiceConfig(Section):
    loop_lag_max_ms: int = Field(500, ge=10, description="watchdog pings stop above this loop lag")
    critical_down_max_s: float = Field(30.0, gt=0, le=3600,
                                       description="watchdog pings stop once a critical component (the relays) "
                                                   "has been down this long")
    restart_backoff_initial_s: float = Field(0.5, gt=0)
    restart_backoff_max_s: float = Field(30.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    system: Literal["auto", "systemd", "simulated"] = Field(
        "auto", description="reboot and factory reset: auto = the platform's (simulated with --simulated and in "
                            "the demo), systemd = the machine's (through edge-ctl.service on the appliance)")
