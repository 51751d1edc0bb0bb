"""Counting benchmark: line-crossing accuracy on the synthetic scene, and the engine's cost.

Accuracy: the offline pipeline (real detectors, every frame detected, face+body) runs the
synthetic scene once; its tracks are replayed through fresh analytics engines, one per
re-identification window, with LineCounting rules on a grid of vertical lines (x in
--xs, from y=Y0 to the bottom for Y0 in --y0s). The exact truth is the scene's own: the feet
(bottom-centre of each ground-truth person box) crossing the line between consecutive
appearances of the same identity, unless the walker went out through one side of the
picture and came back through the other (the scene wrapping round: no crossing). Printed:
mean absolute error of the "in" and "out" counts per line, the mean signed error (bias), and
the truth's mean count per line.

Cost: AnalyticsEngine.on_frame with --tracks moving people and 5 rules (LineCounting,
LineDetector, FieldDetector, OccupancyCounting, QueueMonitor) on real 1280x720 masked frames,
with and without motion detection; microseconds per frame (median of --repeat runs).

    .venv/bin/python benchmarks/counting.py [--frames 600] [--reid 0,5,15]
        [--xs 0.3,0.5,0.7] [--y0s 0.0,0.5,0.7,0.85] [--tracks 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

from vcam.analytics.engine import AnalyticsEngine, FrameFacts
from vcam.analytics.rules import RuleSet, rule_from_json
from vcam.analytics.store import AnalyticsRuleStore
from vcam.app import build_detectors
from vcam.config import AnalyticsConfig, SyntheticConfig, config_from_dict
from vcam.events.broker import EventBroker
from vcam.media.types import Box, GroundTruth, MaskedFrame, ObjectClass, SourceFrame, Track, Verdict
from vcam.pipeline import Pipeline
from vcam.sources.synthetic import SyntheticSource

SCENE = SyntheticConfig(width=640, height=360, fps=30.0)


@dataclass(frozen=True)
class Recorded:
    facts: FrameFacts
    truth: tuple[GroundTruth, ...]


class _Finite:
    def __init__(self, frames: int) -> None:
        self.inner = SyntheticSource(SCENE, realtime=False)
        self.fps, self.description, self.n = self.inner.fps, "synthetic", frames

    def frames(self, stop: threading.Event) -> Iterator[SourceFrame]:
        return itertools.islice(self.inner.frames(stop), self.n)


class _Recorder:
    def __init__(self) -> None:
        self.frames: list[Recorded] = []

    def on_frame(self, masked: MaskedFrame) -> None:
        self.frames.append(Recorded(FrameFacts.of(masked), masked.truth))


def record(frames: int) -> list[Recorded]:
    cfg = config_from_dict({"privacy": {"mode": "face+body"}})
    rec = _Recorder()
    Pipeline(cfg, _Finite(frames), build_detectors(cfg), [rec], live=False).run()
    return rec.frames


def truth_counts(frames: list[Recorded], x0: float, y0: float) -> tuple[int, int]:
    """(in, out) of the truth: in = onto the right side of the line drawn downwards (moving
    picture-left), out = moving picture-right."""
    last: dict[str, Box] = {}
    ins = outs = 0
    for r in frames:
        for gt in r.truth:
            if gt.cls is not ObjectClass.PERSON:
                continue
            prev = last.get(gt.identity)
            last[gt.identity] = gt.box
            if prev is None or wrapped(prev, gt.box, SCENE.width):
                continue
            x, y = (gt.box.x1 + gt.box.x2) / 2 / SCENE.width, gt.box.y2 / SCENE.height
            px, py = (prev.x1 + prev.x2) / 2 / SCENE.width, prev.y2 / SCENE.height
            if (px - x0) * (x - x0) < 0 and max(y, py) >= y0:
                outs += x > px
                ins += x < px
    return ins, outs


def wrapped(prev: Box, box: Box, width: float) -> bool:
    """Whether a walker left through one side of the picture and came back through the other
    between two appearances: the scene starts its next pass, nobody crossed anything (counted
    as a crossing, this wrap-around was nearly half of the "true" crossings)."""
    return (prev.x2 >= width and box.x1 <= 0) or (prev.x1 <= 0 and box.x2 >= width)


def engine_counts(
    frames: list[Recorded], lines: list[tuple[float, float]], reid: int
) -> list[tuple[int, int]]:
    rules = tuple(
        rule_from_json({"type": "LineCounting", "name": f"l{i}", "segments": [[x, y], [x, 1.0]]})
        for i, (x, y) in enumerate(lines)
    )
    cfg = AnalyticsConfig(motion=False, object_events=False, reid_frames=reid)
    engine = AnalyticsEngine(EventBroker(), AnalyticsRuleStore(RuleSet(rules)), cfg)
    for r in frames:
        engine.observe(r.facts)
    return [(s.entered, s.exited) for s in engine.snapshot().rules]


def accuracy(args: argparse.Namespace) -> None:
    t0 = time.monotonic()
    frames = record(args.frames)
    print(f"recorded {len(frames)} frames of the synthetic scene in {time.monotonic() - t0:.0f} s")
    lines = [(x, y) for y in args.y0s for x in args.xs]
    truths = [truth_counts(frames, x, y) for x, y in lines]
    mean_truth = statistics.fmean(i + o for i, o in truths) / 2
    print(f"{len(lines)} lines; truth: {mean_truth:.1f} crossings per direction and line")
    print(f"{'reid_frames':>11} {'MAE in/out':>10} {'bias':>6} {'exact lines':>11}")
    for reid in args.reid:
        got = engine_counts(frames, lines, reid)
        errors = [(gi - ti, go - to) for (gi, go), (ti, to) in zip(got, truths, strict=True)]
        mae = statistics.fmean(abs(a) + abs(b) for a, b in errors) / 2
        bias = statistics.fmean(a + b for a, b in errors) / 2
        exact = sum(e == (0, 0) for e in errors)
        print(f"{reid:>11} {mae:>10.2f} {bias:>+6.2f} {exact:>7}/{len(lines)}")


def _people(n: int, i: int, width: int, height: int) -> tuple[Track, ...]:
    out = []
    for k in range(n):
        x = (k * 97 + i * (3 + k % 5)) % width
        feet = height * (0.5 + 0.45 * (k % 7) / 7)
        h = 0.25 * feet
        out.append(Track(k + 1, ObjectClass.PERSON, Box(x - h / 5, feet - h, x + h / 5, feet), 0.9))
    return tuple(out)


def cost(args: argparse.Namespace) -> None:
    rules = [
        {"type": "LineCounting", "name": "door", "segments": [[0.5, 0.3], [0.5, 1.0]]},
        {"type": "LineDetector", "name": "line", "segments": [[0.2, 0.6], [0.8, 0.7]]},
        {"type": "FieldDetector", "name": "field", "field": [[0, 0.5], [0.4, 0.5], [0.4, 1]]},
        {"type": "OccupancyCounting", "name": "room", "field": [[0.5, 0], [1, 0], [1, 1]]},
        {"type": "QueueMonitor", "name": "till", "field": [[0.6, 0.6], [1, 0.6], [1, 1]]},
    ]
    w, h, n = 1280, 720, 300
    rgb = np.random.default_rng(1).integers(0, 255, (h, w, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    print(f"\nengine cost, {args.tracks} tracks, {len(rules)} rules, {w}x{h}, {n} frames:")
    for motion in (False, True):
        runs = []
        for _ in range(args.repeat):
            store = AnalyticsRuleStore(RuleSet(tuple(rule_from_json(r) for r in rules)))
            cfg = AnalyticsConfig(motion=motion)
            engine = AnalyticsEngine(EventBroker(), store, cfg)
            for i in range(n):
                tracks = _people(args.tracks, i, w, h)
                verdict = Verdict(i, (), tracks, False)
                engine.on_frame(MaskedFrame(frame, i, i * 33_333, verdict))
            runs.append(engine.snapshot().mean_cost_us)
        label = "tracking + rules + motion" if motion else "tracking + rules"
        print(f"  {label:<26} {statistics.median(runs):7.0f} µs/frame")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    floats = lambda s: [float(v) for v in s.split(",")]  # noqa: E731
    p.add_argument("--frames", type=int, default=600)
    p.add_argument("--reid", type=lambda s: [int(v) for v in s.split(",")], default=[0, 5, 15])
    p.add_argument("--xs", type=floats, default=[0.3, 0.5, 0.7])
    p.add_argument("--y0s", type=floats, default=[0.0, 0.5, 0.7, 0.85])
    p.add_argument("--tracks", type=int, default=20)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-accuracy", action="store_true")
    args = p.parse_args()
    if not args.skip_accuracy:
        accuracy(args)
    cost(args)


if __name__ == "__main__":
    main()
