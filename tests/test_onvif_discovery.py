"""WS-Discovery against the running service: raw probes on a free UDP port (unicast to
127.0.0.1 and multicast on this machine's interface), Hello/Bye, stable endpoint, off switch."""

from __future__ import annotations

import asyncio
import socket
import struct
import uuid

import pytest
from lxml import etree

from edge.onvif import netinfo

from .peers import free_port

D = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
A = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
S12 = "http://www.w3.org/2003/05/soap-envelope"
DN = "http://www.onvif.org/ver10/network/wsdl"
TDS = "http://www.onvif.org/ver10/device/wsdl"
GROUP = "239.255.255.250"


def probe(message_id: str, types: str = "dn:NetworkVideoTransmitter", scopes: str = "", match_by: str = "",
          action: str = "Probe") -> bytes:
    mb = f' MatchBy="{match_by}"' if match_by else ""
    scopes_el = f"<d:Scopes{mb}>{scopes}</d:Scopes>" if scopes else ""
    types_el = f"<d:Types>{types}</d:Types>" if types else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{S12}" xmlns:a="{A}" xmlns:d="{D}" '
        f'xmlns:dn="{DN}" xmlns:tds="{TDS}" xmlns:prn="urn:printers"><s:Header>'
        f"<a:Action>{D}/{action}</a:Action><a:MessageID>{message_id}</a:MessageID>"
        f"<a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To></s:Header>"
        f"<s:Body><d:Probe>{types_el}{scopes_el}</d:Probe></s:Body></s:Envelope>"
    ).encode()


def udp_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


async def recv(sock: socket.socket, timeout: float) -> tuple[bytes, tuple[str, int]] | None:
    try:
        return await asyncio.wait_for(asyncio.get_running_loop().sock_recvfrom(sock, 65535), timeout)
    except TimeoutError:
        return None


def match_fields(data: bytes) -> dict:
    root = etree.fromstring(data)
    m = root.find(f".//{{{D}}}ProbeMatch")
    if m is None:
        m = root.find(f".//{{{D}}}ResolveMatch")
    if m is None:
        m = root.find(f".//{{{D}}}Hello")
    if m is None:
        m = root.find(f".//{{{D}}}Bye")
    if m is None:  # a probe (ours, looped back on the group)
        return {"action": root.findtext(f".//{{{A}}}Action")}
    types_el = m.find(f"{{{D}}}Types")
    types = set()
    if types_el is not None:
        for t in types_el.text.split():
            prefix, _, local = t.partition(":")
            types.add((types_el.nsmap[prefix], local))
    return {
        "action": root.findtext(f".//{{{A}}}Action"),
        "relates_to": root.findtext(f".//{{{A}}}RelatesTo"),
        "message_id": root.findtext(f".//{{{A}}}MessageID"),
        "epr": m.findtext(f"{{{A}}}EndpointReference/{{{A}}}Address"),
        "types": types,
        "scopes": (m.findtext(f"{{{D}}}Scopes") or "").split(),
        "xaddrs": (m.findtext(f"{{{D}}}XAddrs") or "").split(),
    }


def config(udp_port: int, web_port: int, discovery: bool = True) -> str:
    return (
        f'[site]\nname = "Demo site"\nlocation = "Lab"\n'
        f'[web]\nhost = "127.0.0.1"\nport = {web_port}\n'
        f'[onvif]\ndiscovery = {"true" if discovery else "false"}\ndiscovery_port = {udp_port}\n'
        f'hardware = "edge-pi4"\n'
    )


