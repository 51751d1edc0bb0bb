"""Multi-object tracker with stable ids, and the mask regions it implies for each frame.

Detections arrive for some frames only (every Nth, or whenever the detector was free); the
tracker keeps each object's recent observations so that, for any frame, it can say where the
object was, is predicted to be (hold after the last detection), or is about to appear
(look-ahead before the first one). Regions are widened by a margin and by the motion
uncertainty, so fast or briefly missed faces stay covered.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from vcam.media.types import Box, ObjectClass, Track

# A detection only joins a track whose predicted box it overlaps this much, or whose centre
# lies within this many box sizes, growing with the square root of the frames since the track was
# last seen (small faces move more than their width between sparse detections).
_MIN_IOU = 0.1
_MAX_CENTRE_DIST = 1.5
_MAX_SIZE_RATIO = 2.5
_VELOCITY_SMOOTHING = 0.6  # weight of the newest velocity estimate
_HISTORY = 64  # observations kept per track; enough for any look-ahead + hold window


@dataclass(frozen=True, slots=True)
class PixelDetection:
    """A detection already scaled to frame pixels."""

    box: Box
    score: float
    cls: ObjectClass


@dataclass(slots=True)
class _Observation:
    index: int
    box: Box


@dataclass(slots=True)
class _TrackState:
    track_id: int
    cls: ObjectClass
    score: float
    history: deque[_Observation] = field(default_factory=lambda: deque(maxlen=_HISTORY))
    vx: float = 0.0  # centre velocity, pixels per frame
    vy: float = 0.0
    hits: int = 0

    @property
    def last(self) -> _Observation:
        return self.history[-1]

    def predict(self, index: int) -> Box:
        dt = index - self.last.index
        return self.last.box.shifted(self.vx * dt, self.vy * dt)


class Tracker:
    """Greedy IoU / centre-distance association per class; ids are never reused."""

    def __init__(self, hold_frames: int, margin: float) -> None:
        self.hold_frames = hold_frames
        self.margin = margin
        self._tracks: list[_TrackState] = []
        self._next_id = 1
        self._last_index = -1

    def reset(self) -> None:
        """Forget every object (reconnect, resolution change); ids keep counting up."""
        self._tracks.clear()
        self._last_index = -1

    @property
    def active(self) -> list[Track]:
        return [
            Track(t.track_id, t.cls, t.predict(self._last_index), t.score)
            for t in self._tracks
            if self._last_index - t.last.index <= self.hold_frames
        ]

    def update(self, index: int, detections: list[PixelDetection]) -> None:
        """Feed the detections of frame `index`; indexes must increase."""
        if index <= self._last_index:
            raise ValueError(f"tracker indexes must increase: {index} after {self._last_index}")
        self._last_index = index
        unmatched = list(range(len(detections)))
        candidates: list[tuple[float, int, int]] = []
        for ti, track in enumerate(self._tracks):
            predicted = track.predict(index)
            for di, det in enumerate(detections):
                if det.cls is track.cls:
                    cost = _match_cost(predicted, det.box, index - track.last.index)
                    if cost is not None:
                        candidates.append((cost, ti, di))
        candidates.sort()
        used_tracks: set[int] = set()
        for _cost, ti, di in candidates:
            if ti in used_tracks or di not in unmatched:
                continue
            used_tracks.add(ti)
            unmatched.remove(di)
            self._observe(self._tracks[ti], index, detections[di])
        for di in unmatched:
            det = detections[di]
            state = _TrackState(self._next_id, det.cls, det.score)
            self._next_id += 1
            self._observe(state, index, det)
            self._tracks.append(state)
        # Keep ended tracks long enough to cover frames still waiting in the look-ahead buffer.
        self._tracks = [t for t in self._tracks if index - t.last.index <= 2 * self.hold_frames]

    @staticmethod
    def _observe(track: _TrackState, index: int, det: PixelDetection) -> None:
        if track.history:
            prev = track.last
            dt = index - prev.index
            (px, py), (cx, cy) = prev.box.center, det.box.center
            vx, vy = (cx - px) / dt, (cy - py) / dt
            a = _VELOCITY_SMOOTHING if track.hits > 1 else 1.0
            track.vx = a * vx + (1 - a) * track.vx
            track.vy = a * vy + (1 - a) * track.vy
        track.history.append(_Observation(index, det.box))
        track.score = det.score
        track.hits += 1

    def regions(
        self,
        index: int,
        width: int,
        height: int,
        lookahead: int,
        classes: frozenset[ObjectClass],
        person_heads: bool = False,
    ) -> tuple[list[Box], list[Track]]:
        """Mask regions (frame pixels, widened, clamped) and every track for frame `index`.

        Covers an object from `lookahead` frames before its first detection to `hold_frames`
        after its last; between two observations the box is interpolated, and every region is
        the union of the boxes it could occupy, widened by the margin. Objects of `classes` are
        masked whole; with `person_heads`, a person not masked whole still has its head masked
        (profiles and tiny faces that the face detector misses).
        """
        out_regions: list[Box] = []
        out_tracks: list[Track] = []
        for t in self._tracks:
            box = self._box_at(t, index, lookahead)
            if box is None:
                continue
            out_tracks.append(Track(t.track_id, t.cls, box.clamped(width, height), t.score))
            if t.cls in classes:
                target = box
            elif person_heads and t.cls is ObjectClass.PERSON:
                target = head_of(box)
            else:
                continue
            widened = target.expanded(
                self.margin * target.width,
                self.margin * target.height,
                self.margin * target.width,
                self.margin * target.height,
            ).clamped(width, height)
            if widened.area > 0:
                out_regions.append(widened)
        return out_regions, out_tracks

    def _box_at(self, t: _TrackState, index: int, lookahead: int) -> Box | None:
        before: _Observation | None = None
        after: _Observation | None = None
        for obs in t.history:
            if obs.index <= index:
                before = obs
            else:
                after = obs
                break
        if before is not None and after is not None:
            f = (index - before.index) / (after.index - before.index)
            interp = _lerp(before.box, after.box, f)
            # Both ends widen the interpolation: motion between detections need not be linear.
            return interp.union(_lerp(before.box, after.box, min(1.0, f + 0.5))).union(
                _lerp(before.box, after.box, max(0.0, f - 0.5))
            )
        if before is not None:
            dt = index - before.index
            if dt > self.hold_frames:
                return None
            return before.box.union(before.box.shifted(t.vx * dt, t.vy * dt))
        if after is not None:
            dt = after.index - index
            if dt > lookahead:
                return None
            return after.box.union(after.box.shifted(-t.vx * dt, -t.vy * dt))
        return None


def head_of(person: Box) -> Box:
    """Where the head of a person box is: its top, about a head tall.

    A standing body is ~7 heads tall (head ~ 0.22 of the box with the margin for hair and
    tilt); a head-and-shoulders box cut by the frame is about twice as wide as its head.
    """
    h = min(person.height, max(0.22 * person.height, 0.45 * person.width))
    inset = 0.15 * person.width if person.width < 0.6 * person.height else 0.0
    return Box(person.x1 + inset, person.y1, person.x2 - inset, person.y1 + h)


def _lerp(a: Box, b: Box, f: float) -> Box:
    return Box(
        a.x1 + (b.x1 - a.x1) * f,
        a.y1 + (b.y1 - a.y1) * f,
        a.x2 + (b.x2 - a.x2) * f,
        a.y2 + (b.y2 - a.y2) * f,
    )


def _match_cost(predicted: Box, det: Box, frames: int) -> float | None:
    """Lower is better; None when the detection cannot belong to the track."""
    if predicted.area <= 0 or det.area <= 0:
        return None
    ratio = det.area / predicted.area
    if not (1 / _MAX_SIZE_RATIO**2 <= ratio <= _MAX_SIZE_RATIO**2):
        return None
    iou = predicted.iou(det)
    if iou >= _MIN_IOU:
        return 1.0 - iou
    (px, py), (dx, dy) = predicted.center, det.center
    size = max(predicted.width, predicted.height, det.width, det.height)
    dist = ((px - dx) ** 2 + (py - dy) ** 2) ** 0.5 / size
    if dist <= _MAX_CENTRE_DIST * max(1, frames) ** 0.5:
        return 1.0 + dist  # always ranks behind any overlap match
    return None
