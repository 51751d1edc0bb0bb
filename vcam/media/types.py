"""Dataclasses that travel between pipeline stages (never bare tuples)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import av


class ObjectClass(enum.StrEnum):
    FACE = "face"
    PERSON = "person"


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box, x1 <= x2 and y1 <= y2, in whatever unit its owner states."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)

    def scaled(self, sx: float, sy: float) -> Box:
        return Box(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy)

    def shifted(self, dx: float, dy: float) -> Box:
        return Box(self.x1 + dx, self.y1 + dy, self.x2 + dx, self.y2 + dy)

    def expanded(self, left: float, top: float, right: float, bottom: float) -> Box:
        return Box(self.x1 - left, self.y1 - top, self.x2 + right, self.y2 + bottom)

    def union(self, other: Box) -> Box:
        return Box(
            min(self.x1, other.x1),
            min(self.y1, other.y1),
            max(self.x2, other.x2),
            max(self.y2, other.y2),
        )

    def intersection(self, other: Box) -> float:
        w = min(self.x2, other.x2) - max(self.x1, other.x1)
        h = min(self.y2, other.y2) - max(self.y1, other.y1)
        return w * h if w > 0 and h > 0 else 0.0

    def iou(self, other: Box) -> float:
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def clamped(self, width: float, height: float) -> Box:
        """Clamp to [0, width] x [0, height]; a box cut by the edge keeps its visible part."""
        return Box(
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
            min(max(self.x2, 0.0), width),
            min(max(self.y2, 0.0), height),
        )

    def to_pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """Integer pixel bounds (floor of the start, ceil of the end), clamped to the frame."""
        import math

        c = self.clamped(width, height)
        return (math.floor(c.x1), math.floor(c.y1), math.ceil(c.x2), math.ceil(c.y2))


@dataclass(frozen=True, slots=True)
class Detection:
    """One detector hit. `box` is normalised to the detector's input image: 0..1 on both axes."""

    box: Box
    score: float
    cls: ObjectClass


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """An exactly known object in a synthetic frame, in frame pixels."""

    box: Box
    cls: ObjectClass
    identity: str


@dataclass(slots=True)
class SourceFrame:
    """A decoded clear frame, as it leaves a source. Never leaves the process."""

    frame: av.VideoFrame
    index: int  # counts every frame the source produced, across reconnects
    pts_us: int  # monotonic microseconds, never goes back, even across reconnects
    epoch: int  # bumps on (re)connect and on resolution change: the gate starts closed
    wall_time: float = 0.0  # time.monotonic() when the frame was produced
    truth: tuple[GroundTruth, ...] = ()

    @property
    def width(self) -> int:
        return int(self.frame.width)

    @property
    def height(self) -> int:
        return int(self.frame.height)


@dataclass(frozen=True, slots=True)
class Track:
    """A tracked object, boxes in frame pixels."""

    track_id: int
    cls: ObjectClass
    box: Box
    score: float


@dataclass(frozen=True, slots=True)
class Verdict:
    """The gate's decision for one frame: which regions to mask, or the whole frame."""

    index: int
    regions: tuple[Box, ...]  # frame pixels, already widened and clamped
    tracks: tuple[Track, ...]
    fully_masked: bool
    reason: str = ""  # why it failed closed ("start", "detector-failed", "late", ...)


@dataclass(slots=True)
class MaskedFrame:
    """A frame after masking: the only kind of frame any output may read."""

    frame: av.VideoFrame
    index: int
    pts_us: int
    verdict: Verdict
    truth: tuple[GroundTruth, ...] = ()


@dataclass(frozen=True, slots=True)
class EncodedUnit:
    """One encoded access unit (H.264 Annex-B), shared read-only by every subscriber."""

    stream: str
    data: bytes
    pts_us: int
    keyframe: bool
    width: int
    height: int
    index: int = 0
    nal_types: tuple[int, ...] = field(default=())


@dataclass(frozen=True)
class SourceInfo:
    """The video source: its size is 0x0 until a network source delivered its first frame."""

    width: int
    height: int
    fps: float
