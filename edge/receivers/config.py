"""The ``[receivers]`` config: where alarms are reported (alarm receiving centres over SIA
DC-09, CHEKT bridges, signed webhooks) and which zone each sensor is.

    [receivers]
    zones = { front_door = 1, kitchen_leak = 2 }   # sensor id -> zone number

    [receivers.sia.arc]                 # an SIA DC-09 receiver called "arc"
    primary = "192.0.2.10:7777"         # host:port ([v6]:port)
    backup = "192.0.2.11:7777"          # optional second path (failover and return)
    protocol = "tcp"                    # or "udp"
    account = "1234"                    # 3-16 hex digits
    format = "SIA-DCS"                  # or "ADM-CID" (Contact ID)
    key_file = "receivers/arc.key"      # AES key (absolute, or relative to the data dir); none: plain
    key_format = "ascii"                # 16/24/32 characters (pysiaalarm, Home Assistant, Ajax)
                                        # or "hex": 32/48/64 hex digits (most ARC receivers)
    kinds = ["contact", "leak", "smoke", "door_prop"]   # reported by default (sensor or alarm kinds)
    null_interval_s = 90                # NULL link test on the primary path (0: off)
    backup_null_interval_s = 900
    test_report_time = "03:00"          # daily periodic test report (RP), local time; "": none

    [receivers.chekt.bridge]
    url = "http://192.168.1.50:30003/api/v1/events"
    token_file = "receivers/chekt.token"      # Basic auth apikey:<token>
    kinds = ["contact", "motion"]

    [receivers.webhook.noc]
    url = "https://noc.example/hooks/edge"
    secret_file = "receivers/noc.secret"      # HMAC-SHA256 key of the X-Edge-Signature header

Secrets (AES keys, tokens, HMAC keys) are never written in this file: they are read from
files that others cannot read (checked at start, like ssh does with its keys). Checks across
sections (zones of known sensors, rules' ``report`` actions naming known receivers) are in
``edge.config_checks``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .. import kinds
from ..section import KeyProblem, Section

_NAME = re.compile(r"^[a-z0-9_][a-z0-9_\-]{0,31}$")
_HOSTPORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):(\d{1,5})$")
_HEX = re.compile(r"^[0-9A-Fa-f]+$")
_SIA_CODE = re.compile(r"^[A-Z]{2}$")
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
BODY_FIELDS = ("zone", "text", "code", "cid", "event", "sensor", "kind", "site", "ts")
REPORT_KINDS = tuple(k for k, v in {**kinds.KINDS, **kinds.ALARM_KINDS}.items() if v.report is not None)


def parse_hostport(text: str) -> tuple[str, int]:
    m = _HOSTPORT.match(text.strip())
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ValueError(f"{text!r}: expected host:port (e.g. 192.0.2.10:7777, [2001:db8::1]:7777)")
    return m.group(1).strip("[]"), int(m.group(2))


class ReceiverBase(Section):
    kinds: list[str] = Field(default_factory=list, description="sensor kinds and alarm kinds reported by default")
    zones: dict[str, int] = Field(default_factory=dict, description="sensor id -> zone, over [receivers] zones")
    restores: bool = Field(True, description="report restores (door closed, leak dry) as well as alarms")
    timeout_s: float = Field(5.0, gt=0, le=120, description="wait this long for an answer")
    backoff_initial_s: float = Field(1.0, gt=0, le=600, description="first pause after a failed attempt")
    backoff_max_s: float = Field(60.0, gt=0, le=3600, description="longest pause between attempts")

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, v: list[str]) -> list[str]:
        bad = [k for k in v if k not in REPORT_KINDS]
        if bad:
            raise ValueError(f"cannot report kind(s) {', '.join(map(repr, bad))} by default "
                             f"(kinds with report codes: {', '.join(REPORT_KINDS)}); use a rule's report action")
        return v

    @field_validator("zones")
    @classmethod
    def _zones(cls, v: dict[str, int]) -> dict[str, int]:
        return _check_zones(v)


def _check_zones(v: dict[str, int]) -> dict[str, int]:
    bad = [((k,), f"zone {z} out of range (0-9999)") for k, z in v.items() if not 0 <= z <= 9999]
    if bad:
        raise KeyProblem(bad)
    return v


class SiaReceiver(ReceiverBase):
    """An alarm receiving centre (or Home Assistant's SIA integration) over SIA DC-09."""

    primary: str = Field(..., description="host:port of the receiver")
    backup: str = Field("", description="host:port of the backup receiver (failover and return)")
    protocol: Literal["tcp", "udp"] = "tcp"
    account: str = Field(..., description="account number, 3-16 hex digits")
    line: str = Field("0", min_length=1, description="line prefix (the L field), 1-6 hex digits")
    receiver_number: str = Field("", description="receiver number (the R field), 1-6 hex digits; empty: left out")
    format: Literal["SIA-DCS", "ADM-CID"] = "SIA-DCS"
    area: int = Field(1, ge=0, le=99, description="area (partition) number: SIA ri, Contact ID group")
    key_file: Path | None = Field(None, description="AES key file (absolute, or relative to the data dir); none: plain")
    key_format: Literal["ascii", "hex"] = "ascii"
    text: bool = Field(True, description="send the sensor's and the site's names as text (x-data I and S)")
    failover_after: int = Field(2, ge=1, le=20, description="failed attempts before a path counts as down")
    null_interval_s: float = Field(90.0, ge=0, le=86400, description="NULL link test on the primary path; 0: off")
    backup_null_interval_s: float = Field(900.0, ge=0, le=86400, description="NULL link test on the backup path; 0: off")
    grace_s: float = Field(30.0, ge=0, le=3600, description="no ACK for a link test interval plus this: link failure")
    test_report_time: str = Field("", description="daily periodic test report (RP) at HH:MM local time; empty: none")

    @field_validator("primary", "backup")
    @classmethod
    def _addr(cls, v: str) -> str:
        if v:
            parse_hostport(v)
        return v

    @field_validator("account")
    @classmethod
    def _account(cls, v: str) -> str:
        if not (3 <= len(v) <= 16 and _HEX.match(v)):
            raise ValueError(f"account {v!r}: 3-16 hex digits")
        return v.upper()

    @field_validator("line", "receiver_number")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if v and not (len(v) <= 6 and _HEX.match(v)):
            raise ValueError(f"{v!r}: 1-6 hex digits")
        return v.upper()

    @field_validator("test_report_time")
    @classmethod
    def _time(cls, v: str) -> str:
        if v and not _TIME.match(v):
            raise ValueError(f"{v!r}: HH:MM (24 h, local time), or empty for none")
        return v

    @model_validator(mode="after")
    def _zone_size(self) -> "SiaReceiver":
        if self.format == "ADM-CID":
            big = [(("zones", k), f"zone {z}: Contact ID zones are 0-999") for k, z in self.zones.items() if z > 999]
            if big:
                raise KeyProblem(big)
        return self

    @property
    def paths(self) -> list[tuple[str, str, int]]:
        """(path name, host, port) of the primary and, when configured, the backup."""
        out = [("primary", *parse_hostport(self.primary))]
        if self.backup:
            out.append(("backup", *parse_hostport(self.backup)))
        return out


class ChektReceiver(ReceiverBase):
    """A CHEKT bridge's local event API (no public docs; the seed's current form is the default)."""

    url: str = Field(..., description="the bridge's event URL, e.g. http://192.168.1.50:30003/api/v1/events")
    auth: Literal["basic", "bearer", "none"] = "basic"
    user: str = Field("apikey", description="basic auth user; the token file holds the password")
    token_file: Path | None = Field(None, description="the API token (absolute, or relative to the data dir)")
    body: dict[str, Any] = Field(
        default_factory=lambda: {"target_channel": "{zone}", "event_description": "{text}"},
        description="JSON body; string values are formatted with {zone} {text} {code} {event} {sensor} {kind} {site} {ts}")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v)

    @field_validator("body")
    @classmethod
    def _body(cls, v: dict[str, Any]) -> dict[str, Any]:
        fields = dict.fromkeys(BODY_FIELDS, "")

        def walk(x: Any) -> None:
            if isinstance(x, str):
                x.format(**fields)
            elif isinstance(x, dict):
                for y in x.values():
                    walk(y)
            elif isinstance(x, list):
                for y in x:
                    walk(y)

        try:
            walk(v)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"body: bad placeholder {exc} (have: {', '.join('{' + f + '}' for f in BODY_FIELDS)}; "
                             "write {{ and }} for braces)") from None
        return v

    @model_validator(mode="after")
    def _token(self) -> "ChektReceiver":
        if self.auth != "none" and self.token_file is None:
            raise ValueError(f"auth {self.auth!r} needs token_file (the token is a secret: never in this file)")
        return self


