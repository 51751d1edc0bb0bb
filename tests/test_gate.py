"""The fail-closed gate: verdicts per frame, look-ahead, and what stalled or crashing detectors do.

The detectors here are fault injectors (the gate is under test, not the models): one that
returns a fixed box, one that stalls past the deadline, one that raises.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import av
import numpy as np
import pytest

from vcam.config import PrivacyConfig
from vcam.media.types import Box, Detection, MaskedFrame, ObjectClass, SourceFrame
from vcam.privacy.detection import DetectorBank
from vcam.privacy.gate import PrivacyGate
from vcam.privacy.masks import plane_view

W, H = 320, 192


class ScriptedDetector:
    """Returns `box` (normalised) for every frame; `behaviour(n)` may stall or raise."""

    name = "scripted"
    cls = ObjectClass.FACE
    input_size = (W, H)

    def __init__(self, box: Box | None, behaviour: Callable[[int], None] | None = None) -> None:
        self.box = box
        self.behaviour = behaviour
        self.calls = 0

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        n = self.calls
        self.calls += 1
        if self.behaviour is not None:
            self.behaviour(n)
        return [] if self.box is None else [Detection(self.box, 0.9, self.cls)]


def textured_frame(seed: int) -> av.VideoFrame:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def source_frame(i: int, epoch: int = 0) -> SourceFrame:
    return SourceFrame(textured_frame(i), i, i * 33_333, epoch, time.monotonic())


def luma(mf: MaskedFrame) -> np.ndarray:
    return plane_view(mf.frame.planes[0])[:H, :W].copy()


def run_gate(
    cfg: PrivacyConfig, detector: ScriptedDetector, n: int, *, detect: Callable[[int], bool]
) -> list[MaskedFrame]:
    gate = PrivacyGate(cfg)
    bank = DetectorBank([detector])
    out: list[MaskedFrame] = []
    wake = threading.Event()
    try:
        for i in range(n):
            sf = source_frame(i)
            if gate.needs_new_epoch(sf):
                gate.begin_epoch(sf)
            job = bank.submit(sf, wake.set) if detect(i) else None
            gate.add(sf, job)
            out += gate.release()
        end = time.monotonic() + 10
        while gate.pending and time.monotonic() < end:
            wake.wait(0.01)
            wake.clear()
            out += gate.release(flush=True)
    finally:
        bank.close()
    assert [m.index for m in out] == list(range(n)), "every frame leaves exactly once, in order"
    return out


def is_flat(mf: MaskedFrame) -> bool:
    return all(np.ptp(plane_view(p)[: p.height, : p.width]) == 0 for p in mf.frame.planes)


def test_detected_region_is_masked_and_the_rest_is_clear() -> None:
    cfg = PrivacyConfig(mode="face", style="solid", lookahead_frames=0, margin=0.0)
    face = Box(0.25, 0.25, 0.5, 0.5)  # 80x48 px at (80, 48)
    out = run_gate(cfg, ScriptedDetector(face), 5, detect=lambda i: True)
    for mf in out:
        assert not mf.verdict.fully_masked
        y = luma(mf)
        original = plane_view(textured_frame(mf.index).planes[0])[:H, :W]
        assert np.ptp(y[48:96, 80:160]) == 0  # the box is flat
        assert np.array_equal(y[:40], original[:40])  # outside untouched
        assert mf.verdict.tracks[0].box == Box(80, 48, 160, 96)


def test_crashing_detector_fails_closed_on_every_frame() -> None:
    def crash(n: int) -> None:
        raise RuntimeError("onnxruntime exploded")

    cfg = PrivacyConfig(mode="face", lookahead_frames=2)
    out = run_gate(cfg, ScriptedDetector(Box(0.1, 0.1, 0.2, 0.2), crash), 6, detect=lambda i: True)
    assert all(m.verdict.fully_masked for m in out)
    assert {m.verdict.reason for m in out} == {"detector-failed"}
    assert all(is_flat(m) for m in out)


def test_stalled_detector_fails_closed_at_the_deadline() -> None:
    release = threading.Event()

    def stall(n: int) -> None:
        release.wait(5)

    cfg = PrivacyConfig(mode="face", lookahead_frames=1, deadline_ms=100)
    gate = PrivacyGate(cfg)
    bank = DetectorBank([ScriptedDetector(Box(0.1, 0.1, 0.2, 0.2), stall)])
    try:
        t0 = time.monotonic()
        for i in range(3):
            sf = source_frame(i)
            if gate.needs_new_epoch(sf):
                gate.begin_epoch(sf)
            gate.add(sf, bank.submit(sf, lambda: None) if i == 0 else None, t0)
        assert gate.release(t0 + 0.05) == []  # still waiting within the deadline
        out = gate.release(t0 + 0.11)
        assert [m.index for m in out] == [0, 1, 2]
        assert all(m.verdict.fully_masked and is_flat(m) for m in out)
        assert out[0].verdict.reason == "late"
        assert gate.stats.frames_closed == 3
    finally:
        release.set()
        bank.close()


def test_a_detector_that_recovers_opens_the_gate_again() -> None:
    def flaky(n: int) -> None:
        if n in (2, 3):
            raise RuntimeError("transient")

    cfg = PrivacyConfig(mode="face", lookahead_frames=0, margin=0.0)
    out = run_gate(cfg, ScriptedDetector(Box(0.1, 0.1, 0.3, 0.3), flaky), 6, detect=lambda i: True)
    closed = [m.index for m in out if m.verdict.fully_masked]
    assert closed == [2, 3]
    assert all(m.verdict.regions for m in out if not m.verdict.fully_masked)


def test_stale_verdict_fails_closed() -> None:
    # Only frame 0 is ever detected: frames within stale_frames are masked by the tracker,
    # later ones are fully masked because nothing fresh vouches for them.
    cfg = PrivacyConfig(mode="face", lookahead_frames=0, stale_frames=4, hold_frames=10)
    out = run_gate(cfg, ScriptedDetector(None), 8, detect=lambda i: i == 0)
    assert [m.verdict.fully_masked for m in out] == [False] * 4 + [True] * 4
    assert {m.verdict.reason for m in out[4:]} == {"stale"}


def test_lookahead_covers_frames_before_the_first_detection() -> None:
    # The face "appears" at frame 3 (the detector only reports it from its 4th call): with a
    # look-ahead of 3 frames, frames 0-2 are already masked where it is about to be.
    face = Box(0.5, 0.5, 0.7, 0.8)
    det = ScriptedDetector(face)
    det_box = det.box

    def appear(n: int) -> None:
        det.box = det_box if n >= 3 else None

    det.behaviour = appear
    cfg = PrivacyConfig(mode="face", style="solid", lookahead_frames=3, margin=0.0)
    out = run_gate(cfg, det, 6, detect=lambda i: True)
    assert all(not m.verdict.fully_masked for m in out)
    assert all(len(m.verdict.regions) == 1 for m in out), [len(m.verdict.regions) for m in out]


def test_new_epoch_starts_closed_and_forgets_tracks() -> None:
    cfg = PrivacyConfig(mode="face", lookahead_frames=0)
    gate = PrivacyGate(cfg)
    bank = DetectorBank([ScriptedDetector(Box(0.1, 0.1, 0.3, 0.3))])
    try:
        sf = source_frame(0)
        gate.begin_epoch(sf)
        gate.add(sf, None)
        (first,) = gate.release(flush=True)
        assert first.verdict.fully_masked and first.verdict.reason == "start"
        sf1 = source_frame(1, epoch=1)
        assert gate.needs_new_epoch(sf1)
        gate.begin_epoch(sf1)
        done = threading.Event()
        gate.add(sf1, bank.submit(sf1, done.set))
        assert done.wait(5)
        time.sleep(0.01)
        (second,) = gate.release(flush=True)
        assert not second.verdict.fully_masked
    finally:
        bank.close()


@pytest.mark.parametrize("style", ["mosaic", "blocks", "blur", "solid"])
def test_static_zone_composes_with_dynamic_masks(style: str) -> None:
    zone = ((0.0, 0.75), (1.0, 0.75), (1.0, 1.0), (0.0, 1.0))  # the bottom quarter
    cfg = PrivacyConfig(
        mode="face", style=style, zone_style="solid", lookahead_frames=0, zones=(zone,)
    )
    out = run_gate(cfg, ScriptedDetector(Box(0.1, 0.1, 0.3, 0.3)), 2, detect=lambda i: True)
    for mf in out:
        y = luma(mf)
        original = plane_view(textured_frame(mf.index).planes[0])[:H, :W]
        assert np.ptp(y[H * 3 // 4 + 1 :]) == 0  # the zone is flat
        assert not np.array_equal(y[19:58, 32:96], original[19:58, 32:96])  # the face is masked
        assert np.array_equal(y[80:120, 200:300], original[80:120, 200:300])  # the rest is clear


def test_bank_spreads_jobs_over_workers_and_runs_slow_classes_every_nth() -> None:
    face_a, face_b = ScriptedDetector(None), ScriptedDetector(None)
    person = ScriptedDetector(None)
    person.cls = ObjectClass.PERSON
    bank = DetectorBank([face_a, face_b, person], {ObjectClass.PERSON: 2})
    try:
        assert bank.workers == 1  # the single person worker bounds parallel jobs
        jobs = [bank.submit(source_frame(i), lambda: None) for i in range(6)]
        end = time.monotonic() + 5
        while not all(j.done for j in jobs) and time.monotonic() < end:
            time.sleep(0.01)
        assert all(j.ok for j in jobs)
        assert (face_a.calls, face_b.calls, person.calls) == (3, 3, 3)
        assert [len(j.futures) for j in jobs] == [2, 1, 2, 1, 2, 1]
    finally:
        bank.close()
