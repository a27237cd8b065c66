"""ONVIF figures on this machine, printed as one JSON line:

- soap_requests_per_s: signed GetDeviceInformation calls (WS-UsernameToken PasswordDigest)
  over real HTTP keep-alive, 4 clients in parallel;
- soap_dispatch_us: the SOAP layer alone (parse, verify, handler, serialise), in-process;
- event_latency_ms_p50/p99: bus Alarm published -> PullMessages answer received by a client
  that was long-polling.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402

from edge.bus import Alarm  # noqa: E402
from edge.onvif.soap import HttpInfo  # noqa: E402
from tests import onvif_soap as s  # noqa: E402
from tests.peers import run_service_from_toml  # noqa: E402

HTTP_REQUESTS = 2000
DISPATCH_REQUESTS = 3000
EVENTS = 200


async def main() -> dict:
    out: dict = {"bench": "onvif"}
    with tempfile.TemporaryDirectory() as d:
        async with run_service_from_toml("[onvif]\ndiscovery = false\n", Path(d)) as svc:
            url = svc.base_url + "/onvif/device_service"
            call = s.op("GetDeviceInformation")

            async def client(http: aiohttp.ClientSession, n: int) -> None:
                for _ in range(n):
                    body = s.envelope(call, s.security(svc.user, svc.password))
                    async with http.post(url, data=body, headers={"Content-Type": s.CT12}) as r:
                        assert r.status == 200
                        await r.read()

            async with aiohttp.ClientSession() as http:
                await client(http, 20)
                t0 = time.perf_counter()
                await asyncio.gather(*(client(http, HTTP_REQUESTS // 4) for _ in range(4)))
                out["soap_requests_per_s"] = round(HTTP_REQUESTS / (time.perf_counter() - t0), 1)

            d_ = svc.component("onvif").dispatcher
            info = HttpInfo(remote="127.0.0.1", host="127.0.0.1:80", local_ip="127.0.0.1")
            bodies = [s.envelope(call, s.security(svc.user, svc.password)) for _ in range(DISPATCH_REQUESTS)]
            t0 = time.perf_counter()
            for b in bodies:
                r = await d_.handle(b, info)
                assert r.status == 200
            out["soap_dispatch_us"] = round((time.perf_counter() - t0) / DISPATCH_REQUESTS * 1e6, 1)

            # event latency: a long-polling client, an alarm toggled on the bus
            events_url = svc.base_url + "/onvif/events_service"
            async with aiohttp.ClientSession() as http:
                body = s.envelope(s.op("CreatePullPointSubscription", s.TEV), s.security(svc.user, svc.password))
                async with http.post(events_url, data=body, headers={"Content-Type": s.CT12}) as r:
                    addr = s.parse(await r.read()).findtext(".//{http://www.w3.org/2005/08/addressing}Address")

                async def pull() -> bytes:
                    b = s.envelope(s.op("PullMessages", s.TEV, "<ns0:Timeout>PT10S</ns0:Timeout>"
                                                               "<ns0:MessageLimit>10</ns0:MessageLimit>"),
                                   s.security(svc.user, svc.password))
                    async with http.post(addr, data=b, headers={"Content-Type": s.CT12}) as r:
                        return await r.read()

                await pull()  # the Initialized messages
                lat = []
                for i in range(EVENTS):
                    task = asyncio.create_task(pull())
                    await asyncio.sleep(0.01)  # the poll is waiting
                    t0 = time.perf_counter()
                    svc.ctx.bus.publish(Alarm("door:open", "door", i % 2 == 0, "open", "bench"))
                    data = await task
                    lat.append((time.perf_counter() - t0) * 1000)
                    assert b"DigitalInput" in data
                lat.sort()
                out["event_latency_ms_p50"] = round(statistics.median(lat), 2)
                out["event_latency_ms_p99"] = round(lat[int(len(lat) * 0.99) - 1], 2)
    return out


if __name__ == "__main__":
    import logging

    logging.disable(logging.WARNING)
    print(json.dumps(asyncio.run(main())))
