"""Browser sessions for the web page and its /api/*.

- POST /api/login `{"username", "password"}` checks the one user store (the one RTSP Digest and
  ONVIF check) and sets the `vcam_session` cookie (HttpOnly, SameSite=Strict, Secure over
  HTTPS); it answers `{"username", "level", "csrf"}`. Failed logins count in the Digest
  module's throttle, in the same per-address budget as Digest itself, so a guesser cannot
  alternate between the two.
- GET /api/session answers the same for the current session (401 without one).
- POST /api/logout ends it.
- Every POST/PUT/PATCH/DELETE under /api/ (login excepted) needs a live session and its CSRF
  token in the `X-CSRF-Token` header: 401 without a session, 403 with a missing or wrong token.
  The middleware enforces it for every /api/ route, including ones other modules add.

Other modules use `session_user(request)` (the user, or None) and `require(request, level)`
(the user, or a JSON 401/403). Sessions live in memory only (a restart logs everyone out),
are bounded in number (the least recently used goes), expire after an idle time and after an
absolute lifetime, and end when their user is deleted or their password changes; the level is
read from the store on every request, so a demotion applies at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from vcam.auth.digest import DigestAuth
from vcam.auth.users import User, UserLevel, UserStore
from vcam.web.jsonapi import json_error, ok, read_object

COOKIE = "vcam_session"
CSRF_HEADER = "X-CSRF-Token"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_RANK = {UserLevel.USER: 0, UserLevel.OPERATOR: 1, UserLevel.ADMINISTRATOR: 2}


@dataclass
class Session:
    username: str
    password_mark: bytes  # hash of the password at login: a password change ends the session
    csrf: str
    created: float
    last_seen: float


class SessionStore:
    """Thread-safe, bounded, expiring. Sessions are keyed by a hash of their id, so looking one
    up never compares the secret itself byte by byte."""

    def __init__(
        self,
        users: UserStore,
        *,
        idle_s: float = 30 * 60,
        lifetime_s: float = 12 * 3600,
        max_sessions: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.users = users
        self.idle_s = idle_s
        self.lifetime_s = lifetime_s
        self.max_sessions = max_sessions
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: OrderedDict[bytes, Session] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def create(self, user: User) -> tuple[str, Session]:
        """A new session for `user`: (its id for the cookie, the session)."""
        sid = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(user.username, _mark(user.password), secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._sessions[_key(sid)] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)  # least recently used
        return sid, session

    def lookup(self, sid: str | None) -> tuple[Session, User] | None:
        """The live session of `sid` and its user as the store holds it now, or None."""
        if not sid or len(sid) > 128:
            return None
        key, now = _key(sid), self._clock()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            user = self.users.get(session.username)
            expired = now - session.last_seen > self.idle_s
            expired |= now - session.created > self.lifetime_s
            if (
                expired
                or user is None
                or not hmac.compare_digest(session.password_mark, _mark(user.password))
            ):
                del self._sessions[key]
                return None
            session.last_seen = now
            self._sessions.move_to_end(key)
        return session, user

    def end(self, sid: str | None) -> None:
        if sid:
            with self._lock:
                self._sessions.pop(_key(sid), None)


def _key(sid: str) -> bytes:
    return hashlib.sha256(sid.encode()).digest()


def _mark(password: str) -> bytes:
    return hashlib.sha256(b"vcam-session\0" + password.encode()).digest()


class LoginThrottle:
    """The Digest module's per-address throttle, shared: login failures and Digest failures
    count together."""

    def __init__(self, digest: DigestAuth) -> None:
        self._digest = digest

    def blocked(self, client: str) -> float | None:
        return self._digest.blocked_for(client)

    def failed(self, client: str) -> None:
        self._digest.record_failure(client)

    def succeeded(self, client: str) -> None:
        self._digest.record_success(client)


SESSIONS = web.AppKey("vcam_sessions", SessionStore)
THROTTLE = web.AppKey("vcam_login_throttle", LoginThrottle)


def session_user(request: web.Request) -> User | None:
    """The user of the request's session cookie (as the user store holds it now), or None."""
    found = _lookup(request)
    return found[1] if found is not None else None


def require(request: web.Request, level: UserLevel = UserLevel.USER) -> User:
    """The session's user if at least `level`; otherwise a JSON 401 (no session) or 403."""
    user = session_user(request)
    if user is None:
        json_error(401, "log in first")
    if _RANK[user.level] < _RANK[level]:
        json_error(403, f"this needs the {level.value} level")
    return user


def _lookup(request: web.Request) -> tuple[Session, User] | None:
    store = request.app.get(SESSIONS)
    return store.lookup(request.cookies.get(COOKIE)) if store is not None else None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """State changes under /api/ need a session and its CSRF token (login excepted)."""
    if (
        request.method in _UNSAFE
        and request.path.startswith("/api/")
        and request.path != "/api/login"
    ):
        found = _lookup(request)
        if found is None:
            json_error(401, "log in first")
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), found[0].csrf.encode()):
            json_error(403, f"missing or wrong {CSRF_HEADER} header")
    return await handler(request)


def _describe(user: User, session: Session) -> dict[str, str]:
    return {"username": user.username, "level": user.level.value, "csrf": session.csrf}


async def login(request: web.Request) -> web.Response:
    throttle, client = request.app[THROTTLE], request.remote or ""
    wait = throttle.blocked(client)
    if wait is not None:
        json_error(429, "too many failed logins; try later", {"Retry-After": str(round(wait) or 1)})
    body = await read_object(request)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        json_error(400, "username and password must be strings")
    store = request.app[SESSIONS]
    user = store.users.get(username)
    # Compare even for an unknown user, so the answer time does not tell which names exist.
    expected = user.password if user is not None else secrets.token_urlsafe(16)
    if not hmac.compare_digest(password.encode(), expected.encode()) or user is None:
        throttle.failed(client)
        json_error(401, "wrong username or password")
    throttle.succeeded(client)
    old = request.cookies.get(COOKIE)
    store.end(old)  # a new id on every login: a planted cookie is never promoted
    sid, session = store.create(user)
    response = ok(_describe(user, session))
    response.set_cookie(
        COOKIE, sid, path="/", httponly=True, samesite="Strict", secure=request.secure
    )
    return response


async def logout(request: web.Request) -> web.Response:
    request.app[SESSIONS].end(request.cookies.get(COOKIE))
    response = ok({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


async def current(request: web.Request) -> web.Response:
    found = _lookup(request)
    if found is None:
        json_error(401, "log in first")
    return ok(_describe(found[1], found[0]))


def register_sessions(app: web.Application, users: UserStore, digest: DigestAuth) -> None:
    """Session store, CSRF middleware and the login/logout/session routes on `app` (before it
    starts)."""
    app[SESSIONS] = SessionStore(users)
    app[THROTTLE] = LoginThrottle(digest)
    app.middlewares.append(csrf_middleware)
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/session", current)
