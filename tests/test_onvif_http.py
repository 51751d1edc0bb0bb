"""The ONVIF HTTP endpoint in-process: the real aiohttp `WebServer` from `build_web` on 127.0.0.1,
a background event loop, and plain HTTP clients (http.client, urllib's Digest handler).

Covers the authentication matrix over every registered operation (WS-Security UsernameToken
variants and HTTP Digest), the user levels against the access policy, hostile bodies, schema
validity of answers and faults, and the snapshot endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import http.client
import os
import resource
import secrets
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import av
import cv2
import numpy as np
import pytest
from lxml import etree

from vcam.auth.digest import DigestAuth, Throttle
from vcam.auth.users import User, UserLevel, UserStore
from vcam.config import Config, StreamConfig, WebConfig
from vcam.media.types import MaskedFrame, SourceInfo, Verdict
from vcam.onvif.model import DeviceModel, StreamInfo
from vcam.onvif.soap import NSMAP, SOAP12, WSSE, WSU, AccessClass, allowed
from vcam.onvif.stack import build_dispatcher, build_web
from vcam.web.server import WebServer
from vcam.web.snapshot import LatestFrame

from .onvif_model import media_for, onvif_device, stream_infos
from .onvif_xsd import validate

ADMIN = ("admin", "Vcam-Test-Pass1")
OPERATOR = ("operator", "Operator-Pass2")
VIEWER = ("viewer", "Viewer-Pass3")
REALM = "vcam-test"
CT = "application/soap+xml; charset=utf-8"
TDS, TRT, TT, TER = NSMAP["tds"], NSMAP["trt"], NSMAP["tt"], NSMAP["ter"]
ENV = f"{{{SOAP12}}}"
TIMEOUT = 10.0  # every socket operation is bounded

FRAME_W, FRAME_H = 320, 240
# The main stream is scaled from the frame size; the sub stream is the frame size.
MAIN_CFG = StreamConfig("main", 640, 360, 25.0, 2000, 50, profile="high")
SUB_CFG = StreamConfig("sub", FRAME_W, FRAME_H, 12.5, 500, 25, profile="main")
SOURCE = SourceInfo(FRAME_W, FRAME_H, 25.0)
MAIN, SUB = stream_infos(media_for(MAIN_CFG, SUB_CFG), SOURCE)

PREAUTH = {
    f"{{{TDS}}}GetSystemDateAndTime",
    f"{{{TDS}}}GetServices",
    f"{{{TDS}}}GetServiceCapabilities",
    f"{{{TDS}}}GetWsdlUrl",
    f"{{{TDS}}}GetCapabilities",
    # Every service's, as the issue and the service specs say (GetServices already tells it all).
    *(f"{{{NSMAP[p]}}}GetServiceCapabilities" for p in ("trt", "tr2", "timg", "tmd", "tev", "tan")),
}
ALL_OPS = sorted(op.qname for op in build_dispatcher().operations())
ACCESS = {op.qname: op.access for op in build_dispatcher().operations()}
LEVELS = {
    ADMIN[0]: UserLevel.ADMINISTRATOR,
    OPERATOR[0]: UserLevel.OPERATOR,
    VIEWER[0]: UserLevel.USER,
}


# -- the server -------------------------------------------------------------------------------


class Server(NamedTuple):
    web: WebServer
    loop: asyncio.AbstractEventLoop
    port: int


def masked_frame() -> MaskedFrame:
    """A real masked frame: a colour gradient, so the JPEG has content."""
    x = np.arange(FRAME_W, dtype=np.uint16)[None, :]
    y = np.arange(FRAME_H, dtype=np.uint16)[:, None]
    bgr = np.zeros((FRAME_H, FRAME_W, 3), np.uint8)
    bgr[..., 0] = (x % 256).astype(np.uint8)
    bgr[..., 1] = (y % 256).astype(np.uint8)
    bgr[..., 2] = 128
    frame = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format="yuv420p")
    return MaskedFrame(frame, 0, 0, Verdict(0, (), (), False))


def make_model(users: UserStore) -> DeviceModel:
    return onvif_device(users, SOURCE, media_for(MAIN_CFG, SUB_CFG), http_port=0)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    users = UserStore(
        [
            User(*ADMIN, UserLevel.ADMINISTRATOR),
            User(*OPERATOR, UserLevel.OPERATOR),
            User(*VIEWER, UserLevel.USER),
        ]
    )
    # Lenient throttle: the tests send many wrong Digest headers from one address on purpose.
    digest = DigestAuth(users, REALM, throttle=Throttle(max_failures=1_000_000))
    latest = LatestFrame()
    latest.on_frame(masked_frame())
    cfg = dataclasses.replace(Config(), web=WebConfig(bind="127.0.0.1", port=0))
    web = build_web(cfg, make_model(users), users, digest, latest)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="onvif-http-test", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(web.start(), loop).result(TIMEOUT)
        assert web.port != 0
        web.onvif.model = dataclasses.replace(web.onvif.model, http_port=web.port)
        yield Server(web, loop, web.port)
    finally:
        asyncio.run_coroutine_threadsafe(web.stop(), loop).result(TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()


# -- requests ---------------------------------------------------------------------------------


def resolve(element: etree._Element) -> str:
    """A prefixed QName in an element's text ("ter:NotAuthorized") in Clark notation, resolved
    against the namespaces in scope, as a SOAP processor reads it."""
    prefix, _, local = (element.text or "").strip().rpartition(":")
    namespace = element.nsmap.get(prefix or None)
    assert namespace is not None, f"prefix {prefix!r} of {element.text!r} is not declared"
    return f"{{{namespace}}}{local}"


class Reply(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    seconds: float

    def xml(self) -> etree._Element:
        return etree.fromstring(self.body)

    def subcodes(self) -> list[str]:
        """The fault's subcode values as Clark names ({ns}Local), outermost first."""
        root = self.xml()
        out = []
        for value in root.iter(f"{ENV}Value"):
            parent = value.getparent()
            if parent is not None and parent.tag == f"{ENV}Subcode":
                out.append(resolve(value))
        return out

    def not_authorized(self) -> bool:
        return f"{{{TER}}}NotAuthorized" in self.subcodes()


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    started = time.monotonic()
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Reply(resp.status, resp.headers, data, time.monotonic() - started)
    finally:
        conn.close()


