"""Imaging service ver20 (http://www.onvif.org/ver20/imaging/wsdl) for the one video source.

The dashboard is drawn, not filmed: there is no exposure, focus or brightness to adjust.
NVRs still read the imaging settings and options while adding a camera (Hikvision, the
Uniview recorder in tests/onvif_captures/) and some send SetImagingSettings as part of their
attach sequence (Genius Vision), so every call answers: the settings and options are empty
(nothing adjustable), SetImagingSettings is accepted and changes nothing (logged; a following
GetImagingSettings shows the truth), the focus never moves. A token other than the video
source's is ``ter:NoSource``.
"""

from __future__ import annotations

import logging

from . import ns as nsmod
from .core import Core
from .media import SOURCE_TOKEN
from .ns import E
from .soap import Dispatcher, SoapRequest, sender

log = logging.getLogger("edge.onvif.imaging")

TIMG = nsmod.NS["timg"]


class ImagingService:
    def __init__(self, core: Core):
        self.core = core

    def register(self, d: Dispatcher) -> None:
        for name in ("GetServiceCapabilities", "GetImagingSettings", "SetImagingSettings", "GetOptions",
                     "GetMoveOptions", "GetStatus", "Stop"):
            d.register(TIMG, name, getattr(self, name))

    def capabilities_element(self):
        return E("timg:Capabilities", ImageStabilization=False)

    def _source(self, req: SoapRequest) -> str:
        token = req.param("VideoSourceToken")
        if token != SOURCE_TOKEN:
            raise sender(f"no video source {(token or '')[:64]!r} (the one source is {SOURCE_TOKEN})",
                         "ter:InvalidArgVal", "ter:NoSource")
        return token

    async def GetServiceCapabilities(self, req: SoapRequest):
        return E("timg:GetServiceCapabilitiesResponse", self.capabilities_element())

    async def GetImagingSettings(self, req: SoapRequest):
        self._source(req)
        return E("timg:GetImagingSettingsResponse", E("timg:ImagingSettings"))

    async def SetImagingSettings(self, req: SoapRequest):
        self._source(req)
        if req.param_el("ImagingSettings") is None:
            raise sender("ImagingSettings is required", "ter:InvalidArgVal")
        log.info("SetImagingSettings from %s accepted: a drawn dashboard has nothing to adjust", req.http.remote)
        return E("timg:SetImagingSettingsResponse")

    async def GetOptions(self, req: SoapRequest):
        self._source(req)
        return E("timg:GetOptionsResponse", E("timg:ImagingOptions"))

    async def GetMoveOptions(self, req: SoapRequest):
        self._source(req)
        return E("timg:GetMoveOptionsResponse", E("timg:MoveOptions"))

    async def GetStatus(self, req: SoapRequest):
        self._source(req)
        return E("timg:GetStatusResponse", E("timg:Status"))

    async def Stop(self, req: SoapRequest):
        self._source(req)
        return E("timg:StopResponse")
