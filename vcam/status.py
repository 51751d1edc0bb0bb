"""What the running camera reports about itself: one snapshot for the web page, /metrics and
the console status line, read from what the pipeline actually did."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from vcam.analytics.engine import AnalyticsSnapshot
from vcam.media.bus import BusStats, EncodedBus
from vcam.pipeline import PipelineStats


@dataclass(frozen=True)
class CameraStatus:
    source: str  # the source's description
    pipeline: PipelineStats  # frames out, masked, fail-closed (and why), detector time
    bus: BusStats  # encoded units and subscribers per stream
    analytics: AnalyticsSnapshot | None  # None when analytics are off
    restarts: int  # pipeline restarts (SystemReboot, masking mode changes, the watchdog)

    @property
    def fps(self) -> float:
        s = self.pipeline
        return s.gate.frames_out / s.running_s if s.running_s > 0 else 0.0


class LiveCamera(Protocol):
    """What the web side needs of the camera: its encoded bus (WebRTC reads the already
    encoded streams from it) and its status."""

    @property
    def bus(self) -> EncodedBus: ...

    def status(self) -> CameraStatus: ...
