"""RTSP over HTTP (the Apple-style tunnel) on the web port, as ONVIF Profiles T and M require.

`GET /<stream>` with an `x-sessioncookie` opens the tunnel's server-to-client half: a 200 answer
with neither Content-Length nor chunking, then RTSP answers and interleaved RTP written straight
to the connection by an `RtspConnection`, the session engine of the RTSP port. `POST /<stream>`
with the same cookie, from the same host, carries the client's RTSP requests as an endless base64
body. Both connections are taken off aiohttp's HTTP parser once their head is read (the hook
aiohttp's own WebSockets use): the POST body is decoded as it arrives, so neither its nominal
Content-Length nor `client_max_size` cuts it, and connection loss is seen at once on both halves.
Authentication happens inside RTSP (Digest on DESCRIBE etc.), as on the RTSP port.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web

from vcam.rtsp.server import (
    MAX_CONNECTIONS,
    MAX_TUNNEL_COOKIE,
    RtspServer,
    TcpChannel,
    TunnelInput,
    bound_send_buffer,
)
from vcam.rtsp.session import RtspConnection

log = logging.getLogger("vcam.web")

CONTENT_TYPE = "application/x-rtsp-tunnelled"


class _Unframed(web.StreamResponse):
    """A body that runs until the connection closes: no Content-Length, and so no chunks."""

    _length_check = False  # what aiohttp's WebSocketResponse sets for the same reason


class _Takeover:
    """Receives a connection's bytes in place of aiohttp's HTTP parser, and its end."""

    def __init__(self, on_data: Callable[[bytes], None], ended: asyncio.Event) -> None:
        self.on_data = on_data
        self.ended = ended

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if not self.ended.is_set():
            self.on_data(data)
        return False, b""

    def feed_eof(self) -> None:  # the connection is lost
        self.ended.set()

    @staticmethod
    def install(request: web.BaseRequest, parser: _Takeover) -> None:
        # The protocol's payload-parser hook: every later byte goes to `parser.feed_data`.
        request.protocol.set_parser(cast(Any, parser))


class _TunnelChannel(TcpChannel):
    """The GET half's connection: closing it (slow client, request flood) ends the tunnel."""

    def __init__(self, transport: asyncio.Transport, ended: asyncio.Event) -> None:
        super().__init__(transport)
        self._ended = ended

    def close(self) -> None:
        self._ended.set()
        super().close()


class RtspTunnel:
    """The tunnel handler of the web app; the RTSP server keeps the cookie registry."""

    def __init__(self, rtsp: RtspServer) -> None:
        self.rtsp = rtsp
        self._gets: dict[RtspConnection, asyncio.Event] = {}  # open GET halves -> their end

    @property
    def route(self) -> str:
        """`/<stream>` and what lies below it (`/<stream>/trackID=0`): the RTSP paths."""
        names = "|".join(sorted(self.rtsp.streams))  # identifiers: no regex escaping needed
        return "/{stream:(?:" + names + ")}{tail:(?:/.*)?}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        cookie = request.headers.get("x-sessioncookie", "")
        if not cookie or len(cookie) > MAX_TUNNEL_COOKIE:
            return _refuse(400, "RTSP over HTTP needs an x-sessioncookie")
        transport = request.transport
        if transport is None:
            return _refuse(400, "connection gone")
        peer = transport.get_extra_info("peername") or ("", 0)
        client_ip = str(peer[0])
        if request.method == "GET":
            return await self._get(request, transport, cookie, client_ip)
        return await self._post(request, transport, cookie, client_ip)

    async def _get(
        self, request: web.Request, transport: asyncio.Transport, cookie: str, client_ip: str
    ) -> web.StreamResponse:
        if self.rtsp.connections >= MAX_CONNECTIONS:
            log.warning("too many RTSP connections: refusing a tunnel from %s", client_ip)
            return _refuse(503, "too many connections")
        resp = _Unframed(
            headers={
                "Content-Type": CONTENT_TYPE,
                "Cache-Control": "no-store",
                "Pragma": "no-cache",
                "Connection": "close",
            }
        )
        resp.force_close()
        await resp.prepare(request)  # the head goes out now; RTSP follows raw
        ended = asyncio.Event()
        _Takeover.install(request, _Takeover(lambda _data: None, ended))  # nothing comes in
        bound_send_buffer(transport, self.rtsp.cfg.client_buffer_kb)
        channel = _TunnelChannel(transport, ended)
        conn = RtspConnection(self.rtsp, channel, client_ip)
        self.rtsp.connections += 1
        self.rtsp.tunnel_open(cookie, conn)
        self._gets[conn] = ended
        log.debug("RTSP tunnel %s opened by %s", cookie, client_ip)
        try:
            await ended.wait()
        finally:
            del self._gets[conn]
            self.rtsp.tunnel_closed(cookie, conn)
            self.rtsp.connections -= 1
            conn.close()
            # Whatever is still queued for a client that stopped reading is dropped: the
            # response must end now, not when (if ever) the client drains it.
            transport.abort()
        return resp

    async def _post(
        self, request: web.Request, transport: asyncio.Transport, cookie: str, client_ip: str
    ) -> web.StreamResponse:
        conn = self.rtsp.tunnel_input(cookie, client_ip)
        get_ended = self._gets.get(conn) if conn is not None else None
        if conn is None or get_ended is None:
            return _refuse(403, "no such RTSP tunnel")
        tunnel = TunnelInput(conn)
        ended = asyncio.Event()

        def on_data(data: bytes) -> None:
            if not tunnel.feed(data):
                ended.set()

        try:
            early = request.content.read_nowait()  # the part aiohttp already read
        except Exception:  # the connection is already gone
            early = b""
        _Takeover.install(request, _Takeover(on_data, ended))
        if early:
            on_data(early)
        waits = [asyncio.ensure_future(e.wait()) for e in (ended, get_ended)]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            transport.abort()  # the client closed it, or its tunnel is over
        resp = web.Response(status=200)  # never read by clients: they only ever send here
        resp.force_close()
        return resp

    def close_all(self) -> None:
        """Ends every open tunnel (server shutdown): handlers return at once."""
        for ended in list(self._gets.values()):
            ended.set()


def _refuse(status: int, text: str) -> web.Response:
    resp = web.Response(status=status, text=text)
    resp.force_close()
    return resp
