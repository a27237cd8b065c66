"""The RTSP server: gst-rtsp-server on its own GLib main loop thread.

One shared media factory per stream (the main stream and the substream, each on its own
mount): whatever the number of clients there is one media pipeline per stream,
``appsrc (H.264 access units) ! h264parse ! rtph264pay``, and each picture is encoded once,
upstream of it (edge/video/component.py). Clients use RTP over TCP (interleaved) or UDP
unicast. Every request needs the device credentials (RTSP Digest); a rotation swaps them at once.
Limits: at most ``max_clients`` connections (more are closed at once) and as many sessions; a
connection that has set up no session within ``idle_timeout_s`` (a client that connects and
says nothing, or keeps failing its login) is closed; request bodies are capped.

What the rest of edge calls (from any thread):

- ``push_au(data, is_key, stream)``: hand an encoded access unit to that stream's media (a
  fresh media gets nothing until the first keyframe, so a client never starts on a broken
  picture).
- ``set_credentials(user, password)``.
- ``disconnect_clients()``: after an encoder change, so clients reconnect to the new stream.
- ``on_keyframe_needed``: called when a media is created and on every client's PLAY.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

log = logging.getLogger("edge.video.rtsp")

REALM = "edge"
ROLE = "admin"

MEDIA_LAUNCH = (
    "( appsrc name=h264src is-live=true do-timestamp=true format=time block=false "
    "max-bytes=8000000 leaky-type=downstream "
    "caps=video/x-h264,stream-format=byte-stream,alignment=au "
    "! h264parse config-interval=-1 ! video/x-h264,alignment=au "
    "! rtph264pay name=pay0 pt=96 )"
)


class _Feed:
    """One media's appsrc, its stream and whether it has had its first keyframe."""

    __slots__ = ("appsrc", "keyed", "stream")

    def __init__(self, appsrc: Gst.Element, stream: str):
        self.appsrc = appsrc
        self.stream = stream
        self.keyed = False


CONTENT_LENGTH_LIMIT = 64 * 1024
SWEEP_MS = 1000


