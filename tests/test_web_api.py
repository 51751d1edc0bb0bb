"""The page's JSON API, /metrics and /healthz in-process: the real aiohttp `WebServer` from
`build_web` on 127.0.0.1 with a real device model, plain HTTP clients, and ONVIF (SOAP over the
same server, Digest) to check that the page and ONVIF edit one truth."""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from lxml import etree
from prometheus_client.parser import text_string_to_metric_families

from vcam.analytics.engine import AnalyticsSnapshot
from vcam.analytics.runtime import RuleStatus
from vcam.auth.digest import DigestAuth, Throttle
from vcam.auth.users import User, UserLevel, UserStore
from vcam.config import Config, StreamConfig, WebConfig
from vcam.media.bus import EncodedBus
from vcam.media.types import SourceInfo
from vcam.onvif.analytics import CONFIG_TOKEN
from vcam.onvif.model import DeviceModel
from vcam.onvif.soap import NSMAP, SOAP12
from vcam.onvif.stack import build_web
from vcam.pipeline import PipelineStats
from vcam.privacy.gate import GateStats
from vcam.status import CameraStatus
from vcam.web.server import WebServer
from vcam.web.snapshot import LatestFrame

from .onvif_model import media_for, onvif_device

ADMIN = ("admin", "Web-Admin-Pass1")
VIEWER = ("viewer", "Web-Viewer-Pass2")
REALM = "vcam-web-test"
TIMEOUT = 10.0
XMLNS = " ".join(f'xmlns:{p}="{u}"' for p, u in NSMAP.items())
LINE = {"type": "LineDetector", "name": "door", "segments": [[0.2, 0.5], [0.8, 0.5]]}


class StatusCamera:
    """A `LiveCamera` whose counters the test drives (the pipeline itself is tested elsewhere;
    the real `vcam serve` in test_web_page.py covers the real one)."""

    def __init__(self) -> None:
        self.bus = EncodedBus()
        self.frames = 0
        self.flowing = False
        self.error = ""

    def status(self) -> CameraStatus:
        if self.flowing:
            self.frames += 1
        gate = GateStats(
            frames_out=self.frames,
            frames_masked=self.frames // 2,
            frames_closed=3,
            closed_reasons=Counter({"start": 2, "late": 1}),
            detections_run=7,
            detector_ms=12.5,
        )
        rules = (RuleStatus("door", "LineCounting", count=4, entered=5, exited=1),)
        analytics = AnalyticsSnapshot(10, 0, 2, 1, 1, True, rules, 0, 1.0, 0)
        return CameraStatus(
            "synthetic", PipelineStats(gate, 0, 10.0, self.error), self.bus.stats(), analytics, 0
        )


class Server(NamedTuple):
    web: WebServer
    port: int
    camera: StatusCamera


def make_model(users: UserStore) -> DeviceModel:
    main = StreamConfig("main", 320, 240, 25.0, 500, 25)
    return onvif_device(users, SourceInfo(320, 240, 25.0), media_for(main), http_port=0)


def start_server(throttle: Throttle) -> Iterator[Server]:
    users = UserStore(
        [User(*ADMIN, UserLevel.ADMINISTRATOR), User(*VIEWER, UserLevel.USER)]
    )  # fmt: skip
    camera = StatusCamera()
    cfg = dataclasses.replace(Config(), web=WebConfig(bind="127.0.0.1", port=0))
    digest = DigestAuth(users, REALM, throttle=throttle)
    web = build_web(cfg, make_model(users), users, digest, LatestFrame(), camera=camera)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="web-api-test", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(web.start(), loop).result(TIMEOUT)
        yield Server(web, web.port, camera)
    finally:
        asyncio.run_coroutine_threadsafe(web.stop(), loop).result(TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    yield from start_server(Throttle(max_failures=1000))


class Reply(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        assert self.headers.get_content_type() == "application/json", self.body[:200]
        return json.loads(self.body)


class Browser:
    """What the page does: a session cookie, and the CSRF token in a header on changes."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookie = ""
        self.csrf = ""

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        csrf: str | None = None,
        content_type: str = "application/json",
    ) -> Reply:
        headers = {"Content-Type": content_type}
        if self.cookie:
            headers["Cookie"] = self.cookie
        token = self.csrf if csrf is None else csrf
        if token:
            headers["X-CSRF-Token"] = token
        data = None if body is None else json.dumps(body).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            return Reply(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def login(self, user: tuple[str, str]) -> Reply:
        reply = self.send("POST", "/api/login", {"username": user[0], "password": user[1]})
        if reply.status == 200:
            self.cookie = reply.headers["Set-Cookie"].split(";", 1)[0]
            self.csrf = reply.json()["csrf"]
        return reply


def logged_in(port: int, user: tuple[str, str] = ADMIN) -> Browser:
    browser = Browser(port)
    assert browser.login(user).status == 200
    return browser


def soap(port: int, path: str, body: str) -> etree._Element:
    """An ONVIF request over HTTP with Digest, as a VMS would send it; the answer's body."""
    mgr = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    mgr.add_password(None, f"http://127.0.0.1:{port}/", *ADMIN)
    opener = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(mgr))
    data = f'<s:Envelope xmlns:s="{SOAP12}" {XMLNS}><s:Body>{body}</s:Body></s:Envelope>'
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data.encode(),
        headers={"Content-Type": "application/soap+xml; charset=utf-8"},
    )
    with opener.open(req, timeout=TIMEOUT) as resp:
        root = etree.fromstring(resp.read())
    found = root.find(f"{{{SOAP12}}}Body")
    assert found is not None
    return found[0]


