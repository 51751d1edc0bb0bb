"""Mask styles on real PyAV frames: nothing of the original survives inside a masked box."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from vcam.media.types import Box
from vcam.privacy.masks import (
    BLACK_Y,
    NEUTRAL_C,
    SOLID_Y,
    STYLES,
    apply_masks,
    apply_zone_mask,
    mask_full_frame,
    mosaic_block,
    pixelate,
    plane_view,
)

W, H = 320, 240


def noise_frame(w: int = W, h: int = H, seed: int = 0) -> av.VideoFrame:
    """Uniform noise in every plane: any surviving original pixel correlates with the input."""
    frame = av.VideoFrame(w, h, "yuv420p")
    rng = np.random.default_rng(seed)
    for plane in frame.planes:
        view = plane_view(plane)
        view[...] = rng.integers(0, 256, view.shape, dtype=np.uint8)
    return frame


def planes(frame: av.VideoFrame) -> list[np.ndarray]:
    return [plane_view(p).copy() for p in frame.planes]


def corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def mask(frame: av.VideoFrame, boxes: list[Box], style: str, seed: int = 1) -> av.VideoFrame:
    return apply_masks(frame, boxes, style, mosaic_cells=8, rng=np.random.default_rng(seed))


@pytest.mark.parametrize("style", STYLES)
def test_every_style_destroys_the_box(style: str) -> None:
    frame = noise_frame()
    y0, u0, v0 = planes(frame)
    out = mask(frame, [Box(40, 50, 140, 170)], style)
    y1, u1, v1 = planes(out)
    box_y = (slice(50, 170), slice(40, 140))
    box_c = (slice(25, 85), slice(20, 70))
    assert abs(corr(y0[box_y], y1[box_y])) < 0.2
    assert abs(corr(u0[box_c], u1[box_c])) < 0.3
    assert abs(corr(v0[box_c], v1[box_c])) < 0.3
    # At most chance-level coincidences with the original inside the box.
    assert np.mean(y0[box_y] == y1[box_y]) < 0.03
    # Far from the box nothing changed.
    assert np.array_equal(y0[:, 250:], y1[:, 250:])
    assert np.array_equal(u0[:, 125:], u1[:, 125:])


def test_solid_is_flat_and_chroma_rounds_outward() -> None:
    frame = noise_frame()
    y0, u0, _ = planes(frame)
    # Fractional, odd bounds: luma x 11..21, y 13..27 (floor start, ceil end, exclusive);
    # chroma must cover x 5..11, y 6..14 (a half-covered chroma sample is still masked).
    out = mask(frame, [Box(11.5, 13.0, 20.5, 26.2)], "solid")
    y, u, v = planes(out)
    assert (y[13:27, 11:21] == SOLID_Y).all()
    assert np.array_equal(y[13:27, 10], y0[13:27, 10])
    assert np.array_equal(y[13:27, 21], y0[13:27, 21])
    assert np.array_equal(y[27, 11:21], y0[27, 11:21])
    assert (u[6:14, 5:11] == NEUTRAL_C).all() and (v[6:14, 5:11] == NEUTRAL_C).all()
    assert np.array_equal(u[6:14, 11], u0[6:14, 11])


def test_mosaic_is_piecewise_constant_per_cell() -> None:
    frame = noise_frame()
    box = Box(30, 40, 130, 140)  # 100 px: 8 cells -> block 13, made even: 14
    out = mask(frame, [box], "mosaic")
    y = planes(out)[0]
    block = mosaic_block((30, 40, 130, 140), 8)
    assert block == 14
    cells = []
    for cy in range(40, 140, block):
        for cx in range(30, 130, block):
            cell = y[cy : min(cy + block, 140), cx : min(cx + block, 130)]
            assert cell.min() == cell.max()
            cells.append(int(cell[0, 0]))
    assert len(set(cells)) > 10  # means of noise differ from cell to cell: not a solid fill


def test_blocks_cover_the_box_and_extend_irregularly_per_frame() -> None:
    box = Box(100, 80, 180, 160)
    outlines = []
    for seed in (1, 2):
        out = mask(noise_frame(), [box], "blocks", seed=seed)
        y = planes(out)[0]
        assert (y[80:160, 100:180] == BLACK_Y).all()
        black = y == BLACK_Y
        black[80:160, 100:180] = False
        assert black.sum() > 200  # blocks stick out of the box
        outlines.append(black)
    assert not np.array_equal(outlines[0], outlines[1])  # re-randomised per frame


def test_blur_is_smooth() -> None:
    out = mask(noise_frame(), [Box(40, 40, 200, 200)], "blur")
    region = planes(out)[0][40:200, 40:200].astype(np.int32)
    # Neighbouring pixels of the noise differ by ~85 on average; a blur leaves ~1.
    assert np.abs(np.diff(region, axis=1)).mean() < 3


@pytest.mark.parametrize("style", STYLES)
def test_edge_cut_box_masks_its_visible_part(style: str) -> None:
    frame = noise_frame()
    y0 = planes(frame)[0]
    out = mask(frame, [Box(-50, -30, 60, 40), Box(W - 20, H - 10, W + 40, H + 30)], style)
    y1 = planes(out)[0]
    assert abs(corr(y0[0:40, 0:60], y1[0:40, 0:60])) < 0.25
    assert np.mean(y0[0:40, 0:60] == y1[0:40, 0:60]) < 0.05
    if style in ("solid", "blocks"):
        assert (y1[H - 10 :, W - 20 :] == (SOLID_Y if style == "solid" else BLACK_Y)).all()


def test_nan_box_fails_closed_and_empty_boxes_are_ignored() -> None:
    frame = noise_frame()
    y0 = planes(frame)[0]
    same = mask(frame, [Box(500, 500, 600, 600), Box(10, 10, 10, 30)], "solid")
    assert np.array_equal(planes(same)[0], y0)
    closed = mask(noise_frame(), [Box(float("nan"), 0, 10, 10)], "solid")
    assert (planes(closed)[0] == SOLID_Y).all()


def test_unknown_style_raises() -> None:
    with pytest.raises(ValueError):
        mask(noise_frame(), [Box(0, 0, 10, 10)], "pixelart")


def test_other_pixel_formats_are_converted_once() -> None:
    rgb = av.VideoFrame.from_ndarray(np.full((H, W, 3), 200, np.uint8), format="rgb24")
    out = mask(rgb, [Box(0, 0, 50, 50)], "solid")
    assert out.format.name == "yuv420p"
    assert (planes(out)[0][:50, :50] == SOLID_Y).all()


def test_full_frame_mask_reveals_nothing() -> None:
    a = noise_frame(seed=1)
    a.pts = 1234
    a.time_base = Fraction(1, 1000)
    out_a = mask_full_frame(a)
    out_b = mask_full_frame(noise_frame(seed=2))
    assert out_a.pts == 1234 and out_a.time_base == Fraction(1, 1000)
    for pa, pb, value in zip(
        out_a.planes, out_b.planes, (SOLID_Y, NEUTRAL_C, NEUTRAL_C), strict=True
    ):
        raw = np.frombuffer(memoryview(pa), np.uint8)  # padding included
        assert (raw == value).all()
        assert bytes(pa) == bytes(pb)  # identical whatever the input


def test_zone_mask_styles_stay_inside_the_polygon() -> None:
    frame = noise_frame()
    y0 = planes(frame)[0]
    zone = np.zeros((H, W), np.bool_)
    zone[20:60, 30:90] = True
    zone[60:100, 30:50] = True  # an L shape: its bounding box is not all masked
    out = apply_zone_mask(frame, zone, "solid")
    y, u, _ = planes(out)
    assert (y[zone] == SOLID_Y).all()
    assert np.array_equal(y[~zone], y0[~zone])
    assert (u[10:50, 15:25] == NEUTRAL_C).all()
    out = apply_zone_mask(noise_frame(), zone, "mosaic", mosaic_cells=4)
    y = planes(out)[0]
    assert np.array_equal(y[~zone], y0[~zone])
    assert abs(corr(y[zone], y0[zone])) < 0.2


# ---------------------------------------------------------------------------------------------
# make_writable isolation on real decoded H.264


def _clip(n: int = 30) -> bytes:
    """A static-ish H.264 clip: later frames predict (skip) from earlier ones."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = W, H, "yuv420p"
    enc.time_base = Fraction(1, 30)
    enc.framerate = Fraction(30)
    enc.gop_size = 60
    enc.max_b_frames = 0
    enc.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "18"}
    enc.thread_count = 1
    base = noise_frame(seed=5)
    data = bytearray()
    for i in range(n):
        f = av.VideoFrame(W, H, "yuv420p")
        for src, dst in zip(base.planes, f.planes, strict=True):
            plane_view(dst)[...] = plane_view(src)
        plane_view(f.planes[0])[200:210, i * 4 : i * 4 + 10] = 255  # a little motion
        f.pts = i
        for p in enc.encode(f):
            data += bytes(p)
    for p in enc.encode(None):
        data += bytes(p)
    return bytes(data)


