"""Packetise once, write the same bytes to every client (gortsplib/mediamtx style).

One TrackFanout per (stream, track) consumes the encoded bus, packetises each access unit once
and offers the batch to every client sink. A sink whose connection has more than its limit of
unsent bytes drops batches until the next keyframe (counted; disconnected after too many
overflows in a row): a slow client never delays the others and never grows memory without
bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from vcam.encode.annexb import NAL_PPS, NAL_SPS, nal_type, parse_nal_units
from vcam.media.bus import EncodedBus
from vcam.media.types import EncodedUnit
from vcam.rtsp.rtp import RtpBatch, RtpPacketizer, sender_report

log = logging.getLogger("vcam.rtsp")


class Channel(Protocol):
    """Where a client's bytes go: a TCP connection, the GET half of an HTTP tunnel..."""

    peer: tuple[str, int]

    def write(self, data: bytes) -> None: ...
    def backlog(self) -> int: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...


class Target(Protocol):
    """How one client receives one track."""

    # Whether a client that keeps overflowing is cut off; not for shared sockets, whose queue
    # is everyone's.
    disconnectable: bool

    def send(self, batch: SharedBatch) -> None: ...
    def send_rtcp(self, packet: bytes) -> None: ...
    def backlog(self) -> int: ...
    def close(self) -> None: ...


@dataclass
class SharedBatch:
    """An RtpBatch plus its TCP-interleaved framings, built once per channel number."""

    batch: RtpBatch
    _framed: dict[int, bytes] = field(default_factory=dict)

    def interleaved(self, channel: int) -> bytes:
        data = self._framed.get(channel)
        if data is None:
            head = b"$" + bytes([channel])
            data = b"".join(head + len(p).to_bytes(2, "big") + p for p in self.batch.packets)
            self._framed[channel] = data
        return data


class TcpTarget:
    disconnectable = True

    def __init__(self, channel: Channel, rtp_channel: int) -> None:
        self.channel = channel
        self.rtp_channel = rtp_channel

    def send(self, batch: SharedBatch) -> None:
        self.channel.write(batch.interleaved(self.rtp_channel))

    def send_rtcp(self, packet: bytes) -> None:
        head = b"$" + bytes([self.rtp_channel + 1]) + len(packet).to_bytes(2, "big")
        self.channel.write(head + packet)

    def backlog(self) -> int:
        return self.channel.backlog()

    def close(self) -> None:
        self.channel.close()


class UdpTarget:
    """RTP to the client's port at the address of its RTSP connection (never a `destination`)."""

    def __init__(
        self,
        rtp: asyncio.DatagramTransport,
        rtcp: asyncio.DatagramTransport,
        host: str,
        ports: tuple[int, int],
        control: Channel,
    ) -> None:
        self.rtp, self.rtcp = rtp, rtcp
        self.rtp_addr, self.rtcp_addr = (host, ports[0]), (host, ports[1])
        self.control = control

    def send(self, batch: SharedBatch) -> None:
        for packet in batch.batch.packets:
            self.rtp.sendto(packet, self.rtp_addr)

    def send_rtcp(self, packet: bytes) -> None:
        self.rtcp.sendto(packet, self.rtcp_addr)

    def backlog(self) -> int:
        # All UDP clients share one socket, whose kernel buffer is also charged with packets
        # still unread in the receivers' queues: what piles up here is everyone's, so it only
        # counts when it is large, and it never singles out (disconnects) one client. A slow
        # UDP receiver loses packets in its own kernel queue instead.
        size: int = getattr(self.rtp, "get_write_buffer_size", lambda: 0)()
        return size if size > UDP_SHARED_LIMIT else 0

    disconnectable = False

    def close(self) -> None:
        self.control.close()


UDP_SHARED_LIMIT = 8 * 1024 * 1024  # bytes queued in user space for the shared UDP socket
_REANCHOR_S = 1.0  # sender reports: re-take the wall clock offset past this much drift


