"""The ONVIF SOAP layer against hostile and broken requests, over real HTTP to the running
service: each case gets a proper SOAP fault or HTTP error, and the service keeps answering."""

from __future__ import annotations

import asyncio
import base64
import os
import time

import aiohttp
import pytest

from . import onvif_soap as s
from .peers import basic_auth, digest_session

ONVIF = "[onvif]\ndiscovery = false\nauth_free_failures = 100\n"


async def post(http: aiohttp.ClientSession, url: str, data: bytes, **kw) -> tuple[int, bytes, aiohttp.ClientResponse]:
    headers = {"Content-Type": s.CT12}
    headers.update(kw.pop("headers", {}))
    async with http.post(url, data=data, headers=headers, **kw) as r:
        return r.status, await r.read(), r


async def assert_healthy(http, svc) -> None:
    """A correctly signed protected call still works."""
    url = svc.base_url + "/onvif/device_service"
    status, body, _ = await post(http, url, s.envelope(s.op("GetDeviceInformation"), s.security(svc.user, svc.password)))
    assert status == 200, body
    assert b"SerialNumber" in body


async def test_pre_auth_allowlist_and_protected_calls(service_factory):
    async with service_factory(ONVIF) as svc:
        url = svc.base_url + "/onvif/device_service"
        async with aiohttp.ClientSession() as http:
            for name in ("GetSystemDateAndTime", "GetCapabilities", "GetServices", "GetServiceCapabilities"):
                status, body, _ = await post(http, url, s.envelope(s.op(name)))
                assert status == 200, (name, body)
                assert not s.is_fault(body)
            # media's GetServiceCapabilities is open too (matched by namespace + name)
            status, body, _ = await post(http, svc.base_url + "/onvif/media_service", s.envelope(s.op("GetServiceCapabilities", s.TRT)))
            assert status == 200 and b'SnapshotUri="true"' in body
            # anything else needs the credentials: 401 with a Digest challenge and a SOAP fault
            status, body, r = await post(http, url, s.envelope(s.op("GetDeviceInformation")))
            assert status == 401
            assert any(h.startswith("Digest") for h in r.headers.getall("WWW-Authenticate"))
            assert s.fault_subcodes(body) == ["ter:NotAuthorized"]
            assert svc.password.encode() not in body
            await assert_healthy(http, svc)


async def test_http_digest_is_accepted(service_factory):
    async with service_factory(ONVIF) as svc:
        url = svc.base_url + "/onvif/device_service"
        mw = aiohttp.DigestAuthMiddleware(svc.user, svc.password)
        async with aiohttp.ClientSession(middlewares=(mw,)) as http:
            status, body, _ = await post(http, url, s.envelope(s.op("GetDeviceInformation")))
            assert status == 200, body
            assert b"SerialNumber" in body
        bad = aiohttp.DigestAuthMiddleware(svc.user, "not-the-password")
        async with aiohttp.ClientSession(middlewares=(bad,)) as http:
            status, body, _ = await post(http, url, s.envelope(s.op("GetDeviceInformation")))
            assert status == 401
            assert s.fault_subcodes(body) == ["ter:NotAuthorized"]