async def test_unicast_probe_gets_a_probe_match(service_factory):
    udp, web = free_port(socket.SOCK_DGRAM), free_port()
    async with service_factory(config(udp, web)) as svc:
        creds = svc.ctx.credentials.get()
        loop = asyncio.get_running_loop()
        with udp_socket() as sock:
            mid = uuid.uuid4().urn
            await loop.sock_sendto(sock, probe(mid), ("127.0.0.1", udp))
            got = await recv(sock, 3)
            assert got is not None, "no ProbeMatches"
            data, src = got
            assert src[1] == udp  # answered from the discovery port
            f = match_fields(data)
            assert f["action"] == f"{D}/ProbeMatches"
            assert f["relates_to"] == mid
            assert f["epr"] == f"urn:uuid:{creds.device_uuid}"
            assert {(DN, "NetworkVideoTransmitter"), (TDS, "Device")} <= f["types"]
            assert "onvif://www.onvif.org/Profile/Streaming" in f["scopes"]
            assert "onvif://www.onvif.org/name/Demo%20site" in f["scopes"]
            assert "onvif://www.onvif.org/hardware/edge-pi4" in f["scopes"]
            assert "onvif://www.onvif.org/location/Lab" in f["scopes"]
            assert f["xaddrs"] == [f"http://127.0.0.1:{web}/onvif/device_service"]

            # the same MessageID again (SOAP-over-UDP repeats): answered once only
            await loop.sock_sendto(sock, probe(mid), ("127.0.0.1", udp))
            assert await recv(sock, 0.7) is None

            # probes that do not match get no answer
            for p in (probe(uuid.uuid4().urn, types="prn:Printer"),
                      probe(uuid.uuid4().urn, scopes="onvif://www.onvif.org/name/Other"),
                      probe(uuid.uuid4().urn, scopes="onvif://www.onvif.org/Profile/Stream"),
                      probe(uuid.uuid4().urn, scopes="onvif://www.onvif.org/Profile/streaming",
                            match_by=f"{D}/strcmp0")):
                await loop.sock_sendto(sock, p, ("127.0.0.1", udp))
            assert await recv(sock, 0.7) is None

            # no type, tds:Device, a scope prefix: all match
            for p in (probe(uuid.uuid4().urn, types=""), probe(uuid.uuid4().urn, types="tds:Device"),
                      probe(uuid.uuid4().urn, scopes="onvif://www.onvif.org/Profile onvif://www.onvif.org/name")):
                await loop.sock_sendto(sock, p, ("127.0.0.1", udp))
                got = await recv(sock, 3)
                assert got is not None and match_fields(got[0])["epr"] == f"urn:uuid:{creds.device_uuid}"

            # Resolve by our endpoint reference
            resolve = probe(uuid.uuid4().urn, action="Resolve").replace(
                b"<d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe>",
                f"<d:Resolve><a:EndpointReference><a:Address>urn:uuid:{creds.device_uuid}</a:Address>"
                f"</a:EndpointReference></d:Resolve>".encode())
            await loop.sock_sendto(sock, resolve, ("127.0.0.1", udp))
            got = await recv(sock, 3)
            assert got is not None and match_fields(got[0])["action"] == f"{D}/ResolveMatches"

            # garbage does not stop it
            for junk in (b"", b"\x00" * 100, b"<x/>", b"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY b 'c'>]><a>&b;</a>"):
                await loop.sock_sendto(sock, junk, ("127.0.0.1", udp))
            await loop.sock_sendto(sock, probe(uuid.uuid4().urn), ("127.0.0.1", udp))
            assert await recv(sock, 3) is not None


def multicast_interface() -> netinfo.Interface | None:
    for itf in netinfo.interfaces():
        if itf.up and itf.multicast and not itf.loopback:
            return itf
    return None


def group_listener(port: int, itf: netinfo.Interface) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", port))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton(itf.ipv4)))
    s.setblocking(False)
    return s


