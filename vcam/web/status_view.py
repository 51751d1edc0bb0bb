"""The camera's status as JSON for the page: what the pipeline actually rendered (frames, masked,
fail-closed and why, detector time), the encoded bus, RTSP clients, analytics counters and the
privacy configuration. Read from `camera.status()` and `rtsp.stats()`, never from flags."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vcam.analytics.engine import AnalyticsSnapshot
    from vcam.web.server import WebServer


def status_json(server: WebServer) -> dict[str, Any]:
    model = server.onvif.model
    out: dict[str, Any] = {
        "privacy": {"mode": model.privacy.mode, "style": model.privacy.style},
        "streams": [
            {"name": s.name, "width": s.width, "height": s.height, "fps": s.fps}
            for s in model.streams
        ],
        "camera": None,
        "rtsp": dataclasses.asdict(server.rtsp.stats()) if server.rtsp is not None else None,
    }
    if server.camera is None:
        return out
    st = server.camera.status()
    g = st.pipeline.gate
    out["camera"] = {
        "source": st.source,
        "running_s": round(st.pipeline.running_s, 1),
        "error": st.pipeline.error,
        "fps": round(st.fps, 2),
        "frames_out": g.frames_out,
        "frames_masked": g.frames_masked,
        "frames_closed": g.frames_closed,
        "closed_reasons": dict(g.closed_reasons),
        "detections_run": g.detections_run,
        "detections_failed": g.detections_failed,
        "detector_ms": round(g.detector_ms, 2),
        "source_dropped": st.pipeline.source_dropped,
        "restarts": st.restarts,
        "bus": dataclasses.asdict(st.bus),
        "analytics": _analytics(st.analytics),
    }
    return out


def _analytics(snapshot: AnalyticsSnapshot | None) -> dict[str, Any] | None:
    if snapshot is None:
        return None
    return {
        "people": snapshot.people,
        "faces": snapshot.faces,
        "objects": snapshot.objects,
        "motion": snapshot.motion,
        "rules": [dataclasses.asdict(r) for r in snapshot.rules],
    }
