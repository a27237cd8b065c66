"""What the ONVIF services share: paths, addresses, scopes, and the ways to reach the rest of
edge (relays, video, sensors) through the registry (``edge.interfaces``) and the config."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote

from .. import __version__ as edge_version
from ..interfaces import RELAYS, VIDEO
from . import kept
from .soap import SoapRequest

if TYPE_CHECKING:
    from ..context import Context

DEVICE_PATH = "/onvif/device_service"
MEDIA_PATH = "/onvif/media_service"
EVENTS_PATH = "/onvif/events_service"
DEVICEIO_PATH = "/onvif/deviceio_service"
IMAGING_PATH = "/onvif/imaging_service"
PULLPOINT_PATH = "/onvif/pullpoint"
SUBSCRIPTION_PATH = "/onvif/subscription"  # WS-BaseNotification (push) subscription manager
PATHS = (DEVICE_PATH, MEDIA_PATH, EVENTS_PATH, DEVICEIO_PATH, IMAGING_PATH, PULLPOINT_PATH, SUBSCRIPTION_PATH)

SCOPE_BASE = "onvif://www.onvif.org/"


def scope_value(text: str) -> str:
    """A scope path segment: no spaces, no slashes, percent-encoded."""
    return quote(text.strip(), safe="-_.~")


@dataclass
class RelaySettings:
    mode: str  # "Monostable" | "Bistable"
    delay_s: float
    idle: str  # "open" | "closed"


class Core:
    def __init__(self, ctx: "Context", supervisor_ref: Callable[[], Any] | None = None):
        self.ctx = ctx
        self.cfg = ctx.config.onvif
        self.supervisor_ref = supervisor_ref or (lambda: None)
        # what SetRelayOutputSettings set, kept in the data dir (edge/onvif/kept.py)
        self.relay_settings: dict[str, RelaySettings] = {
            name: RelaySettings(v["mode"], v["delay_s"], v["idle"])
            for name, v in kept.load_relay_settings(getattr(ctx, "data_dir", None)).items()}
        self.discoverable = self.cfg.discovery
        self.events: Any = None  # events.EventHub, set by the component
        self.version = edge_version

    # ---- addresses ------------------------------------------------------------------
    def xaddr(self, req: SoapRequest, path: str) -> str:
        return f"http://{req.host}{path}"

    def device_xaddr_on(self, ip: str) -> str:
        port = self.ctx.config.web.port
        host = f"[{ip}]" if ":" in ip else ip
        return f"http://{host}{'' if port == 80 else f':{port}'}{DEVICE_PATH}"

    # ---- identity -------------------------------------------------------------------
    def name(self) -> str:
        return self.cfg.name or self.ctx.config.site.name

    def location(self) -> str:
        return self.cfg.location if self.cfg.location is not None else self.ctx.config.site.location

    def scopes(self) -> list[str]:
        s = [
            SCOPE_BASE + "type/video_encoder",
            SCOPE_BASE + "type/NetworkVideoTransmitter",
            SCOPE_BASE + "Profile/Streaming",
            SCOPE_BASE + "name/" + scope_value(self.name()),
            SCOPE_BASE + "hardware/" + scope_value(self.cfg.hardware),
        ]
        loc = self.location()
        if loc:
            s.append(SCOPE_BASE + "location/" + scope_value(loc))
        s.extend(self.cfg.extra_scopes)
        return s

    def fixed_scopes(self) -> set[str]:
        return set(self.scopes()) - set(self.cfg.extra_scopes)

    # ---- the rest of edge -----------------------------------------------------------
    @property
    def relays(self) -> Any:
        return self.ctx.registry.get(RELAYS)

    @property
    def video(self) -> Any:
        return self.ctx.registry.get(VIDEO)

    def sensors(self) -> list[Any]:
        return list(getattr(self.ctx.config, "sensors", None) or [])

    def sensor_kind(self, sensor_id: str) -> str:
        for s in self.sensors():
            if getattr(s, "id", None) == sensor_id:
                return str(getattr(s, "kind", ""))
        return ""

    def relay_names(self) -> list[str]:
        r = self.relays
        if r is None:
            return []
        try:
            return list(r.names())
        except Exception:  # noqa: BLE001
            return []

    def relay_info(self) -> list[Any]:
        r = self.relays
        if r is None:
            return []
        try:
            return list(r.describe())
        except Exception:  # noqa: BLE001
            return []

    def save_relay_settings(self) -> None:
        """Blocking (a file write): keep the relay settings for the next start."""
        kept.save_relay_settings(getattr(self.ctx, "data_dir", None),
                                 {name: asdict(s) for name, s in self.relay_settings.items()})

    def settings_for(self, name: str, info: Any = None) -> RelaySettings:
        s = self.relay_settings.get(name)
        if s is None:
            mode = str(getattr(info, "mode", "") or "").lower()
            bistable = mode in ("latch", "follow", "bistable", "toggle")
            pulse_ms = getattr(info, "pulse_ms", 0) or 0
            delay = 0.0 if bistable else (pulse_ms / 1000 if pulse_ms > 0 else 1.0)
            s = RelaySettings("Bistable" if bistable else "Monostable", delay, "open")
        return s
