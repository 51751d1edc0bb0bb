"""What each rule remembers between frames, and what it reports.

A runtime gets every informative frame's objects (`Step`) and answers with the events of that
frame (`step`) and its property state (`state`, None for event rules); the engine turns these
into messages. Crossings and field membership use a hysteresis band a fraction of the object's
size wide around lines and borders, so feet jittering on a line neither count nor flap.
"""

from __future__ import annotations

import itertools
import statistics
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from vcam.analytics.geometry import (
    Point,
    distance_to_polygon,
    point_in_polygon,
    segment_distance,
    segments_intersect,
    side_of,
)
from vcam.analytics.metadata import CLASS_TYPES
from vcam.analytics.objects import AnalyticsObject
from vcam.analytics.rules import (
    Direction,
    FieldDetector,
    LineCounting,
    LineDetector,
    LoiteringDetector,
    OccupancyCounting,
    QueueMonitor,
    Rule,
)
from vcam.analytics.topics import (
    COUNTER,
    LINE_CROSSED,
    LOITERING,
    OBJECTS_INSIDE,
    OCCUPANCY_COUNTER,
    QUEUE,
    string_list,
    xs_bool,
    xs_datetime,
    xs_duration,
)
from vcam.events.message import Items, TopicInfo

_BAND = 0.05  # hysteresis half-width, in object sizes (box heights) ...
_MIN_BAND = 0.002  # ... and at least this, normalised
_REPEAT_TICKS = 5  # a second crossing the same way this soon is the next segment of a polyline
_WAITS_KEPT = 20  # the average wait is over the last this many people who left the queue


@dataclass(frozen=True)
class Step:
    """One informative frame, as the rules see it."""

    tick: int
    pts_us: int
    utc: datetime
    local: datetime  # aware local time, for reset times of day
    seen: Sequence[AnalyticsObject]
    expired: Sequence[AnalyticsObject]
    alive: Mapping[int, AnalyticsObject]


@dataclass(frozen=True)
class RuleStatus:
    """One rule's numbers for a status page."""

    name: str
    kind: str
    count: int | None = None  # Count of a counting rule
    entered: int = 0  # crossings left to right ("in")
    exited: int = 0  # crossings right to left ("out")
    inside: int = 0  # objects inside the field / queue
    loitering: int = 0
    average_wait_s: float | None = None


@dataclass(frozen=True)
class Counts:
    """What a counting rule's Count depends on, kept across restarts (vcam.analytics.counters):
    crossings each way and the barrier occupancy since `since`, the last reset (aware local
    time). A field occupancy is who is inside now: nothing of it outlives the run."""

    entered: int = 0
    exited: int = 0
    level: int = 0  # OccupancyCounting across a barrier: in - out, floored at zero
    since: datetime | None = None


def _band(obj: AnalyticsObject) -> float:
    return max(_MIN_BAND, _BAND * obj.size)


class _Crossings:
    """Crossings of one polyline by many objects. Each object keeps, per segment, the last
    point where it was clearly on one side; a crossing is a change of side whose path from
    that point meets the segment (walking round the end of a line is not crossing it)."""

    def __init__(self, points: Sequence[Point]) -> None:
        self.segments = list(itertools.pairwise(points))
        self._anchors: dict[int, list[tuple[int, Point] | None]] = {}
        self._last: dict[int, tuple[int, int]] = {}  # oid -> (direction, tick)

    def update(self, obj: AnalyticsObject, tick: int) -> int:
        """+1: crossed to the right side (Direction Right), -1: to the left, 0: no crossing."""
        anchors = self._anchors.setdefault(obj.oid, [None] * len(self.segments))
        band, p = _band(obj), obj.point
        found = 0
        for i, (a, b) in enumerate(self.segments):
            d = side_of(a, b, p)
            if abs(d) < band:
                continue
            side = 1 if d > 0 else -1
            anchor = anchors[i]
            if (
                not found
                and anchor is not None
                and anchor[0] != side
                and segments_intersect(anchor[1], p, a, b)
            ):
                found = side
            anchors[i] = (side, p)
        if found:
            last = self._last.get(obj.oid)
            if last is not None and last[0] == found and tick - last[1] <= _REPEAT_TICKS:
                return 0
            self._last[obj.oid] = (found, tick)
        return found

    def forget(self, oid: int) -> None:
        self._anchors.pop(oid, None)
        self._last.pop(oid, None)


