"""ANSI/SIA DC-09 framing, written against the standard: build a message, read an answer.

No I/O here (the transport is ``edge.receivers.sia``). A frame is

    <LF><crc><0LLL>"<id>"<seq>[R<rcvr>]L<pref>#<acct>[<data>]<x-data><timestamp><CR>

- ``crc``: CRC-16/ARC (poly 0x8005 reflected = 0xA001, init 0, no final xor) of everything
  from the first ``"`` to the end of the timestamp, four upper-case hex characters;
- ``0LLL``: the length of those same bytes, four hex characters (receivers differ in how they
  read it, so it is written right and never relied on when reading);
- ``seq``: 0001-9999 (a resend keeps its number, so the receiver drops a duplicate);
- ``timestamp``: UTC ``_HH:MM:SS,MM-DD-YYYY`` (required when encrypted);
- encrypted (``*`` before the id): everything after ``[`` is the hex (upper case) of
  AES-CBC with a zero IV over ``pad|data]x-data timestamp``, where ``pad`` is random
  characters other than ``|``, ``[`` and ``]`` making the length a multiple of 16 (a whole
  block of padding when it already is).

Answers: ``"ACK"`` (``"*ACK"`` encrypted) with the message's sequence number, ``"NAK"`` with
the receiver's time (never encrypted: correct the clock and resend), ``"DUH"`` (not
understood), ``"RSP"`` (an ACK with data).
"""

from __future__ import annotations

import re
import secrets
import string
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone

from Crypto.Cipher import AES

IDS = ("SIA-DCS", "ADM-CID", "NULL")
ANSWERS = ("ACK", "NAK", "DUH", "RSP")
ZERO_IV = bytes(16)
PAD_ALPHABET = string.ascii_letters + string.digits  # never | [ ]
MAX_FRAME = 1024  # an answer longer than this is garbage
TIME_FORMAT = "%H:%M:%S,%m-%d-%Y"
_TS = re.compile(r"_(\d{2}:\d{2}:\d{2},\d{2}-\d{2}-\d{4})")
_HEX = re.compile(r"^[0-9A-Fa-f]*$")
_ANSWER = re.compile(r'^"(\*?)([A-Z]{3})"(\d{4})([^\[]*)\[(.*)$', re.S)


class BadAnswer(ValueError):
    """What came back is not a DC-09 answer we can trust (the message is retried)."""


def crc16_arc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def timestamp(t: float) -> str:
    """``_HH:MM:SS,MM-DD-YYYY`` in UTC for the unix time ``t``."""
    return "_" + datetime.fromtimestamp(t, timezone.utc).strftime(TIME_FORMAT)


