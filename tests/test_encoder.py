"""H264Encoder with real libx264: Annex-B, SPS/PPS on every IDR, GOP, keyframes on demand."""

from __future__ import annotations

import threading

import av
import numpy as np
import pytest

from vcam.config import StreamConfig
from vcam.encode.annexb import (
    NAL_IDR,
    NAL_PPS,
    NAL_SPS,
    nal_type,
    nal_types,
    parse_nal_units,
    sps_profile_idc,
)
from vcam.encode.h264 import H264Encoder
from vcam.media.types import EncodedUnit, MaskedFrame, Verdict
from vcam.privacy.masks import plane_view

W, H = 320, 240
FRAME_US = 33_333


def masked(i: int, w: int = W, h: int = H) -> MaskedFrame:
    """A moving gradient with a moving noise patch: real motion for the encoder."""
    frame = av.VideoFrame(w, h, "yuv420p")
    y = plane_view(frame.planes[0])
    y[...] = ((np.arange(w)[None, :] + np.arange(h)[:, None] + 3 * i) % 256).astype(np.uint8)
    rng = np.random.default_rng(i)
    x0 = (5 * i) % (w - 40)
    y[20:60, x0 : x0 + 40] = rng.integers(0, 256, (40, 40), dtype=np.uint8)
    plane_view(frame.planes[1])[...] = 100
    plane_view(frame.planes[2])[...] = 150
    return MaskedFrame(frame, i, i * FRAME_US, Verdict(i, (), (), False))


def encode_all(enc: H264Encoder, frames: list[MaskedFrame]) -> list[EncodedUnit]:
    units: list[EncodedUnit] = []
    for m in frames:
        units.extend(enc.encode(m))
    units.extend(enc.flush())
    return units


def decode(data: bytes) -> list[av.VideoFrame]:
    dec = av.CodecContext.create("h264", "r")
    frames: list[av.VideoFrame] = []
    for pkt in [*dec.parse(data), *dec.parse(None), None]:
        frames.extend(dec.decode(pkt))
    return frames


def test_annexb_parser() -> None:
    data = b"\x00\x00\x00\x01\x67\x42\x00\x1f\x00\x00\x01\x68\xce\x00\x00\x00\x01\x65\x88\x84"
    nals = parse_nal_units(data)
    assert nals == [b"\x67\x42\x00\x1f", b"\x68\xce", b"\x65\x88\x84"]
    assert [nal_type(n) for n in nals] == [7, 8, 5]
    assert nal_types(b"garbage-without-start-code") == ()
    assert sps_profile_idc(nals[0]) == 66
    with pytest.raises(ValueError):
        sps_profile_idc(nals[1])


def test_gop_headers_and_decode_back() -> None:
    enc = H264Encoder(StreamConfig(gop=30), W, H, 30.0)
    units = encode_all(enc, [masked(i) for i in range(60)])
    assert len(units) == 60
    assert [u.index for u in units] == list(range(60))
    assert [u.pts_us for u in units] == [i * FRAME_US for i in range(60)]
    assert [i for i, u in enumerate(units) if u.keyframe] == [0, 30]
    for u in units:
        assert u.data.startswith(b"\x00\x00\x00\x01") or u.data.startswith(b"\x00\x00\x01")
        assert u.nal_types == nal_types(u.data)
        assert (u.width, u.height, u.stream) == (W, H, "main")
        if u.keyframe:
            types = list(u.nal_types)
            assert NAL_SPS in types and NAL_PPS in types
            assert types.index(NAL_SPS) < types.index(NAL_PPS) < types.index(NAL_IDR)
        else:
            assert NAL_IDR not in u.nal_types and NAL_SPS not in u.nal_types
    sps = next(n for n in parse_nal_units(units[0].data) if nal_type(n) == NAL_SPS)
    assert sps_profile_idc(sps) == 66  # Baseline: serves WebRTC as is
    frames = decode(b"".join(u.data for u in units))
    assert len(frames) == 60
    assert all((f.width, f.height) == (W, H) for f in frames)