def post(
    port: int,
    body: bytes | Iterable[bytes],
    headers: dict[str, str] | None = None,
    path: str = "/onvif/device_service",
) -> Reply:
    return request(port, "POST", path, body, {"Content-Type": CT, **(headers or {})})


def op_element(qname: str) -> str:
    q = etree.QName(qname)
    return f'<ns:{q.localname} xmlns:ns="{q.namespace}"/>'


def envelope(body: str, header: str = "") -> bytes:
    head = f"<s:Header>{header}</s:Header>" if header else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP12}" '
        f'xmlns:tds="{TDS}" xmlns:trt="{TRT}" xmlns:tt="{TT}">{head}<s:Body>{body}</s:Body>'
        "</s:Envelope>"
    ).encode()


_WSS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-"
_PROFILE = f"{_WSS}username-token-profile-1.0"
_B64 = f"{_WSS}soap-message-security-1.0#Base64Binary"


def created_now(offset_s: float = 0) -> str:
    when = datetime.now(UTC) + timedelta(seconds=offset_s)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def security(
    username: str,
    password: str,
    *,
    created: str | None = None,
    nonce: bytes | None = None,
    with_nonce: bool = True,
    with_created: bool = True,
    text: bool = False,
) -> str:
    """A wsse:Security header with a UsernameToken computed here, independently of the server:
    PasswordDigest = Base64(SHA1(nonce + created + password))."""
    created = created or created_now()
    nonce = nonce if nonce is not None else secrets.token_bytes(16)
    if text:
        kind, value = "PasswordText", password
    else:
        raw = hashlib.sha1(nonce + created.encode() + password.encode()).digest()
        kind, value = "PasswordDigest", base64.b64encode(raw).decode()
    parts = [
        f"<wsse:Username>{username}</wsse:Username>",
        f'<wsse:Password Type="{_PROFILE}#{kind}">{value}</wsse:Password>',
    ]
    if with_nonce:
        parts.append(
            f'<wsse:Nonce EncodingType="{_B64}">{base64.b64encode(nonce).decode()}</wsse:Nonce>'
        )
    if with_created:
        parts.append(f"<wsu:Created>{created}</wsu:Created>")
    return (
        f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}" s:mustUnderstand="true">'
        f"<wsse:UsernameToken>{''.join(parts)}</wsse:UsernameToken></wsse:Security>"
    )


