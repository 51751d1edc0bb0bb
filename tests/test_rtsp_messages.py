"""The sans-IO RTSP message layer: real client bytes, fuzzing, limits and header grammars."""

from __future__ import annotations

import base64
import contextlib
import itertools
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vcam.rtsp.messages import (
    Headers,
    InterleavedFrame,
    Limits,
    ProtocolError,
    Range,
    RequestParser,
    RtspRequest,
    RtspResponse,
    TransportSpec,
    format_transport,
    interleaved,
    parse_range,
    parse_session,
    parse_transport,
    response,
    split_uri,
)

CORPUS_DIR = Path(__file__).parent / "corpus" / "rtsp"
CORPUS = {p.name: p.read_bytes() for p in sorted(CORPUS_DIR.glob("*.txt"))}

# What each file must parse to: methods, "$n" for an interleaved frame on channel n.
EXPECTED = {
    "bare_lf_blank_lines.txt": "OPTIONS DESCRIBE OPTIONS",
    "ffmpeg5_http_tunnel_get.txt": "GET",
    "ffmpeg5_http_tunnel_post.txt": "POST",
    "ffmpeg5_record_interleaved.txt": "OPTIONS ANNOUNCE SETUP RECORD $1 $0 $0 $0 TEARDOWN",
    "ffmpeg5_tcp_session.txt": "OPTIONS DESCRIBE SETUP PLAY TEARDOWN",
    "ffmpeg5_udp_digest_session.txt": "OPTIONS DESCRIBE DESCRIBE SETUP PLAY TEARDOWN",
    "gstreamer122_tcp_pause.txt": "OPTIONS DESCRIBE SETUP PLAY PAUSE TEARDOWN",
    "gstreamer122_udp_keepalive.txt": "OPTIONS DESCRIBE SETUP PLAY GET_PARAMETER TEARDOWN",
    "gstreamer_transport_alternatives.txt": "SETUP PLAY",
    "interleaved_rtcp_between_requests.txt": "PLAY $1 GET_PARAMETER $1 $3",
    "lavf61_session.txt": "OPTIONS DESCRIBE SETUP SETUP PLAY GET_PARAMETER TEARDOWN",
    "multicast_setup.txt": "SETUP",
    "onvif_vms_replay_digest.txt": "DESCRIBE SETUP PLAY",
    "options_star_http_style.txt": "OPTIONS",
    "parameters_with_body.txt": "GET_PARAMETER SET_PARAMETER",
    "vlc_live555_session.txt": "OPTIONS DESCRIBE SETUP PLAY GET_PARAMETER TEARDOWN",
}

Event = RtspRequest | InterleavedFrame


def _bound(limits: Limits) -> int:
    """The most a parser may hold between calls."""
    return max(limits.max_line + 1, limits.max_body, 4 + limits.max_interleaved)


def parse(data: bytes, chunk: int | None = None) -> tuple[list[Event], bytes]:
    """All events, and the raw tunnel bytes left after a tunnel POST."""
    parser = RequestParser()
    events: list[Event] = []
    step = chunk or max(len(data), 1)
    for i in range(0, len(data), step):
        events += parser.feed(data[i : i + step])
        assert parser.buffered <= _bound(parser.limits)
    return events, parser.take_tunnel_data() if parser.tunnelled else b""


def tokens(events: list[Event]) -> str:
    return " ".join(e.method if isinstance(e, RtspRequest) else f"${e.channel}" for e in events)


def test_corpus_is_complete() -> None:
    assert sorted(CORPUS) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_parses_whole_and_in_chunks(name: str) -> None:
    whole, tunnel = parse(CORPUS[name])
    assert tokens(whole) == EXPECTED[name]
    for chunk in range(1, 18):
        assert parse(CORPUS[name], chunk) == (whole, tunnel), f"chunk size {chunk}"


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_reserialises_to_the_same_value(name: str) -> None:
    for event in parse(CORPUS[name])[0]:
        if isinstance(event, RtspRequest):
            assert RequestParser().feed(event.to_bytes()) == [event]
        else:
            assert RequestParser().feed(interleaved(event.channel, event.payload)) == [event]


