"""The web page: GET / serves the single-page app from vcam/web/static (no build step, nothing
from outside the package), and `register_page` puts everything the page needs on the app:
JSON errors, sessions and CSRF, the JSON API, users, events, /metrics and /healthz.

The page's responses carry a strict Content-Security-Policy (only our own scripts, styles and
connections; video from WebRTC media streams), and may not be framed (clickjacking).
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import web

from vcam.web.api import register_api
from vcam.web.api_users import register_users
from vcam.web.events_feed import register_events
from vcam.web.jsonapi import json_errors
from vcam.web.metrics import register_metrics
from vcam.web.session import register_sessions

if TYPE_CHECKING:
    from vcam.web.server import WebServer

_FILES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "app.css": "text/css",
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _load() -> dict[str, bytes]:
    """The page's files, read once from the installed package."""
    static = resources.files("vcam.web") / "static"
    return {name: (static / name).read_bytes() for name in _FILES}


class Page:
    def __init__(self) -> None:
        self.files = _load()

    async def index(self, request: web.Request) -> web.Response:
        return self._serve("index.html")

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.files:
            raise web.HTTPNotFound()
        return self._serve(name)

    def _serve(self, name: str) -> web.Response:
        return web.Response(
            body=self.files[name], content_type=_FILES[name], charset="utf-8", headers=HEADERS
        )


def register_page(app: web.Application, server: WebServer) -> None:
    """Everything the page uses, on `app` before it starts."""
    app.middlewares.append(json_errors)  # outermost of ours: errors below it become JSON
    register_sessions(app, server.onvif.model.users, server.digest)
    register_api(app, server)
    register_users(app, server.onvif.model)
    register_events(app, server.onvif.model.events)
    register_metrics(app, server)
    page = Page()
    app.router.add_get("/", page.index)
    app.router.add_get("/static/{name}", page.asset)
