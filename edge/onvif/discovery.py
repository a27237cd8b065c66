"""WS-Discovery (2005/04, SOAP 1.2 over UDP) as ONVIF cameras speak it.

- Listens on the multicast group 239.255.255.250 at the configured port (3702 on the
  appliance), joined on every up, multicast-capable IPv4 interface (re-checked periodically
  so a late DHCP lease is picked up).
- Probe for ``tds:Device``, ``dn:NetworkVideoTransmitter`` or no type, with scopes matched by
  RFC 3986 prefix (the default) or strcmp0 -> ProbeMatches unicast to the prober, RelatesTo =
  its MessageID, XAddrs on the address of the interface the probe arrived on (IP_PKTINFO),
  never 0.0.0.0. Resolve for our EPR -> ResolveMatches.
- Hello when started, Bye when stopped, multicast on each interface with that interface's
  XAddr. Messages are de-duplicated by MessageID; answers are rate-limited so spoofed probes
  cannot turn the device into an amplifier.
- The endpoint reference is ``urn:uuid:<device uuid>``: stable across restarts.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
import time
import uuid
from collections import OrderedDict
from typing import Callable
from urllib.parse import urlsplit

from lxml import etree

from . import netinfo
from . import ns as nsmod

log = logging.getLogger("edge.onvif.discovery")

GROUP = "239.255.255.250"
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
D = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
A = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
S12 = nsmod.S12
ACTION_PROBE = D + "/Probe"
ACTION_PROBE_MATCHES = D + "/ProbeMatches"
ACTION_RESOLVE = D + "/Resolve"
ACTION_RESOLVE_MATCHES = D + "/ResolveMatches"
ACTION_HELLO = D + "/Hello"
ACTION_BYE = D + "/Bye"
TO_ALL = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
TO_ANONYMOUS = A + "/role/anonymous"
MATCH_RFC3986 = D + "/rfc3986"
MATCH_RFC2396 = D + "/rfc2396"
MATCH_STRCMP = D + "/strcmp0"
MATCH_UUID = D + "/uuid"
MATCH_LDAP = D + "/ldap"
TYPES = ((nsmod.NS["dn"], "NetworkVideoTransmitter"), (nsmod.NS["tds"], "Device"))
APP_MAX_DELAY_S = 0.5
MAX_DATAGRAM = 65535
MAX_ANSWERS_PER_S = 40


def scope_matches(probe_scope: str, our_scope: str, match_by: str | None) -> bool:
    if match_by in (None, "", MATCH_RFC3986, MATCH_RFC2396, MATCH_UUID, MATCH_LDAP):
        try:
            p, o = urlsplit(probe_scope), urlsplit(our_scope)
        except ValueError:
            return False
        if p.scheme.lower() != o.scheme.lower() or p.netloc.lower() != o.netloc.lower():
            return False
        if p.query or p.fragment:
            return probe_scope == our_scope
        ps = [s for s in p.path.split("/") if s not in ("", ".")]
        os_ = [s for s in o.path.split("/") if s not in ("", ".")]
        return ps == os_[: len(ps)]
    if match_by == MATCH_STRCMP:
        return probe_scope == our_scope
    return False


class Discovery:
    def __init__(self, *, port: int, device_uuid: str, scopes: Callable[[], list[str]],
                 xaddr_for: Callable[[str], str], group: str = GROUP):
        self.port = port
        self.group = group
        self.epr = f"urn:uuid:{device_uuid}"
        self.scopes = scopes
        self.xaddr_for = xaddr_for
        self.sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._joined: set[str] = set()
        self.instance_id = int(time.time())
        self.message_number = 0
        self._bucket = float(MAX_ANSWERS_PER_S)
        self._bucket_t = time.monotonic()
        self._pending: set[asyncio.TimerHandle] = set()
        self.new_interfaces: list[netinfo.Interface] = []
        self.stats = {"received": 0, "probes": 0, "answered": 0, "duplicates": 0, "bad": 0, "rate_limited": 0}

    # ---- socket ---------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("", self.port))
            s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            s.setblocking(False)
        except OSError:
            s.close()
            raise
        self.sock = s
        self.port = s.getsockname()[1]
        self.refresh_interfaces()
        self._loop.add_reader(s.fileno(), self._on_readable)
        self.send_hello()
        log.info("WS-Discovery on udp/%d (group %s), endpoint %s", self.port, self.group, self.epr)

    def refresh_interfaces(self) -> list[netinfo.Interface]:
        """Join the group on every up, multicast-capable interface not joined yet."""
        if self.sock is None:
            return []
        itfs = [i for i in netinfo.interfaces() if i.up and (i.multicast or i.loopback)]
        self.new_interfaces = [i for i in itfs if i.ipv4 not in self._joined]
        for itf in itfs:
            if itf.ipv4 in self._joined:
                continue
            mreq = struct.pack("4s4s", socket.inet_aton(self.group), socket.inet_aton(itf.ipv4))
            try:
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
                self._joined.add(itf.ipv4)
            except OSError as exc:
                if exc.errno == 98:  # EADDRINUSE: already a member
                    self._joined.add(itf.ipv4)
                else:
                    log.debug("cannot join %s on %s: %s", self.group, itf.name, exc)
        return itfs

    async def stop(self) -> None:
        for h in list(self._pending):
            h.cancel()
        self._pending.clear()
        if self.sock is None:
            return
        try:
            self.send_bye()
        finally:
            if self._loop is not None:
                self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    # ---- receive --------------------------------------------------------------------
    def _on_readable(self) -> None:
        assert self.sock is not None
        for _ in range(32):  # drain a burst without starving the loop
            try:
                data, anc, _flags, addr = self.sock.recvmsg(MAX_DATAGRAM, socket.CMSG_SPACE(12))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("recvmsg: %s", exc)
                return
            self.stats["received"] += 1
            local_ip, to_group = None, False
            for level, typ, cdata in anc:
                if level == socket.IPPROTO_IP and typ == IP_PKTINFO and len(cdata) >= 12:
                    ifindex, spec_dst, dst = struct.unpack("I4s4s", cdata[:12])
                    spec = socket.inet_ntoa(spec_dst)
                    to_group = socket.inet_ntoa(dst) == self.group
                    local_ip = spec if spec != "0.0.0.0" else netinfo.ip_of_index(ifindex)
            try:
                self.datagram(data, addr, local_ip, to_group)
            except Exception:  # noqa: BLE001 - one bad datagram never stops discovery
                self.stats["bad"] += 1
                log.exception("WS-Discovery: datagram from %s failed", addr)

    def datagram(self, data: bytes, addr: tuple[str, int], local_ip: str | None, to_group: bool) -> None:
        try:
            root = nsmod.parse(data)
        except nsmod.XmlRejected:
            self.stats["bad"] += 1
            return
        if root.tag not in (f"{{{S12}}}Envelope", f"{{{nsmod.S11}}}Envelope"):
            self.stats["bad"] += 1
            return
        env = etree.QName(root).namespace
        header = root.find(f"{{{env}}}Header")
        body = root.find(f"{{{env}}}Body")
        action = (header.findtext(f"{{{A}}}Action") if header is not None else None) or ""
        message_id = (header.findtext(f"{{{A}}}MessageID") if header is not None else None) or ""
        action, message_id = action.strip(), message_id.strip()
        if action not in (ACTION_PROBE, ACTION_RESOLVE) or body is None or not message_id or len(message_id) > 256:
            return  # Hello/Bye/ProbeMatches of others (and our own Hello looped back)
        if message_id in self._seen:
            self.stats["duplicates"] += 1
            return
        self._seen[message_id] = None
        while len(self._seen) > 512:
            self._seen.popitem(last=False)
        if not local_ip:
            local_ip = netinfo.local_ip_towards(addr[0])
        if not local_ip or local_ip == "0.0.0.0":
            return
        if action == ACTION_PROBE:
            self.stats["probes"] += 1
            probe = body.find(f"{{{D}}}Probe")
            if probe is None or not self._probe_matches(probe):
                return
            reply = self._message(ACTION_PROBE_MATCHES, relates_to=message_id, to=TO_ANONYMOUS,
                                  body=self._match("ProbeMatches", "ProbeMatch", local_ip))
        else:
            resolve = body.find(f"{{{D}}}Resolve")
            address = resolve.findtext(f"{{{A}}}EndpointReference/{{{A}}}Address") if resolve is not None else None
            if (address or "").strip() != self.epr:
                return
            reply = self._message(ACTION_RESOLVE_MATCHES, relates_to=message_id, to=TO_ANONYMOUS,
                                  body=self._match("ResolveMatches", "ResolveMatch", local_ip))
        if not self._take_token():
            self.stats["rate_limited"] += 1
            return
        delay = random.uniform(0, APP_MAX_DELAY_S) if to_group else 0.0
        self._send_later(delay, reply, addr)

    def _probe_matches(self, probe: etree._Element) -> bool:
        types_el = probe.find(f"{{{D}}}Types")
        if types_el is not None and (types_el.text or "").strip():
            ours_local = {t[1] for t in TYPES}
            for token in types_el.text.split():
                prefix, _, local = token.rpartition(":")
                nsuri = types_el.nsmap.get(prefix or None)
                if nsuri is None:
                    if local not in ours_local:  # undeclared prefix: be lenient, match by name
                        return False
                elif (nsuri, local) not in TYPES:
                    return False
        scopes_el = probe.find(f"{{{D}}}Scopes")
        if scopes_el is not None and (scopes_el.text or "").strip():
            match_by = scopes_el.get("MatchBy")
            ours = self.scopes()
            for s in scopes_el.text.split():
                if not any(scope_matches(s, o, match_by) for o in ours):
                    return False
        return True

    def _take_token(self) -> bool:
        now = time.monotonic()
        self._bucket = min(float(MAX_ANSWERS_PER_S), self._bucket + (now - self._bucket_t) * MAX_ANSWERS_PER_S)
        self._bucket_t = now
        if self._bucket < 1:
            return False
        self._bucket -= 1
        return True

    # ---- send -----------------------------------------------------------------------
    def _send_later(self, delay: float, data: bytes, addr: tuple[str, int]) -> None:
        if self._loop is None:
            return
        if delay <= 0:
            self._sendto(data, addr)
            return
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._pending.discard(handle)
            self._sendto(data, addr)

        handle = self._loop.call_later(delay, fire)
        self._pending.add(handle)

    def _sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.sock is None:
            return
        try:
            self.sock.sendto(data, addr)
            self.stats["answered"] += 1
        except OSError as exc:
            log.debug("WS-Discovery send to %s failed: %s", addr, exc)

    def _multicast(self, action: str, with_xaddrs: bool) -> int:
        """Send Hello/Bye on every up multicast interface; returns how many went out."""
        if self.sock is None:
            return 0
        sent = 0
        for itf in self.refresh_interfaces():
            if itf.loopback and not itf.multicast:
                continue
            tag = "Hello" if action == ACTION_HELLO else "Bye"
            body = self._announcement(tag, itf.ipv4 if with_xaddrs else None)
            data = self._message(action, to=TO_ALL, body=body)
            try:
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(itf.ipv4))
                self.sock.sendto(data, (self.group, self.port))
                sent += 1
            except OSError as exc:
                log.debug("WS-Discovery %s on %s failed: %s", tag, itf.name, exc)
        return sent

    def send_hello(self) -> int:
        return self._multicast(ACTION_HELLO, True)

    def send_bye(self) -> int:
        return self._multicast(ACTION_BYE, False)

    # ---- messages -------------------------------------------------------------------
    def _nsmap(self) -> dict[str, str]:
        return {"SOAP-ENV": S12, "wsa": A, "d": D, "dn": nsmod.NS["dn"], "tds": nsmod.NS["tds"]}

    def _message(self, action: str, *, to: str, body: etree._Element, relates_to: str | None = None) -> bytes:
        self.message_number += 1
        env = etree.Element(f"{{{S12}}}Envelope", nsmap=self._nsmap())
        header = etree.SubElement(env, f"{{{S12}}}Header")
        etree.SubElement(header, f"{{{A}}}MessageID").text = uuid.uuid4().urn
        if relates_to:
            etree.SubElement(header, f"{{{A}}}RelatesTo").text = relates_to
        etree.SubElement(header, f"{{{A}}}To").text = to
        etree.SubElement(header, f"{{{A}}}Action").text = action
        seq = etree.SubElement(header, f"{{{D}}}AppSequence")
        seq.set("InstanceId", str(self.instance_id))
        seq.set("MessageNumber", str(self.message_number))
        etree.SubElement(env, f"{{{S12}}}Body").append(body)
        return etree.tostring(env, xml_declaration=True, encoding="UTF-8")

    def _fill(self, el: etree._Element, local_ip: str | None) -> None:
        epr = etree.SubElement(el, f"{{{A}}}EndpointReference")
        etree.SubElement(epr, f"{{{A}}}Address").text = self.epr
        etree.SubElement(el, f"{{{D}}}Types").text = "dn:NetworkVideoTransmitter tds:Device"
        etree.SubElement(el, f"{{{D}}}Scopes").text = " ".join(self.scopes())
        if local_ip:
            etree.SubElement(el, f"{{{D}}}XAddrs").text = self.xaddr_for(local_ip)
        etree.SubElement(el, f"{{{D}}}MetadataVersion").text = "1"

    def _match(self, outer: str, inner: str, local_ip: str) -> etree._Element:
        o = etree.Element(f"{{{D}}}{outer}", nsmap=self._nsmap())
        self._fill(etree.SubElement(o, f"{{{D}}}{inner}"), local_ip)
        return o

    def _announcement(self, tag: str, local_ip: str | None) -> etree._Element:
        el = etree.Element(f"{{{D}}}{tag}", nsmap=self._nsmap())
        self._fill(el, local_ip)
        return el
