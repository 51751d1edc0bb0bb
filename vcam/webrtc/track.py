"""A video track that sends the encoded bus's H.264 units as they are (no per-viewer encoding).

aiortc's RTCRtpSender encodes what `recv()` returns when it is an `av.VideoFrame`, but when it
is an `av.Packet` it only packetises it (`H264Encoder.pack`: Annex-B split, STAP-A/FU-A) with
the RTP timestamp from `pts * time_base`. The bus carries Annex-B units with SPS/PPS before
every IDR, exactly what that path needs. Only masked, encoded units exist on the bus.
"""

from __future__ import annotations

import fractions

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from vcam.media.bus import EncodedBus, Subscription

MICROSECONDS = fractions.Fraction(1, 1_000_000)
# A few frames: a viewer that cannot keep up drops to the next keyframe instead of lagging.
QUEUE_UNITS = 8


class EncodedVideoTrack(MediaStreamTrack):
    """One peer's view of one bus stream. The bus subscription starts at the first `recv()`
    (when DTLS is up and aiortc starts sending), so a peer that never connects holds none, and
    the keyframe the bus requests on subscribe arrives when the viewer can use it."""

    kind = "video"

    def __init__(self, bus: EncodedBus, stream: str, queue_units: int = QUEUE_UNITS) -> None:
        super().__init__()
        self.bus = bus
        self.stream = stream
        self.queue_units = queue_units
        self._sub: Subscription | None = None
        self._stopped = False
        self.sent = 0

    @property
    def subscription(self) -> Subscription | None:
        return self._sub

    async def recv(self) -> av.Packet:
        if self._stopped:
            raise MediaStreamError
        if self._sub is None:
            self._sub = self.bus.subscribe(self.stream, self.queue_units)  # asks for an IDR
        unit = await self._sub.aget()
        if unit is None:  # closed by stop()
            raise MediaStreamError
        packet = av.Packet(unit.data)
        packet.pts = unit.pts_us
        packet.time_base = MICROSECONDS
        self.sent += 1
        return packet

    def request_keyframe(self) -> None:
        """A viewer's PLI/FIR: ask the one encoder (the bus rate-limits it across viewers)."""
        self.bus.request_keyframe(self.stream)

    def stop(self) -> None:
        self._stopped = True
        if self._sub is not None:
            self._sub.close()
        super().stop()