def http_digest(
    challenge: str, username: str, password: str, method: str, uri: str, nc: int = 1
) -> str:
    """An RFC 2617 Authorization (MD5, qop=auth) answering a WWW-Authenticate challenge,
    computed here rather than with the server's helper."""
    params = dict(
        (k.strip(), v.strip().strip('"'))
        for k, v in (p.split("=", 1) for p in challenge.split(None, 1)[1].split(","))
    )
    realm, nonce = params["realm"], params["nonce"]
    cnonce = secrets.token_hex(8)
    ha1 = hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    ncs = f"{nc:08x}"
    response = hashlib.md5(f"{ha1}:{nonce}:{ncs}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return (
        f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'algorithm=MD5, qop=auth, nc={ncs}, cnonce="{cnonce}", response="{response}"'
    )


def assert_refused(reply: Reply, what: str) -> None:
    assert reply.status == 400, (what, reply.status, reply.body[:300])
    assert reply.not_authorized(), (what, reply.body[:300])


def assert_not_auth_refused(reply: Reply, what: str) -> None:
    """Answered, or faulted for a reason other than authentication (missing arguments...)."""
    assert reply.status != 401, (what, reply.body[:300])
    if reply.status != 200:
        assert not reply.not_authorized(), (what, reply.body[:300])


# -- 1. authentication matrix -----------------------------------------------------------------


def test_every_operation_is_routed_and_preauth_set_is_exact(server: Server) -> None:
    assert {op.qname for op in server.web.onvif.dispatcher.operations()} == set(ALL_OPS)
    assert {q for q, a in ACCESS.items() if a is AccessClass.PRE_AUTH} == PREAUTH
    answered = {q for q in ALL_OPS if post(server.port, envelope(op_element(q))).status == 200}
    assert answered == PREAUTH


def test_no_credentials_get_a_digest_challenge(server: Server) -> None:
    for q in ALL_OPS:
        reply = post(server.port, envelope(op_element(q)))
        if q in PREAUTH:
            assert reply.status == 200, (q, reply.body[:300])
            continue
        assert reply.status == 401, (q, reply.status)
        challenge = reply.headers.get("WWW-Authenticate", "")
        assert challenge.startswith("Digest "), q
        assert f'realm="{REALM}"' in challenge and "nonce=" in challenge, q
        assert reply.not_authorized(), q  # still a SOAP fault body


