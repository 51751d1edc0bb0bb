"""GET /metrics (Prometheus text exposition format 0.0.4) and GET /healthz.

/metrics needs a login, either an HTTP Digest (any user level; what a scraper configures) or a
page session: the analytics counters tell how many people are where, which a camera must not
give to anyone on the network. Prometheus itself speaks Basic, not Digest, which vcam refuses
(it would send the password in clear): scrape through a proxy that adds Digest, or any client
that does (curl --digest).

/healthz needs no login and tells nothing but whether frames flow: 200 when the pipeline runs
and its output frame counter moved within the last `STALE_S` seconds, 503 otherwise, with a
JSON body {"status": "ok"|"down", "reason", "frames_out"}.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from aiohttp import web

from vcam.web.session import session_user
from vcam.web.webrtc_http import PEERS

if TYPE_CHECKING:
    from vcam.status import CameraStatus
    from vcam.web.server import WebServer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STALE_S = 5.0  # no new frame for this long: unhealthy
_PROBE_S = 1.5  # a first /healthz waits at most this long to see the counter move
Labels = dict[str, str]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Exposition:
    """Builds the text: one HELP and TYPE line per family, then its samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[Labels, float]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{inner}}} {value:g}" if inner else f"{name} {value:g}")

    def one(self, name: str, kind: str, help_text: str, value: float) -> None:
        self.family(name, kind, help_text, [({}, value)])

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class RequestCounter:
    """Counts snapshot requests by status (a middleware: the snapshot handler stays as it is)."""

    def __init__(self) -> None:
        self.snapshots: Counter[str] = Counter()

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not request.path.startswith("/snapshot/"):
            return await handler(request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self.snapshots[str(exc.status)] += 1
            raise
        self.snapshots[str(response.status)] += 1
        return response


def _camera_families(out: Exposition, st: CameraStatus) -> None:
    g = st.pipeline.gate
    up = st.pipeline.running_s > 0 and not st.pipeline.error
    out.one("vcam_pipeline_up", "gauge", "1 while the pipeline runs without error", 1.0 * up)
    out.one("vcam_frames_total", "counter", "Frames sent out (all masked)", g.frames_out)
    out.one("vcam_frames_masked_total", "counter", "Frames with masked regions", g.frames_masked)
    reasons = dict(g.closed_reasons) or {"start": 0}
    out.family(
        "vcam_frames_fail_closed_total",
        "counter",
        "Frames fully masked because the verdict was missing, late, stale or failed",
        [({"reason": r}, n) for r, n in sorted(reasons.items())],
    )
    out.one("vcam_fps", "gauge", "Output frames per second since the pipeline started", st.fps)
    out.one(
        "vcam_detector_latency_seconds",
        "gauge",
        "Moving average of the slowest detector per job",
        g.detector_ms / 1000,
    )
    out.one("vcam_detections_total", "counter", "Detector jobs run", g.detections_run)
    out.one("vcam_detections_failed_total", "counter", "Detector jobs failed", g.detections_failed)
    out.one(
        "vcam_source_dropped_total", "counter", "Source frames dropped", st.pipeline.source_dropped
    )
    out.one("vcam_pipeline_restarts_total", "counter", "Pipeline restarts", st.restarts)
    b = st.bus
    out.family(
        "vcam_bus_published_total",
        "counter",
        "Encoded units published per stream",
        [({"stream": s}, n) for s, n in sorted(b.published.items())],
    )
    out.family(
        "vcam_bus_subscribers",
        "gauge",
        "Subscribers of the encoded bus per stream",
        [({"stream": s}, n) for s, n in sorted(b.subscribers.items())],
    )
    out.one("vcam_bus_dropped_total", "counter", "Units dropped to slow subscribers", b.dropped)
    a = st.analytics
    if a is None:
        return
    out.one("vcam_analytics_people", "gauge", "People tracked now", a.people)
    out.one("vcam_analytics_faces", "gauge", "Faces tracked now", a.faces)
    out.one("vcam_analytics_motion", "gauge", "1 while there is motion", 1.0 * a.motion)
    rules = [({"rule": r.name, "kind": r.kind}, r) for r in a.rules]
    out.family(
        "vcam_analytics_rule_count",
        "gauge",
        "Count of a counting rule",
        [(lab, r.count) for lab, r in rules if r.count is not None],
    )
    out.family(
        "vcam_analytics_rule_crossings_total",
        "counter",
        "Line crossings per rule and direction",
        [({**lab, "direction": "in"}, r.entered) for lab, r in rules]
        + [({**lab, "direction": "out"}, r.exited) for lab, r in rules],
    )
    out.family(
        "vcam_analytics_rule_inside",
        "gauge",
        "Objects inside a rule's field or queue",
        [(lab, r.inside) for lab, r in rules],
    )
    out.family(
        "vcam_analytics_rule_loitering",
        "gauge",
        "Objects loitering",
        [(lab, r.loitering) for lab, r in rules],
    )


def exposition(server: WebServer, counter: RequestCounter) -> str:
    out = Exposition()
    if server.camera is not None:
        _camera_families(out, server.camera.status())
    clients: list[tuple[Labels, float]] = []  # snapshots have no sessions: see their counter
    if server.rtsp is not None:
        rs = server.rtsp.stats()
        clients.append(({"protocol": "rtsp"}, rs.playing))
        out.one("vcam_rtsp_connections", "gauge", "Open RTSP connections", rs.connections)
        out.one("vcam_rtsp_sessions", "gauge", "RTSP sessions", rs.sessions)
        dropped_help = "Batches not sent to slow RTSP clients"
        out.one("vcam_rtsp_dropped_total", "counter", dropped_help, rs.dropped)
        cut_help = "RTSP clients cut off as too slow"
        out.one("vcam_rtsp_disconnected_slow_total", "counter", cut_help, rs.disconnected_slow)
    peers = webrtc_peers(server)
    if peers is not None:
        clients.append(({"protocol": "webrtc"}, peers))
    out.family("vcam_clients", "gauge", "Clients receiving video, per protocol", clients)
    out.family(
        "vcam_snapshot_requests_total",
        "counter",
        "Snapshot requests by HTTP status",
        [({"code": c}, n) for c, n in sorted(counter.snapshots.items())],
    )
    out.one(
        "vcam_events_published_total",
        "counter",
        "Events published by the camera and its analytics",
        server.onvif.model.events.published,
    )
    return out.text()


def webrtc_peers(server: WebServer) -> int | None:
    """The WebRTC viewer count; None where the server has no WebRTC."""
    peers = server.app.get(PEERS)
    return len(peers) if peers is not None else None


class FlowWatch:
    """Whether output frames flow: when the frame counter last moved, by our own clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._frames = -1
        self._moved = float("-inf")

    def sample(self, frames: int) -> bool:
        """Record a reading; True when frames moved within STALE_S."""
        now = self._clock()
        if self._frames >= 0 and frames != self._frames:
            self._moved = now
        self._frames = frames
        return now - self._moved <= STALE_S


class Health:
    def __init__(self, server: WebServer, counter: RequestCounter) -> None:
        self.server = server
        self.counter = counter
        self.watch = FlowWatch()

    async def healthz(self, request: web.Request) -> web.Response:
        camera = self.server.camera
        if camera is None:
            return _health(False, "no camera in this server", 0)
        st = camera.status()
        if st.pipeline.error:
            return _health(False, st.pipeline.error, st.pipeline.gate.frames_out)
        flowing = self.watch.sample(st.pipeline.gate.frames_out)
        deadline = time.monotonic() + _PROBE_S
        while not flowing and time.monotonic() < deadline:  # first call, or a stall: look again
            await asyncio.sleep(0.1)
            st = camera.status()
            flowing = self.watch.sample(st.pipeline.gate.frames_out)
        frames = st.pipeline.gate.frames_out
        return _health(flowing, "" if flowing else f"no frame for {STALE_S:g} s", frames)

    async def metrics(self, request: web.Request) -> web.Response:
        if session_user(request) is None:
            digest = self.server.digest
            result = digest.verify(
                "GET", request.headers.get("Authorization"), request.remote or "", request.path_qs
            )
            if not result.ok:
                headers = {"WWW-Authenticate": ", ".join(digest.challenge(stale=result.stale))}
                if result.retry_after_s is not None:
                    headers["Retry-After"] = str(max(1, round(result.retry_after_s)))
                return web.Response(status=401, headers=headers)
        body = exposition(self.server, self.counter)
        return web.Response(
            body=body.encode(), headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"}
        )


def _health(ok: bool, reason: str, frames: int) -> web.Response:
    body = {"status": "ok" if ok else "down", "reason": reason, "frames_out": frames}
    return web.json_response(body, status=200 if ok else 503, headers={"Cache-Control": "no-store"})


def register_metrics(app: web.Application, server: WebServer) -> None:
    counter = RequestCounter()
    health = Health(server, counter)
    app.middlewares.append(counter.middleware)
    app.router.add_get("/metrics", health.metrics)
    app.router.add_get("/healthz", health.healthz)
