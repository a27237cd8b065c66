"""Valid empty or default answers for what NVRs probe while adding a camera, about things a
dashboard camera does not have (audio, OSD, metadata, analytics, a gateway of its own).

A fault on any of these makes some recorders give up: Hikvision marks the camera offline or
shows "Parameter error" after a fault on GetOSDOptions (go2rtc#1299, rpos#167); the replay
tests (tests/onvif_captures/) send what real NVRs sent. Operations that name a configuration
or OSD the device does not have still fault (``ter:NoConfig``): the answer "there is none" is
the empty list, not a made-up item. Unknown operations still fault ``ter:ActionNotSupported``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from pathlib import Path

from . import netinfo
from . import ns as nsmod
from .core import Core
from .ns import E
from .soap import Dispatcher, SoapRequest, sender

log = logging.getLogger("edge.onvif.probes")

TRT = nsmod.NS["trt"]
TDS = nsmod.NS["tds"]

# Media: lists of what is not there
EMPTY_MEDIA_LISTS = (
    "GetAudioSources", "GetAudioOutputs", "GetAudioSourceConfigurations", "GetAudioEncoderConfigurations",
    "GetAudioOutputConfigurations", "GetAudioDecoderConfigurations", "GetMetadataConfigurations",
    "GetVideoAnalyticsConfigurations", "GetCompatibleAudioSourceConfigurations",
    "GetCompatibleAudioEncoderConfigurations", "GetCompatibleAudioOutputConfigurations",
    "GetCompatibleAudioDecoderConfigurations", "GetCompatibleMetadataConfigurations",
    "GetCompatibleVideoAnalyticsConfigurations", "GetOSDs",
)
# Media: a configuration token of a kind the device has none of
NO_SUCH_CONFIG = (
    "GetAudioSourceConfiguration", "GetAudioEncoderConfiguration", "GetAudioOutputConfiguration",
    "GetAudioDecoderConfiguration", "GetMetadataConfiguration", "GetVideoAnalyticsConfiguration", "GetOSD",
    "GetAudioSourceConfigurationOptions",  # its answer must name an audio input: there is none
)


class Probes:
    def __init__(self, core: Core):
        self.core = core

    def register(self, d: Dispatcher) -> None:
        for name in EMPTY_MEDIA_LISTS:
            d.register(TRT, name, self._empty(f"trt:{name}Response"))
        for name in NO_SUCH_CONFIG:
            d.register(TRT, name, self._none(name))
        for name in ("GetOSDOptions", "GetAudioEncoderConfigurationOptions", "GetMetadataConfigurationOptions"):
            d.register(TRT, name, getattr(self, name))
        for name in ("GetNetworkDefaultGateway", "GetZeroConfiguration", "SetSystemDateAndTime", "GetSystemUris"):
            d.register(TDS, name, getattr(self, name))

    @staticmethod
    def _empty(tag: str):
        async def handler(req: SoapRequest):
            return E(tag)
        return handler

    @staticmethod
    def _none(name: str):
        what = name[3:]

        async def handler(req: SoapRequest):
            token = req.param("ConfigurationToken") or req.param("OSDToken") or ""
            raise sender(f"no {what} {token[:64]!r}: the dashboard camera has none", "ter:InvalidArgVal", "ter:NoConfig")
        return handler

    # ---- media options ----------------------------------------------------------------
    async def GetOSDOptions(self, req: SoapRequest):
        # no OSD can be created (capabilities say OSD=false): at most 0 of them
        return E("trt:GetOSDOptionsResponse", E(
            "trt:OSDOptions",
            E("tt:MaximumNumberOfOSDs", Total=0, PlainText=0),
            E("tt:Type", "Text"),
            E("tt:PositionOption", "UpperLeft"),
            E("tt:TextOption", E("tt:Type", "Plain")),
        ))

    async def GetAudioEncoderConfigurationOptions(self, req: SoapRequest):
        return E("trt:GetAudioEncoderConfigurationOptionsResponse", E("trt:Options"))

    async def GetMetadataConfigurationOptions(self, req: SoapRequest):
        return E("trt:GetMetadataConfigurationOptionsResponse", E("trt:Options", E("tt:PTZStatusFilterOptions",
                                                                                   E("tt:PanTiltStatusSupported", False),
                                                                                   E("tt:ZoomStatusSupported", False))))

    # ---- device -----------------------------------------------------------------------
    async def GetNetworkDefaultGateway(self, req: SoapRequest):
        gateways = await asyncio.to_thread(default_gateways)
        return E("tds:GetNetworkDefaultGatewayResponse",
                 E("tds:NetworkGateway", [E("tt:IPv4Address", g) for g in gateways]))

    async def GetZeroConfiguration(self, req: SoapRequest):
        itfs = await asyncio.to_thread(netinfo.interfaces)
        name = next((i.name for i in itfs if not i.loopback), "eth0")
        return E("tds:GetZeroConfigurationResponse",
                 E("tds:ZeroConfiguration", E("tt:InterfaceToken", name), E("tt:Enabled", False)))

    async def SetSystemDateAndTime(self, req: SoapRequest):
        # NVRs push their clock while adding a camera. The appliance keeps its clock with NTP
        # (GetSystemDateAndTime says so), so the request is accepted and the clock left alone.
        kind = req.param("DateTimeType") or "?"
        log.info("SetSystemDateAndTime (%s) from %s accepted; the clock stays on NTP", kind[:20], req.http.remote)
        return E("tds:SetSystemDateAndTimeResponse")

    async def GetSystemUris(self, req: SoapRequest):
        return E("tds:GetSystemUrisResponse")


def default_gateways(route_file: Path = Path("/proc/net/route")) -> list[str]:
    """IPv4 default gateways from the kernel's routing table."""
    out: list[str] = []
    try:
        lines = route_file.read_text().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        f = line.split()
        if len(f) >= 3 and f[1] == "00000000" and f[2] != "00000000":
            try:
                gw = socket.inet_ntoa(struct.pack("<L", int(f[2], 16)))
            except (ValueError, OSError, struct.error):
                continue
            if gw not in out:
                out.append(gw)
    return out[:4]