BAD_TOKENS = {
    "wrong password": lambda: security(ADMIN[0], "Wrong-Pass1"),
    "unknown user": lambda: security("nobody", ADMIN[1]),
    "stale Created": lambda: security(*ADMIN, created=created_now(-600)),
    "future Created": lambda: security(*ADMIN, created=created_now(+600)),
    "missing Nonce": lambda: security(*ADMIN, with_nonce=False),
    "missing Created": lambda: security(*ADMIN, with_created=False),
    "PasswordText": lambda: security(*ADMIN, text=True),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_bad_ws_security_is_refused(server: Server, case: str) -> None:
    for q in ALL_OPS:
        reply = post(server.port, envelope(op_element(q), BAD_TOKENS[case]()))
        if q in PREAUTH:
            assert reply.status == 200, (case, q, reply.body[:300])
        else:
            assert_refused(reply, f"{case}: {q}")


def test_replayed_nonce_is_refused(server: Server) -> None:
    for q in ALL_OPS:
        token = security(*ADMIN)
        first = post(server.port, envelope(op_element(q), token))
        assert_not_auth_refused(first, q)
        second = post(server.port, envelope(op_element(q), token))
        if q in PREAUTH:
            assert second.status == 200, (q, second.body[:300])
        else:
            assert_refused(second, f"replay: {q}")


def test_valid_ws_security_is_never_refused(server: Server) -> None:
    for q in ALL_OPS:
        reply = post(server.port, envelope(op_element(q), security(*ADMIN)))
        assert_not_auth_refused(reply, q)
        if q in PREAUTH:
            assert reply.status == 200, q
    # Bare write requests (CreateUsers, DeleteUsers, SetUser with no arguments) changed nothing.
    users = server.web.onvif.model.users.users()
    assert sorted(u.username for u in users) == sorted([ADMIN[0], OPERATOR[0], VIEWER[0]])


def test_zeep_username_token_is_accepted(server: Server) -> None:
    from zeep.wsse.username import UsernameToken

    env = etree.fromstring(envelope("<tds:GetDeviceInformation/>", "<x:Empty xmlns:x='urn:x'/>"))
    env, _ = UsernameToken(*ADMIN, use_digest=True).apply(env, {})
    reply = post(server.port, etree.tostring(env))
    assert reply.status == 200, reply.body[:300]


def test_http_digest_is_accepted_and_wrong_one_refused(server: Server) -> None:
    path = "/onvif/device_service"
    url = f"http://127.0.0.1:{server.port}{path}"
    body = envelope("<tds:GetDeviceInformation/>")
    # A real client: urllib answers the 401 challenge by itself.
    manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    manager.add_password(None, url, *ADMIN)
    opener = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(manager))
    req = urllib.request.Request(url, data=body, headers={"Content-Type": CT}, method="POST")
    with opener.open(req, timeout=TIMEOUT) as resp:
        assert resp.status == 200
        assert b"GetDeviceInformationResponse" in resp.read()
    # Computed here, as the User-level account, for every protected operation.
    for q in ALL_OPS:
        challenge = post(server.port, envelope(op_element(q))).headers.get("WWW-Authenticate")
        if q in PREAUTH:
            continue
        assert challenge is not None
        good = http_digest(challenge, *VIEWER, "POST", path)
        reply = post(server.port, envelope(op_element(q)), {"Authorization": good})
        if allowed(UserLevel.USER, ACCESS[q]):
            assert_not_auth_refused(reply, q)
        else:
            assert_refused(reply, f"viewer digest: {q}")
    fresh = post(server.port, body).headers["WWW-Authenticate"]
    wrong = http_digest(fresh, ADMIN[0], "Wrong-Pass1", "POST", path)
    reply = post(server.port, body, {"Authorization": wrong})
    assert reply.status == 401
    assert reply.headers.get("WWW-Authenticate", "").startswith("Digest ")
    assert reply.not_authorized()
    unknown = http_digest(fresh, "nobody", ADMIN[1], "POST", path)
    assert post(server.port, body, {"Authorization": unknown}).status == 401
    once = http_digest(fresh, *ADMIN, "POST", path)
    assert post(server.port, body, {"Authorization": once}).status == 200
    assert post(server.port, body, {"Authorization": once}).status == 401  # same nc: replay
    basic = "Basic " + base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()
    assert post(server.port, body, {"Authorization": basic}).status == 401


# -- 2. user levels ---------------------------------------------------------------------------