def _decode(data: bytes, on_frame: object = None) -> list[np.ndarray]:
    dec = av.CodecContext.create("h264", "r")
    dec.thread_count = 1
    out: list[np.ndarray] = []
    for pkt in [*dec.parse(data), *dec.parse(None), None]:
        for frame in dec.decode(pkt):
            if callable(on_frame):
                on_frame(len(out), frame)
            out.append(planes(frame)[0])
    return out


def test_mask_does_not_leak_into_later_frames_of_the_gop() -> None:
    data = _clip()
    clean = _decode(data)
    assert len(clean) == 30

    def raw_write(i: int, frame: av.VideoFrame) -> None:
        if i == 5:
            plane_view(frame.planes[0])[0:100, 0:100] = SOLID_Y  # no make_writable

    def masked(i: int, frame: av.VideoFrame) -> None:
        if i == 5:
            out = apply_masks(frame, [Box(0, 0, 100, 100)], "solid")
            assert (plane_view(out.planes[0])[0:100, 0:100] == SOLID_Y).all()

    # The hazard is real in this setup: a raw write shows up in frame 20 ...
    corrupted = _decode(data, raw_write)
    assert not np.array_equal(corrupted[20], clean[20])
    # ... and apply_masks (make_writable first) leaves every later frame untouched.
    after = _decode(data, masked)
    for i in range(6, 30):
        assert np.array_equal(after[i], clean[i]), f"mask leaked into frame {i}"


@pytest.mark.parametrize(
    ("h", "w", "block"), [(37, 53, 8), (5, 3, 8), (200, 200, 26), (300, 250, 40)]
)
def test_pixelate_cells_hold_their_mean(h: int, w: int, block: int) -> None:
    rng = np.random.default_rng(block)
    canvas = rng.integers(0, 256, (h + 6, w + 6), dtype=np.uint8)
    before = canvas.copy()
    region = canvas[3 : 3 + h, 2 : 2 + w]  # a strided view, as on a plane
    pixelate(region, block)
    for cy in range(0, h, block):
        for cx in range(0, w, block):
            cell = region[cy : cy + block, cx : cx + block]
            assert cell.min() == cell.max()
            if cy + block <= h and cx + block <= w:  # whole cells: the exact rounded mean
                orig = before[3 + cy : 3 + cy + block, 2 + cx : 2 + cx + block]
                assert abs(int(cell[0, 0]) - orig.mean()) <= 0.5 + 1e-9
    outside = np.ones(canvas.shape, np.bool_)
    outside[3 : 3 + h, 2 : 2 + w] = False
    assert np.array_equal(canvas[outside], before[outside])
