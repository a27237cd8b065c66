"""The HTTP surface refuses anyone without the device credentials, and no login can be replayed,
sent in clear, or used from another origin."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time

import aiohttp

from edge.auth import HttpAuth, parse_auth_params
from edge.credentials import Credentials

from .peers import basic_auth, digest_session
from .sensor_helpers import metric

RELAY_TOML = """
[relays.boards.main]
type = "simulated"
profile = "waveshare-8"
port = 0

[relays.channels.siren]
board = "main"
channel = 1
mode = "pulse"
pulse_ms = 100
"""


def digest_header(challenge: str, user: str, password: str, method: str, uri: str, nc: int = 1,
                  algorithm: str = "SHA-256") -> str:
    """What a client sends back for one WWW-Authenticate challenge (RFC 7616, qop=auth)."""
    p = parse_auth_params(challenge.split(" ", 1)[1])
    h = (lambda s: hashlib.sha256(s.encode()).hexdigest()) if algorithm == "SHA-256" else \
        (lambda s: hashlib.md5(s.encode()).hexdigest())
    cnonce = os.urandom(8).hex()
    ha1, ha2 = h(f"{user}:{p['realm']}:{password}"), h(f"{method}:{uri}")
    response = h(f"{ha1}:{p['nonce']}:{nc:08x}:{cnonce}:auth:{ha2}")
    return (f'Digest username="{user}", realm="{p["realm"]}", nonce="{p["nonce"]}", uri="{uri}", '
            f'algorithm={algorithm}, qop=auth, nc={nc:08x}, cnonce="{cnonce}", response="{response}"')


async def challenge(http: aiohttp.ClientSession, url: str, algorithm: str = "SHA-256") -> str:
    async with http.get(url) as r:
        assert r.status == 401
        return next(h for h in r.headers.getall("WWW-Authenticate") if f"algorithm={algorithm}" in h)


async def test_healthz_and_metrics_need_credentials(service_factory):
    async with service_factory() as svc:
        async with aiohttp.ClientSession() as http:
            for path in ("/healthz", "/metrics"):
                async with http.get(svc.base_url + path) as r:
                    assert r.status == 401
                    offered = r.headers.getall("WWW-Authenticate")
                    assert offered[0].startswith("Digest") and "algorithm=SHA-256" in offered[0]
                    assert not any(h.startswith("Basic") for h in offered)  # never invited over plain HTTP
            # Basic over plain HTTP is refused even with the right password
            async with http.get(svc.base_url + "/healthz", headers=basic_auth(svc.user, svc.password)) as r:
                assert r.status == 401
        async with digest_session(svc.user, svc.password) as dig:
            async with dig.get(svc.base_url + "/healthz") as r:
                assert r.status == 200 and (await r.json())["ready"] is True
            async with dig.get(svc.base_url + "/metrics") as r:
                text = await r.text()
                assert "edge_loop_lag_seconds" in text and "edge_component_restarts" in text
        async with digest_session(svc.user, "nope") as bad, bad.get(svc.base_url + "/healthz") as r:
            assert r.status == 401


async def test_captured_digest_header_replayed_is_refused(service_factory):
    async with service_factory(RELAY_TOML) as svc:
        url = svc.base_url + "/api/relays/siren/pulse"
        async with aiohttp.ClientSession() as http:
            ch = await challenge(http, svc.base_url + "/healthz")
            captured = digest_header(ch, svc.user, svc.password, "POST", "/api/relays/siren/pulse")
            headers = {"Authorization": captured}
            async with http.post(url, json={"ms": 50}, headers=headers) as r:
                assert r.status == 200
            pulses = await metric(svc, "edge_relay_commands_total", relay="siren")
            assert pulses == 1
            # the same bytes again: refused, nothing pulses
            async with http.post(url, json={"ms": 50}, headers=headers) as r:
                assert r.status == 401
            assert await metric(svc, "edge_relay_commands_total", relay="siren") == pulses
            # a GET /healthz header captured: good once, then not again, and never for another path
            ch = await challenge(http, svc.base_url + "/healthz")
            h1 = {"Authorization": digest_header(ch, svc.user, svc.password, "GET", "/healthz")}
            async with http.get(svc.base_url + "/metrics", headers=h1) as r:
                assert r.status == 401  # uri is /healthz, the request is /metrics
            async with http.get(svc.base_url + "/healthz", headers=h1) as r:
                assert r.status == 200
            async with http.get(svc.base_url + "/healthz", headers=h1) as r:
                assert r.status == 401
            # the same nonce with a higher count (what real clients do) is fine, MD5 too
            ch = await challenge(http, svc.base_url + "/healthz", "MD5")
            for nc in (1, 2, 3):
                h = {"Authorization": digest_header(ch, svc.user, svc.password, "GET", "/healthz", nc, "MD5")}
                async with http.get(svc.base_url + "/healthz", headers=h) as r:
                    assert r.status == 200, nc
            h = {"Authorization": digest_header(ch, svc.user, svc.password, "GET", "/healthz", 2, "MD5")}
            async with http.get(svc.base_url + "/healthz", headers=h) as r:
                assert r.status == 401  # a count already used


def test_expired_nonce_with_the_right_password_is_stale_not_wrong():
    now = [1_000_000.0]
    creds = Credentials("admin", "pw", "u", "s")
    auth = HttpAuth(lambda: creds, clock=lambda: now[0])
    ch = auth.challenge_headers()[0][1]
    now[0] += 301
    res = auth.check("GET", digest_header(ch, "admin", "pw", "GET", "/x"), "/x")
    assert not res and res.stale
    assert "stale=true" in auth.challenge_headers(stale=True)[0][1]
    res = auth.check("GET", digest_header(ch, "admin", "wrong", "GET", "/x"), "/x")
    assert not res and not res.stale  # a wrong password is never "stale"
    # a nonce this device never issued
    forged = ch.replace('nonce="', 'nonce="1')
    assert not auth.check("GET", digest_header(forged, "admin", "pw", "GET", "/x"), "/x")


async def test_cross_origin_and_non_post_state_changes_are_refused(service_factory):
    async with service_factory(RELAY_TOML) as svc:
        url = svc.base_url + "/api/relays/siren/pulse"
        async with digest_session(svc.user, svc.password) as http:
            async with http.post(url, json={}, headers={"Origin": "http://evil.example"}) as r:
                assert r.status == 403
            async with http.post(url, json={}, headers={"Origin": "null"}) as r:
                assert r.status == 403
            async with http.post(url, json={}, headers={"Referer": "http://evil.example/page"}) as r:
                assert r.status == 403
            async with http.get(url) as r:
                assert r.status == 405
            async with http.put(url, json={}) as r:
                assert r.status == 405
            # the browser's form-post shapes: query parameters, no body, a form body
            async with http.post(url + "?ms=60000") as r:
                assert r.status == 400
            async with http.post(url, data=b"", headers={"Content-Type": "application/json"}) as r:
                assert r.status == 400
            async with http.post(url, data={"ms": "60000"}) as r:
                assert r.status == 415
            async with http.post(url, json=[1]) as r:
                assert r.status == 400
            # the device's own origin is fine
            async with http.post(url, json={"ms": 50}, headers={"Origin": svc.base_url}) as r:
                assert r.status == 200


async def test_non_ascii_authorization_fields_get_401_not_500(service_factory):
    async with service_factory() as svc:
        host, port = svc.base_url.removeprefix("http://").split(":")
        values = [
            'Digest username="admïn", realm="edge", nonce="x", uri="/healthz", response="é"'.encode(),
            'Digest username="admin", realm="édge", nonce="ü.ü.ü", uri="/healthz", response="00", qop=auth, nc=ü, cnonce="c"'.encode(),
            b'Digest username="\xff\xfe", realm="edge", nonce="a.b.c", uri="/healthz", response="\xff"',
            "Basic " .encode() + "ädmin:pässword".encode("latin-1"),
            b"Digest \xc3\x28",
        ]
        for value in values:
            raw = await asyncio.to_thread(_raw_get, host, int(port), value)
            assert raw.startswith(b"HTTP/1.1 401"), (value, raw[:200])
        async with digest_session(svc.user, svc.password) as dig, dig.get(svc.base_url + "/healthz") as r:
            assert r.status == 200  # and the server is fine


def _raw_get(host: str, port: int, auth: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: " + host.encode() + b"\r\nConnection: close\r\nAuthorization: " + auth
                  + b"\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


async def test_failed_logins_slow_down_and_the_right_password_resets(service_factory):
    async with service_factory("[web]\nhost = \"127.0.0.1\"\nport = %d\nauth_free_failures = 2\n" % _port()) as svc:
        elapsed = []
        for _ in range(4):
            t0 = time.monotonic()
            async with digest_session(svc.user, "guess") as bad, bad.get(svc.base_url + "/healthz") as r:
                assert r.status == 401
            elapsed.append(time.monotonic() - t0)
        # failures 3 and 4 wait 0.25 and 0.5 s
        assert elapsed[2] >= 0.24 and elapsed[3] >= 0.49, elapsed
        async with digest_session(svc.user, svc.password) as dig, dig.get(svc.base_url + "/healthz") as r:
            assert r.status == 200
        t0 = time.monotonic()
        async with digest_session(svc.user, "guess") as bad, bad.get(svc.base_url + "/healthz") as r:
            assert r.status == 401
        assert time.monotonic() - t0 < 0.24  # counting restarted


def _port() -> int:
    from .peers import free_port

    return free_port()


async def test_connection_caps_and_slow_or_silent_clients_are_closed(service_factory):
    toml = ('[web]\nhost = "127.0.0.1"\nport = %d\nmax_connections = 8\nmax_connections_per_client = 4\n'
            'idle_timeout_s = 1.5\n' % _port())
    async with service_factory(toml) as svc:
        host, port = svc.base_url.removeprefix("http://").split(":")
        held = [await asyncio.open_connection(host, int(port)) for _ in range(4)]
        # a slow-headers client: a few bytes at a time, never the blank line
        held[0][1].write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        await held[0][1].drain()
        r, w = await asyncio.open_connection(host, int(port))  # the 5th from this address
        answer = await asyncio.wait_for(r.read(), 5)
        assert answer.startswith(b"HTTP/1.1 503"), answer
        w.close()
        t0 = time.monotonic()
        for i, (r, w) in enumerate(held):
            if i == 0:
                for _ in range(3):
                    w.write(b"X-Slow: 1\r\n")
                    await asyncio.sleep(0.2)
            assert await asyncio.wait_for(r.read(), 5) == b"", i  # closed, no request ever completed
            w.close()
        assert time.monotonic() - t0 < 4, "silent and slow connections were not closed after idle_timeout_s"
        async with digest_session(svc.user, svc.password) as dig, dig.get(svc.base_url + "/healthz") as resp:
            assert resp.status == 200  # slots freed
