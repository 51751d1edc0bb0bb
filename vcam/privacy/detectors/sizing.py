"""The detector input size for a source size: what `input_width = input_height = 0` ("auto")
resolves to, once the source's frame size is known (network sources: at their first frame).

A face keeps enough detector pixels only if the input follows the source: at a fixed 640x360, a
1080p camera's 24-32 px faces shrink to 8-11 px, below what CenterFace finds reliably. "auto"
scales the source down by at most RATIO per axis, within a pixel budget: never fewer pixels than
the former fixed 640x360 (small sources keep their recall and cost), never more than 960x540
(larger sources are scaled down further). The aspect ratio is the source's. The face detector
defaults to "auto"; the person detector to a fixed 640x360 (vcam/config.py says why).

Live, a bigger input means fewer detections/s and more motion between them (and fail-closed
"stale" frames when they are too far apart): LiveBudget lowers the pixel budget to what keeps
detections at least twice as frequent as `privacy.stale_frames` needs (10/s at 30 fps), from the
detector time measured while running. benchmarks/throughput.py, live 1080p30 on a 2-core EPYC:
idle, a fixed 960x540 ran 9 detections/s with 2 of 600 frames fail-closed and leaked fewer
24-32 px faces than 640x360 (0.013 vs 0.044); with a busy-looping process beside it, 6/s and
15% fail-closed. The budget settles at 800x450-880x496 idle and at 640x360 loaded. Offline
(`vcam mask`) nothing waits for the output, so it always gets the full budget.

Resolved per frame by the detector bank from the decoded frame's size, so a network source (its
size known at its first frame) and a resolution change need nothing else. An explicit size
always wins. benchmarks/privacy.py (offline leak rates) and benchmarks/throughput.py (live
detections/s, fail-closed frames and leaks) measure the effect.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

from vcam.config import DetectorConfig

RATIO = 2.0  # source pixels per detector pixel along each axis, at most (within the budget)
MIN_PIXELS = 640 * 360
MAX_PIXELS = 960 * 540
UNKNOWN = (640, 360)  # before the source's size is known (start-up warm-up only)
LIMITS = (32, 4096)  # the input sizes the config accepts, per axis
DEFAULT_FPS = 30.0  # a source that does not say its rate
# Live budgets in steps (1x .. 1.5x of 640x360 per axis): few input shapes, no flapping.
STEPS = tuple(MIN_PIXELS * k * k // 64 for k in range(8, 13))
assert STEPS[-1] == MAX_PIXELS


def is_auto(cfg: DetectorConfig) -> bool:
    return cfg.input_width == 0 and cfg.input_height == 0


def auto_input_size(width: int, height: int, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """The "auto" input for a `width` x `height` source: 1280x720 -> 640x360,
    1920x1080 -> 960x540, 3840x2160 -> 960x540, 640x360 -> 640x360; `max_pixels` (at least
    MIN_PIXELS) lowers the cap (LiveBudget)."""
    if width <= 0 or height <= 0:
        return UNKNOWN
    area = width * height
    pixels = min(max(area / RATIO**2, MIN_PIXELS), max(max_pixels, MIN_PIXELS))
    scale = math.sqrt(pixels / area)
    lo, hi = LIMITS
    # Even sizes: what the YUV 4:2:0 -> RGB conversion scales to without rounding its own way.
    return (
        min(max(2 * round(width * scale / 2), lo), hi),
        min(max(2 * round(height * scale / 2), lo), hi),
    )


def input_size(
    cfg: DetectorConfig, width: int, height: int, max_pixels: int = MAX_PIXELS
) -> tuple[int, int]:
    """The input size of a detector configured as `cfg` for a `width` x `height` source: the
    configured one, or "auto"'s. An explicit size always wins."""
    if is_auto(cfg):
        return auto_input_size(width, height, max_pixels)
    return cfg.input_width, cfg.input_height


def live_budget(stale_frames: int, fps: float) -> LiveBudget:
    """The budget of a live pipeline: a detection every stale_frames / 2 frames at most, so one
    late detection does not fail frames closed."""
    rate = fps if fps > 0 else DEFAULT_FPS
    return LiveBudget(seconds=max(stale_frames, 1) / 2 / rate)


@dataclass
class LiveBudget:
    """Live "auto": the most input pixels (one of STEPS) with which every detector's run fits
    in `seconds`, from each one's measured seconds per input pixel (a moving average).

    Starts at the smallest step (the gate starts closed: the first verdicts come soonest), steps
    up only with a 10% margin and down as soon as the current step does not fit. Thread-safe:
    the detector threads observe, the gate thread asks."""

    seconds: float  # one detector run should take at most this long
    alpha: float = 0.2  # weight of the newest run in the average
    _per_pixel: dict[int, float] = field(default_factory=dict)
    _step: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, key: int, seconds: float, pixels: int) -> None:
        """One run of detector `key` took `seconds` on `pixels` input pixels."""
        rate = seconds / max(pixels, 1)
        with self._lock:
            old = self._per_pixel.get(key)
            self._per_pixel[key] = rate if old is None else old + self.alpha * (rate - old)

    def max_pixels(self) -> int:
        with self._lock:
            if not self._per_pixel:
                return STEPS[self._step]
            fits = self.seconds / max(self._per_pixel.values())
            while self._step + 1 < len(STEPS) and STEPS[self._step + 1] * 1.1 <= fits:
                self._step += 1
            while self._step > 0 and STEPS[self._step] > fits:
                self._step -= 1
            return STEPS[self._step]