def onvif_rules(port: int) -> dict[str, etree._Element]:
    got = soap(
        port,
        "/onvif/analytics_service",
        f"<tan:GetRules><tan:ConfigurationToken>{CONFIG_TOKEN}</tan:ConfigurationToken>"
        "</tan:GetRules>",
    )
    return {r.get("Name", ""): r for r in got.iterfind("tan:Rule", NSMAP)}


# -- sessions and CSRF -------------------------------------------------------------------------


def test_login_session_logout(server: Server) -> None:
    browser = Browser(server.port)
    assert browser.send("GET", "/api/session").status == 401
    wrong = browser.login((ADMIN[0], "not-the-password"))
    assert wrong.status == 401 and "wrong" in wrong.json()["error"]
    assert browser.login(("nobody", "x")).status == 401
    reply = browser.login(ADMIN)
    assert reply.status == 200
    cookie = reply.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert reply.json()["level"] == "Administrator"
    assert browser.send("GET", "/api/session").json()["csrf"] == browser.csrf
    # Logout is a change: without the token it is refused and the session stays.
    assert browser.send("POST", "/api/logout", {}, csrf="").status == 403
    assert browser.send("GET", "/api/session").status == 200
    assert browser.send("POST", "/api/logout", {}).status == 200
    assert browser.send("GET", "/api/session").status == 401
    assert browser.send("GET", "/api/status").status == 401


def test_changes_need_session_and_csrf(server: Server) -> None:
    mask = {"polygon": [[0, 0], [0.2, 0], [0.2, 0.2]]}
    anonymous = Browser(server.port)
    assert anonymous.send("POST", "/api/masks", mask).status == 401
    browser = logged_in(server.port)
    missing = browser.send("POST", "/api/masks", mask, csrf="")
    assert missing.status == 403 and "X-CSRF-Token" in missing.json()["error"]
    assert browser.send("POST", "/api/masks", mask, csrf="x" * 43).status == 403
    # Another session's token is not this session's.
    other = logged_in(server.port)
    assert browser.send("DELETE", "/api/rules/none", csrf=other.csrf).status == 403
    # A cross-site form can only send text/plain or form types: refused.
    assert browser.send("POST", "/api/masks", mask, content_type="text/plain").status == 415
    assert server.web.onvif.model.media.settings.masks == ()


def test_user_level_cannot_change(server: Server) -> None:
    viewer = logged_in(server.port, VIEWER)
    for path in ("/api/status", "/api/masks", "/api/rules", "/api/imaging", "/api/privacy"):
        assert viewer.send("GET", path).status == 200, path
    refused = viewer.send("POST", "/api/rules", LINE)
    assert refused.status == 403 and "Administrator" in refused.json()["error"]
    assert viewer.send("PUT", "/api/imaging", {"brightness": 80}).status == 403
    assert viewer.send("GET", "/api/users").status == 403
    assert server.web.onvif.model.rules.settings.get("door") is None