@pytest.mark.parametrize("account", [ADMIN, OPERATOR, VIEWER], ids=lambda a: a[0])
def test_levels_follow_the_access_policy(server: Server, account: tuple[str, str]) -> None:
    level = LEVELS[account[0]]
    for q in ALL_OPS:
        reply = post(server.port, envelope(op_element(q), security(*account)))
        if allowed(level, ACCESS[q]):
            assert_not_auth_refused(reply, f"{level}: {q}")
        else:
            assert_refused(reply, f"{level}: {q}")


def test_get_users_needs_an_administrator(server: Server) -> None:
    assert not allowed(UserLevel.OPERATOR, AccessClass.READ_SYSTEM_SECRET)  # Core spec policy
    assert post(server.port, envelope("<tds:GetUsers/>")).status == 401
    for account in (VIEWER, OPERATOR):
        reply = post(server.port, envelope("<tds:GetUsers/>", security(*account)))
        assert_refused(reply, account[0])
    reply = post(server.port, envelope("<tds:GetUsers/>", security(*ADMIN)))
    assert reply.status == 200
    names = [e.text for e in reply.xml().iter(f"{{{TT}}}Username")]
    assert sorted(names) == sorted([ADMIN[0], OPERATOR[0], VIEWER[0]])
    for password in (ADMIN[1], OPERATOR[1], VIEWER[1]):
        assert password.encode() not in reply.body
    profiles = post(server.port, envelope("<trt:GetProfiles/>", security(*VIEWER)))
    assert profiles.status == 200


# -- 3. hostile input -------------------------------------------------------------------------

XXE = (
    '<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    f'<s:Envelope xmlns:s="{SOAP12}" xmlns:tds="{TDS}"><s:Body>'
    "<tds:GetDeviceInformation>&xxe;</tds:GetDeviceInformation></s:Body></s:Envelope>"
)
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + f']><s:Envelope xmlns:s="{SOAP12}" xmlns:tds="{TDS}"><s:Body>'
    "<tds:GetSystemDateAndTime>&lol9;</tds:GetSystemDateAndTime></s:Body></s:Envelope>"
)
DEEP = (
    f'<s:Envelope xmlns:s="{SOAP12}" xmlns:tds="{TDS}"><s:Body><tds:GetSystemDateAndTime>'
    + "<a>" * 100_000
    + "</a>" * 100_000
    + "</tds:GetSystemDateAndTime></s:Body></s:Envelope>"
)
BIG = envelope("<tds:GetSystemDateAndTime>" + "x" * (2 << 20) + "</tds:GetSystemDateAndTime>")


def _chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


HOSTILE: dict[str, tuple[bytes | None, dict[str, str], set[int]]] = {
    "xxe": (XXE.encode(), {}, {400}),
    "xxe utf-16": (XXE.replace('<?xml version="1.0"?>', "").encode("utf-16"), {}, {400}),
    "billion laughs": (LAUGHS.encode(), {}, {400}),
    "deep nesting": (DEEP.encode(), {}, {400}),
    "2 MiB with Content-Length": (BIG, {}, {413}),
    "2 MiB chunked": (None, {}, {413}),  # body streamed without Content-Length
    "garbage": (os.urandom(4096), {}, {400}),
    "wrong Content-Type": (envelope("<tds:GetSystemDateAndTime/>"), {"Content-Type": "a/b"}, {415}),
    "json": (b'{"GetSystemDateAndTime": {}}', {"Content-Type": "application/json"}, {415}),
    "not an envelope": (f'<tds:GetSystemDateAndTime xmlns:tds="{TDS}"/>'.encode(), {}, {400}),
}


def _send_hostile(port: int, case: str) -> Reply:
    body, headers, _ = HOSTILE[case]
    if body is None:
        return post(port, _chunks(BIG))  # http.client sends an iterable chunked
    try:
        return post(port, body, headers)
    except (BrokenPipeError, ConnectionResetError):
        # The server may answer 413 and close before the whole body is sent.
        assert case.startswith("2 MiB"), case
        return Reply(413, http.client.HTTPMessage(), b"", 0.0)