@pytest.mark.parametrize(("profile", "idc"), [("baseline", 66), ("main", 77), ("high", 100)])
def test_profiles(profile: str, idc: int) -> None:
    # x264's profile is a ceiling: it signals the lowest profile the preset's tools need, so
    # ultrafast (no CABAC, no 8x8 transform) is always Baseline. veryfast uses both.
    cfg = StreamConfig(profile=profile, preset="veryfast")  # type: ignore[arg-type]
    enc = H264Encoder(cfg, W, H, 30.0)
    unit = enc.encode(masked(0))[0]
    sps = next(n for n in parse_nal_units(unit.data) if nal_type(n) == NAL_SPS)
    assert sps_profile_idc(sps) == idc


def test_request_keyframe_forces_an_idr_with_headers() -> None:
    enc = H264Encoder(StreamConfig(gop=30), W, H, 30.0)
    units: list[EncodedUnit] = []
    for i in range(60):
        if i == 10:
            # Requested from other threads (as the bus does); twice before a frame = once.
            for _ in range(2):
                t = threading.Thread(target=enc.request_keyframe)
                t.start()
                t.join()
        units.extend(enc.encode(masked(i)))
    keys = [i for i, u in enumerate(units) if u.keyframe]
    # The forced IDR at 10 restarts the GOP: the next periodic one is 30 frames later.
    assert keys == [0, 10, 40]
    assert {NAL_SPS, NAL_PPS, NAL_IDR} <= set(units[10].nal_types)
    assert enc.forced_keyframes == 1
    assert len(decode(b"".join(u.data for u in units[10:]))) == 50  # decodable from there


def test_scales_to_configured_size() -> None:
    enc = H264Encoder(StreamConfig(name="sub", width=160, height=90), W, H, 30.0)
    units = encode_all(enc, [masked(i) for i in range(5)])
    assert all((u.width, u.height, u.stream) == (160, 90, "sub") for u in units)
    frames = decode(b"".join(u.data for u in units))
    assert [(f.width, f.height) for f in frames] == [(160, 90)] * 5


def test_source_resolution_change_restarts_with_an_idr() -> None:
    enc = H264Encoder(StreamConfig(gop=30), W, H, 30.0)
    frames = [masked(i) for i in range(5)] + [masked(i, 176, 144) for i in range(5, 10)]
    units = encode_all(enc, frames)
    assert len(units) == 10
    assert [u.keyframe for u in units] == [True] + [False] * 4 + [True] + [False] * 4
    assert [(u.width, u.height) for u in units] == [(W, H)] * 5 + [(176, 144)] * 5
    decoded = decode(b"".join(u.data for u in units))
    assert [(f.width, f.height) for f in decoded] == [(W, H)] * 5 + [(176, 144)] * 5


def test_fixed_size_stream_rescales_after_a_source_change() -> None:
    enc = H264Encoder(StreamConfig(width=W, height=H), W, H, 30.0)
    units = encode_all(enc, [masked(0), masked(1, 640, 480), masked(2, 176, 144)])
    assert [u.keyframe for u in units] == [True, False, False]
    assert [(f.width, f.height) for f in decode(b"".join(u.data for u in units))] == [(W, H)] * 3


def test_lower_stream_fps_decimates() -> None:
    enc = H264Encoder(StreamConfig(fps=15), W, H, 30.0)
    units = encode_all(enc, [masked(i) for i in range(30)])
    assert len(units) == 15
    assert [u.index for u in units] == list(range(0, 30, 2))


def test_decoded_source_pict_type_does_not_force_keyframes() -> None:
    enc = H264Encoder(StreamConfig(gop=30), W, H, 30.0)
    units: list[EncodedUnit] = []
    for i in range(10):
        m = masked(i)
        m.frame.pict_type = av.video.frame.PictureType.I  # as a decoder would leave it
        units.extend(enc.encode(m))
    assert [u.keyframe for u in units] == [True] + [False] * 9
