"""Media service ver10 (http://www.onvif.org/ver10/media/wsdl): one H.264 profile per
configured resolution of the video component, with the full configuration fields strict
clients (UniFi Protect, Blue Iris) check: RateControl, H264 GovLength/Profile, Multicast,
SessionTimeout. Stream and snapshot URIs use the address the client asked on."""

from __future__ import annotations

from typing import Any

from . import ns as nsmod
from .core import Core
from .ns import E
from .soap import Dispatcher, SoapRequest, SoapFault, receiver, sender

TRT = nsmod.NS["trt"]
SOURCE_TOKEN = "dashboard_source"
SOURCE_CONFIG_TOKEN = "dashboard_source_config"
SESSION_TIMEOUT = "PT60S"


DEFAULT_H264_PROFILE = "Baseline"  # x264 with tune=zerolatency here; VideoProfile may say otherwise


def _h264_profile(p: Any, video: Any) -> str:
    """The H.264 profile in the stream: ``h264_profile`` on the VideoProfile or the video
    component when they carry one (v4l2h264enc on a Pi 4 makes High), else Baseline."""
    v = getattr(p, "h264_profile", None) or getattr(video, "h264_profile", None) or DEFAULT_H264_PROFILE
    v = str(v).replace("Constrained ", "").capitalize()
    return v if v in ("Baseline", "Main", "Extended", "High") else DEFAULT_H264_PROFILE


def _enc_token(profile_token: str) -> str:
    return f"{profile_token}_h264"


