"""Sans-IO RTSP 1.0 messages (RFC 2326): bytes in, events out, no sockets.

`RequestParser.feed` turns a byte stream into `RtspRequest`s and `InterleavedFrame`s. The same
parser reads the HTTP GET/POST that open an Apple-style RTSP-over-HTTP tunnel; after the tunnel
POST its bytes are base64, not requests: the parser hands them out raw (`take_tunnel_data`).

Decisions (strict where ambiguity could smuggle requests, lenient where real clients differ):
- CRLF and bare LF both end lines; empty lines between messages are skipped.
- Obsolete header folding (a line starting with space/tab) is refused (400), as RFC 7230 allows.
- Whitespace before a header's colon, control characters, several different Content-Lengths and
  Transfer-Encoding are refused (400). Header values are latin-1, stripped of outer whitespace.
- Any error kills the parser (`closed`): the caller answers `exc.status` and closes. Nothing is
  held beyond the limits: a line that cannot end within `max_line` fails as soon as it is seen.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from vcam.errors import VcamError

REASONS: dict[int, str] = {
    100: "Continue",
    200: "OK",
    201: "Created",
    250: "Low on Storage Space",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    303: "See Other",
    304: "Not Modified",
    305: "Use Proxy",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Time-out",
    410: "Gone",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Large",
    415: "Unsupported Media Type",
    451: "Parameter Not Understood",
    452: "Conference Not Found",
    453: "Not Enough Bandwidth",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    456: "Header Field Not Valid for Resource",
    457: "Invalid Range",
    458: "Parameter Is Read-Only",
    459: "Aggregate operation not allowed",
    460: "Only aggregate operation allowed",
    461: "Unsupported transport",
    462: "Destination unreachable",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Time-out",
    505: "RTSP Version not supported",
    551: "Option not supported",
}

VERSIONS = frozenset({"RTSP/1.0", "HTTP/1.0", "HTTP/1.1"})
TUNNEL_CONTENT_TYPE = "application/x-rtsp-tunnelled"

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(r"(RTSP|HTTP)/\d+\.\d+")
_URI = re.compile(r"[\x21-\x7e]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class ProtocolError(VcamError):
    """A malformed or oversized message; `status` is the RTSP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class Headers:
    """An immutable, ordered, case-insensitive multi-map of header fields."""

    __slots__ = ("_index", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items = tuple((str(k), str(v)) for k, v in items)
        self._index: dict[str, list[str]] = {}
        for name, value in self._items:
            self._index.setdefault(name.lower(), []).append(value)

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._index.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        return list(self._index.get(name.lower(), ()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"


def _check_field(text: str) -> None:
    # Refuses header injection: a value with CR/LF would start a new header or message.
    if _BAD_VALUE.search(text):
        raise ValueError(f"control character in header field {text!r}")


def _head(start: str, headers: Iterable[tuple[str, str]], body: bytes) -> bytes:
    lines = [start]
    has_length = False
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        _check_field(value)
        has_length = has_length or name.lower() == "content-length"
        lines.append(f"{name}: {value}")
    if body and not has_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass(frozen=True)
class RtspRequest:
    method: str
    uri: str
    version: str = "RTSP/1.0"
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def cseq(self) -> str | None:
        return self.headers.get("CSeq")

    @property
    def is_tunnel_post(self) -> bool:
        """The POST half of an HTTP tunnel: what follows its head is base64 RTSP."""
        content_type = self.headers.get("Content-Type", "") or ""
        return (
            self.method == "POST"
            and self.version.startswith("HTTP/")
            and content_type.lower().startswith(TUNNEL_CONTENT_TYPE)
        )

    def to_bytes(self) -> bytes:
        """Serialises; adds Content-Length when there is a body and none is given."""
        if not _TOKEN.fullmatch(self.method) or not _URI.fullmatch(self.uri):
            raise ValueError(f"invalid request line {self.method!r} {self.uri!r}")
        if not _VERSION.fullmatch(self.version):
            raise ValueError(f"invalid version {self.version!r}")
        return _head(f"{self.method} {self.uri} {self.version}", self.headers, self.body)


@dataclass(frozen=True)
class RtspResponse:
    status: int
    reason: str = ""  # empty: the RFC 2326 phrase for `status`
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    version: str = "RTSP/1.0"

    def __post_init__(self) -> None:
        if not self.reason:
            object.__setattr__(self, "reason", REASONS.get(self.status, "Unknown"))

    def to_bytes(self) -> bytes:
        if not 100 <= self.status <= 999:
            raise ValueError(f"invalid status {self.status}")
        _check_field(self.reason)
        return _head(f"{self.version} {self.status} {self.reason}", self.headers, self.body)


def response(
    request: RtspRequest | None,
    status: int,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> RtspResponse:
    """A response that echoes the request's CSeq (first, as clients expect) and names us."""
    fields: list[tuple[str, str]] = []
    if request is not None and request.cseq is not None:
        fields.append(("CSeq", request.cseq))
    fields.append(("Server", "vcam"))
    fields.extend(headers)
    return RtspResponse(status, headers=fields, body=body)


@dataclass(frozen=True)
class InterleavedFrame:
    """RTP/RTCP over the RTSP connection (RFC 2326 §10.12)."""

    channel: int
    payload: bytes


def interleaved(channel: int, payload: bytes) -> bytes:
    if not 0 <= channel <= 255 or len(payload) > 0xFFFF:
        raise ValueError("interleaved channel must be 0..255 and payload at most 65535 bytes")
    return b"$" + bytes((channel,)) + len(payload).to_bytes(2, "big") + payload


@dataclass(frozen=True)
class Limits:
    max_line: int = 4096  # request line or one header line, without its line ending
    max_headers: int = 64
    max_body: int = 65536  # Content-Length; also the undrained tunnel data
    max_interleaved: int = 65535  # interleaved payload (the 16-bit length allows 65535)


Event = RtspRequest | InterleavedFrame
_START, _HEAD, _BODY, _TUNNEL, _CLOSED = range(5)


class RequestParser:
    """Incremental request parser for one connection. Not thread-safe."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._buf = bytearray()
        self._state = _START
        self._scan = 0  # bytes of the current line already searched for a newline
        self._start: tuple[str, str, str] | None = None
        self._fields: list[tuple[str, str]] = []
        self._need = 0
        self._error: ProtocolError | None = None

    @property
    def closed(self) -> bool:
        return self._state == _CLOSED

    @property
    def tunnelled(self) -> bool:
        return self._state == _TUNNEL

    @property
    def buffered(self) -> int:
        """Bytes held; never more than the limits allow (plus one line ending)."""
        return len(self._buf)

    def take_tunnel_data(self) -> bytes:
        """After a tunnel POST: the raw (base64) bytes received so far."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def feed(self, data: bytes) -> list[Event]:
        if self._error is not None:
            raise self._error
        self._buf += data
        if self._state == _TUNNEL:
            if len(self._buf) > self.limits.max_body:
                self._fail(413, "tunnel data not drained")
            return []
        events: list[Event] = []
        try:
            while True:
                event = self._next()
                if event is None:
                    break
                events.append(event)
                if self._state == _TUNNEL:
                    break
        except ProtocolError as exc:
            self._fail(exc.status, exc.reason)
        return events

    def _fail(self, status: int, reason: str) -> None:
        self._error = ProtocolError(status, reason)
        self._state = _CLOSED
        self._buf = bytearray()
        raise self._error

    def _next(self) -> Event | None:
        buf = self._buf
        if self._state == _START:
            skip = 0
            while skip < len(buf) and buf[skip] in b"\r\n":
                skip += 1
            del buf[:skip]
            if not buf:
                return None
            if buf[0] == 0x24:  # "$"
                return self._frame()
            self._state, self._start, self._fields, self._scan = _HEAD, None, [], 0
        if self._state == _HEAD:
            while self._state == _HEAD:
                line = self._line()
                if line is None:
                    return None
                if line:
                    self._field(line)
                elif self._start is not None:
                    return self._end_of_head()
        if self._state == _BODY:
            if len(buf) < self._need:
                return None
            body = bytes(buf[: self._need])
            del buf[: self._need]
            return self._request(body)
        return None

    def _frame(self) -> InterleavedFrame | None:
        buf = self._buf
        if len(buf) < 4:
            return None
        size = int.from_bytes(buf[2:4], "big")
        if size > self.limits.max_interleaved:
            raise ProtocolError(413, f"interleaved frame of {size} bytes")
        if len(buf) < 4 + size:
            return None
        frame = InterleavedFrame(buf[1], bytes(buf[4 : 4 + size]))
        del buf[: 4 + size]
        return frame

    def _line(self) -> str | None:
        buf = self._buf
        end = buf.find(b"\n", self._scan)
        if end < 0:
            self._scan = len(buf)
            if len(buf) > self.limits.max_line + 1:  # +1: a CR may still be followed by LF
                self._too_long()
            return None
        raw = buf[:end]
        del buf[: end + 1]
        self._scan = 0
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if len(raw) > self.limits.max_line:
            self._too_long()
        return raw.decode("latin-1")

    def _too_long(self) -> None:
        if self._start is None:
            raise ProtocolError(414, "request line too long")
        raise ProtocolError(400, "header line too long")

    def _field(self, line: str) -> None:
        if self._start is None:
            self._start = _request_line(line)
            return
        if line[0] in " \t":
            raise ProtocolError(400, "folded header line")
        if len(self._fields) >= self.limits.max_headers:
            raise ProtocolError(400, "too many header fields")
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise ProtocolError(400, "malformed header field")
        value = value.strip(" \t")
        if _BAD_VALUE.search(value):
            raise ProtocolError(400, "control character in header value")
        self._fields.append((name, value))

    def _end_of_head(self) -> Event | None:
        headers = Headers(self._fields)
        assert self._start is not None
        method, uri, version = self._start
        if RtspRequest(method, uri, version, headers).is_tunnel_post:
            self._state = _TUNNEL  # Content-Length (often 32767) is nominal here
            return self._request(b"")
        if "transfer-encoding" in headers:
            raise ProtocolError(400, "Transfer-Encoding not supported")
        lengths = set(headers.get_all("Content-Length"))
        if len(lengths) > 1:
            raise ProtocolError(400, "conflicting Content-Length")
        self._need = 0
        if lengths:
            text = lengths.pop()
            # Length check before int(): Python refuses int() of very long digit strings.
            if not text.isascii() or not text.isdigit() or len(text) > 18:
                raise ProtocolError(400, "invalid Content-Length")
            self._need = int(text)
            if self._need > self.limits.max_body:
                raise ProtocolError(413, f"body of {self._need} bytes")
        self._state = _BODY
        return self._next()

    def _request(self, body: bytes) -> RtspRequest:
        assert self._start is not None
        method, uri, version = self._start
        if self._state != _TUNNEL:
            self._state = _START
        return RtspRequest(method, uri, version, Headers(self._fields), body)


def _request_line(line: str) -> tuple[str, str, str]:
    parts = line.split(" ")
    if len(parts) != 3:
        raise ProtocolError(400, "malformed request line")
    method, uri, version = parts
    if not _TOKEN.fullmatch(method) or not _URI.fullmatch(uri):
        raise ProtocolError(400, "malformed request line")
    if version not in VERSIONS:
        if _VERSION.fullmatch(version):
            raise ProtocolError(505, f"unsupported version {version}")
        raise ProtocolError(400, "malformed request line")
    return method, uri, version


# -- request URIs -----------------------------------------------------------------------------

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")


def split_uri(uri: str) -> tuple[str, str]:
    """(path, query) of `*`, an absolute path or an absolute rtsp:// URL; never raises."""
    if uri == "*":
        return "*", ""
    match = _SCHEME.match(uri)
    if match:
        rest = uri[match.end() :]
        cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        uri = rest[cut:]
    uri = uri.split("#", 1)[0]
    path, _, query = uri.partition("?")
    if not path.startswith("/"):
        path = "/" + path
    return path, query


# -- Transport (RFC 2326 §12.39) --------------------------------------------------------------

_PROFILE = re.compile(r"[A-Za-z0-9.\-]+/[A-Za-z0-9.\-]+(/[A-Za-z0-9.\-]+)?")
_KNOWN = frozenset(
    {"interleaved", "client_port", "server_port", "port", "destination", "source", "ttl", "ssrc"}
)


@dataclass(frozen=True)
class TransportSpec:
    """One Transport alternative. Single ports/channels `n` are read as the pair (n, n+1)."""

    profile: str = "RTP/AVP"  # "RTP/AVP" (UDP) or "RTP/AVP/TCP"; others kept as sent
    multicast: bool = False  # absent means unicast, as live555 and gortsplib read it
    interleaved: tuple[int, int] | None = None
    client_port: tuple[int, int] | None = None
    server_port: tuple[int, int] | None = None
    destination: str | None = None  # "" for a bare `destination`
    source: str | None = None
    port: tuple[int, int] | None = None
    ttl: int | None = None
    ssrc: str | None = None
    mode: str | None = None  # unquoted, e.g. "PLAY"
    extra: tuple[tuple[str, str | None], ...] = ()  # unknown parameters, raw, in order


def _split(text: str, sep: str) -> list[str]:
    """Splits on `sep` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quoted:
        raise ProtocolError(461, "unterminated quote in Transport")
    parts.append("".join(current))
    return parts


def _pair(value: str | None, high: int) -> tuple[int, int]:
    if value is None:
        raise ProtocolError(461, "missing value in Transport")
    first, dash, second = value.partition("-")
    nums = [first, second] if dash else [first]
    if not all(n.isascii() and n.isdigit() and len(n) <= 5 for n in nums):
        raise ProtocolError(461, f"invalid range {value!r} in Transport")
    a = int(first)
    b = int(second) if dash else a + 1
    if a > high or b > high:
        raise ProtocolError(461, f"out of range value {value!r} in Transport")
    return a, b


def _transport_spec(text: str) -> TransportSpec:
    params = [p.strip() for p in _split(text, ";")]
    profile = params[0].upper()
    if not _PROFILE.fullmatch(profile):
        raise ProtocolError(461, f"invalid transport {params[0]!r}")
    if profile == "RTP/AVP/UDP":
        profile = "RTP/AVP"
    values: dict[str, object] = {"profile": profile}
    extra: list[tuple[str, str | None]] = []
    for param in params[1:]:
        if not param:
            continue
        name, eq, raw = param.partition("=")
        key = name.strip().lower()
        value = raw.strip().strip('"') if eq else None
        if key in ("unicast", "multicast") and value is None:
            values["multicast"] = key == "multicast"
            continue
        if key == "mode":
            key, value = "mode", value or ""
        elif key not in _KNOWN:
            if not _TOKEN.fullmatch(name.strip()):
                raise ProtocolError(461, f"invalid Transport parameter {param!r}")
            extra.append((name.strip(), raw.strip() if eq else None))  # quotes kept
            continue
        if key in values:
            raise ProtocolError(461, f"repeated Transport parameter {key}")
        values[key] = _transport_value(key, value)
    return TransportSpec(**values, extra=tuple(extra))  # type: ignore[arg-type]


def _transport_value(key: str, value: str | None) -> object:
    if key == "interleaved":
        return _pair(value, 255)
    if key in ("client_port", "server_port", "port"):
        return _pair(value, 65535)
    if key == "ttl":
        if value is None or not value.isascii() or not value.isdigit() or int(value[:4]) > 255:
            raise ProtocolError(461, "invalid ttl in Transport")
        return int(value)
    if key == "ssrc":
        if value is None or not re.fullmatch(r"[0-9A-Fa-f]{1,8}", value):
            raise ProtocolError(461, "invalid ssrc in Transport")
        return value
    if key in ("destination", "source"):
        if value is not None and not _URI.fullmatch(value):
            raise ProtocolError(461, f"invalid {key} in Transport")
        return "" if value is None else value
    return value  # mode


def parse_transport(value: str) -> list[TransportSpec]:
    """All alternatives of a Transport header, in the client's order of preference."""
    specs = [_transport_spec(part) for part in _split(value, ",") if part.strip()]
    if not specs:
        raise ProtocolError(461, "empty Transport")
    return specs


def format_transport(spec: TransportSpec) -> str:
    parts = [spec.profile, "multicast" if spec.multicast else "unicast"]
    for key in ("destination", "source"):
        text = getattr(spec, key)
        if text is not None:
            parts.append(f"{key}={text}" if text else key)
    for key in ("interleaved", "client_port", "server_port", "port"):
        pair = getattr(spec, key)
        if pair is not None:
            parts.append(f"{key}={pair[0]}-{pair[1]}")
    if spec.ttl is not None:
        parts.append(f"ttl={spec.ttl}")
    if spec.ssrc is not None:
        parts.append(f"ssrc={spec.ssrc}")
    if spec.mode is not None:
        parts.append(f'mode="{spec.mode}"' if "," in spec.mode else f"mode={spec.mode}")
    parts.extend(name if value is None else f"{name}={value}" for name, value in spec.extra)
    return ";".join(parts)


# -- Session and Range ------------------------------------------------------------------------

_SESSION_ID = re.compile(r"[A-Za-z0-9$\-_.+]{1,128}")


def parse_session(value: str) -> tuple[str, int | None]:
    """`id;timeout=60` -> ("id", 60); other parameters are ignored."""
    sid, *params = (p.strip() for p in value.split(";"))
    if not _SESSION_ID.fullmatch(sid):
        raise ProtocolError(454, "invalid session id")
    timeout: int | None = None
    for param in params:
        name, _, raw = param.partition("=")
        if name.strip().lower() == "timeout":
            raw = raw.strip()
            if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
                raise ProtocolError(400, "invalid session timeout")
            timeout = int(raw)
    return sid, timeout


@dataclass(frozen=True)
class Range:
    """A Range header. `unit` "npt": seconds; "clock": POSIX seconds (UTC).

    `start` None with `now` False means the start was omitted (`npt=-20`)."""

    unit: str
    start: float | None
    end: float | None
    now: bool = False


_NPT = re.compile(r"(?:(\d{1,9}):([0-5]?\d):([0-5]?\d)(\.\d*)?|(\d{1,12})(\.\d*)?)")
_CLOCK = re.compile(r"(\d{8}T\d{6})(\.\d{1,9})?Z")


def _npt(text: str) -> float:
    m = _NPT.fullmatch(text)
    if not m:
        raise ProtocolError(457, f"invalid npt time {text!r}")
    if m.group(5) is not None:
        return float(m.group(5) + (m.group(6) or "").rstrip("."))
    seconds = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3))
    return seconds + float("0" + (m.group(4) or "").rstrip("."))


def _clock(text: str) -> float:
    m = _CLOCK.fullmatch(text)
    if not m:
        raise ProtocolError(457, f"invalid clock time {text!r}")
    try:
        stamp = datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError as exc:
        raise ProtocolError(457, f"invalid clock time {text!r}") from exc
    return stamp.timestamp() + (float("0" + m.group(2)) if m.group(2) else 0.0)


def parse_range(value: str) -> Range:
    """`npt=0.000-`, `npt=now-`, `npt=10-20`, `npt=1:02:03.5-`, `clock=20240101T000000Z-`."""
    spec = value.split(";", 1)[0].strip()
    unit, eq, span = spec.partition("=")
    unit = unit.strip().lower()
    if not eq or unit not in ("npt", "clock") or span.count("-") != 1:
        raise ProtocolError(457, f"unsupported range {value!r}")
    first, _, second = (s.strip() for s in span.partition("-"))
    if not first and not second:
        raise ProtocolError(457, "empty range")
    convert = _npt if unit == "npt" else _clock
    now = unit == "npt" and first == "now"
    start = None if now or not first else convert(first)
    end = convert(second) if second else None
    if any(t is not None and not math.isfinite(t) for t in (start, end)):
        raise ProtocolError(457, "range out of bounds")
    if start is not None and end is not None and end < start:
        raise ProtocolError(457, "range ends before it starts")
    return Range(unit, start, end, now)