def _is_soap_fault(reply: Reply) -> bool:
    root = reply.xml()
    return root.tag == f"{ENV}Envelope" and root.find(f"{ENV}Body/{ENV}Fault") is not None


def _passwd_lines() -> list[bytes]:
    try:
        with open("/etc/passwd", "rb") as f:
            return [line.strip() for line in f if line.strip()][:5]
    except OSError:
        return []


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_body_gets_a_quick_fault(server: Server, case: str) -> None:
    reply = _send_hostile(server.port, case)
    assert reply.status in HOSTILE[case][2], (reply.status, reply.body[:300])
    assert reply.seconds < 1.0, reply.seconds
    if reply.body:
        assert _is_soap_fault(reply), reply.body[:300]
        assert f"{{{TER}}}WellFormed" in reply.subcodes(), reply.body[:300]
    assert b"root:" not in reply.body and b"/bin/" not in reply.body
    assert not any(line in reply.body for line in _passwd_lines())
    assert b"lollol" not in reply.body
    ok = post(server.port, envelope("<tds:GetSystemDateAndTime/>"))
    assert ok.status == 200 and b"GetSystemDateAndTimeResponse" in ok.body


def test_chunked_request_is_accepted(server: Server) -> None:
    body = envelope("<tds:GetSystemDateAndTime/>")
    reply = post(server.port, _chunks(body, 50))  # no Content-Length: chunked
    assert reply.status == 200 and b"GetSystemDateAndTimeResponse" in reply.body


def test_hostile_bodies_keep_memory_bounded(server: Server) -> None:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    try:
        for case in HOSTILE:
            for _ in range(2):
                assert _send_hostile(server.port, case).status in HOSTILE[case][2], case
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Client and server share the process: both count. An expansion would be gigabytes.
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    print(f"tracemalloc peak {peak / 2**20:.1f} MiB, max RSS grew {grown_kib / 1024:.1f} MiB")
    assert peak < 16 << 20, peak
    assert grown_kib < 64 << 10, grown_kib
    assert post(server.port, envelope("<tds:GetSystemDateAndTime/>")).status == 200


# -- 4. schema-valid answers and well-formed faults -------------------------------------------

VALID_REQUESTS = {
    "GetDeviceInformation": "<tds:GetDeviceInformation/>",
    "GetProfiles": "<trt:GetProfiles/>",
    "GetStreamUri": "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream>"
    "<tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup>"
    "<trt:ProfileToken>profile_main</trt:ProfileToken></trt:GetStreamUri>",
    "GetSnapshotUri": "<trt:GetSnapshotUri><trt:ProfileToken>profile_sub</trt:ProfileToken>"
    "</trt:GetSnapshotUri>",
    "GetCapabilities": "<tds:GetCapabilities><tds:Category>All</tds:Category>"
    "</tds:GetCapabilities>",
}


@pytest.mark.parametrize("name", list(VALID_REQUESTS))
def test_answers_validate_against_the_wsdl(server: Server, name: str) -> None:
    reply = post(server.port, envelope(VALID_REQUESTS[name], security(*VIEWER)))
    assert reply.status == 200, reply.body[:300]
    assert reply.headers.get_content_type() == "application/soap+xml"
    root = reply.xml()
    assert root.tag == f"{ENV}Envelope"
    body = root.find(f"{ENV}Body")
    assert body is not None and len(body) == 1
    answer = body[0]
    assert etree.QName(answer).localname == f"{name}Response"
    validate(answer)
    if name == "GetStreamUri":
        uri = answer.findtext(f"{{{TRT}}}MediaUri/{{{TT}}}Uri")
        assert uri == "rtsp://127.0.0.1:8554/main"
    if name == "GetSnapshotUri":
        uri = answer.findtext(f"{{{TRT}}}MediaUri/{{{TT}}}Uri")
        assert uri == f"http://127.0.0.1:{server.port}/snapshot/sub.jpg"


