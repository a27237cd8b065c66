"""What a report is, and how an alarm, a restore or a test becomes one for a given receiver.

The codes come from the one table of kinds (``edge.kinds``: SIA alarm and restore codes and
the Contact ID event per kind); a rule's ``report`` action may name its own code and zone.
A report is resolved when it is queued, so what waits in the outbox is exactly what will be
sent, whatever happens to the config meanwhile.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import kinds
from .config import ReceiversConfig

# Contact ID qualifiers
NEW, RESTORE = 1, 3


@dataclass(frozen=True)
class Report:
    code: str  # SIA event code (BA, BH, RP...)
    cid: int | None  # Contact ID event code (131...), None when there is none
    qualifier: int  # Contact ID qualifier: 1 new event, 3 restore
    zone: int
    text: str  # what happened, in words ("Front door: OPEN")
    sensor: str = ""  # sensor id, "" for the receivers' own reports
    kind: str = ""
    event: str = "alarm"  # alarm, restore, test
    site: str = ""
    ts: float = field(default_factory=time.time)  # when it happened
    source: str = ""  # what asked for it: "kind", "rule:<name>", "test", "supervision"
    n: int = 0  # sequence number, unbounded (the wire number is 0001-9999); set when queued

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, raw: bytes, n: int | None = None) -> "Report":
        data: dict[str, Any] = json.loads(raw)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if n is not None:
            known["n"] = n
        return cls(**known)


class NotReportable(ValueError):
    """The receiver cannot be told this (no code for the kind, no Contact ID for the code)."""


def plan(cfg: ReceiversConfig, receiver: str, *, kind: str, active: bool, sensor: str, text: str, site: str = "",
         code: str | None = None, cid: int | None = None, zone: int | None = None, source: str = "",
         ts: float | None = None) -> Report | None:
    """The report ``receiver`` gets for an alarm (``active``) or its restore, or None when
    there is nothing to send (a restore of a code without one, restores turned off).
    Raises NotReportable when the receiver cannot be told (checked in the config already)."""
    r = cfg.all()[receiver]
    if not active and not r.restores:
        return None
    codes = kinds.report_codes(kind)
    if code is not None:
        sia = code if active else kinds.restore_code(code)
        cid = cid or kinds.cid_code(code) or (codes.cid if codes and codes.sia == code else None)
    elif codes is not None:
        sia = codes.sia if active else codes.sia_restore
        cid = cid or codes.cid
    else:
        raise NotReportable(f"kind {kind!r} has no report codes: give the rule's report action a code")
    if sia is None:
        return None
    if cfg.type_of(receiver) == "sia" and getattr(r, "format", "") == "ADM-CID" and cid is None:
        raise NotReportable(f"code {code or sia} has no Contact ID event: give the report action a cid")
    return Report(sia, cid, NEW if active else RESTORE, cfg.zone(receiver, sensor) if zone is None else zone, text,
                  sensor, kind, "alarm" if active else "restore", site, time.time() if ts is None else ts, source)


def make_test_report(site: str, periodic: bool) -> Report:
    """The periodic (RP, CID 602) or manual (RX, CID 601) test report."""
    kind = "test" if periodic else "manual_test"
    codes = kinds.ALARM_KINDS[kind].report
    assert codes is not None
    what = "periodic test" if periodic else "test report (edge report test)"
    return Report(codes.sia, codes.cid, NEW, 0, f"{site}: {what}" if site else what, "", kind, "test", site,
                  source="test")


def sensor_text(name: str, words: str) -> str:
    return f"{name}: {words}" if words else name