def _on_picture_edge(a: Point, b: Point) -> bool:
    return (a[0] == b[0] and a[0] in (0.0, 1.0)) or (a[1] == b[1] and a[1] in (0.0, 1.0))


class _Membership:
    """Which objects are inside a polygon (everything, without one)."""

    def __init__(self, polygon: Sequence[Point]) -> None:
        self.polygon = tuple(polygon)
        # The border band applies to edges with an outside beyond them, not to edges along the
        # picture's border: feet there (a person cut by the bottom edge, whose box is clamped
        # to the frame) would never be clear of the band, so never enter nor leave.
        self.inner_edges = [
            (a, b)
            for a, b in zip((self.polygon[-1:] + self.polygon[:-1]), self.polygon, strict=True)
            if not _on_picture_edge(a, b)
        ]
        self.inside: dict[int, bool] = {}

    def update(self, obj: AnalyticsObject) -> tuple[bool, bool]:
        """(inside before, inside now) of `obj`."""
        before = self.inside.get(obj.oid)
        # On the border counts as inside (feet on the picture's edge, on a field reaching it).
        now = not self.polygon or (
            point_in_polygon(obj.x, obj.y, self.polygon)
            or distance_to_polygon(obj.point, self.polygon) < 1e-9
        )
        if (
            before is not None
            and now != before
            and any(segment_distance(obj.point, a, b) < _band(obj) for a, b in self.inner_edges)
        ):
            now = before  # inside the border band: no change yet
        self.inside[obj.oid] = now
        return bool(before), now

    def forget(self, oid: int) -> bool:
        """Drops `oid`; whether it was inside."""
        return self.inside.pop(oid, False)

    def members(self) -> list[int]:
        return sorted(oid for oid, inside in self.inside.items() if inside)


class RuleRuntime:
    topic: TopicInfo

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.classes = rule.object_classes
        self.report_interval_us = 0

    def applies(self, obj: AnalyticsObject) -> bool:
        return obj.cls in self.classes

    def step(self, s: Step) -> list[Items]:
        """The events of this frame (event topics only)."""
        return []

    def state(self, utc: datetime) -> Items | None:
        """The current property data (None for an event rule)."""
        return None

    def status(self) -> RuleStatus:
        return RuleStatus(self.rule.name, self.rule.KIND)

    def reset(self, at: datetime) -> None:
        """Counters back to zero (counting rules); `at`: when, aware local time."""

    def counts(self) -> Counts | None:
        """What a restart keeps (counting rules; None for the others)."""
        return None

    def restore(self, counts: Counts) -> None:
        """Go on from `counts` kept by an earlier run (counting rules)."""


class LineDetectorRuntime(RuleRuntime):
    topic = LINE_CROSSED

    def __init__(self, rule: LineDetector) -> None:
        super().__init__(rule)
        self.crossings = _Crossings(rule.segments)
        self.wanted = {Direction.ANY: (1, -1), Direction.RIGHT: (1,), Direction.LEFT: (-1,)}[
            rule.direction
        ]
        self.total = 0

    def step(self, s: Step) -> list[Items]:
        events: list[Items] = []
        for obj in s.seen:
            if self.applies(obj) and self.crossings.update(obj, s.tick) in self.wanted:
                self.total += 1
                events.append((("ObjectId", str(obj.oid)), ("ClassTypes", CLASS_TYPES[obj.cls])))
        for obj in s.expired:
            self.crossings.forget(obj.oid)
        return events

    def status(self) -> RuleStatus:
        return RuleStatus(self.rule.name, self.rule.KIND, count=self.total)


class _CountingRuntime(RuleRuntime):
    """Counts with reset times of day and a report interval (ONVIF ResetTime and
    ReportTimeInterval)."""

    def __init__(self, rule: LineCounting | OccupancyCounting) -> None:
        super().__init__(rule)
        self.report_interval_us = round(rule.report_interval_s * 1e6)
        self.reset_times = rule.reset_clock_times()
        self._next_reset: datetime | None = None
        self.entered = 0
        self.exited = 0
        self.since: datetime | None = None  # the last reset; the engine sets the first

    def _maybe_reset(self, local: datetime) -> None:
        if not self.reset_times:
            return
        if self._next_reset is not None and local >= self._next_reset:
            self.reset(self._next_reset)
        if self._next_reset is None or local >= self._next_reset:
            self._next_reset = next_reset(local, self.reset_times)

    def reset(self, at: datetime) -> None:
        self.entered = self.exited = 0
        self.since = at

    def counts(self) -> Counts:
        return Counts(self.entered, self.exited, 0, self.since)

    def restore(self, counts: Counts) -> None:
        self.entered, self.exited, self.since = counts.entered, counts.exited, counts.since


