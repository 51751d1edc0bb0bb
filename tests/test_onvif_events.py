"""The ONVIF Event service: filters, times, faults and bounds in-process (every answer valid
against event.wsdl), then real clients against the real aiohttp server in this process: Home
Assistant's onvif-zeep-async PullPoint manager whose messages onvif-parsers (HA's parsers)
understands, its Notify manager receiving pushed events, and npm `onvif`'s event loop.

The camera publishes no events yet, so the tests declare the analytics topics on the model's
broker and publish EventMessages themselves, from other threads as the gate thread will.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import shutil
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import onvif
import onvif_parsers
import pytest
from aiohttp import web
from lxml import etree
from onvif import ONVIFCamera

from vcam.auth.digest import DigestAuth
from vcam.auth.users import User, UserLevel, UserStore
from vcam.config import Config, StreamConfig, WebConfig
from vcam.events.broker import EventBroker
from vcam.events.filters import (
    CONCRETE,
    CONCRETE_SET,
    ITEM_FILTER,
    FilterError,
    FilterErrorKind,
    parse_item_filter,
    parse_topic_expression,
)
from vcam.events.message import EventMessage, PropertyOperation, TopicInfo
from vcam.events.pullpoint import Limits, parse_duration, parse_time
from vcam.media.types import SourceInfo
from vcam.onvif.events import SUBSCRIPTION_PATH, EventService, register_events
from vcam.onvif.faults import SoapFault, fault_envelope
from vcam.onvif.model import DeviceModel
from vcam.onvif.service import OnvifDispatcher, OnvifRequest
from vcam.onvif.soap import NSMAP, SOAP12, Dispatcher, envelope, parse_envelope
from vcam.onvif.stack import build_dispatcher, build_web
from vcam.web.snapshot import LatestFrame

from .onvif_model import media_for, onvif_device
from .onvif_xsd import validate
from .vcam_process import ROOT

TEV, WSNT, TT, WSA = NSMAP["tev"], NSMAP["wsnt"], NSMAP["tt"], NSMAP["wsa"]
TNS1, WSTOP = NSMAP["tns1"], NSMAP["wstop"]
CT = "application/soap+xml; charset=utf-8"
HOST = "192.168.1.20:8080"
USER, PASSWORD = "admin", "Events-Test-Pass1"
WSDL_DIR = str(Path(onvif.__file__).parent / "wsdl")
NODE_DIR = ROOT / "tests" / "node"

SOURCE_ITEMS = (
    ("VideoSourceConfigurationToken", "tt:ReferenceToken"),
    ("VideoAnalyticsConfigurationToken", "tt:ReferenceToken"),
    ("Rule", "xs:string"),
)
CROSSED = TopicInfo(
    "tns1:RuleEngine/LineDetector/Crossed", False, SOURCE_ITEMS, (("ObjectId", "xs:int"),)
)
COUNTER = TopicInfo(
    "tns1:RuleEngine/CountAggregation/Counter", True, SOURCE_ITEMS, (("Count", "xs:int"),)
)
MOTION = TopicInfo(
    "tns1:VideoSource/MotionAlarm",
    True,
    (("Source", "tt:ReferenceToken"),),
    (("State", "xs:boolean"),),
)
TOPICS = (CROSSED, COUNTER, MOTION)


def source(rule: str) -> tuple[tuple[str, str], ...]:
    return (
        ("VideoSourceConfigurationToken", "video_source_config"),
        ("VideoAnalyticsConfigurationToken", "analytics"),
        ("Rule", rule),
    )


def crossed(object_id: int, rule: str = "door") -> EventMessage:
    return EventMessage(CROSSED.topic, source(rule), (("ObjectId", str(object_id)),))


def counter(count: int, op: PropertyOperation = PropertyOperation.CHANGED) -> EventMessage:
    return EventMessage(COUNTER.topic, source("door-count"), (("Count", str(count)),), (), op)


def motion(state: bool) -> EventMessage:
    value = "true" if state else "false"
    return EventMessage(
        MOTION.topic,
        (("Source", "video_source"),),
        (("State", value),),
        (),
        PropertyOperation.CHANGED,
    )


def make_model(**changes: Any) -> DeviceModel:
    fields: dict[str, Any] = {
        "source": SourceInfo(640, 360, 25.0),
        "media": media_for(
            StreamConfig("main", 640, 360, 25.0, 1000, 50),
            StreamConfig("sub", 320, 180, 12.5, 300, 25),
        ),
        "users": UserStore([User(USER, PASSWORD, UserLevel.ADMINISTRATOR)]),
        "events": EventBroker(TOPICS),
        **changes,
    }
    return onvif_device(**fields)


SMALL = Limits(max_pull_points=3, max_push=2, queue=8, sweep_s=0.05, push_failures=2)


def service_and_dispatcher(limits: Limits = SMALL) -> tuple[EventService, OnvifDispatcher]:
    svc = EventService(limits)
    d: OnvifDispatcher = Dispatcher()
    register_events(d, svc)
    return svc, d


def env(body: str, extra_ns: str = "") -> bytes:
    return (
        f'<s:Envelope xmlns:s="{SOAP12}" xmlns:tev="{TEV}" xmlns:wsnt="{WSNT}" '
        f'xmlns:tt="{TT}" xmlns:wsa="{WSA}" {extra_ns}><s:Body>{body}</s:Body></s:Envelope>'
    ).encode()


async def call(
    d: OnvifDispatcher, body: str, model: DeviceModel, path: str = "/onvif/events_service"
) -> etree._Element:
    """Parses, dispatches, serialises like the HTTP layer; returns the schema-valid answer."""
    req = parse_envelope(env(body), CT)
    op = d.lookup(req.operation)
    result = op.handler(OnvifRequest(req.body_element, HOST, None, model, path))
    children = await result if isinstance(result, Awaitable) else result
    wire = envelope(children, version=req.version)
    answer = etree.fromstring(wire).find(f"{{{SOAP12}}}Body")[0]  # type: ignore[index]
    assert etree.QName(answer).localname == f"{req.operation.localname}Response"
    validate(answer)
    return answer


async def fault(
    d: OnvifDispatcher, body: str, model: DeviceModel, path: str = "/onvif/events_service"
) -> list[str]:
    """The fault's subcodes as Clark names, resolved on the wire envelope like a client does."""
    with pytest.raises(SoapFault) as info:
        await call(d, body, model, path)
    root = etree.fromstring(fault_envelope(info.value))
    header_action = root.findtext(f"{{{SOAP12}}}Header/{{{WSA}}}Action")
    assert header_action == "http://www.w3.org/2005/08/addressing/soap/fault"
    out = []
    for value in root.iter(f"{{{SOAP12}}}Value"):
        prefix, _, local = (value.text or "").rpartition(":")
        out.append(f"{{{value.nsmap[prefix]}}}{local}" if prefix else local)
    return out