async def test_wrong_password_replayed_nonce_stale_created(service_factory):
    async with service_factory(ONVIF) as svc:
        url = svc.base_url + "/onvif/device_service"
        call = s.op("GetDeviceInformation")
        async with aiohttp.ClientSession() as http:
            # wrong password
            status, body, _ = await post(http, url, s.envelope(call, s.security(svc.user, "wrong-password")))
            assert status == 400 and s.fault_subcodes(body) == ["ter:NotAuthorized"]
            assert "wrong user name or password" in s.fault_reason(body)
            # wrong user
            status, body, _ = await post(http, url, s.envelope(call, s.security("root", svc.password)))
            assert status == 400 and s.fault_subcodes(body) == ["ter:NotAuthorized"]
            # the same token twice: the second is a replay
            nonce, created = os.urandom(16), s.created_now()
            hdr = s.security(svc.user, svc.password, nonce=nonce, created=created)
            status, body, _ = await post(http, url, s.envelope(call, hdr))
            assert status == 200, body
            status, body, _ = await post(http, url, s.envelope(call, hdr))
            assert status == 400 and s.fault_subcodes(body) == ["ter:NotAuthorized"]
            assert "replay" in s.fault_reason(body)
            # a correctly signed token created an hour ago (or an hour ahead) is refused
            for offset in (-3600, 3600):
                hdr = s.security(svc.user, svc.password, created=s.created_now(offset))
                status, body, _ = await post(http, url, s.envelope(call, hdr))
                assert status == 400 and s.fault_subcodes(body) == ["ter:NotAuthorized"], offset
                assert "Created" in s.fault_reason(body)
            # inside the skew window (client clock 60 s behind) is fine
            status, body, _ = await post(http, url, s.envelope(call, s.security(svc.user, svc.password,
                                                                                created=s.created_now(-60))))
            assert status == 200
            # garbage in the token fields
            for hdr in (s.security(svc.user, svc.password, created="yesterday"),
                        s.security(svc.user, svc.password).replace("<wsse:Nonce>", "<wsse:Nonce>!!"),
                        f'<wsse:Security xmlns:wsse="{s.WSSE}"/>'):
                status, body, _ = await post(http, url, s.envelope(call, hdr))
                assert status == 400 and s.fault_subcodes(body) == ["ter:NotAuthorized"], hdr
            await assert_healthy(http, svc)


def respellings(nonce: bytes) -> list[str]:
    """Other Base64 spellings of the same nonce bytes: the unused low bits of the last
    character, and a line break inside (both decode to the same bytes)."""
    text = base64.b64encode(nonce).decode()
    assert len(nonce) % 3 == 1  # two padding characters: the last data character has 4 unused bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(text[-3])
    out = [text[:-3] + alphabet[(last & ~0xF) | bits] + "==" for bits in range(16) if (last & 0xF) != bits]
    out.append(text[:8] + "\n" + text[8:])
    assert all(base64.b64decode("".join(o.split())) == nonce for o in out)
    return out


async def test_usernametoken_replayed_with_its_nonce_re_encoded_is_refused(service_factory):
    async with service_factory(ONVIF) as svc:
        url = svc.base_url + "/onvif/device_service"
        call = s.op("GetDeviceInformation")
        nonce, created = os.urandom(16), s.created_now()
        hdr = s.security(svc.user, svc.password, nonce=nonce, created=created)
        spelled = base64.b64encode(nonce).decode()
        async with aiohttp.ClientSession() as http:
            status, body, _ = await post(http, url, s.envelope(call, hdr))
            assert status == 200, body
            for other in respellings(nonce):
                status, body, _ = await post(http, url, s.envelope(call, hdr.replace(spelled, other)))
                assert status == 400 and s.fault_subcodes(body) == ["ter:NotAuthorized"], other
                assert "replay" in s.fault_reason(body)
            await assert_healthy(http, svc)


async def test_password_text_and_basic_are_refused_over_plain_http(service_factory):
    async with service_factory(ONVIF) as svc:
        url = svc.base_url + "/onvif/device_service"
        call = s.op("GetDeviceInformation")
        text = (f'<wsse:Security xmlns:wsse="{s.WSSE}" xmlns:wsu="{s.WSU}"><wsse:UsernameToken>'
                f"<wsse:Username>{svc.user}</wsse:Username>"
                f'<wsse:Password Type="{s.DIGEST.replace("Digest", "Text")}">{svc.password}</wsse:Password>'
                f"<wsu:Created>{s.created_now()}</wsu:Created></wsse:UsernameToken></wsse:Security>")
        async with aiohttp.ClientSession() as http:
            status, body, _ = await post(http, url, s.envelope(call, text))
            assert status == 400 and s.fault_subcodes(body) == ["ter:NotAuthorized"]
            assert "PasswordText" in s.fault_reason(body)
            status, body, r = await post(http, url, s.envelope(call), headers=basic_auth(svc.user, svc.password))
            assert status == 401 and s.fault_subcodes(body) == ["ter:NotAuthorized"]
            assert not any(h.startswith("Basic") for h in r.headers.getall("WWW-Authenticate"))