def _assert_soap12_fault(reply: Reply, subcode: str) -> None:
    assert reply.headers.get_content_type() == "application/soap+xml"
    root = reply.xml()
    assert root.tag == f"{ENV}Envelope"
    fault = root.find(f"{ENV}Body/{ENV}Fault")
    assert fault is not None
    value = fault.find(f"{ENV}Code/{ENV}Value")
    assert value is not None
    assert resolve(value) == f"{ENV}Sender"  # the prefix resolves
    sub = fault.find(f"{ENV}Code/{ENV}Subcode/{ENV}Value")
    assert sub is not None
    assert resolve(sub) == subcode
    assert fault.findtext(f"{ENV}Reason/{ENV}Text")


def test_faults_are_soap12_faults(server: Server) -> None:
    anonymous = post(server.port, envelope("<tds:GetDeviceInformation/>"))
    assert anonymous.status == 401
    _assert_soap12_fault(anonymous, f"{{{TER}}}NotAuthorized")
    wrong = post(server.port, envelope("<tds:GetUsers/>", security(ADMIN[0], "nope")))
    assert wrong.status == 400
    _assert_soap12_fault(wrong, f"{{{TER}}}NotAuthorized")
    level = post(server.port, envelope("<tds:GetUsers/>", security(*VIEWER)))
    assert level.status == 400
    _assert_soap12_fault(level, f"{{{TER}}}NotAuthorized")
    broken = post(server.port, b"<s:Envelope")
    assert broken.status == 400
    _assert_soap12_fault(broken, f"{{{TER}}}WellFormed")
    # Same reason text whatever the cause: no user enumeration.
    unknown = post(server.port, envelope("<tds:GetUsers/>", security("nobody", "nope")))
    assert unknown.xml().findtext(f".//{ENV}Reason/{ENV}Text") == wrong.xml().findtext(
        f".//{ENV}Reason/{ENV}Text"
    )


# -- 5. snapshot ------------------------------------------------------------------------------


def test_snapshot_needs_digest(server: Server) -> None:
    reply = request(server.port, "GET", "/snapshot/main.jpg")
    assert reply.status == 401
    challenge = reply.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Digest ") and f'realm="{REALM}"' in challenge
    wrong = http_digest(challenge, ADMIN[0], "Wrong-Pass1", "GET", "/snapshot/main.jpg")
    again = request(server.port, "GET", "/snapshot/main.jpg", headers={"Authorization": wrong})
    assert again.status == 401 and again.headers.get("WWW-Authenticate", "").startswith("Digest")


def _opener(port: int, account: tuple[str, str]) -> urllib.request.OpenerDirector:
    manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    manager.add_password(None, f"http://127.0.0.1:{port}/", *account)
    return urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(manager))


@pytest.mark.parametrize("stream", [MAIN, SUB], ids=lambda s: s.name)
def test_snapshot_with_digest_is_a_jpeg_of_the_stream_size(
    server: Server, stream: StreamInfo
) -> None:
    url = f"http://127.0.0.1:{server.port}/snapshot/{stream.name}.jpg"
    with _opener(server.port, VIEWER).open(url, timeout=TIMEOUT) as resp:
        assert resp.status == 200
        assert resp.headers.get_content_type() == "image/jpeg"
        data = resp.read()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert image.shape == (stream.height, stream.width, 3)
    # The gradient survived: green grows downwards.
    assert image[-4, image.shape[1] // 2, 1] > image[4, image.shape[1] // 2, 1] + 100


def test_unknown_snapshot_stream_is_404(server: Server) -> None:
    url = f"http://127.0.0.1:{server.port}/snapshot/nonexistent.jpg"
    with pytest.raises(urllib.error.HTTPError) as info:
        _opener(server.port, ADMIN).open(url, timeout=TIMEOUT)
    assert info.value.code == 404
    info.value.close()