def test_login_is_throttled() -> None:
    for srv in start_server(Throttle(max_failures=3, backoff_s=30)):
        browser = Browser(srv.port)
        statuses = [browser.login((ADMIN[0], "wrong")).status for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        # Even the right password is refused while blocked: guessing gains nothing.
        blocked = browser.login(ADMIN)
        assert blocked.status == 429 and int(blocked.headers["Retry-After"]) > 0


# -- settings: one truth with ONVIF ------------------------------------------------------------


def test_rules_round_trip_through_onvif(server: Server) -> None:
    admin = logged_in(server.port)
    created = admin.send("POST", "/api/rules", LINE)
    assert created.status == 201, created.body
    assert admin.send("POST", "/api/rules", LINE).status == 409
    listed = onvif_rules(server.port)
    assert listed["door"].get("Type") == "tt:LineDetector"
    points = [(p.get("x"), p.get("y")) for p in listed["door"].iter(f"{{{NSMAP['tt']}}}Point")]
    assert len(points) == 2  # ONVIF shows it in its own [-1, 1] frame
    changed = admin.send("PUT", "/api/rules/door", {**LINE, "direction": "Left"})
    assert changed.status == 200
    after = onvif_rules(server.port)["door"]
    items = {i.get("Name"): i.get("Value") for i in after.iter(f"{{{NSMAP['tt']}}}SimpleItem")}
    assert items["Direction"] == "Left"
    assert admin.send("GET", "/api/rules").json()["rules"][0]["direction"] == "Left"
    bad = admin.send(
        "POST", "/api/rules", {"type": "LineDetector", "name": "x", "segments": [[0, 0]]}
    )
    assert bad.status == 400 and "segments" in bad.json()["error"]
    assert admin.send("PUT", "/api/rules/door", {**LINE, "name": "other"}).status == 400
    assert admin.send("DELETE", "/api/rules/door").status == 200
    assert "door" not in onvif_rules(server.port)
    assert admin.send("DELETE", "/api/rules/door").status == 404


def test_masks_round_trip_through_media2(server: Server) -> None:
    admin = logged_in(server.port)
    square = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]
    created = admin.send("POST", "/api/masks", {"polygon": square, "color": [255, 0, 0]})
    assert created.status == 201, created.body
    token = created.json()["token"]
    masks = soap(server.port, "/onvif/media2_service", "<tr2:GetMasks/>")
    assert [m.get("token") for m in masks.iterfind("tr2:Masks", NSMAP)] == [token]
    listed = admin.send("GET", "/api/masks").json()["masks"]
    assert listed[0]["polygon"] == square and listed[0]["color"] == [255, 0, 0]
    outside = admin.send("POST", "/api/masks", {"polygon": [[0, 0], [2, 0], [0, 1]]})
    assert outside.status == 400 and "outside" in outside.json()["error"]
    assert admin.send("DELETE", f"/api/masks/{token}").status == 200
    assert server.web.onvif.model.media.settings.masks == ()
    assert admin.send("DELETE", f"/api/masks/{token}").status == 404


def test_mask_changes_in_place(server: Server) -> None:
    admin = logged_in(server.port)
    square = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]
    created = admin.send("POST", "/api/masks", {"polygon": square, "color": [255, 0, 255]})
    token = created.json()["token"]
    path = f"/api/masks/{token}"
    moved = [[0.5, 0.5], [0.9, 0.5], [0.7, 0.9]]
    changed = admin.send("PUT", path, {"polygon": moved})
    assert changed.status == 200, changed.body
    # Same token, new polygon; what the body left out (colour, enabled) stays.
    want = {"token": token, "polygon": moved, "kind": "Color", "color": [255, 0, 255]}
    assert changed.json() == {**want, "enabled": True}
    assert admin.send("GET", "/api/masks").json()["masks"] == [{**want, "enabled": True}]
    # ONVIF (Media2 GetMasks) sees the change under the same token.
    masks = list(soap(server.port, "/onvif/media2_service", "<tr2:GetMasks/>"))
    assert [m.get("token") for m in masks] == [token]
    xs = sorted(float(p.get("x", "nan")) for p in masks[0].iter(f"{{{NSMAP['tt']}}}Point"))
    assert xs == pytest.approx([0.0, 0.4, 0.8])  # 0.5, 0.7, 0.9 in ONVIF's [-1, 1] frame
    assert admin.send("PUT", path, {"enabled": False}).json() == {**want, "enabled": False}

    # Errors as for POST, each naming what is wrong; the mask stays as it was.
    unknown = admin.send("PUT", "/api/masks/mask_999", {"polygon": moved})
    assert unknown.status == 404 and "mask_999" in unknown.json()["error"]
    bad = admin.send("PUT", path, {"polygon": [[0.1, 0.1], "x"]})
    assert bad.status == 400 and "polygon" in bad.json()["error"]
    outside = admin.send("PUT", path, {"polygon": [[0, 0], [2, 0], [0, 1]]})
    assert outside.status == 400 and "outside" in outside.json()["error"]
    assert admin.send("PUT", path, {"token": "mask_2"}).status == 400
    viewer = logged_in(server.port, VIEWER)
    refused = viewer.send("PUT", path, {"polygon": square})
    assert refused.status == 403 and "Administrator" in refused.json()["error"]
    no_csrf = admin.send("PUT", path, {"polygon": square}, csrf="")
    assert no_csrf.status == 403 and "X-CSRF-Token" in no_csrf.json()["error"]
    assert Browser(server.port).send("PUT", path, {"polygon": square}).status == 401
    assert admin.send("GET", "/api/masks").json()["masks"] == [{**want, "enabled": False}]
    assert admin.send("DELETE", path).status == 200


