"""Scoring line counting against labelled crossings: which counted crossings match a label.

Used by `benchmarks/counting.py` and the tests on real video (OpenCV's vtest.avi, labelled by
hand in `benchmarks/labels/vtest_crossings.json`). A crossing is (frame index, "in" | "out").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Crossing = tuple[int, str]  # (frame index, "in" | "out")


@dataclass(frozen=True)
class LabelledLine:
    name: str
    segments: list[list[float]]  # vcam rule geometry: normalised, y down
    crossings: list[Crossing]


@dataclass(frozen=True)
class CrossingLabels:
    """A labels file: the video, the stretch of it that was labelled, and its lines."""

    video_path: str
    first: int  # frame range, inclusive, 0-based decode order
    last: int
    lines: list[LabelledLine]

    @classmethod
    def load(cls, path: Path) -> CrossingLabels:
        """The labels in `path`; ValueError when a direction is neither in nor out, or a
        line's in/out totals disagree with its crossings."""
        data: dict[str, Any] = json.loads(path.read_text())
        first, last = data["frame_range"]
        lines = []
        for line in data["lines"]:
            crossings = [(c["frame"], c["direction"]) for c in line["crossings"]]
            dirs = [d for _, d in crossings]
            if not set(dirs) <= {"in", "out"}:
                raise ValueError(f"{line['name']}: a crossing's direction is neither in nor out")
            totals = (line.get("in", dirs.count("in")), line.get("out", dirs.count("out")))
            if totals != (dirs.count("in"), dirs.count("out")):
                raise ValueError(f"{line['name']}: the in/out totals disagree with the crossings")
            lines.append(LabelledLine(line["name"], line["segments"], crossings))
        return cls(data["video_path"], first, last, lines)


def match_crossings(
    labelled: list[Crossing], counted: list[Crossing], tol: int
) -> tuple[list[tuple[int, int]], list[Crossing], list[Crossing]]:
    """Pairs each labelled crossing, in frame order, with the nearest unpaired counted one of
    the same direction within `tol` frames: (pairs of frames, missed labels, extra counts)."""
    free = list(counted)
    pairs, missed = [], []
    for f, d in sorted(labelled):
        near = [c for c in free if c[1] == d and abs(c[0] - f) <= tol]
        if not near:
            missed.append((f, d))
            continue
        best = min(near, key=lambda c: abs(c[0] - f))
        free.remove(best)
        pairs.append((f, best[0]))
    return pairs, missed, free
