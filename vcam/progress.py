"""A progress bar sink for `vcam mask` (tqdm on stderr)."""

from __future__ import annotations

from tqdm import tqdm

from vcam.media.types import MaskedFrame
from vcam.sources import Source


class ProgressSink:
    def __init__(self, source: Source, *, enabled: bool) -> None:
        total = getattr(source, "frame_count", None)
        self._bar = tqdm(total=total or None, unit="frame", disable=not enabled, dynamic_ncols=True)
        self.closed_frames = 0

    def on_frame(self, masked: MaskedFrame) -> None:
        if masked.verdict.fully_masked:
            self.closed_frames += 1
            self._bar.set_postfix(fail_closed=self.closed_frames, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()
