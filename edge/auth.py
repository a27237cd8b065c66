"""HTTP authentication against the device credentials: Digest (RFC 7616: SHA-256 first, MD5 for
the clients that only know it) and Basic (only over TLS), plus the brake on failed logins.
Shared by the web server's guard (``edge.web.guard``) and ONVIF's HTTP digest.

No replayable logins:

- a nonce is the server's (issue time + random + HMAC): forged or foreign ones are refused;
- each nonce's highest nonce count (``nc``) is remembered once it authenticated a request, and
  a request must come with a higher one: a captured request sent again is refused; a digest
  without qop (no nc, RFC 2069) makes its nonce single-use;
- the digest's ``uri`` must be the request's own (a captured GET /healthz cannot authorise a
  POST elsewhere), and the method is part of the digest;
- a nonce older than ``NONCE_TTL_S`` with an otherwise right digest gets ``stale=true`` in
  the new challenge, so clients retry with a fresh nonce without asking the user.

The credentials are looked up on every request through ``get_credentials`` so a rotation
takes effect at once. Every comparison is on bytes: non-ASCII in any field is a refusal (401),
never an exception.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

from .credentials import Credentials

REALM = "edge"
NONCE_TTL_S = 300
MAX_TRACKED_NONCES = 20000
ALGORITHMS = {"SHA-256": "sha256", "MD5": "md5"}


def _b(s: str) -> bytes:
    """Bytes of a header-derived string; undecodable bytes (surrogates) survive as themselves."""
    return s.encode("utf-8", "surrogateescape")


def _h(hash_name: str, data: str) -> str:
    return hashlib.new(hash_name, _b(data)).hexdigest()


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


@dataclass(frozen=True)
class AuthResult:
    """The outcome of one Authorization header. Truthy when it authenticated."""

    ok: bool
    user: str = ""
    scheme: str = ""  # "digest" | "basic" | ""
    stale: bool = False  # right digest on an expired nonce: challenge again with stale=true
    problem: str = ""  # why it was refused (for the log, never for the client)

    def __bool__(self) -> bool:
        return self.ok


def _refused(problem: str, scheme: str = "", stale: bool = False) -> AuthResult:
    return AuthResult(False, scheme=scheme, stale=stale, problem=problem)


def uri_matches(digest_uri: str, request_uri: str) -> bool:
    """The digest's ``uri`` names this request: the same request-target, or an absolute URI
    whose path and query are it (a few old clients send that form)."""
    if hmac.compare_digest(_b(digest_uri), _b(request_uri)):
        return True
    if "://" in digest_uri:
        try:
            parts = urlsplit(digest_uri)
        except ValueError:
            return False
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return hmac.compare_digest(_b(target), _b(request_uri))
    return False


class NonceTracker:
    """Server nonces and the highest nonce count each one authenticated.

    A nonce is ``<issue time hex>.<random>.<HMAC>``. Only nonces that authenticated a request
    are remembered (a flood of challenges costs nothing); the table is bounded: evicting one
    raises a floor below which every nonce counts as expired, so a forgotten nonce can never be
    used again (its client simply gets ``stale=true`` and a fresh nonce).
    """

    def __init__(self, ttl_s: float = NONCE_TTL_S, max_items: int = MAX_TRACKED_NONCES,
                 clock: Callable[[], float] = time.time):
        self.ttl_s = ttl_s
        self.max_items = max_items
        self.clock = clock
        self._secret = secrets.token_bytes(32)
        self._used: OrderedDict[str, int] = OrderedDict()  # nonce -> highest nc (0: no qop, single use)
        self._floor = 0  # nonces issued at or before this time are expired

    def _mac(self, ts: int, rand: str) -> str:
        return hmac.new(self._secret, f"{ts:x}.{rand}".encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self) -> str:
        ts = int(self.clock())
        rand = secrets.token_hex(8)
        return f"{ts:x}.{rand}.{self._mac(ts, rand)}"

    def _issued_at(self, nonce: str) -> int | None:
        try:
            ts_hex, rand, mac = nonce.split(".")
            ts = int(ts_hex, 16)
        except ValueError:
            return None
        if not hmac.compare_digest(_b(mac), self._mac(ts, rand).encode()):
            return None
        return ts

    def check(self, nonce: str) -> str:
        """'ok', 'stale' (ours, but expired) or 'bad' (not ours)."""
        ts = self._issued_at(nonce)
        if ts is None:
            return "bad"
        age = self.clock() - ts
        if age < -5 or age > self.ttl_s or ts <= self._floor:
            return "stale"
        return "ok"

    def use(self, nonce: str, nc: int | None) -> bool:
        """Record a use of a nonce whose digest was right; False for a replay (a count not
        above the last one, or any second use of a nonce without a count)."""
        self._purge()
        last = self._used.get(nonce)
        if last is not None and (nc is None or last == 0 or nc <= last):
            return False
        self._used[nonce] = 0 if nc is None else nc
        self._used.move_to_end(nonce)
        while len(self._used) > self.max_items:
            old, _ = self._used.popitem(last=False)
            self._floor = max(self._floor, self._issued_at(old) or 0)
        return True

    def _purge(self) -> None:
        oldest_ok = self.clock() - self.ttl_s
        while self._used:
            nonce = next(iter(self._used))
            ts = self._issued_at(nonce) or 0
            if ts >= oldest_ok:
                break
            self._used.popitem(last=False)

    def __len__(self) -> int:
        return len(self._used)


class HttpAuth:
    def __init__(self, get_credentials: Callable[[], Credentials], realm: str = REALM,
                 clock: Callable[[], float] = time.time):
        self.get_credentials = get_credentials
        self.realm = realm
        self.nonces = NonceTracker(clock=clock)

    def challenge_headers(self, *, stale: bool = False, basic: bool = False) -> list[tuple[str, str]]:
        """WWW-Authenticate headers: Digest SHA-256, then MD5 (the NVRs and tools that only do
        MD5), then Basic only when asked (over TLS: a browser's login dialog)."""
        nonce = self.nonces.issue()
        extra = ", stale=true" if stale else ""
        out = [("WWW-Authenticate", f'Digest realm="{self.realm}", qop="auth", algorithm={algo}, '
                                    f'nonce="{nonce}"{extra}') for algo in ALGORITHMS]
        if basic:
            out.append(("WWW-Authenticate", f'Basic realm="{self.realm}", charset="UTF-8"'))
        return out

    def check(self, method: str, header: str | None, uri: str, *, secure: bool = False) -> AuthResult:
        """Does the Authorization header carry the device credentials for this request?
        ``uri`` is the request-target as sent (path and query); ``secure``: the request came
        over TLS (Basic is refused otherwise)."""
        if not header:
            return _refused("no credentials")
        try:
            return self._check(method, header, uri, secure)
        except (ValueError, UnicodeError, TypeError) as exc:  # malformed fields: a refusal, not a 500
            return _refused(f"malformed Authorization header ({type(exc).__name__})")

    def _check(self, method: str, header: str, uri: str, secure: bool) -> AuthResult:
        creds = self.get_credentials()
        scheme, _, rest = header.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            if not secure:
                return _refused("Basic credentials over plain HTTP are refused (use Digest, or HTTPS)", "basic")
            try:
                raw = base64.b64decode(rest.strip(), validate=True)
            except (binascii.Error, ValueError):
                return _refused("Basic credentials are not Base64", "basic")
            user, _, pw = raw.partition(b":")
            ok = hmac.compare_digest(user, _b(creds.user)) & hmac.compare_digest(pw, _b(creds.password))
            return AuthResult(True, creds.user, "basic") if ok else _refused("wrong user name or password", "basic")
        if scheme == "digest":
            return self._digest(method, parse_auth_params(rest), uri, creds)
        return _refused(f"unsupported Authorization scheme {scheme[:20]!r}")

    def _digest(self, method: str, p: dict[str, str], uri: str, creds: Credentials) -> AuthResult:
        needed = ("username", "realm", "nonce", "uri", "response")
        missing = [k for k in needed if k not in p]
        if missing:
            return _refused(f"Digest without {', '.join(missing)}", "digest")
        algo = p.get("algorithm", "MD5").upper()
        hash_name = ALGORITHMS.get(algo)
        if hash_name is None:
            return _refused(f"Digest algorithm {algo[:20]!r} is not offered", "digest")
        if not uri_matches(p["uri"], uri):
            return _refused("the Digest uri is not this request's (replayed elsewhere?)", "digest")
        qop = p.get("qop")
        nc: int | None = None
        if qop:
            if qop != "auth" or "nc" not in p or "cnonce" not in p:
                return _refused("Digest qop must be auth with nc and cnonce", "digest")
            nc = int(p["nc"], 16)
            if not 0 < nc < 1 << 32:
                return _refused("Digest nc out of range", "digest")
        state = self.nonces.check(p["nonce"])
        if state == "bad":
            return _refused("Digest nonce was not issued by this device", "digest")
        ha1 = _h(hash_name, f"{creds.user}:{self.realm}:{creds.password}")
        ha2 = _h(hash_name, f"{method}:{p['uri']}")
        if qop:
            expected = _h(hash_name, f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:{qop}:{ha2}")
        else:
            expected = _h(hash_name, f"{ha1}:{p['nonce']}:{ha2}")
        right = hmac.compare_digest(expected.encode(), _b(p["response"].lower())) & \
            hmac.compare_digest(_b(p["username"]), _b(creds.user)) & hmac.compare_digest(_b(p["realm"]), _b(self.realm))
        if not right:
            return _refused("wrong user name or password", "digest")
        if state == "stale":
            return _refused("Digest nonce expired", "digest", stale=True)
        if not self.nonces.use(p["nonce"], nc):
            return _refused("Digest nonce count already used (replay refused)", "digest")
        return AuthResult(True, creds.user, "digest")


class FailureBrake:
    """Counts failed logins per address; after ``free`` failures each further failure is
    answered only after a delay that doubles up to ``max_delay_s``. A success resets it.
    Bounded: the least recently failing addresses are forgotten first, and at most
    ``max_waiting`` answers per address wait at once (more are refused at once: 429)."""

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

    async def hold(self, addr: str, delay: float) -> bool:
        """Wait ``delay`` before the refusal goes out; False (answer 429 now) when this address
        already has ``max_waiting`` refusals waiting."""
        if delay <= 0:
            return True
        waiting = self.waiting.get(addr, 0)
        if waiting >= self.max_waiting:
            return False
        self.waiting[addr] = waiting + 1
        try:
            await asyncio.sleep(delay)
        finally:
            left = self.waiting.get(addr, 1) - 1
            if left <= 0:
                self.waiting.pop(addr, None)
            else:
                self.waiting[addr] = left
        return True


# What a front middleware (the console's browser session) tells the credentials check: the
# request is authenticated by a session (the user's name), or it is for a page anyone may load.
from aiohttp import web as _web  # noqa: E402

SESSION_USER = _web.RequestKey("session_user", str)
PUBLIC = _web.RequestKey("public", bool)
