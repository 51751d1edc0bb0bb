"""Static privacy zones: normalised polygons rasterised once per frame size.

A zone is a tuple of (x, y) points in 0..1 (ONVIF Media2 masks, `privacy.zones` in the config).
The raster is cached per (zones, width, height), so the per-frame cost is a dictionary look-up.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

Point = tuple[float, float]
Polygon = tuple[Point, ...]

_SHIFT = 4  # fillPoly sub-pixel bits: keeps fractional vertices instead of truncating them


@dataclass(frozen=True, eq=False)
class ZoneMask:
    """A rasterised zone set at one frame size (read-only arrays, shared through the cache)."""

    luma: NDArray[np.bool_]  # height x width
    chroma: NDArray[np.bool_]  # ceil(height/2) x ceil(width/2): any luma pixel of each 2x2 cell
    bbox: tuple[int, int, int, int]  # luma x0, y0, x1, y1 (exclusive) around the true pixels

    @property
    def width(self) -> int:
        return int(self.luma.shape[1])

    @property
    def height(self) -> int:
        return int(self.luma.shape[0])

    @classmethod
    def from_mask(cls, mask: NDArray[np.bool_]) -> ZoneMask | None:
        """Wrap a bool luma-resolution mask; None when nothing is masked."""
        luma = np.ascontiguousarray(mask, dtype=np.bool_)
        if luma.ndim != 2:
            raise ValueError("a zone mask is a 2-D array")
        rows = np.flatnonzero(luma.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(luma.any(axis=0))
        bbox = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        h, w = luma.shape
        # Round outward: a chroma sample is masked if any of its luma pixels is.
        padded = np.zeros((h + (h & 1), w + (w & 1)), np.bool_)
        padded[:h, :w] = luma
        chroma = np.asarray(
            padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).any(axis=(1, 3))
        )
        luma.flags.writeable = False
        chroma.flags.writeable = False
        return cls(luma=luma, chroma=chroma, bbox=bbox)


def zone_mask(zones: Sequence[Sequence[Point]], width: int, height: int) -> ZoneMask | None:
    """The zones rasterised at width x height (cached); None when there are no zones."""
    key = tuple(tuple((float(x), float(y)) for x, y in zone) for zone in zones)
    return _zone_mask_cached(key, int(width), int(height))


@functools.lru_cache(maxsize=32)
def _zone_mask_cached(zones: tuple[Polygon, ...], width: int, height: int) -> ZoneMask | None:
    if not zones:
        return None
    if width <= 0 or height <= 0:
        raise ValueError(f"bad frame size {width}x{height}")
    raster = np.zeros((height, width), np.uint8)
    scale = 1 << _SHIFT
    polys = []
    for zone in zones:
        if len(zone) < 3:
            raise ValueError("a zone needs at least 3 points")
        pts = np.array([(x * width * scale, y * height * scale) for x, y in zone], np.float64)
        polys.append(np.round(pts).astype(np.int32))
    cv2.fillPoly(raster, polys, 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return ZoneMask.from_mask(raster.astype(np.bool_))


def point_in_polygon(x: float, y: float, polygon: Sequence[Point]) -> bool:
    """Whether (x, y) lies inside `polygon` (even-odd rule, any consistent unit, e.g. 0..1).

    Points exactly on an edge may land on either side; analytics treat zone borders as fuzzy.
    """
    inside = False
    n = len(polygon)
    if n < 3:
        return False
    px, py = polygon[-1]
    for cx, cy in polygon:
        # The edge (px,py)-(cx,cy) crosses the horizontal ray going right from (x, y).
        if (cy > y) != (py > y):
            x_cross = px + (y - py) * (cx - px) / (cy - py)
            if x < x_cross:
                inside = not inside
        px, py = cx, cy
    return inside


@dataclass(frozen=True)
class StaticMask:
    """One privacy mask a client set (ONVIF Media2 CreateMask, the web page): its own style."""

    polygon: tuple[Point, ...]
    style: str  # a vcam.privacy.masks style
    fill: tuple[int, int, int] | None = None  # Y, U, V of a solid (Color) mask
