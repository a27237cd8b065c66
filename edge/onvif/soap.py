"""The SOAP layer: envelope in, operation dispatched, envelope (or fault) out.

- SOAP 1.2 and 1.1 (answered in the version asked); operations are matched by the body
  element's namespace + local name, never by prefix.
- Untrusted XML goes through ``ns.parse`` (no entities, no DTD, no network, no huge trees)
  after a body size limit.
- Authentication: WS-UsernameToken (PasswordDigest; PasswordText only over TLS) against the
  device credentials, or HTTP Digest (Basic only over TLS) (``ctx.auth``). A pre-auth allowlist
  (GetSystemDateAndTime, GetCapabilities, GetServices, GetServiceCapabilities) is open.
  Failures are ``ter:NotAuthorized`` faults; no credentials at all also gets HTTP 401 with
  the Digest challenge so HTTP-digest-only clients can answer it. Repeated failures from
  one address are answered more and more slowly.
- Unknown operation -> ``ter:ActionNotSupported``; a handler bug -> a Receiver fault and a
  log line, never a dropped connection.

``Dispatcher.handle(body, info)`` is transport-free so tests and the fuzzer call it directly;
``Dispatcher.aiohttp_handler`` is what the web routes use.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from aiohttp import web
from lxml import etree

from . import ns
from .ns import E
from .security import AuthFailed, FailureBrake, UsernameTokenVerifier, find_security

log = logging.getLogger("edge.onvif.soap")

PUBLIC_OPS = frozenset({"GetSystemDateAndTime", "GetCapabilities", "GetServices", "GetServiceCapabilities"})
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_HOST_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]{1,253})(:\d{1,5})?$")


class SoapFault(Exception):
    """A SOAP fault to send back. ``code`` is 'Sender' or 'Receiver'; subcodes are QName
    strings such as 'ter:NotAuthorized' (prefixes from ns.NS)."""

    def __init__(self, code: str, subcodes: tuple[str, ...] | list[str], reason: str, status: int | None = None):
        super().__init__(reason)
        self.code = code
        self.subcodes = tuple(subcodes)
        self.reason = reason
        self.status = status if status is not None else (400 if code == "Sender" else 500)
        self.headers: list[tuple[str, str]] = []


def sender(reason: str, *subcodes: str) -> SoapFault:
    return SoapFault("Sender", subcodes or ("ter:InvalidArgVal",), reason)


def receiver(reason: str, *subcodes: str) -> SoapFault:
    return SoapFault("Receiver", subcodes or ("ter:Action",), reason)


@dataclass
class HttpInfo:
    """What the SOAP layer needs from the HTTP request."""

    remote: str = ""
    host: str = ""  # Host header, validated (host[:port])
    local_ip: str = ""  # address of our end of the connection
    path: str = "/onvif/device_service"
    query: Mapping[str, str] = field(default_factory=dict)
    authorization: str | None = None
    method: str = "POST"
    uri: str = ""  # the request-target as sent (path and query): what an HTTP digest must name
    secure: bool = False  # the request came over TLS


@dataclass
class SoapRequest:
    version: str  # ns.S11 or ns.S12
    header: etree._Element | None
    body: etree._Element  # the operation element
    op: tuple[str, str]
    http: HttpInfo
    user: str | None = None

    @property
    def host(self) -> str:
        """host[:port] to put in URLs we hand back (what the client used to reach us)."""
        return self.http.host or self.http.local_ip or "127.0.0.1"

    @property
    def hostname(self) -> str:
        h = self.host
        if h.startswith("["):
            return h[: h.index("]") + 1]
        return h.rsplit(":", 1)[0] if ":" in h else h

    def param(self, name: str) -> str | None:
        return ns.text_anyns(self.body, name)

    def param_el(self, name: str) -> etree._Element | None:
        return ns.find_anyns(self.body, name)

    def require(self, name: str) -> str:
        v = self.param(name)
        if not v:
            raise sender(f"{self.op[1]}: missing {name}", "ter:InvalidArgVal")
        return v


@dataclass
class SoapResponse:
    status: int
    body: bytes
    content_type: str
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[SoapRequest], Awaitable[Any]]


class Dispatcher:
    def __init__(self, get_credentials: Callable[[], Any], http_auth: Any = None, *, clock_skew_s: float = 300,
                 max_body_bytes: int = 256 * 1024, brake: FailureBrake | None = None):
        self.get_credentials = get_credentials
        self.http_auth = http_auth
        self.verifier = UsernameTokenVerifier(clock_skew_s)
        self.max_body_bytes = max_body_bytes
        self.brake = brake or FailureBrake()
        self._ops: dict[tuple[str, str], tuple[Handler, bool]] = {}
        self.stats = {"requests": 0, "faults": 0, "auth_failures": 0, "internal_errors": 0}

    # ---- registry -------------------------------------------------------------------
    def register(self, namespace: str, name: str, handler: Handler, *, public: bool | None = None) -> None:
        if public is None:
            public = name in PUBLIC_OPS
        self._ops[(namespace, name)] = (handler, public)

    def operations(self) -> list[tuple[str, str]]:
        return sorted(self._ops)

    # ---- envelope -------------------------------------------------------------------
    @staticmethod
    def _content_type(version: str) -> str:
        return "application/soap+xml; charset=utf-8" if version == ns.S12 else "text/xml; charset=utf-8"

    def envelope(self, version: str, payload: Any, request_header: etree._Element | None = None) -> bytes:
        root = etree.Element(f"{{{version}}}Envelope", nsmap={"SOAP-ENV": version})
        wsa = ns.NS["wsa"]
        action = request_header.findtext(f"{{{wsa}}}Action") if request_header is not None else None
        if action and action.strip().endswith("Request") and len(action) < 512:
            # WS-Addressing in, WS-Addressing out (the events operations): Action + RelatesTo
            header = etree.SubElement(root, f"{{{version}}}Header")
            header.append(E("wsa:Action", action.strip()[: -len("Request")] + "Response"))
            mid = request_header.findtext(f"{{{wsa}}}MessageID")
            if mid and len(mid) < 512:
                header.append(E("wsa:RelatesTo", mid.strip()))
        body = etree.SubElement(root, f"{{{version}}}Body")
        if payload is not None:
            for el in payload if isinstance(payload, (list, tuple)) else (payload,):
                body.append(el)
        return ns.to_bytes(root)

    def fault_envelope(self, version: str, fault: SoapFault) -> bytes:
        env = version
        root = etree.Element(f"{{{env}}}Envelope", nsmap={"SOAP-ENV": env})
        body = etree.SubElement(root, f"{{{env}}}Body")
        f = etree.SubElement(body, f"{{{env}}}Fault")
        if env == ns.S12:
            code = etree.SubElement(f, f"{{{env}}}Code")
            etree.SubElement(code, f"{{{env}}}Value").text = f"SOAP-ENV:{fault.code}"
            parent = code
            for sc in fault.subcodes:
                sub = etree.SubElement(parent, f"{{{env}}}Subcode")
                etree.SubElement(sub, f"{{{env}}}Value").text = sc
                parent = sub
            reason = etree.SubElement(f, f"{{{env}}}Reason")
            t = etree.SubElement(reason, f"{{{env}}}Text")
            t.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
            t.text = _NOT_XML.sub("?", fault.reason)
        else:
            code = "Client" if fault.code == "Sender" else "Server"
            etree.SubElement(f, "faultcode").text = f"SOAP-ENV:{code}"
            etree.SubElement(f, "faultstring").text = _NOT_XML.sub("?", fault.reason)
            if fault.subcodes:
                detail = etree.SubElement(f, "detail")
                detail.append(E("ter:Subcode", " ".join(fault.subcodes)))
        return ns.to_bytes(root)

    def _fault(self, version: str, fault: SoapFault) -> SoapResponse:
        self.stats["faults"] += 1
        return SoapResponse(fault.status, self.fault_envelope(version, fault), self._content_type(version), list(fault.headers))

    # ---- the request path -----------------------------------------------------------
    async def handle(self, body: bytes, info: HttpInfo) -> SoapResponse:
        self.stats["requests"] += 1
        version = ns.S12
        if len(body) > self.max_body_bytes:
            return self._fault(version, SoapFault("Sender", ("ter:InvalidArgVal",),
                                                  f"request body of {len(body)} bytes exceeds the limit of {self.max_body_bytes}", 413))
        try:
            root = ns.parse(body)
        except ns.XmlRejected as exc:
            return self._fault(version, SoapFault("Sender", ("ter:WellFormed",), str(exc)))
        if not isinstance(root.tag, str):
            return self._fault(version, sender("not a SOAP envelope", "ter:WellFormed"))
        qn = etree.QName(root)
        if qn.localname != "Envelope" or qn.namespace not in (ns.S11, ns.S12):
            if qn.localname == "Envelope":
                return self._fault(version, SoapFault("VersionMismatch", (), f"unsupported SOAP envelope namespace {qn.namespace!r}"))
            return self._fault(version, sender(f"expected a SOAP Envelope, got <{qn.localname}>", "ter:WellFormed"))
        version = qn.namespace
        header = root.find(f"{{{version}}}Header")
        soap_body = root.find(f"{{{version}}}Body")
        if soap_body is None:
            return self._fault(version, sender("SOAP envelope without a Body", "ter:WellFormed"))
        elements = [c for c in soap_body if isinstance(c.tag, str)]
        if len(elements) != 1:
            return self._fault(version, sender(f"SOAP Body must hold exactly one operation element, found {len(elements)}", "ter:WellFormed"))
        op_el = elements[0]
        oq = etree.QName(op_el)
        op = (oq.namespace or "", oq.localname)
        entry = self._ops.get(op)
        if entry is None:
            return self._fault(version, receiver(f"operation {{{op[0]}}}{op[1]} is not supported by this device",
                                                 "ter:ActionNotSupported"))
        handler, public = entry
        req = SoapRequest(version=version, header=header, body=op_el, op=op, http=info)
        if not public:
            denied = await self._authenticate(req)
            if denied is not None:
                return self._fault(version, denied)
        try:
            payload = await handler(req)
        except SoapFault as fault:
            return self._fault(version, fault)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a handler bug must not take the connection down
            self.stats["internal_errors"] += 1
            log.exception("ONVIF %s failed", op[1])
            return self._fault(version, receiver(f"{op[1]} failed inside the device (see its log)"))
        return SoapResponse(200, self.envelope(version, payload, header), self._content_type(version))

    async def _authenticate(self, req: SoapRequest) -> SoapFault | None:
        creds = self.get_credentials()
        addr = req.http.remote or "?"
        security = find_security(req.header)
        problem = ""
        if security is not None:
            try:
                tok = self.verifier.verify(security, creds, secure=req.http.secure)
                req.user = tok.user
                self.brake.succeeded(addr)
                return None
            except AuthFailed as exc:
                problem = str(exc)
        if req.http.authorization and self.http_auth is not None:
            result = self.http_auth.check(req.http.method, req.http.authorization, req.http.uri or req.http.path,
                                          secure=req.http.secure)
            if result:
                req.user = creds.user
                self.brake.succeeded(addr)
                return None
            if result.stale and not problem:  # right password, old nonce: a new challenge, no penalty
                fault = SoapFault("Sender", ("ter:NotAuthorized",), "HTTP digest nonce expired", 401)
                fault.headers = list(self.http_auth.challenge_headers(stale=True))
                return fault
            problem = problem or f"HTTP credentials refused: {result.problem}"
        if not problem:
            # no credentials at all: challenge (HTTP digest clients answer the 401)
            fault = SoapFault("Sender", ("ter:NotAuthorized",),
                              f"{req.op[1]} requires the device credentials (WS-UsernameToken or HTTP Digest)", 401)
            if self.http_auth is not None:
                fault.headers = list(self.http_auth.challenge_headers())
            return fault
        self.stats["auth_failures"] += 1
        delay = self.brake.failed(addr)
        n = self.brake.failures(addr)
        # a flood of bad logins must not flood the journal too
        (log.warning if n <= self.brake.free + 3 or n % 100 == 0 else log.debug)(
            "ONVIF %s from %s refused (%d failures): %s", req.op[1], addr, n, problem)
        if not await self.brake.hold(addr, delay):
            return SoapFault("Sender", ("ter:NotAuthorized",), "too many failed logins from this address; slow down", 429)
        fault = SoapFault("Sender", ("ter:NotAuthorized",), f"not authorized: {problem}", 400)
        if req.http.authorization and self.http_auth is not None and security is None:
            fault.status = 401
            fault.headers = list(self.http_auth.challenge_headers())
        return fault

    # ---- aiohttp glue ---------------------------------------------------------------
    async def aiohttp_handler(self, request: web.Request) -> web.StreamResponse:
        limit = self.max_body_bytes
        too_big = web.Response(status=413, text=f"413: SOAP request larger than {limit} bytes\n")
        if request.content_length is not None and request.content_length > limit:
            too_big.force_close()
            return too_big
        buf = bytearray()
        async for chunk in request.content.iter_chunked(65536):
            buf += chunk
            if len(buf) > limit:
                too_big.force_close()
                return too_big
        info = HttpInfo(
            remote=request.remote or "",
            host=_clean_host(request.headers.get("Host", "")),
            local_ip=_local_ip(request),
            path=request.path,
            query=dict(request.query),
            authorization=request.headers.get("Authorization"),
            method=request.method,
            uri=request.raw_path,
            secure=request.secure,
        )
        if not info.host:
            port = request.transport.get_extra_info("sockname")[1] if request.transport else None
            lip = f"[{info.local_ip}]" if ":" in info.local_ip else info.local_ip
            info.host = f"{lip}:{port}" if port else lip
        try:
            resp = await self.handle(bytes(buf), info)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the fuzzer found none; a log line beats a dropped connection
            self.stats["internal_errors"] += 1
            log.exception("ONVIF request from %s failed before dispatch", info.remote)
            resp = self._fault(ns.S12, receiver("the device failed to process the request (see its log)"))
        out = web.Response(status=resp.status, body=resp.body, headers={"Content-Type": resp.content_type})
        for k, v in resp.headers:
            out.headers.add(k, v)
        return out


def _clean_host(h: str) -> str:
    h = h.strip()
    return h if _HOST_RE.match(h) else ""


def _local_ip(request: web.Request) -> str:
    try:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
    except Exception:  # noqa: BLE001
        sockname = None
    if not sockname:
        return ""
    ip = sockname[0]
    if ip.startswith("::ffff:"):
        ip = ip[7:]
    return ip
