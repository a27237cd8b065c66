"""The HTTP surface refuses anyone without the device credentials."""

from __future__ import annotations

import aiohttp

from .peers import basic_auth


async def test_healthz_and_metrics_need_credentials(service_factory):
    async with service_factory() as svc:
        async with aiohttp.ClientSession() as http:
            for path in ("/healthz", "/metrics"):
                async with http.get(svc.base_url + path) as r:
                    assert r.status == 401
                    assert any(h.startswith("Digest") for h in r.headers.getall("WWW-Authenticate"))
                async with http.get(svc.base_url + path, headers=basic_auth(svc.user, "wrong-password")) as r:
                    assert r.status == 401
            async with http.get(svc.base_url + "/healthz", headers=basic_auth(svc.user, svc.password)) as r:
                assert r.status == 200
                body = await r.json()
                assert body["ready"] is True
            async with http.get(svc.base_url + "/metrics", headers=basic_auth(svc.user, svc.password)) as r:
                text = await r.text()
                assert "edge_loop_lag_seconds" in text
                assert "edge_component_restarts" in text


async def test_digest_auth_accepted(service_factory):
    async with service_factory() as svc:
        async with aiohttp.ClientSession() as http:
            mw = aiohttp.DigestAuthMiddleware(svc.user, svc.password)
            async with aiohttp.ClientSession(middlewares=(mw,)) as dig:
                async with dig.get(svc.base_url + "/healthz") as r:
                    assert r.status == 200
            bad = aiohttp.DigestAuthMiddleware(svc.user, "nope")
            async with aiohttp.ClientSession(middlewares=(bad,)) as dig:
                async with dig.get(svc.base_url + "/healthz") as r:
                    assert r.status == 401
