"""HTTP/RTSP Digest authentication (RFC 2617, qop=auth or none; RFC 7616 SHA-256 optional).

Nonces are stateless: hex(timestamp | random | HMAC(secret, realm | timestamp | random)), so any
connection (an RTSP connection, both halves of an HTTP tunnel, the ONVIF HTTP port) accepts a
nonce issued by another one. Expired but genuine nonces with a correct response are reported
`stale`, so clients retry silently with a fresh one.

Only MD5 is offered by default: ffmpeg reads the *last* Digest challenge of a 401 (and gives up
on SHA-256), Python's urllib reads the *first*; a single challenge suits both.
Without qop (RFC 2069, sent by many VMS) there is no replay protection beyond the nonce lifetime.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vcam.auth.users import User, UserStore

_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda b: hashlib.md5(b).hexdigest(),
    "SHA-256": lambda b: hashlib.sha256(b).hexdigest(),
}
_MAX_HEADER = 4096
_PARAM = re.compile(
    r'\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]*)\s*(?:,|$)', re.S
)


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    user: User | None = None
    stale: bool = False
    reason: str = ""
    retry_after_s: float | None = None  # set when throttled


@dataclass(frozen=True)
class Throttle:
    max_failures: int = 5  # within `window_s`, before the client is refused unchecked
    window_s: float = 60.0
    backoff_s: float = 2.0  # first lock-out; doubles with each further one
    max_backoff_s: float = 300.0
    max_clients: int = 4096  # LRU bound on tracked addresses


@dataclass
class _Client:
    failures: int = 0
    first_failure: float = 0.0
    strikes: int = 0
    blocked_until: float = 0.0


def parse_authorization(header: str) -> tuple[str, dict[str, str]] | None:
    """(scheme in lower case, params with lower-case names), or None when malformed."""
    if len(header) > _MAX_HEADER:
        return None
    words = header.split(None, 1)
    if not words:
        return None
    scheme, rest = words[0], words[1] if len(words) > 1 else ""
    params: dict[str, str] = {}
    pos, rest = 0, rest.strip()
    while pos < len(rest):
        if rest[pos] == ",":  # tolerate empty list elements ("a=1,,b=2")
            pos += 1
            continue
        m = _PARAM.match(rest, pos)
        if m is None:
            return None
        name, value = m.group(1).lower(), m.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1], flags=re.S)
        if name in params:
            return None
        params[name] = value
        pos = m.end()
    return scheme.lower(), params


def digest_response(
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str = "",
    cnonce: str = "",
) -> str:
    """The `response` value a client computes (RFC 2617 §3.2.2.1; RFC 7616 for SHA-256)."""
    h = _HASHES[algorithm]
    ha1 = h(f"{username}:{realm}:{password}".encode())
    ha2 = h(f"{method}:{uri}".encode())
    if qop is None:
        return h(f"{ha1}:{nonce}:{ha2}".encode())
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())


class DigestAuth:
    """Issues challenges and verifies Authorization headers against a `UserStore`."""

    def __init__(
        self,
        users: UserStore,
        realm: str,
        *,
        nonce_ttl_s: float = 300,
        clock: Callable[[], float] = time.monotonic,
        secret: bytes | None = None,
        algorithms: Sequence[str] = ("MD5",),
        throttle: Throttle | None = None,
        max_nonce_counts: int = 8192,
    ) -> None:
        if not algorithms or any(a not in _HASHES for a in algorithms):
            raise ValueError(f"algorithms must be among {sorted(_HASHES)}")
        if '"' in realm or "\\" in realm:
            raise ValueError("realm must not contain quotes or backslashes")
        self.users = users
        self.realm = realm
        self.nonce_ttl_s = nonce_ttl_s
        self.algorithms = tuple(algorithms)
        self.throttle = throttle or Throttle()
        self._clock = clock
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._counts: OrderedDict[tuple[str, str], int] = OrderedDict()  # (nonce, cnonce) -> nc
        self._max_counts = max_nonce_counts
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    # -- nonces ---------------------------------------------------------------------------------

    def _mac(self, stamp: bytes) -> str:
        return hmac.new(self._secret, self.realm.encode() + stamp, hashlib.sha256).hexdigest()[:32]

    def new_nonce(self) -> str:
        stamp = int(self._clock() * 1000).to_bytes(8, "big", signed=True) + secrets.token_bytes(8)
        return stamp.hex() + self._mac(stamp)

    def _nonce_age(self, nonce: str) -> float | None:
        """Seconds since a genuine nonce was issued; None when forged or malformed."""
        if len(nonce) != 64 or not re.fullmatch(r"[0-9a-f]+", nonce):
            return None
        stamp = bytes.fromhex(nonce[:32])
        if not hmac.compare_digest(self._mac(stamp), nonce[32:]):
            return None
        age = self._clock() - int.from_bytes(stamp[:8], "big", signed=True) / 1000
        return age if age >= -1.0 else None  # a little slack for clock rounding

    def challenge(self, stale: bool = False) -> list[str]:
        """WWW-Authenticate values, one per algorithm, all with the same fresh nonce."""
        nonce = self.new_nonce()
        tail = ", stale=true" if stale else ""
        return [
            f'Digest realm="{self.realm}", nonce="{nonce}", algorithm={alg}, qop="auth"{tail}'
            for alg in self.algorithms
        ]

    # -- verification ---------------------------------------------------------------------------

    def verify(
        self,
        method: str,
        authorization: str | None,
        client: str,
        request_uri: str | None = None,
    ) -> AuthResult:
        """Check `authorization` for `method`; with `request_uri`, the Digest must also be for
        that resource (so a response computed for one URL is not accepted on another)."""
        now = self._clock()
        with self._lock:
            blocked = self._blocked(client, now)
        if blocked is not None:
            return AuthResult(False, reason="throttled", retry_after_s=blocked)
        if authorization is None:
            return AuthResult(False, reason="no credentials")
        result, counts_as_failure = self._check(method, authorization, request_uri)
        with self._lock:
            if result.ok:
                self._clients.pop(client, None)
            elif counts_as_failure:
                self._failed(client, now)
        return result

    def _check(self, method: str, header: str, request_uri: str | None) -> tuple[AuthResult, bool]:
        scheme = header.split(None, 1)[0].lower() if header.strip() else ""
        if scheme != "digest":  # Basic would carry the password in clear
            return AuthResult(False, reason=f"{scheme[:20] or 'empty'} scheme refused"), False
        parsed = parse_authorization(header)
        if parsed is None:
            return AuthResult(False, reason="malformed Authorization"), True
        p = parsed[1]
        if any(k not in p for k in ("username", "realm", "nonce", "uri", "response")):
            return AuthResult(False, reason="incomplete Digest parameters"), True
        if request_uri is not None and _target(p["uri"]) != _target(request_uri):
            return AuthResult(False, reason="Digest for another URI"), True
        algorithm = p.get("algorithm", "MD5")
        algorithm = next((a for a in self.algorithms if a.lower() == algorithm.lower()), "")
        if not algorithm:
            return AuthResult(False, reason=f"algorithm {p['algorithm']} not offered"), True
        if p["realm"] != self.realm:
            return AuthResult(False, reason="wrong realm"), True
        qop = p.get("qop")
        if qop is not None and (qop.lower() != "auth" or "nc" not in p or "cnonce" not in p):
            return AuthResult(False, reason=f"unsupported qop {qop!r}"), True
        age = self._nonce_age(p["nonce"])
        if age is None:
            return AuthResult(False, reason="forged nonce"), True
        user = self.users.get(p["username"])
        if user is None:
            return AuthResult(False, reason="unknown user"), True
        expected = digest_response(
            algorithm,
            user.username,
            self.realm,
            user.password,
            method,
            p["uri"],
            p["nonce"],
            qop,
            p.get("nc", ""),
            p.get("cnonce", ""),
        )
        if not hmac.compare_digest(expected, p["response"].lower()):
            return AuthResult(False, reason="wrong password"), True
        if age > self.nonce_ttl_s:
            return AuthResult(False, stale=True, reason="stale nonce"), False
        if qop is not None and not self._count(p["nonce"], p["cnonce"], p["nc"]):
            return AuthResult(False, reason="replayed nonce count"), True
        return AuthResult(True, user=user, reason="ok"), False

    def _count(self, nonce: str, cnonce: str, nc: str) -> bool:
        """nc must grow per (nonce, cnonce): a captured header cannot be replayed."""
        if not re.fullmatch(r"[0-9a-fA-F]{1,8}", nc):
            return False
        value, key = int(nc, 16), (nonce, cnonce)
        with self._lock:
            last = self._counts.get(key, 0)
            if value <= last:
                return False
            self._counts[key] = value
            self._counts.move_to_end(key)
            while len(self._counts) > self._max_counts:
                self._counts.popitem(last=False)
        return True

    # -- throttling ----------------------------------------------------------------------------

    def blocked_for(self, client: str) -> float | None:
        """Seconds `client` must still wait after too many failures (None: not blocked). Other
        password checks (the web page's login) share this per-address throttle."""
        with self._lock:
            return self._blocked(client, self._clock())

    def record_failure(self, client: str) -> None:
        with self._lock:
            self._failed(client, self._clock())

    def record_success(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)

    # (the two below are called with the lock held)

    def _blocked(self, client: str, now: float) -> float | None:
        state = self._clients.get(client)
        if state is None or state.blocked_until <= now:
            return None
        return state.blocked_until - now

    def _failed(self, client: str, now: float) -> None:
        t = self.throttle
        state = self._clients.pop(client, None) or _Client()
        self._clients[client] = state  # most recent last
        while len(self._clients) > t.max_clients:
            self._clients.popitem(last=False)
        if state.failures == 0 or now - state.first_failure > t.window_s:
            state.failures, state.first_failure = 0, now
        state.failures += 1
        if state.failures >= t.max_failures:
            state.blocked_until = now + min(t.backoff_s * 2**state.strikes, t.max_backoff_s)
            state.strikes = min(state.strikes + 1, 32)
            state.failures = 0


def _target(uri: str) -> str:
    """Path and query of an absolute or relative URI (clients send either form)."""
    if "://" in uri:
        rest = uri.split("://", 1)[1]
        slash = rest.find("/")
        uri = rest[slash:] if slash >= 0 else "/"
    return uri.rstrip("/") or "/"
