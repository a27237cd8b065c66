"""WS-Security UsernameToken checks and the per-address brake on failed logins.

PasswordDigest = Base64(SHA1(nonce_bytes + Created + password)) (WS-Security UsernameToken
Profile 1.0). Created must lie within the clock-skew window; a nonce is remembered for the
window after a *valid* token used it, so a replay inside the window is refused and one
outside it fails the Created check. Only valid tokens enter the nonce cache, so flooding it
takes the password. Elements are found by namespace, never by prefix.
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
        self._seen: OrderedDict[str, float] = OrderedDict()

    def _purge(self, now: float) -> None:
        while self._seen:
            k, t = next(iter(self._seen.items()))
            if now - t <= self.ttl_s and len(self._seen) <= self.max_items:
                break
            self._seen.popitem(last=False)

    def seen(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        self._purge(now)
        return key in self._seen

    def add(self, key: str, now: float | None = None) -> None:
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

    def verify(self, security: etree._Element, creds: Credentials, now: float | None = None) -> TokenResult:
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

        if pw_type.endswith(PASSWORD_DIGEST):
            if not nonce_text or not created:
                raise AuthFailed("PasswordDigest needs Nonce and Created")
            try:
                nonce = base64.b64decode(nonce_text, validate=True)
            except (binascii.Error, ValueError):
                raise AuthFailed("UsernameToken Nonce is not Base64") from None
            if not 1 <= len(nonce) <= 1024:
                raise AuthFailed("UsernameToken Nonce has a bad length")
            expected = base64.b64encode(
                hashlib.sha1(nonce + created.encode() + creds.password.encode()).digest()
            ).decode()
            ok_user = hmac.compare_digest(user.encode(), creds.user.encode())
            ok_pw = hmac.compare_digest(password.strip().encode(), expected.encode())
            digest = True
        elif pw_type.endswith(PASSWORD_TEXT):
            ok_user = hmac.compare_digest(user.encode(), creds.user.encode())
            ok_pw = hmac.compare_digest(password.encode(), creds.password.encode())
            digest = False
        else:
            raise AuthFailed(f"unsupported UsernameToken password type {pw_type[:80]!r}")
        if not (ok_user and ok_pw):
            raise AuthFailed("wrong user name or password")
        if nonce_text:
            key = f"{user}\x00{nonce_text}"
            if self.nonces.seen(key):
                raise AuthFailed("UsernameToken Nonce was already used (replay refused)")
            self.nonces.add(key)
        return TokenResult(user=user, digest=digest)


class FailureBrake:
    """Counts failed logins per address; after ``free`` failures each further failure is
    answered only after a delay that doubles up to ``max_delay_s``. A success resets it.
    Bounded: the least recently failing addresses are forgotten first."""

    def __init__(self, free: int = 3, base_s: float = 0.25, max_delay_s: float = 5.0,
                 forget_after_s: float = 900.0, max_addrs: int = 4096, max_waiting: int = 16):
        self.free = free
        self.base_s = base_s
        self.max_delay_s = max_delay_s
        self.forget_after_s = forget_after_s
        self.max_addrs = max_addrs
        self.max_waiting = max_waiting
        self._fails: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self.waiting: dict[str, int] = {}

    def failed(self, addr: str) -> float:
        """Record a failure; returns the delay to apply before answering."""
        now = time.monotonic()
        n, last = self._fails.pop(addr, (0, now))
        if now - last > self.forget_after_s:
            n = 0
        n += 1
        self._fails[addr] = (n, now)
        while len(self._fails) > self.max_addrs:
            self._fails.popitem(last=False)
        if n <= self.free:
            return 0.0
        return min(self.max_delay_s, self.base_s * 2 ** (n - self.free - 1))

    def succeeded(self, addr: str) -> None:
        self._fails.pop(addr, None)

    def failures(self, addr: str) -> int:
        return self._fails.get(addr, (0, 0.0))[0]
