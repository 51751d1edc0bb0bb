"""ONVIF over HTTP: POST /onvif/<service> -> SOAP core -> handler -> SOAP response.

Authentication: WS-Security UsernameToken first (what real clients send), HTTP Digest when the
request carries no Security header. Faults are SOAP faults with the right HTTP status, never
plain text; a request without credentials for a protected operation gets 401 with a Digest
challenge.
"""

from __future__ import annotations

import inspect
import logging

from aiohttp import web

from vcam.auth.digest import DigestAuth
from vcam.auth.users import User
from vcam.onvif import faults
from vcam.onvif.faults import SoapFault, fault_envelope
from vcam.onvif.model import DeviceModel
from vcam.onvif.service import OnvifDispatcher, OnvifRequest
from vcam.onvif.soap import Limits, SoapVersion, envelope, parse_envelope
from vcam.onvif.wssecurity import UsernameTokenAuth

log = logging.getLogger("vcam.onvif")

MAX_BODY = Limits().max_bytes


class OnvifEndpoint:
    def __init__(
        self,
        dispatcher: OnvifDispatcher,
        model: DeviceModel,
        wsse: UsernameTokenAuth,
        digest: DigestAuth,
    ) -> None:
        self.dispatcher = dispatcher
        self.model = model
        self.wsse = wsse
        self.digest = digest

    async def handle(self, request: web.Request) -> web.Response:
        version = SoapVersion.SOAP12
        relates_to = None
        try:
            if request.content_length is not None and request.content_length > MAX_BODY:
                raise faults.too_large(f"body over {MAX_BODY} bytes")
            body = await _read_limited(request, MAX_BODY)
            req = parse_envelope(body, request.headers.get("Content-Type"))
            version, relates_to = req.version, req.message_id
            client = request.remote or ""

            def authenticate() -> User | None:
                user = self.wsse.verify(req.header)
                if user is not None:
                    return user
                header = request.headers.get("Authorization")
                if header is None:
                    return None
                result = self.digest.verify(request.method, header, client, request.path_qs)
                if not result.ok:
                    raise faults.not_authorized(result.reason, challenge=True)
                return result.user

            op, user = self.dispatcher.resolve(req, authenticate)
            host = request.headers.get("Host") or f"{request.url.host}:{self.model.http_port}"
            result = op.handler(
                OnvifRequest(req.body_element, host, user, self.model, request.path)
            )
            # Operations that wait (PullMessages) are coroutines; the rest answer at once.
            children = await result if inspect.isawaitable(result) else result
            data = envelope(
                children,
                version=req.version,
                relates_to=req.message_id,
                action=_response_action(req.action),
            )
            return web.Response(body=data, content_type=version.content_type.split(";")[0])
        except SoapFault as fault:
            if fault.private:
                log.info("ONVIF fault for %s: %s", request.remote, fault.private)
            headers = {}
            if fault.challenge:
                headers["WWW-Authenticate"] = self.digest.challenge()[0]
            return web.Response(
                status=fault.http_status,
                body=fault_envelope(fault, version, relates_to),
                content_type=version.content_type.split(";")[0],
                headers=headers,
            )
        except Exception:
            log.exception("ONVIF handler failed")
            failed = faults.action_failed("internal error")
            return web.Response(
                status=failed.http_status,
                body=fault_envelope(failed, version, relates_to),
                content_type=version.content_type.split(";")[0],
            )


def _response_action(request_action: str | None) -> str | None:
    """WS-Addressing clients (zeep for the Event service) get the WSDL's output action back:
    ".../PullMessagesRequest" is answered with ".../PullMessagesResponse"."""
    if request_action and request_action.endswith("Request"):
        return request_action[: -len("Request")] + "Response"
    return None


async def _read_limited(request: web.Request, limit: int) -> bytes:
    """Read at most `limit` bytes; more (even without Content-Length) is a 413 fault."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise faults.too_large(f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
