"""The bounded set of WebRTC viewers: answer an offer, watch the connection, clean up.

A peer holds a slot from its offer on; it is closed (slot, bus subscription and data channel
released) when its connection fails or closes, when it has not connected within
`connect_timeout_s`, when the viewer asks (`close`), and at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)

from vcam.media.bus import EncodedBus
from vcam.onvif.model import StreamInfo
from vcam.webrtc.feed import MetadataFeed
from vcam.webrtc.offer import OfferError, check_answer, check_offer, h264_preferences
from vcam.webrtc.track import EncodedVideoTrack

log = logging.getLogger("vcam.webrtc")

METADATA_LABEL = "metadata"


class PeerRefused(Exception):
    """An offer that gets no answer: `status` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Peer:
    id: str
    username: str
    stream: str
    pc: RTCPeerConnection
    track: EncodedVideoTrack
    channel: RTCDataChannel | None = None
    closed: bool = False
    timeout: asyncio.TimerHandle | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Answer:
    peer_id: str
    sdp: str
    type: str


class PeerManager:
    def __init__(
        self,
        bus: EncodedBus,
        streams: Callable[[], Sequence[StreamInfo]],
        feed: MetadataFeed | None,
        ice_servers: Sequence[RTCIceServer] = (),
        max_peers: int = 16,
        connect_timeout_s: float = 30.0,
        negotiate_timeout_s: float = 15.0,
    ) -> None:
        self.bus = bus
        self.streams = streams
        self.feed = feed
        self.ice_servers = list(ice_servers)
        self.max_peers = max_peers
        self.connect_timeout_s = connect_timeout_s
        self.negotiate_timeout_s = negotiate_timeout_s
        self._peers: dict[str, Peer] = {}
        self._closing: set[asyncio.Task[bool]] = set()  # held so they are not collected
        self.refused = 0

    def __len__(self) -> int:
        return len(self._peers)

    def peer(self, peer_id: str) -> Peer | None:
        return self._peers.get(peer_id)

    async def answer(self, sdp: str, stream: str, username: str) -> Answer:
        """Answer a viewer's offer for `stream`; PeerRefused (400, 404, 409, 503) if not."""
        try:
            checked = check_offer(sdp)
        except OfferError as exc:
            raise PeerRefused(400, str(exc)) from None
        info = next((s for s in self.streams() if s.name == stream), None)
        if info is None:
            raise PeerRefused(404, f"no stream {stream!r}")
        if info.h264_profile != "Baseline":
            raise PeerRefused(
                409, f"stream {stream!r} is H.264 {info.h264_profile}; WebRTC needs Baseline"
            )
        if len(self._peers) >= self.max_peers:
            self.refused += 1
            raise PeerRefused(503, f"already {self.max_peers} WebRTC viewers; try later")
        # The slot is taken before the first await, so concurrent offers cannot overshoot.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self.ice_servers))
        track = EncodedVideoTrack(self.bus, stream)
        peer = Peer(secrets.token_urlsafe(16), username, stream, pc, track)
        self._peers[peer.id] = peer
        try:
            self._wire(peer, wants_metadata=checked.has_data_channel)
            async with asyncio.timeout(self.negotiate_timeout_s):
                await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
                await pc.setLocalDescription(await pc.createAnswer())
            local = pc.localDescription
            check_answer(local.sdp)
        except OfferError as exc:  # our answer would be wrong: a server fault
            await self.close(peer.id)
            raise PeerRefused(500, str(exc)) from None
        except TimeoutError:
            await self.close(peer.id)
            raise PeerRefused(503, "negotiation timed out (ICE gathering)") from None
        except Exception as exc:  # aiortc refused the offer
            await self.close(peer.id)
            raise PeerRefused(400, f"cannot answer the offer: {exc}") from None
        loop = asyncio.get_running_loop()
        peer.timeout = loop.call_later(self.connect_timeout_s, self._connect_timeout, peer)
        log.info("WebRTC viewer %s (%s) on %s", peer.id, username, stream)
        return Answer(peer.id, local.sdp, local.type)

    def _wire(self, peer: Peer, wants_metadata: bool) -> None:
        pc, track = peer.pc, peer.track
        transceiver = pc.addTransceiver(track, direction="sendonly")
        transceiver.setCodecPreferences(h264_preferences())
        # aiortc ignores PLI/FIR for pre-encoded packets; hand them to the one encoder instead.
        transceiver.sender._send_keyframe = track.request_keyframe  # type: ignore[method-assign]

        @pc.on("connectionstatechange")
        def on_state() -> None:
            state = pc.connectionState
            if state == "connected" and peer.timeout is not None:
                peer.timeout.cancel()
                peer.timeout = None
            elif state in ("failed", "closed"):
                self._spawn(self.close(peer.id))

        if wants_metadata and self.feed is not None:
            feed = self.feed

            @pc.on("datachannel")
            def on_channel(channel: RTCDataChannel) -> None:
                if channel.label != METADATA_LABEL or peer.channel is not None or peer.closed:
                    return
                peer.channel = channel
                if channel.readyState == "open":
                    feed.attach(channel)
                else:
                    channel.on("open", lambda: feed.attach(channel))
                channel.on("close", lambda: feed.detach(channel))

    def _spawn(self, closing: Coroutine[Any, Any, bool]) -> None:
        task = asyncio.get_running_loop().create_task(closing)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _connect_timeout(self, peer: Peer) -> None:
        peer.timeout = None
        if peer.pc.connectionState != "connected":
            log.info("WebRTC viewer %s never connected", peer.id)
            self._spawn(self.close(peer.id))

    async def close(self, peer_id: str) -> bool:
        """Close one peer; False if it was not there (already closed). Idempotent."""
        peer = self._peers.pop(peer_id, None)
        if peer is None or peer.closed:
            return False
        peer.closed = True
        if peer.timeout is not None:
            peer.timeout.cancel()
        if peer.channel is not None and self.feed is not None:
            self.feed.detach(peer.channel)
        peer.track.stop()  # releases the bus subscription at once
        with contextlib.suppress(Exception):  # a half-set-up connection may fail to close
            await peer.pc.close()
        log.info("WebRTC viewer %s closed", peer.id)
        return True

    async def close_all(self) -> None:
        for peer_id in list(self._peers):
            await self.close(peer_id)
        if self.feed is not None:
            self.feed.stop()
