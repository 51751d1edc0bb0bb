"""The RTSP server: TCP connections (plain or HTTP-tunnelled), UDP and multicast RTP, sessions.

Fed only by the encoded-output bus of the masked pipeline: each stream's video and the shared
metadata track are packetised once (TrackFanout) and written to every playing client.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import re
import socket
import time
from dataclasses import dataclass

from vcam.auth.digest import DigestAuth
from vcam.config import RtspConfig
from vcam.media.bus import EncodedBus
from vcam.rtsp.fanout import ClientSink, Target, TrackFanout
from vcam.rtsp.messages import ProtocolError, RequestParser, RtspRequest, TransportSpec, response
from vcam.rtsp.rtp import RtpPacketizer
from vcam.rtsp.session import METADATA, VIDEO, RtspConnection, Session

log = logging.getLogger("vcam.rtsp")

METADATA_STREAM = "metadata"  # the bus stream the MetadataSink publishes
MAX_CONNECTIONS = 256
MAX_TUNNEL_COOKIE = 128  # characters of an HTTP tunnel's x-sessioncookie
_SWEEP_S = 2.0


class TcpChannel:
    """A Channel over an asyncio transport."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        self.peer: tuple[str, int] = (str(peer[0]), int(peer[1]))

    def write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)

    def backlog(self) -> int:
        return self.transport.get_write_buffer_size()

    def close(self) -> None:
        self.transport.close()

    @property
    def closed(self) -> bool:
        return self.transport.is_closing()


class Base64Stream:
    """Incremental base64 (the POST half of an HTTP tunnel): any chunking, whitespace ignored.

    Decodes whole 4-character groups and keeps the rest for the next chunk. Clients encode each
    request on its own (GStreamer pads each one), so padding may end a group mid-stream: decoding
    restarts after it. Raises ValueError (binascii.Error) on anything that is not base64.
    """

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        self._pending += b"".join(data.split())
        usable = len(self._pending) - len(self._pending) % 4
        chunk, self._pending = self._pending[:usable], self._pending[usable:]
        out = []
        while chunk:
            pad = chunk.find(b"=")
            end = len(chunk) if pad < 0 else pad // 4 * 4 + 4  # through the padded group
            out.append(base64.b64decode(chunk[:end], validate=True))
            chunk = chunk[end:]
        return b"".join(out)


class TunnelInput:
    """The POST half of an HTTP tunnel, on whichever port: base64 -> RTSP -> the GET half.

    Requests go to the RtspConnection of the tunnel's GET half, and so do answers to malformed
    input: the GET half is where the client reads.
    """

    def __init__(self, conn: RtspConnection) -> None:
        self.conn = conn
        self._b64 = Base64Stream()
        self._parser = RequestParser()

    def feed(self, data: bytes) -> bool:
        """False when the input is broken: its connection should be closed."""
        try:
            decoded = self._b64.feed(data)
        except ValueError:  # binascii.Error included
            log.info("bad base64 in the HTTP tunnel of %s", self.conn.client_ip)
            return False
        try:
            events = self._parser.feed(decoded) if decoded else []
        except ProtocolError as exc:
            log.info("bad RTSP in the HTTP tunnel of %s: %s", self.conn.client_ip, exc)
            self.conn.send(response(None, exc.status))
            return False
        for event in events:
            self.conn.submit(event)
        return True


