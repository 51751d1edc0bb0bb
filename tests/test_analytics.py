"""Analytics: geometry, rules, counting on hand-made tracks, fragmentation, property events,
configuration and persistence, motion on real frames, and the real pipeline on the synthetic
scene against its ground truth."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import onvif_parsers
import pytest

from vcam.analytics.engine import AnalyticsEngine, FrameFacts
from vcam.analytics.geometry import distance_to_polygon, segments_intersect, side_of
from vcam.analytics.rules import RuleError, RuleSet, rule_from_json
from vcam.analytics.scoring import Crossing, CrossingLabels, match_crossings
from vcam.analytics.store import AnalyticsRuleStore, configured_rules
from vcam.config import AnalyticsConfig, config_from_dict
from vcam.errors import ConfigError
from vcam.events.broker import EventBroker
from vcam.events.message import EventMessage, PropertyOperation
from vcam.media.types import Box, MaskedFrame, ObjectClass, Track, Verdict
from vcam.sources.stretch import FileStretch

W, H = 1000, 500
FPS_US = 33_333
QUIET = AnalyticsConfig(motion=False, object_events=False)
DOWN = [[0.5, 0.0], [0.5, 1.0]]  # a vertical line drawn downwards: its left is picture-right
FIELD = [[0.4, 0.0], [1.0, 0.0], [1.0, 1.0], [0.4, 1.0]]


def person(tid: int, x: float, feet: float = 400.0, h: float = 100.0) -> Track:
    return Track(tid, ObjectClass.PERSON, Box(x - 20, feet - h, x + 20, feet), 0.9)


class Rig:
    """An engine on a real broker and store, fed hand-made tracks frame by frame."""

    def __init__(self, rules: Sequence[dict[str, object]], cfg: AnalyticsConfig = QUIET) -> None:
        self.broker = EventBroker()
        self.msgs: list[EventMessage] = []
        self.broker.subscribe(self.msgs.append)
        self.store = AnalyticsRuleStore(RuleSet(tuple(rule_from_json(r) for r in rules)))
        self.now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
        self.engine = AnalyticsEngine(self.broker, self.store, cfg, clock=lambda: self.now)
        self.index = 0

    def feed(self, frames: Sequence[Sequence[Track]], closed: bool = False) -> None:
        for tracks in frames:
            pts = self.index * FPS_US
            self.engine.observe(FrameFacts(self.index, pts, W, H, tuple(tracks), closed))
            self.index += 1
            self.now += timedelta(microseconds=FPS_US)

    def of(self, topic: str, rule: str | None = None) -> list[EventMessage]:
        return [
            m
            for m in self.msgs
            if m.topic.endswith(topic) and (rule is None or m.item("Rule") == rule)
        ]

    def status(self, name: str) -> object:
        return next(r for r in self.engine.snapshot().rules if r.name == name)


def walk(tid: int, x0: float, x1: float, frames: int, feet: float = 400.0) -> list[Track]:
    return [person(tid, x0 + (x1 - x0) * i / (frames - 1), feet) for i in range(frames)]


def frames_of(*walkers: list[Track]) -> list[list[Track]]:
    return [[t for t in ts if t is not None] for ts in itertools.zip_longest(*walkers)]


# -- geometry ---------------------------------------------------------------------------------


def test_sides_follow_onvif_left_right_on_the_picture() -> None:
    a, b = (0.5, 0.0), (0.5, 1.0)  # walking down the picture, the left hand points right
    assert side_of(a, b, (0.7, 0.5)) < 0 < side_of(a, b, (0.3, 0.5))
    a, b = (0.0, 0.5), (1.0, 0.5)  # walking right, the left is up (y down)
    assert side_of(a, b, (0.5, 0.2)) < 0 < side_of(a, b, (0.5, 0.8))
    assert segments_intersect((0.4, 0.5), (0.6, 0.5), (0.5, 0.0), (0.5, 1.0))
    assert not segments_intersect((0.4, 1.2), (0.6, 1.2), (0.5, 0.0), (0.5, 1.0))
    square = ((0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8))
    assert distance_to_polygon((0.5, 0.5), square) == pytest.approx(0.3)
    assert distance_to_polygon((0.9, 0.5), square) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("direction", "rightwards", "leftwards"),
    [("Any", 1, 1), ("Left", 1, 0), ("Right", 0, 1)],
)
def test_line_detector_direction(direction: str, rightwards: int, leftwards: int) -> None:
    rig = Rig([{"type": "LineDetector", "name": "l", "segments": DOWN, "direction": direction}])
    rig.feed(frames_of(walk(1, 200, 800, 40)))  # picture-right: onto the line's left
    assert len(rig.of("Crossed")) == rightwards
    rig.feed(frames_of(walk(2, 800, 200, 40)))
    assert len(rig.of("Crossed")) == rightwards + leftwards
    for m in rig.of("Crossed"):
        assert m.operation is None and m.item("ClassTypes") == "Human"
        assert m.source == (
            ("VideoSourceConfigurationToken", "video_source_config"),
            ("VideoAnalyticsConfigurationToken", "analytics_config"),
            ("Rule", "l"),
        )


def test_counting_is_exact_and_ignores_jitter_and_walking_round_the_end() -> None:
    short = [[0.5, 0.0], [0.5, 0.5]]  # ends at y=250 px
    rig = Rig([{"type": "LineCounting", "name": "c", "segments": short}])
    people = [
        walk(1, 100, 900, 60, feet=200),  # crosses rightwards
        walk(2, 880, 120, 70, feet=150),  # crosses leftwards
        walk(3, 300, 700, 50, feet=240),  # crosses rightwards
        walk(4, 100, 900, 60, feet=400),  # passes below the end: no crossing
        # someone standing on the line, feet jittering 2 px either side of it
        [person(5, 500 + (2 if i % 2 else -2), feet=100) for i in range(80)],
    ]
    rig.feed(frames_of(*people))
    status = rig.status("c")
    assert (status.entered, status.exited, status.count) == (1, 2, 3)  # type: ignore[attr-defined]
    counts = [m.item("Count") for m in rig.of("Counter")]
    assert counts == ["0", "1", "2", "3"]
    assert rig.of("Counter")[0].operation is PropertyOperation.INITIALIZED


def test_reset_times_and_report_interval() -> None:
    rule = {
        "type": "LineCounting",
        "name": "c",
        "segments": DOWN,
        "reset_times": ["12:00:05"],
        "report_interval_s": 1.0,
    }
    rig = Rig([rule])
    rig.feed(frames_of(walk(1, 300, 700, 20), walk(2, 310, 710, 20, feet=200)))  # two at once
    rig.feed([[]] * 15)
    # aggregated: one change for both crossings, sent once the interval passed
    assert [m.item("Count") for m in rig.of("Counter")] == ["0", "2"]
    rig.feed([[]] * 150)  # the clock passes 12:00:05
    assert rig.of("Counter")[-1].item("Count") == "0"
    rig.engine.reset_counters()
    assert rig.status("c").count == 0  # type: ignore[attr-defined]


# -- fragmentation ----------------------------------------------------------------------------


@pytest.mark.parametrize("gap", [1, 3, 5])
def test_a_person_lost_and_found_with_a_new_track_counts_once(gap: int) -> None:
    cfg = AnalyticsConfig(motion=False, object_events=False, reid_frames=5)
    rig = Rig([{"type": "LineCounting", "name": "c", "segments": DOWN}], cfg)
    path = walk(1, 300, 700, 41)
    before, after = path[:18], path[18 + gap :]
    after = [person(7, t.box.center[0]) for t in after]  # the tracker gave it a new id
    rig.feed([[t] for t in before] + [[]] * gap + [[t] for t in after])
    assert rig.status("c").count == 1  # type: ignore[attr-defined]


def test_a_held_track_beside_its_successor_counts_once() -> None:
    rig = Rig([{"type": "LineDetector", "name": "l", "segments": DOWN}])
    frames: list[list[Track]] = []
    for i in range(40):
        x = 300 + 10 * i
        if i < 15:
            frames.append([person(1, x)])
        elif i < 25:  # track 1 lost: held, drifting at half speed; track 2 is the person
            frames.append([person(1, 440 + 5 * (i - 14)), person(2, x)])
        else:
            frames.append([person(2, x)])
    rig.feed(frames)
    assert len(rig.of("Crossed")) == 1


def test_a_new_person_is_a_new_object() -> None:
    rig = Rig([{"type": "LineCounting", "name": "c", "segments": DOWN}], QUIET)
    first = walk(1, 300, 700, 20)
    second = walk(2, 100, 900, 40, feet=250)  # appears far away right after the first is lost
    rig.feed([[t] for t in first] + [[t] for t in second])
    assert rig.status("c").count == 2  # type: ignore[attr-defined]


def test_a_track_switched_to_a_person_beside_the_line_does_not_count() -> None:
    """The tracker hands a person's track to someone just across the line (the first walked
    behind the second, who had no track yet). 60 px sideways is 0.6 box heights, too far for
    one frame; in coordinates normalised to a 2:1 picture it looked like 0.3 heights, and the
    object followed the track across the line: a crossing nobody made."""
    rig = Rig([{"type": "LineCounting", "name": "c", "segments": DOWN}])
    walker = [person(1, 400 + 5 * i) for i in range(15)]  # stops being seen at x=470
    switched = [person(1, 530 + 0.5 * i) for i in range(20)]  # the track is now someone else
    rig.feed([[t] for t in walker + switched])
    assert rig.status("c").count == 0  # type: ignore[attr-defined]
    # The same step made by a fast walker over a few frames is a crossing.
    rig.feed([[person(2, 400 + 20 * i)] for i in range(12)])
    assert rig.status("c").count == 1  # type: ignore[attr-defined]


def test_a_lost_person_does_not_take_a_neighbours_box_across_the_line() -> None:
    """Walker 1 goes behind a person standing just across the line and is lost; the standing
    person's track is renewed meanwhile (the tracker re-detects them as it loses 1), their box
    jittering. Walker 1 then comes back out on its own side. Nobody crossed. Before the
    matching cascade, walker 1's allowance, grown while lost, took the standing person's box
    (one crossing), and the standing person's object, lost in turn, took walker 1's box when it
    came back out (another)."""
    cfg = AnalyticsConfig(motion=False, object_events=False, reid_frames=15)
    rig = Rig([{"type": "LineCounting", "name": "c", "segments": DOWN}], cfg)
    frames = [[person(1, 300 + 10 * i), person(2, 525)] for i in range(17)]  # 1 at 300..460
    jitter = [8, -8, 6, -6, 8, -8, 6, -6]
    frames += [[person(3, 525 + j)] for j in jitter]  # 1 hidden; 2 is track 3 now
    frames += [[person(4, 470 - 10 * i), person(3, 525)] for i in range(15)]  # 1 walks back
    rig.feed(frames)
    assert rig.status("c").count == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(("reid_frames", "objects"), [(5, 1), (0, 2)])
def test_reidentification_window(reid_frames: int, objects: int) -> None:
    """The same fragmented walk: one object with the window, two without it."""
    cfg = AnalyticsConfig(motion=False, object_events=False, reid_frames=reid_frames)
    rig = Rig([{"type": "FieldDetector", "name": "f", "field": FIELD}], cfg)
    path = walk(1, 300, 700, 41)
    after = [person(7, t.box.center[0]) for t in path[28:]]
    rig.feed([[t] for t in path[:25]] + [[]] * 3 + [[t] for t in after])
    ids = {m.item("ObjectId") for m in rig.of("ObjectsInside")} - {""}
    assert len(ids) == objects, ids


# -- fields, occupancy, loitering, queues -----------------------------------------------------


def test_feet_on_the_bottom_edge_are_inside_a_field_that_reaches_it() -> None:
    """The tracker clamps boxes to the frame: a person cut by the bottom edge has feet at
    exactly y = H. A field along that edge must still see them come and go."""
    whole = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
    rig = Rig([{"type": "FieldDetector", "name": "f", "field": whole}])
    rig.feed([[person(1, 500, feet=H)]] * 5 + [[]] * 30)
    states = [m.item("IsInside") for m in rig.of("ObjectsInside")]
    assert states == ["false", "true", "false"]  # Initialized, entered, left


def test_fail_closed_frames_keep_occupancy() -> None:
    rig = Rig(
        [
            {"type": "OccupancyCounting", "name": "o", "field": FIELD},
            {"type": "FieldDetector", "name": "f", "field": FIELD},
        ]
    )
    two = [person(1, 600), person(2, 800)]
    rig.feed([two] * 5)
    assert rig.of("OccupancyCounter")[-1].item("Count") == "2"
    sent = len(rig.msgs)
    rig.feed([[]] * 100, closed=True)  # no information for 3 s
    assert len(rig.msgs) == sent and rig.status("o").count == 2  # type: ignore[attr-defined]
    rig.feed([[person(11, 601), person(12, 801)]] * 5)  # the tracker starts over: new ids
    assert len(rig.msgs) == sent and rig.status("o").count == 2  # type: ignore[attr-defined]
    rig.feed([[person(12, 801)]] * 10)  # one really left
    assert rig.of("OccupancyCounter")[-1].item("Count") == "1"
    inside = rig.of("ObjectsInside")[-1]
    assert inside.data[0] == ("IsInside", "true") and len(inside.item("ObjectId").split()) == 1


def test_occupancy_barrier_counts_in_minus_out() -> None:
    rig = Rig([{"type": "OccupancyCounting", "name": "o", "segments": [[0.5, 1.0], [0.5, 0.0]]}])
    rig.feed(frames_of(walk(1, 200, 800, 30), walk(2, 250, 850, 30)))  # two in (upward line)
    rig.feed(frames_of(walk(3, 800, 200, 30)))  # one out
    assert rig.status("o").count == 1  # type: ignore[attr-defined]
    rig.feed(frames_of(walk(4, 800, 200, 30), walk(5, 850, 250, 30)))
    assert rig.status("o").count == 0  # type: ignore[attr-defined]


def test_loitering_after_the_threshold() -> None:
    rig = Rig([{"type": "LoiteringDetector", "name": "lo", "field": FIELD, "time_threshold_s": 1}])
    rig.feed([[person(1, 700)]] * 29)  # 28 frame intervals: 0.93 s
    assert rig.of("ObjectIsLoitering")[-1].item("IsLoitering") == "false"
    rig.feed([[person(1, 700)]] * 3)  # 31 intervals: 1.03 s
    last = rig.of("ObjectIsLoitering")[-1]
    assert last.item("IsLoitering") == "true" and last.item("ObjectId") == "1"
    rig.feed([[t] for t in walk(1, 700, 100, 30)])  # walks out
    assert rig.of("ObjectIsLoitering")[-1].item("IsLoitering") == "false"


def test_queue_length_and_average_wait() -> None:
    rig = Rig([{"type": "QueueMonitor", "name": "q", "field": FIELD, "min_wait_s": 1.0}])
    rig.feed([[person(1, 600), person(2, 800)]] * 61)  # both wait 2 s
    assert rig.of("Queue")[-1].data == (("Count", "2"), ("AverageWaitTime", "PT0.0S"))
    rig.feed([[person(2, 800), person(1, 100)]] * 30)  # 1 left after 2 s
    rig.feed([[person(2, 100)]] * 30)  # 2 left after 3 s
    passer_by = [[person(3, 100)]] * 5 + [[person(3, 500)]] * 10 + [[person(3, 100)]] * 10
    rig.feed(passer_by)
    assert rig.of("Queue")[-1].data == (("Count", "0"), ("AverageWaitTime", "PT2.5S"))


def test_classes_filter_which_objects_a_rule_sees() -> None:
    faces = {"type": "FieldDetector", "name": "faces", "field": FIELD, "classes": ["HumanFace"]}
    rig = Rig([faces])
    rig.feed([[person(1, 700)]] * 3)
    assert rig.of("ObjectsInside")[-1].item("IsInside") == "false"
    rig.feed([[Track(9, ObjectClass.FACE, Box(690, 100, 710, 120), 0.9)]] * 3)
    assert rig.of("ObjectsInside")[-1].item("IsInside") == "true"


# -- properties and the rule store ------------------------------------------------------------


def test_property_lifecycle_follows_the_store() -> None:
    rig = Rig([], AnalyticsConfig(motion=True, object_events=True))
    initial = {(m.topic, m.operation) for m in rig.msgs}
    assert ("tns1:VideoSource/MotionAlarm", PropertyOperation.INITIALIZED) in initial
    assert ("tns1:RuleEngine/MyRuleDetector/PeopleDetect", PropertyOperation.INITIALIZED) in initial
    field = rule_from_json({"type": "FieldDetector", "name": "f", "field": FIELD})
    rig.store.create([field])
    assert rig.msgs[-1].operation is PropertyOperation.INITIALIZED
    assert rig.msgs[-1].data == (("IsInside", "false"), ("ObjectId", ""))
    rig.feed([[person(1, 700)]] * 2)
    changed = rig.of("ObjectsInside")[-1]
    assert changed.operation is PropertyOperation.CHANGED and changed.item("IsInside") == "true"
    people = rig.of("PeopleDetect")[-1]
    assert people.operation is PropertyOperation.CHANGED and people.source == (
        ("Source", "video_source"),
    )
    assert rig.of("ObjectDetection/Object")[-1].item("ClassTypes") == "Human"
    moved = rule_from_json({"type": "FieldDetector", "name": "f", "field": FIELD[:3]})
    rig.store.modify([moved])  # a changed rule starts again
    assert [m.operation for m in rig.msgs[-2:]] == [
        PropertyOperation.DELETED,
        PropertyOperation.INITIALIZED,
    ]
    rig.store.delete(["f"])
    assert rig.msgs[-1].operation is PropertyOperation.DELETED
    assert not [m for m in rig.broker.properties() if m.item("Rule") == "f"]


def test_store_round_trip_and_configuration_changes(tmp_path: Path) -> None:
    path = tmp_path / "analytics.json"
    cfg = config_from_dict(
        {"analytics": {"rules": [{"name": "door", "type": "LineCounting", "segments": DOWN}]}}
    )
    configured = configured_rules(cfg.analytics)
    store = AnalyticsRuleStore.load(path, configured)
    assert not path.exists() and store.settings.names == ("door",)
    queue = rule_from_json({"type": "QueueMonitor", "name": "till", "field": FIELD})
    store.create([queue])
    assert path.stat().st_mode & 0o777 == 0o600
    again = AnalyticsRuleStore.load(path, configured)
    assert again.settings.rules == store.settings.rules == (configured[0], queue)
    with pytest.raises(RuleError, match="exists already"):
        again.create([queue])
    assert AnalyticsRuleStore.load(path, configured).settings.revision == 1  # nothing written
    edited = config_from_dict(
        {"analytics": {"rules": [{"name": "gate", "type": "LineDetector", "segments": DOWN}]}}
    )
    fitted = AnalyticsRuleStore.load(path, configured_rules(edited.analytics))
    assert fitted.settings.names == ("gate", "till")  # the configuration wins, clients' stay
    path.write_text(json.dumps({"version": 1, "rules": [{"type": "Nope", "name": "x"}]}))
    with pytest.raises(RuleError, match=r"damaged analytics rules file .*unknown type"):
        AnalyticsRuleStore.load(path, configured)


BAD_CONFIG = [
    ({"type": "LineDetector", "name": "a"}, "analytics.rules[0].segments: rule 'a': segments"),
    ({"type": "LineDetector", "name": "a", "segments": DOWN, "field": FIELD}, "rules[0].field"),
    ({"type": "Line", "name": "a"}, "analytics.rules[0].type: must be one of"),
    ({"type": "FieldDetector", "name": "", "field": FIELD}, "analytics.rules[0].name: a name must"),
    ({"type": "FieldDetector", "name": "a", "field": [[0, 0], [1, 1], [2, 0]]}, "outside 0..1"),
    ({"type": "FieldDetector", "name": "a", "field": [[0, 0], [0.5, 0.5], [1, 1]]}, "no area"),
    ({"type": "FieldDetector", "name": "a", "field": FIELD, "classes": ["Car"]}, "classes"),
    ({"type": "LineCounting", "name": "a", "segments": DOWN, "reset_times": ["25:00"]}, "reset"),
    ({"type": "LineDetector", "name": "a", "segments": DOWN, "direction": "Up"}, "direction"),
    ({"type": "LoiteringDetector", "name": "a", "time_threshold_s": 0}, "time_threshold_s"),
    ({"type": "OccupancyCounting", "name": "a"}, "analytics.rules[0].field: rule 'a': give"),
]


@pytest.mark.parametrize(("rule", "message"), BAD_CONFIG)
def test_bad_rule_configuration_names_the_key(rule: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=r"analytics\.rules") as err:
        config_from_dict({"analytics": {"rules": [rule]}})
    assert message in str(err.value)


def test_duplicate_rule_names_and_engine_settings_name_the_key() -> None:
    rule = {"type": "LineDetector", "name": "a", "segments": DOWN}
    with pytest.raises(ConfigError, match=r"analytics.rules\[1\].name: two rules"):
        config_from_dict({"analytics": {"rules": [rule, rule]}})
    with pytest.raises(ConfigError, match=r"analytics\.motion_threshold: must be in"):
        config_from_dict({"analytics": {"motion_threshold": 0}})
    with pytest.raises(ConfigError, match=r"analytics.rules\[0\].segmnts: unknown key"):
        config_from_dict({"analytics": {"rules": [{"segmnts": []}]}})


# -- Home Assistant's parser ------------------------------------------------------------------


def _as_zeep(msg: EventMessage) -> SimpleNamespace:
    """The shape in which onvif-zeep hands a NotificationMessage to onvif-parsers."""

    def items(pairs: Sequence[tuple[str, str]]) -> SimpleNamespace:
        return SimpleNamespace(SimpleItem=[SimpleNamespace(Name=n, Value=v) for n, v in pairs])

    body = SimpleNamespace(Source=items(msg.source), Key=items(msg.key), Data=items(msg.data))
    return SimpleNamespace(
        Topic=SimpleNamespace(_value_1=msg.topic), Message=SimpleNamespace(_value_1=body)
    )


def test_home_assistant_parses_the_events() -> None:
    rig = Rig(
        [
            {"type": "LineDetector", "name": "l", "segments": DOWN},
            {"type": "LineCounting", "name": "c", "segments": DOWN},
            {"type": "FieldDetector", "name": "f", "field": FIELD},
        ],
        AnalyticsConfig(motion=True, object_events=True),
    )
    rig.feed(frames_of(walk(1, 300, 700, 20)))
    parsed = {}
    for m in rig.msgs:
        try:
            entities = asyncio.run(onvif_parsers.parse(m.topic, "cam", _as_zeep(m)))
        except onvif_parsers.errors.UnknownTopicError:
            continue
        for e in entities:
            parsed[e.name] = e.value
    assert parsed == {
        "Line Detector Crossed": "1",
        "Count Aggregation Counter": "1",
        "Field Detection": True,
        "Motion Alarm": False,
        "Person Detection": True,  # MyRuleDetector/PeopleDetect and ObjectDetection/Object
        "Face Detection": False,
        "Vehicle Detection": False,
        "Pet Detection": False,
    }


# -- motion on real frames --------------------------------------------------------------------


def _frame(block_x: int | None) -> av.VideoFrame:
    rgb = np.full((180, 320, 3), 90, np.uint8)
    if block_x is not None:
        rgb[60:120, block_x : block_x + 60] = 230
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def _masked(i: int, frame: av.VideoFrame, closed: bool = False) -> MaskedFrame:
    verdict = Verdict(i, (), (), closed)
    return MaskedFrame(frame, i, i * FPS_US, verdict)


def test_motion_alarm_with_hysteresis_on_real_frames() -> None:
    cfg = AnalyticsConfig(motion=True, object_events=False, motion_off_s=0.5)
    rig = Rig([], cfg)
    still = _frame(None)
    for i in range(10):
        rig.engine.on_frame(_masked(i, still))
    assert len(rig.of("MotionAlarm")) == 1  # only Initialized
    for i in range(10, 20):
        rig.engine.on_frame(_masked(i, _frame(10 * (i - 10))))
    assert rig.of("MotionAlarm")[-1].item("State") == "true"
    for i in range(20, 30):  # fully masked frames are no information: no motion, no change
        rig.engine.on_frame(_masked(i, _frame(None if i % 2 else 200), closed=True))
    assert rig.of("MotionAlarm")[-1].item("State") == "true"
    for i in range(30, 60):
        rig.engine.on_frame(_masked(i, still))
    states = [m.item("State") for m in rig.of("MotionAlarm")]
    assert states == ["false", "true", "false"]
    assert rig.engine.snapshot().errors == 0


# -- the real pipeline on real video ----------------------------------------------------------

VTEST_LABELS = Path(__file__).parents[1] / "benchmarks" / "labels" / "vtest_crossings.json"
MATCH_FRAMES = 8  # labelled frames are good to about +-2; the feet are found a little later


def test_real_pipeline_counts_the_labelled_crossings_of_real_video() -> None:
    """OpenCV's vtest.avi (real pedestrians, 10 fps), whose line crossings were labelled by
    hand frame by frame: the offline pipeline (real detectors, tracker, analytics objects,
    LineCounting) counts them at the frames they happen, not just as many of them.
    (benchmarks/counting.py --vtest prints the same run's details.)"""
    from vcam.app import build_detectors
    from vcam.pipeline import Pipeline

    labels = CrossingLabels.load(VTEST_LABELS)
    (line,) = labels.lines
    cfg = config_from_dict({"privacy": {"mode": "face+body"}})
    broker = EventBroker()
    crossed: list[EventMessage] = []
    broker.subscribe(lambda m: crossed.append(m) if m.topic.endswith("Crossed") else None)
    rules = (
        rule_from_json({"type": "LineDetector", "name": "any", "segments": line.segments}),
        rule_from_json({"type": "LineCounting", "name": "count", "segments": line.segments}),
    )
    engine = AnalyticsEngine(broker, AnalyticsRuleStore(RuleSet(rules)), cfg.analytics)
    counted: list[Crossing] = []

    class Counted:
        """After the engine, each frame: the crossings the counting rule added."""

        before = (0, 0)

        def on_frame(self, masked: MaskedFrame) -> None:
            s = next(r for r in engine.snapshot().rules if r.name == "count")
            (i0, o0), self.before = self.before, (s.entered, s.exited)
            counted.extend([(masked.index, "in")] * (s.entered - i0))
            counted.extend([(masked.index, "out")] * (s.exited - o0))

    source = FileStretch(labels.video_path, labels.first, labels.last)
    stats = Pipeline(cfg, source, build_detectors(cfg), [engine, Counted()], live=False).run()
    assert stats.error == "" and engine.frames == labels.last - labels.first + 1
    pairs, missed, extra = match_crossings(line.crossings, counted, MATCH_FRAMES)
    # 15 labelled. At the time of writing 13 to 15 were counted at their frames, and 0 to 3
    # crossings nobody made (walkers meeting beside the line), depending on the detector input.
    assert len(pairs) >= 12 and len(extra) <= 4, (missed, extra)
    assert len(crossed) == len(counted)  # the LineDetector (Any) sees the same crossings
    assert engine.snapshot().errors == 0


def test_crossing_labels_are_checked_and_matched_by_frame_and_direction(tmp_path: Path) -> None:
    labels = CrossingLabels.load(VTEST_LABELS)
    assert labels.last - labels.first + 1 == 450 and len(labels.lines[0].crossings) == 15
    line = {
        "name": "l",
        "segments": [[0.5, 0], [0.5, 1]],
        "crossings": [{"frame": 3, "direction": "in"}],
    }
    bad = tmp_path / "labels.json"
    for broken in ({**line, "out": 1}, {**line, "crossings": [{"frame": 3, "direction": "up"}]}):
        bad.write_text(json.dumps({"video_path": "v", "frame_range": [0, 9], "lines": [broken]}))
        with pytest.raises(ValueError, match=r"^l: "):
            CrossingLabels.load(bad)
    labelled = [(10, "in"), (20, "out"), (30, "in")]
    counted = [(12, "in"), (19, "in"), (21, "out"), (50, "in")]
    pairs, missed, extra = match_crossings(labelled, counted, 5)
    assert pairs == [(10, 12), (20, 21)]  # the nearest of the same direction
    assert missed == [(30, "in")] and extra == [(19, "in"), (50, "in")]
