"""XML plumbing shared by the ONVIF modules: namespaces, the hardened parser, an element
builder, and xs:dateTime / xs:duration helpers.

Parsing: lxml with entity resolution, DTD loading and network access off, huge_tree off; a
document with a DOCTYPE is refused before and after parsing (SOAP forbids DTDs, and that
is where billion-laughs and external entities live).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Iterable

from lxml import etree

NS = {
    "s12": "http://www.w3.org/2003/05/soap-envelope",
    "s11": "http://schemas.xmlsoap.org/soap/envelope/",
    "tt": "http://www.onvif.org/ver10/schema",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tev": "http://www.onvif.org/ver10/events/wsdl",
    "tmd": "http://www.onvif.org/ver10/deviceIO/wsdl",
    "timg": "http://www.onvif.org/ver20/imaging/wsdl",
    "ter": "http://www.onvif.org/ver10/error",
    "tns1": "http://www.onvif.org/ver10/topics",
    "tnsedge": "urn:edge:onvif:topics",  # edge's own topics (sensor availability), beside ONVIF's
    "dn": "http://www.onvif.org/ver10/network/wsdl",
    "wsnt": "http://docs.oasis-open.org/wsn/b-2",
    "wstop": "http://docs.oasis-open.org/wsn/t-1",
    "wsrf-rw": "http://docs.oasis-open.org/wsrf/rw-2",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
    "xs": "http://www.w3.org/2001/XMLSchema",
}
S11, S12 = NS["s11"], NS["s12"]

TOPIC_DIALECT = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"

_DOCTYPE = re.compile(rb"<!\s*DOCTYPE|<!\s*ENTITY", re.I)


class XmlRejected(ValueError):
    """The document is not acceptable XML (the message says why, for the fault reason)."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


_PARSER = _parser()


def parse(data: bytes) -> etree._Element:
    """Parse untrusted XML. Raises XmlRejected with a clear reason."""
    if not data or not data.strip():
        raise XmlRejected("empty body: expected a SOAP envelope")
    if _DOCTYPE.search(data):
        raise XmlRejected("DOCTYPE/ENTITY declarations are not allowed in SOAP messages")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise XmlRejected(f"malformed XML: {exc.msg}") from None
    except ValueError as exc:  # e.g. unicode strings with an encoding declaration
        raise XmlRejected(f"malformed XML: {exc}") from None
    if root is None:
        raise XmlRejected("malformed XML: no root element")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise XmlRejected("DOCTYPE/ENTITY declarations are not allowed in SOAP messages")
    return root


def q(tag: str) -> str:
    """'tt:Name' -> '{http://www.onvif.org/ver10/schema}Name'."""
    prefix, _, local = tag.partition(":")
    return f"{{{NS[prefix]}}}{local}"


def E(tag: str, *children: object, **attrs: object) -> etree._Element:
    """Build an element: ``E("tt:Resolution", E("tt:Width", 640), ...)``. Text children are
    str/int/float/bool (bools as xs:boolean); None children are skipped; lists are flattened.
    Attribute values follow the same rules; attributes set to None are omitted."""
    prefix = tag.partition(":")[0]
    el = etree.Element(q(tag), nsmap={prefix: NS[prefix]})
    for k, v in attrs.items():
        if v is None:
            continue
        el.set(k.replace("__", "."), _text(v))
    _append(el, children)
    return el


def _append(el: etree._Element, children: Iterable[object]) -> None:
    for c in children:
        if c is None:
            continue
        if isinstance(c, etree._Element):
            el.append(c)
        elif isinstance(c, (list, tuple)):
            _append(el, c)
        else:
            el.text = (el.text or "") + _text(c)


def _text(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def local(el: etree._Element) -> str:
    return etree.QName(el).localname


def child(el: etree._Element | None, ns: str, name: str) -> etree._Element | None:
    """First direct child named {ns}name (any prefix)."""
    if el is None:
        return None
    return el.find(f"{{{NS.get(ns, ns)}}}{name}")


def child_text(el: etree._Element | None, ns: str, name: str, default: str | None = None) -> str | None:
    c = child(el, ns, name)
    if c is None or c.text is None:
        return default
    return c.text.strip()


def text_anyns(el: etree._Element | None, name: str) -> str | None:
    """Text of the first direct child with local name ``name`` whatever its namespace
    (clients disagree about the namespace of request parameters less often than one fears,
    but a lenient reader costs nothing)."""
    if el is None:
        return None
    for c in el:
        if isinstance(c.tag, str) and etree.QName(c).localname == name:
            return (c.text or "").strip()
    return None


def find_anyns(el: etree._Element | None, name: str) -> etree._Element | None:
    if el is None:
        return None
    for c in el:
        if isinstance(c.tag, str) and etree.QName(c).localname == name:
            return c
    return None


def to_bytes(root: etree._Element) -> bytes:
    """Serialise with every known prefix declared once on the root (QName values in text,
    like fault codes and event topics, need their prefixes in scope)."""
    etree.cleanup_namespaces(root, top_nsmap={k: v for k, v in NS.items() if k not in ("s11", "s12")},
                             keep_ns_prefixes=list(NS))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# ---- time ------------------------------------------------------------------------------
def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def xs_datetime(t: dt.datetime | float | None = None, millis: bool = False) -> str:
    if t is None:
        t = utcnow()
    elif isinstance(t, (int, float)):
        t = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    t = t.astimezone(dt.timezone.utc)
    if millis:
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(text: str) -> dt.datetime:
    """xs:dateTime -> aware datetime (no zone = UTC). Raises ValueError."""
    s = text.strip()
    if not s or len(s) > 64:
        raise ValueError(f"not a dateTime: {text!r}")
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    # fromisoformat in 3.11 takes at most 6 fraction digits
    s = re.sub(r"(\.\d{6})\d+", r"\1", s)
    t = dt.datetime.fromisoformat(s)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t


_DURATION = re.compile(
    r"^(-)?P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> float:
    """xs:duration -> seconds (years 365 d, months 30 d). Raises ValueError."""
    s = text.strip()
    m = _DURATION.match(s)
    if not m or s in ("P", "PT") or s.endswith("T") or len(s) > 40:
        raise ValueError(f"not an xs:duration: {text!r}")
    sign, y, mo, w, d, h, mi, sec = m.groups()
    total = (int(y or 0) * 365 + int(mo or 0) * 30 + int(w or 0) * 7 + int(d or 0)) * 86400
    total += int(h or 0) * 3600 + int(mi or 0) * 60 + float(sec or 0)
    return -total if sign else total


def xs_duration(seconds: float) -> str:
    if seconds == int(seconds):
        return f"PT{int(seconds)}S"
    return f"PT{seconds:.3f}S"