def test_imaging_round_trip(server: Server) -> None:
    admin = logged_in(server.port)
    reply = admin.send("PUT", "/api/imaging", {"brightness": 70})
    assert reply.status == 200 and reply.json()["brightness"] == 70
    got = soap(
        server.port,
        "/onvif/imaging_service",
        "<timg:GetImagingSettings><timg:VideoSourceToken>video_source</timg:VideoSourceToken>"
        "</timg:GetImagingSettings>",
    )
    assert float(got.findtext(".//tt:Brightness", namespaces=NSMAP) or "nan") == 70
    assert admin.send("PUT", "/api/imaging", {"contrast": 101}).status == 400
    gamma = admin.send("PUT", "/api/imaging", {"gamma": 1})
    assert gamma.status == 400 and "'gamma'" in gamma.json()["error"]  # named, not ignored
    assert admin.send("PUT", "/api/imaging", {"brightness": 50}).status == 200


def test_users_share_onvif_policy(server: Server) -> None:
    admin = logged_in(server.port)
    new = {"username": "guard", "password": "Guard-Pass3", "level": "User"}
    assert admin.send("POST", "/api/users", new).status == 201
    assert admin.send("POST", "/api/users", new).status == 409
    names = [u["username"] for u in admin.send("GET", "/api/users").json()["users"]]
    assert "guard" in names and "password" not in json.dumps(admin.send("GET", "/api/users").json())
    guard = logged_in(server.port, ("guard", "Guard-Pass3"))
    # The last administrator is protected, as through ONVIF DeleteUsers / SetUser.
    gone = admin.send("DELETE", "/api/users/admin")
    assert gone.status == 409 and "last administrator" in gone.json()["error"]
    assert admin.send("PUT", "/api/users/admin", {"level": "User"}).status == 409
    bad = admin.send("POST", "/api/users", {**new, "username": "a:b"})
    assert bad.status == 400
    # A password change ends the user's sessions; deleting the user too.
    assert admin.send("PUT", "/api/users/guard", {"password": "Guard-Pass4"}).status == 200
    assert guard.send("GET", "/api/status").status == 401
    assert admin.send("DELETE", "/api/users/guard").status == 200
    assert server.web.onvif.model.users.get("guard") is None


# -- status, metrics, health, page --------------------------------------------------------------


def test_status(server: Server) -> None:
    status = logged_in(server.port, VIEWER).send("GET", "/api/status").json()
    camera = status["camera"]
    assert camera["frames_closed"] == 3 and camera["closed_reasons"] == {"start": 2, "late": 1}
    assert camera["analytics"]["rules"][0]["count"] == 4
    assert status["privacy"]["mode"] == server.web.onvif.model.privacy.mode


def onvif_module(port: int) -> dict[str, str]:
    got = soap(
        port,
        "/onvif/analytics_service",
        f"<tan:GetAnalyticsModules><tan:ConfigurationToken>{CONFIG_TOKEN}"
        "</tan:ConfigurationToken></tan:GetAnalyticsModules>",
    )
    items = got.iterfind("tan:AnalyticsModule/tt:Parameters/tt:SimpleItem", NSMAP)
    return {i.get("Name", ""): i.get("Value", "") for i in items}


