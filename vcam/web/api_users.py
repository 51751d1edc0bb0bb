"""/api/users: the user store, Administrator only.

Changes go through the ONVIF Device service's own handlers (CreateUsers, DeleteUsers, SetUser in
vcam/onvif/device_users.py), so the page and ONVIF share one policy: validation, the user limit,
and the last administrator that can be neither deleted nor demoted. Their faults become JSON
errors with the fault's reason.

GET /api/users -> {"users": [{"username", "level"}]} (passwords are never sent back)
POST /api/users {"username", "password", "level"} -> 201
PUT /api/users/{name} {"password"?, "level"} -> 200
DELETE /api/users/{name} -> 200
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from vcam.auth.users import User, UserLevel
from vcam.onvif.device_users import create_users, delete_users, set_user
from vcam.onvif.faults import SENDER, SoapFault
from vcam.onvif.service import OnvifRequest
from vcam.onvif.soap import TDS, TT, Element
from vcam.web.jsonapi import json_error, ok, read_object
from vcam.web.session import require

if TYPE_CHECKING:
    from vcam.onvif.model import DeviceModel

# ONVIF subcodes that mean "the current state forbids it" rather than "bad request".
_CONFLICTS = {"ter:UsernameClash", "ter:FixedUser", "ter:TooManyUsers"}


def _run(
    model: DeviceModel, admin: User, handler: Callable[[OnvifRequest], Any], body: Element
) -> None:
    try:
        handler(OnvifRequest(body, "", admin, model))
    except SoapFault as fault:
        if _CONFLICTS.intersection(fault.subcodes):
            json_error(409, fault.reason)
        json_error(400 if fault.code == SENDER else 500, fault.reason)


def _text(body: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        json_error(400, f"{key} must be a string")
    return value


def _user_element(username: str, password: str | None, level: str) -> Element:
    parts = [TT.Username(username)]
    if password is not None:
        parts.append(TT.Password(password))
    parts.append(TT.UserLevel(level))
    return TDS.User(*parts)


class UsersApi:
    def __init__(self, model: DeviceModel) -> None:
        self.model = model

    async def list(self, request: web.Request) -> web.Response:
        require(request, UserLevel.ADMINISTRATOR)
        users = [{"username": u.username, "level": u.level.value} for u in self.model.users.users()]
        return ok({"users": users, "levels": [level.value for level in UserLevel]})

    async def create(self, request: web.Request) -> web.Response:
        admin = require(request, UserLevel.ADMINISTRATOR)
        body = await read_object(request)
        name, password = _text(body, "username"), _text(body, "password")
        level = _text(body, "level")
        assert name is not None and level is not None  # _text raised otherwise
        user = _user_element(name, password, level)
        _run(self.model, admin, create_users, TDS.CreateUsers(user))
        return ok({"username": name, "level": level}, status=201)

    async def update(self, request: web.Request) -> web.Response:
        admin = require(request, UserLevel.ADMINISTRATOR)
        name = request.match_info["name"]
        body = await read_object(request)
        existing = self.model.users.get(name)
        if existing is None:
            json_error(404, f"no user {name!r}")
        level = _text(body, "level", required=False) or existing.level.value
        user = _user_element(name, _text(body, "password", required=False), level)
        _run(self.model, admin, set_user, TDS.SetUser(user))
        return ok({"username": name, "level": level})

    async def delete(self, request: web.Request) -> web.Response:
        admin = require(request, UserLevel.ADMINISTRATOR)
        name = request.match_info["name"]
        if self.model.users.get(name) is None:
            json_error(404, f"no user {name!r}")
        _run(self.model, admin, delete_users, TDS.DeleteUsers(TDS.Username(name)))
        return ok({"deleted": name})


def register_users(app: web.Application, model: DeviceModel) -> None:
    api = UsersApi(model)
    app.router.add_get("/api/users", api.list)
    app.router.add_post("/api/users", api.create)
    app.router.add_put("/api/users/{name}", api.update)
    app.router.add_delete("/api/users/{name}", api.delete)
