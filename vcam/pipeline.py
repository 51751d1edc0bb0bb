"""The live and offline pipeline: source thread -> gate thread (+ detector threads) -> sinks.

The source decodes in its own thread into a small inbox. The gate thread submits frames to the
detectors, holds them for the look-ahead, masks them and hands MaskedFrames to the sinks
(encoders, file writers). Live pipelines drop the oldest clear frame when the inbox is full
(counted); offline ones (`vcam mask`) apply back-pressure instead, so nothing is skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from vcam.config import Config
from vcam.media.types import MaskedFrame, ObjectClass, SourceFrame
from vcam.privacy.detection import DetectorBank
from vcam.privacy.detectors import Detector
from vcam.privacy.detectors.sizing import live_budget
from vcam.privacy.gate import GateStats, PrivacyGate
from vcam.sources import Source

log = logging.getLogger("vcam.pipeline")

_INBOX = 8  # decoded clear frames waiting for the gate
_OFFLINE_DEADLINE_S = 120.0
_MAX_QUEUED = 1  # detection jobs waiting beyond one per worker: pipelining, bounded latency


class FrameSink(Protocol):
    def on_frame(self, masked: MaskedFrame) -> None: ...


class FrameStage(Protocol):
    """Changes a masked frame before any sink sees it (imaging adjustments). It only ever gets
    masked frames, so it cannot leak; if it fails, the gate stops and nothing leaves."""

    def apply(self, masked: MaskedFrame) -> MaskedFrame: ...


@dataclass(frozen=True, slots=True)
class PtsMark:
    """The last frame a run handed to the sinks: where a restarted run's timeline goes on."""

    pts_us: int
    wall: float  # time.monotonic() when it was handed out


@dataclass(frozen=True)
class PipelineStats:
    gate: GateStats
    source_dropped: int
    running_s: float
    error: str