def wsntw(name: str) -> str:
    return f"{{http://docs.oasis-open.org/wsn/bw-2}}{name}"


RESOURCE_UNKNOWN = "{http://docs.oasis-open.org/wsrf/rw-2}ResourceUnknownFault"


def address(answer: etree._Element) -> str:
    text = answer.findtext(f".//{{{WSA}}}Address")
    assert text is not None
    return text


def sub_path(answer: etree._Element) -> str:
    url = address(answer)
    assert url.startswith(f"http://{HOST}{SUBSCRIPTION_PATH}")
    return url.split(HOST, 1)[1]


def messages(answer: etree._Element) -> list[tuple[str, str | None, dict[str, str]]]:
    out = []
    for n in answer.iterfind(f"{{{WSNT}}}NotificationMessage"):
        topic = n.find(f"{{{WSNT}}}Topic")
        assert topic is not None and topic.get("Dialect") == CONCRETE_SET
        msg = n.find(f"{{{WSNT}}}Message/{{{TT}}}Message")
        assert msg is not None and msg.get("UtcTime", "").endswith("Z")
        items = {i.get("Name", ""): i.get("Value", "") for i in msg.iter(f"{{{TT}}}SimpleItem")}
        out.append(((topic.text or "").strip(), msg.get("PropertyOperation"), items))
    return out


CREATE = "<tev:CreatePullPointSubscription><tev:InitialTerminationTime>PT60S"
CREATE += "</tev:InitialTerminationTime></tev:CreatePullPointSubscription>"
PULL = "<tev:PullMessages><tev:Timeout>PT0S</tev:Timeout><tev:MessageLimit>100"
PULL += "</tev:MessageLimit></tev:PullMessages>"

