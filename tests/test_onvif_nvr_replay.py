"""Requests real NVRs sent (tests/onvif_captures/, with their sources) replayed over HTTP to the
running service: every one gets a schema-valid answer and no fault where the device can
answer; what it cannot (PTZ it does not offer, a profile it cannot create) is the fault the
spec names. The push subscription one recorder made gets its Notify on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from lxml import etree

from edge.bus import RelayChanged
from edge.onvif.media import SOURCE_CONFIG_TOKEN, SOURCE_TOKEN, _enc_token

from . import onvif_soap as s
from .peers import free_port
from .test_onvif_schema import schema  # noqa: F401 - the fixture

CAPTURES = Path(__file__).parent / "onvif_captures"
WSSE = s.WSSE
WSU = s.WSU
WSA = "http://www.w3.org/2005/08/addressing"
TPTZ = "http://www.onvif.org/ver20/ptz/wsdl"
# what the device does not offer, and the fault that says so
EXPECTED_FAULTS = {
    (TPTZ, name): "ter:ActionNotSupported"
    for name in ("GetConfigurations", "GetConfigurationOptions", "GetNode", "GetConfiguration", "GetPresetTourOptions",
                 "GetPresets")
} | {(s.TRT, "CreateProfile"): "ter:MaxNVTProfiles"}
PATHS = {s.TDS: "/onvif/device_service", s.TRT: "/onvif/media_service", s.TEV: "/onvif/events_service",
         s.WSNT: "/onvif/events_service", s.TIMG: "/onvif/imaging_service", s.TMD: "/onvif/deviceio_service"}

CONFIG = """
[onvif]
discovery = false
auth_free_failures = 100

