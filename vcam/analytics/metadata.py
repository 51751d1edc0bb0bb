"""ONVIF metadata stream documents (tt:MetadataStream) for the analysed, masked frames.

Each document holds one tt:Frame with the tracked objects' boxes (never image data), normalised
to [-1, 1] with y pointing up (ONVIF's default coordinate system, no Transformation element).
Classes use tt:Type (tt:StringLikelihood) with tt:ObjectType values, "Human" and "HumanFace";
the deprecated tt:ClassCandidate is not written. Events (line crossings, counters...) published
on the broker since the last document ride along in tt:Event, as wsnt:NotificationMessages
exactly as the Events service sends them (Profile M: events in the metadata stream).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from lxml import etree

from vcam.events.broker import EventBroker
from vcam.events.message import EventMessage
from vcam.events.wire import notification_message
from vcam.media.bus import EncodedBus
from vcam.media.types import EncodedUnit, MaskedFrame, ObjectClass, Track

log = logging.getLogger("vcam.analytics")

ONVIF_SCHEMA_NS = "http://www.onvif.org/ver10/schema"
TOPICS_NS = "http://www.onvif.org/ver10/topics"
WSNT_NS = "http://docs.oasis-open.org/wsn/b-2"
CLASS_TYPES = {ObjectClass.PERSON: "Human", ObjectClass.FACE: "HumanFace"}  # tt:ObjectType

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    # tns1 and wsnt: the events' wsnt:Topic text is a tns1: QName.
    f'<tt:MetadataStream xmlns:tt="{ONVIF_SCHEMA_NS}" xmlns:tns1="{TOPICS_NS}" '
    f'xmlns:wsnt="{WSNT_NS}"><tt:VideoAnalytics>'
)
MAX_PENDING_EVENTS = 256  # between two documents; beyond that the oldest go (counted)


def utc_time(utc: datetime) -> str:
    """xs:dateTime in UTC with milliseconds, e.g. 2026-11-27T15:50:25.123Z (naive = UTC)."""
    if utc.tzinfo is not None:
        utc = utc.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def metadata_document(
    tracks: Sequence[Track],
    width: int,
    height: int,
    utc: datetime,
    events: Sequence[EventMessage] = (),
) -> bytes:
    """One tt:MetadataStream document: a tt:Frame with one tt:Object per track, then the
    events in one tt:Event."""
    if width <= 0 or height <= 0:
        raise ValueError(f"bad frame size {width}x{height}")
    sx, sy = 2.0 / width, 2.0 / height
    parts = [_HEAD, f'<tt:Frame UtcTime="{utc_time(utc)}">']
    for t in tracks:
        b = t.box.clamped(width, height)
        left, right = b.x1 * sx - 1.0, b.x2 * sx - 1.0
        top, bottom = 1.0 - b.y1 * sy, 1.0 - b.y2 * sy
        likelihood = min(max(t.score, 0.0), 1.0)
        parts.append(
            f'<tt:Object ObjectId="{int(t.track_id)}"><tt:Appearance><tt:Shape>'
            f'<tt:BoundingBox left="{left:.4f}" top="{top:.4f}" right="{right:.4f}" '
            f'bottom="{bottom:.4f}"/>'
            f'<tt:CenterOfGravity x="{(left + right) / 2:.4f}" y="{(top + bottom) / 2:.4f}"/>'
            f'</tt:Shape><tt:Class><tt:Type Likelihood="{likelihood:.2f}">'
            f"{CLASS_TYPES.get(t.cls, 'Other')}</tt:Type></tt:Class></tt:Appearance></tt:Object>"
        )
    parts.append("</tt:Frame>")
    parts.append("</tt:VideoAnalytics>")
    if events:
        parts.append("<tt:Event>")
        parts.extend(etree.tostring(notification_message(m), encoding=str) for m in events)
        parts.append("</tt:Event>")
    parts.append("</tt:MetadataStream>")
    return "".join(parts).encode()


class MetadataSink:
    """A FrameSink that publishes one metadata document per frame with tracks on the bus.

    Frames without tracks get a document (an empty tt:Frame) when the objects just disappeared
    and then at least every `idle_interval_us` of media time, so clients clear stale boxes and
    new subscribers start at once (every unit is self-contained: keyframe=True).
    """

    def __init__(
        self,
        bus: EncodedBus,
        stream: str = "metadata",
        *,
        idle_interval_us: int = 1_000_000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        events: EventBroker | None = None,
    ) -> None:
        self.bus = bus
        self.stream = stream
        self.idle_interval_us = idle_interval_us
        self.clock = clock
        self.documents = 0
        self._last_pts: int | None = None  # pts of the last document sent
        self._had_tracks = False
        self._lock = threading.Lock()
        self._events: deque[EventMessage] = deque(maxlen=MAX_PENDING_EVENTS)
        self.events_dropped = 0
        self._unsubscribe = events.subscribe(self._on_event) if events is not None else None

    def _on_event(self, msg: EventMessage) -> None:
        with self._lock:  # any publisher thread
            if len(self._events) == self._events.maxlen:
                self.events_dropped += 1
            self._events.append(msg)

    def on_frame(self, masked: MaskedFrame) -> None:
        tracks = masked.verdict.tracks
        pts = masked.pts_us
        with self._lock:
            events = list(self._events)
            self._events.clear()
        due = (
            bool(tracks)
            or bool(events)
            or self._had_tracks
            or self._last_pts is None
            or pts - self._last_pts >= self.idle_interval_us
            or pts < self._last_pts  # time went back (should not happen): resynchronise
        )
        self._had_tracks = bool(tracks)
        if not due:
            return
        width, height = int(masked.frame.width), int(masked.frame.height)
        data = metadata_document(tracks, width, height, self.clock(), events)
        self._last_pts = pts
        self.documents += 1
        self.bus.publish(
            EncodedUnit(
                stream=self.stream,
                data=data,
                pts_us=pts,
                keyframe=True,
                width=width,
                height=height,
                index=masked.index,
            )
        )

    def close(self) -> None:
        """Stops taking events (FrameSink symmetry with the encoder sinks)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