async def test_captured_http_digest_is_not_replayable_on_onvif(service_factory):
    from .test_web_auth import digest_header

    async with service_factory(ONVIF) as svc:
        url = svc.base_url + "/onvif/device_service"
        call = s.envelope(s.op("GetDeviceInformation"))
        async with aiohttp.ClientSession() as http:
            status, _, r = await post(http, url, call)
            assert status == 401
            ch = next(h for h in r.headers.getall("WWW-Authenticate") if "SHA-256" in h)
            captured = {"Authorization": digest_header(ch, svc.user, svc.password, "POST", "/onvif/device_service")}
            status, body, _ = await post(http, url, call, headers=captured)
            assert status == 200, body
            status, body, _ = await post(http, url, call, headers=captured)
            assert status == 401 and s.fault_subcodes(body) == ["ter:NotAuthorized"]
            status, body, _ = await post(http, svc.base_url + "/onvif/media_service",
                                         s.envelope(s.op("GetProfiles", s.TRT)), headers=captured)
            assert status == 401  # the digest names another path


async def test_any_prefix_and_soap11(service_factory):
    async with service_factory(ONVIF) as svc:
        url = svc.base_url + "/onvif/device_service"
        async with aiohttp.ClientSession() as http:
            # default-namespace Security header, default-namespace operation, odd envelope prefix
            hdr = s.security(svc.user, svc.password, prefix="")
            body_xml = f'<GetDeviceInformation xmlns="{s.TDS}"/>'
            status, body, _ = await post(http, url, s.envelope(body_xml, hdr, env_prefix="e"))
            assert status == 200, body
            # the same local name in a foreign namespace is not our operation
            status, body, _ = await post(http, url, s.envelope('<GetDeviceInformation xmlns="urn:other"/>', hdr))
            assert status == 500 and s.fault_subcodes(body) == ["ter:ActionNotSupported"]
            # SOAP 1.1 is answered in SOAP 1.1
            status, body, r = await post(http, url, s.envelope(s.op("GetSystemDateAndTime"), soap=s.S11),
                                         headers={"Content-Type": "text/xml; charset=utf-8"})
            assert status == 200 and s.S11.encode() in body and r.headers["Content-Type"].startswith("text/xml")


async def test_unknown_operation_and_malformed_documents(service_factory):
    async with service_factory(ONVIF) as svc:
        url = svc.base_url + "/onvif/device_service"
        auth = s.security(svc.user, svc.password)
        async with aiohttp.ClientSession() as http:
            status, body, _ = await post(http, url, s.envelope(s.op("SetFactoryDefault"), auth))
            assert status == 500 and s.fault_subcodes(body) == ["ter:ActionNotSupported"]
            assert "SetFactoryDefault" in s.fault_reason(body)
            cases = {
                "truncated": s.envelope(s.op("GetDeviceInformation"))[:-20],
                "not xml": b"hello, device",
                "empty": b"",
                "wrong root": b'<a xmlns="urn:x"/>',
                "two operations": s.envelope(s.op("GetHostname") + s.op("GetDNS"), auth),
                "no body": f'<e:Envelope xmlns:e="{s.S12}"><e:Header/></e:Envelope>'.encode(),
                "bad utf-8": s.envelope(s.op("GetHostname")).replace(b"GetHostname", b"Get\xff\xfeHostname"),
            }
            for name, data in cases.items():
                status, body, _ = await post(http, url, data)
                assert status == 400, (name, status, body)
                assert s.is_fault(body), name
                assert s.fault_subcodes(body)[0] == "ter:WellFormed", (name, body)
            # an unknown envelope version is a VersionMismatch fault
            status, body, _ = await post(http, url, b'<e:Envelope xmlns:e="urn:soap-2099"><e:Body/></e:Envelope>')
            assert status == 500 and b"VersionMismatch" in body
            await assert_healthy(http, svc)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>
