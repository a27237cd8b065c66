"""Media service ver10 (http://www.onvif.org/ver10/media/wsdl): one fixed H.264 profile per
stream of the video component (the main stream and the substream), with the full
configuration fields strict clients (UniFi Protect, Blue Iris) check: RateControl, H264
GovLength/Profile, Multicast, SessionTimeout. Stream and snapshot URIs use the address the
client asked on.

SetVideoEncoderConfiguration changes a stream within what the video component offers
(GetVideoEncoderConfigurationOptions); the change is kept across restarts (by the video
component, in the data dir). Profiles are fixed: CreateProfile answers ``ter:MaxNVTProfiles``
(open before login: Synology sends it without credentials and shows "wrong password" for an
auth fault), DeleteProfile ``ter:DeletionOfFixedProfile``. What a dashboard camera does not
have (audio, OSD, metadata) is answered by edge/onvif/probes.py."""

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


QUALITY = 5  # x264 is driven by the bitrate here: one quality level, reported as it is
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
            "GetSnapshotUri", "GetGuaranteedNumberOfVideoEncoderInstances", "SetVideoEncoderConfiguration",
            "SetVideoSourceConfiguration", "SetSynchronizationPoint", "DeleteProfile",
        ):
            d.register(TRT, name, getattr(self, name))
        d.register(TRT, "CreateProfile", self.CreateProfile, public=True)

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
            E("tt:Quality", QUALITY),
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

    def _options(self, p: Any) -> Any:
        video = self.core.video
        opts = getattr(video, "encoder_options", None)
        if opts is None:
            return None
        return opts(p.token)

    async def GetVideoEncoderConfigurationOptions(self, req: SoapRequest):
        token = req.param("ConfigurationToken")
        profiles = [self._by_encoder_token(token)] if token else (
            [self._profile(req.param("ProfileToken"))] if req.param("ProfileToken") else self.profiles())
        if not profiles:
            raise receiver("the video stream is not running", "ter:Action")
        sizes: list[tuple[int, int]] = []
        fps_lo, fps_hi, gov_lo, gov_hi = 1e9, 0.0, 10 ** 9, 0
        for p in profiles:
            o = self._options(p)
            if o is None:
                sizes.append((p.width, p.height))
                f, g = max(1.0, round(float(p.fps))), int(p.gov_length)
                fps_lo, fps_hi, gov_lo, gov_hi = min(fps_lo, f), max(fps_hi, f), min(gov_lo, g), max(gov_hi, g)
                continue
            sizes.extend(o.sizes)
            fps_lo, fps_hi = min(fps_lo, max(1.0, o.fps[0])), max(fps_hi, o.fps[1])
            gov_lo, gov_hi = min(gov_lo, o.gov_length[0]), max(gov_hi, o.gov_length[1])
        rng = lambda lo, hi: [E("tt:Min", lo), E("tt:Max", hi)]  # noqa: E731
        return E("trt:GetVideoEncoderConfigurationOptionsResponse", E(
            "trt:Options",
            E("tt:QualityRange", rng(QUALITY, QUALITY)),
            E("tt:H264",
              [E("tt:ResolutionsAvailable", E("tt:Width", w), E("tt:Height", h)) for w, h in dict.fromkeys(sizes)],
              E("tt:GovLengthRange", rng(gov_lo, gov_hi)),
              E("tt:FrameRateRange", rng(int(round(fps_lo)), int(round(fps_hi)))),
              E("tt:EncodingIntervalRange", rng(1, 1)),
              [E("tt:H264ProfilesSupported", x) for x in dict.fromkeys(_h264_profile(p, self.core.video)
                                                                      for p in profiles)]),
        ))

    async def SetVideoEncoderConfiguration(self, req: SoapRequest):
        cfg = req.param_el("Configuration")
        if cfg is None:
            raise sender("Configuration is required", "ter:InvalidArgVal")
        p = self._by_encoder_token(cfg.get("token"))
        video = self.core.video
        if video is None or not hasattr(video, "configure"):
            raise receiver("the video stream cannot be changed here", "ter:Action")
        new = parse_encoder_configuration(cfg, p, _h264_profile(p, video))
        try:
            await video.configure(p.token, **new)
        except ValueError as exc:
            if getattr(exc, "conflict", False):
                raise SoapFault("Receiver", ("ter:Action", "ter:ConfigurationConflict"), str(exc)) from None
            raise SoapFault("Sender", ("ter:InvalidArgVal", "ter:ConfigModify"), str(exc)) from None
        return E("trt:SetVideoEncoderConfigurationResponse")

    async def SetVideoSourceConfiguration(self, req: SoapRequest):
        cfg = req.param_el("Configuration")
        if cfg is None or cfg.get("token") != SOURCE_CONFIG_TOKEN or not self.profiles():
            raise sender("no such video source configuration", "ter:InvalidArgVal", "ter:NoConfig")
        source = nsmod.text_anyns(cfg, "SourceToken")
        bounds = nsmod.find_anyns(cfg, "Bounds")
        w, h, _ = self._max_source()
        if source not in (None, SOURCE_TOKEN) or (bounds is not None and (
                bounds.get("x", "0"), bounds.get("y", "0"), bounds.get("width"), bounds.get("height")) != ("0", "0", str(w), str(h))):
            raise SoapFault("Sender", ("ter:InvalidArgVal", "ter:ConfigModify"),
                            f"the dashboard source is fixed: {SOURCE_TOKEN}, bounds 0,0 {w}x{h}")
        return E("trt:SetVideoSourceConfigurationResponse")

    async def SetSynchronizationPoint(self, req: SoapRequest):
        self._profile(req.param("ProfileToken"))
        video = self.core.video
        if video is not None and hasattr(video, "request_keyframe"):
            video.request_keyframe()
        return E("trt:SetSynchronizationPointResponse")

    async def CreateProfile(self, req: SoapRequest):
        n = len(self.profiles())
        raise SoapFault("Receiver", ("ter:Action", "ter:MaxNVTProfiles"),
                        f"the device has {n} fixed profiles and cannot create more; use "
                        + ", ".join(p.token for p in self.profiles()))

    async def DeleteProfile(self, req: SoapRequest):
        p = self._profile(req.param("ProfileToken"))
        raise sender(f"profile {p.token} is fixed", "ter:InvalidArgVal", "ter:DeletionOfFixedProfile")

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
            uri = video.stream_uri(req.hostname, p.token)
        except Exception as exc:  # noqa: BLE001
            raise SoapFault("Receiver", ("ter:Action",), f"no stream URI: {exc}") from None
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


