"""The interface every source implements; the pipeline only sees this."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from vcam.media.types import SourceFrame


@runtime_checkable
class Source(Protocol):
    """A producer of clear decoded frames (yuv420p `av.VideoFrame`s).

    `frames` is a blocking generator run in the pipeline's own worker thread (decoding happens
    there). It yields until `stop` is set or a non-looping file ends, and reconnects by itself
    when a live upstream is lost. Every SourceFrame has a continuous `index`, a `pts_us` that
    never goes back (also across loops and reconnects) and an `epoch` that bumps on every
    reconnect and resolution change, so the privacy gate can start closed again.
    """

    description: str
    fps: float  # nominal rate, best known (before the first frame: a guess)

    def frames(self, stop: threading.Event) -> Iterator[SourceFrame]: ...
