"""The snapshot JPEG: the latest *masked* frame, never anything else.

A FrameSink on the pipeline keeps a reference to the last MaskedFrame; JPEG encoding happens
only when a client asks, in a worker thread.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from vcam.media.types import MaskedFrame


class LatestFrame:
    """FrameSink that remembers the last masked frame (the only kind a sink ever receives)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: MaskedFrame | None = None

    def on_frame(self, masked: MaskedFrame) -> None:
        with self._lock:
            self._frame = masked

    @property
    def last(self) -> MaskedFrame | None:
        with self._lock:
            return self._frame

    def jpeg(self, width: int = 0, height: int = 0, quality: int = 85) -> bytes | None:
        """The latest frame as JPEG, scaled to width x height when given; None before the first."""
        masked = self.last
        if masked is None:
            return None
        frame = masked.frame
        if width and height and (frame.width, frame.height) != (width, height):
            bgr = frame.to_ndarray(format="bgr24", width=width, height=height)
        else:
            bgr = frame.to_ndarray(format="bgr24")
        ok, data = cv2.imencode(
            ".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        return bytes(data) if ok else None