def test_corpus_header_values_parse() -> None:
    seen = 0
    for data in CORPUS.values():
        for event in parse(data)[0]:
            if not isinstance(event, RtspRequest):
                continue
            for value in event.headers.get_all("Transport"):
                specs = parse_transport(value)
                assert [parse_transport(format_transport(s))[0] for s in specs] == specs
                seen += 1
            for value in event.headers.get_all("Session"):
                assert parse_session(value)[0]
            for value in event.headers.get_all("Range"):
                if event.method in ("PLAY", "RECORD"):
                    parse_range(value)
    assert seen >= 10


def test_ffmpeg_requests_in_detail() -> None:
    events, _ = parse(CORPUS["ffmpeg5_udp_digest_session.txt"])
    setup = events[3]
    assert isinstance(setup, RtspRequest)
    assert (setup.method, setup.uri, setup.version, setup.cseq) == (
        "SETUP",
        "rtsp://127.0.0.1:18555/main/trackID=0",
        "RTSP/1.0",
        "4",
    )
    assert setup.headers.get("user-agent") == "Lavf59.27.100"
    assert setup.headers.get("AUTHORIZATION", "").startswith('Digest username="admin", realm=')
    assert parse_transport(setup.headers.get("Transport") or "") == [
        TransportSpec("RTP/AVP", client_port=(8498, 8499))
    ]
    announce = parse(CORPUS["ffmpeg5_record_interleaved.txt"])[0][1]
    assert isinstance(announce, RtspRequest)
    assert len(announce.body) == 298 and announce.body.startswith(b"v=0\r\n")
    assert announce.body.endswith(b"a=control:streamid=0\r\n")


def test_http_tunnel_post_hands_over_its_base64() -> None:
    for chunk in (None, 1, 5):
        events, tunnel = parse(CORPUS["ffmpeg5_http_tunnel_post.txt"], chunk)
        post = events[0]
        assert isinstance(post, RtspRequest)
        assert post.is_tunnel_post and post.body == b"" and post.version == "HTTP/1.1"
        assert post.headers.get("x-sessioncookie") == "bf3951a3fa4e33f1"
        inner = RequestParser().feed(base64.b64decode(tunnel))
        assert tokens(inner) == "OPTIONS"
    get = parse(CORPUS["ffmpeg5_http_tunnel_get.txt"])[0][0]
    assert isinstance(get, RtspRequest) and not get.is_tunnel_post
    assert get.headers.get("Accept") == "application/x-rtsp-tunnelled"


def test_tunnel_data_is_bounded_until_drained() -> None:
    parser = RequestParser(Limits(max_body=100))
    head = CORPUS["ffmpeg5_http_tunnel_post.txt"].split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    assert tokens(parser.feed(head + b"QUFB")) == "POST"
    assert parser.feed(b"A" * 50) == []
    assert parser.take_tunnel_data() == b"QUFB" + b"A" * 50
    with pytest.raises(ProtocolError) as err:
        parser.feed(b"A" * 101)
    assert err.value.status == 413 and parser.closed


def test_headers_multimap() -> None:
    h = Headers([("Via", "a"), ("CSeq", "3"), ("via", "b")])
    assert h.get("VIA") == "a" and h.get_all("via") == ["a", "b"]
    assert "cseq" in h and "Session" not in h and h.get("Session", "x") == "x"
    assert h.items() == [("Via", "a"), ("CSeq", "3"), ("via", "b")]
    assert h == Headers(h.items()) and h != Headers(h.items()[::-1])
    assert hash(h) == hash(Headers(h.items()))


