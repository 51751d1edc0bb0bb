"""Running the detectors off the gate thread: one single-thread executor per detector.

A DetectionJob is the set of detector runs for one frame. The gate only trusts a job whose every
detector finished without error; anything else makes the frames that depend on it fail closed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from vcam.media.types import ObjectClass, SourceFrame
from vcam.privacy.detectors import Detector, input_size_for
from vcam.privacy.detectors.sizing import MAX_PIXELS, LiveBudget
from vcam.privacy.tracker import PixelDetection


@dataclass(slots=True)
class DetectorResult:
    detections: list[PixelDetection]
    seconds: float


class DetectionJob:
    """The detector runs for one frame; `done`/`ok` are safe to read from any thread."""

    def __init__(self, index: int, futures: list[Future[DetectorResult]]) -> None:
        self.index = index
        self.futures = futures
        self.submitted = time.monotonic()

    @property
    def done(self) -> bool:
        return all(f.done() for f in self.futures)

    @property
    def ok(self) -> bool:
        return self.done and all(not f.cancelled() and f.exception() is None for f in self.futures)

    @property
    def error(self) -> str:
        for f in self.futures:
            if f.done() and not f.cancelled() and f.exception() is not None:
                return repr(f.exception())
        return ""

    @property
    def detections(self) -> list[PixelDetection]:
        return [d for f in self.futures for d in f.result().detections]

    @property
    def seconds(self) -> float:
        return max((f.result().seconds for f in self.futures), default=0.0)


class DetectorBank:
    """The active detectors, each instance behind its own worker thread.

    Several instances for one class (face, person) are workers of one role and take jobs in turn:
    two single-threaded sessions use two cores better than one session with two threads.
    `budget` (live): caps "auto" input sizes to what keeps the detection rate on this CPU.
    """

    def __init__(
        self,
        detectors: list[Detector],
        every: dict[ObjectClass, int] | None = None,
        budget: LiveBudget | None = None,
    ) -> None:
        self.detectors = detectors
        self.budget = budget
        self._last_size: dict[int, tuple[int, int]] = {}  # per detector, its previous input
        self._every = every or {}  # run the detectors of a class on every Nth job only
        roles: dict[ObjectClass, list[int]] = {}
        for i, det in enumerate(detectors):
            roles.setdefault(det.cls, []).append(i)
        self._roles = list(roles.values())
        self._executors = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"vcam-det-{d.name}")
            for d in detectors
        ]
        self._lock = threading.Lock()
        self._inflight = 0
        self._jobs = 0

    @property
    def workers(self) -> int:
        """Jobs that can run at the same time."""
        return min(len(r) for r in self._roles) if self._roles else 0

    @property
    def last_inputs(self) -> dict[str, tuple[int, int]]:
        """The input size each detector (by name) was last given: what "auto" resolved to."""
        return {self.detectors[i].name: size for i, size in self._last_size.items()}

    @property
    def inflight(self) -> int:
        with self._lock:
            return self._inflight

    def submit(self, sf: SourceFrame, on_done: Callable[[], None]) -> DetectionJob:
        n = self._jobs
        self._jobs += 1
        chosen = [
            role[(n // self._every.get(self.detectors[role[0]].cls, 1)) % len(role)]
            for role in self._roles
            if n % self._every.get(self.detectors[role[0]].cls, 1) == 0
        ]
        # Convert in the caller's thread, once per input size: PyAV frames are not shared with
        # worker threads, so the gate may later mask the frame in place without a race.
        cap = self.budget.max_pixels() if self.budget is not None else MAX_PIXELS
        sizes = {i: input_size_for(self.detectors[i], sf.width, sf.height, cap) for i in chosen}
        inputs: dict[tuple[int, int], np.ndarray] = {}
        for size in sizes.values():
            if size not in inputs:
                inputs[size] = sf.frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
        futures: list[Future[DetectorResult]] = []
        with self._lock:
            self._inflight += 1
        remaining = [len(chosen)]

        def finished(_f: Future[DetectorResult]) -> None:
            with self._lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    self._inflight -= 1
            on_done()

        for i in chosen:
            det = self.detectors[i]
            fut = self._executors[i].submit(_run, det, inputs[sizes[i]], sf.width, sf.height)
            # A first run at a new size sets ONNX Runtime up for it: not a fair timing.
            if self.budget is not None and self._last_size.get(i) == sizes[i]:
                fut.add_done_callback(self._timer(i, sizes[i]))
            self._last_size[i] = sizes[i]
            fut.add_done_callback(finished)
            futures.append(fut)
        return DetectionJob(sf.index, futures)

    def _timer(self, index: int, size: tuple[int, int]) -> Callable[[Future[DetectorResult]], None]:
        budget = self.budget
        assert budget is not None

        def observe(fut: Future[DetectorResult]) -> None:
            if not fut.cancelled() and fut.exception() is None:
                budget.observe(index, fut.result().seconds, size[0] * size[1])

        return observe

    def close(self) -> None:
        for ex in self._executors:
            ex.shutdown(wait=False, cancel_futures=True)


def _run(det: Detector, rgb: np.ndarray, width: int, height: int) -> DetectorResult:
    t0 = time.perf_counter()
    found = det.detect(rgb)
    out = [PixelDetection(d.box.scaled(width, height), d.score, d.cls) for d in found]
    return DetectorResult(out, time.perf_counter() - t0)
