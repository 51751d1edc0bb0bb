"""RTP/RTCP packetisation (RFC 3550, RFC 6184 mode 1) and SDP, checked by real decoders."""

from __future__ import annotations

import base64
import dataclasses
import errno
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vcam.config import StreamConfig
from vcam.encode.annexb import NAL_IDR, NAL_PPS, NAL_SPS, parse_nal_units
from vcam.encode.h264 import H264Encoder
from vcam.media.types import EncodedUnit, MaskedFrame, Verdict
from vcam.privacy.masks import plane_view
from vcam.rtsp.rtp import (
    NAL_FU_A,
    NAL_STAP_A,
    Bye,
    ReceiverReport,
    RtpBatch,
    RtpPacketizer,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    ntp_timestamp,
    parse_rtcp,
    parse_rtp_header,
    sender_report,
)
from vcam.rtsp.sdp import (
    H264Track,
    MetadataTrack,
    build_sdp,
    profile_level_id,
    sprop_parameter_sets,
)

MTU = 1400
FRAME_US = 33_333
SPS = bytes.fromhex("6742c01fda0140") + b"\x16" * 10
PPS = bytes.fromhex("68ce3c80")
SEI = bytes.fromhex("0605") + b"\x11" * 30
AUD = bytes.fromhex("0910")
META_DOC = b'<?xml version="1.0"?><tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema"/>'


def annexb(*nals: bytes) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + n for n in nals)


def nal(header: int, size: int, seed: int = 0) -> bytes:
    """A NAL unit of `size` bytes with no zero bytes (no accidental start codes)."""
    body = np.random.default_rng(seed).integers(1, 256, size - 1, dtype=np.uint8).tobytes()
    return bytes((header,)) + body


def unit(*nals: bytes, pts_us: int = 0, keyframe: bool = False) -> EncodedUnit:
    return EncodedUnit("main", annexb(*nals), pts_us, keyframe, 640, 480)


def payload(packet: bytes) -> bytes:
    h = parse_rtp_header(packet)
    return packet[h.payload_offset : h.payload_end]


def depacketize(packets: Iterable[bytes]) -> list[tuple[int, list[bytes]]]:
    """A minimal RFC 6184 receiver: (timestamp, NAL units) per access unit (marker bit)."""
    units: list[tuple[int, list[bytes]]] = []
    nals: list[bytes] = []
    fu: bytearray | None = None
    for packet in packets:
        h = parse_rtp_header(packet)
        p = packet[h.payload_offset : h.payload_end]
        kind = p[0] & 0x1F
        if 1 <= kind <= 23:
            nals.append(p)
        elif kind == NAL_STAP_A:
            pos = 1
            while pos < len(p):
                size = int.from_bytes(p[pos : pos + 2], "big")
                nals.append(p[pos + 2 : pos + 2 + size])
                pos += 2 + size
        elif kind == NAL_FU_A:
            if p[1] & 0x80:
                fu = bytearray(((p[0] & 0xE0) | (p[1] & 0x1F),))
            assert fu is not None, "FU-A continuation without a start"
            fu += p[2:]
            if p[1] & 0x40:
                nals.append(bytes(fu))
                fu = None
        else:
            raise AssertionError(f"unexpected payload type {kind}")
        if h.marker:
            units.append((h.timestamp, nals))
            nals = []
    assert not nals and fu is None, "access unit without a marker"
    return units


# --- H.264 packetisation ----------------------------------------------------------------------


