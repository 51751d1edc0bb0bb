"""The synthetic scene: deterministic, exact truth, every face size band, edges, real pixels."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import numpy as np
import pytest

from vcam.config import SourceConfig, SyntheticConfig
from vcam.media.types import GroundTruth, ObjectClass
from vcam.sources import SyntheticScene, open_source

CFG = SyntheticConfig(width=1280, height=720, fps=30.0, seed=1, duration_s=20.0)
BANDS = ((0, 16), (16, 24), (24, 32), (32, 64), (64, 10_000))


@pytest.fixture(scope="module")
def scene() -> SyntheticScene:
    return SyntheticScene(CFG)


@pytest.fixture(scope="module")
def sampled(scene: SyntheticScene) -> list[tuple[int, tuple[GroundTruth, ...]]]:
    return [(i, scene.render(i)[1]) for i in range(0, scene.period_frames, 7)]


def test_deterministic(scene: SyntheticScene) -> None:
    other = SyntheticScene(CFG)
    for i in (0, 123, 599):
        a, ta = scene.render(i)
        b, tb = other.render(i)
        assert a.shape == (720, 1280, 3) and a.dtype == np.uint8
        assert np.array_equal(a, b) and ta == tb
    assert np.array_equal(scene.render(5)[0], scene.render(5 + scene.period_frames)[0])
    reseeded = SyntheticScene(SyntheticConfig(seed=2))
    assert not np.array_equal(scene.render(5)[0], reseeded.render(5)[0])


def test_faces_cover_every_size_band(sampled: list[tuple[int, tuple[GroundTruth, ...]]]) -> None:
    walkers: dict[int, set[str]] = defaultdict(set)
    for _, truth in sampled:
        for g in truth:
            if g.cls is ObjectClass.FACE and g.box.x1 > 0 and g.box.x2 < CFG.width:
                band = next(b for b, (lo, hi) in enumerate(BANDS) if lo <= g.box.height < hi)
                walkers[band].add(g.identity)
    assert all(len(walkers[b]) >= 2 for b in range(len(BANDS))), dict(walkers)
    heights = [g.box.height for _, t in sampled for g in t if g.cls is ObjectClass.FACE]
    assert min(heights) <= 13 and max(heights) >= 190
    sources = {ident.split("-", 1)[1] for ids in walkers.values() for ident in ids}
    assert len(sources) >= 4, sources  # several real identities


def test_every_face_has_a_person(sampled: list[tuple[int, tuple[GroundTruth, ...]]]) -> None:
    for _, truth in sampled:
        persons = {g.identity: g.box for g in truth if g.cls is ObjectClass.PERSON}
        for g in truth:
            if g.cls is ObjectClass.FACE and g.identity in persons:
                assert persons[g.identity].intersection(g.box) == pytest.approx(g.box.area)
        assert persons


def test_faces_enter_and_leave_at_edges(sampled: list[tuple[int, tuple[GroundTruth, ...]]]) -> None:
    cut_left = cut_right = 0
    for _, truth in sampled:
        for g in truth:
            b = g.box
            assert 0 <= b.x1 < b.x2 <= CFG.width and 0 <= b.y1 < b.y2 <= CFG.height
            if g.cls is ObjectClass.FACE and b.width < 0.8 * b.height:  # narrower than a face
                cut_left += b.x1 == 0
                cut_right += b.x2 == CFG.width
    assert cut_left >= 2 and cut_right >= 2


def test_heads_turn(scene: SyntheticScene) -> None:
    ratios: dict[str, set[float]] = defaultdict(set)
    for i in range(0, 300, 5):
        for g in scene.render(i)[1]:
            inside = g.box.x1 > 0 and g.box.x2 < CFG.width
            if g.cls is ObjectClass.FACE and inside and g.box.height >= 32:
                ratios[g.identity].add(round(g.box.width / g.box.height, 2))
    assert sum(len(r) >= 2 for r in ratios.values()) >= 3  # a turned head is narrower


def test_face_pixels_are_really_there(scene: SyntheticScene) -> None:
    empty = scene.background.astype(np.int16)
    checked = 0
    for i in (0, 150, 450):
        rgb, truth = scene.render(i)
        for g in truth:
            if g.cls is not ObjectClass.FACE:
                continue
            x1, y1, x2, y2 = g.box.to_pixels(CFG.width, CFG.height)
            diff = np.abs(rgb[y1:y2, x1:x2].astype(np.int16) - empty[y1:y2, x1:x2]).mean()
            assert diff > 12, (g, diff)
            checked += 1
    assert checked >= 20


def test_render_is_cheap(scene: SyntheticScene) -> None:
    scene.render(0)
    t0 = time.perf_counter()
    for i in range(30):
        scene.render(i)
    assert (time.perf_counter() - t0) / 30 < 0.03  # ~5 ms here; loose for slow CI


def test_source_frames_carry_truth() -> None:
    cfg = SourceConfig(uri="synthetic", realtime=False, synthetic=SyntheticConfig(640, 360, 15))
    src = open_source(cfg)
    assert src.fps == 15.0
    scene = SyntheticScene(cfg.synthetic)
    stop = threading.Event()
    frames = []
    for f in src.frames(stop):
        frames.append(f)
        if len(frames) == 4:
            stop.set()
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [f.pts_us for f in frames] == [0, 66_667, 133_333, 200_000]
    for f in frames:
        rgb, truth = scene.render(f.index)
        assert f.truth == truth and any(g.cls is ObjectClass.FACE for g in truth)
        assert (f.width, f.height) == (640, 360) and f.frame.format.name == "yuv420p"
        back = f.frame.to_ndarray(format="rgb24").astype(np.int16)
        assert np.abs(back - rgb).mean() < 6  # the same picture, through yuv420p


def test_synthetic_source_paced() -> None:
    cfg = SourceConfig(uri="synthetic", realtime=True, synthetic=SyntheticConfig(320, 240, 20))
    stop = threading.Event()
    t0 = time.monotonic()
    for n, _ in enumerate(open_source(cfg).frames(stop), 1):
        if n == 11:
            stop.set()
    assert 0.4 <= time.monotonic() - t0 <= 1.5  # 10 intervals at 20 fps = 0.5 s