# One well-formed request per registered operation (the first test insists on that).
EVENTS_REQUESTS: dict[str, str] = {
    "tev:GetServiceCapabilities": "<tev:GetServiceCapabilities/>",
    "tev:GetEventProperties": "<tev:GetEventProperties/>",
    "tev:CreatePullPointSubscription": "<tev:CreatePullPointSubscription><tev:Filter>"
    f'<wsnt:TopicExpression Dialect="{CONCRETE_SET}" xmlns:tns1="{TNS1}">tns1:RuleEngine//.'
    "</wsnt:TopicExpression></tev:Filter><tev:InitialTerminationTime>PT60S"
    "</tev:InitialTerminationTime></tev:CreatePullPointSubscription>",
    "tev:PullMessages": "<tev:PullMessages><tev:Timeout>PT1S</tev:Timeout>"
    "<tev:MessageLimit>10</tev:MessageLimit></tev:PullMessages>",
    "tev:SetSynchronizationPoint": "<tev:SetSynchronizationPoint/>",
    "wsnt:Subscribe": "<wsnt:Subscribe><wsnt:ConsumerReference><wsa:Address>"
    "http://127.0.0.1:9/notify</wsa:Address></wsnt:ConsumerReference>"
    "<wsnt:InitialTerminationTime>PT60S</wsnt:InitialTerminationTime></wsnt:Subscribe>",
    "wsnt:Renew": "<wsnt:Renew><wsnt:TerminationTime>PT120S</wsnt:TerminationTime></wsnt:Renew>",
    "wsnt:Unsubscribe": "<wsnt:Unsubscribe/>",
}
ON_SUBSCRIPTION = {"tev:PullMessages", "tev:SetSynchronizationPoint", "wsnt:Renew"}
ON_SUBSCRIPTION |= {"wsnt:Unsubscribe"}


def clark(prefixed: str) -> str:
    prefix, local = prefixed.split(":")
    return f"{{{NSMAP[prefix]}}}{local}"


def test_every_registered_operation_is_covered() -> None:
    _, d = service_and_dispatcher()
    assert {op.qname for op in d.operations()} == {clark(k) for k in EVENTS_REQUESTS}
    assert {clark(k) for k in EVENTS_REQUESTS} <= {
        op.qname for op in build_dispatcher().operations()
    }


@pytest.mark.parametrize("name", sorted(EVENTS_REQUESTS))
def test_every_request_and_answer_is_schema_valid(name: str) -> None:
    validate(parse_envelope(env(EVENTS_REQUESTS[name]), CT).body_element)

    async def run() -> None:
        svc, d = service_and_dispatcher()
        model = make_model()
        model.events.publish(counter(3))
        path = "/onvif/events_service"
        if name in ON_SUBSCRIPTION:
            path = sub_path(await call(d, CREATE, model))
        answer = await call(d, EVENTS_REQUESTS[name], model, path)
        if name == "tev:PullMessages":  # the current property, as Initialized
            assert messages(answer) == [
                (COUNTER.topic, "Initialized", {**dict(source("door-count")), "Count": "3"})
            ]
        await svc.manager(model.events).close()

    asyncio.run(run())


def test_capabilities_and_event_properties() -> None:
    async def run() -> None:
        _, d = service_and_dispatcher(Limits())
        model = make_model()
        caps = (await call(d, "<tev:GetServiceCapabilities/>", model))[0]
        assert int(caps.get("MaxPullPoints", "0")) >= 2
        assert caps.get("WSSubscriptionPolicySupport") == "true"
        assert caps.get("PersistentNotificationStorage") == "false"
        assert int(caps.get("MaxNotificationProducers", "0")) >= 1
        props = await call(d, "<tev:GetEventProperties/>", model)
        dialects = [e.text for e in props.iterfind(f"{{{WSNT}}}TopicExpressionDialect")]
        assert dialects == [CONCRETE, CONCRETE_SET]
        assert props.findtext(f"{{{TEV}}}MessageContentFilterDialect") == ITEM_FILTER
        assert props.findtext(f"{{{WSNT}}}FixedTopicSet") == "true"
        topic_set = props.find(f"{{{WSTOP}}}TopicSet")
        assert topic_set is not None
        # Only the roots are in tns1; the levels below are unqualified (Core spec example).
        assert [c.tag for c in topic_set] == [f"{{{TNS1}}}RuleEngine", f"{{{TNS1}}}VideoSource"]
        crossed_el = topic_set.find(f"{{{TNS1}}}RuleEngine/LineDetector/Crossed")
        assert crossed_el is not None and crossed_el.get(f"{{{WSTOP}}}topic") == "true"
        engine = topic_set[0]
        assert engine.get(f"{{{WSTOP}}}topic") is None
        desc = crossed_el.find(f"{{{TT}}}MessageDescription")
        assert desc is not None and desc.get("IsProperty") == "false"
        names = [
            i.get("Name") for i in desc.iterfind(f"{{{TT}}}Source/{{{TT}}}SimpleItemDescription")
        ]
        assert names == [n for n, _ in SOURCE_ITEMS]
        data = desc.find(f"{{{TT}}}Data/{{{TT}}}SimpleItemDescription")
        assert data is not None and (data.get("Name"), data.get("Type")) == ("ObjectId", "xs:int")
        count = topic_set.find(
            f"{{{TNS1}}}RuleEngine/CountAggregation/Counter/{{{TT}}}MessageDescription"
        )
        assert count is not None and count.get("IsProperty") == "true"
        # The Type QNames resolve on the wire.
        wire = etree.fromstring(envelope([props]))
        for item in wire.iter(f"{{{TT}}}SimpleItemDescription"):
            prefix = item.get("Type", "").split(":")[0]
            assert prefix in item.nsmap

    asyncio.run(run())