<GetHostname xmlns="http://www.onvif.org/ver10/device/wsdl">&lol9;</GetHostname></s:Body></s:Envelope>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> <!ENTITY net SYSTEM "http://127.0.0.1:9/x"> ]>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>
<GetScopes xmlns="http://www.onvif.org/ver10/device/wsdl">&xxe;&net;</GetScopes></s:Body></s:Envelope>"""


async def test_billion_laughs_external_entity_and_utf16_dtd(service_factory):
    async with service_factory(ONVIF) as svc:
        url = svc.base_url + "/onvif/device_service"
        async with aiohttp.ClientSession() as http:
            for name, data in (("billion laughs", BILLION_LAUGHS), ("external entity", XXE),
                               ("utf-16 dtd", XXE.replace(b'<?xml version="1.0"?>', b"").decode().encode("utf-16"))):
                t0 = time.monotonic()
                status, body, _ = await post(http, url, data)
                assert status == 400, (name, body)
                assert s.fault_subcodes(body) == ["ter:WellFormed"], (name, body)
                assert "DOCTYPE" in s.fault_reason(body), name
                assert b"root:" not in body and b"lollol" not in body
                assert time.monotonic() - t0 < 5, name
            await assert_healthy(http, svc)


async def test_ten_megabyte_body_is_refused(service_factory):
    async with service_factory(ONVIF) as svc:
        url = svc.base_url + "/onvif/device_service"
        big = s.envelope(s.op("GetHostname", inner="A" * (10 * 1024 * 1024)))
        async with aiohttp.ClientSession() as http:
            try:
                status, body, _ = await post(http, url, big)
            except aiohttp.ClientError as exc:  # the server may close while we are still sending
                pytest.fail(f"10 MB body: connection error instead of an HTTP answer: {exc!r}")
            assert status == 413, body[:200]
            # chunked upload without a Content-Length: refused the same way

            async def chunks():
                for _ in range(10):
                    yield b"B" * (1024 * 1024)

            async with http.post(url, data=chunks(), headers={"Content-Type": s.CT12}) as r:
                assert r.status == 413
            await assert_healthy(http, svc)


async def test_repeated_failures_are_slowed_down(service_factory):
    cfg = "[onvif]\ndiscovery = false\nauth_free_failures = 2\nauth_delay_max_s = 1.0\n"
    async with service_factory(cfg) as svc:
        url = svc.base_url + "/onvif/device_service"
        bad = s.op("GetDeviceInformation")
        async with aiohttp.ClientSession() as http:
            elapsed = []
            for _ in range(5):
                t0 = time.monotonic()
                status, body, _ = await post(http, url, s.envelope(bad, s.security(svc.user, "guess")))
                elapsed.append(time.monotonic() - t0)
                assert status == 400 and s.fault_subcodes(body) == ["ter:NotAuthorized"]
            # failures 3, 4, 5 wait 0.25, 0.5, 1.0 s (lower bounds are exact: the answer sleeps)
            assert elapsed[2] >= 0.24 and elapsed[3] >= 0.49 and elapsed[4] >= 0.99, elapsed
            # the pre-auth calls are not slowed, and the right password resets the brake
            t0 = time.monotonic()
            status, _, _ = await post(http, url, s.envelope(s.op("GetSystemDateAndTime")))
            assert status == 200
            await assert_healthy(http, svc)
            t0 = time.monotonic()
            status, _, _ = await post(http, url, s.envelope(bad, s.security(svc.user, "guess")))
            assert status == 400 and time.monotonic() - t0 < 0.24 + 0.5  # counting restarted
            # and the failures are visible in /metrics
            deadline = time.monotonic() + 5
            while True:
                async with digest_session(svc.user, svc.password) as dig, dig.get(svc.base_url + "/metrics") as r:
                    text = await r.text()
                line = [x for x in text.splitlines() if x.startswith("edge_onvif_auth_failures_total ")]
                if line and float(line[0].split()[1]) >= 6:
                    break
                assert time.monotonic() < deadline, line
                await asyncio.sleep(0.2)


async def test_concurrent_garbage_does_not_stall_good_clients(service_factory):
    async with service_factory(ONVIF) as svc:
        url = svc.base_url + "/onvif/device_service"
        # 16 connections: what the web server admits from one address ([web] max_connections_per_client)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit_per_host=16)) as http:
            junk = [BILLION_LAUGHS, XXE, b"<" * 5000, s.envelope(s.op("Nope")), base64.b64encode(os.urandom(3000))]
            results = await asyncio.gather(*(post(http, url, junk[i % len(junk)]) for i in range(50)))
            assert all(st in (400, 401, 500) for st, _, _ in results)
            await assert_healthy(http, svc)
