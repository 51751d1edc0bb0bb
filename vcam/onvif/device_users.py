"""Device service user management: CreateUsers, DeleteUsers, SetUser (Core spec 8.4).

The users are the one store RTSP Digest, HTTP Digest and WS-Security check; the store writes
every change to the data directory before it takes effect, so accounts survive restarts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from lxml import etree

from vcam.auth.users import (
    InvalidPassword,
    InvalidUsername,
    PasswordTooLong,
    User,
    UserError,
    UserLevel,
    UsernameTooLong,
    UserStore,
    validate,
)
from vcam.onvif.faults import RECEIVER, SENDER, SoapFault, invalid_arg
from vcam.onvif.service import OnvifRequest, arg_text
from vcam.onvif.soap import TDS, Element

MAX_USERS = 32
_T = TypeVar("_T")
_LEVELS = {level.value: level for level in UserLevel}


def _prohibited(subcode: str, reason: str) -> SoapFault:
    return SoapFault(SENDER, ["ter:OperationProhibited", f"ter:{subcode}"], reason)


def _users_in(body: Element) -> list[Element]:
    return [c for c in body if isinstance(c.tag, str) and etree.QName(c).localname == "User"]


def _user(node: Element, existing: User | None) -> User:
    name = arg_text(node, "Username") or ""
    password = arg_text(node, "Password")
    level_text = arg_text(node, "UserLevel") or ""
    if level_text == "Anonymous":
        raise _prohibited("AnonymousNotAllowed", "the Anonymous level cannot be given")
    level = _LEVELS.get(level_text)
    if level is None:
        raise invalid_arg(f"unknown UserLevel {level_text!r}")
    if password is None:
        if existing is None:
            raise _prohibited("PasswordTooWeak", f"user {name!r} needs a password")
        password = existing.password  # SetUser may change the level alone
    user = User(name, password, level)
    try:
        validate(user)
    except UsernameTooLong as exc:
        raise _prohibited("UsernameTooLong", str(exc)) from None
    except PasswordTooLong as exc:
        raise _prohibited("PasswordTooLong", str(exc)) from None
    except InvalidPassword as exc:
        raise _prohibited("PasswordTooWeak", str(exc)) from None
    except InvalidUsername as exc:
        raise invalid_arg(str(exc)) from None
    return user


def _administrators(users: list[User]) -> int:
    return sum(u.level is UserLevel.ADMINISTRATOR for u in users)


def create_users(req: OnvifRequest) -> list[Element]:
    store: UserStore = req.model.users
    new = [_user(node, None) for node in _users_in(req.body)]
    names = [u.username for u in new]
    if not new:
        raise invalid_arg("no User given")
    if len(set(names)) != len(names) or any(store.get(n) for n in names):
        raise _prohibited("UsernameClash", "a user of that name exists")
    if len(store) + len(new) > MAX_USERS:
        raise SoapFault(RECEIVER, ["ter:Action", "ter:TooManyUsers"], "too many users")
    for user in new:  # all were checked: nothing but a disk failure can stop half-way
        _apply(store.add, user)
    return [TDS.CreateUsersResponse()]


def delete_users(req: OnvifRequest) -> list[Element]:
    store: UserStore = req.model.users
    names = [
        (c.text or "").strip()
        for c in req.body
        if isinstance(c.tag, str) and etree.QName(c).localname == "Username"
    ]
    if not names:
        raise invalid_arg("no Username given")
    for name in names:
        if store.get(name) is None:
            raise invalid_arg(f"no user {name!r}", "ter:UsernameMissing")
    remaining = [u for u in store.users() if u.username not in names]
    if _administrators(remaining) == 0:
        raise _prohibited("FixedUser", "the last administrator cannot be deleted")
    for name in names:
        _apply(store.delete, name)
    return [TDS.DeleteUsersResponse()]


def set_user(req: OnvifRequest) -> list[Element]:
    store: UserStore = req.model.users
    changes = []
    for node in _users_in(req.body):
        name = arg_text(node, "Username") or ""
        existing = store.get(name)
        if existing is None:
            raise invalid_arg(f"no user {name!r}", "ter:UsernameMissing")
        changes.append(_user(node, existing))
    if not changes:
        raise invalid_arg("no User given")
    after = {u.username: u for u in store.users()} | {u.username: u for u in changes}
    if _administrators(list(after.values())) == 0:
        raise _prohibited("FixedUser", "the last administrator cannot be demoted")
    for user in changes:
        _apply(store.set, user)
    return [TDS.SetUserResponse()]


def _apply(change: Callable[[_T], None], arg: _T) -> None:
    try:
        change(arg)
    except (UserError, OSError) as exc:
        raise SoapFault(RECEIVER, ["ter:Action"], f"cannot change users: {exc}") from None
