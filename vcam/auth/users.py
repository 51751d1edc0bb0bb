"""The one user store behind RTSP Digest, HTTP Digest and ONVIF WS-Security.

Passwords are kept in plaintext on purpose: WS-Security PasswordDigest hashes the password with a
per-request nonce, so no stored hash can serve it. Persistence (issue 4) adds `save`/`load` around
`users()` and the constructor; every change goes through `_replace`, the one place to hook it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from vcam.errors import VcamError
from vcam.persist import write_private_json

MAX_USERNAME = 64
MAX_PASSWORD = 128
# No ':' (Digest joins user:realm:password), no quotes or backslashes (clients such as ffmpeg do
# not escape them in the Authorization header), no spaces or control characters.
_USERNAME = re.compile(r"[A-Za-z0-9._@+~\-]+")


class UserLevel(StrEnum):
    """ONVIF tt:UserLevel names."""

    ADMINISTRATOR = "Administrator"
    OPERATOR = "Operator"
    USER = "User"


@dataclass(frozen=True)
class User:
    username: str
    password: str = field(repr=False)
    level: UserLevel = UserLevel.USER


class UserError(VcamError, ValueError):
    """A user cannot be stored as asked; the message says why."""


class InvalidUsername(UserError):
    pass


class UsernameTooLong(InvalidUsername):
    pass


class InvalidPassword(UserError):
    pass


class PasswordTooLong(InvalidPassword):
    pass


class UsernameClash(UserError):
    """The username exists already (ONVIF ter:UsernameClash)."""


class UnknownUser(UserError):
    pass


def validate(user: User) -> None:
    name, password = user.username, user.password
    if not name:
        raise InvalidUsername("username must not be empty")
    if len(name) > MAX_USERNAME:
        raise UsernameTooLong(f"username longer than {MAX_USERNAME} characters")
    if not _USERNAME.fullmatch(name):
        raise InvalidUsername(f"username {name!r} may only contain letters, digits and . _ @ + ~ -")
    if not password:
        raise InvalidPassword(f"password of {name!r} must not be empty")
    if len(password) > MAX_PASSWORD:
        raise PasswordTooLong(f"password of {name!r} longer than {MAX_PASSWORD} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in password):
        raise InvalidPassword(f"password of {name!r} contains a control character")
    if not isinstance(user.level, UserLevel):
        raise UserError(f"level of {name!r} must be a UserLevel, not {user.level!r}")


class UserStore:
    """Thread-safe; readers get immutable `User`s, so no lock is held by callers.

    With a `path`, every change is written there first (atomically, readable by the owner
    only) and only then takes effect: what a client set survives a restart, and a failed write
    changes nothing.
    """

    def __init__(self, users: Iterable[User] = (), path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, User] = {}
        self.path = path
        for user in users:
            self.add(user)

    @classmethod
    def load(cls, path: Path) -> UserStore:
        """The users kept in `path` (a store that saves back there); UserError if damaged."""
        try:
            rows = json.loads(path.read_text())
            users = [User(r["username"], r["password"], UserLevel(r["level"])) for r in rows]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"cannot read users from {path}: {exc}") from None
        store = cls(users)
        store.path = path
        return store

    def get(self, username: str) -> User | None:
        with self._lock:
            return self._users.get(username)

    def users(self) -> list[User]:
        with self._lock:
            return list(self._users.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._users)

    def add(self, user: User) -> None:
        validate(user)
        with self._lock:
            if user.username in self._users:
                raise UsernameClash(f"user {user.username!r} exists already")
            self._replace({**self._users, user.username: user})

    def set(self, user: User) -> None:
        """Changes an existing user's password or level."""
        validate(user)
        with self._lock:
            if user.username not in self._users:
                raise UnknownUser(f"no user {user.username!r}")
            self._replace({**self._users, user.username: user})

    def delete(self, username: str) -> None:
        with self._lock:
            if username not in self._users:
                raise UnknownUser(f"no user {username!r}")
            self._replace({k: v for k, v in self._users.items() if k != username})

    def _replace(self, users: dict[str, User]) -> None:
        # Called with the lock held: write first, then swap, so disk and memory agree.
        if self.path is not None:
            _write_private(self.path, users)
        self._users = users


def _write_private(path: Path, users: dict[str, User]) -> None:
    rows = [
        {"username": u.username, "password": u.password, "level": str(u.level)}
        for u in users.values()
    ]
    write_private_json(path, rows)
