"""Analytics rules, shaped like ONVIF's (Analytics Service Specification, Annex A).

Each rule is a frozen dataclass named after its ONVIF rule type (`tt:LineDetector`,
`tt:LineCounting`, `tt:FieldDetector`, `tt:OccupancyCounting`, `tt:LoiteringDetector`) and
carries its ONVIF parameters: `segments` (tt:Polyline), `field` (tt:Polygon), `direction`
(tt:Direction), `classes` (ClassFilter, tt:ObjectType names), ... Geometry is normalised to
0..1 with y down, as privacy zones are; the ONVIF service converts to its [-1, 1] y-up frame.
`QueueMonitor` has no ONVIF counterpart: its type is `vcam:QueueMonitor`.

One parser, `rule_from_json`, serves the kept file, the configuration and the services; every
error is a RuleError naming the rule and the parameter.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import itertools
import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from vcam.analytics.geometry import Point, polygon_area
from vcam.analytics.metadata import CLASS_TYPES
from vcam.errors import VcamError
from vcam.media.types import ObjectClass

FILE_VERSION = 1
MAX_RULES = 32
MAX_POINTS = 32
MAX_NAME = 64
MAX_RESET_TIMES = 8
MAX_INTERVAL_S = 3600.0
MAX_THRESHOLD_S = 86400.0
OBJECT_CLASSES: dict[str, ObjectClass] = {v: k for k, v in CLASS_TYPES.items()}  # tt:ObjectType

Polyline = tuple[Point, ...]
Polygon = tuple[Point, ...]


class RuleError(VcamError, ValueError):
    """An invalid rule or rule set. `rule` is the rule's name, `param` the parameter at fault
    (JSON / configuration key), either may be empty."""

    def __init__(self, rule: str, message: str, param: str = "") -> None:
        super().__init__(f"rule {rule!r}: {message}" if rule else message)
        self.rule = rule
        self.param = param


class Direction(enum.StrEnum):
    """tt:Direction: Left / Right are the directions of crossing as seen walking along the line
    from its first point to its second (ONVIF Analytics, LineDetector)."""

    ANY = "Any"
    LEFT = "Left"
    RIGHT = "Right"


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Rule:
    name: str = ""
    classes: tuple[str, ...] = ("Human",)  # ClassFilter: which objects the rule applies to

    KIND: ClassVar[str] = ""
    ONVIF_TYPE: ClassVar[str] = ""

    @property
    def object_classes(self) -> frozenset[ObjectClass]:
        return frozenset(OBJECT_CLASSES[c] for c in self.classes if c in OBJECT_CLASSES)

    @classmethod
    def params(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.KIND}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            elif isinstance(value, enum.Enum):
                value = value.value
            out[f.name] = value
        return out

    def check(self) -> None:
        name = self.name
        if not name or len(name) > MAX_NAME or not name.isprintable() or name != name.strip():
            raise RuleError(name[:80], f"a name must be 1..{MAX_NAME} printable characters", "name")
        if not self.classes:
            raise RuleError(name, "classes: at least one object class is needed", "classes")
        for c in self.classes:
            if c not in OBJECT_CLASSES:
                known = ", ".join(OBJECT_CLASSES)
                raise RuleError(name, f"classes: unknown class {c!r} (one of {known})", "classes")
        if len(set(self.classes)) != len(self.classes):
            raise RuleError(name, "classes: listed twice", "classes")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LineDetector(_Rule):
    """An event (tns1:RuleEngine/LineDetector/Crossed) for each object crossing the polyline."""

    segments: Polyline = ()
    direction: Direction = Direction.ANY

    KIND: ClassVar[str] = "LineDetector"
    ONVIF_TYPE: ClassVar[str] = "tt:LineDetector"

    def check(self) -> None:
        super().check()
        _check_polyline(self.name, self.segments)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Counting(_Rule):
    reset_times: tuple[str, ...] = ()  # ResetTime: local times of day, "HH:MM" or "HH:MM:SS"
    report_interval_s: float = 0.0  # ReportTimeInterval: at most one Count change per interval

    def check(self) -> None:
        super().check()
        if len(self.reset_times) > MAX_RESET_TIMES:
            raise RuleError(self.name, f"at most {MAX_RESET_TIMES} reset times", "reset_times")
        self.reset_clock_times()
        if not 0.0 <= self.report_interval_s <= MAX_INTERVAL_S:
            raise RuleError(
                self.name,
                f"report_interval_s must be in [0, {MAX_INTERVAL_S:g}]",
                "report_interval_s",
            )

    def reset_clock_times(self) -> tuple[dt.time, ...]:
        out = []
        for text in self.reset_times:
            try:
                out.append(dt.time.fromisoformat(text))
            except (TypeError, ValueError):
                raise RuleError(
                    self.name, f"reset time {text!r} is not HH:MM[:SS]", "reset_times"
                ) from None
        return tuple(out)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LineCounting(_Counting):
    """Counts objects crossing the polyline: Count (tns1:RuleEngine/CountAggregation/Counter)
    is the crossings in `direction` (both ways for Any) since the last reset."""

    segments: Polyline = ()
    direction: Direction = Direction.ANY

    KIND: ClassVar[str] = "LineCounting"
    ONVIF_TYPE: ClassVar[str] = "tt:LineCounting"

    def check(self) -> None:
        super().check()
        _check_polyline(self.name, self.segments)


@dataclasses.dataclass(frozen=True, kw_only=True)
class OccupancyCounting(_Counting):
    """How many objects are inside: either those seen inside `field` (a camera that sees the
    whole area), or, as ONVIF defines it, crossings of the barrier `segments`: +1 left to
    right, -1 right to left (tns1:RuleEngine/CountAggregation/OccupancyCounter)."""

    field: Polygon = ()
    segments: Polyline = ()

    KIND: ClassVar[str] = "OccupancyCounting"
    ONVIF_TYPE: ClassVar[str] = "tt:OccupancyCounting"

    def check(self) -> None:
        super().check()
        if bool(self.field) == bool(self.segments):
            raise RuleError(self.name, "give either field or segments, not both", "field")
        if self.field:
            _check_polygon(self.name, self.field)
        else:
            _check_polyline(self.name, self.segments)


@dataclasses.dataclass(frozen=True, kw_only=True)
class FieldDetector(_Rule):
    """IsInside (tns1:RuleEngine/FieldDetector/ObjectsInside): one or more objects inside."""

    field: Polygon = ()

    KIND: ClassVar[str] = "FieldDetector"
    ONVIF_TYPE: ClassVar[str] = "tt:FieldDetector"

    def check(self) -> None:
        super().check()
        _check_polygon(self.name, self.field)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoiteringDetector(_Rule):
    """Objects inside `field` (the whole picture when empty) longer than the threshold
    (tns1:RuleEngine/LoiteringDetector/ObjectIsLoitering)."""

    field: Polygon = ()
    time_threshold_s: float = 30.0  # TimeThreshold

    KIND: ClassVar[str] = "LoiteringDetector"
    ONVIF_TYPE: ClassVar[str] = "tt:LoiteringDetector"

    def check(self) -> None:
        super().check()
        if self.field:
            _check_polygon(self.name, self.field)
        if not 0.0 < self.time_threshold_s <= MAX_THRESHOLD_S:
            raise RuleError(
                self.name,
                f"time_threshold_s must be in (0, {MAX_THRESHOLD_S:g}]",
                "time_threshold_s",
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class QueueMonitor(_Rule):
    """A queue area: its length and the average wait of the people who left it (no ONVIF rule
    exists: tns1:RuleEngine/QueueMonitor/Queue is vcam's). Stays shorter than `min_wait_s`
    (people walking through) do not count as waits."""

    field: Polygon = ()
    min_wait_s: float = 2.0

    KIND: ClassVar[str] = "QueueMonitor"
    ONVIF_TYPE: ClassVar[str] = "vcam:QueueMonitor"

    def check(self) -> None:
        super().check()
        _check_polygon(self.name, self.field)
        if not 0.0 <= self.min_wait_s <= MAX_INTERVAL_S:
            raise RuleError(
                self.name, f"min_wait_s must be in [0, {MAX_INTERVAL_S:g}]", "min_wait_s"
            )


Rule = (
    LineDetector
    | LineCounting
    | FieldDetector
    | OccupancyCounting
    | LoiteringDetector
    | QueueMonitor
)
RULE_TYPES: dict[str, type[Rule]] = {
    cls.KIND: cls
    for cls in (
        LineDetector,
        LineCounting,
        FieldDetector,
        OccupancyCounting,
        LoiteringDetector,
        QueueMonitor,
    )
}


def _check_points(name: str, points: tuple[Point, ...], param: str, least: int) -> None:
    if not least <= len(points) <= MAX_POINTS:
        raise RuleError(name, f"{param}: {least}..{MAX_POINTS} points are needed", param)
    for x, y in points:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise RuleError(name, f"{param}: point {(x, y)} is outside 0..1", param)


def _check_polyline(name: str, points: Polyline) -> None:
    _check_points(name, points, "segments", 2)
    for a, b in itertools.pairwise(points):
        if math.dist(a, b) < 1e-6:
            raise RuleError(name, f"segments: a segment of zero length at {a}", "segments")


def _check_polygon(name: str, points: Polygon) -> None:
    _check_points(name, points, "field", 3)
    if polygon_area(points) < 1e-6:
        raise RuleError(name, "field: the polygon has no area", "field")


# ---------------------------------------------------------------------------------------------
# Parsing


def rule_from_json(data: Any) -> Rule:
    """The rule a JSON object describes ({"type": "LineCounting", "name": ..., ...}); parameters
    left out take their defaults. RuleError for anything invalid."""
    if not isinstance(data, Mapping):
        raise RuleError("", "a rule must be an object")
    name = data.get("name", "")
    name = name if isinstance(name, str) else ""
    kind = data.get("type")
    cls = RULE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise RuleError(name, f"unknown type {kind!r} (one of {', '.join(RULE_TYPES)})", "type")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "type":
            continue
        if key not in cls.params():
            raise RuleError(name, f"{key} is not a parameter of {kind}", str(key))
        kwargs[key] = _coerce(name, key, value)
    rule = cls(**kwargs)
    rule.check()
    return rule


def rule_from_flat(values: Mapping[str, Any], defaults: Mapping[str, Any]) -> Rule:
    """The rule of a flat record holding every parameter of every type (a configuration
    `[[analytics.rules]]` table): parameters of other types must keep their `defaults`."""
    kind = values.get("type")
    cls = RULE_TYPES.get(kind) if isinstance(kind, str) else None
    name = str(values.get("name", ""))
    if cls is None:
        raise RuleError(name, f"unknown type {kind!r} (one of {', '.join(RULE_TYPES)})", "type")
    data: dict[str, Any] = {"type": kind}
    for key, value in values.items():
        if key in cls.params():
            data[key] = value
        elif key != "type" and value != defaults.get(key):
            raise RuleError(name, f"{key} is not a parameter of {kind}", key)
    return rule_from_json(data)


def _coerce(name: str, key: str, value: Any) -> Any:
    if key in ("segments", "field"):
        return _points(name, key, value)
    if key in ("classes", "reset_times"):
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise RuleError(name, f"{key} must be a list of strings", key)
        return tuple(value)
    if key == "direction":
        try:
            return Direction(value)
        except ValueError:
            choices = ", ".join(d.value for d in Direction)
            raise RuleError(name, f"direction must be one of {choices}", key) from None
    if key == "name":
        if not isinstance(value, str):
            raise RuleError("", "a name must be a string", key)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RuleError(name, f"{key} must be a finite number", key)
    return float(value)


def _points(name: str, key: str, value: Any) -> tuple[Point, ...]:
    if not isinstance(value, list | tuple):
        raise RuleError(name, f"{key} must be a list of [x, y] points", key)
    out = []
    for p in value:
        if (
            not isinstance(p, list | tuple)
            or len(p) != 2
            or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in p)
            or not all(math.isfinite(c) for c in p)
        ):
            raise RuleError(name, f"{key}: {p!r} is not an [x, y] point", key)
        out.append((float(p[0]), float(p[1])))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# The rule set


@dataclasses.dataclass(frozen=True)
class RuleSet:
    """Every rule of the camera (one video source, one analytics configuration).

    `configured`: the configuration's rules this set was built from, so that an edited
    configuration can take over again (see vcam.analytics.store)."""

    rules: tuple[Rule, ...] = ()
    configured: tuple[Rule, ...] = ()
    revision: int = 0

    def get(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.rules)

    def check(self) -> None:
        if len(self.rules) > MAX_RULES:
            raise RuleError("", f"at most {MAX_RULES} rules")
        seen: set[str] = set()
        for r in self.rules:
            r.check()
            if r.name in seen:
                raise RuleError(r.name, "two rules have this name", "name")
            seen.add(r.name)

    def created(self, rules: Iterable[Rule]) -> RuleSet:
        """This set with `rules` added (RuleError if a name is taken)."""
        out = list(self.rules)
        for r in rules:
            if any(o.name == r.name for o in out):
                raise RuleError(r.name, "a rule of this name exists already", "name")
            out.append(r)
        return dataclasses.replace(self, rules=tuple(out))

    def modified(self, rules: Iterable[Rule]) -> RuleSet:
        """This set with the rules of the same names replaced (RuleError for an unknown one)."""
        out = list(self.rules)
        for r in rules:
            i = next((i for i, o in enumerate(out) if o.name == r.name), None)
            if i is None:
                raise RuleError(r.name, "no rule of this name", "name")
            out[i] = r
        return dataclasses.replace(self, rules=tuple(out))

    def deleted(self, names: Iterable[str]) -> RuleSet:
        """This set without the named rules (RuleError for an unknown one)."""
        gone = set(names)
        for name in gone:
            if self.get(name) is None:
                raise RuleError(name, "no rule of this name", "name")
        return dataclasses.replace(self, rules=tuple(r for r in self.rules if r.name not in gone))

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FILE_VERSION,
            "rules": [r.to_json() for r in self.rules],
            "configured": [r.to_json() for r in self.configured],
            "revision": self.revision,
        }

    @classmethod
    def from_json(cls, data: Any) -> RuleSet:
        if not isinstance(data, dict) or data.get("version") != FILE_VERSION:
            raise RuleError("", "not a vcam analytics rules file (unknown version)")
        rules, configured = data.get("rules", []), data.get("configured", [])
        revision = data.get("revision", 0)
        if not isinstance(rules, list) or not isinstance(configured, list):
            raise RuleError("", "rules and configured must be lists")
        if isinstance(revision, bool) or not isinstance(revision, int):
            raise RuleError("", "revision must be an integer")
        out = cls(
            tuple(rule_from_json(r) for r in rules),
            tuple(rule_from_json(r) for r in configured),
            revision,
        )
        out.check()
        return out