def test_response_serialisation() -> None:
    req = RequestParser().feed(CORPUS["lavf61_session.txt"])[0]
    assert isinstance(req, RtspRequest)
    answer = response(req, 200, [("Public", "OPTIONS, DESCRIBE")])
    assert answer.to_bytes() == (
        b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nServer: vcam\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n"
    )
    sdp = b"v=0\r\n"
    assert response(None, 461, body=sdp).to_bytes() == (
        b"RTSP/1.0 461 Unsupported transport\r\nServer: vcam\r\nContent-Length: 5\r\n\r\nv=0\r\n"
    )
    assert RtspResponse(454).reason == "Session Not Found"
    assert RtspResponse(299, "Fine").to_bytes().startswith(b"RTSP/1.0 299 Fine\r\n")
    with pytest.raises(ValueError):
        response(req, 200, [("Location", "x\r\nSet-Cookie: evil")]).to_bytes()
    with pytest.raises(ValueError):
        RtspRequest("OPTIONS", "rtsp://a b", "RTSP/1.0").to_bytes()


def test_request_serialisation_adds_content_length() -> None:
    req = RtspRequest("SET_PARAMETER", "*", "RTSP/1.0", Headers([("CSeq", "2")]), b"x: y\r\n")
    data = req.to_bytes()
    assert b"Content-Length: 6\r\n" in data
    (back,) = RequestParser().feed(data)
    assert isinstance(back, RtspRequest) and back.body == req.body and back.cseq == "2"


def test_interleaved_framing() -> None:
    assert interleaved(1, b"\x80\xc9") == b"$\x01\x00\x02\x80\xc9"
    with pytest.raises(ValueError):
        interleaved(256, b"")
    with pytest.raises(ValueError):
        interleaved(0, bytes(65536))


# -- errors and limits --------------------------------------------------------------------------

OPTIONS = b"OPTIONS rtsp://h/main RTSP/1.0\r\nCSeq: 1\r\n"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"OPTIONS rtsp://h/main RTSP/2.0\r\n\r\n", 505),
        (b"OPTIONS rtsp://h/main HTTP/2.0\r\n\r\n", 505),
        (b"OPTIONS rtsp://h/main RTSP1.0\r\n\r\n", 400),
        (b"OPTIONS  rtsp://h/main RTSP/1.0\r\n\r\n", 400),
        (b"OPTIONS rtsp://h/main\r\n\r\n", 400),
        (b"OPT(IONS * RTSP/1.0\r\n\r\n", 400),
        (b"OPTIONS rtsp://h/m\xe9 RTSP/1.0\r\n\r\n", 400),
        (OPTIONS + b" folded\r\n\r\n", 400),
        (OPTIONS + b"\tfolded\r\n\r\n", 400),
        (OPTIONS + b"Bad : x\r\n\r\n", 400),
        (OPTIONS + b"NoColon\r\n\r\n", 400),
        (OPTIONS + b"X: a\x00b\r\n\r\n", 400),
        (OPTIONS + b"X: a\rb\r\n\r\n", 400),
        (OPTIONS + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (OPTIONS + b"Content-Length: -1\r\n\r\n", 400),
        (OPTIONS + b"Content-Length: +1\r\n\r\n", 400),
        (OPTIONS + b"Content-Length: \xd9\xa1\r\n\r\n", 400),
        (OPTIONS + b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n", 400),
        (OPTIONS + b"Content-Length: 65537\r\n\r\n", 413),
        (OPTIONS + b"Transfer-Encoding: chunked\r\n\r\n", 400),
        (b"OPTIONS /" + b"a" * 5000 + b" RTSP/1.0\r\n\r\n", 414),
        (OPTIONS + b"X: " + b"a" * 5000 + b"\r\n\r\n", 400),
        (OPTIONS + b"X: a\r\n" * 64 + b"\r\n", 400),
    ],
)
def test_malformed_requests(data: bytes, status: int) -> None:
    for chunk in (len(data), 1, 7):
        parser = RequestParser()
        with pytest.raises(ProtocolError) as err:
            for i in range(0, len(data), chunk):
                parser.feed(data[i : i + chunk])
        assert err.value.status == status, chunk
        assert parser.closed and parser.buffered == 0
        with pytest.raises(ProtocolError):
            parser.feed(b"OPTIONS * RTSP/1.0\r\n\r\n")


