"""One YoLink source (``[yolink.NAME]``): a cloud account or a Local Hub, as sensor readings.

A session: token -> home id (cloud: ``Home.getGeneralInfo``; a Local Hub: its sub-net id) ->
device list (``Home.getDeviceList``: sensors are picked by name or id) -> the MQTT report topic
(``yl-home/<home>/+/report``, ``ylsubnet/<net>/+/report``) subscribed on YoLink's broker with
the token (cloud: the token is the username, no password; Local Hub: the client id and the
token as password), at QoS 1 in a persistent session under one stable client id. Before the
token expires a new one is fetched and a new connection made with it under the same client id:
it takes the session over from the old one, so a report published in between (even after the
broker dropped the old token's connection the moment the new token was issued) is queued by
the broker and delivered; a report that arrives twice (by its ``msgid``) is used once. A broker
that refuses the token gets a new token; any
failure ends the session and a new one starts after a backoff (YoLink allows 10 connections per
5 minutes per credential). Reports are decoded by the ``yolink`` adapter, bad ones counted.

Like the ingest lanes (``sensors/acks.py``), a report is acknowledged to YoLink's broker only
once what it produced is committed (each connection owes its own acknowledgements), and one
the broker delivers again after a crash is recognised by its packet id and digest and
recorded once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import aiohttp
import aiomqtt

from ...backoff import Backoff
from ...bus import SensorReading
from ...mqtt.client import raise_if_cancelling, take_messages
from ..acks import AckQueue, Deliveries
from ..adapters import ADAPTERS, BadPayload, parse_json
from ..adapters.yolink import YoLink
from ..badpayload import BadPayloadReporter
from ..config import SensorConfig, YoLinkSource
from ..router import reading_for
from .api import CredentialsRefused, Token, YoLinkApi, YoLinkError

log = logging.getLogger("edge.sensors.yolink")

REFUSED_CODES = {4, 5, 134, 135}  # CONNACK: bad user name or password / not authorized
SEEN_IDS = 4096


def read_secret_file(path: Path, name: str) -> str:
    try:
        st = path.stat()
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            os.chmod(path, 0o600)
            log.warning("yolink.%s: %s was readable by others; set to 0600", name, path)
        secret = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise CredentialsRefused(f"no Secret Key in {path}: write it with `edge sources set-secret {name}` "
                                 f"(or set yolink.{name}.secret_file)") from None
    except PermissionError:
        raise CredentialsRefused(f"cannot read the Secret Key in {path}: permission denied") from None
    if not secret:
        raise CredentialsRefused(f"{path} is empty: write the Secret Key with `edge sources set-secret {name}`")
    return secret


# QoS 1 reports YoLink's broker sends before it waits for acknowledgements: not known, so
# Mosquitto's default (a commit at most every 10 waiting reports; YoLink traffic is light)
ACK_WINDOW = 20


class Connection:
    """One MQTT connection to YoLink's broker with one token, subscribed to the report topic;
    it owes the PUBACKs of what it received (``acks``)."""

    def __init__(self, cfg: YoLinkSource, token: Token, client_id: str, topic: str,
                 on_message: Callable[[Any, AckQueue], None], store: Callable[[], Any] = lambda: None):
        host, port = cfg.broker_address()
        if cfg.mode == "cloud":
            self.username, self.password = token.access, None
        else:
            self.username, self.password = cfg.uaid, token.access
        self.client = aiomqtt.Client(host, port, username=self.username, password=self.password, identifier=client_id,
                                     clean_session=False, keepalive=60, timeout=10)
        self.acks = AckQueue(store, ACK_WINDOW)
        # door and leak sensors: their TCP ACKs leave at once (see take_messages)
        self.acks.connected(take_messages(self.client, lambda msg: on_message(msg, self.acks), quickack=True))
        self._store = store
        st = store()
        if st is not None:
            st.add_listener(self.acks.release)
        self.topic = topic
        self.token = token
        self.subscribed = asyncio.Event()
        self.task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._run(), name=f"yolink-mqtt:{client_id}")

    async def _run(self) -> None:
        async with self.client:
            raise_if_cancelling()
            await self.client.subscribe(self.topic, qos=1)
            raise_if_cancelling()
            self.subscribed.set()
            async for _ in self.client.messages:  # messages go to on_message as they arrive
                pass
        raise aiomqtt.MqttError("the broker closed the connection")

    async def ready(self) -> None:
        """Returns once subscribed; raises what ended the connection before that."""
        waiter = asyncio.ensure_future(self.subscribed.wait())
        try:
            await asyncio.wait({waiter, self.task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not self.subscribed.is_set():
            self.task.result()  # raises its error
            raise aiomqtt.MqttError("connection ended before subscribing")

    async def close(self) -> None:
        if not self.task.done():
            self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.acks.disconnected()  # the broker delivers those again on the session's next connection
        st = self._store()
        if st is not None:
            st.remove_listener(self.acks.release)


def refused(exc: BaseException) -> bool:
    rc = getattr(exc, "rc", None)
    return rc is not None and int(getattr(rc, "value", rc)) in REFUSED_CODES


class YoLinkSourceRunner:
    def __init__(self, name: str, cfg: YoLinkSource, data_dir: Path, sensors: list[tuple[int, SensorConfig]],
                 feed: Callable[[SensorReading], Any], bad: BadPayloadReporter, client_base: str,
                 store: Callable[[], Any] = lambda: None):
        self.name = name
        self.cfg = cfg
        self.sensors = sensors
        self.feed = feed
        self.bad = bad
        # one stable client id per source (a UUID, as YoLink asks): the session survives a new token
        self.client_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"edge:{client_base}:yolink:{name}"))
        secret_path = cfg.secret_path(data_dir, name)
        self.api = YoLinkApi(cfg.base_url(), cfg.uaid, lambda: read_secret_file(secret_path, name),
                             f"yolink.{name}.uaid and the Secret Key in {secret_path}")
        self.label = f"yolink:{name}"
        self.connected = False
        self.connects = 0
        self.renewals = 0
        self.received = 0
        self.duplicates = 0
        self.last_error = ""
        self.home_id = cfg.net_id or ""
        self.devices: list[dict[str, Any]] = []
        self.by_device: dict[str, list[SensorConfig]] = {}
        self.problems: list[str] = []
        self.unconfigured: dict[str, int] = {}
        self.conn: Connection | None = None
        self._store = store
        self.deliveries = Deliveries(self.client_id, store, ACK_WINDOW)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._logged = ""

    # ---- the session --------------------------------------------------------------------
    async def run(self) -> None:
        backoff = Backoff(self.cfg.backoff_initial_s, self.cfg.backoff_max_s)
        try:
            while True:
                began = time.monotonic()
                try:
                    await self._session(backoff)
                except (YoLinkError, aiohttp.ClientError, asyncio.TimeoutError, aiomqtt.MqttError, OSError) as exc:
                    self._failed(exc)
                finally:
                    self.connected = False
                    await self._close_conn()
                if time.monotonic() - began > 300:
                    backoff.reset()
                delay = backoff.next()
                msg = f"yolink.{self.name}: {self.last_error}"
                if msg != self._logged:  # one clear line per distinct problem, not one per retry
                    self._logged = msg
                    log.error("%s; retrying with backoff (next in %.0f s)", msg, delay)
                else:
                    log.debug("%s; retry in %.0f s", msg, delay)
                await asyncio.sleep(delay)
        finally:
            await self.api.close()

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, aiomqtt.MqttError) and refused(exc):
            self.api.invalidate()  # the broker refused the token: the next session fetches a new one
            self.last_error = f"broker {self._broker()} refused the token ({exc}); a new token is fetched"
        elif isinstance(exc, YoLinkError):
            self.last_error = str(exc)
        elif isinstance(exc, aiomqtt.MqttError):
            self.last_error = f"broker {self._broker()}: {exc or type(exc).__name__}"
        else:
            self.last_error = f"{self.cfg.base_url()}: {type(exc).__name__}: {exc}"

    def _broker(self) -> str:
        host, port = self.cfg.broker_address()
        return f"{host}:{port}"

    async def _session(self, backoff: Backoff) -> None:
        token = await self.api.token()
        if self.cfg.mode == "cloud":
            info = await self.api.call("Home.getGeneralInfo")
            home = info.get("id")
            if not isinstance(home, str) or not home:
                raise YoLinkError("Home.getGeneralInfo: no home id in the answer")
            self.home_id = home
            topic = f"yl-home/{home}/+/report"
        else:
            topic = f"ylsubnet/{self.cfg.net_id}/+/report"
        await self._load_devices()
        self.conn = await self._connect(token, topic)
        self.connected = True
        self.last_error = ""
        if self._logged:
            log.info("yolink.%s: connected again", self.name)
        self._logged = ""
        backoff.reset()
        log.info("yolink.%s: subscribed %s on %s, %d devices, %d sensors", self.name, topic, self._broker(),
                 len(self.devices), sum(len(v) for v in self.by_device.values()))
        next_refresh = time.monotonic() + self.cfg.refresh_s
        while True:
            conn = self.conn
            wait_s = max(0.0, min(conn.token.renew_at - self.api.clock(), next_refresh - time.monotonic()))
            self.api.renewed.clear()
            renewed = asyncio.ensure_future(self.api.renewed.wait())
            try:
                done, _ = await asyncio.wait({conn.task, renewed}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                renewed.cancel()
            if conn.task in done:
                conn.task.result()  # raises why the connection ended
            cur = self.api.current
            if cur is not None and cur is not conn.token and cur.fresh(self.api.clock()):
                await self._move_to_new_token(topic, cur)  # renewed after the API rejected the old one
            elif self.api.clock() >= conn.token.renew_at:
                await self._move_to_new_token(topic)
            if time.monotonic() >= next_refresh:
                next_refresh = time.monotonic() + self.cfg.refresh_s
                await self._load_devices()

    async def _connect(self, token: Token, topic: str) -> Connection:
        self.connects += 1
        await self.deliveries.load_seen()
        conn = Connection(self.cfg, token, self.client_id, topic, self._on_message, self._store)
        try:
            await conn.ready()
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _move_to_new_token(self, topic: str, token: Token | None = None) -> None:
        """New token, a new connection with it takes the session over, the old one is closed:
        what was published in between waits in the broker's session."""
        token = token or await self.api.renew()
        new = await self._connect(token, topic)
        old, self.conn = self.conn, new
        self.renewals += 1
        if old is not None:
            await old.close()
        log.info("yolink.%s: token renewed, connection moved to it", self.name)

    async def _close_conn(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    # ---- devices ----------------------------------------------------------------------------
    async def _load_devices(self) -> None:
        data = await self.api.call("Home.getDeviceList")
        devices = data.get("devices")
        if not isinstance(devices, list):
            raise YoLinkError("Home.getDeviceList: no device list in the answer")
        self.devices = [{"id": str(d.get("deviceId", "")), "name": str(d.get("name", "")), "type": str(d.get("type", "")),
                         "model": str(d.get("modelName") or "")} for d in devices if isinstance(d, dict)]
        by_id = {d["id"]: d for d in self.devices}
        by_name: dict[str, list[dict[str, Any]]] = {}
        for d in self.devices:
            by_name.setdefault(d["name"].strip().casefold(), []).append(d)
        self.by_device = {}
        problems = []
        for i, s in self.sensors:
            want = (s.device or "").strip()
            found = [by_id[want]] if want in by_id else by_name.get(want.casefold(), [])
            if len(found) != 1:
                names = ", ".join(f"{d['name']} ({d['type']})" for d in self.devices) or "none"
                why = "is not a device" if not found else f"names {len(found)} devices (use its deviceId)"
                problems.append(f"sensors[{i}].device: {want!r} {why} of yolink.{self.name} (devices: {names[:300]})")
                continue
            d = found[0]
            self.by_device.setdefault(d["id"], []).append(s)
            d["sensor"] = s.id
            expected = YoLink.kinds_for(d["type"])
            if expected is None:
                problems.append(f"sensors[{i}] ({s.id}): YoLink device {d['name']!r} is a {d['type']}, "
                                "a type edge does not read yet")
            elif s.kind not in expected:
                problems.append(f"sensors[{i}] ({s.id}): kind {s.kind!r} but YoLink device {d['name']!r} is a {d['type']} "
                                f"(kinds: {', '.join(sorted(expected))})")
        for p in problems:
            if p not in self.problems:
                log.error("yolink.%s: %s", self.name, p)
        self.problems = problems

    # ---- reports ----------------------------------------------------------------------------
    def _on_message(self, msg: Any, acks: AckQueue) -> None:
        self.received += 1
        self.deliveries.deliver(msg, acks, self._report)

    def _report(self, raw_topic: bytes, raw: bytes) -> None:
        topic = raw_topic.decode("utf-8", "replace")
        try:
            data = parse_json(raw)
            if not isinstance(data, dict):
                raise BadPayload(f"expected a JSON object, got {type(data).__name__}", "type")
        except BadPayload as exc:
            self.bad.report("yolink", topic, exc.category, exc.reason)
            return
        msgid = data.get("msgid")
        key = f"{msgid}" if isinstance(msgid, (str, int)) and not isinstance(msgid, bool) else raw.hex()[:256]
        if key in self._seen:
            self.duplicates += 1  # the same report on the old and the new connection
            return
        self._seen[key] = None
        if len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        dev = data.get("deviceId")
        if not isinstance(dev, str):
            parts = topic.split("/")
            dev = parts[2] if len(parts) == 4 else ""
        sensors = self.by_device.get(dev)
        if not sensors:
            self.unconfigured[dev[:64]] = self.unconfigured.get(dev[:64], 0) + 1
            return
        for s in sensors:
            try:
                fields = ADAPTERS["yolink"].decode(topic, data, raw, s)
            except BadPayload as exc:
                self.bad.report("yolink", topic, exc.category, exc.reason)
                continue
            except Exception as exc:  # noqa: BLE001 - an adapter bug must not stop the source
                self.bad.report("yolink", topic, "error", f"adapter failed: {type(exc).__name__}: {str(exc)[:80]}")
                continue
            if fields:
                self.feed(reading_for(s, fields, self.label, time.time()))

    # ---- status -----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        tok = self.api.current
        now = self.api.clock()
        return {"name": self.label, "type": f"yolink-{self.cfg.mode}", "connected": self.connected,
                "address": f"{self.cfg.base_url()} / {self._broker()}", "home_id": self.home_id,
                "token_expires_in_s": None if tok is None else round(tok.expires_at - now, 1),
                "token_renews_in_s": None if tok is None else round(tok.renew_at - now, 1),
                "tokens_issued": self.api.tokens_issued, "renewals": self.renewals, "connects": self.connects,
                "messages": self.received, "duplicates_dropped": self.duplicates + self.deliveries.duplicates, "last_error": self.last_error,
                "problems": list(self.problems), "devices": [dict(d) for d in self.devices],
                "unconfigured_devices": dict(self.unconfigured)}
