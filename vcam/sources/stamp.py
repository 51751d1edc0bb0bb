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
TIME_BITS = 24  # milliseconds, wrapping every 4.6 hours: compare modulo TIME_WRAP
CHECK_BITS = 8  # CRC-8 of index and time: a mask drawn over the stamp is not another frame
BITS = INDEX_BITS + TIME_BITS + CHECK_BITS
TIME_WRAP = 1 << TIME_BITS


def _crc8(value: int, bits: int) -> int:
    """CRC-8 (polynomial x^8 + x^2 + x + 1, output XOR 0x55) of the `bits` low bits of
    `value`, MSB first. The XOR keeps an all-dark row (a mask, a fail-closed frame) invalid."""
    crc = 0
    for i in range(bits - 1, -1, -1):
        crc ^= ((value >> i) & 1) << 7
        crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc ^ 0x55


def stamp(rgb: np.ndarray, index: int, time_ms: int) -> None:
    """Draw the index, the time (ms, wrapping at TIME_WRAP) and their checksum into the top
    rows of `rgb`."""
    payload = ((index % (1 << INDEX_BITS)) << TIME_BITS) | (time_ms % TIME_WRAP)
    value = (payload << CHECK_BITS) | _crc8(payload, INDEX_BITS + TIME_BITS)
    if rgb.shape[1] < BITS * BLOCK or rgb.shape[0] < BLOCK:
        raise ValueError(f"frame too small for a stamp: need {BITS * BLOCK}x{BLOCK}")
    row = rgb[:BLOCK, : BITS * BLOCK].reshape(BLOCK, BITS, BLOCK, -1)
    bits = np.array([(value >> (BITS - 1 - i)) & 1 for i in range(BITS)], np.uint8)
    row[:] = (bits * 255)[None, :, None, None]


def read_stamp(luma: np.ndarray) -> tuple[int, int] | None:
    """(index, time_ms) from a decoded luma plane (video or full range), or None when the
    checksum does not match: a privacy mask drawn over the stamp (a walker's head in the
    corner, a fail-closed frame) would otherwise read as another frame's number."""
    lo, hi = BLOCK // 2 - 2, BLOCK // 2 + 2
    blocks = luma[lo:hi, : BITS * BLOCK].reshape(hi - lo, BITS, BLOCK)[:, :, lo:hi]
    bits = blocks.mean(axis=(0, 2)) > 128
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    payload, check = value >> CHECK_BITS, value & ((1 << CHECK_BITS) - 1)
    if _crc8(payload, INDEX_BITS + TIME_BITS) != check:
        return None
    return payload >> TIME_BITS, payload & (TIME_WRAP - 1)