@pytest.mark.parametrize("line", [b" X: folded", b"\tX: folded", b"\t"])
def test_folded_header_lines_are_refused(line: bytes) -> None:
    with pytest.raises(ProtocolError) as err:
        RequestParser().feed(OPTIONS + line + b"\r\n\r\n")
    assert (err.value.status, err.value.reason) == (400, "folded header line")


def test_limits_are_exact() -> None:
    limits = Limits(max_line=40, max_headers=2, max_body=10, max_interleaved=8)
    line = b"OPTIONS /" + b"a" * 22 + b" RTSP/1.0"  # 40 bytes
    assert len(line) == 40
    ok = line + b"\r\nA: 1\r\nB: 2\r\nContent-Length: 10\r\n\r\n" + bytes(10)
    with pytest.raises(ProtocolError):  # three headers
        RequestParser(limits).feed(ok)
    ok = line + b"\r\nA: 1\r\nContent-Length: 10\r\n\r\n" + bytes(10) + b"$\x00\x00\x08" + bytes(8)
    assert tokens(RequestParser(limits).feed(ok)) == "OPTIONS $0"
    for bad, status in [
        (b"OPTIONS /" + b"a" * 23 + b" RTSP/1.0\r\n\r\n", 414),
        (line + b"\r\nContent-Length: 11\r\n\r\n", 413),
        (b"$\x00\x00\x09", 413),
    ]:
        with pytest.raises(ProtocolError) as err:
            RequestParser(limits).feed(bad)
        assert err.value.status == status


def test_ten_megabytes_without_newline_fails_early_in_bounded_memory() -> None:
    chunk = b"A" * 65536
    for prefix, status in [(b"", 414), (OPTIONS + b"X-Long: ", 400)]:
        parser = RequestParser()
        tracemalloc.start()
        try:
            with pytest.raises(ProtocolError) as err:
                parser.feed(prefix)
                for _ in range(160):  # 10 MiB
                    parser.feed(chunk)
                    assert parser.buffered <= parser.limits.max_line + 1
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert err.value.status == status
        assert peak < 1_000_000


def test_ten_megabytes_of_blank_lines_hold_nothing() -> None:
    parser = RequestParser()
    for _ in range(80):
        assert parser.feed(b"\r\n" * 65536) == []
        assert parser.buffered == 0
    assert tokens(parser.feed(OPTIONS + b"\r\n")) == "OPTIONS"


# -- fuzzing ------------------------------------------------------------------------------------

LIMITS = [Limits(), Limits(max_line=64, max_headers=4, max_body=100, max_interleaved=50)]


def _feed_checked(data: bytes, cuts: list[int], limits: Limits) -> list[Event]:
    """Feeds data cut at `cuts`; only events or ProtocolError, never more held than allowed."""
    parser = RequestParser(limits)
    events: list[Event] = []
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for start, end in itertools.pairwise(bounds):
        try:
            got = parser.feed(data[start:end])
        except ProtocolError as exc:
            assert parser.closed and parser.buffered == 0
            assert exc.status in (400, 413, 414, 505)
            return events
        assert all(isinstance(e, RtspRequest | InterleavedFrame) for e in got)
        assert parser.buffered <= _bound(limits)
        events += got
    for event in events:  # what parses re-serialises to the same value
        if isinstance(event, RtspRequest):
            assert RequestParser(limits).feed(event.to_bytes())[:1] == [event]
    return events


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000)), st.sampled_from(LIMITS))
def test_fuzz_arbitrary_bytes(data: bytes, cuts: list[int], limits: Limits) -> None:
    _feed_checked(data, cuts, limits)


@st.composite
def mutated_corpus(draw: st.DrawFn) -> bytes:
    data = bytearray(CORPUS[draw(st.sampled_from(sorted(CORPUS)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "repeat", "delete"]))
        pos = draw(st.integers(0, len(data)))
        if kind == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(
                st.sampled_from([b"\r\n", b"\n", b":", b" ", b"$", b"\x00", b"\r", b'"', b"9"])
                | st.binary(max_size=8)
            )
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 4))]
        else:  # repeat the header line around pos
            start = data.rfind(b"\n", 0, pos) + 1
            end = data.find(b"\n", pos)
            if end > 0:
                data[start:start] = data[start : end + 1] * draw(st.integers(1, 80))
    return bytes(data)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_corpus(), st.lists(st.integers(0, 5000), max_size=40), st.sampled_from(LIMITS))