class ClientSink:
    """One client's subscription to one track, with its drop-to-keyframe policy."""

    def __init__(
        self,
        target: Target,
        limit_bytes: int,
        max_overflows: int,
        on_start: Callable[[RtpBatch], None] | None = None,
    ) -> None:
        self.target = target
        self.limit = limit_bytes
        self.max_overflows = max_overflows
        self.on_start = on_start  # called once, just before the first batch goes out
        self.waiting = True  # for a keyframe
        self.delivered = 0
        self.dropped = 0
        self.overflows = 0
        self.closed = False

    def offer(self, shared: SharedBatch) -> None:
        batch = shared.batch
        if self.closed or (self.waiting and not batch.keyframe):
            return
        if self.target.backlog() > self.limit:
            self.dropped += 1
            if batch.keyframe or not self.waiting:
                # It fell behind, or could not even take the keyframe it was waiting for.
                self.overflows += 1
                if not self.waiting:
                    log.info("client too slow: dropping until the next keyframe")
                self.waiting = True
                if self.overflows >= self.max_overflows and self.target.disconnectable:
                    log.warning("client overflowed %d times: disconnecting", self.overflows)
                    self.closed = True
                    self.target.close()
            return
        if self.waiting and self.on_start is not None:
            start, self.on_start = self.on_start, None
            start(batch)
        if self.waiting:
            # It took a keyframe again: only a client that never catches up is disconnected,
            # not one that fell behind now and then over a long life (or while starting up).
            self.overflows = 0
        self.waiting = False
        self.target.send(shared)
        self.delivered += 1


class TrackFanout:
    """One track of one stream: bus -> packetiser -> every sink."""

    def __init__(
        self,
        bus: EncodedBus,
        stream: str,
        packetizer: RtpPacketizer,
        *,
        h264: bool,
        rtcp_interval_s: float,
    ) -> None:
        self.bus = bus
        self.stream = stream
        self.packetizer = packetizer
        self.h264 = h264
        self.rtcp_interval_s = rtcp_interval_s
        self.sinks: set[ClientSink] = set()
        self.sps: bytes | None = None
        self.pps: bytes | None = None
        self.width = 0
        self.height = 0
        self.units = 0
        self._parameters = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_sr = 0.0
        self._last_rtp_time = 0
        self._wall_minus_pts: float | None = None  # the SRs' wall clock for a pts (seconds)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"rtp-{self.stream}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def add(self, sink: ClientSink) -> None:
        self.sinks.add(sink)
        if self.h264:
            self.bus.request_keyframe(self.stream)  # a joiner should not wait a whole GOP

    def remove(self, sink: ClientSink) -> None:
        self.sinks.discard(sink)

    async def parameters(self, timeout: float) -> bool:
        """Wait until SPS/PPS are known (needed for the SDP)."""
        if not self.h264 or self._parameters.is_set():
            return True
        self.bus.request_keyframe(self.stream)
        try:
            await asyncio.wait_for(self._parameters.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def next_position(self) -> tuple[int, int]:
        """(seq, rtptime) the next batch will start with: RTP-Info when no keyframe came."""
        return self.packetizer.next_seq, self._last_rtp_time

    async def _run(self) -> None:
        sub = self.bus.subscribe(self.stream, maxsize=240)
        try:
            while True:
                unit = await sub.aget()
                if unit is None:
                    return  # the bus closed the subscription
                self._publish(unit)
        finally:
            sub.close()

    def _publish(self, unit: EncodedUnit) -> None:
        if self.h264:
            if unit.keyframe:
                self._learn_parameters(unit)
            batch = self.packetizer.packetize_h264(unit)
        else:
            batch = self.packetizer.packetize_payload(unit.data, unit.pts_us)
        self._last_rtp_time = batch.rtp_time
        self.units += 1
        shared = SharedBatch(batch)
        for sink in list(self.sinks):
            sink.offer(shared)
            if sink.closed:
                self.sinks.discard(sink)
        now = time.monotonic()
        if now - self._last_sr >= self.rtcp_interval_s and self.sinks:
            self._last_sr = now
            self._send_sender_report(batch.rtp_time, unit.pts_us)

    def _send_sender_report(self, rtp_time: int, pts_us: int) -> None:
        # The wall clock of a frame is its pts plus one offset, taken once: taken anew at each
        # report, it would carry that frame's own processing delay, and clients that map RTP
        # time through the latest report (FFmpeg, with the metadata track beside the video)
        # would see time step back by the difference. Taken again only if the two clocks
        # drifted apart by a second (a clock step, a source not paced in real time).
        pts_s = pts_us / 1e6
        offset = time.time() - pts_s
        if self._wall_minus_pts is None or abs(offset - self._wall_minus_pts) > _REANCHOR_S:
            self._wall_minus_pts = offset
        p = self.packetizer
        report = sender_report(
            p.ssrc, pts_s + self._wall_minus_pts, rtp_time, p.packet_count, p.octet_count
        )
        for sink in self.sinks:
            if not sink.waiting:
                sink.target.send_rtcp(report)

    def _learn_parameters(self, unit: EncodedUnit) -> None:
        for nal in parse_nal_units(unit.data):
            kind = nal_type(nal)
            if kind == NAL_SPS:
                self.sps = nal
            elif kind == NAL_PPS:
                self.pps = nal
        if self.sps and self.pps:
            self.width, self.height = unit.width, unit.height
            self._parameters.set()