# -- filters ----------------------------------------------------------------------------------

NSM: dict[str | None, str] = {"tns1": TNS1, "t": TNS1, "tt": TT, "x": "urn:other"}


@pytest.mark.parametrize(
    ("expression", "matching"),
    [
        ("tns1:RuleEngine/LineDetector/Crossed", {CROSSED.topic}),
        ("t:RuleEngine//.", {CROSSED.topic, COUNTER.topic}),  # any prefix bound to tns1
        (
            " tns1:VideoSource/MotionAlarm|tns1:RuleEngine/CountAggregation//. ",
            {MOTION.topic, COUNTER.topic},
        ),
        ("tns1:RuleEngine", set()),  # a concrete parent topic is not its children
        ("x:RuleEngine//.", set()),  # another namespace
    ],
)
def test_topic_expressions(expression: str, matching: set[str]) -> None:
    for dialect in (CONCRETE, CONCRETE_SET):
        f = parse_topic_expression(expression, dialect, NSM)
        assert {t.topic for t in TOPICS if f.matches(t.topic)} == matching


@pytest.mark.parametrize(
    "expression",
    ["", "undeclared:RuleEngine", "tns1:RuleEngine//", "tns1:Rule Engine", "tns1:*",
     "tns1:A||tns1:B",
     "tns1:A/", "tns1:A/" + "B/" * 2000],
)  # fmt: skip
def test_invalid_topic_expressions(expression: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_topic_expression(expression, CONCRETE_SET, NSM)
    assert info.value.kind is FilterErrorKind.INVALID_TOPIC_EXPRESSION


def test_unknown_topic_dialect() -> None:
    with pytest.raises(FilterError) as info:
        parse_topic_expression(
            "tns1:RuleEngine", "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Full", NSM
        )
    assert info.value.kind is FilterErrorKind.TOPIC_DIALECT_UNKNOWN


@pytest.mark.parametrize(
    ("expression", "door", "gate"),
    [
        ('boolean(//tt:SimpleItem[@Name="Rule" and @Value="door"])', True, False),
        ("boolean(//SimpleItem[@Name='Rule' and @Value='gate'])", False, True),
        ('not(boolean(//tt:SimpleItem[@Name="Rule" and @Value="door"]))', False, True),
        ('boolean(//tt:SimpleItem[@Name="ObjectId" and @Value="7"]) or boolean(//tt:SimpleItem'
         '[@Value="gate"])', True, True),
        ('boolean(//tt:SimpleItem[@Name="VideoAnalyticsConfigurationToken" and @Value="analytics"]'
         ') and boolean(//tt:SimpleItem[@Name="Rule" and not(@Value="door")])', False, True),
        ('boolean(//tt:ElementItem[@Name="Rule"])', False, False),
        ('(boolean(//tt:SimpleItem[(@Name="Rule") and (@Value="door" or @Value="gate")]))',
         True, True),
    ],
)  # fmt: skip
def test_item_filters(expression: str, door: bool, gate: bool) -> None:
    f = parse_item_filter(expression, ITEM_FILTER, NSM)
    assert (f(crossed(7, "door")), f(crossed(8, "gate"))) == (door, gate)


@pytest.mark.parametrize(
    "expression",
    ['//tt:SimpleItem[@Name="Rule"]', 'boolean(//x:SimpleItem[@Name="Rule"])',
     'boolean(//tt:Message[@Name="Rule"])', 'count(//tt:SimpleItem) > 0',
     'boolean(//tt:SimpleItem[@Name="Rule"]', 'boolean(//tt:SimpleItem[@Type="x"])',
     'boolean(//tt:SimpleItem[@Name=Rule])', "not(" * 200 + 'boolean(//tt:SimpleItem[@Name="a"])'
     + ")" * 200, 'boolean(//tt:SimpleItem[@Name="a"]) and' + " x" * 3000, ""],
)  # fmt: skip
def test_invalid_item_filters(expression: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_item_filter(expression, ITEM_FILTER, NSM)
    assert info.value.kind is FilterErrorKind.INVALID_MESSAGE_CONTENT


def test_filters_and_faults_through_create() -> None:
    async def run() -> None:
        svc, d = service_and_dispatcher()
        model = make_model()
        model.events.publish(counter(5))
        model.events.publish(motion(True))
        body = (
            "<tev:CreatePullPointSubscription><tev:Filter>"
            f'<wsnt:TopicExpression Dialect="{CONCRETE}" xmlns:r="{TNS1}">r:RuleEngine//.'
            f'</wsnt:TopicExpression><wsnt:MessageContent Dialect="{ITEM_FILTER}">'
            'boolean(//tt:SimpleItem[@Name="Rule" and @Value="door"]) or '
            'boolean(//tt:SimpleItem[@Name="Count"])</wsnt:MessageContent>'
            "</tev:Filter></tev:CreatePullPointSubscription>"
        )
        path = sub_path(await call(d, body, model))
        model.events.publish(crossed(1, "door"))
        model.events.publish(crossed(2, "gate"))  # the content filter drops it
        model.events.publish(motion(False))  # the topic filter drops it
        await asyncio.sleep(0.05)  # the broker hands messages to the loop
        got = messages(await call(d, PULL, model, path))
        assert [(t, op, i.get("ObjectId", i.get("Count"))) for t, op, i in got] == [
            (COUNTER.topic, "Initialized", "5"),
            (CROSSED.topic, None, "1"),
        ]
        # ChangedOnly: no Initialized state at the start.
        changed_only = "<tev:CreatePullPointSubscription><tev:SubscriptionPolicy><tev:ChangedOnly/>"
        changed_only += "</tev:SubscriptionPolicy></tev:CreatePullPointSubscription>"
        path2 = sub_path(await call(d, changed_only, model))
        assert messages(await call(d, PULL, model, path2)) == []
        # Faults, each with its WS-BaseNotification subcode.
        filt = "<tev:CreatePullPointSubscription><tev:Filter>{}</tev:Filter>"
        filt += "</tev:CreatePullPointSubscription>"
        cases = {
            f'<wsnt:TopicExpression Dialect="{CONCRETE_SET}">no:RuleEngine</wsnt:TopicExpression>':
                "InvalidTopicExpressionFault",
            '<wsnt:TopicExpression Dialect="urn:x">tns1:RuleEngine</wsnt:TopicExpression>':
                "TopicExpressionDialectUnknownFault",
            f'<wsnt:MessageContent Dialect="{ITEM_FILTER}">//tt:SimpleItem</wsnt:MessageContent>':
                "InvalidMessageContentExpressionFault",
            '<wsnt:ProducerProperties Dialect="urn:x">x</wsnt:ProducerProperties>':
                "InvalidFilterFault",
        }  # fmt: skip
        for part, name in cases.items():
            assert wsntw(name) in await fault(d, filt.format(part), model), name
        await svc.manager(model.events).close()

    asyncio.run(run())


# -- times ------------------------------------------------------------------------------------


def test_time_parsing() -> None:
    now = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
    assert parse_duration("PT60S") == timedelta(seconds=60)
    assert parse_duration("P1DT2H3M4.5S") == timedelta(days=1, hours=2, minutes=3, seconds=4.5)
    assert parse_duration("P0Y0M0DT0H1M0S") == timedelta(minutes=1)
    assert parse_time("PT1M", now) == now + timedelta(minutes=1)
    assert parse_time("2024-05-01T10:05:00Z", now) == now + timedelta(minutes=5)
    assert parse_time("2024-05-01T12:05:00+02:00", now) == now + timedelta(minutes=5)
    for bad in ("", "P", "PT", "P1Y", "-PT5S", "PT5", "5", "2024-13-01T00:00:00Z", "P1M"):
        with pytest.raises(ValueError):
            parse_time(bad, now)


def test_termination_times_renew_and_faults() -> None:
    async def run() -> None:
        svc, d = service_and_dispatcher()
        model = make_model()

        def times(answer: etree._Element) -> timedelta:
            current = answer.findtext(f".//{{{WSNT}}}CurrentTime") or answer.findtext(
                f"{{{TEV}}}CurrentTime"
            )
            term = answer.findtext(f".//{{{WSNT}}}TerminationTime") or answer.findtext(
                f"{{{TEV}}}TerminationTime"
            )
            assert current and term and current.endswith("Z") and term.endswith("Z")
            return datetime.fromisoformat(term) - datetime.fromisoformat(current)

        answer = await call(d, CREATE, model)
        assert abs(times(answer) - timedelta(seconds=60)) < timedelta(seconds=1)
        path = sub_path(answer)
        later = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        renew = "<wsnt:Renew><wsnt:TerminationTime>{}</wsnt:TerminationTime></wsnt:Renew>"
        got = times(await call(d, renew.format(later), model, path))
        assert abs(got - timedelta(minutes=5)) < timedelta(seconds=2)
        assert abs(
            times(await call(d, renew.format("PT30S"), model, path)) - timedelta(seconds=30)
        ) < timedelta(seconds=1)
        bad_renew = await fault(d, renew.format("2000-01-01T00:00:00Z"), model, path)
        assert wsntw("UnacceptableTerminationTimeFault") in bad_renew
        create = "<tev:CreatePullPointSubscription><tev:InitialTerminationTime>{}"
        create += "</tev:InitialTerminationTime></tev:CreatePullPointSubscription>"
        for text in ("2000-01-01T00:00:00Z", "PT0S", "PT2H"):
            assert wsntw("UnacceptableInitialTerminationTimeFault") in await fault(
                d, create.format(text), model
            )
        assert f"{{{NSMAP['ter']}}}InvalidArgVal" in await fault(d, create.format("soon"), model)
        absolute = (datetime.now(UTC) + timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert abs(
            times(await call(d, create.format(absolute), model)) - timedelta(seconds=90)
        ) < timedelta(seconds=2)
        await svc.manager(model.events).close()

    asyncio.run(run())


# -- limits, waiting, expiry ------------------------------------------------------------------


def test_pull_points_are_bounded_and_queues_drop_oldest() -> None:
    async def run() -> None:
        svc, d = service_and_dispatcher()  # 3 pull points, queues of 8
        model = make_model()
        paths = [sub_path(await call(d, CREATE, model)) for _ in range(SMALL.max_pull_points)]
        assert wsntw("SubscribeCreationFailedFault") in await fault(d, CREATE, model)
        await call(d, "<wsnt:Unsubscribe/>", model, paths.pop())
        paths.append(sub_path(await call(d, CREATE, model)))  # room again
        assert RESOURCE_UNKNOWN in await fault(d, PULL, model, SUBSCRIPTION_PATH + "nosuchid")
        assert RESOURCE_UNKNOWN in await fault(d, PULL, model)  # the service, not a subscription
        for i in range(100):
            model.events.publish(crossed(i))
        await asyncio.sleep(0.05)
        got = messages(await call(d, PULL, model, paths[0]))
        assert [i["ObjectId"] for _, _, i in got] == [str(i) for i in range(92, 100)]
        manager = svc.manager(model.events)
        sub = manager.get(paths[0].rsplit("/", 1)[1])
        assert sub.dropped == 92 and not sub.queue
        await manager.close()
        assert model.events.subscriber_count() == 0

    asyncio.run(run())


def test_pull_messages_waits_for_the_first_message() -> None:
    async def run() -> None:
        svc, d = service_and_dispatcher()
        model = make_model()
        path = sub_path(await call(d, CREATE, model))
        wait = "<tev:PullMessages><tev:Timeout>PT{}S</tev:Timeout><tev:MessageLimit>10"
        wait += "</tev:MessageLimit></tev:PullMessages>"
        started = time.monotonic()
        assert messages(await call(d, wait.format("0.3"), model, path)) == []
        assert 0.25 < time.monotonic() - started < 2
        # Published from another thread (as the analytics will) while the pull waits.
        timer = threading.Timer(0.2, lambda: model.events.publish(crossed(42)))
        timer.start()
        started = time.monotonic()
        got = messages(await call(d, wait.format("10"), model, path))
        assert [i["ObjectId"] for _, _, i in got] == ["42"]
        assert time.monotonic() - started < 3
        # A second pull ends a waiting one (a client that gave up is not locked out).
        first = asyncio.ensure_future(call(d, wait.format("30"), model, path))
        await asyncio.sleep(0.1)
        assert messages(await call(d, wait.format("0.1"), model, path)) == []
        assert messages(await asyncio.wait_for(first, 2)) == []
        # SetSynchronizationPoint: every current property again, as Initialized.
        model.events.publish(counter(9))
        await asyncio.sleep(0.05)
        assert [op for _, op, _ in messages(await call(d, PULL, model, path))] == ["Changed"]
        await call(d, "<tev:SetSynchronizationPoint/>", model, path)
        assert [op for _, op, _ in messages(await call(d, PULL, model, path))] == ["Initialized"]
        await svc.manager(model.events).close()

    asyncio.run(run())


def test_expired_subscriptions_are_removed() -> None:
    async def run() -> None:
        svc, d = service_and_dispatcher()
        model = make_model()
        short = CREATE.replace("PT60S", "PT0.3S")
        path = sub_path(await call(d, short, model))
        manager = svc.manager(model.events)
        assert len(manager) == 1 and model.events.subscriber_count() == 1
        await asyncio.sleep(0.6)
        assert len(manager) == 0 and manager.expired == 1
        assert model.events.subscriber_count() == 0
        assert RESOURCE_UNKNOWN in await fault(d, PULL, model, path)
        assert RESOURCE_UNKNOWN in await fault(d, "<wsnt:Unsubscribe/>", model, path)

    asyncio.run(run())


def test_1000_subscribe_unsubscribe_cycles_leave_nothing_behind() -> None:
    async def run() -> tuple[int, int]:
        svc, d = service_and_dispatcher(Limits())
        model = make_model()
        model.events.publish(counter(1))
        baseline_tasks = len(asyncio.all_tasks())

        async def cycles(n: int) -> None:
            for i in range(n):
                path = sub_path(await call(d, CREATE, model))
                model.events.publish(crossed(i))
                await call(d, "<wsnt:Unsubscribe/>", model, path)
                await asyncio.sleep(0)  # the loop turns between requests, as in the server

        await cycles(50)  # warm-up: caches, interned strings
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        await cycles(1000)
        await asyncio.sleep(0)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
        manager = svc.manager(model.events)
        assert len(manager) == 0 and model.events.subscriber_count() == 0
        assert manager._sweeper is None  # no timer left either
        return len(asyncio.all_tasks()) - baseline_tasks, growth

    extra_tasks, growth = asyncio.run(run())
    assert extra_tasks == 0
    assert growth < 64 * 1024, growth  # measured ~2 KiB; a leak of 64 B per cycle fails it


# -- real clients against the real server -----------------------------------------------------


@asynccontextmanager
async def running_server() -> AsyncIterator[tuple[Any, DeviceModel]]:
    users = UserStore([User(USER, PASSWORD, UserLevel.ADMINISTRATOR)])
    model = make_model(users=users, http_port=0)
    cfg = dataclasses.replace(Config(), web=WebConfig(bind="127.0.0.1", port=0))
    web_server = build_web(cfg, model, users, DigestAuth(users, "vcam-test"), LatestFrame())
    await web_server.start()
    web_server.onvif.model = dataclasses.replace(model, http_port=web_server.port)
    try:
        yield web_server, web_server.onvif.model
    finally:
        await web_server.stop()


def event_manager(web_server: Any, model: DeviceModel) -> Any:
    """The server's subscription manager for the model's broker (found through a handler)."""
    op = web_server.onvif.dispatcher.lookup(clark("tev:PullMessages"))
    return op.handler.__self__.manager(model.events)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def test_home_assistant_pull_point_and_parsers() -> None:
    asyncio.run(_home_assistant())


async def _home_assistant() -> None:
    async with running_server() as (web_server, model):
        model.events.publish(counter(5))  # a state that exists before the subscription
        # Listeners that are always there (the web page's recent-events list), not pull points.
        baseline = model.events.subscriber_count()
        cam = ONVIFCamera("127.0.0.1", web_server.port, USER, PASSWORD, WSDL_DIR)
        try:
            await cam.update_xaddrs()
            events = await cam.create_events_service()
            caps = await events.GetServiceCapabilities()
            assert caps.MaxPullPoints >= 2
            lost: list[bool] = []
            manager = await cam.create_pullpoint_manager(
                timedelta(seconds=60), lambda: lost.append(True)
            )
            server_side = event_manager(web_server, model)
            assert len(server_side) == 1
            await manager.set_synchronization_point()
            pullpoint = manager.get_service()
            first = await pullpoint.PullMessages(
                {"MessageLimit": 100, "Timeout": timedelta(seconds=5)}
            )
            # Created with the current state, then again for the synchronization point.
            assert [m.Message._value_1.PropertyOperation for m in first.NotificationMessage] == [
                "Initialized",
                "Initialized",
            ]
            # Published from another thread while HA's pull waits.
            threading.Timer(
                0.3, lambda: (model.events.publish(crossed(7)), model.events.publish(counter(6)))
            ).start()
            started = time.monotonic()
            second = await pullpoint.PullMessages(
                {"MessageLimit": 100, "Timeout": timedelta(seconds=60)}
            )
            assert time.monotonic() - started < 5
            got = list(second.NotificationMessage)
            if len(got) < 2:  # the two may come in two answers
                third = await pullpoint.PullMessages(
                    {"MessageLimit": 100, "Timeout": timedelta(seconds=5)}
                )
                got += list(third.NotificationMessage)
            entities = {}
            for msg in [*first.NotificationMessage[:1], *got]:
                topic = msg.Topic._value_1
                for entity in await onvif_parsers.parse(topic, "cam1", msg):
                    entities[entity.uid] = entity
            prefix = "cam1_{}_video_source_config_analytics_"
            line = entities[prefix.format(CROSSED.topic) + "door"]
            count = entities[prefix.format(COUNTER.topic) + "door-count"]
            assert (line.name, line.platform, line.value) == (
                "Line Detector Crossed",
                "sensor",
                "7",
            )
            assert (count.name, count.value) == ("Count Aggregation Counter", "6")
            # Renew as HA does at 80 % of the interval, then Unsubscribe on stop.
            await manager._subscription.Renew("PT60S")
            await manager.shutdown()
            assert not lost
            await until(lambda: len(server_side) == 0)
            assert model.events.subscriber_count() == baseline
        finally:
            await cam.close()


def test_home_assistant_notify_webhook() -> None:
    asyncio.run(_notify())


async def _notify() -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue(maxsize=16)
    failing_hits = 0

    async def consumer(request: web.Request) -> web.Response:
        await received.put(await request.read())
        return web.Response(status=202)

    async def failing(request: web.Request) -> web.Response:
        nonlocal failing_hits
        failing_hits += 1
        raise web.HTTPFound("http://127.0.0.1:9/elsewhere")  # redirects are never followed

    app = web.Application()
    app.router.add_post("/notify", consumer)
    app.router.add_post("/broken", failing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with running_server() as (web_server, model):
            model.events.publish(counter(2))
            cam = ONVIFCamera("127.0.0.1", web_server.port, USER, PASSWORD, WSDL_DIR)
            try:
                await cam.update_xaddrs()
                manager = await cam.create_notification_manager(
                    f"http://127.0.0.1:{port}/notify", timedelta(seconds=60), lambda: None
                )
                model.events.publish(crossed(11))
                parsed = []
                while len(parsed) < 2:
                    body = await asyncio.wait_for(received.get(), 10)
                    root = etree.fromstring(body)
                    assert root.findtext(f"{{{SOAP12}}}Header/{{{WSA}}}Action", "").endswith(
                        "/Notify"
                    )
                    assert (
                        root.findtext(f"{{{SOAP12}}}Header/{{{WSA}}}To")
                        == f"http://127.0.0.1:{port}/notify"
                    )
                    validate(root.find(f"{{{SOAP12}}}Body")[0])  # type: ignore[index]
                    result = manager.process(body)  # HA's own parsing of a webhook Notify
                    assert result is not None
                    parsed.extend(result.NotificationMessage)
                values = {}
                for msg in parsed:
                    for entity in await onvif_parsers.parse(msg.Topic._value_1, "cam1", msg):
                        values[entity.name] = entity.value
                assert values == {"Count Aggregation Counter": "2", "Line Detector Crossed": "11"}
                await manager.shutdown()  # Unsubscribe
                server_side = event_manager(web_server, model)
                await until(lambda: len(server_side) == 0)
                # A consumer that keeps failing (here: redirecting) is dropped.
                sub = server_side.create(consumer=f"http://127.0.0.1:{port}/broken")
                for i in range(100):  # a message now and then, until it gives up (bounded)
                    model.events.publish(crossed(100 + i))
                    await asyncio.sleep(0.05)
                    if not len(server_side):
                        break
                assert len(server_side) == 0
                assert server_side.consumers_dropped == 1 and sub.closed
                assert failing_hits == Limits().push_failures
            finally:
                await cam.close()
    finally:
        await runner.cleanup()


def test_npm_onvif_event_loop() -> None:
    assert shutil.which("node"), "node (v20) is needed: apt-get install nodejs npm"
    assert (NODE_DIR / "node_modules" / "onvif").is_dir(), "(cd tests/node && npm ci)"
    asyncio.run(_npm())


async def _npm() -> None:
    async with running_server() as (web_server, model):
        model.events.publish(counter(4))
        proc = await asyncio.create_subprocess_exec(
            "node", "onvif_events.js", "127.0.0.1", str(web_server.port), USER, PASSWORD, "2",
            cwd=NODE_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert proc.stderr is not None
            line = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert line.strip() == b"subscribed", line
            await asyncio.sleep(0.3)
            model.events.publish(crossed(21))
            out, err = await asyncio.wait_for(proc.communicate(), 40)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        result = json.loads(out.decode().strip().splitlines()[-1])
        assert proc.returncode == 0, (result, err.decode()[-2000:])
        events = result["events"]
        assert events[0]["topic"] == COUNTER.topic and events[0]["operation"] == "Initialized"
        assert events[0]["data"] == {"Count": "4"}
        assert events[1]["topic"] == CROSSED.topic and events[1]["data"] == {"ObjectId": "21"}
        assert events[1]["source"] == dict(source("door"))
        requests = [t["request"] for t in result["trace"] if "request" in t]
        assert "CreatePullPointSubscription" in requests and "Renew" in requests
        assert requests[-1] == "Unsubscribe"
        await until(lambda: len(event_manager(web_server, model)) == 0)