def test_single_nal_stap_a_and_fu_a() -> None:
    p = RtpPacketizer(96, ssrc=0x11223344, initial_seq=100, timestamp_offset=5000)
    idr = nal(0x65, 5000)
    batch = p.packetize_h264(unit(AUD, SPS, PPS, SEI, idr, pts_us=1_000_000, keyframe=True))
    assert batch.keyframe and batch.first_seq == 100
    assert batch.rtp_time == 5000 + 90000
    headers = [parse_rtp_header(pk) for pk in batch.packets]
    assert all(len(pk) <= MTU for pk in batch.packets)
    assert [h.sequence for h in headers] == list(range(100, 100 + len(batch.packets)))
    assert {(h.timestamp, h.ssrc, h.payload_type, h.version) for h in headers} == {
        (batch.rtp_time, 0x11223344, 96, 2)
    }
    assert [h.marker for h in headers] == [False] * (len(headers) - 1) + [True]
    # 1: STAP-A with SPS, PPS, SEI (AUD dropped); NRI is the highest of the three.
    stap = payload(batch.packets[0])
    assert stap[0] == (0x60 | NAL_STAP_A)
    assert stap[1:] == b"".join(len(n).to_bytes(2, "big") + n for n in (SPS, PPS, SEI))
    # 2..: FU-A of the IDR: S on the first, E on the last, NRI and type copied.
    frags = [payload(pk) for pk in batch.packets[1:]]
    assert len(frags) == -(-(len(idr) - 1) // (MTU - 12 - 2))
    assert all(f[0] == (0x60 | NAL_FU_A) for f in frags)
    assert [f[1] & 0xC0 for f in frags] == [0x80] + [0] * (len(frags) - 2) + [0x40]
    assert all(f[1] & 0x1F == NAL_IDR for f in frags)
    assert bytes((idr[0],)) + b"".join(f[2:] for f in frags) == idr
    assert batch.octets == sum(len(pk) for pk in batch.packets)


def test_stap_a_header_takes_the_highest_nri() -> None:
    batch = RtpPacketizer(96).packetize_h264(unit(SEI, SPS, PPS, nal(0x65, 100), keyframe=True))
    stap = payload(batch.packets[0])
    assert SEI[0] & 0x60 == 0 and stap[0] == (0x60 | NAL_STAP_A)
    assert depacketize(batch.packets)[0][1] == [SEI, SPS, PPS, nal(0x65, 100)]


def test_small_slices_are_single_nal_packets_and_sizes_at_the_limit() -> None:
    budget = MTU - 12
    p = RtpPacketizer(96, initial_seq=0)
    nals = [nal(0x41, 10, 1), nal(0x41, budget, 2), nal(0x41, budget + 1, 3)]
    batch = p.packetize_h264(unit(*nals))
    kinds = [payload(pk)[0] & 0x1F for pk in batch.packets]
    assert kinds == [1, 1, NAL_FU_A, NAL_FU_A]
    assert max(len(pk) for pk in batch.packets) == MTU
    assert depacketize(batch.packets)[0][1] == nals


def test_parameter_sets_too_big_for_one_stap_a() -> None:
    big_sps = bytes((0x67,)) + b"\x42" * 900
    big_pps = bytes((0x68,)) + b"\x43" * 900
    huge_sei = bytes((0x06,)) + b"\x44" * 3000
    p = RtpPacketizer(96)
    batch = p.packetize_h264(unit(big_sps, big_pps, huge_sei, nal(0x65, 100), keyframe=True))
    kinds = [payload(pk)[0] & 0x1F for pk in batch.packets]
    assert kinds == [NAL_SPS, NAL_PPS, NAL_FU_A, NAL_FU_A, NAL_FU_A, NAL_IDR]
    assert all(len(pk) <= MTU for pk in batch.packets)
    assert depacketize(batch.packets)[0][1] == [big_sps, big_pps, huge_sei, nal(0x65, 100)]


@given(st.lists(st.integers(2, 5000), min_size=1, max_size=8), st.integers(100, 1500))
def test_any_access_unit_round_trips(sizes: list[int], mtu: int) -> None:
    headers = [0x67, 0x68, 0x06, 0x65, 0x41, 0x01]
    nals = [nal(headers[i % len(headers)], s, i) for i, s in enumerate(sizes)]
    p = RtpPacketizer(96, mtu=mtu)
    batch = p.packetize_h264(unit(*nals, pts_us=123_456))
    assert all(len(pk) <= mtu for pk in batch.packets)
    assert depacketize(batch.packets) == [(p.rtp_time(123_456), nals)]


def test_sequence_continues_across_units_and_wraps() -> None:
    p = RtpPacketizer(96, initial_seq=65530)
    seqs: list[int] = []
    markers = 0
    for i in range(4):
        batch = p.packetize_h264(unit(nal(0x41, 3000, i), pts_us=i * FRAME_US))
        seqs += [parse_rtp_header(pk).sequence for pk in batch.packets]
        markers += sum(parse_rtp_header(pk).marker for pk in batch.packets)
        assert batch.last_seq == seqs[-1]
    assert seqs == [(65530 + i) & 0xFFFF for i in range(len(seqs))]
    assert 0 in seqs and markers == 4
    assert p.next_seq == (seqs[-1] + 1) & 0xFFFF


def test_rtp_time_wraps_and_follows_pts() -> None:
    p = RtpPacketizer(96, timestamp_offset=0xFFFFFFFF - 1000)
    assert p.rtp_time(0) == 0xFFFFFFFF - 1000
    assert p.rtp_time(1_000_000) == 90000 - 1001  # wrapped
    assert (p.rtp_time(FRAME_US) - p.rtp_time(0)) % (1 << 32) == 2999
    batch = p.packetize_h264(unit(nal(0x41, 50), pts_us=1_000_000))
    assert parse_rtp_header(batch.packets[0]).timestamp == 90000 - 1001
    assert RtpPacketizer(107, clock_rate=8000, timestamp_offset=0).rtp_time(500_000) == 4000


def test_random_ssrc_seq_and_offset() -> None:
    a, b = RtpPacketizer(96), RtpPacketizer(96)
    assert (a.ssrc, a.next_seq, a.timestamp_offset) != (b.ssrc, b.next_seq, b.timestamp_offset)
    assert a.ssrc != 0


def test_sender_counters() -> None:
    p = RtpPacketizer(96)
    b1 = p.packetize_h264(unit(SPS, PPS, nal(0x65, 4000), keyframe=True))
    b2 = p.packetize_payload(b"x" * 3000, 0)
    assert p.packet_count == len(b1.packets) + len(b2.packets)
    assert p.octet_count == b1.octets + b2.octets - 12 * p.packet_count  # payload only


def test_payload_packetisation() -> None:
    doc = b"<tt:MetadataStream>" + b"a" * 5000 + b"</tt:MetadataStream>"
    p = RtpPacketizer(107, initial_seq=7, timestamp_offset=0)
    batch = p.packetize_payload(doc, 2_000_000)
    assert isinstance(batch, RtpBatch) and batch.keyframe
    headers = [parse_rtp_header(pk) for pk in batch.packets]
    assert len(batch.packets) == 4 and all(len(pk) <= MTU for pk in batch.packets)
    assert b"".join(payload(pk) for pk in batch.packets) == doc
    assert [h.marker for h in headers] == [False, False, False, True]
    assert {h.timestamp for h in headers} == {180000} and headers[0].payload_type == 107
    empty = p.packetize_payload(b"", 0)
    assert len(empty.packets) == 1 and parse_rtp_header(empty.packets[0]).marker


def test_parse_rtp_header_options_and_errors() -> None:
    base = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 0x80 | 96, 1, 2, 3)
    packet = base + b"\x00" * 8 + b"\xbe\xde\x00\x01" + b"\x00" * 4 + b"DATA" + b"\x00\x00\x03"
    h = parse_rtp_header(packet)
    assert h.csrcs == (0, 0) and h.extension and h.padding and h.marker
    assert packet[h.payload_offset : h.payload_end] == b"DATA"
    for bad in (b"", b"\x80" * 11, b"\x40" + b"\x00" * 11, b"\x8f" + b"\x00" * 11):
        with pytest.raises(ValueError):
            parse_rtp_header(bad)


