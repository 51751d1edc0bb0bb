"""The frame stamp reads back exactly after encoding, and not at all where a mask covers it
(its checksum fails)."""

from __future__ import annotations

import av
import numpy as np

from vcam.sources.stamp import BITS, BLOCK, read_stamp, stamp

W, H = 640, 360


def luma_after_h264(rgb: np.ndarray) -> np.ndarray:
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = W, H, "yuv420p"
    enc.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "30"}
    dec = av.CodecContext.create("h264", "r")
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    packets = [*enc.encode(frame), *enc.encode(None)]
    decoded = [f for p in packets for f in dec.decode(p)]
    out = decoded[0].reformat(format="gray")
    return np.frombuffer(out.planes[0], np.uint8).reshape(H, out.planes[0].line_size)[:, :W]


def test_the_stamp_survives_h264() -> None:
    rgb = np.full((H, W, 3), 90, np.uint8)
    stamp(rgb, 123_456, 9_876_543)
    assert read_stamp(luma_after_h264(rgb)) == (123_456, 9_876_543)


def test_a_mask_over_the_stamp_makes_it_unreadable() -> None:
    rgb = np.full((H, W, 3), 90, np.uint8)
    stamp(rgb, 77, 5)
    y = luma_after_h264(rgb)
    covered = y.copy()
    covered[:BLOCK, (BITS - 16) * BLOCK : BITS * BLOCK] = 32  # vcam's solid mask over 16 bits
    assert read_stamp(covered) is None  # it would read as zero bits: another frame's number
    assert read_stamp(y) == (77, 5)
    flat = y.copy()
    for grey in (16, 32, 120, 235):  # a fail-closed frame, masks of every style's tone
        flat[:BLOCK, : BITS * BLOCK] = grey
        assert read_stamp(flat) is None