def test_fuzz_mutated_corpus(data: bytes, cuts: list[int], limits: Limits) -> None:
    _feed_checked(data, cuts, limits)


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"[A-Z_]{1,12}", fullmatch=True),
    st.from_regex(r"[!-~]{1,40}", fullmatch=True),
    st.sampled_from(["RTSP/1.0", "HTTP/1.0", "HTTP/1.1"]),
    st.lists(
        st.tuples(
            st.from_regex(r"X-[A-Za-z0-9-]{1,10}", fullmatch=True),
            st.from_regex(r"([!-~\x80-\xff]([ \t!-~\x80-\xff]*[!-~\x80-\xff])?)?", fullmatch=True),
        ),
        max_size=10,
    ),
    st.binary(max_size=200),
)
def test_fuzz_serialise_then_parse(
    method: str, uri: str, version: str, fields: list[tuple[str, str]], body: bytes
) -> None:
    req = RtspRequest(method, uri, version, Headers(fields), body)
    (back,) = RequestParser().feed(req.to_bytes())
    assert isinstance(back, RtspRequest)
    assert (back.method, back.uri, back.version, back.body) == (method, uri, version, body)
    assert back.headers.items()[: len(fields)] == fields


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_header_grammars_raise_only_protocol_errors(text: str) -> None:
    for parse_header in (parse_transport, parse_session, parse_range):
        with contextlib.suppress(ProtocolError):
            parse_header(text)
    path, _query = split_uri(text)
    assert path.startswith("/") or path == "*"


# -- header grammars ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("RTP/AVP/TCP;unicast;interleaved=0-1", [TransportSpec("RTP/AVP/TCP", interleaved=(0, 1))]),
        ("RTP/AVP/UDP;unicast;client_port=5000-5001", [TransportSpec(client_port=(5000, 5001))]),
        ("rtp/avp;unicast;client_port=5000", [TransportSpec(client_port=(5000, 5001))]),
        (
            "RTP/AVP;unicast;client_port=41234-41235,RTP/AVP/TCP;unicast;interleaved=0-1",
            [
                TransportSpec(client_port=(41234, 41235)),
                TransportSpec("RTP/AVP/TCP", interleaved=(0, 1)),
            ],
        ),
        (
            'RTP/AVP;multicast;destination=232.0.1.2;port=40000-40001;ttl=16;mode="PLAY"',
            [
                TransportSpec(
                    multicast=True,
                    destination="232.0.1.2",
                    port=(40000, 40001),
                    ttl=16,
                    mode="PLAY",
                )
            ],
        ),
        (
            "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record",
            [TransportSpec("RTP/AVP/TCP", interleaved=(0, 1), mode="record")],
        ),
        (
            "RTP/AVP;unicast;destination;source=10.0.0.1;server_port=6970-6971;ssrc=1A2B3C4D",
            [
                TransportSpec(
                    destination="",
                    source="10.0.0.1",
                    server_port=(6970, 6971),
                    ssrc="1A2B3C4D",
                )
            ],
        ),
        (
            'RTP/AVP;unicast;client_port=1-2;append;layers=2;x-foo="a,b", ',
            [
                TransportSpec(
                    client_port=(1, 2),
                    extra=(("append", None), ("layers", "2"), ("x-foo", '"a,b"')),
                )
            ],
        ),
        ("RTP/SAVP;unicast;client_port=1-2", [TransportSpec("RTP/SAVP", client_port=(1, 2))]),
        ('RTP/AVP;mode="PLAY,RECORD"', [TransportSpec(mode="PLAY,RECORD")]),
        ("RTP/AVP", [TransportSpec()]),
    ],
)
def test_parse_transport(value: str, expected: list[TransportSpec]) -> None:
    assert parse_transport(value) == expected
    assert [parse_transport(format_transport(s))[0] for s in expected] == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        " , ",
        "RTP",
        "RTP/AVP/TCP/X",
        "RTP/AVP;interleaved=0-256",
        "RTP/AVP;interleaved=a-b",
        "RTP/AVP;interleaved",
        "RTP/AVP;client_port=70000",
        "RTP/AVP;client_port=65535",  # the implied RTCP port would be 65536
        "RTP/AVP;client_port=1-2;client_port=3-4",
        "RTP/AVP;ttl=256",
        "RTP/AVP;ttl=x",
        "RTP/AVP;ssrc=123456789",
        "RTP/AVP;ssrc=zz",
        'RTP/AVP;mode="PLAY',
        "RTP/AVP;bad param=1",
        "RTP/AVP;destination=a b",
    ],
)
def test_parse_transport_garbage(value: str) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_transport(value)
    assert err.value.status == 461