[video]
rtsp_host = "127.0.0.1"
rtsp_port = 0
width = 320
height = 180
"""


def captures() -> list[Path]:
    return sorted(CAPTURES.rglob("*.xml"))


def fresh_token(token: etree._Element, user: str, password: str) -> None:
    """New Username/Nonce/Created/digest inside the captured UsernameToken, its layout kept."""
    def find(name: str, *nss: str) -> etree._Element | None:
        for ns in nss:
            el = token.find(f"{{{ns}}}{name}")
            if el is not None:
                return el
        return None

    nonce = os.urandom(16)
    created = s.created_now()
    find("Username", WSSE).text = user
    n = find("Nonce", WSSE)
    c = find("Created", WSU, WSSE)
    if n is not None:
        n.text = base64.b64encode(nonce).decode()
    if c is not None:
        c.text = created
    pw = find("Password", WSSE)
    if (pw.get("Type") or "").endswith("#PasswordDigest"):
        pw.text = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()
    else:
        pw.text = password


def adapt(xml: bytes, user: str, password: str, profiles: list[str], consumer: str) -> tuple[bytes, tuple[str, str]]:
    """The captured request as this recorder would send it to this device."""
    root = etree.fromstring(xml)
    for tok in root.iter(f"{{{WSSE}}}UsernameToken"):
        fresh_token(tok, user, password)
    body = next(c for c in root if etree.QName(c).localname == "Body")
    op_el = next(c for c in body if isinstance(c.tag, str))
    q = etree.QName(op_el)
    for el in op_el.iter():
        if not isinstance(el.tag, str):
            continue
        name = etree.QName(el).localname
        if name == "ProfileToken":
            el.text = profiles[1] if (el.text or "").strip().endswith("1") and len(profiles) > 1 else profiles[0]
        elif name in ("VideoSourceToken", "SourceToken"):
            el.text = SOURCE_TOKEN
        elif name == "ConfigurationToken":
            el.text = _enc_token(profiles[0]) if "Encoder" in q.localname else SOURCE_CONFIG_TOKEN
        elif name == "Address" and el.getparent() is not None and \
                etree.QName(el.getparent()).localname == "ConsumerReference":
            el.text = consumer  # never the recorder's LAN address: a consumer of this test
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8"), (q.namespace or "", q.localname)


@pytest.fixture
async def consumer():
    """An HTTP endpoint on 127.0.0.1 that keeps the Notify bodies it gets."""
    got: list[bytes] = []
    arrived = asyncio.Event()

    async def notify(request: web.Request) -> web.Response:
        got.append(await request.read())
        arrived.set()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/onvif_notify_server", notify)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/onvif_notify_server", got, arrived
    finally:
        await runner.cleanup()


async def test_requests_real_nvrs_sent_get_valid_answers(service_factory, schema, consumer):  # noqa: F811
    url, notified, arrived = consumer
    files = captures()
    assert len(files) >= 40
    async with service_factory(CONFIG) as svc:
        profiles = [p.token for p in svc.component("video").profiles]
        assert len(profiles) == 2  # the main stream and the substream
        svc.ctx.bus.publish(RelayChanged("gate", True))  # a state for the Initialized messages
        await asyncio.sleep(0.1)
        answered, faulted = [], []
        async with aiohttp.ClientSession() as http:
            for f in files:
                body, op = adapt(f.read_bytes(), svc.user, svc.password, profiles, url)
                ctype = "application/xml; charset=UTF-8" if "yi-hack" in f.name else s.CT12
                async with http.post(svc.base_url + PATHS.get(op[0], "/onvif/device_service"), data=body,
                                     headers={"Content-Type": ctype}) as r:
                    status, answer = r.status, await r.read()
                assert answer.startswith(b"<?xml"), (f.name, answer[:200])  # nothing before the prolog
                env = s.parse(answer)
                payload = env.find(f"{{{s.S12}}}Body")[0]
                if op in EXPECTED_FAULTS:
                    assert status in (400, 500) and s.is_fault(answer), (f.name, answer[:500])
                    assert EXPECTED_FAULTS[op] in s.fault_subcodes(answer), (f.name, s.fault_subcodes(answer))
                    faulted.append(op[1])
                    continue
                assert status == 200, (f.name, status, answer[:800])
                doc = etree.ElementTree(etree.fromstring(etree.tostring(payload)))
                if not schema.validate(doc):
                    pytest.fail(f"{f.name}: {schema.error_log}\n{etree.tostring(payload, pretty_print=True).decode()[:3000]}")
                answered.append(op[1])
        print(f"{len(answered)} answered, {len(faulted)} faults by design: {sorted(set(faulted))}")
        assert {"GetOSDOptions", "GetOSDs", "GetImagingSettings", "GetOptions", "GetNetworkDefaultGateway",
                "SetSystemDateAndTime", "SetSynchronizationPoint", "GetAudioEncoderConfigurationOptions",
                "Subscribe", "GetEventProperties", "GetStreamUri"} <= set(answered)
        assert "CreateProfile" in faulted

        # the recorder's push subscription: every current state arrives as Initialized
        await asyncio.wait_for(arrived.wait(), 5)
        first = s.parse(notified[0])
        ops = {m.get("PropertyOperation") for m in first.iter("{http://www.onvif.org/ver10/schema}Message")}
        assert ops == {"Initialized"}

        # as captured (their credentials): a NotAuthorized fault, not a crash
        raw = (CAPTURES / "openipc-sandbox-nvr" / "02-GetProfiles.xml").read_bytes()
        async with aiohttp.ClientSession() as http:
            async with http.post(svc.base_url + "/onvif/media_service", data=raw, headers={"Content-Type": s.CT12}) as r:
                assert r.status in (400, 401)
                assert "ter:NotAuthorized" in s.fault_subcodes(await r.read())


async def test_synology_create_profile_without_credentials_is_max_profiles_not_auth(service_factory):
    """Synology shows "wrong password" for an auth fault here: the answer is MaxNVTProfiles."""
    async with service_factory(CONFIG) as svc:
        raw = (CAPTURES / "issue-threads" / "synology-yi-hack-MStar540-CreateProfile.xml").read_bytes()
        async with aiohttp.ClientSession() as http:
            async with http.post(svc.base_url + "/onvif/media_service", data=raw,
                                 headers={"Content-Type": "application/xml; charset=UTF-8"}) as r:
                status, answer = r.status, await r.read()
            assert status == 500 and s.fault_subcodes(answer) == ["ter:Action", "ter:MaxNVTProfiles"]
            assert "fixed profiles" in s.fault_reason(answer)
            # DeleteProfile needs the credentials, and a fixed profile stays
            body = s.envelope(s.op("DeleteProfile", s.TRT, "<ns0:ProfileToken>dashboard</ns0:ProfileToken>"),
                              s.security(svc.user, svc.password))
            async with http.post(svc.base_url + "/onvif/media_service", data=body, headers={"Content-Type": s.CT12}) as r:
                assert "ter:DeletionOfFixedProfile" in s.fault_subcodes(await r.read())
            # an operation nobody implements still faults
            body = s.envelope(s.op("GetFrobnicator", s.TRT), s.security(svc.user, svc.password))
            async with http.post(svc.base_url + "/onvif/media_service", data=body, headers={"Content-Type": s.CT12}) as r:
                assert "ter:ActionNotSupported" in s.fault_subcodes(await r.read())
