"""ONVIF metadata stream documents: schema-valid, y-up normalised boxes, the sink's rate rule."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import av
import pytest
from lxml import etree

from vcam.analytics.metadata import MetadataSink, metadata_document, utc_time
from vcam.analytics.topics import COUNTER
from vcam.events.broker import EventBroker
from vcam.events.message import EventMessage, PropertyOperation
from vcam.media.bus import EncodedBus
from vcam.media.types import Box, MaskedFrame, ObjectClass, Track, Verdict

from .xsd import onvif_schema

TT = "{http://www.onvif.org/ver10/schema}"
NOW = datetime(2026, 11, 27, 15, 50, 25, 123456, tzinfo=UTC)
W, H = 640, 480
FACE, PERSON = ObjectClass.FACE, ObjectClass.PERSON
INIT = PropertyOperation.INITIALIZED


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return onvif_schema("ver10/schema/metadatastream.xsd")


def track(i: int, cls: ObjectClass, box: Box, score: float = 0.9) -> Track:
    return Track(track_id=i, cls=cls, box=box, score=score)


def validate(schema: etree.XMLSchema, data: bytes) -> etree._Element:
    root = etree.fromstring(data)
    assert schema.validate(root), schema.error_log
    return root


def test_documents_validate(schema: etree.XMLSchema) -> None:
    cases = [
        [],
        [track(12, ObjectClass.PERSON, Box(10, 20, 110, 300))],
        [track(i, (FACE, PERSON)[i % 2], Box(i, i, 50 + i, 60 + i)) for i in range(10)],
        [track(3, ObjectClass.FACE, Box(-50, -10, 700, 500), score=1.7)],  # clamped
    ]  # fmt: skip
    for tracks in cases:
        root = validate(schema, metadata_document(tracks, W, H, NOW))
        assert len(root.findall(f"{TT}VideoAnalytics/{TT}Frame/{TT}Object")) == len(tracks)


def test_schema_rejects_broken_documents(schema: etree.XMLSchema) -> None:
    """The validator is not vacuous: what the schema forbids is caught."""
    good = metadata_document([track(1, ObjectClass.PERSON, Box(0, 0, 10, 10))], W, H, NOW)
    broken = [
        good.replace(b'UtcTime="2026-11-27T15:50:25.123Z"', b""),  # UtcTime is required
        good.replace(b'top="1.0000"', b'top="high"'),  # xs:float
        good.replace(b"<tt:CenterOfGravity", b"<tt:CentreOfGravity"),  # unknown element
        good.replace(b'ObjectId="1"', b'ObjectId="one"'),  # xs:integer
    ]
    assert all(b != good for b in broken)
    for data in broken:
        assert not schema.validate(etree.fromstring(data))


def test_coordinates_are_normalised_with_y_up() -> None:
    tracks = [
        track(7, ObjectClass.PERSON, Box(0, 0, W / 2, H / 4), score=0.875),
        track(8, ObjectClass.FACE, Box(W * 0.75, H / 2, W, H)),
    ]
    root = etree.fromstring(metadata_document(tracks, W, H, NOW))
    objects = root.findall(f".//{TT}Object")
    assert [o.get("ObjectId") for o in objects] == ["7", "8"]

    def shape(o: etree._Element) -> tuple[dict[str, float], dict[str, float]]:
        bb = o.find(f"{TT}Appearance/{TT}Shape/{TT}BoundingBox")
        cog = o.find(f"{TT}Appearance/{TT}Shape/{TT}CenterOfGravity")
        assert bb is not None and cog is not None
        return (
            {k: float(v) for k, v in bb.attrib.items()},
            {k: float(v) for k, v in cog.attrib.items()},
        )

    bb, cog = shape(objects[0])
    assert bb == {"left": -1.0, "top": 1.0, "right": 0.0, "bottom": 0.5}
    assert cog == {"x": -0.5, "y": 0.75}
    bb, cog = shape(objects[1])
    assert bb == {"left": 0.5, "top": 0.0, "right": 1.0, "bottom": -1.0}
    assert bb["top"] > bb["bottom"] and cog == {"x": 0.75, "y": -0.5}
    types = [o.find(f"{TT}Appearance/{TT}Class/{TT}Type") for o in objects]
    assert [(t.text, t.get("Likelihood")) for t in types if t is not None] == [
        ("Human", "0.88"),
        ("HumanFace", "0.90"),
    ]


def test_boxes_outside_the_frame_are_clamped() -> None:
    doc = metadata_document([track(1, ObjectClass.FACE, Box(-100, -100, 2000, 2000))], W, H, NOW)
    bb = etree.fromstring(doc).find(f".//{TT}BoundingBox")
    assert bb is not None
    assert {k: float(v) for k, v in bb.attrib.items()} == {
        "left": -1.0,
        "top": 1.0,
        "right": 1.0,
        "bottom": -1.0,
    }
    with pytest.raises(ValueError):
        metadata_document([], 0, H, NOW)


def test_utc_time() -> None:
    assert utc_time(NOW) == "2026-11-27T15:50:25.123Z"
    cet = timezone(timedelta(hours=1))
    assert utc_time(datetime(2026, 1, 1, 0, 30, tzinfo=cet)) == "2025-12-31T23:30:00.000Z"
    assert utc_time(datetime(2026, 1, 1, 0, 30)) == "2026-01-01T00:30:00.000Z"  # naive = UTC
    root = etree.fromstring(metadata_document([], W, H, NOW))
    frame = root.find(f"{TT}VideoAnalytics/{TT}Frame")
    assert frame is not None and frame.get("UtcTime") == "2026-11-27T15:50:25.123Z"


def test_only_boxes_never_image_data() -> None:
    tracks = [track(i, ObjectClass.PERSON, Box(i, i, i + 100, i + 200)) for i in range(10)]
    doc = metadata_document(tracks, W, H, NOW)
    allowed = {
        "MetadataStream", "VideoAnalytics", "Frame", "Object", "Appearance", "Shape",
        "BoundingBox", "CenterOfGravity", "Class", "Type",
    }  # fmt: skip
    names = {etree.QName(e).localname for e in etree.fromstring(doc).iter()}
    assert names == allowed
    assert len(doc) < 400 * 10 + 300  # a few hundred bytes per object: no pixels fit


def test_document_speed() -> None:
    tracks = [track(i, ObjectClass.PERSON, Box(i, i, i + 100, i + 200)) for i in range(10)]
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        metadata_document(tracks, W, H, NOW)
    per_doc_us = (time.perf_counter() - t0) / n * 1e6
    print(f"metadata_document, 10 tracks: {per_doc_us:.1f} us")
    assert per_doc_us < 1000  # generous bound for slow CI; ~30 us on a laptop core


# --- the sink -----------------------------------------------------------------------------------


def masked(i: int, tracks: tuple[Track, ...] = (), fps: float = 30.0) -> MaskedFrame:
    frame = av.VideoFrame(W, H, "yuv420p")
    return MaskedFrame(frame, i, round(i * 1e6 / fps), Verdict(i, (), tracks, False))


def test_sink_publishes_every_frame_with_tracks_and_one_per_second_without() -> None:
    bus = EncodedBus()
    sub = bus.subscribe("metadata")
    sink = MetadataSink(bus, clock=lambda: NOW)
    person = (track(5, ObjectClass.PERSON, Box(10, 10, 100, 200)),)
    plan = [()] * 75 + [person] * 10 + [()] * 40  # 2.5 s empty, 10 frames, 1.3 s empty
    for i, tracks in enumerate(plan):
        sink.on_frame(masked(i, tracks))
    units = []
    while (u := sub.get_nowait()) is not None:
        units.append(u)
    # Empty: frames 0, 30, 60; tracks: 75..84; empty: 85 (objects gone), then 115 (1 s later).
    assert [u.index for u in units] == [0, 30, 60, *range(75, 85), 85, 115]
    assert sink.documents == len(units)
    for u in units:
        assert u.stream == "metadata" and u.keyframe
        assert (u.width, u.height) == (W, H) and u.pts_us == masked(u.index).pts_us
        objects = etree.fromstring(u.data).findall(f".//{TT}Object")
        assert len(objects) == (1 if 75 <= u.index < 85 else 0)


def test_sink_documents_validate(schema: etree.XMLSchema) -> None:
    bus = EncodedBus()
    sub = bus.subscribe("metadata")
    sink = MetadataSink(bus)
    face = track(9, ObjectClass.FACE, Box(300, 100, 340, 150), score=0.5)
    sink.on_frame(masked(0, (face,)))
    u = sub.get_nowait()
    assert u is not None
    validate(schema, u.data)
    frame = etree.fromstring(u.data).find(f".//{TT}Frame")
    assert frame is not None
    stamp = datetime.fromisoformat(frame.get("UtcTime", "").replace("Z", "+00:00"))
    assert abs((stamp - datetime.now(UTC)).total_seconds()) < 5


def test_events_ride_along_in_the_next_document(schema: etree.XMLSchema) -> None:
    broker = EventBroker([COUNTER])
    bus = EncodedBus()
    sub = bus.subscribe("metadata")
    sink = MetadataSink(bus, clock=lambda: NOW, events=broker)
    sink.on_frame(masked(0))  # the first document: nothing yet
    source = (("VideoSourceConfigurationToken", "vsc"),
              ("VideoAnalyticsConfigurationToken", "ac"), ("Rule", "door"))  # fmt: skip
    broker.publish(EventMessage(COUNTER.topic, source, (("Count", "3"),), (), INIT))
    sink.on_frame(masked(1))  # no tracks, not a second later: due only for the event
    sink.close()
    broker.publish(EventMessage(COUNTER.topic, source, (("Count", "4"),), (), INIT))
    sink.on_frame(masked(2))
    units = []
    while (u := sub.get_nowait()) is not None:
        units.append(u)
    assert [u.index for u in units] == [0, 1]  # closed: the last event is not taken
    root = validate(schema, units[1].data)
    wsnt = "{http://docs.oasis-open.org/wsn/b-2}"
    notes = root.findall(f"{TT}Event/{wsnt}NotificationMessage")
    assert len(notes) == 1
    topic = notes[0].find(f"{wsnt}Topic")
    assert topic is not None and topic.text == COUNTER.topic
    prefix, _ = COUNTER.topic.split(":")
    assert topic.nsmap[prefix] == "http://www.onvif.org/ver10/topics"  # the QName resolves
    item = notes[0].find(f"{wsnt}Message/{TT}Message/{TT}Data/{TT}SimpleItem")
    assert item is not None and (item.get("Name"), item.get("Value")) == ("Count", "3")