class Pipeline:
    """Runs a source through the gate into sinks; `live` chooses drop vs back-pressure."""

    def __init__(
        self,
        cfg: Config,
        source: Source,
        detectors: Sequence[Detector],
        sinks: Sequence[FrameSink],
        *,
        live: bool,
        stages: Sequence[FrameStage] = (),
        resume: PtsMark | None = None,
    ) -> None:
        """`resume`: where a previous run on the same sinks stopped. A reopened source counts
        from 0 again; its frames are shifted to go on after `resume` by the time that really
        passed (at least one frame), so encoders, RTP timestamps and RTCP stay consistent."""
        self.cfg = cfg
        self.source = source
        self.sinks = list(sinks)
        self.stages = list(stages)
        self.live = live
        # Offline, nothing waits for the output: the deadline only guards against a hung
        # detector, and a slow machine must not turn frames into fail-closed ones.
        self.gate = PrivacyGate(cfg.privacy, deadline_s=None if live else _OFFLINE_DEADLINE_S)
        every = {
            ObjectClass.FACE: cfg.detectors.face.every,
            ObjectClass.PERSON: cfg.detectors.person.every,
        }
        # Live, "auto" detector inputs shrink to what keeps the detection rate on this CPU.
        budget = live_budget(cfg.privacy.stale_frames, source.fps) if live else None
        self.bank = DetectorBank(list(detectors), every, budget)
        self._cond = threading.Condition()
        self._inbox: deque[SourceFrame] = deque()
        self._source_done = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._source_dropped = 0
        self._last_submitted: int | None = None
        self._started = 0.0
        self._resume = resume
        self._pts_offset: int | None = None if resume is not None else 0
        self.last_out = resume  # the last frame handed to the sinks (gate thread writes)
        self.error = ""

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._started = time.monotonic()
        self._threads = [
            threading.Thread(target=self._source_loop, name="vcam-source", daemon=True),
            threading.Thread(target=self._gate_loop, name="vcam-gate", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the pipeline to finish; True when every thread ended."""
        end = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if end is None else max(0.0, end - time.monotonic()))
        alive = any(t.is_alive() for t in self._threads)
        if not alive:
            self.bank.close()
        return not alive

    def run(self) -> PipelineStats:
        """Offline use: run until the source ends."""
        self.start()
        self.join()
        return self.stats()

    def stats(self) -> PipelineStats:
        return PipelineStats(
            self.gate.stats,
            self._source_dropped,
            time.monotonic() - self._started if self._started else 0.0,
            self.error,
        )

    # -- threads -------------------------------------------------------------------------------

    def _source_loop(self) -> None:
        try:
            for sf in self.source.frames(self._stop):
                self._rebase(sf)
                with self._cond:
                    if self.live:
                        if len(self._inbox) >= _INBOX:
                            self._inbox.popleft()
                            self._source_dropped += 1
                    else:
                        while len(self._inbox) >= _INBOX and not self._stop.is_set():
                            self._cond.wait(0.1)
                    self._inbox.append(sf)
                    self._cond.notify_all()
                if self._stop.is_set():
                    break
        except Exception as exc:  # the gate drains what it has; the caller sees the error
            log.error("source failed: %s", exc)
            self.error = str(exc)
        finally:
            with self._cond:
                self._source_done = True
                self._cond.notify_all()

    def _gate_loop(self) -> None:
        try:
            while True:
                with self._cond:
                    out = self._step()
                    finished = (
                        (self._source_done or self._stop.is_set())
                        and not self._inbox
                        and not self.gate.pending
                    )
                    if not out and not finished:
                        deadline = self.gate.next_deadline()
                        wait = 0.05 if deadline is None else deadline - time.monotonic()
                        self._cond.wait(min(max(wait, 0.001), 0.05))
                for masked in out:
                    for stage in self.stages:
                        masked = stage.apply(masked)
                    for sink in self.sinks:
                        sink.on_frame(masked)
                    self.last_out = PtsMark(masked.pts_us, time.monotonic())
                if finished:
                    return
        except Exception as exc:
            # Nothing more leaves: a dead gate means no frames, never clear ones.
            log.exception("gate failed")
            self.error = f"gate failed: {exc}"
            self._stop.set()

    def _rebase(self, sf: SourceFrame) -> None:
        """Shift a resumed run's timeline (source thread; the frame is this run's own)."""
        if self._pts_offset is None:
            assert self._resume is not None
            frame_us = round(1_000_000 / self.source.fps) if self.source.fps > 0 else 40_000
            gap = max(frame_us, round((time.monotonic() - self._resume.wall) * 1_000_000))
            self._pts_offset = self._resume.pts_us + gap - sf.pts_us
        sf.pts_us += self._pts_offset

    def _step(self) -> list[MaskedFrame]:
        """Move frames from the inbox into the gate and collect released ones (lock held)."""
        gate = self.gate
        now = time.monotonic()
        flushing = False
        while self._inbox:
            sf = self._inbox[0]
            if gate.needs_new_epoch(sf):
                if gate.pending:
                    flushing = True  # drain the old epoch before trusting anything new
                    break
                gate.begin_epoch(sf)
                self._last_submitted = None
            due = self._detection_due(sf)
            if due and self.bank.inflight >= self.bank.workers + _MAX_QUEUED:
                head_deadline = gate.next_deadline()
                if not self.live and (head_deadline is None or now < head_deadline):
                    break  # offline: wait for a detector rather than skip this frame
                due = False
            self._inbox.popleft()
            self._cond.notify_all()  # room in the inbox for an offline source
            job = None
            if due:
                job = self.bank.submit(sf, self._wake)
                self._last_submitted = sf.index
            gate.add(sf, job, now)
        ended = (self._source_done or self._stop.is_set()) and not self._inbox
        return gate.release(now, flush=flushing or ended)

    def _detection_due(self, sf: SourceFrame) -> bool:
        if self._last_submitted is None:
            return True
        return sf.index - self._last_submitted >= self.cfg.privacy.detect_every

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()
