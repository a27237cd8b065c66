"""Hand-built SOAP requests for the ONVIF tests (the real clients are used elsewhere; these
let a test break exactly one thing at a time)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os

from lxml import etree

S12 = "http://www.w3.org/2003/05/soap-envelope"
S11 = "http://schemas.xmlsoap.org/soap/envelope/"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TRT = "http://www.onvif.org/ver10/media/wsdl"
TEV = "http://www.onvif.org/ver10/events/wsdl"
TMD = "http://www.onvif.org/ver10/deviceIO/wsdl"
TIMG = "http://www.onvif.org/ver20/imaging/wsdl"
WSNT = "http://docs.oasis-open.org/wsn/b-2"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
CT12 = "application/soap+xml; charset=utf-8"


def created_now(offset_s: float = 0) -> str:
    t = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def security(user: str, password: str, *, nonce: bytes | None = None, created: str | None = None,
             prefix: str = "wsse") -> str:
    nonce = os.urandom(16) if nonce is None else nonce
    created = created_now() if created is None else created
    digest = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()
    p = f"{prefix}:" if prefix else ""
    decl = f'xmlns:{prefix}="{WSSE}"' if prefix else f'xmlns="{WSSE}"'
    return (
        f'<{p}Security {decl} xmlns:wsu="{WSU}" mustUnderstand="true"><{p}UsernameToken>'
        f"<{p}Username>{user}</{p}Username>"
        f'<{p}Password Type="{DIGEST}">{digest}</{p}Password>'
        f"<{p}Nonce>{base64.b64encode(nonce).decode()}</{p}Nonce>"
        f"<wsu:Created>{created}</wsu:Created>"
        f"</{p}UsernameToken></{p}Security>"
    )


def envelope(body: str, header: str = "", soap: str = S12, env_prefix: str = "soap-env") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><{env_prefix}:Envelope xmlns:{env_prefix}="{soap}">'
        f"<{env_prefix}:Header>{header}</{env_prefix}:Header>"
        f"<{env_prefix}:Body>{body}</{env_prefix}:Body></{env_prefix}:Envelope>"
    ).encode()


def op(name: str, ns: str = TDS, inner: str = "") -> str:
    return f'<ns0:{name} xmlns:ns0="{ns}">{inner}</ns0:{name}>'


def parse(data: bytes) -> etree._Element:
    return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))


def fault_subcodes(data: bytes) -> list[str]:
    """The fault's subcode values (SOAP 1.2), '' if not a fault."""
    root = parse(data)
    return [v.text for v in root.iter(f"{{{S12}}}Value")][1:]


def fault_reason(data: bytes) -> str:
    root = parse(data)
    t = root.find(f".//{{{S12}}}Text")
    if t is not None:
        return t.text or ""
    return root.findtext(".//faultstring") or ""


def is_fault(data: bytes) -> bool:
    root = parse(data)
    return root.find(f".//{{{S12}}}Fault") is not None or root.find(f".//{{{S11}}}Fault") is not None