class WebhookReceiver(ReceiverBase):
    """Anything else (Node-RED, n8n, a ticketing system): a JSON POST signed with HMAC-SHA256."""

    url: str = Field(..., description="where to POST")
    secret_file: Path = Field(..., description="HMAC-SHA256 key (absolute, or relative to the data dir)")
    header: str = Field("X-Edge-Signature", description="the signature header")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v)


def _check_url(v: str) -> str:
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", v):
        raise ValueError(f"{v!r}: expected http://host[:port]/path or https://...")
    return v


class ReceiversConfig(Section):
    zones: dict[str, int] = Field(default_factory=dict, description="sensor id -> zone number")
    sia: dict[str, SiaReceiver] = Field(default_factory=dict)
    chekt: dict[str, ChektReceiver] = Field(default_factory=dict)
    webhook: dict[str, WebhookReceiver] = Field(default_factory=dict)

    @field_validator("zones")
    @classmethod
    def _zones(cls, v: dict[str, int]) -> dict[str, int]:
        return _check_zones(v)

    @model_validator(mode="after")
    def _names(self) -> "ReceiversConfig":
        problems = []
        seen: dict[str, str] = {}
        for table in ("sia", "chekt", "webhook"):
            for name in getattr(self, table):
                if not _NAME.match(name):
                    problems.append(((table, name), f"receiver name {name!r}: lower-case letters, digits, _ and - (max 32)"))
                elif name in seen:
                    problems.append(((table, name), f"receiver name {name!r} is also [receivers.{seen[name]}.{name}]; "
                                                    "names are unique across types"))
                seen.setdefault(name, table)
        if problems:
            raise KeyProblem(problems)
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.sia or self.chekt or self.webhook)

    def all(self) -> dict[str, ReceiverBase]:
        """Every receiver by name."""
        return {**self.sia, **self.chekt, **self.webhook}

    def type_of(self, name: str) -> str:
        return "sia" if name in self.sia else "chekt" if name in self.chekt else "webhook"

    def zone(self, receiver: str, sensor: str) -> int:
        """The zone of ``sensor`` at ``receiver`` (the receiver's own table first), 0 when none."""
        r = self.all().get(receiver)
        if r is not None and sensor in r.zones:
            return r.zones[sensor]
        return self.zones.get(sensor, 0)


def is_valid_sia_code(code: str) -> bool:
    return bool(_SIA_CODE.match(code))