# --- RTCP ---------------------------------------------------------------------------------------


def test_sender_report_fields() -> None:
    data = sender_report(0xCAFEBABE, 1_700_000_000.25, 0x12345678, 10, 2000, cname="cam@x")
    assert len(data) % 4 == 0
    v, pt, length, ssrc, hi, lo, rtp, packets, octets = struct.unpack_from("!BBHIIIIII", data)
    assert (v, pt, length, ssrc) == (0x80, 200, 6, 0xCAFEBABE)
    assert hi == 1_700_000_000 + 2_208_988_800 and lo == 1 << 30
    assert (rtp, packets, octets) == (0x12345678, 10, 2000)
    sr, sdes = parse_rtcp(data)
    assert sr == SenderReport(0xCAFEBABE, (hi << 32) | lo, 0x12345678, 10, 2000, ())
    assert sdes == SourceDescription(((0xCAFEBABE, "cam@x"),))
    assert data[28] == 0x81 and data[29] == 202
    assert ntp_timestamp(0.0) == 2_208_988_800 << 32


@pytest.mark.parametrize("cname", ["", "ab", "abc", "abcd", "vcam@camera.local"])
def test_sdes_padding(cname: str) -> None:
    data = sender_report(1, 0.0, 0, 0, 0, cname=cname)
    assert len(data) % 4 == 0
    sdes = data[28:]
    assert len(sdes) == 4 * (struct.unpack_from("!H", sdes, 2)[0] + 1)
    chunk = sdes[4:]
    assert chunk[6 : 6 + len(cname)] == cname.encode()
    assert 1 <= len(chunk) - 6 - len(cname) <= 4  # at least one terminating zero
    assert chunk[6 + len(cname) :] == bytes(len(chunk) - 6 - len(cname))
    assert parse_rtcp(data)[1] == SourceDescription(((1, cname),))


