"""The analytics engine: a FrameSink that turns tracked objects into rule events.

Per masked frame (gate thread) it follows the tracker's objects through the re-identification
layer, runs every rule, and publishes to the event broker: rule events and properties, person
and face presence, and motion from frame differences. Property messages follow ONVIF: one
`Initialized` when a rule (or the engine) starts, `Changed` whenever the data change, `Deleted`
when the rule goes. Fail-closed frames carry no tracks: they mean "no information", so nobody
leaves and no timer restarts because of them.

The rules come from an `AnalyticsRuleStore`; the engine follows it live: a change made by the
ONVIF service or the web page (any thread) takes effect, with its messages, at once.
With a counters file the counting rules' counts outlive the run (vcam.analytics.counters): the
rules go on from the kept counts at the start, so the first Initialized already carries them.
An error inside the engine is logged and counted, never raised into the gate thread (that would
stop the camera).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vcam.analytics.counters import CounterKeeper, Snapshot, fingerprint
from vcam.analytics.motion import MotionDetector
from vcam.analytics.objects import ObjectLayer
from vcam.analytics.rules import RuleSet
from vcam.analytics.runtime import Counts, RuleRuntime, RuleStatus, Step, make_runtime
from vcam.analytics.topics import (
    ALL_TOPICS,
    CELL_MOTION,
    FACE_DETECT,
    MOTION_ALARM,
    OBJECT_DETECTION,
    PEOPLE_DETECT,
    xs_bool,
)
from vcam.config import AnalyticsConfig
from vcam.events.broker import EventBroker
from vcam.events.message import EventMessage, Items, PropertyOperation, TopicInfo
from vcam.media.types import MaskedFrame, ObjectClass, Track
from vcam.persist import SettingsStore

log = logging.getLogger("vcam.analytics")

CELL_MOTION_RULE = "MotionDetector"  # the Rule item of tns1:RuleEngine/CellMotionDetector/Motion
OBJECT_DETECTION_RULE = "ObjectDetection"
_CLASS_ORDER = ((ObjectClass.PERSON, "Human"), (ObjectClass.FACE, "HumanFace"))


@dataclass(frozen=True)
class Tokens:
    """The ONVIF tokens the Source items name."""

    video_source: str = "video_source"
    video_source_config: str = "video_source_config"
    analytics_config: str = "analytics_config"


@dataclass(frozen=True)
class AnalyticsSnapshot:
    """Counters and presence for a status page."""

    frames: int
    pts_us: int
    objects: int
    people: int
    faces: int
    motion: bool
    rules: tuple[RuleStatus, ...]
    relinks: int  # tracks re-identified as an earlier object
    mean_cost_us: float  # engine time per frame
    errors: int


@dataclass(frozen=True)
class FrameFacts:
    """What the engine reads of a masked frame besides its pixels."""

    index: int
    pts_us: int
    width: int
    height: int
    tracks: tuple[Track, ...]
    fully_masked: bool

    @classmethod
    def of(cls, masked: MaskedFrame) -> FrameFacts:
        v = masked.verdict
        w, h = int(masked.frame.width), int(masked.frame.height)
        return cls(masked.index, masked.pts_us, w, h, v.tracks, v.fully_masked)


def _local_now() -> datetime:
    return datetime.now().astimezone()


class AnalyticsEngine:
    def __init__(
        self,
        broker: EventBroker,
        store: SettingsStore[RuleSet],
        cfg: AnalyticsConfig | None = None,
        *,
        tokens: Tokens | None = None,
        clock: Callable[[], datetime] = _local_now,
        counters: Path | None = None,
    ) -> None:
        """`clock`: aware local time (reset times of day, message times); `counters`: where
        the counting rules' counts are kept across restarts (None: in memory only)."""
        self.cfg = cfg if cfg is not None else AnalyticsConfig()
        self.broker = broker
        self.tokens = tokens if tokens is not None else Tokens()
        self._clock = clock
        self._lock = threading.Lock()
        self._objects = ObjectLayer(self.cfg.reid_frames)
        self._motion = (
            MotionDetector(self.cfg.motion_threshold, self.cfg.motion_off_s)
            if self.cfg.motion
            else None
        )
        self._runtimes: dict[str, RuleRuntime] = {}
        self._keeper = CounterKeeper(counters) if counters is not None else None
        self._counts: dict[str, Counts] = {}  # what the keeper was handed last
        self._sent: dict[str, tuple[Items, int]] = {}  # rule -> last property data, its pts
        self._presence: dict[ObjectClass, bool] = {}
        self._classes_present = ""
        self._tick = 0
        self._pts_us = 0
        self.frames = 0
        self.errors = 0
        self._cost_ns = 0
        for info in self.topics():
            broker.declare(info)
        local = self._clock()
        utc = local.astimezone(UTC)
        rules = store.settings
        kept = self._keeper.restorable(rules.rules, local) if self._keeper is not None else {}
        with self._lock:
            if self._motion is not None:
                self._send_motion(False, PropertyOperation.INITIALIZED, utc)
            if self.cfg.object_events:
                for cls, info in (
                    (ObjectClass.PERSON, PEOPLE_DETECT),
                    (ObjectClass.FACE, FACE_DETECT),
                ):
                    self._presence[cls] = False
                    self._send(
                        info,
                        self._video_source(),
                        (("State", "false"),),
                        PropertyOperation.INITIALIZED,
                        utc,
                    )
            self._apply(rules, local, kept)
        self._unsubscribe = store.subscribe(self._on_rules)

    def topics(self) -> list[TopicInfo]:
        """The topics this engine may send (declared on the broker at construction)."""
        out = [
            t
            for t in ALL_TOPICS
            if t not in (MOTION_ALARM, CELL_MOTION, PEOPLE_DETECT, FACE_DETECT, OBJECT_DETECTION)
        ]
        if self.cfg.motion:
            out.append(MOTION_ALARM)
            if self.cfg.cell_motion:
                out.append(CELL_MOTION)
        if self.cfg.object_events:
            out += [PEOPLE_DETECT, FACE_DETECT, OBJECT_DETECTION]
        return out

    def close(self) -> None:
        """Stops following the rule store; writes the counts a last time (after the frames)."""
        self._unsubscribe()
        if self._keeper is not None:
            with self._lock:
                self._counts = self._current_counts()
                snapshot = self._counts_snapshot()
            self._keeper.close(snapshot, self._clock())

    # -- frames (gate thread) -----------------------------------------------------------------

    def on_frame(self, masked: MaskedFrame) -> None:
        t0 = time.perf_counter_ns()
        try:
            with self._lock:
                if self._motion is not None and not masked.verdict.fully_masked:
                    self._motion_step(masked, self._utc())
                self._observe(FrameFacts.of(masked))
        except Exception:
            self.errors += 1
            if self.errors <= 3 or self.errors % 1000 == 0:
                log.exception("analytics failed on frame %d (%d errors)", masked.index, self.errors)
        self._cost_ns += time.perf_counter_ns() - t0
        self.frames += 1

    def observe(self, facts: FrameFacts) -> None:
        """The tracking part of `on_frame`, without pixels (no motion)."""
        with self._lock:
            self._observe(facts)

    def _observe(self, f: FrameFacts) -> None:
        self._pts_us = f.pts_us
        if f.fully_masked or f.width <= 0 or f.height <= 0:
            return  # no information: nobody left, nothing moved
        self._tick += 1
        upd = self._objects.update(self._tick, f.pts_us, f.tracks, f.width, f.height)
        local = self._clock()
        utc = local.astimezone(UTC)
        step = Step(self._tick, f.pts_us, utc, local, upd.seen, upd.expired, self._objects.objects)
        for name, rt in self._runtimes.items():
            for data in rt.step(step):
                self._send(rt.topic, self._rule_source(name), data, None, utc)
            self._report(name, rt, f.pts_us, utc)
        self._keep_counts(local)
        if self.cfg.object_events:
            self._presence_step(utc)

    def _report(
        self, name: str, rt: RuleRuntime, pts_us: int, utc: datetime, force: bool = False
    ) -> None:
        data = rt.state(utc)
        if data is None:
            return
        last, last_pts = self._sent[name]
        if data == last or (not force and pts_us - last_pts < rt.report_interval_us):
            return  # unchanged, or aggregated until the report interval passed
        self._sent[name] = (data, pts_us)
        self._send(rt.topic, self._rule_source(name), data, PropertyOperation.CHANGED, utc)

    def _presence_step(self, utc: datetime) -> None:
        present = {o.cls for o in self._objects.objects.values()}
        for cls, info in ((ObjectClass.PERSON, PEOPLE_DETECT), (ObjectClass.FACE, FACE_DETECT)):
            now = cls in present
            if now != self._presence[cls]:
                self._presence[cls] = now
                self._send(
                    info,
                    self._video_source(),
                    (("State", xs_bool(now)),),
                    PropertyOperation.CHANGED,
                    utc,
                )
        classes = " ".join(name for cls, name in _CLASS_ORDER if cls in present)
        if classes != self._classes_present:
            self._classes_present = classes
            source = self._rule_source(OBJECT_DETECTION_RULE)
            self._send(OBJECT_DETECTION, source, (("ClassTypes", classes),), None, utc)

    def _motion_step(self, masked: MaskedFrame, utc: datetime) -> None:
        assert self._motion is not None
        state = self._motion.update(masked.frame, masked.pts_us)
        if state is not None:
            self._send_motion(state, PropertyOperation.CHANGED, utc)

    def _send_motion(self, state: bool, op: PropertyOperation, utc: datetime) -> None:
        self._send(MOTION_ALARM, self._video_source(), (("State", xs_bool(state)),), op, utc)
        if self.cfg.cell_motion:
            source = self._rule_source(CELL_MOTION_RULE)
            self._send(CELL_MOTION, source, (("IsMotion", xs_bool(state)),), op, utc)

    # -- rules (any thread) -------------------------------------------------------------------

    def _on_rules(self, rules: RuleSet) -> None:
        local = self._clock()
        with self._lock:
            self._apply(rules, local)

    def _apply(
        self, rules: RuleSet, local: datetime, kept: dict[str, Counts] | None = None
    ) -> None:
        """Follow a new rule set: a deleted or modified rule sends Deleted (its last data), a
        new or modified one starts from scratch and sends Initialized. Counts go on from the
        `kept` ones (at the start), or across a modification that leaves what they count alone
        (a report interval, reset times: the counters' fingerprint)."""
        utc = local.astimezone(UTC)
        wanted = {r.name: r for r in rules.rules}
        carried: dict[str, Counts] = {}
        for name, rt in list(self._runtimes.items()):
            new = wanted.get(name)
            if new != rt.rule:
                counts = rt.counts()
                if (
                    new is not None
                    and counts is not None
                    and fingerprint(new) == fingerprint(rt.rule)
                ):
                    carried[name] = counts
                del self._runtimes[name]
                sent = self._sent.pop(name, None)
                if sent is not None:
                    source = self._rule_source(name)
                    self._send(rt.topic, source, sent[0], PropertyOperation.DELETED, utc)
        for name, rule in wanted.items():
            if name in self._runtimes:
                continue
            rt = make_runtime(rule)
            restored = carried.get(name) or (kept.get(name) if kept else None)
            if restored is not None:
                rt.restore(restored)
            else:
                rt.reset(local)  # counting from now
            self._runtimes[name] = rt
            data = rt.state(utc)
            if data is not None:
                self._sent[name] = (data, self._pts_us)
                self._send(
                    rt.topic, self._rule_source(name), data, PropertyOperation.INITIALIZED, utc
                )
        self._keep_counts(local)  # deleted rules leave the file

    def reset_counters(self, names: Iterable[str] | None = None) -> None:
        """Counting rules (all, or those named) back to zero now."""
        local = self._clock()
        utc = local.astimezone(UTC)
        with self._lock:
            for name, rt in self._runtimes.items():
                if names is None or name in names:
                    rt.reset(local)
                    self._report(name, rt, self._pts_us, utc, force=True)
            self._keep_counts(local)

    def _keep_counts(self, local: datetime) -> None:
        """Hands the keeper the counting rules' counts when they changed (lock held): a
        reference swap, the disk is its thread's business."""
        if self._keeper is None:
            return
        counts = self._current_counts()
        if counts != self._counts:
            self._counts = counts
            self._keeper.update(self._counts_snapshot(), local)

    def _current_counts(self) -> dict[str, Counts]:
        return {n: c for n, rt in self._runtimes.items() if (c := rt.counts()) is not None}

    def _counts_snapshot(self) -> Snapshot:
        return {n: (self._runtimes[n].rule, c) for n, c in self._counts.items()}

    # -- reading ------------------------------------------------------------------------------

    def snapshot(self) -> AnalyticsSnapshot:
        with self._lock:
            objects = self._objects.objects.values()
            return AnalyticsSnapshot(
                frames=self.frames,
                pts_us=self._pts_us,
                objects=len(objects),
                people=sum(o.cls is ObjectClass.PERSON for o in objects),
                faces=sum(o.cls is ObjectClass.FACE for o in objects),
                motion=self._motion.state if self._motion is not None else False,
                rules=tuple(rt.status() for rt in self._runtimes.values()),
                relinks=self._objects.relinks,
                mean_cost_us=self._cost_ns / 1000 / self.frames if self.frames else 0.0,
                errors=self.errors,
            )

    # -- messages -----------------------------------------------------------------------------

    def _utc(self) -> datetime:
        return self._clock().astimezone(UTC)

    def _video_source(self) -> Items:
        return (("Source", self.tokens.video_source),)

    def _rule_source(self, rule: str) -> Items:
        return (
            ("VideoSourceConfigurationToken", self.tokens.video_source_config),
            ("VideoAnalyticsConfigurationToken", self.tokens.analytics_config),
            ("Rule", rule),
        )

    def _send(
        self,
        info: TopicInfo,
        source: Items,
        data: Items,
        op: PropertyOperation | None,
        utc: datetime,
    ) -> None:
        self.broker.publish(EventMessage(info.topic, source, data, operation=op, utc=utc))
