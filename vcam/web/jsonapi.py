"""JSON in and out for /api/*: errors are `{"error": message}` with a proper status, bodies are
bounded JSON objects sent as application/json (a cross-site HTML form cannot send that type
without a CORS preflight, which we never answer)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NoReturn

from aiohttp import web

log = logging.getLogger("vcam.web")

MAX_JSON = 64 * 1024  # rules and masks are small; anything bigger is a mistake or an attack
_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    413: web.HTTPRequestEntityTooLarge,
    415: web.HTTPUnsupportedMediaType,
    429: web.HTTPTooManyRequests,
    500: web.HTTPInternalServerError,
    503: web.HTTPServiceUnavailable,
}


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> NoReturn:
    """Raise an HTTP error whose body is `{"error": message}`."""
    cls = _ERRORS[status]
    body = json.dumps({"error": message})
    if cls is web.HTTPRequestEntityTooLarge:
        raise web.HTTPRequestEntityTooLarge(
            MAX_JSON, MAX_JSON + 1, text=body, content_type="application/json"
        )
    raise cls(text=body, content_type="application/json", headers=headers)


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers={"Cache-Control": "no-store"})


def refuse_unknown(body: dict[str, Any], known: Iterable[str], what: str) -> None:
    """A JSON 400 naming the first key of `body` that is not `known` (a typo is not ignored)."""
    unknown = set(body) - set(known)
    if unknown:
        json_error(400, f"unknown {what} {sorted(unknown)[0]!r}")


async def read_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; 415 for another content type, 413 if too big, 400 if not
    a JSON object."""
    if request.content_type != "application/json":
        json_error(415, "send the body as application/json")
    if request.content_length is not None and request.content_length > MAX_JSON:
        json_error(413, f"body over {MAX_JSON} bytes")
    raw = await request.content.read(MAX_JSON + 1)
    if len(raw) > MAX_JSON:
        json_error(413, f"body over {MAX_JSON} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        json_error(400, "the body is not valid JSON")
    if not isinstance(data, dict):
        json_error(400, "the body must be a JSON object")
    return data


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under /api/, aiohttp's own plain-text errors (404, 405) and unexpected failures become
    JSON too, so the page can always show `error`."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        message = exc.reason if exc.status != 405 else f"{request.method} is not allowed here"
        allow = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return web.json_response({"error": message}, status=exc.status, headers=allow)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        json_error(500, "internal error")