def test_format_transport() -> None:
    spec = TransportSpec("RTP/AVP", client_port=(5000, 5001), server_port=(6970, 6971), ssrc="0A")
    assert (
        format_transport(spec)
        == "RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;ssrc=0A"
    )
    spec = TransportSpec("RTP/AVP/TCP", interleaved=(2, 3), mode="PLAY")
    assert format_transport(spec) == "RTP/AVP/TCP;unicast;interleaved=2-3;mode=PLAY"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5D1E2A7C", ("5D1E2A7C", None)),
        ("5D1E2A7C;timeout=60", ("5D1E2A7C", 60)),
        (" abc$-_.+ ; Timeout = 5 ; other=1", ("abc$-_.+", 5)),
    ],
)
def test_parse_session(value: str, expected: tuple[str, int | None]) -> None:
    assert parse_session(value) == expected


@pytest.mark.parametrize(
    ("value", "status"),
    [("", 454), ("a b", 454), ("a" * 129, 454), ("ab;timeout=x", 400), ("ab;timeout=-1", 400)],
)
def test_parse_session_garbage(value: str, status: int) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_session(value)
    assert err.value.status == status


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("npt=0.000-", Range("npt", 0.0, None)),
        ("npt=0-", Range("npt", 0.0, None)),
        ("npt=now-", Range("npt", None, None, now=True)),
        ("npt=10-20.5", Range("npt", 10.0, 20.5)),
        ("npt=-20", Range("npt", None, 20.0)),
        ("NPT = 1:02:03.5-", Range("npt", 3723.5, None)),
        ("npt=12.-", Range("npt", 12.0, None)),
        ("clock=20240305T101500Z-20240305T102000Z", Range("clock", 1709633700.0, 1709634000.0)),
        ("clock=19700101T000001.25Z-;time=20240305T101500Z", Range("clock", 1.25, None)),
    ],
)
def test_parse_range(value: str, expected: Range) -> None:
    assert parse_range(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "npt",
        "npt=",
        "npt=-",
        "npt=abc-",
        "npt=20-10",
        "npt=1-2-3",
        "npt=1:60:00-",
        "npt=now-now",
        "smpte=0:10:00-",
        "clock=20241301T000000Z-",
        "clock=20240305T101500-",
        "npt=" + "9" * 400 + "-",
    ],
)
def test_parse_range_garbage(value: str) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_range(value)
    assert err.value.status == 457


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("*", ("*", "")),
        ("rtsp://127.0.0.1:8554/main?x=1", ("/main", "x=1")),
        ("rtsp://user:pw@[::1]:554/main/trackID=0", ("/main/trackID=0", "")),
        ("rtsp://host", ("/", "")),
        ("rtsp://host?q", ("/", "q")),
        ("RTSPS://host/a#frag", ("/a", "")),
        ("/main", ("/main", "")),
        ("main", ("/main", "")),
        ("rtsp://[::1", ("/", "")),
    ],
)
def test_split_uri(uri: str, expected: tuple[str, str]) -> None:
    assert split_uri(uri) == expected
