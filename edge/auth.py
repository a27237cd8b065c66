"""HTTP authentication against the device credentials: Digest (RFC 7616, MD5 and SHA-256)
and Basic. Shared by the web server (metrics, snapshot, status) and ONVIF's HTTP digest.

The credentials are looked up on every request through ``get_credentials`` so a rotation
takes effect at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Callable

from .credentials import Credentials

REALM = "edge"
NONCE_TTL_S = 300


def _h(algo: str, data: str) -> str:
    return hashlib.new("sha256" if algo.upper().startswith("SHA-256") else "md5", data.encode()).hexdigest()


def parse_auth_params(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " ,":
            i += 1
        eq = value.find("=", i)
        if eq < 0:
            break
        key = value[i:eq].strip().lower()
        i = eq + 1
        if i < n and value[i] == '"':
            j = i + 1
            buf = []
            while j < n and value[j] != '"':
                if value[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(value[j])
                j += 1
            out[key] = "".join(buf)
            i = j + 1
        else:
            j = value.find(",", i)
            j = n if j < 0 else j
            out[key] = value[i:j].strip()
            i = j
    return out


class HttpAuth:
    def __init__(self, get_credentials: Callable[[], Credentials], realm: str = REALM):
        self.get_credentials = get_credentials
        self.realm = realm
        self._secret = secrets.token_bytes(16)

    def _nonce(self, ts: int | None = None) -> str:
        ts = int(time.time()) if ts is None else ts
        mac = hmac.new(self._secret, str(ts).encode(), hashlib.sha256).hexdigest()[:24]
        return f"{ts:x}.{mac}"

    def _nonce_ok(self, nonce: str) -> bool:
        try:
            ts_hex, _ = nonce.split(".", 1)
            ts = int(ts_hex, 16)
        except ValueError:
            return False
        return hmac.compare_digest(nonce, self._nonce(ts)) and 0 <= time.time() - ts <= NONCE_TTL_S

    def challenge_headers(self) -> list[tuple[str, str]]:
        nonce = self._nonce()
        return [
            ("WWW-Authenticate", f'Digest realm="{self.realm}", qop="auth", algorithm=SHA-256, nonce="{nonce}"'),
            ("WWW-Authenticate", f'Digest realm="{self.realm}", qop="auth", algorithm=MD5, nonce="{nonce}"'),
            ("WWW-Authenticate", f'Basic realm="{self.realm}"'),
        ]

    def check(self, method: str, header: str | None) -> bool:
        """True when the Authorization header carries the device credentials."""
        if not header:
            return False
        creds = self.get_credentials()
        scheme, _, rest = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            try:
                user, _, pw = base64.b64decode(rest.strip(), validate=True).decode().partition(":")
            except Exception:
                return False
            return hmac.compare_digest(user, creds.user) and hmac.compare_digest(pw, creds.password)
        if scheme == "digest":
            p = parse_auth_params(rest)
            algo = p.get("algorithm", "MD5")
            needed = ("username", "realm", "nonce", "uri", "response")
            if any(k not in p for k in needed) or p["username"] != creds.user or p["realm"] != self.realm:
                return False
            if not self._nonce_ok(p["nonce"]):
                return False
            ha1 = _h(algo, f"{creds.user}:{self.realm}:{creds.password}")
            ha2 = _h(algo, f"{method}:{p['uri']}")
            if p.get("qop"):
                expected = _h(algo, f"{ha1}:{p['nonce']}:{p.get('nc', '')}:{p.get('cnonce', '')}:{p['qop']}:{ha2}")
            else:
                expected = _h(algo, f"{ha1}:{p['nonce']}:{ha2}")
            return hmac.compare_digest(expected, p["response"].lower())
        return False


# What a front middleware (the console's browser session) tells the credentials check: the
# request is authenticated by a session (the user's name), or it is for a page anyone may load.
from aiohttp import web as _web  # noqa: E402

SESSION_USER = _web.RequestKey("session_user", str)
PUBLIC = _web.RequestKey("public", bool)
