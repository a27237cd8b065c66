"""The DC-09 codec against the standard's check vector and against pysiaalarm (an independent
implementation) in both directions: it reads our frames, we read its answers."""

from __future__ import annotations

import calendar
import time

import pytest
from Crypto.Cipher import AES
from pysiaalarm import SIAAccount, SIAEvent
from pysiaalarm.utils import ResponseType

from edge.receivers import dc09

from .receiver_peers import KEY128, KEY256

KEY192 = "24-character-AES192-key!"


def test_crc_check_vector_and_length():
    body = b'"SIA-DCS"6002L0#AAA[|Nri1/CL501]_14:12:04,09-25-2019'
    assert dc09.crc16_arc(body) == 0xE5D5
    t = calendar.timegm((2019, 9, 25, 14, 12, 4, 0, 0, 0))
    frame = dc09.Message("SIA-DCS", "6002", "AAA", "0", "", "|Nri1/CL501").frame(t)
    # the true length is 52 bytes = 0x0034 (pysiaalarm's own test line says 0078: never rely on it)
    assert frame == b"\nE5D50034" + body + b"\r"


def test_sequence_numbers_wrap_after_9999():
    assert [dc09.seq_text(n) for n in (1, 9998, 9999, 10000, 10001, 19998, 19999)] == \
        ["0001", "9998", "9999", "0001", "0002", "9999", "0001"]


@pytest.mark.parametrize("plain", ["", "a", "#1234|Nri1/BA001]_12:00:00,01-01-2024", "x" * 14, "x" * 15, "x" * 31])
def test_pad_rules(plain):
    key = KEY128.encode()
    hex_text = dc09.encrypt(plain, key)
    assert hex_text == hex_text.upper()
    padded = AES.new(key, AES.MODE_CBC, iv=bytes(16)).decrypt(bytes.fromhex(hex_text)).decode()
    assert len(padded) % 16 == 0
    pad, rest = padded.split("|", 1)
    assert rest == plain and 1 <= len(pad) <= 16 and not set(pad) & set("|[]")
    if (len(plain) + 1) % 16 == 0:
        assert len(pad) == 16, "already aligned: a whole block of padding"


def _accounts(key: str | None) -> dict[str, SIAAccount]:
    return {"1234": SIAAccount("1234", key)}


@pytest.mark.parametrize("key", [None, KEY128, KEY192, KEY256], ids=["plain", "aes128", "aes192", "aes256"])
def test_pysiaalarm_reads_our_frames(key):
    kb = key.encode() if key else None
    msg = dc09.Message("SIA-DCS", "0042", "1234", "0", "", dc09.sia_dcs_data("1234", "BA", 7, 1),
                       (("I", "Front door: OPEN"), ("S", "Demo site")))
    ev = SIAEvent.from_line(msg.frame(time.time(), kb).decode().strip("\n\r"), _accounts(key))
    assert ev.valid_message and ev.valid_timestamp and ev.response == ResponseType.ACK
    assert (ev.code, ev.ri, ev.message, ev.account, ev.sequence, ev.encrypted) == ("BA", "1", "007", "1234", "0042", bool(key))
    assert {x.identifier: x.value for x in ev.extended_data} == {"I": "Front door: OPEN", "S": "Demo site"}

    cid = dc09.Message("ADM-CID", "0043", "1234", "0", "", dc09.adm_cid_data("1234", 3, 131, 1, 7))
    ev = SIAEvent.from_line(cid.frame(time.time(), kb).decode().strip("\n\r"), _accounts(key))
    assert (ev.code, ev.ri, ev.event_qualifier, ev.event_type) == ("BH", "007", "3", "131")

    null = dc09.Message("NULL", "0044", "1234")
    ev = SIAEvent.from_line(null.frame(time.time(), kb).decode().strip("\n\r"), _accounts(key))
    assert ev.valid_message and ev.response == ResponseType.ACK


