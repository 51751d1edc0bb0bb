"""Property tests (hypothesis): parsers and validators raise their own errors or succeed."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from vcam.config import Config, config_from_dict
from vcam.encode.annexb import nal_type, parse_nal_units
from vcam.errors import ConfigError
from vcam.media.types import Box, ObjectClass
from vcam.privacy.tracker import PixelDetection, Tracker

START = b"\x00\x00\x00\x01"

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=True),
    st.text(max_size=8),
)  # fmt: skip
keys = st.sampled_from(
    ["source", "privacy", "detectors", "output", "face", "person", "mode", "style", "uri",
     "zones", "streams", "threshold", "gop", "width", "height", "bogus", "detect_every"]
)  # fmt: skip
tables = st.recursive(
    scalars | st.lists(scalars, max_size=3),
    lambda inner: st.dictionaries(keys, inner, max_size=4) | st.lists(inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, tables, max_size=4))
def test_any_config_table_is_accepted_or_rejected_with_a_config_error(data: dict[str, Any]) -> None:
    try:
        cfg = config_from_dict(data)
    except ConfigError as exc:
        assert str(exc).startswith("config error: ")
    else:
        assert isinstance(cfg, Config)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=8))
def test_annexb_round_trip(payloads: list[bytes]) -> None:
    # Emulation prevention guarantees no start code inside a NAL; mimic it for the test data.
    nals = [p.replace(b"\x00\x00", b"\x00\x03\x00").rstrip(b"\x00") or b"\x65" for p in payloads]
    nals = [n if n[0] else b"\x65" + n for n in nals]
    stream = b"".join(START + n for n in nals)
    assert parse_nal_units(stream) == nals
    assert [nal_type(n) for n in parse_nal_units(stream)] == [n[0] & 0x1F for n in nals]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_annexb_parser_never_fails_on_garbage(data: bytes) -> None:
    for nal in parse_nal_units(data):
        assert isinstance(nal, bytes)


coords = st.floats(-200, 900, allow_nan=False)
detections = st.lists(
    st.builds(
        lambda x, y, w, h, c: PixelDetection(Box(x, y, x + w, y + h), 0.9, c),
        coords, coords, st.floats(0, 300), st.floats(0, 300),
        st.sampled_from(list(ObjectClass)),
    ),
    max_size=6,
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), detections), min_size=1, max_size=12))
def test_tracker_regions_stay_inside_the_frame(
    steps: list[tuple[int, list[PixelDetection]]],
) -> None:
    tracker = Tracker(hold_frames=6, margin=0.3)
    index = 0
    for gap, dets in steps:
        index += gap
        tracker.update(index, dets)
        for i in range(index - 3, index + 3):
            regions, _tracks = tracker.regions(i, 640, 360, 3, frozenset(ObjectClass), True)
            for r in regions:
                assert 0 <= r.x1 <= r.x2 <= 640 and 0 <= r.y1 <= r.y2 <= 360
        ids = [t.track_id for t in tracker.active]
        assert len(ids) == len(set(ids))
