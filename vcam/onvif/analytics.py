"""The ONVIF Analytics service (ver20): the rule engine's rules and the analytics modules.

Rules are the ONVIF face of the analytics rule store (`model.rules`, vcam/analytics/store.py):
CreateRules, ModifyRules and DeleteRules change that store, which writes
`<data_dir>/analytics.json` first and then tells the analytics engine, so a rule created here
sends its events from the next frame on and survives a restart. GetRules renders what the store
holds, whoever set it (the configuration, the web page, ONVIF).

Each rule type of vcam/analytics/rules.py is an ONVIF rule (Analytics spec, Annex A) with its
parameters: the dataclass field `segments` is the ElementItem `Segments` (tt:Polyline), `field`
is `Field` (tt:Polygon), `classes` is `ClassFilter` and so on (`PARAMS`). `vcam:QueueMonitor`
has no ONVIF counterpart and lives in vcam's namespace. Geometry: ONVIF's normalised frame
coordinates are -1..1 with y up; the store keeps 0..1 with y down, as privacy zones do. The
conversion is exact to the 7 significant digits of xs:float, both ways.

CreateRules accepts empty parameters, as the spec demands: lines default to a horizontal line
across the middle, fields to the whole picture. ModifyRules keeps the parameters a request
leaves out; a different rule type is refused (ter:TypeChangeProhibited).

Analytics modules: one fixed vendor module, `vcam:PrivacyMasking`, the detectors and masking
every output frame goes through. Its parameters Mode, Style, FaceThreshold and PersonThreshold
are the masking settings of the media settings store (`model.media`, vcam/media_settings.py),
the one the web page edits too: ModifyAnalyticsModules changes them there (kept in media.json),
and the camera follows: style and thresholds from the next frame, a mode by loading the
detectors it needs and restarting the pipeline (fully masked meanwhile). A mode whose detector
the configuration disables is refused (ter:ConfigurationConflict).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, get_args

from lxml import etree

from vcam.analytics.engine import Tokens
from vcam.analytics.metadata import metadata_document
from vcam.analytics.rules import (
    MAX_INTERVAL_S,
    MAX_POINTS,
    MAX_RULES,
    MAX_THRESHOLD_S,
    OBJECT_CLASSES,
    RULE_TYPES,
    Direction,
    Rule,
    RuleError,
    RuleSet,
    rule_from_json,
)
from vcam.analytics.topics import RULE_TOPICS
from vcam.config import MaskMode, MaskStyle
from vcam.events.pullpoint import parse_duration
from vcam.events.wire import message_description
from vcam.media.types import Box, ObjectClass, Track
from vcam.media_settings import MediaSettings, MediaSettingsError
from vcam.onvif import faults
from vcam.onvif.faults import RECEIVER, SENDER, SoapFault
from vcam.onvif.model import DeviceModel
from vcam.onvif.service import Handler, OnvifDispatcher, OnvifRequest, arg_text, arg_texts
from vcam.onvif.soap import NSMAP, SERVICE_CAPABILITIES, TAN, TT, AccessClass, Element, qname
from vcam.privacy.gate import MODE_CLASSES

ANALYTICS_VERSION = (20, 12)  # the ver20 analytics.wsdl served from wsdl/
ANALYTICS_PATH = "/onvif/analytics_service"
CONFIG_TOKEN = Tokens().analytics_config  # the one analytics configuration: the events name it
SCHEMA_LOCATION = "http://www.onvif.org/ver10/schema/onvif.xsd"
MODULE_NAME = "PrivacyMasking"
MODULE_TYPE = "vcam:PrivacyMasking"
MODES: tuple[str, ...] = get_args(MaskMode)
STYLES: tuple[str, ...] = get_args(MaskStyle)
# The module's parameters (SimpleItem Name -> PrivacySettings field) and their types.
MODULE_PARAMS: dict[str, tuple[str, str]] = {
    "Mode": ("mode", "xs:string"),
    "Style": ("style", "xs:string"),
    "FaceThreshold": ("face_threshold", "xs:float"),
    "PersonThreshold": ("person_threshold", "xs:float"),
}
# Offered for the thresholds: a closed range inside the (0, 1) the settings accept.
THRESHOLD_RANGE = ("0.01", "0.99")
_XS_FLOAT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_TT, _VCAM = NSMAP["tt"], NSMAP["vcam"]
# Prefixes some clients use in QName values without declaring them (zeep copies strings as
# given): tt is ONVIF's schema namespace in every ONVIF document, vcam is ours.
_WELL_KNOWN = {"tt": _TT, "vcam": _VCAM}
_MIDDLE_LINE = ((0.0, 0.5), (1.0, 0.5))  # defaults for rules created without geometry
_WHOLE_PICTURE = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))


@dataclasses.dataclass(frozen=True)
class Param:
    """How one rule field travels in ONVIF: its parameter name and description type."""

    name: str  # SimpleItem / ElementItem Name
    type: str  # SimpleItemDescription / ElementItemDescription Type (a QName)
    element: bool = False  # an ElementItem (geometry); otherwise a SimpleItem
    repeated: bool = False  # may occur more than once (ResetTime)


PARAMS: dict[str, Param] = {  # rule dataclass field -> ONVIF parameter
    "classes": Param("ClassFilter", "tt:StringList"),
    "direction": Param("Direction", "tt:Direction"),
    "report_interval_s": Param("ReportTimeInterval", "xs:duration"),
    "reset_times": Param("ResetTime", "xs:time", repeated=True),
    "time_threshold_s": Param("TimeThreshold", "xs:duration"),
    "min_wait_s": Param("MinWaitTime", "xs:duration"),
    "segments": Param("Segments", "tt:Polyline", element=True),
    "field": Param("Field", "tt:Polygon", element=True),
}
_BY_NAME = {p.name: key for key, p in PARAMS.items()}
_GEOMETRY = ("segments", "field")
_DURATIONS = ("report_interval_s", "time_threshold_s", "min_wait_s")


def _type_qname(onvif_type: str) -> tuple[str, str]:
    prefix, local = onvif_type.split(":")
    return NSMAP[prefix], local


# (namespace, local name) of each rule's ONVIF type -> its dataclass
RULES_BY_TYPE: dict[tuple[str, str], type[Rule]] = {
    _type_qname(cls.ONVIF_TYPE): cls for cls in RULE_TYPES.values()
}


def rule_params(cls: type[Rule]) -> list[str]:
    """The ONVIF parameters of a rule type, as field names: simple items before element items
    (the spec's order)."""
    keys = [k for k in cls.params() if k != "name"]
    return sorted(keys, key=lambda k: PARAMS[k].element)  # stable: field order otherwise


# -- faults (Analytics spec, "Operations on rules" / "Operations on analytics modules") --------


def _no_config(token: str) -> SoapFault:
    return faults.invalid_arg(
        f"no analytics configuration {token[:64]!r} (this device has {CONFIG_TOKEN!r})",
        "ter:NoConfig",
    )


def _sender(subcode: str, reason: str, first: str = "ter:InvalidArgVal") -> SoapFault:
    return SoapFault(SENDER, [first, subcode], reason)


def _receiver(subcode: str, reason: str) -> SoapFault:
    return SoapFault(RECEIVER, ["ter:Action", subcode], reason)


def invalid_rule(reason: str) -> SoapFault:
    return _sender("ter:InvalidRule", reason)


def _invalid_module(reason: str) -> SoapFault:
    return _sender("ter:InvalidModule", reason)


# -- coordinates ---------------------------------------------------------------------------------


def _num(value: float) -> str:
    """xs:float text: at most 7 significant digits, so float noise never shows."""
    rounded = float(f"{value:.7g}") + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{rounded:g}" if rounded == float(f"{rounded:g}") else repr(rounded)


def to_onvif(point: tuple[float, float]) -> tuple[float, float]:
    """The store's 0..1, y down -> ONVIF -1..1, y up."""
    x, y = point
    return 2.0 * x - 1.0, 1.0 - 2.0 * y


def to_store(x: float, y: float) -> tuple[float, float]:
    """ONVIF -1..1, y up -> the store's 0..1, y down."""
    return (x + 1.0) / 2.0, (1.0 - y) / 2.0


def _points_element(tag: str, points: Iterable[tuple[float, float]]) -> Element:
    out = []
    for p in points:
        x, y = to_onvif(p)
        out.append(TT.Point(x=_num(x), y=_num(y)))
    return TT(tag, *out)


def _parse_points(item: Element, name: str, tag: str) -> list[list[float]]:
    shapes = [c for c in item if isinstance(c.tag, str)]
    if len(shapes) != 1 or etree.QName(shapes[0]).localname != tag:
        raise invalid_rule(f"{name} holds one tt:{tag}")
    out: list[list[float]] = []
    for p in shapes[0]:
        if not isinstance(p.tag, str) or etree.QName(p).localname != "Point":
            continue
        if len(out) >= MAX_POINTS:
            raise invalid_rule(f"{name}: at most {MAX_POINTS} points")
        try:
            x, y = float(p.get("x", "")), float(p.get("y", ""))
        except ValueError:
            raise invalid_rule(f"{name}: point coordinates must be numbers") from None
        if not (-1.0 <= x <= 1.0 and -1.0 <= y <= 1.0):  # also refuses NaN
            raise invalid_rule(f"{name}: point ({x:g}, {y:g}) is outside -1..1")
        out.append(list(to_store(x, y)))
    return out


# -- rules as tt:Config ------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    """xs:duration in seconds, to the millisecond: PT0S, PT2.5S, PT86400S."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"PT{text}S"


def _simple(name: str, value: str) -> Element:
    return TT.SimpleItem(Name=name, Value=value)


def rule_config(rule: Rule, tag: Callable[..., Element] = TAN.Rule) -> Element:
    """The rule as tt:Config (Name, Type, Parameters), in ONVIF coordinates."""
    items = []
    for key in rule_params(type(rule)):
        param, value = PARAMS[key], getattr(rule, key)
        if key in _GEOMETRY:
            if value:  # an optional field left empty (LoiteringDetector: the whole picture)
                shape = "Polyline" if key == "segments" else "Polygon"
                items.append(TT.ElementItem(_points_element(shape, value), Name=param.name))
        elif key == "classes":
            items.append(_simple(param.name, " ".join(value)))
        elif key == "direction":
            items.append(_simple(param.name, Direction(value).value))
        elif key == "reset_times":
            # xs:time needs seconds; the store also keeps "HH:MM"
            items.extend(_simple(param.name, dt.time.fromisoformat(t).isoformat()) for t in value)
        elif key in _DURATIONS:
            items.append(_simple(param.name, _duration(value)))
        else:  # a new rule field without its ONVIF rendering
            raise AssertionError(f"no ONVIF form for rule parameter {key}")
    return tag(TT.Parameters(*items), Name=rule.name, Type=rule.ONVIF_TYPE)


def _resolve(el: Element, text: str | None) -> tuple[str, str] | None:
    """An xs:QName value (`tt:LineDetector`) as (namespace, local name), resolved against the
    element's namespace declarations; None when it names nothing."""
    text = (text or "").strip()
    prefix, _, local = text.rpartition(":")
    if not local:
        return None
    ns = el.nsmap.get(prefix or None) or _WELL_KNOWN.get(prefix)
    return (ns, local) if ns else None


def _rule_type(el: Element) -> type[Rule]:
    found = _resolve(el, el.get("Type"))
    cls = RULES_BY_TYPE.get(found) if found else None
    if cls is None:
        known = ", ".join(c.ONVIF_TYPE for c in RULE_TYPES.values())
        raise invalid_rule(f"unsupported rule Type {el.get('Type', '')[:64]!r} (one of {known})")
    return cls


def _children(el: Element | None, local: str) -> list[Element]:
    if el is None:
        return []
    return [c for c in el if isinstance(c.tag, str) and etree.QName(c).localname == local]


def _given(cls: type[Rule], params: Element | None) -> dict[str, Any]:
    """The parameters a tt:Config gives, as rule_from_json values (store coordinates)."""
    out: dict[str, Any] = {}
    for item in params if params is not None else ():
        if not isinstance(item.tag, str):
            continue
        kind = etree.QName(item).localname
        if kind not in ("SimpleItem", "ElementItem"):
            continue  # tt:Extension: nothing of ours
        name = item.get("Name", "")
        key = _BY_NAME.get(name)
        if key is None or key not in cls.params() or PARAMS[key].element != (kind == "ElementItem"):
            names = ", ".join(PARAMS[k].name for k in rule_params(cls))
            raise invalid_rule(f"{cls.ONVIF_TYPE} has no {kind} {name[:64]!r} ({names})")
        if key in out and not PARAMS[key].repeated:
            raise invalid_rule(f"parameter {name} is given twice")
        if kind == "ElementItem":
            out[key] = _parse_points(item, name, "Polyline" if key == "segments" else "Polygon")
            continue
        value = item.get("Value")
        if value is None:
            raise invalid_rule(f"parameter {name} has no Value")
        parsed = _simple_value(key, name, value.strip())
        if PARAMS[key].repeated:
            out.setdefault(key, []).append(parsed)
        else:
            out[key] = parsed
    return out


def _simple_value(key: str, name: str, value: str) -> Any:
    if key == "classes":
        return value.split()
    if key in _DURATIONS:
        try:
            return parse_duration(value).total_seconds()
        except ValueError as exc:
            raise invalid_rule(f"{name}: {exc}") from None
    if key == "reset_times":
        try:
            moment = dt.time.fromisoformat(value)
        except ValueError:
            raise invalid_rule(f"{name}: {value[:40]!r} is not an xs:time") from None
        if moment.tzinfo is not None:  # the spec: the time of day is local time
            raise invalid_rule(f"{name}: a local time of day, without a time zone")
        return moment.isoformat()
    return value  # direction: the model checks it


def parse_rule(el: Element, base: Rule | None = None) -> Rule:
    """The rule a tt:Config describes. `base`: the rule it modifies (parameters left out keep
    their values); None: a new rule, whose missing parameters take their defaults."""
    cls = _rule_type(el)
    name = el.get("Name", "")
    if base is not None and type(base) is not cls:
        raise _receiver(
            "ter:TypeChangeProhibited",
            f"rule {name[:64]!r} is a {base.ONVIF_TYPE}: delete it and create a {cls.ONVIF_TYPE}",
        )
    params = _children(el, "Parameters")
    given = _given(cls, params[0] if params else None)
    data: dict[str, Any] = base.to_json() if base is not None else {"type": cls.KIND}
    data["name"] = name
    if base is not None and any(k in given for k in _GEOMETRY):
        for key in _GEOMETRY:  # new geometry replaces the old (OccupancyCounting: either one)
            data.pop(key, None)
    data.update(given)
    if base is None and not any(k in given for k in _GEOMETRY):
        if "segments" in cls.params():
            data["segments"] = [list(p) for p in _MIDDLE_LINE]
        elif cls.KIND != "LoiteringDetector":  # its empty field: the whole picture already
            data["field"] = [list(p) for p in _WHOLE_PICTURE]
    try:
        return rule_from_json(data)
    except RuleError as exc:
        raise invalid_rule(str(exc)) from None


# -- descriptions and options -------------------------------------------------------------------


def _messages(kind: str) -> list[Element]:
    """tt:Messages of a rule type: the Event service's MessageDescription plus ParentTopic."""
    out = []
    for info in RULE_TOPICS[kind]:
        described = message_description(info)  # the same description GetEventProperties gives
        described.tag = f"{{{_TT}}}Messages"
        described.append(TT.ParentTopic(info.topic))
        out.append(described)
    return out


def rule_description(cls: type[Rule]) -> Element:
    items = []
    for key in rule_params(cls):
        param = PARAMS[key]
        tag = "ElementItemDescription" if param.element else "SimpleItemDescription"
        items.append(TT(tag, Name=param.name, Type=param.type))
    return TT.RuleDescription(
        TT.Parameters(*items),
        *_messages(cls.KIND),
        Name=cls.ONVIF_TYPE,
        maxInstances=str(MAX_RULES),
    )


def _range(tag: str, low: str, high: str) -> Element:
    return TT(tag, TT.Min(low), TT.Max(high))


def rule_options(cls: type[Rule]) -> list[Element]:
    """tan:RuleOptions for the parameters of `cls` with constraints. Every parameter may be left
    out (minOccurs 0): CreateRules fills in defaults. ResetTime has no options element."""
    options: dict[str, Element] = {
        "classes": TT.StringList(" ".join(OBJECT_CLASSES)),
        "direction": TT.StringList(" ".join(d.value for d in Direction)),
        "report_interval_s": _range("DurationRange", "PT0S", _duration(MAX_INTERVAL_S)),
        "time_threshold_s": _range("DurationRange", "PT0.1S", _duration(MAX_THRESHOLD_S)),
        "min_wait_s": _range("DurationRange", "PT0S", _duration(MAX_INTERVAL_S)),
        "segments": _range("IntRange", "2", str(MAX_POINTS)),  # points of the one polyline
        "field": TT.PolygonOptions(
            TT.RectangleOnly("false"), _range("VertexLimits", "3", str(MAX_POINTS))
        ),
    }
    return [
        TAN.RuleOptions(
            options[key],
            Name=PARAMS[key].name,
            RuleType=cls.ONVIF_TYPE,
            minOccurs="0",
            maxOccurs="1",
        )
        for key in rule_params(cls)
        if key in options
    ]


# -- the privacy masking module -------------------------------------------------------------------


def module_config(model: DeviceModel) -> Element:
    p = model.privacy
    return TAN.AnalyticsModule(
        TT.Parameters(
            _simple("Mode", p.mode),
            _simple("Style", p.style),
            _simple("FaceThreshold", _num(p.face_threshold)),
            _simple("PersonThreshold", _num(p.person_threshold)),
        ),
        Name=MODULE_NAME,
        Type=MODULE_TYPE,
    )


def module_description() -> Element:
    return TT.AnalyticsModuleDescription(
        TT.Parameters(
            *[TT.SimpleItemDescription(Name=n, Type=t) for n, (_, t) in MODULE_PARAMS.items()]
        ),
        Name=MODULE_TYPE,
        fixed="true",
        maxInstances="1",
    )


def module_options(model: DeviceModel) -> list[Element]:
    """tan:Options of the module: the modes the configuration's detectors allow, the styles,
    the threshold range."""
    values = {
        "Mode": TT.StringList(" ".join(m for m in MODES if m in model.media.modes)),
        "Style": TT.StringList(" ".join(STYLES)),
        "FaceThreshold": _range("FloatRange", *THRESHOLD_RANGE),
        "PersonThreshold": _range("FloatRange", *THRESHOLD_RANGE),
    }
    return [TAN.Options(v, Name=k, AnalyticsModule=MODULE_TYPE) for k, v in values.items()]


def _module_value(name: str, value: str) -> str | float:
    """A module parameter's value as PrivacySettings takes it; ter:InvalidModule if bad."""
    if name == "Mode" and value not in MODES:
        raise _invalid_module(f"Mode is one of {', '.join(MODES)}")
    if name == "Style" and value not in STYLES:
        raise _invalid_module(f"Style is one of {', '.join(STYLES)}")
    if MODULE_PARAMS[name][1] != "xs:float":
        return value
    number = float(value) if _XS_FLOAT.fullmatch(value) else math.nan
    if not 0.0 < number < 1.0:  # NaN too
        raise _invalid_module(f"{name} {value[:40]!r} is not a number in (0, 1)")
    return number


def sample_frame(model: DeviceModel, utc: datetime) -> Element:
    """tan:SampleFrame: the tt:Frame the metadata stream sends (vcam/analytics/metadata.py),
    with one object of each class the masking mode finds, in the top left quarter (spec)."""
    width = model.source.width if model.source.width > 0 else 1920
    height = model.source.height if model.source.height > 0 else 1080
    boxes = {
        ObjectClass.PERSON: Box(0.10 * width, 0.05 * height, 0.30 * width, 0.45 * height),
        ObjectClass.FACE: Box(0.16 * width, 0.07 * height, 0.24 * width, 0.15 * height),
    }
    classes = MODE_CLASSES[model.privacy.mode]
    tracks = [
        Track(i + 1, cls, box, 0.9) for i, (cls, box) in enumerate(boxes.items()) if cls in classes
    ]
    doc = etree.fromstring(metadata_document(tracks, width, height, utc))
    frame = doc.find(f"{{{_TT}}}VideoAnalytics/{{{_TT}}}Frame")
    assert frame is not None  # metadata_document always writes one
    return TAN.SampleFrame(*frame, dict(frame.attrib))


def _module_type(el: Element, text: str | None) -> None:
    """Faults unless the Type named is our module's (ter:TypeNotExistent)."""
    if _resolve(el, text) != (_VCAM, MODULE_NAME):
        raise _sender(
            "ter:TypeNotExistent", f"no analytics module type {(text or '')[:64]!r} ({MODULE_TYPE})"
        )


# -- capabilities ---------------------------------------------------------------------------------


def analytics_capabilities(model: DeviceModel) -> Element:
    """tan:Capabilities, as GetServiceCapabilities and GetServices(IncludeCapability) send it."""
    return TAN.Capabilities(
        RuleSupport="true",
        AnalyticsModuleSupport="true",
        CellBasedSceneDescriptionSupported="false",
        RuleOptionsSupported="true",
        AnalyticsModuleOptionsSupported="true",
        SupportedMetadata="true",
    )


def legacy_capabilities(req: OnvifRequest, xaddr: str) -> Element:
    """tt:Analytics of GetCapabilities."""
    return TT.Analytics(TT.XAddr(xaddr), TT.RuleSupport("true"), TT.AnalyticsModuleSupport("true"))


# -- handlers -------------------------------------------------------------------------------------


def _check_config(req: OnvifRequest) -> None:
    token = arg_text(req.body, "ConfigurationToken") or ""
    if token != CONFIG_TOKEN:
        raise _no_config(token)


def _configs(req: OnvifRequest, local: str) -> list[Element]:
    found = _children(req.body, local)
    if not found:
        raise faults.invalid_args(f"{etree.QName(req.body).localname} needs a {local}")
    return found


def _change(model: DeviceModel, edit: Callable[[RuleSet], RuleSet]) -> None:
    """Applies `edit` atomically (all rules or none); the store's refusals become faults."""
    try:
        model.rules.change(edit)
    except RuleError as exc:
        raise invalid_rule(str(exc)) from None
    except OSError:
        raise faults.action_failed("the analytics rules could not be saved") from None


def get_service_capabilities(req: OnvifRequest) -> list[Element]:
    return [TAN.GetServiceCapabilitiesResponse(analytics_capabilities(req.model))]


def get_supported_rules(req: OnvifRequest) -> list[Element]:
    _check_config(req)
    return [
        TAN.GetSupportedRulesResponse(
            TAN.SupportedRules(
                TT.RuleContentSchemaLocation(SCHEMA_LOCATION),
                *[rule_description(cls) for cls in RULE_TYPES.values()],
                Limit=str(MAX_RULES),
            )
        )
    ]


def get_rules(req: OnvifRequest) -> list[Element]:
    _check_config(req)
    return [TAN.GetRulesResponse(*[rule_config(r) for r in req.model.rules.settings.rules])]


def create_rules(req: OnvifRequest) -> list[Element]:
    _check_config(req)
    new = [parse_rule(el) for el in _configs(req, "Rule")]

    def edit(rules: RuleSet) -> RuleSet:
        names = [r.name for r in new]
        for r in new:
            if rules.get(r.name) is not None or names.count(r.name) > 1:
                raise _sender("ter:RuleAlreadyExistent", f"a rule {r.name!r} exists already")
        if len(rules.rules) + len(new) > MAX_RULES:
            raise _receiver("ter:TooManyRules", f"at most {MAX_RULES} rules")
        return rules.created(new)

    _change(req.model, edit)
    return [TAN.CreateRulesResponse()]


def modify_rules(req: OnvifRequest) -> list[Element]:
    _check_config(req)
    elements = _configs(req, "Rule")

    def edit(rules: RuleSet) -> RuleSet:
        changed: list[Rule] = []
        for el in elements:
            name = el.get("Name", "")
            base = rules.get(name)
            if base is None:
                raise _sender("ter:RuleNotExistent", f"no rule {name[:64]!r}")
            if any(r.name == name for r in changed):
                raise invalid_rule(f"rule {name!r} is given twice")
            changed.append(parse_rule(el, base))
        return rules.modified(changed)

    _change(req.model, edit)
    return [TAN.ModifyRulesResponse()]


def delete_rules(req: OnvifRequest) -> list[Element]:
    _check_config(req)
    names = arg_texts(req.body, "RuleName")
    if not names:
        raise faults.invalid_args("DeleteRules needs a RuleName")

    def edit(rules: RuleSet) -> RuleSet:
        for name in names:
            if rules.get(name) is None:
                raise _sender("ter:RuleNotExistent", f"no rule {name[:64]!r}")
        return rules.deleted(names)

    _change(req.model, edit)
    return [TAN.DeleteRulesResponse()]


def get_rule_options(req: OnvifRequest) -> list[Element]:
    _check_config(req)
    asked = _children(req.body, "RuleType")
    if asked:
        found = _resolve(asked[0], asked[0].text)
        cls = RULES_BY_TYPE.get(found) if found else None
        if cls is None:
            raise _sender("ter:RuleNotExistent", f"no rule type {(asked[0].text or '')[:64]!r}")
        types = [cls]
    else:
        types = list(RULE_TYPES.values())
    return [TAN.GetRuleOptionsResponse(*[o for cls in types for o in rule_options(cls)])]


def get_supported_analytics_modules(req: OnvifRequest) -> list[Element]:
    _check_config(req)
    return [
        TAN.GetSupportedAnalyticsModulesResponse(
            TAN.SupportedAnalyticsModules(module_description(), Limit="1")
        )
    ]


def get_analytics_modules(req: OnvifRequest) -> list[Element]:
    _check_config(req)
    return [TAN.GetAnalyticsModulesResponse(module_config(req.model))]


def get_analytics_module_options(req: OnvifRequest) -> list[Element]:
    _check_config(req)
    asked = _children(req.body, "Type")
    if asked:
        _module_type(asked[0], asked[0].text)
    return [TAN.GetAnalyticsModuleOptionsResponse(*module_options(req.model))]


def create_analytics_modules(req: OnvifRequest) -> list[Element]:
    _check_config(req)
    for el in _configs(req, "AnalyticsModule"):
        if _resolve(el, el.get("Type")) != (_VCAM, MODULE_NAME):
            raise _invalid_module(f"unsupported module Type {el.get('Type', '')[:64]!r}")
        if el.get("Name") == MODULE_NAME:
            raise _sender("ter:NameAlreadyExistent", f"module {MODULE_NAME!r} exists already")
    raise _sender(
        "ter:FixedModules", f"{MODULE_TYPE} is fixed: one instance, {MODULE_NAME!r}", "ter:Action"
    )


def delete_analytics_modules(req: OnvifRequest) -> list[Element]:
    _check_config(req)
    names = arg_texts(req.body, "AnalyticsModuleName")
    if not names:
        raise faults.invalid_args("DeleteAnalyticsModules needs an AnalyticsModuleName")
    for name in names:
        if name != MODULE_NAME:
            raise _sender("ter:NameNotExistent", f"no analytics module {name[:64]!r}")
    raise _sender(
        "ter:FixedModules", f"{MODULE_NAME!r} is fixed: it masks every frame", "ter:Action"
    )


def modify_analytics_modules(req: OnvifRequest) -> list[Element]:
    """Changes the masking settings in the store (all given parameters or none); the camera
    follows it. Parameters left out keep their values."""
    _check_config(req)
    changes: dict[str, Any] = {}
    for el in _configs(req, "AnalyticsModule"):
        name = el.get("Name", "")
        if name != MODULE_NAME:
            raise _sender("ter:NameNotExistent", f"no analytics module {name[:64]!r}")
        if _resolve(el, el.get("Type")) != (_VCAM, MODULE_NAME):
            raise _receiver("ter:TypeChangeProhibited", f"{MODULE_NAME!r} is a {MODULE_TYPE}")
        params = _children(el, "Parameters")
        for item in params[0] if params else ():
            if not isinstance(item.tag, str) or etree.QName(item).localname == "Extension":
                continue
            key, value = item.get("Name", ""), (item.get("Value") or "").strip()
            if etree.QName(item).localname != "SimpleItem" or key not in MODULE_PARAMS:
                names = ", ".join(MODULE_PARAMS)
                raise _invalid_module(f"{MODULE_TYPE} has no parameter {key[:64]!r} ({names})")
            field = MODULE_PARAMS[key][0]
            if field in changes:
                raise _invalid_module(f"parameter {key} is given twice")
            changes[field] = _module_value(key, value)
    mode = changes.get("mode")
    if mode is not None and mode != req.model.privacy.mode and mode not in req.model.media.modes:
        raise _receiver(
            "ter:ConfigurationConflict",
            f"Mode {mode} needs a detector that vcam's configuration disables "
            f"(modes available: {', '.join(req.model.media.modes)})",
        )

    def edit(settings: MediaSettings) -> MediaSettings:
        return dataclasses.replace(
            settings, privacy=dataclasses.replace(settings.privacy, **changes)
        )

    try:
        req.model.media.change(edit)
    except MediaSettingsError as exc:  # a race with the page, or a value the store refuses
        raise _invalid_module(str(exc)) from None
    except OSError:
        raise faults.action_failed("the masking settings could not be saved") from None
    return [TAN.ModifyAnalyticsModulesResponse()]


def get_supported_metadata(req: OnvifRequest) -> list[Element]:
    asked = _children(req.body, "Type")
    if asked:
        _module_type(asked[0], asked[0].text)
    return [
        TAN.GetSupportedMetadataResponse(
            TAN.AnalyticsModule(sample_frame(req.model, datetime.now(UTC)), Type=MODULE_TYPE)
        )
    ]


def register_analytics(dispatcher: OnvifDispatcher) -> None:
    """Registers the Analytics operations: reads READ_MEDIA, changes ACTUATE (Analytics spec
    access classes)."""
    dispatcher.register(
        qname("tan", "GetServiceCapabilities"),
        get_service_capabilities,
        access=SERVICE_CAPABILITIES,
    )
    reads: tuple[tuple[str, Handler], ...] = (
        ("GetSupportedRules", get_supported_rules),
        ("GetRules", get_rules),
        ("GetRuleOptions", get_rule_options),
        ("GetSupportedAnalyticsModules", get_supported_analytics_modules),
        ("GetAnalyticsModules", get_analytics_modules),
        ("GetAnalyticsModuleOptions", get_analytics_module_options),
        ("GetSupportedMetadata", get_supported_metadata),
    )
    changes: tuple[tuple[str, Handler], ...] = (
        ("CreateRules", create_rules),
        ("ModifyRules", modify_rules),
        ("DeleteRules", delete_rules),
        ("CreateAnalyticsModules", create_analytics_modules),
        ("ModifyAnalyticsModules", modify_analytics_modules),
        ("DeleteAnalyticsModules", delete_analytics_modules),
    )
    for name, handler in reads:
        dispatcher.register(qname("tan", name), handler, access=AccessClass.READ_MEDIA)
    for name, handler in changes:
        dispatcher.register(qname("tan", name), handler, access=AccessClass.ACTUATE)