def next_reset(after: datetime, times: Sequence[time]) -> datetime:
    """The first of the daily `times` (datetime.time) strictly after `after`."""
    best: datetime | None = None
    for t in times:
        cand = after.replace(hour=t.hour, minute=t.minute, second=t.second, microsecond=0)
        if cand <= after:
            cand += timedelta(days=1)
        best = cand if best is None or cand < best else best
    assert best is not None
    return best


class LineCountingRuntime(_CountingRuntime):
    topic = COUNTER

    def __init__(self, rule: LineCounting) -> None:
        super().__init__(rule)
        self.direction = rule.direction
        self.crossings = _Crossings(rule.segments)

    def step(self, s: Step) -> list[Items]:
        self._maybe_reset(s.local)
        for obj in s.seen:
            if self.applies(obj):
                d = self.crossings.update(obj, s.tick)
                self.entered += d > 0
                self.exited += d < 0
        for obj in s.expired:
            self.crossings.forget(obj.oid)
        return []

    @property
    def count(self) -> int:
        if self.direction is Direction.RIGHT:
            return self.entered
        if self.direction is Direction.LEFT:
            return self.exited
        return self.entered + self.exited

    def state(self, utc: datetime) -> Items:
        return (("Count", str(self.count)),)

    def status(self) -> RuleStatus:
        return RuleStatus(self.rule.name, self.rule.KIND, self.count, self.entered, self.exited)


class OccupancyRuntime(_CountingRuntime):
    """Objects inside the field, or barrier crossings in minus out (never below zero)."""

    topic = OCCUPANCY_COUNTER

    def __init__(self, rule: OccupancyCounting) -> None:
        super().__init__(rule)
        self.membership = _Membership(rule.field) if rule.field else None
        self.crossings = _Crossings(rule.segments) if rule.segments else None
        self.level = 0  # barrier mode: in - out, floored at zero

    def step(self, s: Step) -> list[Items]:
        self._maybe_reset(s.local)
        for obj in s.seen:
            if not self.applies(obj):
                continue
            if self.membership is not None:
                self.membership.update(obj)
            elif self.crossings is not None:
                d = self.crossings.update(obj, s.tick)
                self.entered += d > 0
                self.exited += d < 0
                self.level = max(0, self.level + d)
        for obj in s.expired:
            if self.membership is not None:
                self.membership.forget(obj.oid)
            if self.crossings is not None:
                self.crossings.forget(obj.oid)
        return []

    def reset(self, at: datetime) -> None:
        super().reset(at)
        self.level = 0

    def counts(self) -> Counts:
        return Counts(self.entered, self.exited, self.level, self.since)

    def restore(self, counts: Counts) -> None:
        super().restore(counts)
        self.level = counts.level

    @property
    def count(self) -> int:
        if self.membership is not None:
            return len(self.membership.members())
        return self.level

    def state(self, utc: datetime) -> Items:
        return (("Count", str(self.count)),)

    def status(self) -> RuleStatus:
        inside = self.count if self.membership is not None else 0
        return RuleStatus(
            self.rule.name, self.rule.KIND, self.count, self.entered, self.exited, inside
        )


class FieldRuntime(RuleRuntime):
    topic = OBJECTS_INSIDE

    def __init__(self, rule: FieldDetector) -> None:
        super().__init__(rule)
        self.membership = _Membership(rule.field)

    def step(self, s: Step) -> list[Items]:
        for obj in s.seen:
            if self.applies(obj):
                self.membership.update(obj)
        for obj in s.expired:
            self.membership.forget(obj.oid)
        return []

    def state(self, utc: datetime) -> Items:
        members = self.membership.members()
        return (("IsInside", xs_bool(bool(members))), ("ObjectId", string_list(members)))

    def status(self) -> RuleStatus:
        inside = len(self.membership.members())
        return RuleStatus(self.rule.name, self.rule.KIND, inside=inside)


