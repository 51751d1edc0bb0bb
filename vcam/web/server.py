"""The aiohttp server: ONVIF services at /onvif/<service>, the masked snapshot JPEG, and RTSP
over HTTP (GET/POST /<stream> with an x-sessioncookie) into the RTSP server's session engine."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from vcam.auth.digest import DigestAuth
from vcam.config import WebConfig
from vcam.web.onvif_http import MAX_BODY, OnvifEndpoint
from vcam.web.page import register_page
from vcam.web.rtsp_tunnel import RtspTunnel
from vcam.web.snapshot import LatestFrame
from vcam.web.webrtc_http import register_webrtc

if TYPE_CHECKING:
    from vcam.rtsp.server import RtspServer
    from vcam.status import LiveCamera

log = logging.getLogger("vcam.web")


class WebServer:
    def __init__(
        self,
        bind: str,
        port: int,
        onvif: OnvifEndpoint,
        latest: LatestFrame,
        digest: DigestAuth,
        rtsp: RtspServer | None = None,
        camera: LiveCamera | None = None,
        web_config: WebConfig | None = None,
    ) -> None:
        """`camera`: the running camera (its encoded bus and status), None in tests that serve
        ONVIF only; `web_config`: the [web] settings (WebRTC's ICE servers and viewer limit)."""
        self.bind = bind
        self.port = port
        self.onvif = onvif
        self.latest = latest
        self.digest = digest
        self.rtsp = rtsp
        self.camera = camera
        # aiohttp refuses bigger bodies with 413 before a handler runs.
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.router.add_post("/onvif/{service:[A-Za-z0-9_]+}", self.onvif.handle)
        # Event subscriptions: the id in the path is what identifies them (vcam/onvif/events.py).
        self.app.router.add_post("/onvif/subscription/{id:[A-Za-z0-9_-]{1,64}}", self.onvif.handle)
        self.app.router.add_get("/snapshot/{stream}.jpg", self.snapshot)
        register_page(self.app, self)  # the web page, its JSON API, /metrics, /healthz
        if camera is not None:  # WebRTC viewers of the encoded bus
            register_webrtc(self.app, self, web_config or WebConfig(bind=bind))
        # The tunnel reads its POST body as a stream, so client_max_size never applies to it.
        self.tunnel = RtspTunnel(rtsp) if rtsp is not None and rtsp.streams else None
        if self.tunnel is not None:
            self.app.router.add_get(self.tunnel.route, self.tunnel.handle, allow_head=False)
            self.app.router.add_post(self.tunnel.route, self.tunnel.handle)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind, self.port, reuse_address=True)
        await site.start()
        server = site._server  # the bound port when 0 was asked for
        if server is not None and server.sockets:  # type: ignore[attr-defined]
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        log.info("HTTP server on %s:%d", self.bind, self.port)

    async def stop(self) -> None:
        if self.tunnel is not None:
            self.tunnel.close_all()  # open tunnels would hold the shutdown for its timeout
        if self._runner is not None:
            await self._runner.cleanup()

    async def snapshot(self, request: web.Request) -> web.Response:
        result = self.digest.verify(
            "GET", request.headers.get("Authorization"), request.remote or "", request.path_qs
        )
        if not result.ok:
            headers = {"WWW-Authenticate": ", ".join(self.digest.challenge(stale=result.stale))}
            if result.retry_after_s is not None:  # throttled: say when to come back
                headers["Retry-After"] = str(max(1, round(result.retry_after_s)))
            return web.Response(status=401, headers=headers)
        # At the stream's size as it is now (clients may have changed it through ONVIF).
        name = request.match_info["stream"]
        stream = next((s for s in self.onvif.model.streams if s.name == name), None)
        if stream is None:
            raise web.HTTPNotFound()
        data = await asyncio.to_thread(self.latest.jpeg, stream.width, stream.height)
        if data is None:
            return web.Response(status=503, headers={"Retry-After": "1"})
        return web.Response(
            body=data, content_type="image/jpeg", headers={"Cache-Control": "no-store"}
        )
