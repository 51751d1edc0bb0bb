"""The JSON messages of the WebRTC data channel "metadata" (one JSON object per message).

The viewer creates a data channel labelled "metadata" in its offer; the camera sends on it:

    {"type": "boxes", "pts_us": 123456789, "index": 3702, "utc": "2026-01-02T03:04:05.678Z",
     "objects": [{"id": 7, "class": "face", "score": 0.91, "box": [0.41, 0.12, 0.47, 0.22]}]}
        The tracked objects of one frame (the boxes the masks were drawn from). `box` is
        [x1, y1, x2, y2] normalised to the picture: 0..1, origin top left, y down. `class` is
        "person", "face" or "other". `pts_us` is the frame's media time (microseconds, the
        same clock as the video's RTP timestamps before their random offset); `index` the
        camera's frame number. A frame after the objects left (and one at least every second
        when nothing moves) has "objects": [], so stale boxes can be cleared.
    {"type": "event", "topic": "tns1:RuleEngine/LineDetector/Crossed",
     "utc": "2026-01-02T03:04:05.678Z", "operation": "Changed" | "Initialized" | "Deleted" | null,
     "source": {"VideoSourceConfigurationToken": "...", "Rule": "door"},
     "key": {...}, "data": {"ObjectId": "7"}}
        One ONVIF event as the Events service sends it (operation null: not a property).
    {"type": "status", "source": "synthetic scene", "frames": 3702, "fps": 29.9,
     "masked": 3500, "fail_closed": 12, "closed_reasons": {"start": 12},
     "detector_ms": 14.2, "detections_failed": 0, "restarts": 0,
     "streams": {"main": 3702, "sub": 3702}, "subscribers": {"main": 2},
     "webrtc_peers": 2,
     "analytics": null | {"objects": 3, "people": 2, "faces": 1, "motion": true,
                          "rules": [{"name": "door", "kind": "LineCounting", "count": 4,
                                     "entered": 3, "exited": 1, "inside": 0, "loitering": 0,
                                     "average_wait_s": null}]}}
        The camera's counters, read from what it rendered, about once a second and at once
        when the channel opens. `streams` counts encoded units published per stream.
    {"type": "dropped", "count": 12}
        Messages this viewer lost because its channel was backed up (sent once it drained).

Unknown fields may be added later; readers ignore what they do not know.
"""

from __future__ import annotations

import json
from typing import Any

from lxml import etree

from vcam.analytics.metadata import ONVIF_SCHEMA_NS, utc_time
from vcam.events.message import EventMessage
from vcam.media.types import EncodedUnit
from vcam.onvif.xmlsafe import HARDENED
from vcam.status import CameraStatus

_TT = f"{{{ONVIF_SCHEMA_NS}}}"
_CLASSES = {"Human": "person", "HumanFace": "face"}


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def _unit(v: float) -> float:
    return round(min(max(v, 0.0), 1.0), 4)


def boxes_message(unit: EncodedUnit) -> dict[str, Any]:
    """A tt:MetadataStream document (vcam/analytics/metadata.py) as a "boxes" message: ONVIF's
    [-1, 1] y-up box becomes [0, 1] y-down. The document's events are not repeated here: events
    come from the broker, once."""
    root = etree.fromstring(unit.data, etree.XMLParser(**HARDENED))
    frame = root.find(f"{_TT}VideoAnalytics/{_TT}Frame")
    objects: list[dict[str, Any]] = []
    utc = ""
    if frame is not None:
        utc = frame.get("UtcTime", "")
        for obj in frame.iterfind(f"{_TT}Object"):
            bb = obj.find(f"{_TT}Appearance/{_TT}Shape/{_TT}BoundingBox")
            if bb is None:
                continue
            left, right = float(bb.get("left", "-1")), float(bb.get("right", "-1"))
            top, bottom = float(bb.get("top", "1")), float(bb.get("bottom", "1"))
            kind = obj.find(f"{_TT}Appearance/{_TT}Class/{_TT}Type")
            objects.append(
                {
                    "id": int(obj.get("ObjectId", "0")),
                    "class": _CLASSES.get((kind.text or "") if kind is not None else "", "other"),
                    "score": float(kind.get("Likelihood", "0")) if kind is not None else 0.0,
                    "box": [
                        _unit((left + 1) / 2),
                        _unit((1 - top) / 2),
                        _unit((right + 1) / 2),
                        _unit((1 - bottom) / 2),
                    ],
                }
            )
    return {
        "type": "boxes",
        "pts_us": unit.pts_us,
        "index": unit.index,
        "utc": utc,
        "objects": objects,
    }


def event_message(msg: EventMessage) -> dict[str, Any]:
    return {
        "type": "event",
        "topic": msg.topic,
        "utc": utc_time(msg.utc),
        "operation": msg.operation.value if msg.operation is not None else None,
        "source": dict(msg.source),
        "key": dict(msg.key),
        "data": dict(msg.data),
    }


def status_message(status: CameraStatus, peers: int) -> dict[str, Any]:
    g = status.pipeline.gate
    a = status.analytics
    analytics = None
    if a is not None:
        analytics = {
            "objects": a.objects,
            "people": a.people,
            "faces": a.faces,
            "motion": a.motion,
            "rules": [
                {
                    "name": r.name,
                    "kind": r.kind,
                    "count": r.count,
                    "entered": r.entered,
                    "exited": r.exited,
                    "inside": r.inside,
                    "loitering": r.loitering,
                    "average_wait_s": r.average_wait_s,
                }
                for r in a.rules
            ],
        }
    return {
        "type": "status",
        "source": status.source,
        "frames": g.frames_out,
        "fps": round(status.fps, 2),
        "masked": g.frames_masked,
        "fail_closed": g.frames_closed,
        "closed_reasons": dict(g.closed_reasons),
        "detector_ms": round(g.detector_ms, 2),
        "detections_failed": g.detections_failed,
        "restarts": status.restarts,
        "streams": dict(status.bus.published),
        "subscribers": dict(status.bus.subscribers),
        "webrtc_peers": peers,
        "analytics": analytics,
    }
