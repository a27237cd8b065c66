"""WS-Security UsernameToken checks (the per-address brake on failed logins is ``edge.auth``'s).

PasswordDigest = Base64(SHA1(nonce_bytes + Created + password)) (WS-Security UsernameToken
Profile 1.0). Created must lie within the clock-skew window; a nonce is remembered for the
window after a *valid* token used it, so a replay inside the window is refused and one
outside it fails the Created check. The nonce is remembered as the bytes it decodes to: Base64
ignores padding bits and line breaks, so one nonce has many spellings. Only valid tokens enter
the nonce cache, so flooding it takes the password. PasswordText sends the password itself and
is refused unless the request came over TLS. Elements are found by namespace, never by prefix.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass

from lxml import etree

from . import ns
from ..auth import FailureBrake  # noqa: F401 - the brake ONVIF shares with the web server
from ..credentials import Credentials

PASSWORD_DIGEST = "#PasswordDigest"
PASSWORD_TEXT = "#PasswordText"
MAX_NONCES = 20000


class AuthFailed(Exception):
    """Why the token was refused (goes into the ter:NotAuthorized fault reason)."""


@dataclass
class TokenResult:
    user: str
    digest: bool


def find_security(header: etree._Element | None) -> etree._Element | None:
    if header is None:
        return None
    return header.find(f"{{{ns.NS['wsse']}}}Security")


class NonceCache:
    """Nonces of accepted tokens, forgotten after ``ttl_s`` (bounded)."""

    def __init__(self, ttl_s: float, max_items: int = MAX_NONCES):
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def _purge(self, now: float) -> None:
        while self._seen:
            k, t = next(iter(self._seen.items()))
            if now - t <= self.ttl_s and len(self._seen) <= self.max_items:
                break
            self._seen.popitem(last=False)

    def seen(self, key: bytes, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        self._purge(now)
        return key in self._seen

    def add(self, key: bytes, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._seen[key] = now
        self._purge(now)

    def __len__(self) -> int:
        return len(self._seen)


class UsernameTokenVerifier:
    def __init__(self, clock_skew_s: float):
        self.clock_skew_s = clock_skew_s
        # a replay is possible while Created is acceptable: up to 2 x skew after first use
        self.nonces = NonceCache(ttl_s=2 * clock_skew_s + 5)

    def verify(self, security: etree._Element, creds: Credentials, now: float | None = None, *,
               secure: bool = False) -> TokenResult:
        """Check the UsernameToken; ``secure``: the request came over TLS (PasswordText is
        refused otherwise)."""
        wsse, wsu = ns.NS["wsse"], ns.NS["wsu"]
        token = security.find(f"{{{wsse}}}UsernameToken")
        if token is None:
            raise AuthFailed("WS-Security header without a UsernameToken")
        user = (token.findtext(f"{{{wsse}}}Username") or "").strip()
        pw_el = token.find(f"{{{wsse}}}Password")
        if not user or pw_el is None:
            raise AuthFailed("UsernameToken needs Username and Password")
        pw_type = pw_el.get("Type") or PASSWORD_TEXT
        password = pw_el.text or ""
        nonce_text = (token.findtext(f"{{{wsse}}}Nonce") or "").strip()
        created_el = token.find(f"{{{wsu}}}Created")
        if created_el is None:  # a few clients put Created in the wsse namespace
            created_el = token.find(f"{{{wsse}}}Created")
        created = (created_el.text or "").strip() if created_el is not None else ""

        now = time.time() if now is None else now
        if created:
            try:
                t = ns.parse_datetime(created).timestamp()
            except (ValueError, OverflowError):
                raise AuthFailed(f"UsernameToken Created is not an xs:dateTime: {created[:40]!r}") from None
            skew = t - now
            if abs(skew) > self.clock_skew_s:
                raise AuthFailed(
                    f"UsernameToken Created is {abs(skew):.0f} s {'ahead' if skew > 0 else 'old'} "
                    f"(allowed +-{self.clock_skew_s:.0f} s; check the client's clock or GetSystemDateAndTime)"
                )

        nonce = b""
        if nonce_text:
            try:
                nonce = base64.b64decode("".join(nonce_text.split()), validate=True)
            except (binascii.Error, ValueError):
                raise AuthFailed("UsernameToken Nonce is not Base64") from None
            if not 1 <= len(nonce) <= 1024:
                raise AuthFailed("UsernameToken Nonce has a bad length")
        if pw_type.endswith(PASSWORD_DIGEST):
            if not nonce or not created:
                raise AuthFailed("PasswordDigest needs Nonce and Created")
            expected = base64.b64encode(
                hashlib.sha1(nonce + created.encode() + creds.password.encode()).digest()
            ).decode()
            ok_user = hmac.compare_digest(user.encode(), creds.user.encode())
            ok_pw = hmac.compare_digest(password.strip().encode(), expected.encode())
            digest = True
        elif pw_type.endswith(PASSWORD_TEXT):
            if not secure:
                raise AuthFailed("PasswordText sends the password in clear: refused over plain HTTP "
                                 "(use PasswordDigest)")
            ok_user = hmac.compare_digest(user.encode(), creds.user.encode())
            ok_pw = hmac.compare_digest(password.encode(), creds.password.encode())
            digest = False
        else:
            raise AuthFailed(f"unsupported UsernameToken password type {pw_type[:80]!r}")
        if not (ok_user and ok_pw):
            raise AuthFailed("wrong user name or password")
        if nonce:
            key = user.encode("utf-8", "surrogateescape") + b"\x00" + nonce
            if self.nonces.seen(key):
                raise AuthFailed("UsernameToken Nonce was already used (replay refused)")
            self.nonces.add(key)
        return TokenResult(user=user, digest=digest)
