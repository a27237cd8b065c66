"""Device service (http://www.onvif.org/ver10/device/wsdl)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from pathlib import Path

from . import netinfo
from . import ns as nsmod
from .core import DEVICE_PATH, DEVICEIO_PATH, EVENTS_PATH, IMAGING_PATH, MEDIA_PATH, Core
from .ns import E
from .soap import Dispatcher, SoapRequest, sender

log = logging.getLogger("edge.onvif.device")

TDS = nsmod.NS["tds"]
SERVICE_VERSION = (2, 60)


def _tt_datetime(t: time.struct_time):
    return [
        E("tt:Time", E("tt:Hour", t.tm_hour), E("tt:Minute", t.tm_min), E("tt:Second", t.tm_sec)),
        E("tt:Date", E("tt:Year", t.tm_year), E("tt:Month", t.tm_mon), E("tt:Day", t.tm_mday)),
    ]


def _posix_tz() -> str:
    """POSIX TZ string for the local zone, e.g. 'CET-1CEST'; 'UTC0' when it is UTC."""
    off = -time.timezone
    std = time.tzname[0] or "UTC"
    if not std.isalpha() or len(std) < 3:
        std = "UTC" if off == 0 else "LST"
    h, m = divmod(abs(off) // 60, 60)
    sign = "-" if off > 0 else ""
    s = f"{std}{sign}{h}" + (f":{m:02d}" if m else "")
    if time.daylight and time.tzname[1] and time.tzname[1].isalpha():
        s += time.tzname[1]
    return s


class DeviceService:
    def __init__(self, core: Core):
        self.core = core

    def register(self, d: Dispatcher) -> None:
        for name in (
            "GetSystemDateAndTime", "GetServices", "GetCapabilities", "GetServiceCapabilities",
            "GetDeviceInformation", "GetNetworkInterfaces", "GetScopes", "GetHostname", "GetDNS",
            "GetNTP", "GetDiscoveryMode", "GetUsers", "SystemReboot", "GetRelayOutputs",
            "SetRelayOutputState", "SetRelayOutputSettings", "GetNetworkProtocols", "GetWsdlUrl",
            "GetEndpointReference",
        ):
            d.register(TDS, name, getattr(self, name))

    # ---- pre-auth ---------------------------------------------------------------------
    async def GetSystemDateAndTime(self, req: SoapRequest):
        now = time.time()
        return E("tds:GetSystemDateAndTimeResponse", E(
            "tds:SystemDateAndTime",
            E("tt:DateTimeType", "NTP"),
            E("tt:DaylightSavings", bool(time.localtime(now).tm_isdst > 0)),
            E("tt:TimeZone", E("tt:TZ", _posix_tz())),
            E("tt:UTCDateTime", _tt_datetime(time.gmtime(now))),
            E("tt:LocalDateTime", _tt_datetime(time.localtime(now))),
        ))

    def service_capabilities(self, namespace: str):
        core = self.core
        if namespace == TDS:
            return E("tds:Capabilities",
                     E("tds:Network", IPFilter=False, ZeroConfiguration=False, IPVersion6=False, DynDNS=False,
                       Dot11Configuration=False, HostnameFromDHCP=False, NTP=0),
                     E("tds:Security", **{"TLS1.0": False, "TLS1.1": False, "TLS1.2": False,
                                          "OnboardKeyGeneration": False, "AccessPolicyConfig": False,
                                          "DefaultAccessPolicy": False, "Dot1X": False, "RemoteUserHandling": False,
                                          "X.509Token": False, "SAMLToken": False, "KerberosToken": False,
                                          "UsernameToken": True, "HttpDigest": True, "RELToken": False, "MaxUsers": 1}),
                     E("tds:System", DiscoveryResolve=True, DiscoveryBye=True, RemoteDiscovery=False,
                       SystemBackup=False, SystemLogging=False, FirmwareUpgrade=False, HttpFirmwareUpgrade=False,
                       HttpSystemBackup=False, HttpSystemLogging=False, HttpSupportInformation=False))
        if namespace == nsmod.NS["trt"]:
            return core.media.capabilities_element()
        if namespace == nsmod.NS["tev"]:
            return core.events.capabilities_element()
        if namespace == nsmod.NS["tmd"]:
            return core.deviceio.capabilities_element()
        if namespace == nsmod.NS["timg"]:
            return core.imaging.capabilities_element()
        return None

    async def GetServices(self, req: SoapRequest):
        include = (req.param("IncludeCapability") or "false").lower() in ("true", "1")
        out = []
        for namespace, path in ((TDS, DEVICE_PATH), (nsmod.NS["trt"], MEDIA_PATH), (nsmod.NS["tev"], EVENTS_PATH),
                                (nsmod.NS["tmd"], DEVICEIO_PATH), (nsmod.NS["timg"], IMAGING_PATH)):
            caps = None
            if include:
                caps = E("tds:Capabilities", self.service_capabilities(namespace))
            out.append(E("tds:Service", E("tds:Namespace", namespace), E("tds:XAddr", self.core.xaddr(req, path)), caps,
                         E("tds:Version", E("tt:Major", SERVICE_VERSION[0]), E("tt:Minor", SERVICE_VERSION[1]))))
        return E("tds:GetServicesResponse", out)

    async def GetServiceCapabilities(self, req: SoapRequest):
        return E("tds:GetServiceCapabilitiesResponse", self.service_capabilities(TDS))

    async def GetCapabilities(self, req: SoapRequest):
        cats = [c.text.strip() for c in req.body if isinstance(c.tag, str) and c.text and c.text.strip()] or ["All"]
        unsupported = [c for c in cats if c not in ("All", "Device", "Events", "Imaging", "Media")]
        if unsupported:
            raise sender(f"capability category {unsupported[0]!r} is not supported (All, Device, Events, Imaging, "
                         "Media are)",
                         "ter:ActionNotSupported", "ter:NoSuchService")
        want = set(cats)
        every = "All" in want
        core = self.core
        n_relays = len(core.relay_names())
        n_inputs = len(core.sensors())
        device = events = imaging = media = ext = None
        if every or "Device" in want:
            device = E(
                "tt:Device",
                E("tt:XAddr", core.xaddr(req, DEVICE_PATH)),
                E("tt:Network", E("tt:IPFilter", False), E("tt:ZeroConfiguration", False), E("tt:IPVersion6", False),
                  E("tt:DynDNS", False)),
                E("tt:System", E("tt:DiscoveryResolve", True), E("tt:DiscoveryBye", True), E("tt:RemoteDiscovery", False),
                  E("tt:SystemBackup", False), E("tt:SystemLogging", False), E("tt:FirmwareUpgrade", False),
                  E("tt:SupportedVersions", E("tt:Major", SERVICE_VERSION[0]), E("tt:Minor", SERVICE_VERSION[1]))),
                E("tt:IO", E("tt:InputConnectors", n_inputs), E("tt:RelayOutputs", n_relays)),
                E("tt:Security", E("tt:TLS1.1", False), E("tt:TLS1.2", False), E("tt:OnboardKeyGeneration", False),
                  E("tt:AccessPolicyConfig", False), E("tt:X.509Token", False), E("tt:SAMLToken", False),
                  E("tt:KerberosToken", False), E("tt:RELToken", False)),
            )
        if every or "Events" in want:
            events = E("tt:Events", E("tt:XAddr", core.xaddr(req, EVENTS_PATH)), E("tt:WSSubscriptionPolicySupport", False),
                       E("tt:WSPullPointSupport", True), E("tt:WSPausableSubscriptionManagerInterfaceSupport", False))
        if every or "Imaging" in want:
            imaging = E("tt:Imaging", E("tt:XAddr", core.xaddr(req, IMAGING_PATH)))
        if every or "Media" in want:
            media = E("tt:Media", E("tt:XAddr", core.xaddr(req, MEDIA_PATH)),
                      E("tt:StreamingCapabilities", E("tt:RTPMulticast", False), E("tt:RTP_TCP", True),
                        E("tt:RTP_RTSP_TCP", True)))
        if every:
            ext = E("tt:Extension", E("tt:DeviceIO", E("tt:XAddr", core.xaddr(req, DEVICEIO_PATH)), E("tt:VideoSources", 1),
                                      E("tt:VideoOutputs", 0), E("tt:AudioSources", 0), E("tt:AudioOutputs", 0),
                                      E("tt:RelayOutputs", n_relays)))
        return E("tds:GetCapabilitiesResponse", E("tds:Capabilities", device, events, imaging, media, ext))

    # ---- identity and network -----------------------------------------------------------
    async def GetDeviceInformation(self, req: SoapRequest):
        core = self.core
        creds = core.ctx.credentials.get()
        return E("tds:GetDeviceInformationResponse",
                 E("tds:Manufacturer", core.cfg.manufacturer), E("tds:Model", core.cfg.model),
                 E("tds:FirmwareVersion", core.version), E("tds:SerialNumber", creds.serial),
                 E("tds:HardwareId", core.cfg.hardware))

    async def GetNetworkInterfaces(self, req: SoapRequest):
        itfs = await asyncio.to_thread(netinfo.interfaces)
        out = []
        for i in itfs:
            if i.loopback:
                continue
            out.append(E(
                "tds:NetworkInterfaces",
                E("tt:Enabled", i.up),
                E("tt:Info", E("tt:Name", i.name), E("tt:HwAddress", i.mac), E("tt:MTU", i.mtu)),
                E("tt:IPv4", E("tt:Enabled", True), E("tt:Config",
                                                      E("tt:Manual", E("tt:Address", i.ipv4), E("tt:PrefixLength", i.prefix_len)),
                                                      E("tt:DHCP", False))),
                token=i.name,
            ))
        return E("tds:GetNetworkInterfacesResponse", out)

    async def GetScopes(self, req: SoapRequest):
        fixed = self.core.fixed_scopes()
        return E("tds:GetScopesResponse", [
            E("tds:Scopes", E("tt:ScopeDef", "Fixed" if s in fixed else "Configurable"), E("tt:ScopeItem", s))
            for s in self.core.scopes()
        ])

    async def GetHostname(self, req: SoapRequest):
        return E("tds:GetHostnameResponse", E("tds:HostnameInformation", E("tt:FromDHCP", False),
                                              E("tt:Name", socket.gethostname())))

    async def GetDNS(self, req: SoapRequest):
        servers, search = await asyncio.to_thread(_resolv_conf)
        return E("tds:GetDNSResponse", E(
            "tds:DNSInformation", E("tt:FromDHCP", False),
            [E("tt:SearchDomain", s) for s in search],
            [E("tt:DNSManual", E("tt:Type", "IPv6" if ":" in a else "IPv4"),
               E("tt:IPv6Address" if ":" in a else "tt:IPv4Address", a)) for a in servers],
        ))

    async def GetNTP(self, req: SoapRequest):
        servers = await asyncio.to_thread(_ntp_servers)
        return E("tds:GetNTPResponse", E(
            "tds:NTPInformation", E("tt:FromDHCP", False),
            [E("tt:NTPManual", E("tt:Type", "DNS"), E("tt:DNSname", s)) for s in servers],
        ))

    async def GetNetworkProtocols(self, req: SoapRequest):
        port = self.core.ctx.config.web.port
        protos = [E("tds:NetworkProtocols", E("tt:Name", "HTTP"), E("tt:Enabled", True), E("tt:Port", port))]
        video = self.core.video
        rtsp_port = getattr(video, "rtsp_port", None) if video is not None else None
        if rtsp_port:
            protos.append(E("tds:NetworkProtocols", E("tt:Name", "RTSP"), E("tt:Enabled", True), E("tt:Port", rtsp_port)))
        return E("tds:GetNetworkProtocolsResponse", protos)

    async def GetDiscoveryMode(self, req: SoapRequest):
        return E("tds:GetDiscoveryModeResponse",
                 E("tds:DiscoveryMode", "Discoverable" if self.core.discoverable else "NonDiscoverable"))

    async def GetWsdlUrl(self, req: SoapRequest):
        return E("tds:GetWsdlUrlResponse", E("tds:WsdlUrl", "http://www.onvif.org/Documents/Specifications.aspx"))

    async def GetEndpointReference(self, req: SoapRequest):
        return E("tds:GetEndpointReferenceResponse",
                 E("tds:GUID", f"urn:uuid:{self.core.ctx.credentials.get().device_uuid}"))

    async def GetUsers(self, req: SoapRequest):
        creds = self.core.ctx.credentials.get()
        return E("tds:GetUsersResponse", E("tds:User", E("tt:Username", creds.user), E("tt:UserLevel", "Administrator")))

    async def SystemReboot(self, req: SoapRequest):
        sup = self.core.supervisor_ref()
        if sup is None:
            raise sender("the service cannot restart itself here", "ter:Action")
        why = f"ONVIF SystemReboot from {req.http.remote} ({req.user})"
        # answer first, then stop; the exit code asks systemd (Restart=on-failure) to start it again
        asyncio.get_running_loop().call_later(0.5, sup.request_restart, why)
        return E("tds:SystemRebootResponse", E("tds:Message", "Restarting the edge service in 1 s"))

    # ---- relays (same as DeviceIO) ----------------------------------------------------
    async def GetRelayOutputs(self, req: SoapRequest):
        return E("tds:GetRelayOutputsResponse", self.core.deviceio.relay_elements("tds:RelayOutputs"))

    async def SetRelayOutputState(self, req: SoapRequest):
        await self.core.deviceio.set_state(req)
        return E("tds:SetRelayOutputStateResponse")

    async def SetRelayOutputSettings(self, req: SoapRequest):
        await self.core.deviceio.set_settings(req)
        return E("tds:SetRelayOutputSettingsResponse")


def _resolv_conf() -> tuple[list[str], list[str]]:
    servers: list[str] = []
    search: list[str] = []
    try:
        for line in Path("/etc/resolv.conf").read_text().splitlines()[:200]:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                servers.append(parts[1])
            elif parts and parts[0] in ("search", "domain"):
                search.extend(parts[1:])
    except OSError:
        pass
    return servers[:4], search[:6]


def _ntp_servers() -> list[str]:
    for path in ("/etc/systemd/timesyncd.conf",):
        try:
            for line in Path(path).read_text().splitlines():
                line = line.strip()
                if line.startswith("NTP=") and line[4:].strip():
                    return line[4:].split()[:4]
        except OSError:
            pass
    return []
