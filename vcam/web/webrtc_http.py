"""WebRTC signalling over HTTP: one offer in, one answer out (no trickle ICE: aiortc gathers
all candidates before it answers).

Two doors to the same viewers, by how the client authenticates:
- POST /api/webrtc/offer, /api/webrtc/close: the web page's session (cookie + X-CSRF-Token,
  enforced for every /api/ POST by vcam/web/session.py).
- POST /webrtc/offer, /webrtc/close: HTTP Digest, like /snapshot and RTSP (players, scripts).
GET /api/webrtc/config (session or Digest): {"ice_servers": [RTCIceServer dicts for the
browser], "streams": [...], "max_peers": n, "peers": n}.

Offer: {"sdp": "...", "type": "offer", "stream": "main" | "sub"} (application/json).
Answer: {"sdp": "...", "type": "answer", "id": "<peer id>"}; errors: {"error": "..."} with
400 (bad offer: no H.264 Baseline packetization-mode 1, sends media, not SDP), 401, 404 (no such
stream), 409 (the stream is not Baseline), 503 (too many viewers). The viewer must offer a
recvonly video transceiver, and a data channel labelled "metadata" if it wants boxes, events
and status (vcam/webrtc/metadata.py documents the JSON). Close: {"id": "<peer id>"}: any user
may close their own viewers, an Administrator any.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from vcam.auth.users import User, UserLevel
from vcam.config import WebConfig
from vcam.web.jsonapi import json_error, ok, read_object
from vcam.web.session import session_user
from vcam.webrtc.feed import MetadataFeed
from vcam.webrtc.ice import browser_ice_servers, gather_on, ice_servers
from vcam.webrtc.peers import PeerManager, PeerRefused

if TYPE_CHECKING:
    from vcam.web.server import WebServer

PEERS = web.AppKey("vcam_webrtc_peers", PeerManager)


class WebRtcHttp:
    def __init__(self, server: WebServer, settings: WebConfig) -> None:
        assert server.camera is not None
        self.server = server
        self.settings = settings
        model = server.onvif.model
        feed = MetadataFeed(server.camera, model.events, lambda: len(self.peers))
        self.peers = PeerManager(
            server.camera.bus,
            lambda: server.onvif.model.streams,  # the model is replaced as clients change it
            feed,
            ice_servers(settings.ice_servers),
            settings.max_webrtc_peers,
        )

    def _digest_user(self, request: web.Request) -> User:
        result = self.server.digest.verify(
            request.method,
            request.headers.get("Authorization"),
            request.remote or "",
            request.path_qs,
        )
        if result.ok and result.user is not None:
            return result.user
        headers = {"WWW-Authenticate": ", ".join(self.server.digest.challenge(stale=result.stale))}
        if result.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, round(result.retry_after_s)))
        json_error(401, "authentication required", headers)

    def _user(self, request: web.Request) -> User:
        """The session's user under /api/, the Digest user elsewhere."""
        if request.path.startswith("/api/"):
            user = session_user(request)
            if user is not None:
                return user
            if request.method != "GET":  # POSTs under /api/ are session-only (CSRF)
                json_error(401, "log in first")
        return self._digest_user(request)

    async def offer(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await read_object(request)
        sdp, kind, stream = body.get("sdp"), body.get("type"), body.get("stream", "main")
        if kind != "offer" or not isinstance(sdp, str) or not isinstance(stream, str):
            json_error(400, 'send {"sdp": string, "type": "offer", "stream": name}')
        try:
            answer = await self.peers.answer(sdp, stream, user.username)
        except PeerRefused as exc:
            json_error(exc.status, str(exc))
        return ok({"sdp": answer.sdp, "type": answer.type, "id": answer.peer_id})

    async def close(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await read_object(request)
        peer_id = body.get("id")
        if not isinstance(peer_id, str):
            json_error(400, 'send {"id": peer id}')
        peer = self.peers.peer(peer_id)
        if peer is None:
            json_error(404, "no such viewer (already closed?)")
        if peer.username != user.username and user.level is not UserLevel.ADMINISTRATOR:
            json_error(403, "not your viewer")
        await self.peers.close(peer_id)
        return ok({"closed": peer_id})

    async def config(self, request: web.Request) -> web.Response:
        self._user(request)
        data: dict[str, Any] = {
            "ice_servers": browser_ice_servers(self.settings.ice_servers),
            "streams": [s.name for s in self.server.onvif.model.streams],
            "max_peers": self.peers.max_peers,
            "peers": len(self.peers),
        }
        return ok(data)

    async def on_shutdown(self, app: web.Application) -> None:
        await self.peers.close_all()


def register_webrtc(app: web.Application, server: WebServer, settings: WebConfig) -> None:
    """WebRTC viewers of `server.camera`'s encoded streams, on `app` before it starts."""
    gather_on(settings.bind)
    http = WebRtcHttp(server, settings)
    app[PEERS] = http.peers
    for prefix in ("/api/webrtc", "/webrtc"):
        app.router.add_post(f"{prefix}/offer", http.offer)
        app.router.add_post(f"{prefix}/close", http.close)
    app.router.add_get("/api/webrtc/config", http.config)
    app.on_shutdown.append(http.on_shutdown)
