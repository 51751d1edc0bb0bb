"""The Analytics service (ver20): every answer valid against the analytics WSDL, rules that reach
the store the engine follows (exact coordinate conversion, persistence, atomic changes), every
refusal with the spec's subcodes, the privacy masking module, and end to end: plain zeep with
the analytics WSDL creates rules on a running `vcam serve`, which keeps them in analytics.json
and sends tns1:RuleEngine/LineDetector/Crossed for its walkers over a PullPoint subscription."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import onvif
import pytest
from lxml import etree
from onvif import ONVIFCamera

from vcam.analytics.rules import MAX_RULES, RULE_TYPES, FieldDetector, LineDetector, RuleSet
from vcam.analytics.store import AnalyticsRuleStore
from vcam.analytics.topics import RULE_TOPICS
from vcam.config import config_from_dict
from vcam.media.types import SourceInfo
from vcam.media_settings import MediaSettingsStore, PrivacySettings
from vcam.onvif.analytics import (
    CONFIG_TOKEN,
    PARAMS,
    register_analytics,
    rule_params,
    to_onvif,
    to_store,
)
from vcam.onvif.faults import SoapFault
from vcam.onvif.model import DeviceModel
from vcam.onvif.service import OnvifDispatcher
from vcam.onvif.soap import NS, NSMAP, SOAP12, AccessClass, Dispatcher, parse_envelope
from vcam.onvif.stack import build_dispatcher

from .onvif_xsd import validate
from .test_onvif_services import call, clark, env, make_model
from .vcam_process import VcamProcess, free_port, loopback_config
from .zeep_client import onvif_client

TAN, TT = NSMAP["tan"], NSMAP["tt"]
TOKEN = f"<tan:ConfigurationToken>{CONFIG_TOKEN}</tan:ConfigurationToken>"
INVALID_RULE = ["Sender", "ter:InvalidArgVal", "ter:InvalidRule"]
NO_CONFIG = ["Sender", "ter:InvalidArgVal", "ter:NoConfig"]


def points(*xy: tuple[object, object]) -> str:
    return "".join(f'<tt:Point x="{x}" y="{y}"/>' for x, y in xy)


def rule_xml(name: str, kind: str, simple: dict[str, str] | None = None, geometry: str = "") -> str:
    items = "".join(f'<tt:SimpleItem Name="{k}" Value="{v}"/>' for k, v in (simple or {}).items())
    return (
        f'<tan:Rule Name="{name}" Type="{kind}"><tt:Parameters>{items}{geometry}'
        "</tt:Parameters></tan:Rule>"
    )


def segments(*xy: tuple[object, object]) -> str:
    return (
        f'<tt:ElementItem Name="Segments"><tt:Polyline>{points(*xy)}</tt:Polyline></tt:ElementItem>'
    )


def field(*xy: tuple[object, object]) -> str:
    return f'<tt:ElementItem Name="Field"><tt:Polygon>{points(*xy)}</tt:Polygon></tt:ElementItem>'


def with_token(op: str, inner: str = "", token: str = TOKEN) -> str:
    return f"<tan:{op}>{token}{inner}</tan:{op}>"


LINE = rule_xml("gate", "tt:LineDetector", {"Direction": "Left"}, segments((-0.5, 0), (0.5, 0.5)))
AREA = rule_xml(
    "lobby", "tt:FieldDetector", {"ClassFilter": "Human"}, field((0, 0), (1, 0), (1, 1))
)
MODULE = (
    '<tan:AnalyticsModule Name="PrivacyMasking" Type="vcam:PrivacyMasking"><tt:Parameters>'
    '<tt:SimpleItem Name="Mode" Value="face+body"/><tt:SimpleItem Name="Style" Value="mosaic"/>'
    "</tt:Parameters></tan:AnalyticsModule>"
)

# One well-formed request per registered operation (the test below insists on that).
ANALYTICS_REQUESTS: dict[str, str] = {
    "tan:GetServiceCapabilities": "<tan:GetServiceCapabilities/>",
    "tan:GetSupportedRules": with_token("GetSupportedRules"),
    "tan:GetRules": with_token("GetRules"),
    "tan:CreateRules": with_token("CreateRules", LINE + AREA),
    "tan:ModifyRules": with_token(
        "ModifyRules", rule_xml("door", "tt:LineDetector", {"Direction": "Right"})
    ),
    "tan:DeleteRules": with_token("DeleteRules", "<tan:RuleName>door</tan:RuleName>"),
    # RuleType comes first in GetRuleOptions (its schema order).
    "tan:GetRuleOptions": "<tan:GetRuleOptions><tan:RuleType>tt:LineCounting</tan:RuleType>"
    f"{TOKEN}</tan:GetRuleOptions>",
    "tan:GetSupportedAnalyticsModules": with_token("GetSupportedAnalyticsModules"),
    "tan:GetAnalyticsModules": with_token("GetAnalyticsModules"),
    "tan:GetAnalyticsModuleOptions": "<tan:GetAnalyticsModuleOptions>"
    f"<tan:Type>vcam:PrivacyMasking</tan:Type>{TOKEN}</tan:GetAnalyticsModuleOptions>",
    "tan:CreateAnalyticsModules": with_token(
        "CreateAnalyticsModules", MODULE.replace('Name="PrivacyMasking"', 'Name="Masking2"')
    ),
    "tan:ModifyAnalyticsModules": with_token("ModifyAnalyticsModules", MODULE),
    "tan:DeleteAnalyticsModules": with_token(
        "DeleteAnalyticsModules",
        "<tan:AnalyticsModuleName>PrivacyMasking</tan:AnalyticsModuleName>",
    ),
    "tan:GetSupportedMetadata": "<tan:GetSupportedMetadata/>",
}
# The module is fixed (one instance, never deleted): these answer a spec fault by design.
FIXED_MODULE = {"tan:CreateAnalyticsModules", "tan:DeleteAnalyticsModules"}
FIXED = ["Sender", "ter:Action", "ter:FixedModules"]


@pytest.fixture(scope="module")
def dispatcher() -> OnvifDispatcher:
    d: OnvifDispatcher = Dispatcher()
    register_analytics(d)
    return d


DOOR = LineDetector(name="door", segments=((0.5, 0.0), (0.5, 1.0)))


def fresh_model(path: Path | None = None, **changes: Any) -> DeviceModel:
    """A model with its own rule store holding `door` (in memory, or kept in `path`)."""
    store = AnalyticsRuleStore(RuleSet((DOOR,)), path)
    return make_model(rules=store, **changes)


def answer(d: OnvifDispatcher, body: str, model: DeviceModel) -> etree._Element:
    return call(d, env(body), model=model)


def refused(d: OnvifDispatcher, body: str, model: DeviceModel) -> list[str]:
    with pytest.raises(SoapFault) as info:
        call(d, env(body), model=model)
    return [info.value.code, *info.value.subcodes]


def rules_of(model: DeviceModel) -> dict[str, Any]:
    return {r.name: r for r in model.rules.settings.rules}


# -- every operation ---------------------------------------------------------------------------


def test_every_registered_operation_has_a_sample(dispatcher: OnvifDispatcher) -> None:
    assert {op.qname for op in dispatcher.operations()} == {clark(k) for k in ANALYTICS_REQUESTS}
    everything = {op.qname for op in build_dispatcher().operations()}
    assert {clark(k) for k in ANALYTICS_REQUESTS} <= everything  # `vcam serve` has them


@pytest.mark.parametrize("name", sorted(ANALYTICS_REQUESTS))
def test_sample_requests_are_schema_valid(name: str) -> None:
    """The samples are what a conforming client sends, so the answers below mean something."""
    validate(parse_envelope(env(ANALYTICS_REQUESTS[name]), None).body_element)


@pytest.mark.parametrize("name", sorted(set(ANALYTICS_REQUESTS) - FIXED_MODULE))
def test_every_answer_is_schema_valid(dispatcher: OnvifDispatcher, name: str) -> None:
    answer(dispatcher, ANALYTICS_REQUESTS[name], fresh_model())


@pytest.mark.parametrize("name", sorted(FIXED_MODULE))
def test_the_masking_module_is_fixed(dispatcher: OnvifDispatcher, name: str) -> None:
    assert refused(dispatcher, ANALYTICS_REQUESTS[name], fresh_model()) == FIXED


def test_access_classes(dispatcher: OnvifDispatcher) -> None:
    access = {etree.QName(op.qname).localname: op.access for op in dispatcher.operations()}
    changes = {n for n, a in access.items() if a is AccessClass.ACTUATE}
    assert changes == {
        "CreateRules", "ModifyRules", "DeleteRules",
        "CreateAnalyticsModules", "ModifyAnalyticsModules", "DeleteAnalyticsModules",
    }  # fmt: skip
    assert access.pop("GetServiceCapabilities") is AccessClass.PRE_AUTH
    assert {a for n, a in access.items() if n not in changes} == {AccessClass.READ_MEDIA}


@pytest.mark.parametrize("name", sorted(ANALYTICS_REQUESTS))
def test_bare_requests_fault_or_answer_never_crash(dispatcher: OnvifDispatcher, name: str) -> None:
    try:
        answer(dispatcher, f"<{name}/>", fresh_model())
    except SoapFault as fault:
        assert fault.subcodes, fault  # a proper ONVIF subcode, not a bare failure


@pytest.mark.parametrize(
    "name", sorted(n for n in ANALYTICS_REQUESTS if TOKEN in ANALYTICS_REQUESTS[n])
)
def test_an_unknown_configuration_is_no_config(dispatcher: OnvifDispatcher, name: str) -> None:
    model = fresh_model()
    before = model.rules.settings
    body = ANALYTICS_REQUESTS[name].replace(CONFIG_TOKEN, "video_source_config")
    assert refused(dispatcher, body, model) == NO_CONFIG
    assert model.rules.settings is before


def test_capabilities_and_the_device_service(dispatcher: OnvifDispatcher) -> None:
    got = answer(dispatcher, "<tan:GetServiceCapabilities/>", make_model())
    caps = got.find("tan:Capabilities", NS)
    assert caps is not None and dict(caps.attrib) == {
        "RuleSupport": "true",
        "AnalyticsModuleSupport": "true",
        "CellBasedSceneDescriptionSupported": "false",
        "RuleOptionsSupported": "true",
        "AnalyticsModuleOptionsSupported": "true",
        "SupportedMetadata": "true",
    }
    everything = build_dispatcher()
    services = call(everything, env("<tds:GetServices><tds:IncludeCapability>false"
                                    "</tds:IncludeCapability></tds:GetServices>"))  # fmt: skip
    listed = {
        s.findtext("tds:Namespace", namespaces=NS): s.findtext("tds:XAddr", namespaces=NS)
        for s in services.iterfind("tds:Service", NS)
    }
    assert listed[TAN] == "http://192.168.1.20:8080/onvif/analytics_service"
    legacy = call(everything, env("<tds:GetCapabilities><tds:Category>Analytics</tds:Category>"
                                  "</tds:GetCapabilities>"))  # fmt: skip
    analytics = legacy.find("tds:Capabilities/tt:Analytics", NS)
    assert analytics is not None
    assert [(etree.QName(c).localname, c.text) for c in analytics] == [
        ("XAddr", "http://192.168.1.20:8080/onvif/analytics_service"),
        ("RuleSupport", "true"),
        ("AnalyticsModuleSupport", "true"),
    ]


# -- rule descriptions and options -----------------------------------------------------------


def test_supported_rules_describe_every_rule_type(dispatcher: OnvifDispatcher) -> None:
    got = answer(dispatcher, ANALYTICS_REQUESTS["tan:GetSupportedRules"], make_model())
    supported = got.find("tan:SupportedRules", NS)
    assert supported is not None and supported.get("Limit") == str(MAX_RULES)
    assert supported.findtext("tt:RuleContentSchemaLocation", namespaces=NS)
    descriptions = {d.get("Name"): d for d in supported.iterfind("tt:RuleDescription", NS)}
    assert set(descriptions) == {cls.ONVIF_TYPE for cls in RULE_TYPES.values()}
    for cls in RULE_TYPES.values():
        d = descriptions[cls.ONVIF_TYPE]
        assert d.get("maxInstances") == str(MAX_RULES)
        described = [
            (etree.QName(p).localname, p.get("Name"), p.get("Type"))
            for p in d.iterfind("tt:Parameters/*", NS)
        ]
        expected = [
            (
                "ElementItemDescription" if PARAMS[k].element else "SimpleItemDescription",
                PARAMS[k].name,
                PARAMS[k].type,
            )
            for k in rule_params(cls)
        ]
        assert described == expected
        # Simple items before element items, as the spec orders them.
        kinds = [k for k, _, _ in described]
        assert kinds == sorted(kinds, key=lambda k: k == "ElementItemDescription")
        messages = d.findall("tt:Messages", NS)
        assert [m.findtext("tt:ParentTopic", namespaces=NS) for m in messages] == [
            t.topic for t in RULE_TOPICS[cls.KIND]
        ]
        for m, info in zip(messages, RULE_TOPICS[cls.KIND], strict=True):
            assert m.get("IsProperty") == ("true" if info.is_property else "false")
            data = [i.get("Name") for i in m.iterfind("tt:Data/tt:SimpleItemDescription", NS)]
            assert data == [n for n, _ in info.data]
    line = descriptions["tt:LineDetector"]
    assert line.findtext("tt:Messages/tt:ParentTopic", namespaces=NS) == (
        "tns1:RuleEngine/LineDetector/Crossed"
    )


def test_rule_options(dispatcher: OnvifDispatcher) -> None:
    everything = answer(dispatcher, with_token("GetRuleOptions"), make_model())
    options = {(o.get("RuleType"), o.get("Name")): o for o in everything}
    assert {t for t, _ in options} == {cls.ONVIF_TYPE for cls in RULE_TYPES.values()}
    segs = options[("tt:LineDetector", "Segments")]
    assert segs.findtext("tt:IntRange/tt:Min", namespaces=NS) == "2"
    assert segs.findtext("tt:IntRange/tt:Max", namespaces=NS) == "32"
    direction = options[("tt:LineDetector", "Direction")].findtext("tt:StringList", namespaces=NS)
    assert direction is not None and set(direction.split()) == {"Any", "Left", "Right"}
    polygon = options[("tt:FieldDetector", "Field")].find("tt:PolygonOptions", NS)
    assert polygon is not None
    assert polygon.findtext("tt:VertexLimits/tt:Min", namespaces=NS) == "3"
    classes = options[("tt:FieldDetector", "ClassFilter")].findtext("tt:StringList", namespaces=NS)
    assert classes == "Human HumanFace"
    threshold = options[("tt:LoiteringDetector", "TimeThreshold")]
    assert threshold.findtext("tt:DurationRange/tt:Max", namespaces=NS) == "PT86400S"
    one = answer(dispatcher, ANALYTICS_REQUESTS["tan:GetRuleOptions"], make_model())
    assert {o.get("RuleType") for o in one} == {"tt:LineCounting"}
    assert {o.get("Name") for o in one} == {
        "ClassFilter", "Direction", "ReportTimeInterval", "Segments",
    }  # fmt: skip
    unknown = "<tan:GetRuleOptions><tan:RuleType>tt:CellMotionDetector</tan:RuleType>"
    assert refused(dispatcher, f"{unknown}{TOKEN}</tan:GetRuleOptions>", make_model()) == [
        "Sender", "ter:InvalidArgVal", "ter:RuleNotExistent",
    ]  # fmt: skip


# -- rules: create, read, modify, delete -------------------------------------------------------


def rule_elements(got: etree._Element) -> dict[str, etree._Element]:
    return {r.get("Name", ""): r for r in got.iterfind("tan:Rule", NS)}


def params(rule: etree._Element) -> dict[str, str | list[tuple[str, str]]]:
    out: dict[str, str | list[tuple[str, str]]] = {}
    for item in rule.iterfind("tt:Parameters/tt:SimpleItem", NS):
        out[item.get("Name", "")] = item.get("Value", "")
    for item in rule.iterfind("tt:Parameters/tt:ElementItem", NS):
        out[item.get("Name", "")] = [
            (p.get("x", ""), p.get("y", "")) for p in item.iter(f"{{{TT}}}Point")
        ]
    return out


def test_create_get_modify_delete(dispatcher: OnvifDispatcher) -> None:
    model = fresh_model()
    seen: list[RuleSet] = []
    model.rules.subscribe(seen.append)  # as the engine follows the store
    answer(dispatcher, ANALYTICS_REQUESTS["tan:CreateRules"], model)
    assert len(seen) == 1 and seen[0].names == ("door", "gate", "lobby")
    gate, lobby = rules_of(model)["gate"], rules_of(model)["lobby"]
    # -1..1 y up -> 0..1 y down
    assert gate.segments == ((0.25, 0.5), (0.75, 0.25)) and gate.direction == "Left"
    assert lobby.field == ((0.5, 0.5), (1.0, 0.5), (1.0, 0.0)) and lobby.classes == ("Human",)
    listed = rule_elements(answer(dispatcher, ANALYTICS_REQUESTS["tan:GetRules"], model))
    assert list(listed) == ["door", "gate", "lobby"]
    assert listed["gate"].get("Type") == "tt:LineDetector"
    assert params(listed["gate"]) == {
        "ClassFilter": "Human",
        "Direction": "Left",
        "Segments": [("-0.5", "0"), ("0.5", "0.5")],
    }
    assert params(listed["door"])["Segments"] == [("0", "1"), ("0", "-1")]
    # ModifyRules: parameters left out keep their values.
    answer(dispatcher, ANALYTICS_REQUESTS["tan:ModifyRules"], model)
    door = rules_of(model)["door"]
    assert door.direction == "Right" and door.segments == DOOR.segments
    moved = rule_xml("gate", "tt:LineDetector", geometry=segments((-1, -1), (1, 1), (1, -1)))
    answer(dispatcher, with_token("ModifyRules", moved), model)
    gate = rules_of(model)["gate"]
    assert gate.direction == "Left" and gate.segments == ((0.0, 1.0), (1.0, 0.0), (1.0, 1.0))
    # DeleteRules
    answer(dispatcher, ANALYTICS_REQUESTS["tan:DeleteRules"], model)
    assert model.rules.settings.names == ("gate", "lobby")
    answer(dispatcher, with_token("DeleteRules", "<tan:RuleName>gate</tan:RuleName>"
                                  "<tan:RuleName>lobby</tan:RuleName>"), model)  # fmt: skip
    assert len(answer(dispatcher, ANALYTICS_REQUESTS["tan:GetRules"], model)) == 0


def test_every_rule_type_and_parameter_round_trips(dispatcher: OnvifDispatcher) -> None:
    model = make_model()
    body = (
        rule_xml("count", "tt:LineCounting", {
            "ClassFilter": "Human HumanFace", "Direction": "Right",
            "ReportTimeInterval": "PT2.5S", "ResetTime": "07:30:00",
        }, segments((-1, 0), (0, 0), (1, 0.5)))
        + rule_xml("occupancy", "tt:OccupancyCounting", {"ResetTime": "00:00:00"},
                   field((-1, -1), (0, -1), (0, 0)))
        + rule_xml("loiter", "tt:LoiteringDetector", {"TimeThreshold": "PT1M30S"})
        + rule_xml("queue", "vcam:QueueMonitor", {"MinWaitTime": "PT4S"},
                   field((-1, 1), (1, 1), (1, 0), (-1, 0)))
    )  # fmt: skip
    # Two ResetTimes: a repeated parameter.
    body = body.replace(
        '<tt:SimpleItem Name="ResetTime" Value="07:30:00"/>',
        '<tt:SimpleItem Name="ResetTime" Value="07:30:00"/>'
        '<tt:SimpleItem Name="ResetTime" Value="19:00:00"/>',
    )
    answer(dispatcher, with_token("CreateRules", body), model)
    rules = rules_of(model)
    assert rules["count"].classes == ("Human", "HumanFace")
    assert rules["count"].report_interval_s == 2.5
    assert rules["count"].reset_times == ("07:30:00", "19:00:00")
    assert rules["occupancy"].field == ((0.0, 1.0), (0.5, 1.0), (0.5, 0.5))
    assert rules["occupancy"].segments == ()
    assert rules["loiter"].time_threshold_s == 90.0 and rules["loiter"].field == ()
    assert rules["queue"].min_wait_s == 4.0
    listed = rule_elements(answer(dispatcher, ANALYTICS_REQUESTS["tan:GetRules"], model))
    assert listed["queue"].get("Type") == "vcam:QueueMonitor"
    count = listed["count"]
    assert [
        (i.get("Name"), i.get("Value")) for i in count.iterfind("tt:Parameters/tt:SimpleItem", NS)
    ] == [
        ("ClassFilter", "Human HumanFace"),
        ("ResetTime", "07:30:00"),
        ("ResetTime", "19:00:00"),
        ("ReportTimeInterval", "PT2.5S"),
        ("Direction", "Right"),
    ]
    assert params(listed["loiter"]) == {"ClassFilter": "Human", "TimeThreshold": "PT90S"}
    # What GetRules returns, CreateRules accepts unchanged (after deleting the originals).
    again = make_model()
    echoed = "".join(etree.tostring(r, encoding=str) for r in listed.values())
    answer(dispatcher, with_token("CreateRules", echoed), again)
    assert again.rules.settings.rules == model.rules.settings.rules


def test_empty_parameters_take_defaults(dispatcher: OnvifDispatcher) -> None:
    """The spec: a device shall accept rules created with an empty Parameter definition."""
    model = make_model()
    body = "".join(
        f'<tan:Rule Name="r{i}" Type="{cls.ONVIF_TYPE}"><tt:Parameters/></tan:Rule>'
        for i, cls in enumerate(RULE_TYPES.values())
    )
    answer(dispatcher, with_token("CreateRules", body), model)
    rules = model.rules.settings.rules
    assert [type(r) for r in rules] == list(RULE_TYPES.values())
    line = rules_of(model)["r0"]
    assert line.segments == ((0.0, 0.5), (1.0, 0.5)) and line.direction == "Any"
    assert isinstance(rules_of(model)["r2"], FieldDetector)
    assert rules_of(model)["r2"].field == ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))


def test_coordinate_conversion_is_exact(dispatcher: OnvifDispatcher) -> None:
    """Every xs:float of 7 significant digits in -1..1 comes back as it went in, and the
    store's coordinates keep their value through ONVIF's."""
    rng = random.Random(7)
    values = ["-1", "1", "0", "0.5", "-0.3333333", "0.1", "1e-07", "-0.9999999", "0.0001234"]
    values += [f"{rng.uniform(-1, 1):.7g}" for _ in range(150)]
    model = make_model()
    polylines = [values[i : i + 2 * 16] for i in range(0, len(values) - 1, 2 * 16)]
    body = ""
    for n, flat in enumerate(polylines):
        pairs = list(zip(flat[0::2], flat[1::2], strict=False))
        body += rule_xml(f"p{n}", "tt:LineDetector", geometry=segments(*pairs))
    answer(dispatcher, with_token("CreateRules", body), model)
    listed = rule_elements(answer(dispatcher, ANALYTICS_REQUESTS["tan:GetRules"], model))
    assert len(listed) == len(polylines) >= 5
    for n, flat in enumerate(polylines):
        got = params(listed[f"p{n}"])["Segments"]
        assert isinstance(got, list)
        sent = list(zip(flat[0::2], flat[1::2], strict=False))
        assert [(float(x), float(y)) for x, y in got] == [(float(x), float(y)) for x, y in sent]
    for p in [(1 / 3, 0.25), (0.0, 1.0), (0.1, 0.9), (0.123456789, 0.987654321)]:
        assert to_store(*to_onvif(p)) == pytest.approx(p, abs=1e-15)
    assert to_onvif((0.0, 0.0)) == (-1.0, 1.0) and to_onvif((1.0, 1.0)) == (1.0, -1.0)


@pytest.mark.parametrize(
    "rule",
    [
        rule_xml("x", "tt:CellMotionDetector"),  # a type we do not have
        rule_xml("x", "nope:LineDetector"),  # an undeclared, unknown prefix
        rule_xml("", "tt:LineDetector"),  # no name
        rule_xml("x", "tt:LineDetector", {"Speed": "3"}),  # not a parameter of the type
        rule_xml("x", "tt:FieldDetector", {"Direction": "Any"}),  # a parameter of another type
        rule_xml("x", "tt:LineDetector", {"Direction": "Entering"}),  # ONVIF's, not ours
        rule_xml("x", "tt:LineDetector", {"ClassFilter": "Vehicle"}),
        rule_xml("x", "tt:LineCounting", {"ReportTimeInterval": "soon"}),
        rule_xml("x", "tt:LineCounting", {"ReportTimeInterval": "PT2H"}),  # over the maximum
        rule_xml("x", "tt:LineCounting", {"ResetTime": "25:00:00"}),
        rule_xml("x", "tt:LineCounting", {"ResetTime": "08:00:00+02:00"}),  # local time only
        rule_xml("x", "tt:LoiteringDetector", {"TimeThreshold": "PT0S"}),
        rule_xml("x", "tt:LineDetector", geometry=segments((0, 0))),  # one point
        rule_xml("x", "tt:LineDetector", geometry=segments((0, 0), (1.5, 0))),  # outside -1..1
        rule_xml("x", "tt:LineDetector", geometry=segments((0, 0), (0, 0))),  # zero length
        rule_xml("x", "tt:LineDetector", geometry=segments(*[(i / 40, 0) for i in range(33)])),
        rule_xml("x", "tt:FieldDetector", geometry=field((0, 0), (0.5, 0), (1, 0))),  # no area
        rule_xml("x", "tt:FieldDetector", geometry=segments((0, 0), (1, 0))),  # wrong shape name
        rule_xml("x", "tt:LineDetector", {"Direction": "Any"})
        .replace("Direction", "Direction")
        .replace(
            "</tt:Parameters>", '<tt:SimpleItem Name="Direction" Value="Left"/></tt:Parameters>'
        ),
        '<tan:Rule Name="x" Type="tt:LineDetector"><tt:Parameters><tt:ElementItem Name="Segments">'
        '<tt:Polyline><tt:Point x="a" y="0"/><tt:Point x="1" y="0"/></tt:Polyline>'
        "</tt:ElementItem></tt:Parameters></tan:Rule>",
    ],
)
def test_invalid_rules_are_refused(dispatcher: OnvifDispatcher, rule: str) -> None:
    model = fresh_model()
    before = model.rules.settings
    # With a valid rule before it: all or nothing.
    assert refused(dispatcher, with_token("CreateRules", LINE + rule), model) == INVALID_RULE
    assert model.rules.settings is before


def test_rule_name_and_count_faults(dispatcher: OnvifDispatcher) -> None:
    model = fresh_model()
    exists = ["Sender", "ter:InvalidArgVal", "ter:RuleAlreadyExistent"]
    door = rule_xml("door", "tt:LineDetector")
    assert refused(dispatcher, with_token("CreateRules", door), model) == exists
    assert refused(dispatcher, with_token("CreateRules", LINE + LINE), model) == exists
    many = "".join(rule_xml(f"r{i}", "tt:FieldDetector") for i in range(MAX_RULES))
    assert refused(dispatcher, with_token("CreateRules", many), model) == [
        "Receiver", "ter:Action", "ter:TooManyRules",
    ]  # fmt: skip
    assert model.rules.settings.names == ("door",)
    missing = ["Sender", "ter:InvalidArgVal", "ter:RuleNotExistent"]
    ghost = rule_xml("ghost", "tt:LineDetector")
    assert refused(dispatcher, with_token("ModifyRules", ghost), model) == missing
    delete = "<tan:RuleName>door</tan:RuleName><tan:RuleName>ghost</tan:RuleName>"
    assert refused(dispatcher, with_token("DeleteRules", delete), model) == missing
    assert model.rules.settings.names == ("door",)  # nothing deleted: all or nothing
    retyped = rule_xml("door", "tt:FieldDetector")
    assert refused(dispatcher, with_token("ModifyRules", retyped), model) == [
        "Receiver", "ter:Action", "ter:TypeChangeProhibited",
    ]  # fmt: skip
    bad = rule_xml("door", "tt:LineDetector", {"Direction": "Up"})
    assert refused(dispatcher, with_token("ModifyRules", bad), model) == INVALID_RULE
    assert model.rules.settings.rules == (DOOR,)


def test_a_client_without_prefix_declarations(dispatcher: OnvifDispatcher) -> None:
    """zeep copies QName strings as given and declares ns0, ns1...: `tt:` in Type is then not
    declared in the request. ONVIF's own prefix still means ONVIF's schema."""
    model = make_model()
    body = (
        f'<ns0:CreateRules xmlns:ns0="{TAN}" xmlns:ns1="{TT}">'
        f"<ns0:ConfigurationToken>{CONFIG_TOKEN}</ns0:ConfigurationToken>"
        '<ns0:Rule Name="z" Type="tt:FieldDetector"><ns1:Parameters><ns1:ElementItem Name="Field">'
        '<ns1:Polygon><ns1:Point x="0" y="0"/><ns1:Point x="1" y="0"/><ns1:Point x="1" y="1"/>'
        "</ns1:Polygon></ns1:ElementItem></ns1:Parameters></ns0:Rule></ns0:CreateRules>"
    )
    request = f'<s:Envelope xmlns:s="{SOAP12}"><s:Body>{body}</s:Body></s:Envelope>'.encode()
    call(dispatcher, request, model=model)
    assert rules_of(model)["z"].field == ((0.5, 0.5), (1.0, 0.5), (1.0, 0.0))


# -- persistence -------------------------------------------------------------------------------


def test_rules_persist_in_the_data_directory(dispatcher: OnvifDispatcher, tmp_path: Path) -> None:
    path = tmp_path / "analytics.json"
    model = fresh_model(path)
    answer(dispatcher, ANALYTICS_REQUESTS["tan:CreateRules"], model)
    kept = json.loads(path.read_text())
    assert [r["name"] for r in kept["rules"]] == ["door", "gate", "lobby"]
    assert kept["rules"][1]["segments"] == [[0.25, 0.5], [0.75, 0.25]]
    first = answer(dispatcher, ANALYTICS_REQUESTS["tan:GetRules"], model)
    reloaded = make_model(rules=AnalyticsRuleStore.load(path, ()))
    second = answer(dispatcher, ANALYTICS_REQUESTS["tan:GetRules"], reloaded)
    assert etree.tostring(first) == etree.tostring(second)


def test_a_failed_write_changes_nothing(dispatcher: OnvifDispatcher, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    model = fresh_model(blocker / "analytics.json")  # its directory cannot be made
    assert refused(dispatcher, ANALYTICS_REQUESTS["tan:CreateRules"], model) == [
        "Receiver", "ter:Action",
    ]  # fmt: skip
    assert model.rules.settings.names == ("door",)


# -- the privacy masking module -----------------------------------------------------------------


def masking_model(path: Path | None = None, **privacy: Any) -> DeviceModel:
    """A model whose media store starts from a configuration with these [privacy] keys
    (and `face_enabled=False` / `person_enabled=False` for its detectors)."""
    detectors = {
        name: {"enabled": privacy.pop(f"{name}_enabled")}
        for name in ("face", "person")
        if f"{name}_enabled" in privacy
    }
    cfg = config_from_dict({"privacy": privacy, "detectors": detectors})
    return make_model(media=MediaSettingsStore.load(path, cfg))


def test_the_masking_module_shows_the_live_settings(dispatcher: OnvifDispatcher) -> None:
    model = masking_model(mode="face", style="blur")
    got = answer(dispatcher, ANALYTICS_REQUESTS["tan:GetAnalyticsModules"], model)
    (module,) = got.iterfind("tan:AnalyticsModule", NS)
    assert (module.get("Name"), module.get("Type")) == ("PrivacyMasking", "vcam:PrivacyMasking")
    assert params(module) == {
        "Mode": "face", "Style": "blur", "FaceThreshold": "0.25", "PersonThreshold": "0.3",
    }  # fmt: skip
    supported = answer(dispatcher, ANALYTICS_REQUESTS["tan:GetSupportedAnalyticsModules"], model)
    description = supported.find("tan:SupportedAnalyticsModules/tt:AnalyticsModuleDescription", NS)
    assert description is not None
    assert (description.get("fixed"), description.get("maxInstances")) == ("true", "1")
    described = description.iterfind("tt:Parameters/tt:SimpleItemDescription", NS)
    assert {d.get("Name"): d.get("Type") for d in described} == {
        "Mode": "xs:string", "Style": "xs:string",
        "FaceThreshold": "xs:float", "PersonThreshold": "xs:float",
    }  # fmt: skip
    options = answer(dispatcher, ANALYTICS_REQUESTS["tan:GetAnalyticsModuleOptions"], model)
    by_name = {o.get("Name"): o for o in options}
    assert {k: o.findtext("tt:StringList", namespaces=NS) for k, o in by_name.items()} == {
        "Mode": "face body face+body",
        "Style": "mosaic blocks blur solid",
        "FaceThreshold": None,
        "PersonThreshold": None,
    }
    for name in ("FaceThreshold", "PersonThreshold"):
        limits = by_name[name].find("tt:FloatRange", NS)
        assert limits is not None
        low, high = (float(limits.findtext(f"tt:{k}", "", NS)) for k in ("Min", "Max"))
        assert 0 < low < 0.25 and 0.3 < high < 1  # the defaults inside
    # A mode whose detector the configuration disables is not offered.
    no_person = masking_model(mode="face", person_heads=False, person_enabled=False)
    options = answer(dispatcher, ANALYTICS_REQUESTS["tan:GetAnalyticsModuleOptions"], no_person)
    assert options[0].get("Name") == "Mode"
    assert options[0].findtext("tt:StringList", namespaces=NS) == "face"


def modify_module(name: str = "PrivacyMasking", kind: str = "vcam:PrivacyMasking", **p: str) -> str:
    items = "".join(f'<tt:SimpleItem Name="{k}" Value="{v}"/>' for k, v in p.items())
    return with_token(
        "ModifyAnalyticsModules",
        f'<tan:AnalyticsModule Name="{name}" Type="{kind}"><tt:Parameters>{items}'
        "</tt:Parameters></tan:AnalyticsModule>",
    )


def test_modifying_the_masking_module(dispatcher: OnvifDispatcher, tmp_path: Path) -> None:
    path = tmp_path / "media.json"
    model = masking_model(path, mode="face", style="blur")
    answer(dispatcher, modify_module(Mode="face", Style="blur"), model)  # what it is: accepted
    assert not path.exists(), "no change, nothing written"
    answer(dispatcher, modify_module(Mode="body", Style="solid", FaceThreshold="0.4"), model)
    want = PrivacySettings("body", "solid", 0.4, 0.3)
    assert model.privacy == want
    assert json.loads(path.read_text())["privacy"] == dataclasses.asdict(want)
    got = answer(dispatcher, ANALYTICS_REQUESTS["tan:GetAnalyticsModules"], model)
    assert params(got[0]) == {
        "Mode": "body", "Style": "solid", "FaceThreshold": "0.4", "PersonThreshold": "0.3",
    }  # fmt: skip
    answer(dispatcher, modify_module(PersonThreshold=" 5e-1 "), model)  # the rest stays
    assert model.privacy == dataclasses.replace(want, person_threshold=0.5)

    invalid = ["Sender", "ter:InvalidArgVal", "ter:InvalidModule"]
    for bad in (
        {"Mode": "everything"}, {"Style": "pixels"}, {"Speed": "3"},
        {"FaceThreshold": "0"}, {"FaceThreshold": "1"}, {"PersonThreshold": "NaN"},
        {"PersonThreshold": "INF"}, {"FaceThreshold": "0_5"}, {"FaceThreshold": ""},
        # all or nothing: a good value with a bad one changes nothing
        {"Style": "mosaic", "FaceThreshold": "-0.2"},
    ):  # fmt: skip
        assert refused(dispatcher, modify_module(**bad), model) == invalid, bad
    assert refused(dispatcher, modify_module(name="Other"), model) == [
        "Sender", "ter:InvalidArgVal", "ter:NameNotExistent",
    ]  # fmt: skip
    assert refused(dispatcher, modify_module(kind="tt:CellMotionEngine"), model) == [
        "Receiver", "ter:Action", "ter:TypeChangeProhibited",
    ]  # fmt: skip
    assert model.privacy == dataclasses.replace(want, person_threshold=0.5)
    # Kept: a new store on the same file (a restart) finds it.
    again = masking_model(path, mode="face", style="blur")
    assert again.privacy == model.privacy


def test_a_mode_without_its_detector_is_a_conflict(
    dispatcher: OnvifDispatcher, tmp_path: Path
) -> None:
    model = masking_model(mode="face", person_heads=False, person_enabled=False)
    conflict = ["Receiver", "ter:Action", "ter:ConfigurationConflict"]
    assert refused(dispatcher, modify_module(Mode="body"), model) == conflict
    assert refused(dispatcher, modify_module(Mode="face+body", Style="solid"), model) == conflict
    assert model.privacy == PrivacySettings("face", "mosaic", 0.25, 0.3)
    # A write that fails is a device fault, and changes nothing.
    path = tmp_path / "media.json"
    broken = masking_model(path)
    path.mkdir()
    assert refused(dispatcher, modify_module(Style="solid"), broken) == ["Receiver", "ter:Action"]
    assert broken.privacy.style == "mosaic"


def test_creating_and_deleting_modules(dispatcher: OnvifDispatcher) -> None:
    model = make_model()

    def create(name: str, kind: str) -> list[str]:
        module = f'<tan:AnalyticsModule Name="{name}" Type="{kind}"><tt:Parameters/>'
        module += "</tan:AnalyticsModule>"
        return refused(dispatcher, with_token("CreateAnalyticsModules", module), model)

    assert create("Tracker", "tt:CellMotionEngine") == [
        "Sender",
        "ter:InvalidArgVal",
        "ter:InvalidModule",
    ]
    assert create("PrivacyMasking", "vcam:PrivacyMasking") == [
        "Sender", "ter:InvalidArgVal", "ter:NameAlreadyExistent",
    ]  # fmt: skip
    assert create("Second", "vcam:PrivacyMasking") == FIXED
    gone = "<tan:AnalyticsModuleName>Other</tan:AnalyticsModuleName>"
    assert refused(dispatcher, with_token("DeleteAnalyticsModules", gone), model) == [
        "Sender", "ter:InvalidArgVal", "ter:NameNotExistent",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "classes"),
    [("face", ["HumanFace"]), ("body", ["Human"]), ("face+body", ["Human", "HumanFace"])],
)
def test_supported_metadata_sample_frame(
    dispatcher: OnvifDispatcher, mode: str, classes: list[str]
) -> None:
    model = dataclasses.replace(masking_model(mode=mode), source=SourceInfo(640, 360, 10.0))
    got = answer(dispatcher, ANALYTICS_REQUESTS["tan:GetSupportedMetadata"], model)
    (module,) = got.iterfind("tan:AnalyticsModule", NS)
    assert module.get("Type") == "vcam:PrivacyMasking"
    frame = module.find("tan:SampleFrame", NS)
    assert frame is not None and frame.get("UtcTime", "").endswith("Z")
    objects = frame.findall("tt:Object", NS)
    assert [o.findtext(".//tt:Type", namespaces=NS) for o in objects] == classes
    for o in objects:  # the spec: sample boxes lie in the top left quarter
        box = o.find(".//tt:BoundingBox", NS)
        assert box is not None
        assert float(box.get("left", "")) < float(box.get("right", "")) <= 0
        assert 0 <= float(box.get("bottom", "")) < float(box.get("top", ""))
        assert o.find(".//tt:CenterOfGravity", NS) is not None
    wrong = "<tan:GetSupportedMetadata><tan:Type>tt:CellMotionEngine</tan:Type>"
    wrong += "</tan:GetSupportedMetadata>"
    assert refused(dispatcher, wrong, model) == [
        "Sender",
        "ter:InvalidArgVal",
        "ter:TypeNotExistent",
    ]
    options = "<tan:GetAnalyticsModuleOptions><tan:Type>vcam:Other</tan:Type>"
    assert refused(dispatcher, f"{options}{TOKEN}</tan:GetAnalyticsModuleOptions>", model) == [
        "Sender", "ter:InvalidArgVal", "ter:TypeNotExistent",
    ]  # fmt: skip


# -- end to end: zeep (analytics WSDL) against a real `vcam serve` -------------------------------

USER, PASSWORD = "admin", "analytics-test-pw"
ONVIF_WSDL_DIR = str(Path(onvif.__file__).parent / "wsdl")
CROSSED = "tns1:RuleEngine/LineDetector/Crossed"


def analytics_clients(port: int) -> tuple[Any, Any]:
    """Plain zeep on the analytics WSDL in wsdl/ (WS-Security UsernameToken with digest): its
    rule engine and analytics engine ports. Schemas imported by URL come from wsdl/external."""
    client = onvif_client("ver20/analytics/wsdl/analytics.wsdl", USER, PASSWORD)
    address = f"http://127.0.0.1:{port}/onvif/analytics_service"
    return (
        client.create_service(f"{{{TAN}}}RuleEngineBinding", address),
        client.create_service(f"{{{TAN}}}AnalyticsEngineBinding", address),
    )


def shape(tag: str, xy: list[tuple[float, float]]) -> etree._Element:
    el = etree.Element(f"{{{TT}}}{tag}", nsmap={"tt": TT})
    for x, y in xy:
        etree.SubElement(el, f"{{{TT}}}Point", x=str(x), y=str(y))
    return el


async def first_message(
    port: int, wanted: Callable[[Any], bool], timeout: float, then: Callable[[], Any] | None = None
) -> Any:
    """The first message `wanted` on a PullPoint subscription (HA's onvif-zeep-async), made
    before `then` (a blocking call, run in a thread) if given."""
    cam = ONVIFCamera("127.0.0.1", port, USER, PASSWORD, ONVIF_WSDL_DIR)
    try:
        await cam.update_xaddrs()
        manager = await cam.create_pullpoint_manager(timedelta(seconds=60), lambda: None)
        pullpoint = manager.get_service()
        if then is not None:
            await asyncio.to_thread(then)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = await pullpoint.PullMessages(
                {"MessageLimit": 100, "Timeout": timedelta(seconds=5)}
            )
            for msg in got.NotificationMessage:
                if wanted(msg):
                    return msg
        return None
    finally:
        await cam.close()


def items(group: Any) -> dict[str, str]:
    """A message's Source or Data as zeep read it."""
    return {i.Name: i.Value for i in (group.SimpleItem if group is not None else [])}


def crossed(rule: str) -> Callable[[Any], bool]:
    return lambda msg: (
        msg.Topic._value_1 == CROSSED and items(msg.Message._value_1.Source).get("Rule") == rule
    )


class Camera:
    def __init__(self, port: int, data_dir: Path) -> None:
        self.port, self.data_dir = port, data_dir


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Camera]:
    tmp = tmp_path_factory.mktemp("analytics")
    ports = {"rtsp": free_port(), "http": free_port()}
    config = loopback_config(
        width=640, height=360, fps=10.0, rtsp_port=ports["rtsp"], http_port=ports["http"]
    )
    vcam = VcamProcess(tmp, config, PASSWORD)
    try:
        vcam.wait_for("ONVIF: http://")
        yield Camera(ports["http"], tmp)
    finally:
        vcam.stop()