@pytest.mark.parametrize("key", [None, KEY128, KEY256], ids=["plain", "aes128", "aes256"])
def test_we_read_pysiaalarm_answers(key):
    kb = key.encode() if key else None
    msg = dc09.Message("SIA-DCS", "0042", "1234", "0", "", dc09.sia_dcs_data("1234", "BA", 7, 1))
    ev = SIAEvent.from_line(msg.frame(time.time(), kb).decode().strip("\n\r"), _accounts(key))
    ack = dc09.parse_answer(ev.create_response(), kb)
    assert (ack.kind, ack.seq, ack.account, ack.encrypted) == ("ACK", "0042", "1234", bool(key))

    skewed = dc09.Message("SIA-DCS", "0043", "1234", "0", "", dc09.sia_dcs_data("1234", "BA", 7, 1))
    ev = SIAEvent.from_line(skewed.frame(time.time() + 300, kb).decode().strip("\n\r"), _accounts(key))
    nak = dc09.parse_answer(ev.create_response(), kb)
    assert nak.kind == "NAK" and nak.time is not None and abs(nak.time.timestamp() - time.time()) < 3

    unknown = dc09.Message("SIA-DCS", "0044", "1234", "0", "", "#1234|Nri1/QQ007")
    ev = SIAEvent.from_line(unknown.frame(time.time(), kb).decode().strip("\n\r"), _accounts(key))
    assert dc09.parse_answer(ev.create_response(), kb).kind == "DUH"


def test_garbage_answers_are_refused_with_a_reason():
    good = SIAEvent.from_line(dc09.Message("SIA-DCS", "0001", "1234", "0", "", "#1234|Nri1/BA001").frame(time.time())
                              .decode().strip("\n\r"), _accounts(None)).create_response()
    cases = {
        b"\n\r": "empty answer",
        b"\n" + b"0000" + good[5:]: "bad CRC",
        good[:6] + b"\r": "half a frame",
        bytes(range(1, 40)) + b"\r": "not a DC-09 frame",
        b'\nXYZW0010"FOO"0001L0#1234[]\r': "not a DC-09 frame",
    }
    for raw, why in cases.items():
        with pytest.raises(dc09.BadAnswer, match=why):
            dc09.parse_answer(raw)
    # an encrypted ACK needs our key, and must decrypt with it
    enc = SIAEvent.from_line(dc09.Message("SIA-DCS", "0001", "1234", "0", "", "#1234|Nri1/BA001")
                             .frame(time.time(), KEY128.encode()).decode().strip("\n\r"), _accounts(KEY128)).create_response()
    with pytest.raises(dc09.BadAnswer, match="no key"):
        dc09.parse_answer(enc)
    with pytest.raises(dc09.BadAnswer, match="does not decrypt"):
        dc09.parse_answer(enc, b"another-16-b-key")


def test_key_formats():
    assert dc09.key_bytes("DemoKey-16bytes!", "ascii") == b"DemoKey-16bytes!"
    assert dc09.key_bytes("00112233445566778899AABBCCDDEEFF", "hex") == bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    assert len(dc09.key_bytes("ab" * 32, "hex")) == 32
    for text, fmt, why in (("short", "ascii", "16, 24 or 32 characters"), ("zz" * 16, "hex", "hex digits"),
                           ("ab" * 20, "hex", "32, 48 or 64")):
        with pytest.raises(ValueError, match=why):
            dc09.key_bytes(text, fmt)
    # a hex key encrypts what a receiver with the same 16 bytes decrypts
    kb = dc09.key_bytes("00112233445566778899AABBCCDDEEFF", "hex")
    hex_text = dc09.encrypt("#1234|Nri1/BA001]", kb)
    assert AES.new(kb, AES.MODE_CBC, iv=bytes(16)).decrypt(bytes.fromhex(hex_text)).decode().endswith("|#1234|Nri1/BA001]")


def test_text_is_made_safe_for_a_frame():
    assert dc09.ascii_text("Küche [leak] | 28 °C_x\n") == "Kuche leak 28 C x"
    assert len(dc09.ascii_text("x" * 200)) == 64