class RtspServer:
    def __init__(self, host: str, port: int, mounts: dict[str, str], user: str, password: str,
                 on_keyframe_needed: Callable[[str], None], *, max_clients: int = 32, idle_timeout_s: float = 30.0):
        """``mounts``: stream name ("main", "sub") -> RTSP path ("/dashboard")."""
        Gst.init(None)
        self.host = host
        self.mounts = dict(mounts)
        self.mount = next(iter(self.mounts.values()))
        self.on_keyframe_needed = on_keyframe_needed
        self.error: str | None = None
        self.clients = 0
        self.refused = 0
        self.max_clients = max_clients
        self.idle_timeout_s = idle_timeout_s
        self._connected: dict[int, tuple[object, float]] = {}  # id(client) -> (client, connect time)
        self.port: int | None = None
        self._feeds: list[_Feed] = []
        self._lock = threading.Lock()
        self._user = user
        self._ctx = GLib.MainContext.new()
        self._loop = GLib.MainLoop.new(self._ctx, False)
        self._thread: threading.Thread | None = None
        self._source_id = 0

        self.server = GstRtspServer.RTSPServer()
        self.server.set_address(host)
        self.server.set_service(str(port))
        self.server.connect("client-connected", self._client_connected)
        self.server.set_content_length_limit(CONTENT_LENGTH_LIMIT)
        self.server.get_session_pool().set_max_sessions(max_clients)

        self.auth = GstRtspServer.RTSPAuth()
        self.auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        self.auth.set_realm(REALM)
        self._add_user(user, password)
        self.server.set_auth(self.auth)

        for stream, path in self.mounts.items():
            f = GstRtspServer.RTSPMediaFactory()
            f.set_launch(MEDIA_LAUNCH)
            f.set_shared(True)
            f.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
            perms = GstRtspServer.RTSPPermissions()
            perms.add_role(ROLE)
            perms.add_permission_for_role(ROLE, "media.factory.access", True)
            perms.add_permission_for_role(ROLE, "media.factory.construct", True)
            f.set_permissions(perms)
            f.connect("media-configure", self._media_configure, stream)
            self.server.get_mount_points().add_factory(path, f)

    # ---- credentials ----------------------------------------------------------------
    def _add_user(self, user: str, password: str) -> None:
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", ROLE)
        self.auth.add_digest(user, password, token)

    def set_credentials(self, user: str, password: str) -> None:
        """Swap the accepted credentials now (new requests use them; RTSPAuth is locked)."""
        self.auth.remove_digest(self._user)
        self._user = user
        self._add_user(user, password)

    # ---- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        try:
            self._source_id = self.server.attach(self._ctx)
        except GLib.Error as exc:
            raise OSError(f"RTSP server cannot listen on {self.host}:{self.server.get_service()}: {exc.message}") from None
        if not self._source_id:
            raise OSError(f"RTSP server cannot listen on {self.host}:{self.server.get_service()} "
                          "(port in use, or a port below 1024 without CAP_NET_BIND_SERVICE?)")
        self.port = self.server.get_bound_port()
        sweep = GLib.timeout_source_new(SWEEP_MS)
        sweep.set_callback(self._sweep_idle)
        sweep.attach(self._ctx)
        self._thread = threading.Thread(target=self._loop.run, name="glib-rtsp", daemon=True)
        self._thread.start()
        log.info("RTSP on %s:%s %s (digest auth, TCP+UDP)", self.host, self.port, " ".join(self.mounts.values()))

    def stop(self) -> None:
        done = threading.Event()

        def teardown(*_a) -> bool:
            try:
                self.server.client_filter(lambda server, client, *a: GstRtspServer.RTSPFilterResult.REMOVE)
                for path in self.mounts.values():
                    self.server.get_mount_points().remove_factory(path)
                src = self._ctx.find_source_by_id(self._source_id) if self._source_id else None
                if src is not None:
                    src.destroy()
            finally:
                done.set()
            return False

        if self._thread is not None and self._thread.is_alive():
            src = GLib.idle_source_new()
            src.set_callback(teardown)
            src.attach(self._ctx)
            done.wait(3)
            # let the media pipelines go down before the loop stops
            stop_src = GLib.timeout_source_new(100)
            stop_src.set_callback(lambda *a: (self._loop.quit(), False)[1])
            stop_src.attach(self._ctx)
            self._thread.join(3)
        with self._lock:
            self._feeds.clear()

    def disconnect_clients(self, timeout: float = 3.0) -> None:
        """Close every client connection (they reconnect and get the stream as it now is)."""
        if self._thread is None or not self._thread.is_alive():
            return
        done = threading.Event()

        def kick(*_a) -> bool:
            try:
                self.server.client_filter(lambda server, client, *a: GstRtspServer.RTSPFilterResult.REMOVE)
            finally:
                done.set()
            return False

        src = GLib.idle_source_new()
        src.set_callback(kick)
        src.attach(self._ctx)
        done.wait(timeout)

    # ---- media and clients (GLib thread) --------------------------------------------
    def _media_configure(self, factory, media, stream: str) -> None:
        appsrc = media.get_element().get_by_name("h264src")
        feed = _Feed(appsrc, stream)
        with self._lock:
            self._feeds.append(feed)
        media.connect("unprepared", self._media_unprepared, feed)
        self.on_keyframe_needed("new media")

    def _media_unprepared(self, media, feed: _Feed) -> None:
        with self._lock:
            if feed in self._feeds:
                self._feeds.remove(feed)

    def _client_connected(self, server, client) -> None:
        if len(self._connected) >= self.max_clients:
            self.refused += 1
            log.warning("RTSP: %d clients connected already; closing a new connection", len(self._connected))
            client.close()
            return
        self._connected[id(client)] = (client, time.monotonic())
        self.clients = len(self._connected)
        client.connect("closed", self._client_closed)
        client.connect("play-request", self._play_request)

    def _client_closed(self, client) -> None:
        self._connected.pop(id(client), None)
        self.clients = len(self._connected)

    def _sweep_idle(self, *_a) -> bool:
        """Close connections that have no session after idle_timeout_s (GLib thread)."""
        now = time.monotonic()
        for client, since in list(self._connected.values()):
            if now - since > self.idle_timeout_s and not client.session_filter(None):
                log.info("RTSP: closing a connection without a session after %.0f s", now - since)
                self._connected.pop(id(client), None)
                self.clients = len(self._connected)
                client.close()
        return True  # keep the timer

    def _play_request(self, client, ctx) -> None:
        self.on_keyframe_needed("client PLAY")

    # ---- data (any thread) ----------------------------------------------------------
    def watched(self, stream: str) -> bool:
        """Whether a media of ``stream`` exists (a client has asked for it and it is prepared)."""
        with self._lock:
            return any(f.stream == stream for f in self._feeds)

    def push_au(self, data: bytes, is_key: bool, stream: str = "main") -> None:
        with self._lock:
            feeds = [f for f in self._feeds if f.stream == stream]
        for feed in feeds:
            if not feed.keyed:
                if not is_key:
                    continue
                feed.keyed = True
            ret = feed.appsrc.emit("push-buffer", Gst.Buffer.new_wrapped(data))
            if ret == Gst.FlowReturn.FLUSHING:
                continue  # media going down
            if ret != Gst.FlowReturn.OK:
                log.debug("media appsrc push: %s", ret.value_nick)
