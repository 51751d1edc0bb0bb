"""Counting benchmark: line-crossing accuracy on the synthetic scene, and the engine's cost.

Accuracy: the offline pipeline (real detectors, every frame detected, face+body) runs the
synthetic scene once; its tracks are replayed through fresh analytics engines, one per
re-identification window, with LineCounting rules on a grid of vertical lines (x in
--xs, from y=Y0 to the bottom for Y0 in --y0s). The exact truth is the scene's own: the feet
(bottom-centre of each ground-truth person box) changing sides of the line between two
appearances of the same identity (feet exactly on the line are on neither side), unless the
walker went out through one side of the picture and came back through the other (the scene
wrapping round: no crossing). Printed: mean absolute error of the "in" and "out" counts per
line, the mean signed error (bias), the truth's mean count per line, and, because extra and
missed crossings cancel in a count, the crossings counted that match no true one in the same
direction within --match-s seconds ("extra") and the true ones left unmatched ("missed"),
over all lines.

Real video (--vtest): the same offline pipeline runs the stretch of OpenCV's vtest.avi (a
real pedestrian clip, 768x576 at 10 fps) that benchmarks/labels/vtest_crossings.json labels
by hand, and the recorded tracks are replayed through fresh engines with that file's
LineCounting rules, one per re-identification window. Printed per line: counted in/out against
the labelled in/out and the absolute errors, and the frames at which the engine counted (to
compare with the labels' frames). The engine is not tuned to these labels.

Cost: AnalyticsEngine.on_frame with --tracks moving people and 5 rules (LineCounting,
LineDetector, FieldDetector, OccupancyCounting, QueueMonitor) on real 1280x720 masked frames,
with and without motion detection; microseconds per frame (median of --repeat runs).

    .venv/bin/python benchmarks/counting.py [--frames 600] [--reid 0,2,5,15] [--match-s 1]
        [--xs 0.3,0.5,0.7] [--y0s 0.0,0.5,0.7,0.85] [--tracks 20] [--repeat 3]
        [--vtest] [--vtest-labels benchmarks/labels/vtest_crossings.json] [--vtest-video PATH]
        [--skip-accuracy] [--skip-cost]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from vcam.analytics.engine import AnalyticsEngine, FrameFacts
from vcam.analytics.rules import RuleSet, rule_from_json
from vcam.analytics.scoring import CrossingLabels, match_crossings
from vcam.analytics.store import AnalyticsRuleStore
from vcam.app import build_detectors
from vcam.config import AnalyticsConfig, SyntheticConfig, config_from_dict
from vcam.events.broker import EventBroker
from vcam.media.types import Box, GroundTruth, MaskedFrame, ObjectClass, SourceFrame, Track, Verdict
from vcam.pipeline import Pipeline
from vcam.sources.stretch import FileStretch
from vcam.sources.synthetic import SyntheticSource

SCENE = SyntheticConfig(width=640, height=360, fps=30.0)
VTEST_LABELS = Path(__file__).parent / "labels" / "vtest_crossings.json"
MATCH_FRAMES = 8  # a counted crossing matches a labelled one this near, in the same direction


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
    return _record(_Finite(frames))


def _record(source: _Finite | FileStretch) -> list[Recorded]:
    cfg = config_from_dict({"privacy": {"mode": "face+body"}})
    rec = _Recorder()
    stats = Pipeline(cfg, source, build_detectors(cfg), [rec], live=False).run()
    if stats.error:
        raise SystemExit(f"pipeline failed: {stats.error}")
    return rec.frames


def truth_counts(frames: list[Recorded], x0: float, y0: float) -> tuple[int, int]:
    """(in, out) of the truth: in = onto the right side of the line drawn downwards (moving
    picture-left), out = moving picture-right."""
    moves = [d for _f, _who, d in truth_crossings(frames, x0, y0)]
    return moves.count(-1), moves.count(1)


def truth_crossings(frames: list[Recorded], x0: float, y0: float) -> list[tuple[int, str, int]]:
    """Every crossing of the truth's feet over the line x = x0 (from y0 down): (frame index,
    identity, +1 moving picture-right / -1 moving picture-left). A crossing is a change
    of side from the last point clearly off the line: feet landing exactly on it (integer
    boxes on a 640-wide picture put x = 0.3, 0.5, 0.7 on whole pixels) cross once, not never."""
    last: dict[str, Box] = {}  # the previous appearance, for the wrap-round
    anchor: dict[str, tuple[int, float]] = {}  # the last side off the line, and its y
    out: list[tuple[int, str, int]] = []
    for r in frames:
        for gt in r.truth:
            if gt.cls is not ObjectClass.PERSON:
                continue
            prev = last.get(gt.identity)
            last[gt.identity] = gt.box
            if prev is not None and wrapped(prev, gt.box, SCENE.width):
                anchor.pop(gt.identity, None)  # a new pass: nothing carries over
            x, y = (gt.box.x1 + gt.box.x2) / 2 / SCENE.width, gt.box.y2 / SCENE.height
            if abs(x - x0) < 1e-9:
                continue
            side = 1 if x > x0 else -1
            before = anchor.get(gt.identity)
            anchor[gt.identity] = (side, y)
            if before is not None and before[0] != side and max(y, before[1]) >= y0:
                out.append((r.facts.index, gt.identity, side))
    return out


def wrapped(prev: Box, box: Box, width: float) -> bool:
    """Whether a walker left through one side of the picture and came back through the other
    between two appearances: the scene starts its next pass, nobody crossed anything (counted
    as a crossing, this wrap-around was nearly half of the "true" crossings)."""
    return (prev.x2 >= width and box.x1 <= 0) or (prev.x1 <= 0 and box.x2 >= width)


def _replay(
    frames: list[Recorded], polylines: list[list[list[float]]], reid: int
) -> list[tuple[int, int, list[tuple[int, str]]]]:
    """Per polyline: (in, out, [(frame index, "in" | "out") of each counted crossing])."""
    rules = tuple(
        rule_from_json({"type": "LineCounting", "name": f"l{i}", "segments": seg})
        for i, seg in enumerate(polylines)
    )
    cfg = AnalyticsConfig(motion=False, object_events=False, reid_frames=reid)
    engine = AnalyticsEngine(EventBroker(), AnalyticsRuleStore(RuleSet(rules)), cfg)
    events: list[list[tuple[int, str]]] = [[] for _ in rules]
    before = [(0, 0)] * len(rules)
    for r in frames:
        engine.observe(r.facts)
        now = [(s.entered, s.exited) for s in engine.snapshot().rules]
        for k, ((i0, o0), (i1, o1)) in enumerate(zip(before, now, strict=True)):
            events[k] += [(r.facts.index, "in")] * (i1 - i0) + [(r.facts.index, "out")] * (o1 - o0)
        before = now
    return [(i, o, ev) for (i, o), ev in zip(before, events, strict=True)]


def vtest(args: argparse.Namespace) -> None:
    try:
        labels = CrossingLabels.load(Path(args.vtest_labels))
    except ValueError as exc:
        raise SystemExit(f"{args.vtest_labels}: {exc}") from None
    path = args.vtest_video or labels.video_path
    first, last = labels.first, labels.last
    t0 = time.monotonic()
    frames = _record(FileStretch(path, first, last))
    took = time.monotonic() - t0
    name = Path(path).name
    print(f"\nreal video: {name} frames {first}..{last}, {len(frames)} recorded in {took:.0f} s")
    if len(frames) != last - first + 1:
        raise SystemExit(f"expected {last - first + 1} frames, the pipeline gave {len(frames)}")
    if frames[0].facts.index != first:
        raise SystemExit(f"the first frame is {frames[0].facts.index}, the labels start at {first}")
    lines = labels.lines
    for line in lines:
        marks = " ".join(f"{f}{d[0]}" for f, d in line.crossings)
        print(f"  {line.name} {line.segments}: labelled at {marks}")
    head = ("line", "reid_frames", "in got/true", "out got/true", "|err| in+out")
    print("{:>14} {:>11} {:>11} {:>12} {:>12}".format(*head))
    for reid in args.reid:
        got = _replay(frames, [line.segments for line in lines], reid)
        for line, (gi, go, events) in zip(lines, got, strict=True):
            dirs = [d for _, d in line.crossings]
            ti, to = dirs.count("in"), dirs.count("out")
            err = abs(gi - ti) + abs(go - to)
            print(f"{line.name:>14} {reid:>11} {gi:>6}/{ti:<4} {go:>7}/{to:<4} {err:>12}")
            marks = " ".join(f"{f}{d[0]}" for f, d in events)
            print(f"{'':>14} {'':>11} counted at {marks}")
            pairs, missed, extra = match_crossings(line.crossings, events, MATCH_FRAMES)
            lag = statistics.fmean(abs(g - t) for t, g in pairs) if pairs else 0.0
            print(
                f"{'':>14} {'':>11} matched {len(pairs)}/{len(line.crossings)} within"
                f" {MATCH_FRAMES}"
                f" frames (mean |frame diff| {lag:.1f}); missed: "
                + (" ".join(f"{f}{d[0]}" for f, d in missed) or "-")
                + "; extra: "
                + (" ".join(f"{f}{d[0]}" for f, d in extra) or "-")
            )


def accuracy(args: argparse.Namespace) -> None:
    t0 = time.monotonic()
    frames = record(args.frames)
    print(f"recorded {len(frames)} frames of the synthetic scene in {time.monotonic() - t0:.0f} s")
    lines = [(x, y) for y in args.y0s for x in args.xs]
    truths = [truth_counts(frames, x, y) for x, y in lines]
    mean_truth = statistics.fmean(i + o for i, o in truths) / 2
    print(f"{len(lines)} lines; truth: {mean_truth:.1f} crossings per direction and line")
    marks = [
        [(f, "in" if d < 0 else "out") for f, _who, d in truth_crossings(frames, x, y)]
        for x, y in lines
    ]
    tol = round(args.match_s * SCENE.fps)
    head = ("reid_frames", "MAE in/out", "bias", "exact lines", "extra", "missed")
    print("{:>11} {:>10} {:>6} {:>11} {:>6} {:>6}".format(*head))
    for reid in args.reid:
        got = _replay(frames, [[[x, y], [x, 1.0]] for x, y in lines], reid)
        errors = [(gi - ti, go - to) for (gi, go, _), (ti, to) in zip(got, truths, strict=True)]
        mae = statistics.fmean(abs(a) + abs(b) for a, b in errors) / 2
        bias = statistics.fmean(a + b for a, b in errors) / 2
        exact = sum(e == (0, 0) for e in errors)
        extra = missed = 0
        for truth, (_, _, events) in zip(marks, got, strict=True):
            _pairs, miss, more = match_crossings(truth, events, tol)
            extra, missed = extra + len(more), missed + len(miss)
        print(
            f"{reid:>11} {mae:>10.2f} {bias:>+6.2f} {exact:>7}/{len(lines)} {extra:>6} {missed:>6}"
        )


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
    p.add_argument("--reid", type=lambda s: [int(v) for v in s.split(",")], default=[0, 2, 5, 15])
    p.add_argument("--match-s", type=float, default=1.0, help="synthetic extra/missed window")
    p.add_argument("--xs", type=floats, default=[0.3, 0.5, 0.7])
    p.add_argument("--y0s", type=floats, default=[0.0, 0.5, 0.7, 0.85])
    p.add_argument("--tracks", type=int, default=20)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-accuracy", action="store_true")
    p.add_argument("--skip-cost", action="store_true")
    p.add_argument("--vtest", action="store_true", help="also the hand-labelled real clip")
    p.add_argument("--vtest-labels", default=str(VTEST_LABELS))
    p.add_argument("--vtest-video", default="", help="default: the labels' video_path")
    args = p.parse_args()
    if not args.skip_accuracy:
        accuracy(args)
    if args.vtest:
        vtest(args)
    if not args.skip_cost:
        cost(args)


if __name__ == "__main__":
    main()
