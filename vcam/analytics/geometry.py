"""Plane geometry for analytics rules, in normalised picture coordinates (0..1, y down).

The convention is `vcam.privacy.zones.Point`'s; point-in-polygon is that module's. Sides of a
line are the ONVIF ones: walking along a segment from its first point to its second, "left" is
the walker's left hand as seen on the picture. With y pointing down, that is a negative cross
product (a line drawn downwards has its left side on the right of the picture).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from vcam.privacy.zones import Point, point_in_polygon

__all__ = [
    "Point",
    "distance_to_polygon",
    "point_in_polygon",
    "polygon_area",
    "segment_distance",
    "segments_intersect",
    "side_of",
]


def side_of(a: Point, b: Point, p: Point) -> float:
    """Signed distance of `p` from the infinite line a->b: < 0 on its left, > 0 on its right."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length = math.hypot(dx, dy)
    if length == 0.0:
        return 0.0
    return (dx * (p[1] - a[1]) - dy * (p[0] - a[0])) / length


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def segments_intersect(p: Point, q: Point, a: Point, b: Point) -> bool:
    """Whether segment p-q meets segment a-b (touching counts; collinear overlap does not)."""
    d1, d2 = _cross(a, b, p), _cross(a, b, q)
    d3, d4 = _cross(p, q, a), _cross(p, q, b)
    return (d1 * d2 <= 0.0) and (d3 * d4 <= 0.0) and not (d1 == 0.0 and d2 == 0.0)


def segment_distance(p: Point, a: Point, b: Point) -> float:
    """Euclidean distance from `p` to the segment a-b."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0.0 else ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length2
    t = min(1.0, max(0.0, t))
    return math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy))


def distance_to_polygon(p: Point, polygon: Sequence[Point]) -> float:
    """Distance from `p` to the nearest edge of `polygon` (inside or outside alike)."""
    prev = polygon[-1]
    best = math.inf
    for cur in polygon:
        best = min(best, segment_distance(p, prev, cur))
        prev = cur
    return best


def polygon_area(polygon: Sequence[Point]) -> float:
    """Unsigned area (shoelace); 0 for a degenerate polygon."""
    total = 0.0
    prev = polygon[-1]
    for cur in polygon:
        total += prev[0] * cur[1] - cur[0] * prev[1]
        prev = cur
    return abs(total) / 2.0