def test_parse_receiver_report_and_bye() -> None:
    block = struct.pack("!IIIIII", 0xCAFEBABE, (25 << 24) | 0xFFFFFF, 70000, 12, 34, 56)
    rr = struct.pack("!BBHI", 0x81, 201, 7, 0x01020304) + block
    reason = b"\x07goodbye"
    bye = struct.pack("!BBHI", 0x81, 203, 3, 0x01020304) + reason
    app = struct.pack("!BBHI", 0x80, 204, 2, 1) + b"name"
    got = parse_rtcp(rr + bye + app)
    assert isinstance(got[0], ReceiverReport) and got[0].ssrc == 0x01020304
    (b,) = got[0].reports
    assert (b.ssrc, b.fraction_lost, b.cumulative_lost, b.highest_seq) == (
        0xCAFEBABE,
        25,
        -1,
        70000,
    )
    assert (b.jitter, b.last_sr, b.delay_since_last_sr) == (12, 34, 56)
    assert got[1] == Bye((0x01020304,), "goodbye")
    assert got[2] == UnknownRtcp(204, 0, b"\x00\x00\x00\x01name")
    padded = struct.pack("!BBHI", 0xA0, 204, 3, 1) + b"name" + b"\x00\x00\x00\x04"
    assert parse_rtcp(padded) == [UnknownRtcp(204, 0, b"\x00\x00\x00\x01name")]


def test_parse_rtcp_keeps_what_it_could_read() -> None:
    rr = struct.pack("!BBHI", 0x80, 201, 1, 5)
    assert parse_rtcp(rr + b"\x81\xc9\x00\x07\x00") == [ReceiverReport(5, ())]
    assert parse_rtcp(b"") == [] and parse_rtcp(b"\x00" * 8) == []
    too_few = struct.pack("!BBHI", 0x82, 201, 1, 5)  # claims 2 blocks, has none
    assert parse_rtcp(rr + too_few) == [ReceiverReport(5, ())]


@given(st.binary(max_size=200))
def test_parse_rtcp_never_raises(data: bytes) -> None:
    parse_rtcp(data)
    parse_rtcp(b"\x81\xc9" + data)


# --- SDP --------------------------------------------------------------------------------------