class MediaService:
    def __init__(self, core: Core):
        self.core = core

    def register(self, d: Dispatcher) -> None:
        for name in (
            "GetServiceCapabilities", "GetProfiles", "GetProfile", "GetVideoSources",
            "GetVideoSourceConfigurations", "GetVideoSourceConfiguration", "GetCompatibleVideoSourceConfigurations",
            "GetVideoSourceConfigurationOptions", "GetVideoEncoderConfigurations", "GetVideoEncoderConfiguration",
            "GetCompatibleVideoEncoderConfigurations", "GetVideoEncoderConfigurationOptions", "GetStreamUri",
            "GetSnapshotUri", "GetGuaranteedNumberOfVideoEncoderInstances", "GetAudioSources",
            "GetAudioEncoderConfigurations", "GetMetadataConfigurations", "GetVideoAnalyticsConfigurations",
        ):
            d.register(TRT, name, getattr(self, name))

    # ---- model ----------------------------------------------------------------------
    def profiles(self) -> list[Any]:
        video = self.core.video
        if video is None:
            return []
        p = video.profiles
        return list(p() if callable(p) else p)

    def _profile(self, token: str | None) -> Any:
        if not token:
            raise sender("ProfileToken is required", "ter:InvalidArgVal", "ter:NoProfile")
        for p in self.profiles():
            if p.token == token:
                return p
        raise sender(f"no media profile {token!r}", "ter:InvalidArgVal", "ter:NoProfile")

    def _max_source(self) -> tuple[int, int, float]:
        ps = self.profiles()
        if not ps:
            return 0, 0, 0.0
        best = max(ps, key=lambda p: p.width * p.height)
        return best.width, best.height, max(float(p.fps) for p in ps)

    def _source_config(self, tag: str = "tt:VideoSourceConfiguration"):
        w, h, _ = self._max_source()
        return E(tag, E("tt:Name", "dashboard"), E("tt:UseCount", max(1, len(self.profiles()))),
                 E("tt:SourceToken", SOURCE_TOKEN), E("tt:Bounds", x=0, y=0, width=w, height=h),
                 token=SOURCE_CONFIG_TOKEN)

    def _encoder_config(self, p: Any, tag: str = "tt:VideoEncoderConfiguration"):
        fps = max(1, int(round(float(p.fps))))
        return E(
            tag,
            E("tt:Name", f"H.264 {p.width}x{p.height}"),
            E("tt:UseCount", 1),
            E("tt:Encoding", "H264"),
            E("tt:Resolution", E("tt:Width", p.width), E("tt:Height", p.height)),
            E("tt:Quality", 5),
            E("tt:RateControl", E("tt:FrameRateLimit", fps), E("tt:EncodingInterval", 1),
              E("tt:BitrateLimit", int(p.bitrate_kbps))),
            E("tt:H264", E("tt:GovLength", int(p.gov_length)), E("tt:H264Profile", _h264_profile(p, self.core.video))),
            E("tt:Multicast", E("tt:Address", E("tt:Type", "IPv4"), E("tt:IPv4Address", "0.0.0.0")),
              E("tt:Port", 0), E("tt:TTL", 1), E("tt:AutoStart", False)),
            E("tt:SessionTimeout", SESSION_TIMEOUT),
            token=_enc_token(p.token),
        )

    def _profile_el(self, p: Any, tag: str):
        return E(tag, E("tt:Name", f"{p.token} {p.width}x{p.height}"), self._source_config(), self._encoder_config(p),
                 token=p.token, fixed=True)

    def capabilities_element(self):
        return E("trt:Capabilities",
                 E("trt:ProfileCapabilities", MaximumNumberOfProfiles=max(1, len(self.profiles()))),
                 E("trt:StreamingCapabilities", RTPMulticast=False, RTP_TCP=True, RTP_RTSP_TCP=True,
                   NonAggregateControl=False, NoRTSPStreaming=False),
                 SnapshotUri=True, Rotation=False, VideoSourceMode=False, OSD=False)

    # ---- operations -----------------------------------------------------------------
    async def GetServiceCapabilities(self, req: SoapRequest):
        return E("trt:GetServiceCapabilitiesResponse", self.capabilities_element())

    async def GetProfiles(self, req: SoapRequest):
        return E("trt:GetProfilesResponse", [self._profile_el(p, "trt:Profiles") for p in self.profiles()])

    async def GetProfile(self, req: SoapRequest):
        return E("trt:GetProfileResponse", self._profile_el(self._profile(req.param("ProfileToken")), "trt:Profile"))

    async def GetVideoSources(self, req: SoapRequest):
        w, h, fps = self._max_source()
        if not w:
            return E("trt:GetVideoSourcesResponse")
        return E("trt:GetVideoSourcesResponse", E("trt:VideoSources", E("tt:Framerate", fps),
                                                  E("tt:Resolution", E("tt:Width", w), E("tt:Height", h)),
                                                  token=SOURCE_TOKEN))

    async def GetVideoSourceConfigurations(self, req: SoapRequest):
        items = [self._source_config("trt:Configurations")] if self.profiles() else []
        return E("trt:GetVideoSourceConfigurationsResponse", items)

    async def GetCompatibleVideoSourceConfigurations(self, req: SoapRequest):
        self._profile(req.param("ProfileToken"))
        return E("trt:GetCompatibleVideoSourceConfigurationsResponse", self._source_config("trt:Configurations"))

    async def GetVideoSourceConfiguration(self, req: SoapRequest):
        token = req.param("ConfigurationToken")
        if token != SOURCE_CONFIG_TOKEN or not self.profiles():
            raise sender(f"no video source configuration {token!r}", "ter:InvalidArgVal", "ter:NoConfig")
        return E("trt:GetVideoSourceConfigurationResponse", self._source_config("trt:Configuration"))

    async def GetVideoSourceConfigurationOptions(self, req: SoapRequest):
        w, h, _ = self._max_source()
        rng = lambda lo, hi: [E("tt:Min", lo), E("tt:Max", hi)]  # noqa: E731
        return E("trt:GetVideoSourceConfigurationOptionsResponse", E(
            "trt:Options",
            E("tt:BoundsRange", E("tt:XRange", rng(0, 0)), E("tt:YRange", rng(0, 0)), E("tt:WidthRange", rng(w, w)),
              E("tt:HeightRange", rng(h, h))),
            E("tt:VideoSourceTokensAvailable", SOURCE_TOKEN),
        ))

    async def GetVideoEncoderConfigurations(self, req: SoapRequest):
        return E("trt:GetVideoEncoderConfigurationsResponse",
                 [self._encoder_config(p, "trt:Configurations") for p in self.profiles()])

    async def GetCompatibleVideoEncoderConfigurations(self, req: SoapRequest):
        p = self._profile(req.param("ProfileToken"))
        return E("trt:GetCompatibleVideoEncoderConfigurationsResponse", self._encoder_config(p, "trt:Configurations"))

    def _by_encoder_token(self, token: str | None) -> Any:
        for p in self.profiles():
            if _enc_token(p.token) == token:
                return p
        raise sender(f"no video encoder configuration {token!r}", "ter:InvalidArgVal", "ter:NoConfig")

    async def GetVideoEncoderConfiguration(self, req: SoapRequest):
        p = self._by_encoder_token(req.param("ConfigurationToken"))
        return E("trt:GetVideoEncoderConfigurationResponse", self._encoder_config(p, "trt:Configuration"))

    async def GetVideoEncoderConfigurationOptions(self, req: SoapRequest):
        token = req.param("ConfigurationToken")
        profiles = [self._by_encoder_token(token)] if token else (
            [self._profile(req.param("ProfileToken"))] if req.param("ProfileToken") else self.profiles())
        if not profiles:
            raise receiver("the video stream is not running", "ter:Action")
        fps = [max(1, int(round(float(p.fps)))) for p in profiles]
        gov = [int(p.gov_length) for p in profiles]
        rng = lambda lo, hi: [E("tt:Min", lo), E("tt:Max", hi)]  # noqa: E731
        return E("trt:GetVideoEncoderConfigurationOptionsResponse", E(
            "trt:Options",
            E("tt:QualityRange", rng(5, 5)),
            E("tt:H264",
              [E("tt:ResolutionsAvailable", E("tt:Width", p.width), E("tt:Height", p.height)) for p in profiles],
              E("tt:GovLengthRange", rng(min(gov), max(gov))),
              E("tt:FrameRateRange", rng(min(fps), max(fps))),
              E("tt:EncodingIntervalRange", rng(1, 1)),
              [E("tt:H264ProfilesSupported", x) for x in dict.fromkeys(_h264_profile(p, self.core.video)
                                                                      for p in profiles)]),
        ))

    async def GetGuaranteedNumberOfVideoEncoderInstances(self, req: SoapRequest):
        token = req.param("ConfigurationToken")
        if token != SOURCE_CONFIG_TOKEN and token not in {_enc_token(p.token) for p in self.profiles()}:
            raise sender(f"no video source configuration {token!r}", "ter:InvalidArgVal", "ter:NoConfig")
        n = max(1, len(self.profiles()))
        return E("trt:GetGuaranteedNumberOfVideoEncoderInstancesResponse", E("trt:TotalNumber", n), E("trt:H264", n))

    async def GetStreamUri(self, req: SoapRequest):
        p = self._profile(req.param("ProfileToken"))
        setup = req.param_el("StreamSetup")
        stream = nsmod.text_anyns(setup, "Stream") if setup is not None else None
        transport = nsmod.find_anyns(setup, "Transport") if setup is not None else None
        protocol = nsmod.text_anyns(transport, "Protocol") if transport is not None else None
        if stream and stream != "RTP-Unicast":
            raise sender(f"stream type {stream!r} is not offered (RTP-Unicast is)", "ter:InvalidArgVal",
                         "ter:InvalidStreamSetup")
        if protocol and protocol not in ("RTSP", "UDP", "TCP"):
            raise sender(f"transport {protocol!r} is not offered (RTSP, UDP, TCP are)", "ter:InvalidArgVal",
                         "ter:InvalidStreamSetup")
        video = self.core.video
        if video is None:
            raise receiver("the video stream is not running", "ter:Action")
        try:
            uri = video.stream_uri(req.hostname)
        except Exception as exc:  # noqa: BLE001
            raise SoapFault("Receiver", ("ter:Action",), f"no stream URI: {exc}") from None
        del p
        return E("trt:GetStreamUriResponse", self._media_uri(uri))

    async def GetSnapshotUri(self, req: SoapRequest):
        self._profile(req.param("ProfileToken"))
        video = self.core.video
        path = getattr(video, "snapshot_path", None) if video is not None else None
        if not path:
            raise receiver("snapshots are not available", "ter:Action")
        return E("trt:GetSnapshotUriResponse", self._media_uri(f"http://{req.host}{path}"))

    @staticmethod
    def _media_uri(uri: str):
        return E("trt:MediaUri", E("tt:Uri", uri), E("tt:InvalidAfterConnect", False),
                 E("tt:InvalidAfterReboot", False), E("tt:Timeout", "PT0S"))

    # ---- empty lists for what a dashboard camera does not have ------------------------
    async def GetAudioSources(self, req: SoapRequest):
        return E("trt:GetAudioSourcesResponse")

    async def GetAudioEncoderConfigurations(self, req: SoapRequest):
        return E("trt:GetAudioEncoderConfigurationsResponse")

    async def GetMetadataConfigurations(self, req: SoapRequest):
        return E("trt:GetMetadataConfigurationsResponse")

    async def GetVideoAnalyticsConfigurations(self, req: SoapRequest):
        return E("trt:GetVideoAnalyticsConfigurationsResponse")
