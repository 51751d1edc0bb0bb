"""Measuring masks on decoded output: how much of each ground-truth box a client saw masked.

Used by the end-to-end tests and `benchmarks/privacy.py`. The output is rendered with the
`solid` style, so a pixel is masked when its decoded luma is the solid value; pixels whose
clear original is already close to that value cannot tell and are left out of the share.
Mask geometry does not depend on the style, so coverage measured this way holds for all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vcam.media.types import GroundTruth, ObjectClass
from vcam.privacy.masks import SOLID_Y
from vcam.sources.synthetic import SyntheticScene

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
    out_y: np.ndarray,
    clear_y: np.ndarray,
    box_px: tuple[int, int, int, int],
    visible: np.ndarray | None = None,
    solid_y: int = SOLID_Y,
) -> float:
    """Share of the box's pixels that are masked in `out_y` (luma planes of equal shape).

    `visible` (bool, frame-sized) limits the count to the pixels that show the object itself.
    """
    x1, y1, x2, y2 = box_px
    out = out_y[y1:y2, x1:x2].astype(np.int16)
    clear = clear_y[y1:y2, x1:x2].astype(np.int16)
    evaluable = np.abs(clear - solid_y) > TOLERANCE
    if visible is not None:
        evaluable &= visible[y1:y2, x1:x2]
    if not evaluable.any():
        return 1.0
    masked = np.abs(out - solid_y) <= TOLERANCE
    return float((masked & evaluable).sum() / evaluable.sum())


def face_coverage(
    out_y: np.ndarray,
    clear_y: np.ndarray,
    truth: tuple[GroundTruth, ...],
    visible: Callable[[GroundTruth], np.ndarray | None] = lambda gt: None,
    solid_y: int = SOLID_Y,
) -> list[FaceCoverage]:
    """Coverage of every ground-truth face of one frame (only its visible pixels, if known)."""
    h, w = out_y.shape
    result = []
    for gt in truth:
        if gt.cls is not ObjectClass.FACE:
            continue
        px = gt.box.to_pixels(w, h)
        if px[2] <= px[0] or px[3] <= px[1]:
            continue
        share = masked_share(out_y, clear_y, px, visible(gt), solid_y)
        result.append(FaceCoverage(gt, share, band_of(gt.box.height)))
    return result


def over_masked_share(
    out_y: np.ndarray, clear_y: np.ndarray, truth: tuple[GroundTruth, ...], solid_y: int = SOLID_Y
) -> float:
    """Share of the frame masked outside every ground-truth person and face box."""
    h, w = out_y.shape
    outside = np.ones((h, w), bool)
    for gt in truth:
        x1, y1, x2, y2 = gt.box.to_pixels(w, h)
        outside[y1:y2, x1:x2] = False
    evaluable = outside & (np.abs(clear_y.astype(np.int16) - solid_y) > TOLERANCE)
    if not evaluable.any():
        return 0.0
    masked = np.abs(out_y.astype(np.int16) - solid_y) <= TOLERANCE
    return float((masked & evaluable).sum() / evaluable.sum())


# ---------------------------------------------------------------------------------------------
# Whole clips: render the synthetic scene to a file, and score a masked clip decoded back.


def write_synthetic_clip(path: Path, scene: SyntheticScene, frames: int, crf: int = 16) -> None:
    """Encode `frames` frames of the scene (high quality) as the clear input of a test run."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(scene.cfg.fps).limit_denominator(1001))
        stream.width, stream.height = scene.width, scene.height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for i in range(frames):
            rgb, _truth = scene.render(i)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@dataclass
class ClipReport:
    """Privacy metrics of a masked clip, measured on its decoded frames."""

    frames: int = 0
    faces: list[FaceCoverage] = field(default_factory=list)
    leaked_by_band: dict[str, int] = field(default_factory=dict)
    total_by_band: dict[str, int] = field(default_factory=dict)
    exposed_identities: set[str] = field(default_factory=set)
    identities: set[str] = field(default_factory=set)
    longest_exposed_run: int = 0
    over_masked: float = 0.0  # mean share masked outside every ground-truth box

    def leak_rate(self, band: str) -> float:
        total = self.total_by_band.get(band, 0)
        return self.leaked_by_band.get(band, 0) / total if total else 0.0


def score_masked_clip(path: Path, scene: SyntheticScene, solid_y: int = SOLID_Y) -> ClipReport:
    """Decode a masked clip made from `scene` and compare every frame with the clear render.

    `solid_y`: the luma of the masking tool's solid fill (vcam's by default; another tool's,
    such as deface's black, to compare on equal terms)."""
    report = ClipReport()
    runs: dict[str, int] = {}
    over: list[float] = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            rgb, truth, owners = scene.render_with_owners(index)
            clear_y = _luma(av.VideoFrame.from_ndarray(rgb, format="rgb24"))
            out_y = _luma(frame)
            exposed_now: set[str] = set()

            def visible(gt: GroundTruth, owners: np.ndarray | None = owners) -> np.ndarray | None:
                return None if owners is None else owners == scene.walker_number(gt.identity)

            for fc in face_coverage(out_y, clear_y, truth, visible, solid_y):
                report.faces.append(fc)
                report.identities.add(fc.truth.identity)
                report.total_by_band[fc.band] = report.total_by_band.get(fc.band, 0) + 1
                if fc.leaked:
                    report.leaked_by_band[fc.band] = report.leaked_by_band.get(fc.band, 0) + 1
                    exposed_now.add(fc.truth.identity)
            for ident in report.identities:
                runs[ident] = runs.get(ident, 0) + 1 if ident in exposed_now else 0
                report.longest_exposed_run = max(report.longest_exposed_run, runs[ident])
            report.exposed_identities |= exposed_now
            over.append(over_masked_share(out_y, clear_y, truth, solid_y))
            report.frames += 1
    report.over_masked = float(np.mean(over)) if over else 0.0
    return report


def _luma(frame: av.VideoFrame) -> np.ndarray:
    yuv = frame.reformat(format="yuv420p")
    plane = yuv.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width].copy()