def test_sdp_lines() -> None:
    sdp = build_sdp(
        session_id=42,
        address="192.168.1.5",
        session_name="vcam main",
        tracks=[
            H264Track(96, "trackID=0", SPS, PPS, 1280, 720, 30.0),
            MetadataTrack(107, "trackID=1"),
        ],
    )
    assert sdp.endswith("\r\n") and "\n" not in sdp.replace("\r\n", "")
    lines = sdp.split("\r\n")[:-1]
    b64 = base64.b64encode
    assert lines == [
        "v=0",
        "o=- 42 42 IN IP4 192.168.1.5",
        "s=vcam main",
        "c=IN IP4 0.0.0.0",
        "t=0 0",
        "a=control:*",
        "a=range:npt=now-",
        "m=video 0 RTP/AVP 96",
        "a=rtpmap:96 H264/90000",
        "a=fmtp:96 packetization-mode=1;profile-level-id=42c01f;"
        f"sprop-parameter-sets={b64(SPS).decode()},{b64(PPS).decode()}",
        "a=x-dimensions:1280,720",
        "a=framerate:30",
        "a=control:trackID=0",
        "m=application 0 RTP/AVP 107",
        "a=rtpmap:107 vnd.onvif.metadata/90000",
        "a=control:trackID=1",
    ]
    assert profile_level_id(bytes.fromhex("67640028ac")) == "640028"
    assert sprop_parameter_sets(b"\x67\x42", b"\x68") == "Z0I=,aA=="
    with pytest.raises(ValueError):
        profile_level_id(PPS)
    v6 = build_sdp(session_id=1, address="::1", session_name="", tracks=[])
    assert "o=- 1 1 IN IP6 ::1" in v6 and "s=-" in v6
    fps = build_sdp(
        session_id=1,
        address="h",
        session_name="s",
        tracks=[H264Track(96, "t", SPS, PPS, 2, 2, 29.97)],
    )
    assert "a=framerate:29.97\r\n" in fps


# --- real decoders ------------------------------------------------------------------------------


def encoded_units(n: int, w: int = 640, h: int = 480, gop: int = 10) -> list[EncodedUnit]:
    """n frames of moving noise at a high bitrate: IDRs of many FU-A fragments."""
    cfg = StreamConfig(width=w, height=h, bitrate_kbps=8000, gop=gop, threads=1)
    enc = H264Encoder(cfg, w, h, 30.0)
    out: list[EncodedUnit] = []
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (h, w), dtype=np.uint8)
    for i in range(n):
        frame = av.VideoFrame(w, h, "yuv420p")
        plane_view(frame.planes[0])[...] = np.roll(noise, 4 * i, axis=1)
        plane_view(frame.planes[1])[...] = 100
        plane_view(frame.planes[2])[...] = 150
        out += enc.encode(MaskedFrame(frame, i, i * FRAME_US, Verdict(i, (), (), False)))
    out += enc.flush()
    assert len(out) == n
    return out


@pytest.fixture(scope="module")
def units30() -> list[EncodedUnit]:
    return encoded_units(30)


def test_pyav_decodes_depacketised_stream(units30: list[EncodedUnit]) -> None:
    p = RtpPacketizer(96)
    packets = [pk for u in units30 for pk in p.packetize_h264(u).packets]
    kinds = {payload(pk)[0] & 0x1F for pk in packets}
    assert {NAL_STAP_A, NAL_FU_A} <= kinds  # both aggregation and fragmentation exercised
    aus = depacketize(packets)
    assert [ts for ts, _ in aus] == [p.rtp_time(u.pts_us) for u in units30]
    for (_, nals), u in zip(aus, units30, strict=True):
        assert nals == [n for n in parse_nal_units(u.data) if n[0] & 0x1F != 9]
    dec = av.CodecContext.create("h264", "r")
    frames = []
    for _, nals in aus:
        frames += dec.decode(av.Packet(annexb(*nals)))
    frames += dec.decode(None)
    assert len(frames) == 30
    assert {(f.width, f.height) for f in frames} == {(640, 480)}


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1] & ~1
        if port >= 1024 and all(not _bound(port + i) for i in (0, 1, 2, 3)):
            return port
    raise RuntimeError("no free UDP port pair")


