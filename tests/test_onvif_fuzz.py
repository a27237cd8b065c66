"""Fuzz the SOAP dispatcher in-process with 10,000 mutated requests (hypothesis): every answer
is a well-formed SOAP envelope (a fault unless 200), no handler crashes, and the process'
RSS does not keep growing. Also 2,000 mutated WS-Discovery datagrams."""

from __future__ import annotations

import asyncio
import gc
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge import config as config_mod
from edge.onvif.component import build_dispatcher
from edge.onvif.core import Core
from edge.onvif.discovery import Discovery
from edge.onvif.soap import HttpInfo
from edge.service import build_context

from . import onvif_soap as s
from .test_onvif_security import BILLION_LAUGHS, XXE

FUZZ_EXAMPLES = 10_000


def rss_kib() -> int:
    m = re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text())
    return int(m.group(1)) if m else 0


def seeds(user: str, password: str) -> list[bytes]:
    sec = s.security(user, password)
    out = [
        s.envelope(s.op("GetSystemDateAndTime")),
        s.envelope(s.op("GetCapabilities", inner="<ns0:Category>All</ns0:Category>")),
        s.envelope(s.op("GetServices", inner="<ns0:IncludeCapability>true</ns0:IncludeCapability>")),
        s.envelope(s.op("GetDeviceInformation"), sec),
        s.envelope(s.op("GetScopes"), sec),
        s.envelope(s.op("SetRelayOutputState", inner="<ns0:RelayOutputToken>door</ns0:RelayOutputToken>"
                                                      "<ns0:LogicalState>active</ns0:LogicalState>"), sec),
        s.envelope(s.op("GetProfiles", s.TRT), sec),
        s.envelope(s.op("GetStreamUri", s.TRT, "<ns0:StreamSetup><Stream>RTP-Unicast</Stream></ns0:StreamSetup>"
                                                "<ns0:ProfileToken>dashboard</ns0:ProfileToken>"), sec),
        s.envelope(s.op("CreatePullPointSubscription", s.TEV,
                        "<ns0:InitialTerminationTime>PT10S</ns0:InitialTerminationTime>"), sec),
        s.envelope(s.op("PullMessages", s.TEV, "<ns0:Timeout>PT1S</ns0:Timeout><ns0:MessageLimit>5</ns0:MessageLimit>"), sec),
        s.envelope(s.op("GetRelayOutputOptions", s.TMD), sec),
        # what NVRs probe and set (no Subscribe: its consumer address would be a real outbound request)
        s.envelope(s.op("CreateProfile", s.TRT, "<ns0:Name>SynoProfile</ns0:Name>")),
        s.envelope(s.op("GetOSDOptions", s.TRT, "<ns0:ConfigurationToken>dashboard_source_config</ns0:ConfigurationToken>"), sec),
        s.envelope(s.op("SetVideoEncoderConfiguration", s.TRT,
                        "<ns0:Configuration token='dashboard_h264'><Encoding>H264</Encoding><Resolution><Width>640</Width>"
                        "<Height>360</Height></Resolution><Quality>5</Quality><RateControl><FrameRateLimit>2"
                        "</FrameRateLimit><EncodingInterval>1</EncodingInterval><BitrateLimit>800</BitrateLimit>"
                        "</RateControl><H264><GovLength>8</GovLength></H264></ns0:Configuration>"), sec),
        s.envelope(s.op("SetImagingSettings", s.TIMG, "<ns0:VideoSourceToken>dashboard_source</ns0:VideoSourceToken>"
                                                       "<ns0:ImagingSettings><Brightness>50</Brightness></ns0:ImagingSettings>"), sec),
        s.envelope(s.op("SetSystemDateAndTime", inner="<ns0:DateTimeType>Manual</ns0:DateTimeType>"), sec),
        s.envelope(s.op("GetSystemDateAndTime"), soap=s.S11),
        BILLION_LAUGHS,
        XXE,
    ]
    return out


FRAGMENTS = [b"<", b">", b"</", b"/>", b"&", b"&amp;", b"&lol;", b"<!DOCTYPE x>", b"<![CDATA[", b"]]>", b"\x00",
             b"\xff\xfe", b'"', b"xmlns:a='urn:x'", b"<a>" * 50, b"P99999999999Y", b"-PT1S", b"9" * 40,
             b"<wsse:Nonce>", b"Created", b"\xc3\x28", b"<?xml version='1.0' encoding='utf-16'?>"]


TEXTS = [b"", b" ", b"-1", b"0", b"99999999999999999999", b"PT0S", b"PT1S", b"P1Y2M3DT4H5M6.5S", b"-PT5S",
         b"PT", b"2026-13-45T99:99:99Z", b"1970-01-01T00:00:00Z", b"active", b"inactive", b"Bistable",
         b"Monostable", b"RTP-Multicast", b"HTTP", b"All", b"PTZ", b"dashboard", b"door", b"true", b"1e309",
         b"\xe2\x98\x83" * 50, b"&lt;&gt;&amp;", b"x" * 3000]
TEXT_RE = re.compile(rb">([^<]*)<")