def line_rule(name: str, xy: list[tuple[float, float]]) -> dict[str, Any]:
    """A tt:LineDetector as zeep takes it: the Type a QName, the polyline an lxml element."""
    return {
        "Name": name,
        "Type": etree.QName(TT, "LineDetector"),
        "Parameters": {
            "SimpleItem": [{"Name": "Direction", "Value": "Any"}],
            "ElementItem": [{"Name": "Segments", "_value_1": shape("Polyline", xy)}],
        },
    }


def test_zeep_creates_rules_on_a_running_camera(camera: Camera) -> None:
    rules, engine = analytics_clients(camera.port)
    caps = engine.GetServiceCapabilities()
    assert caps.RuleSupport and caps.SupportedMetadata
    area = {
        "Name": "left half",
        "Type": etree.QName(TT, "FieldDetector"),
        "Parameters": {
            "ElementItem": [{
                "Name": "Field",
                "_value_1": shape("Polygon", [(-1, 1), (0, 1), (0, -1), (-1, -1)]),
            }],
        },
    }  # fmt: skip
    line = line_rule("diagonal", [(-1, 1), (1, -1)])
    rules.CreateRules(ConfigurationToken=CONFIG_TOKEN, Rule=[line, area])
    listed = {r.Name: r for r in rules.GetRules(ConfigurationToken=CONFIG_TOKEN)}
    assert {"diagonal", "left half"} <= set(listed)
    assert listed["diagonal"].Type == "tt:LineDetector"
    assert listed["left half"].Type == "tt:FieldDetector"
    polyline = listed["diagonal"].Parameters.ElementItem[0]._value_1
    assert [(p.x, p.y) for p in polyline.Point] == [(-1, 1), (1, -1)]  # zeep read tt:Polyline
    kept = json.loads((camera.data_dir / "analytics.json").read_text())
    by_name = {r["name"]: r for r in kept["rules"]}
    assert by_name["diagonal"]["segments"] == [[0, 0], [1, 1]]
    assert by_name["left half"]["field"] == [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]
    modules = engine.GetAnalyticsModules(ConfigurationToken=CONFIG_TOKEN)
    assert [m.Type for m in modules] == ["vcam:PrivacyMasking"]


