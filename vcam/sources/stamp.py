"""A machine-readable counter drawn into frames: for latency and frame identity at a client.

Bits are black/white square blocks along the top-left edge, most significant first, read back
from the decoded luma by the mean of each block's centre. Used by the synthetic source when
`source.synthetic.stamp` is on: the frame index and the production time (monotonic ms) survive
encoding, RTP and decoding, so a real client can say which frame it got and how late it is.
"""

from __future__ import annotations

import numpy as np

BLOCK = 10  # pixels per bit; survives H.264 at low bitrates at 640x360 and above
INDEX_BITS = 24
TIME_BITS = 32
BITS = INDEX_BITS + TIME_BITS


def stamp(rgb: np.ndarray, index: int, time_ms: int) -> None:
    """Draw the index and the time (ms, wrapping at 2**32) into the top rows of `rgb`."""
    value = ((index % (1 << INDEX_BITS)) << TIME_BITS) | (time_ms % (1 << TIME_BITS))
    if rgb.shape[1] < BITS * BLOCK or rgb.shape[0] < BLOCK:
        raise ValueError(f"frame too small for a stamp: need {BITS * BLOCK}x{BLOCK}")
    row = rgb[:BLOCK, : BITS * BLOCK].reshape(BLOCK, BITS, BLOCK, -1)
    bits = np.array([(value >> (BITS - 1 - i)) & 1 for i in range(BITS)], np.uint8)
    row[:] = (bits * 255)[None, :, None, None]


def read_stamp(luma: np.ndarray) -> tuple[int, int]:
    """(index, time_ms) from a decoded luma plane (video range is fine)."""
    lo, hi = BLOCK // 2 - 2, BLOCK // 2 + 2
    blocks = luma[lo:hi, : BITS * BLOCK].reshape(hi - lo, BITS, BLOCK)[:, :, lo:hi]
    bits = blocks.mean(axis=(0, 2)) > 128
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value >> TIME_BITS, value & ((1 << TIME_BITS) - 1)
