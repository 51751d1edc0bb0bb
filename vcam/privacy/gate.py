"""The fail-closed gate: every frame gets a verdict, and no frame leaves without one.

Frames wait in a short look-ahead buffer so that a detection also covers the frames just before
it. A frame is released when the detections up to `lookahead` frames after it are in, or when
its deadline passes. Its verdict is "mask these regions" only if the detection that covers it
succeeded, arrived in time and is fresh; otherwise the whole frame is masked.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from vcam.config import MaskStyle, PrivacyConfig
from vcam.media.types import MaskedFrame, ObjectClass, SourceFrame, Verdict
from vcam.privacy.detection import DetectionJob
from vcam.privacy.masks import apply_masks, apply_zone_mask, mask_full_frame
from vcam.privacy.tracker import Tracker
from vcam.privacy.zones import StaticMask, zone_mask

MODE_CLASSES: dict[str, frozenset[ObjectClass]] = {
    "face": frozenset({ObjectClass.FACE}),
    "body": frozenset({ObjectClass.PERSON}),
    "face+body": frozenset({ObjectClass.FACE, ObjectClass.PERSON}),
}


@dataclass
class GateStats:
    """Counters read from what the gate actually rendered, not from configuration."""

    frames_in: int = 0
    frames_out: int = 0
    frames_masked: int = 0  # at least one region masked
    frames_closed: int = 0  # fully masked: fail-closed
    closed_reasons: Counter[str] = field(default_factory=Counter)
    detections_run: int = 0
    detections_failed: int = 0
    detector_ms: float = 0.0  # moving average of the slowest detector per job
    regions_masked: int = 0


@dataclass(slots=True)
class _Pending:
    sf: SourceFrame
    deadline: float
    job: DetectionJob | None


@dataclass(slots=True)
class _Result:
    index: int
    ok: bool


class PrivacyGate:
    """Holds frames until their verdict is known; turns them into MaskedFrames."""

    def __init__(self, cfg: PrivacyConfig, seed: int = 0, deadline_s: float | None = None) -> None:
        self.cfg = cfg
        # How long a frame may wait for its verdict before it is fully masked.
        self.deadline_s = cfg.deadline_ms / 1000.0 if deadline_s is None else deadline_s
        self.classes = MODE_CLASSES[cfg.mode]
        self.tracker = Tracker(cfg.hold_frames, cfg.margin)
        self.stats = GateStats()
        self._pending: deque[_Pending] = deque()
        self._unfed: deque[DetectionJob] = deque()
        self._results: deque[_Result] = deque(maxlen=512)
        self._rng = np.random.default_rng(seed)
        self.epoch: int | None = None
        self.size: tuple[int, int] | None = None
        # Masks clients set at run time (ONVIF Media2, the web page), on top of the configured
        # zones. Replaced whole from another thread: the gate reads one tuple per frame.
        self.static_masks: tuple[StaticMask, ...] = ()
        # The style of the detected regions; set from another thread (ONVIF, the web page), read
        # once per frame, like `static_masks`.
        self.style: MaskStyle = cfg.style
        # Non-empty: every frame is fully masked with this reason, whatever the detectors say
        # (a masking mode change is under way: the detectors loaded do not match it).
        self.hold = ""

    # -- input ---------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._pending)

    def needs_new_epoch(self, sf: SourceFrame) -> bool:
        return sf.epoch != self.epoch or (sf.width, sf.height) != self.size

    def begin_epoch(self, sf: SourceFrame) -> None:
        """Start over closed: nothing learnt before a reconnect or resize is trusted."""
        assert not self._pending, "flush the old epoch first"
        self.epoch = sf.epoch
        self.size = (sf.width, sf.height)
        self.tracker.reset()
        self._unfed.clear()
        self._results.clear()

    def add(self, sf: SourceFrame, job: DetectionJob | None, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._pending.append(_Pending(sf, now + self.deadline_s, job))
        if job is not None:
            self._unfed.append(job)
        self.stats.frames_in += 1

    def next_deadline(self) -> float | None:
        return self._pending[0].deadline if self._pending else None

    # -- output --------------------------------------------------------------------------------

    def release(self, now: float | None = None, flush: bool = False) -> list[MaskedFrame]:
        """Frames whose verdict is known (or whose deadline passed), masked, in order."""
        now = time.monotonic() if now is None else now
        self._feed_tracker()
        out: list[MaskedFrame] = []
        while self._pending:
            head = self._pending[0]
            horizon = head.sf.index + self.cfg.lookahead_frames
            seen_horizon = flush or self._pending[-1].sf.index >= horizon
            detections_in = not self._unfed or self._unfed[0].index > horizon
            if not ((seen_horizon and detections_in) or now >= head.deadline):
                break
            self._pending.popleft()
            out.append(self._render(head))
        return out

    def _feed_tracker(self) -> None:
        # Strictly in frame order: a later job that finished first waits for the earlier one.
        while self._unfed and self._unfed[0].done:
            job = self._unfed.popleft()
            self.stats.detections_run += 1
            if job.ok:
                self.tracker.update(job.index, job.detections)
                ms = job.seconds * 1000.0
                avg = self.stats.detector_ms
                self.stats.detector_ms = ms if avg == 0.0 else 0.9 * avg + 0.1 * ms
            else:
                self.stats.detections_failed += 1
            self._results.append(_Result(job.index, job.ok))

    def verdict_reason(self, index: int, job: DetectionJob | None) -> str:
        """Why frame `index` must fail closed, or "" when its regions can be trusted."""
        if job is not None and not job.done:
            return "late"
        last: _Result | None = None
        for r in reversed(self._results):
            if r.index <= index:
                last = r
                break
        if last is None:
            return "late" if self._unfed and self._unfed[0].index <= index else "start"
        if not last.ok:
            return "detector-failed"
        if self._unfed and self._unfed[0].index <= index:
            return "late"  # a newer detection that covers this frame has not arrived
        if index - last.index >= self.cfg.stale_frames:
            return "stale"
        return ""

    def _render(self, p: _Pending) -> MaskedFrame:
        sf = p.sf
        reason = self.hold or self.verdict_reason(sf.index, p.job)
        self.stats.frames_out += 1
        if reason:
            frame = mask_full_frame(sf.frame)
            self.stats.frames_closed += 1
            self.stats.closed_reasons[reason] += 1
            verdict = Verdict(sf.index, (), (), True, reason)
            return MaskedFrame(frame, sf.index, sf.pts_us, verdict, sf.truth)
        regions, tracks = self.tracker.regions(
            sf.index,
            sf.width,
            sf.height,
            self.cfg.lookahead_frames,
            self.classes,
            self.cfg.person_heads,
        )
        frame = sf.frame
        if regions:
            frame = apply_masks(
                frame,
                regions,
                self.style,
                mosaic_cells=self.cfg.mosaic_cells,
                rng=self._rng,
            )
            self.stats.frames_masked += 1
            self.stats.regions_masked += len(regions)
        zones = zone_mask(self.cfg.zones, sf.width, sf.height)
        if zones is not None:
            frame = apply_zone_mask(frame, zones, self.cfg.zone_style)
        for mask in self.static_masks:
            raster = zone_mask([mask.polygon], sf.width, sf.height)
            frame = apply_zone_mask(
                frame, raster, mask.style, mosaic_cells=self.cfg.mosaic_cells, fill=mask.fill
            )
        verdict = Verdict(sf.index, tuple(regions), tuple(tracks), False)
        return MaskedFrame(frame, sf.index, sf.pts_us, verdict, sf.truth)