def parse_timestamp(text: str) -> datetime | None:
    m = _TS.search(text)
    if not m:
        return None
    try:
        return datetime.strptime(m.group(1), TIME_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def key_bytes(text: str, fmt: str) -> bytes:
    """An AES key from its text: ``ascii`` (16/24/32 characters, as pysiaalarm, Home
    Assistant and Ajax take it) or ``hex`` (32/48/64 hex digits, as most ARC receivers)."""
    text = text.strip()
    if fmt == "hex":
        if not _HEX.match(text) or len(text) not in (32, 48, 64):
            raise ValueError(f"a hex key has 32, 48 or 64 hex digits (AES-128/192/256), got {len(text)} characters")
        return bytes.fromhex(text)
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("an ascii key is plain ASCII text") from None
    if len(raw) not in (16, 24, 32):
        raise ValueError(f"an ascii key has 16, 24 or 32 characters (AES-128/192/256), got {len(raw)}")
    return raw


def _pad(rest: str) -> str:
    n = 16 - (len(rest) + 1) % 16  # + 1 for the "|" after the pad
    n = n or 16
    return "".join(secrets.choice(PAD_ALPHABET) for _ in range(n))


def encrypt(plain: str, key: bytes) -> str:
    """Hex (upper case) of AES-CBC, zero IV, of ``pad|plain``."""
    padded = _pad(plain) + "|" + plain
    assert len(padded) % 16 == 0
    return AES.new(key, AES.MODE_CBC, iv=ZERO_IV).encrypt(padded.encode("ascii")).hex().upper()


def decrypt(hex_text: str, key: bytes) -> str:
    if not hex_text or len(hex_text) % 32 or not _HEX.match(hex_text):
        raise BadAnswer("encrypted part is not whole AES blocks of hex")
    plain = AES.new(key, AES.MODE_CBC, iv=ZERO_IV).decrypt(bytes.fromhex(hex_text))
    return plain.decode("ascii", "replace")


def seq_text(n: int) -> str:
    """The wire sequence number of the n-th message (1-based, unbounded): 0001-9999, then 0001."""
    return f"{(n - 1) % 9999 + 1:04d}"


def ascii_text(text: str, limit: int = 64) -> str:
    """Text safe inside a frame: printable ASCII (accents dropped), without the frame's
    brackets and separators, at most ``limit`` characters."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r'[\[\]|^"_\x00-\x1f\x7f]', " ", text)
    return " ".join(text.split())[:limit]


@dataclass(frozen=True)
class Message:
    """One DC-09 message; ``frame()`` builds its bytes (a fresh pad each time)."""

    id: str  # SIA-DCS, ADM-CID, NULL
    seq: str  # "0001".."9999"
    account: str
    line: str = "0"
    receiver: str = ""  # the R field; empty: left out
    data: str = ""  # between [ and ] (without the brackets)
    xdata: tuple[tuple[str, str], ...] = ()  # (letter, value): [Ivalue]

    def body(self, t: float, key: bytes | None) -> bytes:
        head = f'"{"*" if key else ""}{self.id}"{self.seq}{"R" + self.receiver if self.receiver else ""}L{self.line}#{self.account}['
        tail = self.data + "]" + "".join(f"[{k}{v}]" for k, v in self.xdata) + timestamp(t)
        if key:
            return (head + encrypt(tail, key)).encode("ascii")
        return (head + tail).encode("ascii")

    def frame(self, t: float, key: bytes | None = None) -> bytes:
        body = self.body(t, key)
        return b"\n" + f"{crc16_arc(body):04X}{len(body):04X}".encode() + body + b"\r"


@dataclass(frozen=True)
class Answer:
    kind: str  # ACK, NAK, DUH, RSP
    encrypted: bool
    seq: str
    account: str | None
    time: datetime | None  # the receiver's time, when it sent one
    text: str  # the answer as received (for logs and `edge report test`)


def parse_answer(raw: bytes, key: bytes | None = None) -> Answer:
    """Read a receiver's answer (one frame, LF .. CR). Raises BadAnswer with the reason."""
    text = raw.decode("ascii", "replace")
    if len(raw) > MAX_FRAME:
        raise BadAnswer(f"answer of {len(raw)} bytes (over {MAX_FRAME})")
    if "\n" in text:
        text = text[text.rindex("\n") + 1:]  # the frame starts at its LF
    text = text.strip("\r\n\x00 ")
    if not text:
        raise BadAnswer("empty answer (the receiver could not read the message: bad CRC?)")
    if text.startswith('"'):
        body = text  # an unframed answer (pysiaalarm answers an unknown account with a bare "NAK")
    else:
        if len(text) < 9:
            raise BadAnswer(f"half a frame: {text!r}")
        crc, body = text[:4], text[8:]
        try:
            want = int(crc, 16)
        except ValueError:
            raise BadAnswer(f"not a DC-09 frame: {text[:40]!r}") from None
        got = crc16_arc(body.encode("ascii", "replace"))
        if got != want:
            raise BadAnswer(f"bad CRC: frame says {crc}, content gives {got:04X}")
    m = _ANSWER.match(body)
    if not m:
        if body.strip('"') in ANSWERS and body.count('"') == 2:
            return Answer(body.strip('"'), False, "0000", None, None, text)
        raise BadAnswer(f"not a DC-09 answer: {body[:60]!r}")
    star, kind, seq, head, rest = m.groups()
    if kind not in ANSWERS:
        raise BadAnswer(f"unknown answer {kind!r}")
    acct = re.search(r"#([0-9A-Fa-f]{3,16})", head)
    if star:
        if key is None:
            raise BadAnswer(f"encrypted {kind} but no key is configured")
        hex_part = re.match(r"[0-9A-Fa-f]*", rest).group(0)  # type: ignore[union-attr]
        rest = decrypt(hex_part, key)
        if "]" not in rest or parse_timestamp(rest) is None:
            raise BadAnswer(f"encrypted {kind} does not decrypt with our key")
    return Answer(kind, bool(star), seq, acct.group(1) if acct else None, parse_timestamp(rest), text)


# ---- the data of a message ------------------------------------------------------------------
def sia_dcs_data(account: str, code: str, zone: int, area: int) -> str:
    """SIA DC-03 event data: ``#acct|Nri<area>/<code><zone>`` (zone 3+ digits)."""
    return f"#{account}|Nri{area}/{code}{zone:03d}"


def adm_cid_data(account: str, qualifier: int, event: int, partition: int, zone: int) -> str:
    """Contact ID data: ``#acct|QEEE GG ZZZ`` (qualifier 1 new, 3 restore, 6 status)."""
    return f"#{account}|{qualifier}{event:03d} {partition:02d} {zone:03d}"