def test_privacy_settings_one_truth_with_onvif(server: Server) -> None:
    admin, viewer = logged_in(server.port), logged_in(server.port, VIEWER)
    before = admin.send("GET", "/api/privacy").json()
    assert before["modes"] == ["face", "body", "face+body"] and before["editable"]
    assert before["style"] in before["styles"] and before["zone_style"] == "solid"
    changed = {"mode": "body", "style": "solid", "face_threshold": 0.4, "person_threshold": 0.5}
    # Changes need an Administrator and the session's CSRF token, as every change.
    assert viewer.send("PUT", "/api/privacy", changed).status == 403
    assert admin.send("PUT", "/api/privacy", changed, csrf="").status == 403
    assert Browser(server.port).send("PUT", "/api/privacy", changed).status == 401
    for bad in (
        {"mode": "faces"}, {"style": "pixels"}, {"face_threshold": 1.0}, {"face_threshold": "0.4"},
        {"person_threshold": 0}, {"speed": 3}, {"style": ["solid"]},
        {"style": "solid", "face_threshold": -1},  # all or nothing
    ):  # fmt: skip
        reply = admin.send("PUT", "/api/privacy", bad)
        assert reply.status == 400 and reply.json()["error"], bad
    assert admin.send("GET", "/api/privacy").json() == before
    try:
        reply = admin.send("PUT", "/api/privacy", changed)
        assert reply.status == 200
        assert {k: reply.json()[k] for k in changed} == changed
        assert viewer.send("GET", "/api/privacy").json() == reply.json()
        # ONVIF shows what the page set, and what ONVIF sets the page shows.
        assert onvif_module(server.port) == {
            "Mode": "body", "Style": "solid", "FaceThreshold": "0.4", "PersonThreshold": "0.5",
        }  # fmt: skip
        soap(
            server.port,
            "/onvif/analytics_service",
            f"<tan:ModifyAnalyticsModules><tan:ConfigurationToken>{CONFIG_TOKEN}"
            '</tan:ConfigurationToken><tan:AnalyticsModule Name="PrivacyMasking" '
            'Type="vcam:PrivacyMasking"><tt:Parameters><tt:SimpleItem Name="Style" '
            'Value="blocks"/></tt:Parameters></tan:AnalyticsModule></tan:ModifyAnalyticsModules>',
        )
        assert admin.send("GET", "/api/privacy").json()["style"] == "blocks"
        assert admin.send("GET", "/api/status").json()["privacy"] == {
            "mode": "body", "style": "blocks",
        }  # fmt: skip
    finally:
        keys = ("mode", "style", "face_threshold", "person_threshold")
        admin.send("PUT", "/api/privacy", {k: before[k] for k in keys})
    assert admin.send("GET", "/api/privacy").json() == before


def test_metrics(server: Server) -> None:
    url = f"http://127.0.0.1:{server.port}/metrics"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=TIMEOUT)
    assert refused.value.code == 401 and "Digest" in refused.value.headers["WWW-Authenticate"]
    mgr = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    mgr.add_password(None, url, *VIEWER)
    opener = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(mgr))
    with opener.open(url, timeout=TIMEOUT) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "vcam_frames",
        "vcam_frames_masked",
        "vcam_frames_fail_closed",
        "vcam_fps",
        "vcam_detector_latency_seconds",
        "vcam_clients",
        "vcam_bus_dropped",
        "vcam_snapshot_requests",
        "vcam_analytics_rule_count",
        "vcam_analytics_rule_crossings",
    ):
        assert name in families, name
    closed = {s.labels["reason"]: s.value for s in families["vcam_frames_fail_closed"].samples}
    assert closed == {"start": 2, "late": 1}
    assert families["vcam_detector_latency_seconds"].samples[0].value == pytest.approx(0.0125)
    crossings = {
        (s.labels["rule"], s.labels["direction"]): s.value
        for s in families["vcam_analytics_rule_crossings"].samples
    }
    assert crossings == {("door", "in"): 5, ("door", "out"): 1}
    # A page session is enough too.
    session = logged_in(server.port, VIEWER).send("GET", "/metrics")
    assert session.status == 200 and b"vcam_frames_total" in session.body


def test_healthz_follows_the_frames(server: Server) -> None:
    cam = server.camera
    cam.flowing, cam.error = False, ""
    started = time.monotonic()
    stalled = Browser(server.port).send("GET", "/healthz")
    assert stalled.status == 503 and stalled.json()["status"] == "down"
    assert time.monotonic() - started < 5
    cam.flowing = True
    running = Browser(server.port).send("GET", "/healthz")
    assert running.status == 200 and running.json()["status"] == "ok"
    cam.error = "source failed: gone"
    failed = Browser(server.port).send("GET", "/healthz")
    assert failed.status == 503 and "gone" in failed.json()["reason"]
    cam.error = ""


def test_page_and_json_errors(server: Server) -> None:
    browser = Browser(server.port)
    page = browser.send("GET", "/")
    assert page.status == 200 and b"<video" in page.body
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    for name in ("app.js", "app.css"):
        assert browser.send("GET", f"/static/{name}").status == 200
    assert browser.send("GET", "/static/..%2fpage.py").status == 404
    missing = logged_in(server.port).send("GET", "/api/nothing")
    assert missing.status == 404 and "error" in missing.json()