def bound_send_buffer(transport: asyncio.BaseTransport, client_buffer_kb: int) -> None:
    """A bounded kernel send buffer for a media client's connection.

    A stalled client shows up in our own backlog (and drops to the next keyframe) after a
    fraction of a second, not after the megabytes that loopback autotuning would otherwise absorb.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        size = max(64 * 1024, client_buffer_kb * 1024 // 4)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


class MulticastTarget:
    """One group:port pair per track; every multicast client of the track shares it."""

    disconnectable = False

    def __init__(self, group: str, ports: tuple[int, int], ttl: int, interface: str) -> None:
        self.rtp_addr, self.rtcp_addr = (group, ports[0]), (group, ports[1])
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        if interface != "0.0.0.0":
            self.sock.setsockopt(
                socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface)
            )
        self.sock.setblocking(False)
        self.errors = 0

    def _sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self.sock.sendto(data, addr)
        except OSError:
            self.errors += 1  # no multicast route: counted, never fatal to the server

    def send(self, batch: object) -> None:
        for packet in batch.batch.packets:  # type: ignore[attr-defined]
            self._sendto(packet, self.rtp_addr)

    def send_rtcp(self, packet: bytes) -> None:
        self._sendto(packet, self.rtcp_addr)

    def backlog(self) -> int:
        return 0

    def close(self) -> None:
        self.sock.close()


@dataclass(frozen=True)
class RtspStats:
    connections: int
    sessions: int
    playing: int
    dropped: int  # batches not sent to slow clients (they resumed at the next keyframe)
    disconnected_slow: int  # clients dropped for overflowing too often

    def line(self) -> str:
        return (
            f"rtsp: {self.connections} connections, {self.playing}/{self.sessions} sessions "
            f"playing, {self.dropped} dropped to slow clients, "
            f"{self.disconnected_slow} disconnected"
        )


@dataclass
class _Multicast:
    target: MulticastTarget
    sink: ClientSink | None = None
    users: int = 0


class _UdpRtcp(asyncio.DatagramProtocol):
    """Receives clients' RTCP (receiver reports keep UDP sessions alive)."""

    def __init__(self, server: RtspServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server.rtcp_from(addr)


class RtspServer:
    def __init__(
        self,
        cfg: RtspConfig,
        bus: EncodedBus,
        streams: list[str],
        *,
        auth: DigestAuth | None,
        fps: float = 0.0,
        advertised_host: str = "127.0.0.1",
    ) -> None:
        self.cfg = cfg
        self.bus = bus
        self.streams = list(streams)
        self.auth = auth
        self.fps = fps
        self.advertised_host = advertised_host
        self.sdp_session_id = random.getrandbits(32)
        self.sessions: dict[str, Session] = {}
        self.port = 0
        self.udp_rtp: asyncio.DatagramTransport | None = None
        self.udp_rtcp: asyncio.DatagramTransport | None = None
        self.udp_ports: tuple[int, int] | None = None
        self._fanouts: dict[tuple[str, int], TrackFanout] = {}
        self._multicast: dict[tuple[str, int], _Multicast] = {}
        self._tunnels: dict[str, tuple[RtspConnection, str]] = {}
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.connections = 0
        self._dropped_gone = 0
        self._disconnected_slow = 0

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        meta = TrackFanout(
            self.bus,
            METADATA_STREAM,
            RtpPacketizer(107, mtu=self.cfg.mtu),
            h264=False,
            rtcp_interval_s=self.cfg.rtcp_interval_s,
        )
        for stream in self.streams:
            self._fanouts[(stream, VIDEO)] = TrackFanout(
                self.bus,
                stream,
                RtpPacketizer(96, mtu=self.cfg.mtu),
                h264=True,
                rtcp_interval_s=self.cfg.rtcp_interval_s,
            )
            self._fanouts[(stream, METADATA)] = meta
        for fanout in set(self._fanouts.values()):
            fanout.start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: RtspProtocol(self), self.cfg.bind, self.cfg.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        await self._open_udp()
        self._sweeper = loop.create_task(self._sweep(), name="rtsp-sweeper")
        log.info("RTSP server on %s:%d", self.cfg.bind, self.port)

    async def _open_udp(self) -> None:
        """A pair of adjacent ports (even RTP, odd RTCP) shared by every UDP client."""
        loop = asyncio.get_running_loop()
        for _ in range(50):
            rtp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rtcp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                rtp_sock.bind((self.cfg.bind, 0))
                port = rtp_sock.getsockname()[1]
                if port % 2:
                    raise OSError("odd port")
                rtcp_sock.bind((self.cfg.bind, port + 1))
            except OSError:
                rtp_sock.close()
                rtcp_sock.close()
                continue
            # One socket for every UDP client: a deep send buffer (capped by the kernel's
            # wmem_max) so that receivers' unread packets do not stall everyone's sends.
            rtp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
            self.udp_rtp, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, sock=rtp_sock
            )
            self.udp_rtcp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpRtcp(self), sock=rtcp_sock
            )
            self.udp_ports = (port, port + 1)
            return
        log.warning("no UDP port pair free: RTP over UDP is unavailable")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for sid in list(self.sessions):
            self.end_session(sid)
        if self._server is not None:
            self._server.close()
        for fanout in set(self._fanouts.values()):
            await fanout.stop()
        for t in (self.udp_rtp, self.udp_rtcp):
            if t is not None:
                t.close()
        for mc in self._multicast.values():
            mc.target.close()

    def stats(self) -> RtspStats:
        sinks = [sink for f in set(self._fanouts.values()) for sink in f.sinks]
        return RtspStats(
            connections=self.connections,
            sessions=len(self.sessions),
            playing=sum(s.playing for s in self.sessions.values()),
            dropped=sum(sink.dropped for sink in sinks) + self._dropped_gone,
            disconnected_slow=self._disconnected_slow,
        )

    def sink_gone(self, sink: ClientSink) -> None:
        """Keep a removed sink's counters in the totals."""
        self._dropped_gone += sink.dropped
        if sink.closed:
            self._disconnected_slow += 1

    def urls(self, host: str) -> list[str]:
        return [f"rtsp://{host}:{self.port}/{s}" for s in self.streams]

    # -- used by connections -------------------------------------------------------------------

    def fanout(self, stream: str, track: int) -> TrackFanout:
        return self._fanouts[(stream, track)]

    def detach(self, session: Session) -> None:
        """Stop sending to a session (PAUSE, TEARDOWN, expiry, disconnect)."""
        for setup in session.tracks.values():
            if setup.multicast:
                if session.playing:
                    self.multicast_release(setup.fanout, setup.target)
            elif setup.sink is not None:
                setup.fanout.remove(setup.sink)
                self.sink_gone(setup.sink)
                setup.sink = None
        session.playing = False

    def end_session(self, sid: str) -> None:
        session = self.sessions.pop(sid, None)
        if session is None:
            return
        self.detach(session)
        session.owner.sessions.pop(sid, None)

    def rtcp_from(self, addr: tuple[str, int]) -> None:
        for session in self.sessions.values():
            if addr in session.udp_addresses:
                session.touch()

    def multicast_address(
        self, stream: str, track: int, spec: TransportSpec
    ) -> tuple[str, tuple[int, int], int]:
        index = self.streams.index(stream) if stream in self.streams else 0
        port = self.cfg.multicast_port + 4 * index + 2 * track
        return self.cfg.multicast_group, (port, port + 1), self.cfg.multicast_ttl

    def multicast_target(self, group: str, ports: tuple[int, int]) -> Target:
        key = (group, ports[0])
        for mc in self._multicast.values():
            if (mc.target.rtp_addr[0], mc.target.rtp_addr[1]) == key:
                return mc.target
        target = MulticastTarget(group, ports, self.cfg.multicast_ttl, self.cfg.bind)
        self._multicast[key] = _Multicast(target)
        return target

    def multicast_attach(self, fanout: TrackFanout, target: Target) -> None:
        """Count a playing multicast client; the group is sent to while anyone plays."""
        assert isinstance(target, MulticastTarget)
        mc = self._multicast[target.rtp_addr]
        mc.users += 1
        if mc.sink is None:
            mc.sink = ClientSink(target, 1 << 30, 1 << 30)
            fanout.add(mc.sink)
        elif fanout.h264:
            fanout.bus.request_keyframe(fanout.stream)  # a joiner should not wait a whole GOP

    def multicast_release(self, fanout: TrackFanout, target: Target) -> None:
        assert isinstance(target, MulticastTarget)
        mc = self._multicast[target.rtp_addr]
        mc.users -= 1
        if mc.users <= 0 and mc.sink is not None:
            fanout.remove(mc.sink)
            mc.sink = None
            mc.users = 0

    # -- HTTP tunnel ---------------------------------------------------------------------------

    def tunnel_open(self, cookie: str, conn: RtspConnection) -> None:
        self._tunnels[cookie] = (conn, conn.client_ip)

    def tunnel_input(self, cookie: str, client_ip: str) -> RtspConnection | None:
        entry = self._tunnels.get(cookie)
        if entry is None or entry[1] != client_ip:  # a tunnel is only joined from its own host
            return None
        return entry[0]

    def tunnel_closed(self, cookie: str, conn: RtspConnection | None = None) -> None:
        """Forget a tunnel whose GET half closed (only `conn`'s, when given)."""
        entry = self._tunnels.get(cookie)
        if entry is not None and (conn is None or entry[0] is conn):
            del self._tunnels[cookie]

    # -- housekeeping --------------------------------------------------------------------------

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_S)
            now = time.monotonic()
            for sid, session in list(self.sessions.items()):
                tcp_alive = not session.udp_addresses and not session.owner.channel.closed
                if tcp_alive:
                    session.touch()  # interleaved sessions live as long as their connection
                elif now - session.last_seen > session.timeout_s:
                    log.info("RTSP session %s expired", sid)
                    self.end_session(sid)


