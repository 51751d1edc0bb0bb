"""A stretch of a video file as a source: frames first..last, not paced, not looped.

For measuring on labelled real video (the labels name frames by their decode-order index,
which the frames keep).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

from vcam.config import SourceConfig
from vcam.media.types import SourceFrame
from vcam.sources.av_source import AvSource


class FileStretch:
    def __init__(self, path: str, first: int, last: int) -> None:
        self.inner = AvSource(SourceConfig(realtime=False, loop=False), "file", path)
        self.inner.probe()
        self.fps, self.description = self.inner.fps, f"{path} [{first}..{last}]"
        self.first, self.last = first, last

    def frames(self, stop: threading.Event) -> Iterator[SourceFrame]:
        return itertools.islice(self.inner.frames(stop), self.first, self.last + 1)
