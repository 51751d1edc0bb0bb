"""Static privacy zones: rasterisation, caching, point-in-polygon, and masking a real frame."""

from __future__ import annotations

import av
import numpy as np
import pytest

from vcam.privacy.masks import NEUTRAL_C, SOLID_Y, apply_zone_mask, plane_view
from vcam.privacy.zones import ZoneMask, point_in_polygon, zone_mask

SQUARE = ((0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75))
# A concave "U": the notch (0.4..0.6, 0..0.6) is outside.
U_SHAPE = (
    (0.0, 0.0),
    (0.4, 0.0),
    (0.4, 0.6),
    (0.6, 0.6),
    (0.6, 0.0),
    (1.0, 0.0),
    (1.0, 1.0),
    (0.0, 1.0),
)


def test_no_zones_is_none() -> None:
    assert zone_mask((), 640, 360) is None


def test_square_rasterises_at_luma_resolution() -> None:
    zm = zone_mask((SQUARE,), 200, 100)
    assert zm is not None
    assert zm.luma.shape == (100, 200)
    assert zm.chroma.shape == (50, 100)
    assert zm.luma[25:75, 50:150].all()  # the inside
    assert not zm.luma[:24].any() and not zm.luma[77:].any()
    assert not zm.luma[:, :49].any() and not zm.luma[:, 152:].any()
    x0, y0, x1, y1 = zm.bbox
    assert 49 <= x0 <= 50 and 150 <= x1 <= 152 and 24 <= y0 <= 25 and 75 <= y1 <= 77
    assert zm.chroma[y0 // 2 : (y1 + 1) // 2, x0 // 2 : (x1 + 1) // 2].all()


def test_cached_per_zones_and_size_and_read_only() -> None:
    a = zone_mask((SQUARE,), 320, 240)
    b = zone_mask([list(SQUARE)], 320, 240)  # equal content, other container types
    c = zone_mask((SQUARE,), 640, 480)
    assert a is b
    assert a is not c
    assert a is not None
    with pytest.raises(ValueError):
        a.luma[0, 0] = True  # shared through the cache: must not be writable


def test_concave_polygon_and_point_in_polygon_agree() -> None:
    zm = zone_mask((U_SHAPE,), 100, 100)
    assert zm is not None
    assert not zm.luma[10:55, 45:55].any()  # the notch
    assert zm.luma[80:95, 40:60].all()  # below the notch
    assert point_in_polygon(0.2, 0.3, U_SHAPE)
    assert not point_in_polygon(0.5, 0.3, U_SHAPE)
    assert point_in_polygon(0.5, 0.8, U_SHAPE)
    assert not point_in_polygon(1.2, 0.5, U_SHAPE)
    assert not point_in_polygon(0.5, 0.5, ((0, 0), (1, 1)))  # not a polygon
    rng = np.random.default_rng(3)
    for x, y in rng.random((200, 2)):
        px, py = int(x * 100), int(y * 100)
        # Away from edges the raster and the geometric test must agree.
        if min(abs(x - 0.4), abs(x - 0.6), abs(y - 0.6)) > 0.02:
            assert zm.luma[py, px] == point_in_polygon(px / 100 + 0.005, py / 100 + 0.005, U_SHAPE)


def test_zone_mask_on_a_frame() -> None:
    frame = av.VideoFrame(160, 120, "yuv420p")
    for plane in frame.planes:
        view = plane_view(plane)
        view[...] = np.random.default_rng(0).integers(0, 256, view.shape, dtype=np.uint8)
    before = plane_view(frame.planes[0]).copy()
    zm = zone_mask((SQUARE,), 160, 120)
    assert isinstance(zm, ZoneMask)
    out = apply_zone_mask(frame, zm, "solid")
    y = plane_view(out.planes[0])
    u = plane_view(out.planes[1])
    assert (y[zm.luma] == SOLID_Y).all()
    assert np.array_equal(y[~zm.luma], before[~zm.luma])
    assert (u[zm.chroma] == NEUTRAL_C).all()
    with pytest.raises(ValueError):
        apply_zone_mask(out, zone_mask((SQUARE,), 320, 240), "solid")


def test_bad_zone_raises() -> None:
    with pytest.raises(ValueError):
        zone_mask((((0.1, 0.1), (0.2, 0.2)),), 100, 100)