def _int(el: Any, name: str, current: int) -> int:
    text = nsmod.text_anyns(el, name) if el is not None else None
    if text is None or text == "":
        return current
    try:
        return int(float(text))
    except ValueError:
        raise sender(f"{name} {text[:20]!r} is not a number", "ter:InvalidArgVal") from None


def parse_encoder_configuration(cfg: Any, p: Any, h264_profile: str) -> dict[str, Any]:
    """The settings a SetVideoEncoderConfiguration asks for (absent fields keep their values).
    What the device cannot do at all is refused here; ranges are the video component's."""
    encoding = nsmod.text_anyns(cfg, "Encoding")
    if encoding not in (None, "H264"):
        raise SoapFault("Sender", ("ter:InvalidArgVal", "ter:ConfigModify"), f"encoding {encoding[:20]!r}: only H264 is offered")
    quality = nsmod.text_anyns(cfg, "Quality")
    if quality:
        try:
            q = float(quality)
        except ValueError:
            raise sender(f"Quality {quality[:20]!r} is not a number", "ter:InvalidArgVal") from None
        if q != QUALITY:
            raise SoapFault("Sender", ("ter:InvalidArgVal", "ter:ConfigModify"),
                            f"Quality {q:g} is not offered (QualityRange {QUALITY}-{QUALITY}: the bitrate sets the quality)")
    res = nsmod.find_anyns(cfg, "Resolution")
    rate = nsmod.find_anyns(cfg, "RateControl")
    h264 = nsmod.find_anyns(cfg, "H264")
    if rate is not None and _int(rate, "EncodingInterval", 1) != 1:
        raise SoapFault("Sender", ("ter:InvalidArgVal", "ter:ConfigModify"), "EncodingInterval must be 1")
    prof = nsmod.text_anyns(h264, "H264Profile") if h264 is not None else None
    if prof and prof != h264_profile:
        raise SoapFault("Sender", ("ter:InvalidArgVal", "ter:ConfigModify"),
                        f"H264Profile {prof[:20]!r} is not offered ({h264_profile} is)")
    fps_now = max(1, int(round(float(p.fps))))
    fps = _int(rate, "FrameRateLimit", fps_now)
    return {
        "width": _int(res, "Width", p.width),
        "height": _int(res, "Height", p.height),
        # an unchanged FrameRateLimit keeps a fractional idle rate as it is
        "fps": float(p.fps) if fps == fps_now else float(fps),
        "bitrate_kbps": _int(rate, "BitrateLimit", int(p.bitrate_kbps)),
        "gov_length": _int(h264, "GovLength", int(p.gov_length)),
    }