def _bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def _stream_udp(
    units: list[EncodedUnit], video_port: int, meta_port: int, stop: threading.Event
) -> None:
    """Loop the units (pts rising) over UDP at ~4x real time until stopped."""
    video, meta = RtpPacketizer(96), RtpPacketizer(107)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        loop = 0
        while not stop.is_set() and loop < 20:
            for u in units:
                pts = u.pts_us + loop * len(units) * FRAME_US
                for pk in video.packetize_h264(dataclasses.replace(u, pts_us=pts)).packets:
                    s.sendto(pk, ("127.0.0.1", video_port))
                for pk in meta.packetize_payload(META_DOC, pts).packets:
                    s.sendto(pk, ("127.0.0.1", meta_port))
                if stop.wait(FRAME_US / 4e6):
                    return
            loop += 1


def _run_with_stream(
    cmd: list[str], sdp_path: Path, units: list[EncodedUnit], tmp: Path
) -> subprocess.CompletedProcess[str]:
    vport = _free_port_pair()
    mport = vport + 2
    sdp_path.write_text(
        build_sdp(
            session_id=1,
            address="127.0.0.1",
            session_name="vcam test",
            connection="127.0.0.1",
            tracks=[
                H264Track(96, "trackID=0", *_parameter_sets(units[0]), 640, 480, 30.0, vport),
                MetadataTrack(107, "trackID=1", mport),
            ],
        )
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop = threading.Event()
    sender: threading.Thread | None = None
    try:
        deadline = time.monotonic() + 10
        while not (_bound(vport) and _bound(mport)):  # send once ffmpeg listens
            assert proc.poll() is None and time.monotonic() < deadline, "ffmpeg did not listen"
            time.sleep(0.02)
        sender = threading.Thread(target=_stream_udp, args=(units, vport, mport, stop))
        sender.start()
        out, err = proc.communicate(timeout=30)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if sender is not None:
            sender.join(5)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _parameter_sets(u: EncodedUnit) -> tuple[bytes, bytes]:
    nals = {n[0] & 0x1F: n for n in parse_nal_units(u.data)}
    return nals[NAL_SPS], nals[NAL_PPS]


def test_ffmpeg_decodes_rtp_over_udp(units30: list[EncodedUnit], tmp_path: Path) -> None:
    sdp = tmp_path / "x.sdp"
    xml = tmp_path / "meta.xml"
    cmd = [
        "ffmpeg", "-nostdin", "-v", "error", "-protocol_whitelist", "file,udp,rtp",
        "-i", str(sdp), "-map", "0:v:0", "-frames:v", "40", "-f", "framecrc", "-",
        "-map", "0:d:0", "-c", "copy", "-frames:d", "5", "-f", "data", str(xml),
    ]  # fmt: skip
    done = _run_with_stream(cmd, sdp, units30, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""  # no decoder complaint at all
    frames = [ln for ln in done.stdout.splitlines() if ln and not ln.startswith("#")]
    assert len(frames) == 40
    assert {ln.split(",")[4].strip() for ln in frames} == {str(640 * 480 * 3 // 2)}
    assert xml.read_bytes() == META_DOC * 5  # ffmpeg's data stream: one packet per document


def test_ffprobe_reads_sdp_and_stream(units30: list[EncodedUnit], tmp_path: Path) -> None:
    sdp = tmp_path / "x.sdp"
    cmd = [
        "ffprobe", "-v", "error", "-protocol_whitelist", "file,udp,rtp",
        "-analyzeduration", "500000", "-show_entries", "stream=codec_type,codec_name,width,height",
        "-of", "csv=p=0", str(sdp),
    ]  # fmt: skip
    done = _run_with_stream(cmd, sdp, units30, tmp_path)
    assert done.returncode == 0, done.stderr
    rows = sorted(done.stdout.split())
    assert rows[0].startswith("h264,video,640,480"), rows
    assert rows[1].startswith(("unknown,data", ",data")), rows