@st.composite
def mutated(draw, corpus: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(corpus)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 8))
        pos = draw(st.integers(0, len(data)))
        if kind >= 6:  # keep the XML well-formed: replace one element's text (reaches the handlers)
            spans = [m.span(1) for m in TEXT_RE.finditer(bytes(data))]
            if spans:
                a, b = spans[draw(st.integers(0, len(spans) - 1))]
                data[a:b] = draw(st.sampled_from(TEXTS))
        elif kind == 0 and data:  # flip a byte
            i = min(pos, len(data) - 1)
            data[i] = draw(st.integers(0, 255))
        elif kind == 1:  # insert a fragment
            data[pos:pos] = draw(st.sampled_from(FRAGMENTS))
        elif kind == 2:  # delete a run
            data[pos:pos + draw(st.integers(1, 40))] = b""
        elif kind == 3:  # truncate
            del data[pos:]
        elif kind == 4:  # duplicate a slice
            end = min(len(data), pos + draw(st.integers(1, 200)))
            data[pos:pos] = data[pos:end]
        else:  # random bytes
            data[pos:pos] = draw(st.binary(min_size=1, max_size=30))
    return bytes(data)


@pytest.fixture
def dispatcher(tmp_path):
    cfg = config_mod.loads("[onvif]\ndiscovery = false\npull_timeout_max_s = 0.01\n")
    ctx = build_context(cfg, tmp_path / "data")
    d = build_dispatcher(Core(ctx))
    d.brake.free = 10**9  # the brake has its own test; here it would only slow the fuzzer
    return ctx, d


def test_fuzz_soap_dispatcher(dispatcher):
    ctx, d = dispatcher
    creds = ctx.credentials.get()
    corpus = seeds(creds.user, creds.password)
    loop = asyncio.new_event_loop()
    info = HttpInfo(remote="192.0.2.77", host="127.0.0.1:8080", local_ip="127.0.0.1")
    seen: dict[int, int] = {}
    inputs: list[bytes] = []

    def check(data: bytes) -> None:
        resp = loop.run_until_complete(d.handle(data, info))
        seen[resp.status] = seen.get(resp.status, 0) + 1
        assert resp.status in (200, 400, 401, 413, 500), resp.status
        root = s.parse(resp.body)
        assert root.tag in (f"{{{s.S12}}}Envelope", f"{{{s.S11}}}Envelope")
        if resp.status != 200:
            assert s.is_fault(resp.body)

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(mutated(corpus))
    def one(data: bytes) -> None:
        inputs.append(data)
        d.verifier.nonces._seen.clear()  # let the signed seeds through: the handlers get fuzzed too
        check(data)

    try:
        one()
        assert d.stats["requests"] >= FUZZ_EXAMPLES
        assert d.stats["internal_errors"] == 0, "a handler raised on fuzzed input (see the log)"
        assert seen.get(200, 0) > 0 and seen.get(400, 0) > 0, seen  # both paths were exercised
        # Bounded memory. Hypothesis itself keeps a tree of everything it generated, so the RSS
        # during the run above says little about edge. Replaying the same 10,000 requests
        # (nonces forgotten, so the signed ones succeed again) through the warmed-up dispatcher
        # must not grow the process.
        gc.collect()
        rss = [rss_kib()]
        for data in inputs:
            d.verifier.nonces._seen.clear()
            check(data)
        gc.collect()
        rss.append(rss_kib())
        assert rss[1] - rss[0] < 4 * 1024, f"RSS grew {rss[1] - rss[0]} KiB replaying {len(inputs)} requests ({rss})"
        assert d.stats["internal_errors"] == 0
        assert len(d.verifier.nonces) <= d.verifier.nonces.max_items
        print(f"fuzz: {d.stats['requests']} requests, statuses {seen}, RSS per replay {rss} KiB")
    finally:
        loop.close()


def test_fuzz_discovery_datagrams(tmp_path):
    probe = (
        f'<s:Envelope xmlns:s="{s.S12}" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl">'
        "<s:Header><a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>"
        "<a:MessageID>urn:uuid:MID</a:MessageID><a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To></s:Header>"
        "<s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types>"
        "<d:Scopes>onvif://www.onvif.org/Profile/Streaming</d:Scopes></d:Probe></s:Body></s:Envelope>"
    ).encode()
    sent: list[bytes] = []
    d = Discovery(port=0, device_uuid="00000000-0000-0000-0000-000000000001",
                  scopes=lambda: ["onvif://www.onvif.org/Profile/Streaming"], xaddr_for=lambda ip: f"http://{ip}/x")
    d._sendto = lambda data, addr: sent.append(data)  # type: ignore[method-assign]
    d._loop = asyncio.new_event_loop()
    try:
        n = {"i": 0}

        @settings(max_examples=2000, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(mutated([probe, BILLION_LAUGHS, XXE]))
        def one(data: bytes) -> None:
            n["i"] += 1
            data = data.replace(b"MID", str(n["i"]).encode())
            d.datagram(data, ("127.0.0.1", 40000), "127.0.0.1", False)

        one()
    finally:
        d._loop.close()
    assert d.stats["probes"] > 0 and sent, d.stats
    for data in sent:
        root = s.parse(data)
        assert root.tag == f"{{{s.S12}}}Envelope"