class LoiteringRuntime(RuleRuntime):
    """Since: when the earliest current loiterer started loitering; with none, when the last
    stopped (or the rule started)."""

    topic = LOITERING

    def __init__(self, rule: LoiteringDetector) -> None:
        super().__init__(rule)
        self.membership = _Membership(rule.field)
        self.threshold_us = round(rule.time_threshold_s * 1e6)
        self.entered: dict[int, int] = {}  # oid -> pts_us it came inside
        self.since: dict[int, datetime] = {}  # oid -> when it started loitering
        self._idle_since: datetime | None = None

    def step(self, s: Step) -> list[Items]:
        for obj in s.seen:
            if not self.applies(obj):
                continue
            _before, inside = self.membership.update(obj)
            if inside:
                self.entered.setdefault(obj.oid, s.pts_us)
            else:
                self._drop(obj.oid, s.utc)
        for obj in s.expired:
            self.membership.forget(obj.oid)
            self._drop(obj.oid, s.utc)
        for oid, t0 in self.entered.items():
            if oid not in self.since and s.pts_us - t0 >= self.threshold_us:
                self.since[oid] = s.utc
        return []

    def _drop(self, oid: int, utc: datetime) -> None:
        self.entered.pop(oid, None)
        if self.since.pop(oid, None) is not None and not self.since:
            self._idle_since = utc

    def state(self, utc: datetime) -> Items:
        if self._idle_since is None:
            self._idle_since = utc
        since = min(self.since.values()) if self.since else self._idle_since
        return (
            ("IsLoitering", xs_bool(bool(self.since))),
            ("ObjectId", string_list(sorted(self.since))),
            ("Since", xs_datetime(since)),
        )

    def status(self) -> RuleStatus:
        inside = len(self.membership.members())
        return RuleStatus(self.rule.name, self.rule.KIND, inside=inside, loitering=len(self.since))


class QueueRuntime(RuleRuntime):
    """Length: objects inside now. Wait: from entering to leaving (or to being last seen, for
    one lost inside), for the people who stayed at least `min_wait_s`."""

    topic = QUEUE

    def __init__(self, rule: QueueMonitor) -> None:
        super().__init__(rule)
        self.membership = _Membership(rule.field)
        self.min_wait_us = round(rule.min_wait_s * 1e6)
        self.entered: dict[int, int] = {}
        self.waits: deque[float] = deque(maxlen=_WAITS_KEPT)
        self.served = 0

    def step(self, s: Step) -> list[Items]:
        for obj in s.seen:
            if not self.applies(obj):
                continue
            before, inside = self.membership.update(obj)
            if inside and not before:
                self.entered.setdefault(obj.oid, s.pts_us)
            elif before and not inside:
                self._left(obj.oid, s.pts_us)
        for obj in s.expired:
            if self.membership.forget(obj.oid):
                self._left(obj.oid, obj.last_pts_us)
        return []

    def _left(self, oid: int, pts_us: int) -> None:
        t0 = self.entered.pop(oid, None)
        if t0 is not None and pts_us - t0 >= self.min_wait_us:
            self.waits.append((pts_us - t0) / 1e6)
            self.served += 1

    @property
    def average_wait_s(self) -> float:
        return statistics.fmean(self.waits) if self.waits else 0.0

    def state(self, utc: datetime) -> Items:
        length = len(self.membership.members())
        return (("Count", str(length)), ("AverageWaitTime", xs_duration(self.average_wait_s)))

    def status(self) -> RuleStatus:
        inside = len(self.membership.members())
        avg = self.average_wait_s if self.waits else None
        return RuleStatus(self.rule.name, self.rule.KIND, inside=inside, average_wait_s=avg)


def make_runtime(rule: Rule) -> RuleRuntime:
    if isinstance(rule, LineDetector):
        return LineDetectorRuntime(rule)
    if isinstance(rule, LineCounting):
        return LineCountingRuntime(rule)
    if isinstance(rule, OccupancyCounting):
        return OccupancyRuntime(rule)
    if isinstance(rule, FieldDetector):
        return FieldRuntime(rule)
    if isinstance(rule, LoiteringDetector):
        return LoiteringRuntime(rule)
    return QueueRuntime(rule)
