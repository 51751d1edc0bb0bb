"""Measuring masks on decoded output: how much of each ground-truth box a client saw masked.

Used by the end-to-end tests and `benchmarks/privacy.py`. The output is rendered with the
`solid` style, so a pixel is masked when its decoded luma is the solid value; pixels whose
clear original is already close to that value cannot tell and are left out of the share.
Mask geometry does not depend on the style, so coverage measured this way holds for all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcam.media.types import GroundTruth, ObjectClass
from vcam.privacy.masks import SOLID_Y

TOLERANCE = 12  # luma levels of H.264 coding noise around the solid value
COVERED = 0.9  # a face with less of its box masked than this counts as leaked

# Face height bands of the privacy metrics (pixels).
BANDS: tuple[tuple[str, float, float], ...] = (
    ("<16", 0, 16),
    ("16-24", 16, 24),
    ("24-32", 24, 32),
    ("32-64", 32, 64),
    (">64", 64, float("inf")),
)


@dataclass(frozen=True, slots=True)
class FaceCoverage:
    truth: GroundTruth
    covered: float  # share of the box's evaluable pixels that are masked, 0..1
    band: str

    @property
    def leaked(self) -> bool:
        return self.covered < COVERED


def band_of(height: float) -> str:
    for name, lo, hi in BANDS:
        if lo <= height < hi:
            return name
    return BANDS[-1][0]


def masked_share(
    out_y: np.ndarray, clear_y: np.ndarray, box_px: tuple[int, int, int, int]
) -> float:
    """Share of the box's pixels that are masked in `out_y` (luma planes of equal shape)."""
    x1, y1, x2, y2 = box_px
    out = out_y[y1:y2, x1:x2].astype(np.int16)
    clear = clear_y[y1:y2, x1:x2].astype(np.int16)
    evaluable = np.abs(clear - SOLID_Y) > TOLERANCE
    if not evaluable.any():
        return 1.0
    masked = np.abs(out - SOLID_Y) <= TOLERANCE
    return float((masked & evaluable).sum() / evaluable.sum())


def face_coverage(
    out_y: np.ndarray, clear_y: np.ndarray, truth: tuple[GroundTruth, ...]
) -> list[FaceCoverage]:
    """Coverage of every ground-truth face of one frame."""
    h, w = out_y.shape
    result = []
    for gt in truth:
        if gt.cls is not ObjectClass.FACE:
            continue
        px = gt.box.to_pixels(w, h)
        if px[2] <= px[0] or px[3] <= px[1]:
            continue
        result.append(FaceCoverage(gt, masked_share(out_y, clear_y, px), band_of(gt.box.height)))
    return result


def over_masked_share(
    out_y: np.ndarray, clear_y: np.ndarray, truth: tuple[GroundTruth, ...]
) -> float:
    """Share of the frame masked outside every ground-truth person and face box."""
    h, w = out_y.shape
    outside = np.ones((h, w), bool)
    for gt in truth:
        x1, y1, x2, y2 = gt.box.to_pixels(w, h)
        outside[y1:y2, x1:x2] = False
    evaluable = outside & (np.abs(clear_y.astype(np.int16) - SOLID_Y) > TOLERANCE)
    if not evaluable.any():
        return 0.0
    masked = np.abs(out_y.astype(np.int16) - SOLID_Y) <= TOLERANCE
    return float((masked & evaluable).sum() / evaluable.sum())
