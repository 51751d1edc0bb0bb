"""The RTSP session engine: one RtspConnection per client, whatever carries its bytes.

It answers parsed requests and writes responses to a Channel; it never touches a socket, so the
same engine serves plain TCP connections and HTTP tunnels (on this port, and later on the web
port). Sessions belong to the connection that created them: a session id presented by another
connection is refused as unknown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from vcam.rtsp.fanout import Channel, ClientSink, Target, TcpTarget, TrackFanout, UdpTarget
from vcam.rtsp.messages import (
    InterleavedFrame,
    ProtocolError,
    RtspRequest,
    RtspResponse,
    TransportSpec,
    format_transport,
    parse_session,
    parse_transport,
    response,
)
from vcam.rtsp.rtp import RtpBatch
from vcam.rtsp.sdp import H264Track, MetadataTrack, build_sdp

if TYPE_CHECKING:
    from vcam.rtsp.server import RtspServer

log = logging.getLogger("vcam.rtsp")

PUBLIC = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
VIDEO, METADATA = 0, 1  # track numbers: trackID=0 and trackID=1 in every stream
_PLAY_START_WAIT_S = 3.0  # longest a PLAY answer waits for the keyframe a new client starts at
_DESCRIBE_WAIT_S = 5.0  # longest DESCRIBE waits for the stream's first SPS/PPS
_QUEUE = 32  # requests waiting per connection; more means a client that does not read answers


@dataclass
class TrackSetup:
    track: int
    fanout: TrackFanout
    target: Target
    transport: str  # the Transport header of the SETUP answer
    multicast: bool = False
    sink: ClientSink | None = None


@dataclass
class Session:
    id: str
    owner: RtspConnection
    stream: str
    timeout_s: int
    tracks: dict[int, TrackSetup] = field(default_factory=dict)
    playing: bool = False
    last_seen: float = field(default_factory=time.monotonic)

    def touch(self) -> None:
        self.last_seen = time.monotonic()

    @property
    def udp_addresses(self) -> list[tuple[str, int]]:
        return [t.target.rtcp_addr for t in self.tracks.values() if isinstance(t.target, UdpTarget)]


class RtspConnection:
    """Answers one client's requests in order; owns its sessions."""

    def __init__(self, server: RtspServer, channel: Channel, client_ip: str) -> None:
        self.server = server
        self.channel = channel
        self.client_ip = client_ip
        self.sessions: dict[str, Session] = {}
        self._queue: asyncio.Queue[RtspRequest] = asyncio.Queue(_QUEUE)
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="rtsp-conn")

    # -- input -----------------------------------------------------------------------------

    def submit(self, event: RtspRequest | InterleavedFrame) -> None:
        if isinstance(event, InterleavedFrame):
            self._touch_all()  # RTCP receiver reports over TCP keep sessions alive
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("%s sends requests without reading answers: closing", self.client_ip)
            self.channel.close()

    def close(self) -> None:
        for sid in list(self.sessions):
            self.server.end_session(sid)
        self._task.cancel()

    def _touch_all(self) -> None:
        for s in self.sessions.values():
            s.touch()

    async def _serve(self) -> None:
        while True:
            req = await self._queue.get()
            try:
                answer = await self.handle(req)
            except ProtocolError as exc:
                answer = response(req, exc.status)
            except Exception:
                log.exception("RTSP %s %s failed", req.method, req.uri)
                answer = response(req, 500)
            if answer is not None:
                self.send(answer)

    def send(self, answer: RtspResponse) -> None:
        if not self.channel.closed:
            self.channel.write(answer.to_bytes())

    # -- requests ----------------------------------------------------------------------------

    async def handle(self, req: RtspRequest) -> RtspResponse | None:
        if req.version != "RTSP/1.0":
            return response(req, 505)
        if req.cseq is None:
            return response(req, 400)
        if req.method == "OPTIONS":
            return response(req, 200, [("Public", PUBLIC)])
        if req.method not in PUBLIC.split(", "):
            return response(req, 405, [("Allow", PUBLIC)])
        denied = self._authenticate(req)
        if denied is not None:
            return denied
        session: Session | None = None
        header = req.headers.get("Session")
        if header is not None:
            sid, _timeout = parse_session(header)
            found = self.sessions.get(sid)
            if found is None:  # unknown here, even if another connection owns it
                return response(req, 454)
            session = found
            session.touch()
        handler: Callable[[RtspRequest, Session | None], object] = {
            "DESCRIBE": self._describe,
            "SETUP": self._setup,
            "PLAY": self._play,
            "PAUSE": self._pause,
            "TEARDOWN": self._teardown,
            "GET_PARAMETER": self._keepalive,
            "SET_PARAMETER": self._keepalive,
        }[req.method]
        result = handler(req, session)
        if asyncio.iscoroutine(result):
            result = await result
        assert result is None or isinstance(result, RtspResponse)
        return result

    def _authenticate(self, req: RtspRequest) -> RtspResponse | None:
        auth = self.server.auth
        if auth is None:
            return None
        result = auth.verify(req.method, req.headers.get("Authorization"), self.client_ip, req.uri)
        if result.ok:
            return None
        # The first request of every Digest exchange comes without credentials: not news.
        level = logging.DEBUG if req.headers.get("Authorization") is None else logging.INFO
        log.log(level, "RTSP %s from %s refused: %s", req.method, self.client_ip, result.reason)
        headers = [("WWW-Authenticate", c) for c in auth.challenge(stale=result.stale)]
        if result.retry_after_s is not None:  # throttled: say when to come back
            headers.append(("Retry-After", str(max(1, round(result.retry_after_s)))))
        return response(req, 401, headers)

    def _resolve(self, req: RtspRequest) -> tuple[str, int | None] | None:
        """(stream, track) named by the request URI; track None for the aggregate URL."""
        path = urlsplit(req.uri).path if "://" in req.uri else req.uri.split("?")[0]
        parts = [p for p in path.split("/") if p]
        if not parts or parts[0] not in self.server.streams:
            return None
        if len(parts) == 1:
            return parts[0], None
        if len(parts) == 2 and parts[1].startswith("trackID="):
            try:
                track = int(parts[1].removeprefix("trackID="))
            except ValueError:
                return None
            return (parts[0], track) if track in (VIDEO, METADATA) else None
        return None

    def _base_url(self, req: RtspRequest, stream: str) -> str:
        if "://" in req.uri:
            u = urlsplit(req.uri)
            return f"{u.scheme}://{u.netloc}/{stream}"
        host = req.headers.get("Host") or f"{self.server.advertised_host}:{self.server.port}"
        return f"rtsp://{host}/{stream}"

    async def _describe(self, req: RtspRequest, _session: Session | None) -> RtspResponse:
        target = self._resolve(req)
        if target is None or target[1] is not None:
            return response(req, 404)
        stream = target[0]
        video = self.server.fanout(stream, VIDEO)
        if not await video.parameters(_DESCRIBE_WAIT_S) or not video.sps or not video.pps:
            return response(req, 503, [("Retry-After", "2")])
        sdp = build_sdp(
            session_id=self.server.sdp_session_id,
            address=self.server.advertised_host,
            session_name=f"vcam {stream} (privacy-masked)",
            tracks=[
                H264Track(
                    payload_type=96,
                    control=f"trackID={VIDEO}",
                    sps=video.sps,
                    pps=video.pps,
                    width=video.width,
                    height=video.height,
                    fps=self.server.fps,
                ),
                MetadataTrack(payload_type=107, control=f"trackID={METADATA}"),
            ],
        )
        base = self._base_url(req, stream)
        headers = [("Content-Type", "application/sdp"), ("Content-Base", base + "/")]
        return response(req, 200, headers, sdp.encode())

    def _setup(self, req: RtspRequest, session: Session | None) -> RtspResponse:
        target = self._resolve(req)
        if target is None:
            return response(req, 404)
        stream, track = target[0], VIDEO if target[1] is None else target[1]
        if session is not None and (session.stream != stream or session.playing):
            return response(req, 455)
        header = req.headers.get("Transport")
        if header is None:
            return response(req, 461)
        chosen = self._transport(parse_transport(header), session, stream, track)
        if chosen is None:
            return response(req, 461)
        spec, tgt, multicast = chosen
        fanout = self.server.fanout(stream, track)
        if session is None:
            session = Session(secrets.token_hex(8), self, stream, self.server.cfg.session_timeout_s)
            self.sessions[session.id] = session
            self.server.sessions[session.id] = session
        ssrc = f"{fanout.packetizer.ssrc:08X}"
        answer = format_transport(_with(spec, ssrc=ssrc))
        session.tracks[track] = TrackSetup(track, fanout, tgt, answer, multicast)
        return response(
            req,
            200,
            [("Transport", answer), ("Session", f"{session.id};timeout={session.timeout_s}")],
        )

    def _transport(
        self, specs: list[TransportSpec], session: Session | None, stream: str, track: int
    ) -> tuple[TransportSpec, Target, bool] | None:
        """The first transport alternative we can serve: (answer, target, multicast)."""
        for spec in specs:
            if spec.profile == "RTP/AVP/TCP":
                pair = spec.interleaved or self._free_channels(session, track)
                if pair is None or not 0 <= pair[0] <= 254:
                    continue
                reply = _with(spec, interleaved=pair, multicast=False)
                return reply, TcpTarget(self.channel, pair[0]), False
            if spec.profile != "RTP/AVP":
                continue
            if spec.multicast:
                group, ports, ttl = self.server.multicast_address(stream, track, spec)
                reply = _with(spec, destination=group, port=ports, ttl=ttl, client_port=None)
                return reply, self.server.multicast_target(group, ports), True
            rtp, rtcp = self.server.udp_rtp, self.server.udp_rtcp
            if spec.client_port is None or rtp is None or rtcp is None:
                continue
            # Data goes only to the address this connection comes from, never to `destination`.
            reply = _with(spec, destination=None, server_port=self.server.udp_ports)
            target = UdpTarget(rtp, rtcp, self.client_ip, spec.client_port, self.channel)
            return reply, target, False
        return None

    def _free_channels(self, session: Session | None, track: int) -> tuple[int, int] | None:
        used = {
            t.target.rtp_channel
            for s in self.sessions.values()
            for t in s.tracks.values()
            if isinstance(t.target, TcpTarget) and not (s is session and t.track == track)
        }
        for first in range(0, 254, 2):
            if first not in used:
                return first, first + 1
        return None

    async def _play(self, req: RtspRequest, session: Session | None) -> RtspResponse | None:
        if session is None:
            return response(req, 454)
        if not session.tracks:
            return response(req, 455)
        headers = [("Session", f"{session.id};timeout={session.timeout_s}")]
        if session.playing:
            return response(req, 200, headers)
        session.playing = True
        base = self._base_url(req, session.stream)
        started = asyncio.get_running_loop().create_future()
        answered = False
        positions: dict[int, tuple[int, int]] = {}

        def answer() -> None:
            nonlocal answered
            if answered:
                return
            answered = True
            for setup in session.tracks.values():
                positions.setdefault(setup.track, setup.fanout.next_position())
            info = ",".join(
                f"url={base}/trackID={track};seq={seq};rtptime={rtptime}"
                for track, (seq, rtptime) in sorted(positions.items())
            )
            play_headers = [*headers, ("Range", "npt=now-"), ("RTP-Info", info)]
            self.send(response(req, 200, play_headers))
            for setup in session.tracks.values():
                if setup.track != VIDEO:
                    self._attach(setup, None)

        def on_first_keyframe(batch: RtpBatch) -> None:
            # Runs in the fan-out, just before this client's first packets are written: the
            # answer goes first, with the exact seq/rtptime of the keyframe it starts at.
            positions[VIDEO] = (batch.first_seq, batch.rtp_time)
            answer()
            if not started.done():
                started.set_result(None)

        video = session.tracks.get(VIDEO)
        if video is not None and video.multicast:
            # The group is shared and already running: this client has no first keyframe of
            # its own to wait for.
            self._attach(video, None)
            video = None
        if video is None:
            answer()
            return None
        self._attach(video, on_first_keyframe)
        try:
            await asyncio.wait_for(asyncio.shield(started), _PLAY_START_WAIT_S)
        except TimeoutError:
            answer()  # no keyframe yet: answer anyway, the client starts at the next one
        return None

    def _attach(self, setup: TrackSetup, on_start: Callable[[RtpBatch], None] | None) -> None:
        if setup.multicast:
            self.server.multicast_attach(setup.fanout, setup.target)
            return
        cfg = self.server.cfg
        sink = ClientSink(setup.target, cfg.client_buffer_kb * 1024, cfg.max_overflows, on_start)
        setup.sink = sink
        setup.fanout.add(sink)

    def _pause(self, req: RtspRequest, session: Session | None) -> RtspResponse:
        if session is None:
            return response(req, 454)
        self.server.detach(session)
        return response(req, 200, [("Session", f"{session.id};timeout={session.timeout_s}")])

    def _teardown(self, req: RtspRequest, session: Session | None) -> RtspResponse:
        if session is None:
            return response(req, 454)
        self.server.end_session(session.id)
        return response(req, 200)

    def _keepalive(self, req: RtspRequest, session: Session | None) -> RtspResponse:
        headers = []
        if session is not None:
            headers.append(("Session", f"{session.id};timeout={session.timeout_s}"))
        return response(req, 200, headers)


def _with(spec: TransportSpec, **changes: object) -> TransportSpec:
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]
