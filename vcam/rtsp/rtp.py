"""RTP (RFC 3550) with the H.264 payload format (RFC 6184, packetization-mode=1) and RTCP.

A stream is packetised once (`RtpPacketizer`) and the same packets go to every client. The
packetizer is not thread-safe: call it from one thread or event loop.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

from vcam.encode.annexb import NAL_AUD, parse_nal_units
from vcam.media.types import EncodedUnit

RTP_HEADER_SIZE = 12
NAL_FILLER = 12
NAL_STAP_A = 24
NAL_FU_A = 28

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
SDES_CNAME = 1

_NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
_HEADER = struct.Struct("!BBHII")
_SR = struct.Struct("!BBHIIIIII")
_REPORT_BLOCK = struct.Struct("!IIIIII")
_DROPPED_NALS = frozenset((NAL_AUD, NAL_FILLER))  # no value on the wire


@dataclass(frozen=True, slots=True)
class RtpBatch:
    """The RTP packets of one access unit (or one metadata document), shared by all clients.

    `octets` is the total size of `packets` (headers included), for per-client buffer budgets.
    """

    packets: tuple[bytes, ...]
    first_seq: int
    rtp_time: int
    keyframe: bool
    octets: int

    @property
    def last_seq(self) -> int:
        return (self.first_seq + len(self.packets) - 1) & 0xFFFF


class RtpPacketizer:
    """One RTP stream: SSRC, sequence counter, timestamp offset and the sender's counters."""

    def __init__(
        self,
        payload_type: int,
        ssrc: int | None = None,
        clock_rate: int = 90000,
        mtu: int = 1400,
        *,
        initial_seq: int | None = None,
        timestamp_offset: int | None = None,
    ) -> None:
        if not 0 <= payload_type <= 127:
            raise ValueError(f"bad RTP payload type {payload_type}")
        if mtu < RTP_HEADER_SIZE + 16:
            raise ValueError(f"MTU {mtu} too small")
        self.payload_type = payload_type
        self.ssrc = (secrets.randbits(32) or 1) if ssrc is None else ssrc & 0xFFFFFFFF
        self.clock_rate = clock_rate
        self.mtu = mtu  # largest RTP packet, header included
        self.next_seq = secrets.randbits(16) if initial_seq is None else initial_seq & 0xFFFF
        self.timestamp_offset = (
            secrets.randbits(32) if timestamp_offset is None else timestamp_offset & 0xFFFFFFFF
        )
        self.packet_count = 0  # RFC 3550 sender's packet count
        self.octet_count = 0  # RFC 3550 sender's octet count: payload bytes, no headers

    def rtp_time(self, pts_us: int) -> int:
        """The 32-bit RTP timestamp of a presentation time in microseconds."""
        return (self.timestamp_offset + pts_us * self.clock_rate // 1_000_000) & 0xFFFFFFFF

    def packetize_h264(self, unit: EncodedUnit) -> RtpBatch:
        """RFC 6184 mode 1: STAP-A for leading parameter sets/SEI, single NAL or FU-A for slices."""
        budget = self.mtu - RTP_HEADER_SIZE
        payloads: list[bytes] = []
        group: list[bytes] = []  # consecutive non-VCL NALs waiting for a STAP-A
        group_size = 1  # the STAP-A header byte
        for nal in parse_nal_units(unit.data):
            kind = nal[0] & 0x1F
            if kind in _DROPPED_NALS:
                continue
            if group and (kind <= 5 or group_size + 2 + len(nal) > budget):
                payloads.append(_aggregate(group))
                group, group_size = [], 1
            if kind > 5 and 3 + len(nal) <= budget:  # non-VCL (parameter sets, SEI): aggregate
                group.append(nal)
                group_size += 2 + len(nal)
            elif len(nal) <= budget:
                payloads.append(nal)
            else:
                _fragment(nal, budget, payloads)
        if group:
            payloads.append(_aggregate(group))
        return self._batch(payloads, self.rtp_time(unit.pts_us), unit.keyframe)

    def packetize_payload(self, payload: bytes, pts_us: int, keyframe: bool = True) -> RtpBatch:
        """An opaque payload (an ONVIF metadata XML document) in MTU-sized packets."""
        budget = self.mtu - RTP_HEADER_SIZE
        chunks = [payload[i : i + budget] for i in range(0, len(payload), budget)] or [b""]
        return self._batch(chunks, self.rtp_time(pts_us), keyframe)

    def _batch(self, payloads: list[bytes], rtp_time: int, keyframe: bool) -> RtpBatch:
        pack = _HEADER.pack
        first = self.next_seq
        seq = first
        last = len(payloads) - 1
        pt, ssrc = self.payload_type, self.ssrc
        packets: list[bytes] = []
        payload_octets = 0
        for i, payload in enumerate(payloads):
            packets.append(
                pack(0x80, pt | 0x80 if i == last else pt, seq, rtp_time, ssrc) + payload
            )
            payload_octets += len(payload)
            seq = (seq + 1) & 0xFFFF
        self.next_seq = seq
        self.packet_count = (self.packet_count + len(packets)) & 0xFFFFFFFF
        self.octet_count = (self.octet_count + payload_octets) & 0xFFFFFFFF
        octets = payload_octets + RTP_HEADER_SIZE * len(packets)
        return RtpBatch(tuple(packets), first, rtp_time, keyframe, octets)


def _aggregate(nals: list[bytes]) -> bytes:
    """A STAP-A payload, or the NAL itself when it is alone."""
    if len(nals) == 1:
        return nals[0]
    nri = max(nal[0] & 0x60 for nal in nals)
    forbidden = max(nal[0] & 0x80 for nal in nals)
    parts = [bytes((forbidden | nri | NAL_STAP_A,))]
    for nal in nals:
        parts.append(len(nal).to_bytes(2, "big"))
        parts.append(nal)
    return b"".join(parts)


def _fragment(nal: bytes, budget: int, out: list[bytes]) -> None:
    """FU-A fragments of one NAL unit (its header byte is carried in the FU header)."""
    indicator = (nal[0] & 0xE0) | NAL_FU_A
    kind = nal[0] & 0x1F
    step = budget - 2
    end = len(nal)
    for start in range(1, end, step):
        flags = (0x80 if start == 1 else 0) | (0x40 if start + step >= end else 0)
        out.append(bytes((indicator, flags | kind)) + nal[start : start + step])


# ---------------------------------------------------------------------------------------------
# Parsing (tests, raw RTP clients)


@dataclass(frozen=True, slots=True)
class RtpHeader:
    version: int
    padding: bool
    extension: bool
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    csrcs: tuple[int, ...]
    payload_offset: int  # first payload byte (after CSRCs and the header extension)
    payload_end: int  # one past the last payload byte (before padding)


def parse_rtp_header(packet: bytes) -> RtpHeader:
    """The fixed header of one RTP packet; ValueError when it is not one."""
    if len(packet) < RTP_HEADER_SIZE:
        raise ValueError("RTP packet shorter than 12 bytes")
    b0, b1, seq, ts, ssrc = _HEADER.unpack_from(packet)
    if b0 >> 6 != 2:
        raise ValueError(f"RTP version {b0 >> 6}")
    cc = b0 & 0x0F
    offset = RTP_HEADER_SIZE + 4 * cc
    if len(packet) < offset:
        raise ValueError("RTP packet truncated in its CSRC list")
    csrcs = struct.unpack_from(f"!{cc}I", packet, RTP_HEADER_SIZE)
    if b0 & 0x10:
        if len(packet) < offset + 4:
            raise ValueError("RTP packet truncated in its header extension")
        offset += 4 + 4 * int.from_bytes(packet[offset + 2 : offset + 4], "big")
    end = len(packet)
    if b0 & 0x20:
        end -= packet[-1]
    if offset > end:
        raise ValueError("RTP packet truncated")
    return RtpHeader(
        version=2,
        padding=bool(b0 & 0x20),
        extension=bool(b0 & 0x10),
        marker=bool(b1 & 0x80),
        payload_type=b1 & 0x7F,
        sequence=seq,
        timestamp=ts,
        ssrc=ssrc,
        csrcs=tuple(csrcs),
        payload_offset=offset,
        payload_end=end,
    )


# ---------------------------------------------------------------------------------------------
# RTCP


def ntp_timestamp(unix_seconds: float) -> int:
    """The 64-bit NTP timestamp (32.32 fixed point since 1900) of a Unix time."""
    return round((unix_seconds + _NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def sender_report(
    ssrc: int,
    ntp_seconds: float,
    rtp_time: int,
    packet_count: int,
    octet_count: int,
    *,
    cname: str = "vcam",
) -> bytes:
    """A compound RTCP packet: SR (no report blocks) followed by SDES with the CNAME.

    `ntp_seconds` is the wall clock (`time.time()`) at the instant `rtp_time` stands for.
    """
    ntp = ntp_timestamp(ntp_seconds)
    sr = _SR.pack(
        0x80,
        RTCP_SR,
        6,  # length in 32-bit words minus one
        ssrc & 0xFFFFFFFF,
        ntp >> 32,
        ntp & 0xFFFFFFFF,
        rtp_time & 0xFFFFFFFF,
        packet_count & 0xFFFFFFFF,
        octet_count & 0xFFFFFFFF,
    )
    text = cname.encode()[:255]
    chunk = struct.pack("!IBB", ssrc & 0xFFFFFFFF, SDES_CNAME, len(text)) + text
    chunk += b"\x00" * (4 - len(chunk) % 4)  # end of items (at least one zero), 32-bit aligned
    sdes = struct.pack("!BBH", 0x81, RTCP_SDES, len(chunk) // 4) + chunk  # words - 1
    return sr + sdes


@dataclass(frozen=True, slots=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int  # /256
    cumulative_lost: int  # signed 24-bit
    highest_seq: int  # extended highest sequence number received
    jitter: int
    last_sr: int  # middle 32 bits of the last SR's NTP timestamp
    delay_since_last_sr: int  # 1/65536 s


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int
    rtp_time: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...]


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...]


@dataclass(frozen=True, slots=True)
class SourceDescription:
    cnames: tuple[tuple[int, str], ...]  # (ssrc, CNAME) per chunk that has one


@dataclass(frozen=True, slots=True)
class Bye:
    ssrcs: tuple[int, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class UnknownRtcp:
    packet_type: int
    count: int
    body: bytes


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | UnknownRtcp


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """The packets of a compound RTCP packet; stops at the first malformed one, never raises."""
    out: list[RtcpPacket] = []
    pos = 0
    while pos + 4 <= len(data):
        b0, pt, words = struct.unpack_from("!BBH", data, pos)
        end = pos + 4 * (words + 1)
        if b0 >> 6 != 2 or end > len(data):
            break
        body = data[pos + 4 : end]
        if b0 & 0x20 and body:  # padding: the last byte counts the padding bytes
            body = body[: max(0, len(body) - body[-1])]
        try:
            out.append(_parse_one(pt, b0 & 0x1F, body))
        except (struct.error, IndexError, ValueError):
            break
        pos = end
    return out


def _parse_one(pt: int, count: int, body: bytes) -> RtcpPacket:
    if pt == RTCP_SR:
        ssrc, ntp_hi, ntp_lo, rtp_time, packets, octets = struct.unpack_from("!IIIIII", body)
        ntp = (ntp_hi << 32) | ntp_lo
        return SenderReport(ssrc, ntp, rtp_time, packets, octets, _blocks(body, 24, count))
    if pt == RTCP_RR:
        (ssrc,) = struct.unpack_from("!I", body)
        return ReceiverReport(ssrc, _blocks(body, 4, count))
    if pt == RTCP_SDES:
        return SourceDescription(_cnames(body, count))
    if pt == RTCP_BYE:
        ssrcs = struct.unpack_from(f"!{count}I", body)
        reason = ""
        pos = 4 * count
        if pos < len(body):
            n = body[pos]
            reason = body[pos + 1 : pos + 1 + n].decode("utf-8", "replace")
        return Bye(tuple(ssrcs), reason)
    return UnknownRtcp(pt, count, bytes(body))


def _blocks(body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    blocks = []
    for i in range(count):
        ssrc, lost, seq, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(body, offset + 24 * i)
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 1 << 24
        blocks.append(ReportBlock(ssrc, lost >> 24, cumulative, seq, jitter, lsr, dlsr))
    return tuple(blocks)


def _cnames(body: bytes, count: int) -> tuple[tuple[int, str], ...]:
    out: list[tuple[int, str]] = []
    pos = 0
    for _ in range(count):
        (ssrc,) = struct.unpack_from("!I", body, pos)
        pos += 4
        while pos < len(body) and body[pos] != 0:
            kind, n = body[pos], body[pos + 1]
            if kind == SDES_CNAME:
                out.append((ssrc, body[pos + 2 : pos + 2 + n].decode("utf-8", "replace")))
            pos += 2 + n
        pos = (pos + 4) & ~3  # the terminating zero(s) up to the next 32-bit boundary
    return tuple(out)


__all__ = [
    "NAL_FU_A",
    "NAL_STAP_A",
    "RTP_HEADER_SIZE",
    "Bye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpPacket",
    "RtpBatch",
    "RtpHeader",
    "RtpPacketizer",
    "SenderReport",
    "SourceDescription",
    "UnknownRtcp",
    "ntp_timestamp",
    "parse_rtcp",
    "parse_rtp_header",
    "sender_report",
]
