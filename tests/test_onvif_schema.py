"""Every ONVIF answer validates against the ONVIF schemas (the WSDLs shipped with
onvif-zeep-async), so strict clients (UniFi Protect, Blue Iris, ODM) find every field where
they look. zeep on its own is lenient and would not notice a field out of order."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import onvif
import pytest
from lxml import etree

from edge.bus import Alarm, RelayChanged
from edge.onvif.media import SOURCE_CONFIG_TOKEN, SOURCE_TOKEN, _enc_token
from edge.onvif.soap import HttpInfo

from . import onvif_soap as s


def have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package is not there either
        return False


XS = "http://www.w3.org/2001/XMLSchema"
WSNT = "http://docs.oasis-open.org/wsn/b-2"
TT = "xmlns:tt='http://www.onvif.org/ver10/schema'"


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> etree.XMLSchema:
    src = Path(onvif.__file__).parent / "wsdl"
    d = tmp_path_factory.mktemp("onvif-xsd")
    for f in src.iterdir():
        (shutil.copytree if f.is_dir() else shutil.copy)(f, d / f.name)
    imports = []
    for name in ("devicemgmt", "media", "events", "deviceio", "imaging"):
        sch = etree.parse(str(src / f"{name}.wsdl")).find(f".//{{{XS}}}schema")
        (d / f"{name}.xsd").write_bytes(etree.tostring(sch))
        imports.append((sch.get("targetNamespace"), f"{name}.xsd"))
    master = f'<xs:schema xmlns:xs="{XS}" targetNamespace="urn:edge-test">' + "".join(
        f'<xs:import namespace="{ns}" schemaLocation="{loc}"/>' for ns, loc in imports) + "</xs:schema>"
    (d / "master.xsd").write_text(master)
    return etree.XMLSchema(etree.parse(str(d / "master.xsd")))


def params(ns: str, op: str, profile: str | None, relay: str | None) -> str | None:
    """Minimal valid request content per operation (None: not callable here)."""
    stream_setup = ("<tt:StreamSetup xmlns:tt='http://www.onvif.org/ver10/schema'><tt:Stream>RTP-Unicast</tt:Stream>"
                    "<tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></tt:StreamSetup>")
    table = {
        "GetCapabilities": "<ns0:Category>All</ns0:Category>",
        "GetServices": "<ns0:IncludeCapability>true</ns0:IncludeCapability>",
        "GetProfile": f"<ns0:ProfileToken>{profile}</ns0:ProfileToken>" if profile else None,
        "GetStreamUri": (stream_setup.replace("tt:StreamSetup", "ns0:StreamSetup")
                         + f"<ns0:ProfileToken>{profile}</ns0:ProfileToken>") if profile else None,
        "GetSnapshotUri": f"<ns0:ProfileToken>{profile}</ns0:ProfileToken>" if profile else None,
        "GetCompatibleVideoSourceConfigurations": f"<ns0:ProfileToken>{profile}</ns0:ProfileToken>" if profile else None,
        "GetCompatibleVideoEncoderConfigurations": f"<ns0:ProfileToken>{profile}</ns0:ProfileToken>" if profile else None,
        "GetVideoSourceConfiguration": f"<ns0:ConfigurationToken>{SOURCE_CONFIG_TOKEN}</ns0:ConfigurationToken>" if profile else None,
        "GetVideoEncoderConfiguration": f"<ns0:ConfigurationToken>{_enc_token(profile)}</ns0:ConfigurationToken>" if profile else None,
        "GetVideoEncoderConfigurationOptions": "" if profile else None,
        "GetGuaranteedNumberOfVideoEncoderInstances": f"<ns0:ConfigurationToken>{SOURCE_CONFIG_TOKEN}</ns0:ConfigurationToken>",
        "CreatePullPointSubscription": "<ns0:InitialTerminationTime>PT60S</ns0:InitialTerminationTime>",
        "PullMessages": "<ns0:Timeout>PT1S</ns0:Timeout><ns0:MessageLimit>50</ns0:MessageLimit>",
        "Renew": "<ns0:TerminationTime>PT60S</ns0:TerminationTime>",
        "SetRelayOutputState": (f"<ns0:RelayOutputToken>{relay}</ns0:RelayOutputToken>"
                                "<ns0:LogicalState>inactive</ns0:LogicalState>") if relay else None,
        "SetRelayOutputSettings": (f"<ns0:RelayOutputToken>{relay}</ns0:RelayOutputToken><ns0:Properties>"
                                   "<tt:Mode xmlns:tt='http://www.onvif.org/ver10/schema'>Monostable</tt:Mode>"
                                   "<tt:DelayTime xmlns:tt='http://www.onvif.org/ver10/schema'>PT0.5S</tt:DelayTime>"
                                   "<tt:IdleState xmlns:tt='http://www.onvif.org/ver10/schema'>open</tt:IdleState>"
                                   "</ns0:Properties>") if relay else None,
        "SystemReboot": None,  # stops the service: its own test
        # faults by design (tests/test_onvif_nvr_probes.py): fixed profiles, no audio/metadata/OSD items
        "CreateProfile": None, "DeleteProfile": None, "GetAudioSourceConfiguration": None,
        "GetAudioEncoderConfiguration": None, "GetAudioOutputConfiguration": None,
        "GetAudioDecoderConfiguration": None, "GetMetadataConfiguration": None,
        "GetVideoAnalyticsConfiguration": None, "GetOSD": None, "GetAudioSourceConfigurationOptions": None,
        "GetOSDOptions": f"<ns0:ConfigurationToken>{SOURCE_CONFIG_TOKEN}</ns0:ConfigurationToken>",
        "SetVideoSourceConfiguration": (f"<ns0:Configuration token='{SOURCE_CONFIG_TOKEN}'><tt:SourceToken {TT}>"
                                        f"{SOURCE_TOKEN}</tt:SourceToken></ns0:Configuration>"
                                        "<ns0:ForcePersistence>true</ns0:ForcePersistence>") if profile else None,
        "SetVideoEncoderConfiguration": (f"<ns0:Configuration token='{_enc_token(profile)}'><tt:Encoding {TT}>H264"
                                         "</tt:Encoding></ns0:Configuration>"
                                         "<ns0:ForcePersistence>true</ns0:ForcePersistence>") if profile else None,
        # a consumer nobody listens on: the Notify POSTs fail and are retried, the answer is what is checked
        "Subscribe": ("<ns0:ConsumerReference><wsa:Address xmlns:wsa='http://www.w3.org/2005/08/addressing'>"
                      "http://127.0.0.1:9/notify</wsa:Address></ns0:ConsumerReference>"
                      "<ns0:InitialTerminationTime>PT60S</ns0:InitialTerminationTime>"),
        "SetSystemDateAndTime": "<ns0:DateTimeType>NTP</ns0:DateTimeType><ns0:DaylightSavings>false</ns0:DaylightSavings>",
    }
    if ns == s.TIMG:
        src = f"<ns0:VideoSourceToken>{SOURCE_TOKEN}</ns0:VideoSourceToken>"
        return src + ("<ns0:ImagingSettings/>" if op == "SetImagingSettings" else "")
    if ns == s.TRT and op == "SetSynchronizationPoint":
        return f"<ns0:ProfileToken>{profile}</ns0:ProfileToken>" if profile else None
    if ns == s.TMD and op == "SetRelayOutputSettings":
        tt = "xmlns:tt='http://www.onvif.org/ver10/schema'"
        return (f"<ns0:RelayOutput token='{relay}'><tt:Properties {tt}><tt:Mode>Bistable</tt:Mode>"
                "<tt:DelayTime>PT0S</tt:DelayTime><tt:IdleState>open</tt:IdleState></tt:Properties>"
                "</ns0:RelayOutput>") if relay else None
    return table.get(op, "")


def extra_config() -> str:
    """Relays and video when they exist on this branch, so their operations get validated too."""
    toml = ""
    if have("edge.relays"):
        toml += ('[relays.boards.main]\ntype = "simulated"\nprofile = "waveshare-8"\nport = 0\n'
                 '[relays.channels.door]\nboard = "main"\nchannel = 1\nmode = "pulse"\npulse_ms = 500\n')
    if have("edge.video.component"):
        toml += '[video]\nrtsp_host = "127.0.0.1"\nrtsp_port = 0\nwidth = 640\nheight = 360\n'
    return toml


async def test_every_answer_validates_against_the_onvif_schemas(service_factory, schema):
    async with service_factory("[onvif]\ndiscovery = false\n" + extra_config()) as svc:
        onvif_c = svc.component("onvif")
        d = onvif_c.dispatcher
        profiles = onvif_c.core.media.profiles()
        profile = profiles[0].token if profiles else None
        relays = onvif_c.core.relay_names()
        relay = relays[0] if relays else None
        svc.ctx.bus.publish(Alarm("door:open", "door", True, "open", "open"))
        svc.ctx.bus.publish(Alarm("hall:motion", "hall", True, "motion", "motion"))
        svc.ctx.bus.publish(RelayChanged("gate", True))
        info = HttpInfo(remote="127.0.0.1", host="127.0.0.1:8080", local_ip="127.0.0.1")
        sub_query: dict[str, str] = {}
        validated, skipped = [], []
        order = sorted(d.operations(), key=lambda o: (o[1] in ("PullMessages", "SetSynchronizationPoint", "Renew",
                                                              "Unsubscribe"), o[1] == "Unsubscribe"))
        for ns, name in order:
            inner = params(ns, name, profile, relay)
            if inner is None:
                skipped.append(name)
                continue
            body = s.envelope(s.op(name, ns, inner), s.security(svc.user, svc.password))
            info.query = sub_query if ns in (s.TEV, WSNT) else {}
            resp = await d.handle(body, info)
            assert resp.status == 200, (name, resp.body[:500])
            payload = s.parse(resp.body).find(f"{{{s.S12}}}Body")[0]
            if name == "CreatePullPointSubscription":
                addr = payload.findtext(".//{http://www.w3.org/2005/08/addressing}Address")
                sub_query["sub"] = addr.split("sub=")[1]
            if name == "PullMessages":
                assert len(payload.findall(f"{{{WSNT}}}NotificationMessage")) >= 3
            doc = etree.ElementTree(etree.fromstring(etree.tostring(payload)))
            if not schema.validate(doc):
                pytest.fail(f"{name}: {schema.error_log}\n{etree.tostring(payload, pretty_print=True).decode()[:3000]}")
            validated.append(name)
        print(f"validated {len(validated)} operations; not callable here: {skipped}")
        assert len(validated) >= 70
