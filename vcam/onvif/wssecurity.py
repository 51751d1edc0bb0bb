"""WS-Security UsernameToken (OASIS Username Token Profile 1.0), as ONVIF clients send it.

Digest = Base64(SHA1(nonce bytes + Created + password)), over the exact Created string received.
Elements are found by namespace, never by prefix (npm onvif and UniFi use a default namespace,
Hikvision adds mustUnderstand="true" and wsu:Id, Synology omits the Nonce EncodingType, go2rtc
sends nanoseconds in Created).

Freshness: Created must lie within `window_s` of our clock, either way (clients correct for the
skew they measured with GetSystemDateAndTime, imperfectly). Every accepted nonce is remembered
until its token leaves the window, so a captured header cannot be replayed (Dahua
CVE-2022-30563). The cache is bounded: when full, the entry expiring first is evicted and its
Created becomes a horizon; tokens created at or before the horizon are refused as stale, so an
evicted nonce can never be replayed (a flood costs freshness, never safety). Only verified tokens
enter the cache, so filling it requires valid credentials.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from lxml import etree

from vcam.auth.users import User, UserStore
from vcam.onvif import faults
from vcam.onvif.soap import WSSE, WSU

_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
PASSWORD_DIGEST = f"{_PROFILE}#PasswordDigest"
PASSWORD_TEXT = f"{_PROFILE}#PasswordText"
_MAX_FIELD = 1024  # characters in any token field; real ones are < 100
_CREATED = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?"
)


def password_digest(nonce: bytes, created: str, password: str) -> str:
    raw = hashlib.sha1(nonce + created.encode() + password.encode()).digest()
    return base64.b64encode(raw).decode("ascii")


def parse_created(text: str) -> float:
    """POSIX seconds from an xs:dateTime as clients write it; ValueError when malformed.
    Fractions of any length (go2rtc sends nanoseconds) are cut to microseconds; a missing zone
    means UTC, as every client observed sends UTC."""
    m = _CREATED.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"malformed Created {text[:40]!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micros = int((m.group(7) or "0")[:6].ljust(6, "0"))
    when = datetime(year, month, day, hour, minute, min(second, 59), micros, tzinfo=UTC)
    if m.group(9):
        offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        when -= offset if m.group(9) == "+" else -offset
    return when.timestamp()


def _text(parent: etree._Element, *tags: str) -> tuple[etree._Element | None, str | None]:
    for tag in tags:
        found = parent.findall(tag)
        if len(found) > 1:
            raise faults.not_authorized(f"duplicate {tag}")
        if found:
            text = (found[0].text or "").strip()
            if len(text) > _MAX_FIELD:
                raise faults.not_authorized(f"{tag} too long")
            return found[0], text
    return None, None


class UsernameTokenAuth:
    def __init__(
        self,
        users: UserStore,
        *,
        window_s: float = 300,
        clock: Callable[[], float] = time.time,
        replay_cache: int = 10000,
        allow_password_text: bool = False,
    ) -> None:
        if window_s <= 0 or replay_cache <= 0:
            raise ValueError("window_s and replay_cache must be positive")
        self.users = users
        self.window_s = window_s
        self.allow_password_text = allow_password_text
        self._clock = clock  # wall clock: Created is wall-clock time
        self._max = replay_cache
        self._lock = threading.Lock()
        self._seen: dict[bytes, float] = {}  # nonce -> Created (POSIX seconds)
        self._expiry: list[tuple[float, bytes]] = []  # heap of (Created, nonce)
        self._horizon = float("-inf")

    def verify(self, header: etree._Element | None) -> User | None:
        """The user named by a valid UsernameToken; None when the request carries no wsse:Security
        (the HTTP layer may then try HTTP Digest); `SoapFault` ter:NotAuthorized otherwise."""
        if header is None:
            return None
        securities = header.findall(f"{{{WSSE}}}Security")
        if not securities:
            return None
        if len(securities) > 1:
            raise faults.not_authorized("several Security headers")
        tokens = securities[0].findall(f"{{{WSSE}}}UsernameToken")
        if len(tokens) != 1:
            raise faults.not_authorized(f"{len(tokens)} UsernameTokens")
        return self._check(tokens[0])

    def _check(self, token: etree._Element) -> User:
        _, username = _text(token, f"{{{WSSE}}}Username")
        password_el, password = _text(token, f"{{{WSSE}}}Password")
        nonce_el, nonce_b64 = _text(token, f"{{{WSSE}}}Nonce")
        # Created belongs in wsu:, but lenient clients put it in wsse:; the string is hashed as is.
        _, created = _text(token, f"{{{WSU}}}Created", f"{{{WSSE}}}Created")
        if not username or password_el is None or password is None:
            raise faults.not_authorized("UsernameToken without Username or Password")
        kind = (password_el.get("Type") or "").strip()
        if kind == PASSWORD_TEXT or (kind == "" and self.allow_password_text and not nonce_b64):
            return self._check_text(username, password_el.text or "")  # spaces may matter
        if kind not in (PASSWORD_DIGEST, ""):  # no Type: try it as a digest (safe: needs nonce)
            raise faults.not_authorized(f"password type {kind[:80]!r}")
        if not nonce_b64 or not created or nonce_el is None:
            raise faults.not_authorized("digest without Nonce or Created")
        encoding = (nonce_el.get("EncodingType") or "").strip()
        if encoding and not encoding.endswith("#Base64Binary"):  # Synology sends none
            raise faults.not_authorized(f"nonce encoding {encoding[:80]!r}")
        try:
            nonce = base64.b64decode(nonce_b64, validate=True)
            created_at = parse_created(created)
        except (binascii.Error, ValueError, OverflowError) as exc:
            raise faults.not_authorized(str(exc)) from None
        if not nonce:
            raise faults.not_authorized("empty nonce")
        now = self._clock()
        if abs(now - created_at) > self.window_s:
            raise faults.not_authorized(f"Created {created!r} outside the window")
        user = self.users.get(username)
        # Hash even for unknown users so that timing does not tell which names exist.
        expected = password_digest(nonce, created, user.password if user else "\0")
        if not hmac.compare_digest(expected.encode(), password.encode()) or user is None:
            raise faults.not_authorized("unknown user" if user is None else "wrong digest")
        self._remember(nonce, created_at, now)
        return user

    def _check_text(self, username: str, password: str) -> User:
        if not self.allow_password_text:
            raise faults.not_authorized("PasswordText refused")
        user = self.users.get(username)
        given = password.encode()
        if user is None or not hmac.compare_digest(given, user.password.encode()):
            raise faults.not_authorized("wrong password")
        return user  # no nonce, no replay protection: why it is off by default

    def _remember(self, nonce: bytes, created_at: float, now: float) -> None:
        with self._lock:
            # Drop tokens that have left the window: they would be refused as stale anyway.
            while self._expiry and self._expiry[0][0] + self.window_s < now:
                _, old = heapq.heappop(self._expiry)
                self._seen.pop(old, None)
            # Checked before evicting too, so that a refused token costs no entry.
            if created_at <= self._horizon:
                raise faults.not_authorized("Created before the replay-cache horizon")
            if nonce in self._seen:
                raise faults.not_authorized("nonce replayed")
            while len(self._seen) >= self._max:
                evicted_at, old = heapq.heappop(self._expiry)
                self._seen.pop(old, None)
                self._horizon = max(self._horizon, evicted_at)
                if created_at <= self._horizon:
                    raise faults.not_authorized("Created before the replay-cache horizon")
            self._seen[nonce] = created_at
            heapq.heappush(self._expiry, (created_at, nonce))
