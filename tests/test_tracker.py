"""Tracker: stable ids, hold after the last detection, look-ahead before the first, clamping."""

from __future__ import annotations

import pytest

from vcam.media.types import Box, ObjectClass
from vcam.privacy.tracker import PixelDetection, Tracker

FACE = ObjectClass.FACE
PERSON = ObjectClass.PERSON
BOTH = frozenset({FACE, PERSON})


def det(x: float, y: float, size: float = 20.0, cls: ObjectClass = FACE) -> PixelDetection:
    return PixelDetection(Box(x, y, x + size, y + size), 0.9, cls)


def covers(region: Box, target: Box) -> bool:
    return region.intersection(target) >= 0.999 * target.area


def test_ids_are_stable_while_an_object_moves() -> None:
    t = Tracker(hold_frames=5, margin=0.0)
    ids = []
    for i in range(20):
        t.update(i, [det(10 + 6 * i, 50), det(300 - 4 * i, 80)])
        ids.append(sorted(tr.track_id for tr in t.active))
    assert all(x == ids[0] for x in ids)
    assert len(ids[0]) == 2


def test_small_fast_face_keeps_its_id_without_overlap() -> None:
    # 12 px face moving 15 px per detection: consecutive boxes never overlap.
    t = Tracker(hold_frames=5, margin=0.0)
    for i in range(10):
        t.update(i * 2, [det(10 + 15 * i, 40, size=12)])
    assert [tr.track_id for tr in t.active] == [1]


def test_classes_are_tracked_apart() -> None:
    t = Tracker(hold_frames=5, margin=0.0)
    t.update(0, [det(10, 10, cls=FACE), det(10, 10, cls=PERSON)])
    t.update(1, [det(11, 10, cls=FACE), det(11, 10, cls=PERSON)])
    assert sorted(tr.cls for tr in t.active) == [FACE, PERSON]
    assert len({tr.track_id for tr in t.active}) == 2


def test_hold_and_motion_prediction_after_last_detection() -> None:
    t = Tracker(hold_frames=4, margin=0.0)
    for i in range(5):
        t.update(i, [det(100 + 10 * i, 50)])
    # After the last detection (frame 4, x=140) the face keeps moving 10 px per frame.
    for k in range(1, 5):
        regions, _ = t.regions(4 + k, 640, 360, 0, BOTH)
        assert len(regions) == 1
        assert covers(regions[0], Box(140 + 10 * k, 50, 160 + 10 * k, 70))
    regions, _ = t.regions(4 + 5, 640, 360, 0, BOTH)
    assert regions == []  # held no longer than hold_frames


def test_lookahead_covers_frames_before_the_first_detection() -> None:
    t = Tracker(hold_frames=4, margin=0.0)
    t.update(10, [det(100, 50)])
    t.update(11, [det(110, 50)])
    for back in (1, 2, 3):
        regions, _ = t.regions(10 - back, 640, 360, 3, BOTH)
        assert len(regions) == 1
        assert covers(regions[0], Box(100 - 10 * back, 50, 120 - 10 * back, 70))
    regions, _ = t.regions(6, 640, 360, 3, BOTH)
    assert regions == []


def test_interpolation_between_sparse_detections() -> None:
    t = Tracker(hold_frames=8, margin=0.0)
    t.update(0, [det(100, 50)])
    t.update(4, [det(140, 50)])
    for i in range(5):
        regions, _ = t.regions(i, 640, 360, 0, BOTH)
        assert covers(regions[0], Box(100 + 10 * i, 50, 120 + 10 * i, 70))


def test_margin_and_clamping_at_the_frame_edge() -> None:
    t = Tracker(hold_frames=4, margin=0.5)
    t.update(0, [PixelDetection(Box(-8, 100, 12, 120), 0.9, FACE)])  # cut by the left edge
    regions, tracks = t.regions(0, 640, 360, 0, BOTH)
    assert regions[0] == Box(0, 90, 22, 130)
    assert tracks[0].box == Box(0, 100, 12, 120)


def test_mode_selects_classes() -> None:
    t = Tracker(hold_frames=4, margin=0.0)
    t.update(0, [det(10, 10, cls=FACE), det(200, 10, size=100, cls=PERSON)])
    faces, _ = t.regions(0, 640, 360, 0, frozenset({FACE}))
    people, _ = t.regions(0, 640, 360, 0, frozenset({PERSON}))
    assert len(faces) == 1 and faces[0].width == 20
    assert len(people) == 1 and people[0].width == 100


def test_reset_forgets_objects_but_never_reuses_ids() -> None:
    t = Tracker(hold_frames=4, margin=0.0)
    t.update(0, [det(10, 10)])
    first = t.active[0].track_id
    t.reset()
    assert t.active == []
    t.update(0, [det(10, 10)])
    assert t.active[0].track_id != first


def test_indexes_must_increase() -> None:
    t = Tracker(hold_frames=4, margin=0.0)
    t.update(3, [])
    with pytest.raises(ValueError):
        t.update(3, [])
