"""Analytics objects: the tracker's boxes, re-associated for identity.

The privacy tracker favours masking over identity: it associates generously (so a mask never
lags), which in a crowd switches track ids between people; when it loses a person it starts a
new track while the old one is still reported (predicted) for its hold frames. Counted by track
id, one person becomes two and two people swap. So this layer associates boxes to analytics
objects by motion alone (track ids only break ties):

- each object continues with the box nearest its predicted position, within an allowance of
  its size that grows with the frames it was not seen: a person lost and found again nearby
  within `reid_frames` frames is the same object, a track jumping to someone else is not;
- objects seen more recently choose first (a matching cascade by frames unseen): the grown
  allowance of a lost object must not take a box from the object that was on it a frame ago.
  Compared by distance over allowance alone, a lost object reached further than a present one,
  took its neighbour's box (across a line: a crossing nobody made), left the neighbour lost,
  which then took the next box: in a crowd the overcount grew with `reid_frames`;
- an unmatched box overlapping a matched one is a duplicate (a held prediction next to the
  fresh detection of the same person) and is ignored;
- any other box starts a new object.

Frames are counted in "ticks": only frames that carried tracking information (not fail-closed
ones), so a closed gate neither ages objects nor breaks their re-identification.
Positions are normalised (0..1, y down): a person's feet (box bottom-centre), a face's centre.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from vcam.media.types import Box, ObjectClass, Track

# A lost object is found again within this many of its sizes (box heights) of its predicted
# position, the allowance growing with the frames it was lost (prediction error grows).
_REID_DISTANCE = 0.35
_REID_GROWTH_PER_TICK = 0.03
_REID_SIZE_RATIO = 2.0  # box heights may differ by this factor at most
_DUPLICATE_IOU = 0.4  # an unmatched track overlapping a matched one this much is a duplicate
_SAME_TRACK_BONUS = 0.2  # a tie-breaker: the object's own track among near candidates
_VELOCITY_SMOOTHING = 0.5
_CASCADE_STEP = 2.0  # cost per frame unseen: more than any cost within one age (-0.2..1)


@dataclass(slots=True)
class AnalyticsObject:
    oid: int  # vcam's own id (not a track id: a track may switch people)
    cls: ObjectClass
    x: float  # the reference point, normalised
    y: float
    box: Box  # normalised
    first_pts_us: int
    last_pts_us: int
    last_tick: int
    track_id: int  # the track it follows now
    vx: float = 0.0  # per tick, normalised
    vy: float = 0.0

    @property
    def point(self) -> tuple[float, float]:
        return (self.x, self.y)

    @property
    def size(self) -> float:
        return max(self.box.height, 1e-3)


@dataclass(frozen=True)
class ObjectUpdate:
    seen: list[AnalyticsObject]  # observed in this frame
    expired: list[AnalyticsObject]  # lost for longer than the re-identification window
    relinked: int  # objects that continued with another track than before


@dataclass(frozen=True, slots=True)
class _Obs:
    track: Track
    box: Box  # normalised
    x: float
    y: float


class ObjectLayer:
    """Tracks in, analytics objects out; one instance per camera, gate thread only."""

    def __init__(self, reid_frames: int) -> None:
        self.reid_frames = reid_frames
        self.objects: dict[int, AnalyticsObject] = {}
        self._next_oid = 1
        self.relinks = 0  # tracks that continued an object of another track (total)
        self.duplicates = 0  # tracks ignored as a second track of a seen object (total)

    def update(
        self, tick: int, pts_us: int, tracks: Iterable[Track], width: int, height: int
    ) -> ObjectUpdate:
        obs = [_observe(t, width, height) for t in tracks]
        pairs = self._pairs(obs, tick, width / height)
        pairs.sort()
        chosen: dict[int, _Obs] = {}
        used: set[int] = set()
        relinked = 0
        for _cost, j, oid in pairs:
            if j in used or oid in chosen:
                continue
            used.add(j)
            chosen[oid] = obs[j]
            relinked += obs[j].track.track_id != self.objects[oid].track_id
        seen = []
        for oid, o in chosen.items():
            obj = self.objects[oid]
            _move(obj, o, tick, pts_us)
            seen.append(obj)
        for j, o in enumerate(obs):
            if j in used:
                continue
            if any(c.box.iou(o.box) >= _DUPLICATE_IOU for c in chosen.values()):
                self.duplicates += 1  # the held prediction of a track that broke, or its successor
                continue
            obj = AnalyticsObject(
                self._next_oid, o.track.cls, o.x, o.y, o.box, pts_us, pts_us, tick, o.track.track_id
            )
            self._next_oid += 1
            self.objects[obj.oid] = obj
            seen.append(obj)
        expired = [obj for obj in self.objects.values() if tick - obj.last_tick > self.reid_frames]
        for obj in expired:
            del self.objects[obj.oid]
        self.relinks += relinked
        return ObjectUpdate(seen, expired, relinked)

    def _pairs(self, obs: list[_Obs], tick: int, aspect: float) -> list[tuple[float, int, int]]:
        """(cost, observation index, oid) of every box that may continue an object (lower cost
        is better). A box must be near where the object is predicted to be, the allowance (in
        sizes) growing with the frames since it was seen: a track that jumped (the tracker
        switched it to another person) is not followed. The object's own track only breaks
        ties. Distances are in pixels over box heights: in normalised units a step along x would
        count `height / width` of the same step along y, and a 16:9 picture would let an object
        jump 1.8 times as far sideways (onto a neighbour across a line) as the allowance says.
        Vectorised: 20 boxes x 20 objects every frame."""
        objs = list(self.objects.values())
        if not obs or not objs:
            return []
        ox = np.array([(o.x, o.y, o.vx, o.vy, o.size, o.last_tick) for o in objs])
        bx = np.array([(b.x, b.y, max(b.box.height, 1e-3)) for b in obs])
        gap = tick - ox[:, 5]
        px, py = ox[:, 0] + ox[:, 2] * gap, ox[:, 1] + ox[:, 3] * gap
        size = np.maximum(ox[None, :, 4], bx[:, None, 2])
        # In picture heights on both axes (x is normalised to the width), so in box heights.
        dx = (bx[:, None, 0] - px[None, :]) * aspect
        dist = np.hypot(dx, bx[:, None, 1] - py[None, :]) / size
        allowed = _REID_DISTANCE + _REID_GROWTH_PER_TICK * (gap - 1)
        ratio = bx[:, None, 2] / ox[None, :, 4]
        same_cls = np.array([[b.track.cls is o.cls for o in objs] for b in obs])
        ok = (
            same_cls
            & ((gap > 0) & (gap <= self.reid_frames + 1))[None, :]
            & (dist <= allowed[None, :])
            & (ratio >= 1 / _REID_SIZE_RATIO)
            & (ratio <= _REID_SIZE_RATIO)
        )
        own = np.array([[b.track.track_id == o.track_id for o in objs] for b in obs])
        # Within one age, nearest (relative to the allowance) first, the own track a tie-breaker
        # (cost -0.2..1); across ages, the most recently seen first (the cascade).
        cost = dist / allowed[None, :] - _SAME_TRACK_BONUS * own + _CASCADE_STEP * gap[None, :]
        return [
            (float(cost[j, i]), int(j), objs[i].oid) for j, i in zip(*np.nonzero(ok), strict=True)
        ]


def _observe(t: Track, width: int, height: int) -> _Obs:
    b = t.box
    box = Box(b.x1 / width, b.y1 / height, b.x2 / width, b.y2 / height)
    if t.cls is ObjectClass.PERSON:
        x, y = (box.x1 + box.x2) / 2.0, box.y2  # the feet: where a person stands
    else:
        x, y = box.center
    return _Obs(t, box, x, y)


def _move(obj: AnalyticsObject, o: _Obs, tick: int, pts_us: int) -> None:
    gap = tick - obj.last_tick
    if gap > 0:
        vx, vy = (o.x - obj.x) / gap, (o.y - obj.y) / gap
        a = _VELOCITY_SMOOTHING
        obj.vx, obj.vy = a * vx + (1 - a) * obj.vx, a * vy + (1 - a) * obj.vy
    obj.x, obj.y, obj.box = o.x, o.y, o.box
    obj.last_tick, obj.last_pts_us, obj.track_id = tick, pts_us, o.track.track_id
