"""Analytics events end to end: a real `vcam serve` whose configured rules see the synthetic
walkers cross a line and enter a field, and real clients that receive what it publishes.

- Home Assistant's way (onvif-zeep-async's PullPointManager, SetSynchronizationPoint, then
  PullMessages), every message parsed by HA's own parsers (PyPI onvif-parsers);
- npm `onvif`'s PullPoint + Renew loop (Scrypted, Shinobi);
- the RTSP metadata track (read like Frigate does, `-map 0:d:0`), whose documents carry the same
  notifications in tt:Event and validate against metadatastream.xsd.

The counts are checked against each other, not against fixed numbers (the live tracker on two
shared cores is not frame-exact): the LineDetector and the LineCounting rule watch the same
line with the same direction filter and the same crossing logic, so every Counter change is
the Crossed messages of that frame added to the previous count, and the FieldDetector and the
OccupancyCounting rule watch the same field, so the occupancy is the number of objects inside.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import onvif
import onvif_parsers
import pytest
from lxml import etree
from onvif import ONVIFCamera

from .vcam_process import ROOT, VcamProcess, free_port, loopback_config
from .xsd import onvif_schema

USER, PASSWORD = "admin", "events-e2e-pw"
WSDL_DIR = str(Path(onvif.__file__).parent / "wsdl")
NODE_DIR = ROOT / "tests" / "node"
TT = "http://www.onvif.org/ver10/schema"
WSNT = "http://docs.oasis-open.org/wsn/b-2"

CROSSED = "tns1:RuleEngine/LineDetector/Crossed"
COUNTER = "tns1:RuleEngine/CountAggregation/Counter"
INSIDE = "tns1:RuleEngine/FieldDetector/ObjectsInside"
OCCUPANCY = "tns1:RuleEngine/CountAggregation/OccupancyCounter"
LINE_RULE, COUNT_RULE, FIELD_RULE, OCCUPANCY_RULE = "door", "door-count", "zone", "zone-count"
PROPERTIES = {(COUNTER, COUNT_RULE), (INSIDE, FIELD_RULE), (OCCUPANCY, OCCUPANCY_RULE)}
# Where the scene's near walkers cross: about one crossing a second, either way (the two rules on
# it are compared with each other, not with the scene's truth).
LINE = "[[0.79, 0.75], [0.79, 1.0]]"
# Right of the line along the bottom edge: where the near walkers stand (their boxes, cut by
# the edge, are clamped to the frame: feet on the field's edge, which counts as inside).
FIELD = "[[0.79, 0.95], [1.0, 0.95], [1.0, 1.0], [0.79, 1.0]]"
# LineDetector first: a frame's Crossed messages go out before its Counter change.
RULES = f"""
[privacy]
mode = "body"
[analytics]
motion = false
object_events = false
[[analytics.rules]]
name = "{LINE_RULE}"
type = "LineDetector"
segments = {LINE}
direction = "Any"
[[analytics.rules]]
name = "{COUNT_RULE}"
type = "LineCounting"
segments = {LINE}
direction = "Any"
[[analytics.rules]]
name = "{FIELD_RULE}"
type = "FieldDetector"
field = {FIELD}
[[analytics.rules]]
name = "{OCCUPANCY_RULE}"
type = "OccupancyCounting"
field = {FIELD}
"""


@dataclass(frozen=True)
class Msg:
    """One notification as the tests compare them, whoever received it."""

    topic: str
    operation: str | None  # PropertyOperation; None for an event
    utc: str
    source: dict[str, str]
    data: dict[str, str]

    @property
    def rule(self) -> str:
        return self.source.get("Rule", "")

    def of(self, topic: str, rule: str) -> bool:
        return self.topic == topic and self.rule == rule


@dataclass(frozen=True)
class Camera:
    http: int
    rtsp: int


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Camera]:
    tmp = tmp_path_factory.mktemp("events-e2e")
    cam = Camera(http=free_port(), rtsp=free_port())
    config = loopback_config(
        width=640, height=360, fps=10.0, rtsp_port=cam.rtsp, http_port=cam.http, solid=False,
        tail=RULES,
    )  # fmt: skip
    vcam = VcamProcess(tmp, config, PASSWORD)
    try:
        vcam.wait_for("ONVIF: http://")
        yield cam
    finally:
        vcam.stop()


# -- the checks every client's messages must pass ---------------------------------------------


def check_counts(msgs: Sequence[Msg]) -> int:
    """The LineCounting rule's Count follows the LineDetector's Crossed messages exactly (same
    line, both Any, same crossing logic, Crossed published first in each frame); returns the
    number of Crossed messages checked against a count.

    Only Changed messages and events are compared: they reach a subscription in publish order.
    An Initialized one is the broker's state when the subscription (or synchronization point)
    was made, which may already hold a change still on its way, so it only bounds the count.
    """
    crossed_since = 0
    count: int | None = None
    checked = 0
    initialized: list[int] = []
    before_first = 0
    last_crossed: Msg | None = None
    for m in msgs:
        if m.of(CROSSED, LINE_RULE):
            assert m.operation is None
            crossed_since += 1
            last_crossed = m
        elif m.of(COUNTER, COUNT_RULE):
            value = int(m.data["Count"])
            if m.operation == "Initialized":
                initialized.append(value)
                continue
            assert m.operation == "Changed", m
            if count is None:
                before_first = crossed_since
                for v in initialized:  # taken before this change was published, or after
                    assert value - before_first <= v <= value, (v, value, before_first)
            else:
                assert value == count + crossed_since, (count, crossed_since, m)
                assert crossed_since >= 1 and last_crossed is not None, f"no crossing: {m}"
                assert last_crossed.utc == m.utc, (last_crossed, m)  # the same frame's
                checked += crossed_since
            count, crossed_since = value, 0
    return checked


def check_occupancy(msgs: Sequence[Msg]) -> int:
    """Frame by frame (a frame's messages share their UtcTime), the OccupancyCounting rule's
    Count is the number of objects the FieldDetector on the same field has inside; returns
    the number of frames checked."""
    frames: list[list[Msg]] = []
    for m in msgs:
        if m.operation != "Changed" or not (
            m.of(INSIDE, FIELD_RULE) or m.of(OCCUPANCY, OCCUPANCY_RULE)
        ):
            continue
        if frames and frames[-1][0].utc == m.utc:
            frames[-1].append(m)
        else:
            frames.append([m])
    count: int | None = None
    checked = 0
    for frame in frames[:-1]:  # the last one may be cut in two by the end of the pulls
        inside = [m for m in frame if m.topic == INSIDE]
        occupancy = [m for m in frame if m.topic == OCCUPANCY]
        if occupancy:
            count = int(occupancy[-1].data["Count"])
            assert inside, f"the occupancy changed, the objects inside did not: {frame}"
        if inside and count is not None:
            ids = inside[-1].data["ObjectId"].split()
            assert len(ids) == count, frame
            assert inside[-1].data["IsInside"] == ("true" if count else "false"), frame
            checked += 1
    return checked


def check_initialized_first(msgs: Sequence[Msg], snapshots: int) -> None:
    """Each rule property arrives first as Initialized, once per snapshot (the subscription's
    and each synchronization point's), before anything else of its rule."""
    for topic, rule in PROPERTIES:
        ops = [m.operation for m in msgs if m.of(topic, rule)]
        assert ops[:1] == ["Initialized"], (topic, ops)
        assert ops.count("Initialized") == snapshots, (topic, ops)
    first = next(i for i, m in enumerate(msgs) if m.operation != "Initialized")
    assert {(m.topic, m.rule) for m in msgs[:first]} >= PROPERTIES


# -- Home Assistant ---------------------------------------------------------------------------


def zeep_items(group: Any) -> dict[str, str]:
    return {i.Name: i.Value for i in (group.SimpleItem if group is not None else [])}


def from_zeep(msg: Any) -> Msg:
    body = msg.Message._value_1
    return Msg(
        msg.Topic._value_1,
        body.PropertyOperation,
        body.UtcTime.isoformat() if hasattr(body.UtcTime, "isoformat") else str(body.UtcTime),
        zeep_items(body.Source),
        zeep_items(body.Data),
    )


async def ha_pull(port: int, seconds: float, enough: int) -> tuple[list[Any], list[bool]]:
    """What HA's onvif integration does: a PullPoint manager (renewed at 80 % of its time),
    SetSynchronizationPoint, PullMessages (limit 100) in a loop; stops after `seconds` or once
    `enough` Crossed messages of the line rule came, then unsubscribes (HA's shutdown)."""
    cam = ONVIFCamera("127.0.0.1", port, USER, PASSWORD, WSDL_DIR)
    lost: list[bool] = []
    try:
        await cam.update_xaddrs()
        manager = await cam.create_pullpoint_manager(
            timedelta(seconds=60), lambda: lost.append(True)
        )
        pullpoint = manager.get_service()
        await manager.set_synchronization_point()
        got: list[Any] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            answer = await pullpoint.PullMessages(
                {"MessageLimit": 100, "Timeout": timedelta(seconds=2)}
            )
            got += answer.NotificationMessage
            crossed = [m for m in map(from_zeep, got) if m.of(CROSSED, LINE_RULE)]
            if len(crossed) >= enough:
                break
        await manager.shutdown()
        return got, lost
    finally:
        await cam.close()


async def ha_parse(raw: Sequence[Any]) -> list[list[Any] | None]:
    """HA's EventManager.async_parse_messages: the topic without a trailing "/." goes to
    onvif_parsers.parse; an unknown topic (None here) is logged and skipped."""
    out: list[list[Any] | None] = []
    for msg in raw:
        topic = msg.Topic._value_1.rstrip("/.")  # as HA does
        try:
            out.append(await onvif_parsers.parse(topic, "cam1", msg))
        except onvif_parsers.errors.UnknownTopicError:
            out.append(None)
    return out


def test_home_assistant_pull_point(camera: Camera) -> None:
    raw, lost = asyncio.run(ha_pull(camera.http, seconds=30, enough=6))
    assert not lost
    msgs = [from_zeep(m) for m in raw]
    check_initialized_first(msgs, snapshots=2)  # CreatePullPointSubscription, then the sync
    crossed = [m for m in msgs if m.of(CROSSED, LINE_RULE)]
    assert len(crossed) >= 6, [(m.topic, m.operation, m.data) for m in msgs]
    assert check_counts(msgs) >= 3
    changed = [m for m in msgs if m.of(COUNTER, COUNT_RULE) and m.operation == "Changed"]
    assert int(changed[-1].data["Count"]) >= len(crossed) - 1 >= 5
    # The field is entered and left by the walkers crossing the line, whose feet are on the
    # picture's bottom edge: in the frame an object crosses, it is mostly the one whose
    # membership changes (not always: the crossing and the field's edge have their own bands).
    inside = [m for m in msgs if m.of(INSIDE, FIELD_RULE) and m.operation == "Changed"]
    assert any(m.data["IsInside"] == "true" for m in inside), "nobody walked into the field"
    members: dict[str, set[str]] = {}
    initial = [m for m in msgs if m.of(INSIDE, FIELD_RULE) and m.operation == "Initialized"]
    previous = set(initial[-1].data["ObjectId"].split())
    for m in inside:
        now = set(m.data["ObjectId"].split())
        members[m.utc] = now ^ previous
        previous = now
    matched = [c for c in crossed if c.data["ObjectId"] in members.get(c.utc, set())]
    assert len(matched) >= 2, (crossed, inside)  # ~2/3 of them; 0 to 2 when feet on the
    # picture's edge could not enter a field (runtime._Membership before the inner_edges fix)

    # Every message through HA's parsers: the sensors show what the messages say.
    sensors: dict[str, Any] = {}
    parsed = asyncio.run(ha_parse(raw))
    unknown = {m.topic for m, entities in zip(msgs, parsed, strict=True) if entities is None}
    for m, entities in zip(msgs, parsed, strict=True):
        if entities is None:
            continue
        assert len(entities) == 1, entities
        e = entities[0]
        src = m.source
        uid = f"cam1_{m.topic}_{src['VideoSourceConfigurationToken']}_"
        uid += f"{src['VideoAnalyticsConfigurationToken']}_{m.rule}"
        assert e.uid == uid
        if m.topic == COUNTER:  # a sensor whose state is the count
            assert (e.name, e.platform, e.value) == (
                "Count Aggregation Counter", "sensor", m.data["Count"],
            )  # fmt: skip
            assert int(e.value) >= 0
        elif m.topic == CROSSED:  # a (diagnostic) sensor whose state is the last object's id
            assert (e.name, e.platform, e.value) == (
                "Line Detector Crossed", "sensor", m.data["ObjectId"],
            )  # fmt: skip
            assert int(e.value) >= 0
        elif m.topic == INSIDE:  # a motion binary_sensor: on while anyone is inside
            assert (e.name, e.platform) == ("Field Detection", "binary_sensor")
            assert e.value is (m.data["IsInside"] == "true")
        sensors[e.uid] = e.value
    assert unknown <= {OCCUPANCY}  # HA has no parser for it (onvif-parsers 2.5)
    # What HA shows at the end is the last message of each rule.
    prefix = "cam1_{}_video_source_config_" + msgs[0].source["VideoAnalyticsConfigurationToken"]
    assert sensors[prefix.format(COUNTER) + f"_{COUNT_RULE}"] == changed[-1].data["Count"]
    assert sensors[prefix.format(CROSSED) + f"_{LINE_RULE}"] == crossed[-1].data["ObjectId"]
    last_inside = [m for m in msgs if m.of(INSIDE, FIELD_RULE)][-1]
    assert sensors[prefix.format(INSIDE) + f"_{FIELD_RULE}"] is (
        last_inside.data["IsInside"] == "true"
    )
    check_occupancy(msgs)


# -- npm onvif --------------------------------------------------------------------------------


def test_npm_onvif_event_loop(camera: Camera) -> None:
    assert shutil.which("node"), "node (v20) is needed: apt-get install nodejs npm"
    assert (NODE_DIR / "node_modules" / "onvif").is_dir(), "(cd tests/node && npm ci)"
    wanted = 20  # 3 properties' Initialized, then the changes of a few crossings
    proc = subprocess.run(
        ["node", "onvif_events.js", "127.0.0.1", str(camera.http), USER, PASSWORD, str(wanted)],
        cwd=NODE_DIR, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, (result, proc.stderr[-2000:])
    msgs = [
        Msg(e["topic"], e.get("operation"), "", e["source"], e["data"]) for e in result["events"]
    ]
    assert len(msgs) == wanted
    check_initialized_first(msgs, snapshots=1)
    crossed = [m for m in msgs if m.of(CROSSED, LINE_RULE)]
    assert crossed, [(m.topic, m.operation, m.data) for m in msgs]
    assert crossed[0].source == {
        "VideoSourceConfigurationToken": "video_source_config",
        "VideoAnalyticsConfigurationToken": crossed[0].source["VideoAnalyticsConfigurationToken"],
        "Rule": LINE_RULE,
    }
    assert set(crossed[0].data) == {"ObjectId", "ClassTypes"}
    assert crossed[0].data["ClassTypes"] == "Human"
    check_counts(msgs)
    requests = [t["request"] for t in result["trace"] if "request" in t]
    assert requests.count("CreatePullPointSubscription") == 1
    assert "PullMessages" in requests and "Renew" in requests
    assert requests[-1] == "Unsubscribe"


# -- the RTSP metadata track ------------------------------------------------------------------


def test_metadata_track_carries_the_events(camera: Camera) -> None:
    url = f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{camera.rtsp}/main"
    proc = subprocess.run(
        ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url,
         "-map", "0:d:0", "-c", "copy", "-f", "data", "-t", "8", "-"],
        capture_output=True, timeout=40,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    docs = [b"<?xml" + d for d in proc.stdout.split(b"<?xml") if d.strip()]
    assert len(docs) >= 20
    schema = onvif_schema("ver10/schema/metadatastream.xsd")
    msgs: list[Msg] = []
    for doc in docs:
        root = etree.fromstring(doc)
        assert schema.validate(root), schema.error_log
        for n in root.iterfind(f"{{{TT}}}Event/{{{WSNT}}}NotificationMessage"):
            topic = n.find(f"{{{WSNT}}}Topic")
            body = n.find(f"{{{WSNT}}}Message/{{{TT}}}Message")
            assert topic is not None and body is not None
            # The topic's tns1 prefix resolves in the document.
            prefix = (topic.text or "").split(":")[0]
            assert topic.nsmap.get(prefix) == "http://www.onvif.org/ver10/topics"

            def items(tag: str, body: etree._Element = body) -> dict[str, str]:
                return {
                    i.get("Name", ""): i.get("Value", "")
                    for i in body.iterfind(f"{{{TT}}}{tag}/{{{TT}}}SimpleItem")
                }

            msgs.append(
                Msg(
                    (topic.text or "").strip(),
                    body.get("PropertyOperation"),
                    body.get("UtcTime", ""),
                    items("Source"),
                    items("Data"),
                )
            )
    crossed = [m for m in msgs if m.of(CROSSED, LINE_RULE)]
    assert crossed, [(m.topic, m.operation, m.data) for m in msgs]
    assert all(m.utc.endswith("Z") and m.data["ClassTypes"] == "Human" for m in crossed)
    # The metadata track is a stream, not a subscription: no Initialized, only what happened.
    assert {m.operation for m in msgs} <= {None, "Changed"}
    check_counts(msgs)
