"""The page's JSON API. Every change goes through the same store ONVIF edits (media settings for
masks and imaging, the analytics rule store for rules), so ONVIF clients see what the page set
and the other way round; the camera follows those stores live.

Viewing needs any logged-in user; changes need an Administrator (and, like every change under
/api/, the session's CSRF token: vcam/web/session.py).

GET  /api/status                -> pipeline, bus, RTSP, analytics and privacy status
GET/PUT /api/privacy            {"mode", "style", "face_threshold", "person_threshold"} (the
                                   Analytics module vcam:PrivacyMasking edits the same; GET also
                                   lists "modes" and "styles" to choose from and "zone_style")
GET  /api/masks                 -> {"masks": [{"token", "polygon", "kind", "color", "enabled"}]}
POST /api/masks {"polygon": [[x, y], ...], "kind"?, "color"?, "enabled"?} -> 201 {"token"}
PUT  /api/masks/{token} {the same fields, each optional: left out keeps its value} -> the mask
                                   (same token, so Media2 GetMasks shows the change in place)
DELETE /api/masks/{token}
GET  /api/rules                 -> {"rules": [rule JSON as vcam/analytics/rules.py writes it]}
POST /api/rules {rule JSON}     -> 201;  PUT /api/rules/{name} {rule JSON};  DELETE likewise
GET/PUT /api/imaging            {"brightness", "contrast", "saturation"} (0..100, 50 neutral)
Geometry is normalised 0..1 with y down, as in the stores.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, get_args

from aiohttp import web

from vcam.analytics.rules import Rule, RuleError, rule_from_json
from vcam.auth.users import UserLevel
from vcam.config import MaskMode, MaskStyle
from vcam.media_settings import (
    MAX_MASKS,
    MaskSettings,
    MediaSettings,
    MediaSettingsError,
    PrivacySettings,
    next_token,
)
from vcam.web.jsonapi import json_error, ok, read_object, refuse_unknown
from vcam.web.session import require
from vcam.web.status_view import status_json

if TYPE_CHECKING:
    from vcam.web.server import WebServer

ADMIN = UserLevel.ADMINISTRATOR
_IMAGING = ("brightness", "contrast", "saturation")
_PRIVACY = tuple(f.name for f in dataclasses.fields(PrivacySettings))
_THRESHOLDS = ("face_threshold", "person_threshold")


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        json_error(400, f"{what} must be a finite number")
    return float(value)


def _mask(token: str, body: dict[str, Any], old: MaskSettings | None = None) -> MaskSettings:
    """The mask `body` describes; for a change of `old`, what the body leaves out stays (a
    redrawn polygon keeps its colour). A JSON 400 naming the field for anything invalid."""
    refuse_unknown(body, ("polygon", "kind", "color", "enabled"), "mask field")
    if old is not None:
        kept = {"polygon": [list(p) for p in old.polygon], "kind": old.kind}
        body = {**kept, "color": list(old.color), "enabled": old.enabled, **body}
    points = body.get("polygon")
    if not isinstance(points, list) or not all(isinstance(p, list) and len(p) == 2 for p in points):
        json_error(400, "polygon must be a list of [x, y] points")
    polygon = tuple((_number(x, "x"), _number(y, "y")) for x, y in points)
    color = body.get("color", [0, 0, 0])
    if not isinstance(color, list) or not all(isinstance(c, int) for c in color):
        json_error(400, "color must be [r, g, b] integers")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        json_error(400, "enabled must be true or false")
    mask = MaskSettings(token, polygon, body.get("kind", "Color"), tuple(color), enabled)
    try:
        mask.check()
    except MediaSettingsError as exc:
        json_error(400, str(exc))
    return mask


class PageApi:
    def __init__(self, server: WebServer) -> None:
        self.server = server
        self.model = server.onvif.model

    def _change_media(self, edit: Callable[[MediaSettings], MediaSettings]) -> MediaSettings:
        try:
            return self.model.media.change(edit)
        except MediaSettingsError as exc:
            json_error(400, str(exc))
        except OSError as exc:
            json_error(500, f"cannot keep the settings: {exc}")

    # -- viewing ---------------------------------------------------------------------------------

    async def status(self, request: web.Request) -> web.Response:
        require(request)
        return ok(status_json(self.server))

    async def privacy(self, request: web.Request) -> web.Response:
        require(request)
        return ok(self._privacy_json())

    def _privacy_json(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self.model.privacy),
            "modes": list(self.model.media.modes),
            "styles": list(get_args(MaskStyle)),
            "zone_style": self.model.zone_style,
            "editable": True,
        }

    async def set_privacy(self, request: web.Request) -> web.Response:
        """Changes what the body gives (all or nothing); the camera follows the store."""
        require(request, ADMIN)
        body = await read_object(request)
        refuse_unknown(body, _PRIVACY, "privacy setting")
        changes: dict[str, Any] = {
            k: _number(v, k) if k in _THRESHOLDS else v for k, v in body.items()
        }
        mode = changes.get("mode", self.model.privacy.mode)
        if mode not in get_args(MaskMode):
            json_error(400, f"mode must be one of {', '.join(get_args(MaskMode))}")
        if mode != self.model.privacy.mode and mode not in self.model.media.modes:
            json_error(409, f"mode {mode!r} needs a detector that the configuration disables")
        self._change_media(
            lambda s: dataclasses.replace(s, privacy=dataclasses.replace(s.privacy, **changes))
        )
        return ok(self._privacy_json())

    # -- masks -----------------------------------------------------------------------------------

    async def masks(self, request: web.Request) -> web.Response:
        require(request)
        masks = [dataclasses.asdict(m) for m in self.model.media.settings.masks]
        return ok({"masks": masks, "max": MAX_MASKS})

    async def create_mask(self, request: web.Request) -> web.Response:
        require(request, ADMIN)
        body = await read_object(request)
        created: list[str] = []

        def edit(settings: MediaSettings) -> MediaSettings:
            if len(settings.masks) >= MAX_MASKS:
                json_error(409, f"at most {MAX_MASKS} masks")
            token = next_token("mask_", (m.token for m in settings.masks))
            created.append(token)
            return dataclasses.replace(settings, masks=(*settings.masks, _mask(token, body)))

        self._change_media(edit)
        return ok({"token": created[-1]}, status=201)

    async def modify_mask(self, request: web.Request) -> web.Response:
        """Changes a mask in place: its token (what ONVIF clients hold) stays."""
        require(request, ADMIN)
        token = request.match_info["token"]
        body = await read_object(request)
        changed: list[MaskSettings] = []

        def edit(settings: MediaSettings) -> MediaSettings:
            old = settings.mask(token)
            if old is None:
                json_error(404, f"no mask {token!r}")
            changed.append(_mask(token, body, old))
            masks = tuple(changed[-1] if m.token == token else m for m in settings.masks)
            return dataclasses.replace(settings, masks=masks)

        self._change_media(edit)
        return ok(dataclasses.asdict(changed[-1]))

    async def delete_mask(self, request: web.Request) -> web.Response:
        require(request, ADMIN)
        token = request.match_info["token"]

        def edit(settings: MediaSettings) -> MediaSettings:
            if settings.mask(token) is None:
                json_error(404, f"no mask {token!r}")
            return dataclasses.replace(
                settings, masks=tuple(m for m in settings.masks if m.token != token)
            )

        self._change_media(edit)
        return ok({"deleted": token})

    # -- rules -----------------------------------------------------------------------------------

    async def rules(self, request: web.Request) -> web.Response:
        require(request)
        return ok({"rules": [r.to_json() for r in self.model.rules.settings.rules]})

    async def create_rule(self, request: web.Request) -> web.Response:
        require(request, ADMIN)
        rule = _rule(await read_object(request))
        if self.model.rules.settings.get(rule.name) is not None:
            json_error(409, f"a rule named {rule.name!r} exists already")
        self._change_rules(lambda: self.model.rules.create([rule]))
        return ok(rule.to_json(), status=201)

    async def modify_rule(self, request: web.Request) -> web.Response:
        require(request, ADMIN)
        name = request.match_info["name"]
        body = await read_object(request)
        if body.setdefault("name", name) != name:
            json_error(400, "a rule cannot be renamed: delete it and create another")
        rule = _rule(body)
        if self.model.rules.settings.get(name) is None:
            json_error(404, f"no rule {name!r}")
        self._change_rules(lambda: self.model.rules.modify([rule]))
        return ok(rule.to_json())

    async def delete_rule(self, request: web.Request) -> web.Response:
        require(request, ADMIN)
        name = request.match_info["name"]
        if self.model.rules.settings.get(name) is None:
            json_error(404, f"no rule {name!r}")
        self._change_rules(lambda: self.model.rules.delete([name]))
        return ok({"deleted": name})

    @staticmethod
    def _change_rules(change: Callable[[], object]) -> None:
        try:
            change()
        except RuleError as exc:  # a race with ONVIF, or the rule limit
            json_error(409, str(exc))
        except OSError as exc:
            json_error(500, f"cannot keep the rules: {exc}")

    # -- imaging ---------------------------------------------------------------------------------

    async def imaging(self, request: web.Request) -> web.Response:
        require(request)
        return ok(dataclasses.asdict(self.model.media.settings.imaging))

    async def set_imaging(self, request: web.Request) -> web.Response:
        require(request, ADMIN)
        body = await read_object(request)
        refuse_unknown(body, _IMAGING, "imaging setting")
        changes = {k: _number(v, k) for k, v in body.items()}
        settings = self._change_media(
            lambda s: dataclasses.replace(s, imaging=dataclasses.replace(s.imaging, **changes))
        )
        return ok(dataclasses.asdict(settings.imaging))


def _rule(body: dict[str, Any]) -> Rule:
    try:
        return rule_from_json(body)
    except RuleError as exc:
        json_error(400, str(exc))


def register_api(app: web.Application, server: WebServer) -> None:
    api = PageApi(server)
    r = app.router
    r.add_get("/api/status", api.status)
    r.add_get("/api/privacy", api.privacy)
    r.add_put("/api/privacy", api.set_privacy)
    r.add_get("/api/masks", api.masks)
    r.add_post("/api/masks", api.create_mask)
    r.add_put("/api/masks/{token}", api.modify_mask)
    r.add_delete("/api/masks/{token}", api.delete_mask)
    r.add_get("/api/rules", api.rules)
    r.add_post("/api/rules", api.create_rule)
    r.add_put("/api/rules/{name}", api.modify_rule)
    r.add_delete("/api/rules/{name}", api.delete_rule)
    r.add_get("/api/imaging", api.imaging)
    r.add_put("/api/imaging", api.set_imaging)
