"""Motion from frame differences of a small grey thumbnail of the masked picture.

Only masked frames are ever looked at (moving mosaics are motion too, and nothing here can see
more than any viewer). The state has hysteresis: it turns on after `on_frames` consecutive
frames with at least `threshold` of the thumbnail changed, and off after `off_s` without.
"""

from __future__ import annotations

import av
import cv2
import numpy as np
from numpy.typing import NDArray

from vcam.privacy.masks import plane_view

THUMB_WIDTH = 64
PIXEL_DELTA = 12  # luma levels a thumbnail pixel must change by to count as changed
_LUMA_FIRST = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuv444p", "nv12", "gray"})


def thumbnail(frame: av.VideoFrame, width: int = THUMB_WIDTH) -> NDArray[np.uint8]:
    """The picture's luma, area-averaged down to `width` pixels across (aspect kept)."""
    if frame.format.name not in _LUMA_FIRST:
        frame = frame.reformat(format="gray")
    luma = plane_view(frame.planes[0])
    h, w = luma.shape
    step = max(1, w // (2 * width))  # decimate first: the area filter then reads ~4x fewer
    small = np.ascontiguousarray(luma[::step, ::step])
    th = max(8, round(width * h / w))
    out = cv2.resize(small, (width, th), interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.GaussianBlur(out, (3, 3), 0), dtype=np.uint8)


class MotionDetector:
    def __init__(self, threshold: float, off_s: float, on_frames: int = 2) -> None:
        self.threshold = threshold
        self.off_us = round(off_s * 1e6)
        self.on_frames = on_frames
        self.state = False
        self.level = 0.0  # share of the thumbnail changed in the last frame
        self._prev: NDArray[np.uint8] | None = None
        self._run = 0
        self._last_active_us = 0

    def update(self, frame: av.VideoFrame, pts_us: int) -> bool | None:
        """Feed one masked frame; the new state when it changed, else None."""
        thumb = thumbnail(frame)
        prev, self._prev = self._prev, thumb
        if prev is None or prev.shape != thumb.shape:
            return None  # first frame, or a new size: nothing to compare with
        diff = cv2.absdiff(thumb, prev)
        self.level = float(np.count_nonzero(diff > PIXEL_DELTA)) / diff.size
        if self.level >= self.threshold:
            self._run += 1
            self._last_active_us = pts_us
            if not self.state and self._run >= self.on_frames:
                self.state = True
                return True
        else:
            self._run = 0
            if self.state and pts_us - self._last_active_us >= self.off_us:
                self.state = False
                return False
        return None