async def test_hello_bye_multicast_probe_and_stable_endpoint(service_factory, tmp_path):
    itf = multicast_interface()
    if itf is None:
        pytest.skip("no up, multicast-capable non-loopback IPv4 interface here for WS-Discovery multicast")
    udp, web = free_port(socket.SOCK_DGRAM), free_port()
    loop = asyncio.get_running_loop()
    data_dir = tmp_path / "data"
    with group_listener(udp, itf) as listener:
        async with service_factory(config(udp, web), data_dir=data_dir) as svc:
            epr = f"urn:uuid:{svc.ctx.credentials.get().device_uuid}"
            hello = None
            while hello is None:
                got = await recv(listener, 3)
                assert got is not None, "no Hello"
                f = match_fields(got[0])
                if f["action"] == f"{D}/Hello":
                    hello = f
            assert hello["epr"] == epr
            assert hello["xaddrs"] == [f"http://{itf.ipv4}:{web}/onvif/device_service"]
            assert "onvif://www.onvif.org/Profile/Streaming" in hello["scopes"]

            # a multicast probe on that interface: the XAddr is that interface's address
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
                out.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(itf.ipv4))
                out.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
                out.bind((itf.ipv4, 0))
                out.setblocking(False)
                mid = uuid.uuid4().urn
                await loop.sock_sendto(out, probe(mid), (GROUP, udp))
                got = await recv(out, 3)
                assert got is not None, "no ProbeMatches to a multicast probe"
                f = match_fields(got[0])
                assert f["relates_to"] == mid and f["xaddrs"] == [f"http://{itf.ipv4}:{web}/onvif/device_service"]
        # stopped: Bye with the same endpoint
        bye = None
        while bye is None:
            got = await recv(listener, 3)
            assert got is not None, "no Bye"
            f = match_fields(got[0])
            if f["action"] == f"{D}/Bye":
                bye = f
        assert bye["epr"] == epr

        # restarted on the same data: the same endpoint reference
        async with service_factory(config(udp, web), data_dir=data_dir):
            while True:
                got = await recv(listener, 3)
                assert got is not None, "no Hello after restart"
                f = match_fields(got[0])
                if f["action"] == f"{D}/Hello":
                    assert f["epr"] == epr
                    break


async def test_discovery_can_be_switched_off(service_factory):
    udp, web = free_port(socket.SOCK_DGRAM), free_port()
    async with service_factory(config(udp, web, discovery=False)) as svc:
        assert svc.component("onvif").discovery is None
        with udp_socket() as sock:
            await asyncio.get_running_loop().sock_sendto(sock, probe(uuid.uuid4().urn), ("127.0.0.1", udp))
            assert await recv(sock, 1.0) is None
        # and the port is free: nothing of ours holds it
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("", udp))


def ws_discover(port: int, scope: str, timeout: float = 2.0) -> list:
    """Home Assistant's discovery: WSDiscovery's threaded client, probing by scope."""
    from wsdiscovery.discovery import ThreadedWSDiscovery
    from wsdiscovery.scope import Scope

    wsd = ThreadedWSDiscovery()
    wsd.start()
    try:
        return wsd.searchServices(scopes=[Scope(scope)], timeout=timeout)
    finally:
        wsd.stop()


async def test_wsdiscovery_client_finds_it_by_the_streaming_scope(service_factory, monkeypatch):
    itf = multicast_interface()
    if itf is None:
        pytest.skip("no up, multicast-capable non-loopback IPv4 interface here for WS-Discovery multicast")
    import wsdiscovery.threaded

    udp, web = free_port(socket.SOCK_DGRAM), free_port()
    # the client multicasts to (and listens on) its module's port: point it at ours, not 3702
    monkeypatch.setattr(wsdiscovery.threaded, "MULTICAST_PORT", udp)
    async with service_factory(config(udp, web)) as svc:
        found = await asyncio.to_thread(ws_discover, udp, "onvif://www.onvif.org/Profile/Streaming")
        ours = [x for x in found if x.getEPR() == f"urn:uuid:{svc.ctx.credentials.get().device_uuid}"]
        assert len(ours) == 1, [x.getEPR() for x in found]
        assert ours[0].getXAddrs() == [f"http://{itf.ipv4}:{web}/onvif/device_service"]
        scopes = [str(x) for x in ours[0].getScopes()]
        assert "onvif://www.onvif.org/name/Demo site" in scopes  # the client unquotes %20
        # a scope we do not have finds nothing
        none = await asyncio.to_thread(ws_discover, udp, "onvif://www.onvif.org/Profile/G", 1.0)
        assert not [x for x in none if x.getEPR() == ours[0].getEPR()]