_HTTP_LINE = re.compile(rb"^(GET|POST) \S+ HTTP/1\.[01]\r?\n", re.I)
_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[^\n]*\n")


class RtspProtocol(asyncio.Protocol):
    """One TCP connection: plain RTSP, or one half of an HTTP tunnel (GET: out, POST: in)."""

    def __init__(self, server: RtspServer) -> None:
        self.server = server
        self.parser = RequestParser()
        self.channel: TcpChannel | None = None
        self.conn: RtspConnection | None = None
        self.mode = "new"  # new -> rtsp | tunnel-get | tunnel-post
        self._buffer = b""
        self._input: TunnelInput | None = None
        self._cookie: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        bound_send_buffer(transport, self.server.cfg.client_buffer_kb)
        self.channel = TcpChannel(transport)
        self.server.connections += 1
        if self.server.connections > MAX_CONNECTIONS:
            log.warning("too many RTSP connections: refusing %s", self.channel.peer)
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections -= 1
        if self.mode == "tunnel-get" and self._cookie is not None:
            self.server.tunnel_closed(self._cookie, self.conn)
        if self.conn is not None and self.mode != "tunnel-post":
            self.conn.close()

    def data_received(self, data: bytes) -> None:
        assert self.channel is not None
        if self.mode == "new":
            self._buffer += data
            if len(self._buffer) < 5 and not self._buffer.startswith(b"$"):
                return
            if _HTTP_LINE.match(self._buffer) or self._buffer[:5].upper() in (b"GET /", b"POST "):
                self._start_http()
                return
            self.mode = "rtsp"
            self.conn = RtspConnection(self.server, self.channel, self.channel.peer[0])
            data, self._buffer = self._buffer, b""
        if self.mode == "rtsp":
            self._feed(data)
        elif self.mode == "tunnel-post":
            self._feed_base64(data)
        elif self.mode == "http":
            self._buffer += data
            self._start_http()
        # tunnel-get: the client sends nothing more on this half

    def _feed(self, data: bytes) -> None:
        assert self.conn is not None and self.channel is not None
        try:
            events = self.parser.feed(data)
        except ProtocolError as exc:
            log.info("bad RTSP from %s: %s", self.channel.peer, exc)
            self.channel.write(response(None, exc.status).to_bytes())
            self.channel.close()
            return
        for event in events:
            self.conn.submit(event)

    # -- the Apple-style HTTP tunnel -----------------------------------------------------------

    def _start_http(self) -> None:
        assert self.channel is not None
        self.mode = "http"
        head, sep, rest = self._buffer.partition(b"\r\n\r\n")
        if not sep:
            if len(self._buffer) > 8192:
                self._http_error(400)
            return
        # The POST announces a huge Content-Length and then streams base64 forever: parse only
        # its head, and treat everything after it as the tunnelled RTSP.
        head = _CONTENT_LENGTH.sub(b"", head + b"\r\n") + b"\r\n"
        try:
            (req,) = [e for e in RequestParser().feed(head) if isinstance(e, RtspRequest)]
        except (ProtocolError, ValueError):
            self._http_error(400)
            return
        cookie = req.headers.get("x-sessioncookie")
        if not cookie or len(cookie) > MAX_TUNNEL_COOKIE:
            self._http_error(400)
            return
        self._cookie = cookie
        self._buffer = b""
        if req.method == "GET":
            self.mode = "tunnel-get"
            self.channel.write(
                b"HTTP/1.0 200 OK\r\nServer: vcam\r\nConnection: close\r\n"
                b"Cache-Control: no-store\r\nPragma: no-cache\r\n"
                b"Content-Type: application/x-rtsp-tunnelled\r\n\r\n"
            )
            self.conn = RtspConnection(self.server, self.channel, self.channel.peer[0])
            self.server.tunnel_open(cookie, self.conn)
        elif req.method == "POST":
            conn = self.server.tunnel_input(cookie, self.channel.peer[0])
            if conn is None:
                self._http_error(403)
                return
            self.mode = "tunnel-post"
            self.conn = conn
            self._input = TunnelInput(conn)
            self._feed_base64(rest)
        else:
            self._http_error(405)

    def _feed_base64(self, data: bytes) -> None:
        assert self._input is not None and self.channel is not None
        if not self._input.feed(data):
            self.channel.close()

    def _http_error(self, status: int) -> None:
        assert self.channel is not None
        reason = {400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed"}[status]
        self.channel.write(f"HTTP/1.0 {status} {reason}\r\nConnection: close\r\n\r\n".encode())
        self.channel.close()