def test_a_rule_created_over_onvif_sends_events(camera: Camera) -> None:
    """The rule drives the camera's analytics at once: the walkers cross a vertical line
    through the middle, drawn downwards, and a PullPoint subscriber hears of it."""
    rules, _ = analytics_clients(camera.port)
    rules.CreateRules(
        ConfigurationToken=CONFIG_TOKEN, Rule=[line_rule("middle", [(0, 1), (0, -1)])]
    )
    msg = asyncio.run(first_message(camera.port, crossed("middle"), timeout=30))
    assert msg is not None, (
        "no Crossed event of the ONVIF-created rule: does `vcam serve` give the ONVIF model "
        "the camera's rule store (device_model(..., rules=camera.rules))?"
    )
    assert items(msg.Message._value_1.Source)["VideoAnalyticsConfigurationToken"] == CONFIG_TOKEN


def test_a_rule_change_announces_the_analytics_configuration(camera: Camera) -> None:
    """VMSs re-read a configuration when tns1:Media/ConfigurationChanged names it: a rule
    created over ONVIF changes the analytics configuration."""
    rules, _ = analytics_clients(camera.port)

    def changed(msg: Any) -> bool:
        return bool(msg.Topic._value_1 == "tns1:Media/ConfigurationChanged")

    def create() -> None:
        rules.CreateRules(
            ConfigurationToken=CONFIG_TOKEN, Rule=[line_rule("announced", [(0.5, 1), (0.5, -1)])]
        )

    msg = asyncio.run(first_message(camera.port, changed, timeout=15, then=create))
    assert msg is not None, "no ConfigurationChanged after CreateRules"
    assert items(msg.Message._value_1.Data) == {"Token": CONFIG_TOKEN, "Type": "Analytics"}
