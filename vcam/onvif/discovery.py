"""WS-Discovery (2005/04) for the ONVIF device: a sans-IO core and an asyncio UDP responder.

The core parses Probes with a hardened parser (no DTD, no entities, no network, size-capped),
matches them against our Types and Scopes, and builds ProbeMatches, Hello and Bye. The responder
answers each matching Probe with one ProbeMatch sent only to the datagram's source address and
port (never to a ReplyTo or any address taken from the message: WS-Discovery is abused for
reflection attacks), rate-limited per source, and sends Hello at start and Bye at stop.

XAddrs: a URL in `DiscoveryDevice.xaddrs` whose host is the wildcard `0.0.0.0` means "the local
address the prober used". The responder replaces it per datagram with the local address that
received it (IP_PKTINFO on Linux), else with the bind address; for Hello/Bye with the source
address of the multicast route. A wildcard URL that cannot be resolved is left out.

ProbeMatches are sent at once (no random APP_MAX_DELAY), once per (source, MessageID): the
retransmissions that SOAP-over-UDP clients send are ignored. With SO_REUSEPORT, two processes
on one port share directed (unicast) probes; multicast probes reach both.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import sys
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from lxml import etree

from vcam.onvif.xmlsafe import HARDENED

log = logging.getLogger(__name__)

NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS_WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
NS_WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
NS_TDS = "http://www.onvif.org/ver10/device/wsdl"
NS_DN = "http://www.onvif.org/ver10/network/wsdl"

ACTION_PROBE = NS_WSD + "/Probe"
ACTION_PROBE_MATCHES = NS_WSD + "/ProbeMatches"
ACTION_HELLO = NS_WSD + "/Hello"
ACTION_BYE = NS_WSD + "/Bye"
TO_DISCOVERY = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
WSA_ANONYMOUS = NS_WSA + "/role/anonymous"

_NS_WSD11 = "http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01"
# Segment-wise URI prefix (also the default when MatchBy is absent), and exact match.
MATCH_BY_PREFIX = frozenset({NS_WSD + "/rfc2396", NS_WSD + "/rfc3986", _NS_WSD11 + "/rfc3986"})
MATCH_BY_STRCMP = frozenset({NS_WSD + "/strcmp0", _NS_WSD11 + "/strcmp0"})

MULTICAST_GROUP = "239.255.255.250"
PORT = 3702
# A Probe is ~1 KiB; UDP over IPv4 carries at most 65,507 bytes.
MAX_DATAGRAM = 64_000
_MAX_MESSAGE_ID = 1024

ONVIF_SCOPE = "onvif://www.onvif.org"


@dataclass(frozen=True, order=True)
class QName:
    """A namespace-resolved XML name."""

    namespace: str
    local: str

    def __str__(self) -> str:
        return f"{{{self.namespace}}}{self.local}"


TDS_DEVICE = QName(NS_TDS, "Device")
DN_NVT = QName(NS_DN, "NetworkVideoTransmitter")
DEVICE_TYPES = frozenset({TDS_DEVICE, DN_NVT})


@dataclass(frozen=True)
class Probe:
    message_id: str
    types: list[QName]
    scopes: list[str]
    scope_match_by: str | None
    reply_to: str | None  # parsed for completeness; never used as a destination
    soap_ns: str = NS_SOAP12  # the reply uses the probe's SOAP version


@dataclass(frozen=True)
class AppSequence:
    instance_id: int  # fixed per responder start, increasing across restarts
    message_number: int  # incremented per message sent


def default_scopes(
    name: str, hardware: str, location: str | None = None, *, profiles: Iterable[str] = "STM"
) -> list[str]:
    """ONVIF scopes; free text is percent-encoded so that it stays one list item."""
    names = {"S": "Streaming", "T": "T", "M": "M", "G": "G"}
    scopes = [f"{ONVIF_SCOPE}/Profile/{names[p]}" for p in profiles]
    scopes.append(f"{ONVIF_SCOPE}/type/video_encoder")
    scopes.append(f"{ONVIF_SCOPE}/name/{quote(name, safe='')}")
    scopes.append(f"{ONVIF_SCOPE}/hardware/{quote(hardware, safe='')}")
    if location:
        scopes.append(f"{ONVIF_SCOPE}/location/{quote(location, safe='/')}")
    return scopes


def endpoint_for(seed: str) -> str:
    """A stable `urn:uuid:` endpoint reference derived from a persistent seed (e.g. a MAC)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "vcam:" + seed).urn


@dataclass(frozen=True)
class DiscoveryDevice:
    endpoint: str  # urn:uuid:..., stable across restarts
    scopes: list[str]
    xaddrs: list[str]  # http://HOST:PORT/onvif/device_service; host 0.0.0.0 = per prober
    metadata_version: int = 1

    def __post_init__(self) -> None:
        if not self.endpoint.startswith("urn:uuid:"):
            raise ValueError(f"endpoint must be a urn:uuid: {self.endpoint!r}")
        for item in [*self.scopes, *self.xaddrs]:
            if not item or any(c.isspace() for c in item):
                raise ValueError(f"scopes and XAddrs are URIs without spaces: {item!r}")
        if not 0 <= self.metadata_version <= 0xFFFFFFFF:
            raise ValueError("metadata_version must be an unsignedInt")


# --- parsing ---------------------------------------------------------------------------------


def _parser() -> etree.XMLParser:
    return etree.XMLParser(collect_ids=False, **HARDENED)


def _text(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    return "".join(el.itertext()).strip()


def _resolve_qnames(el: etree._Element) -> list[QName] | None:
    out = []
    nsmap = el.nsmap
    for token in (el.text or "").split():
        prefix, sep, local = token.rpartition(":")
        ns = nsmap.get(prefix if sep else None)
        if ns is None or not local:
            return None  # undeclared prefix: not a valid QName list
        out.append(QName(ns, local))
    return out


def parse_probe(datagram: bytes) -> Probe | None:
    """The Probe in a datagram, or None for anything else (malformed, DTD, other action...)."""
    if len(datagram) > MAX_DATAGRAM or b"<!DOCTYPE" in datagram or b"<!ENTITY" in datagram:
        return None
    try:
        root = etree.fromstring(datagram, _parser())
    except (etree.XMLSyntaxError, ValueError):
        return None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        return None  # e.g. a UTF-16 DOCTYPE that the byte check cannot see
    soap_ns = etree.QName(root).namespace
    if soap_ns not in (NS_SOAP12, NS_SOAP11) or etree.QName(root).localname != "Envelope":
        return None
    header = root.find(f"{{{soap_ns}}}Header")
    body = root.find(f"{{{soap_ns}}}Body")
    if header is None or body is None:
        return None
    if _text(header.find(f"{{{NS_WSA}}}Action")) != ACTION_PROBE:
        return None
    message_id = _text(header.find(f"{{{NS_WSA}}}MessageID"))
    if not message_id or len(message_id) > _MAX_MESSAGE_ID or any(c.isspace() for c in message_id):
        return None
    children = [c for c in body if isinstance(c.tag, str)]
    if len(children) != 1 or children[0].tag != f"{{{NS_WSD}}}Probe":
        return None
    probe = children[0]
    types: list[QName] = []
    scopes: list[str] = []
    match_by: str | None = None
    types_el = probe.find(f"{{{NS_WSD}}}Types")
    if types_el is not None:
        resolved = _resolve_qnames(types_el)
        if resolved is None:
            return None
        types = resolved
    scopes_el = probe.find(f"{{{NS_WSD}}}Scopes")
    if scopes_el is not None:
        scopes = (scopes_el.text or "").split()
        match_by = (scopes_el.get("MatchBy") or "").strip() or None
    reply_to = _text(header.find(f"{{{NS_WSA}}}ReplyTo/{{{NS_WSA}}}Address"))
    return Probe(message_id, types, scopes, match_by, reply_to or None, soap_ns)


# --- matching --------------------------------------------------------------------------------


def _segments(path: str) -> list[str] | None:
    segs = [unquote(s) for s in path.split("/")]
    while segs and segs[-1] == "":
        segs.pop()
    if "." in segs or ".." in segs:
        return None
    return segs


def scope_matches(wanted: str, have: str, match_by: str | None = None) -> bool:
    """WS-Discovery scope matching: segment-wise RFC 3986 prefix (default) or strcmp0."""
    if match_by in MATCH_BY_STRCMP:
        return wanted == have
    if match_by is not None and match_by not in MATCH_BY_PREFIX:
        return False
    try:
        w, h = urlsplit(wanted), urlsplit(have)
    except ValueError:
        return False
    if w.scheme.lower() != h.scheme.lower() or w.netloc.lower() != h.netloc.lower():
        return False
    ws, hs = _segments(w.path), _segments(h.path)
    if ws is None or hs is None:
        return False
    return hs[: len(ws)] == ws


def matches(probe: Probe, device: DiscoveryDevice) -> bool:
    """Every requested type is one of ours and every requested scope matches one of ours."""
    if any(t not in DEVICE_TYPES for t in probe.types):
        return False
    by = probe.scope_match_by
    if by is not None and by not in MATCH_BY_PREFIX and by not in MATCH_BY_STRCMP:
        return False  # unsupported matching rule
    return all(any(scope_matches(s, mine, by) for mine in device.scopes) for s in probe.scopes)


# --- building --------------------------------------------------------------------------------


def _new_message_id() -> str:
    return uuid.uuid4().urn


def _envelope(
    soap_ns: str,
    action: str,
    to: str,
    app_sequence: AppSequence,
    relates_to: str | None = None,
) -> tuple[etree._Element, etree._Element]:
    nsmap = {"s": soap_ns, "a": NS_WSA, "d": NS_WSD, "tds": NS_TDS, "dn": NS_DN}
    env = etree.Element(f"{{{soap_ns}}}Envelope", nsmap=nsmap)
    header = etree.SubElement(env, f"{{{soap_ns}}}Header")
    etree.SubElement(header, f"{{{NS_WSA}}}MessageID").text = _new_message_id()
    if relates_to is not None:
        etree.SubElement(header, f"{{{NS_WSA}}}RelatesTo").text = relates_to
    etree.SubElement(header, f"{{{NS_WSA}}}To").text = to
    etree.SubElement(header, f"{{{NS_WSA}}}Action").text = action
    etree.SubElement(
        header,
        f"{{{NS_WSD}}}AppSequence",
        InstanceId=str(app_sequence.instance_id & 0xFFFFFFFF),
        MessageNumber=str(app_sequence.message_number & 0xFFFFFFFF),
    )
    body = etree.SubElement(env, f"{{{soap_ns}}}Body")
    return env, body


def _describe(parent: etree._Element, device: DiscoveryDevice, *, full: bool = True) -> None:
    epr = etree.SubElement(parent, f"{{{NS_WSA}}}EndpointReference")
    etree.SubElement(epr, f"{{{NS_WSA}}}Address").text = device.endpoint
    if not full:
        return
    etree.SubElement(parent, f"{{{NS_WSD}}}Types").text = "tds:Device dn:NetworkVideoTransmitter"
    etree.SubElement(parent, f"{{{NS_WSD}}}Scopes").text = " ".join(device.scopes)
    if device.xaddrs:
        etree.SubElement(parent, f"{{{NS_WSD}}}XAddrs").text = " ".join(device.xaddrs)
    etree.SubElement(parent, f"{{{NS_WSD}}}MetadataVersion").text = str(device.metadata_version)


def _serialize(env: etree._Element) -> bytes:
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


def probe_match(device: DiscoveryDevice, probe: Probe, app_sequence: AppSequence) -> bytes:
    """The ProbeMatches answering `probe` (to be sent to the probe's source only)."""
    env, body = _envelope(
        probe.soap_ns, ACTION_PROBE_MATCHES, WSA_ANONYMOUS, app_sequence, probe.message_id
    )
    matches_el = etree.SubElement(body, f"{{{NS_WSD}}}ProbeMatches")
    _describe(etree.SubElement(matches_el, f"{{{NS_WSD}}}ProbeMatch"), device)
    return _serialize(env)


def hello(device: DiscoveryDevice, app_sequence: AppSequence) -> bytes:
    env, body = _envelope(NS_SOAP12, ACTION_HELLO, TO_DISCOVERY, app_sequence)
    _describe(etree.SubElement(body, f"{{{NS_WSD}}}Hello"), device)
    return _serialize(env)


def bye(device: DiscoveryDevice, app_sequence: AppSequence) -> bytes:
    env, body = _envelope(NS_SOAP12, ACTION_BYE, TO_DISCOVERY, app_sequence)
    _describe(etree.SubElement(body, f"{{{NS_WSD}}}Bye"), device, full=False)
    return _serialize(env)


def resolve_xaddrs(xaddrs: Sequence[str], local_host: str | None) -> list[str]:
    """Replace the wildcard host 0.0.0.0 with `local_host`; drop such URLs if it is unknown."""
    out = []
    for url in xaddrs:
        parts = urlsplit(url)
        if parts.hostname != "0.0.0.0":
            out.append(url)
        elif local_host is not None and local_host != "0.0.0.0":
            host = f"[{local_host}]" if ":" in local_host else local_host
            netloc = host if parts.port is None else f"{host}:{parts.port}"
            out.append(urlunsplit(parts._replace(netloc=netloc)))
    return out


# --- responder -------------------------------------------------------------------------------


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class RateLimiter:
    """Token bucket per source address, in a bounded LRU table."""

    rate: float
    burst: float
    max_sources: int = 4096
    _table: OrderedDict[str, _Bucket] = field(default_factory=OrderedDict)

    def allow(self, source: str, now: float) -> bool:
        bucket = self._table.pop(source, None)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
            while len(self._table) >= self.max_sources:
                self._table.popitem(last=False)  # least recently seen
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        self._table[source] = bucket
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return True
        return False


# Linux values; Python 3.11 does not export these.
_IP_PKTINFO: int | None = getattr(
    socket, "IP_PKTINFO", 8 if sys.platform.startswith("linux") else None
)
_IP_MULTICAST_ALL: int | None = getattr(
    socket, "IP_MULTICAST_ALL", 49 if sys.platform.startswith("linux") else None
)
_PKTINFO = struct.Struct("@i4s4s")  # ifindex, spec_dst (local address), addr (header dst)
_RECENT_IDS = 1024
_BATCH = 64


class DiscoveryResponder:
    """WS-Discovery target service on UDP. Run inside one asyncio loop."""

    def __init__(
        self,
        device_provider: Callable[[], DiscoveryDevice | None],
        *,
        bind: str = "0.0.0.0",
        port: int = PORT,
        multicast_group: str = MULTICAST_GROUP,
        join_multicast: bool = True,
        rate_limit_per_s: float = 10,
        burst: float | None = None,
    ) -> None:
        if ipaddress.ip_address(bind).version != 4:
            raise ValueError("WS-Discovery responder is IPv4 only")
        self._provider = device_provider
        self._bind = bind
        self._port = port
        self._group = multicast_group
        self._join = join_multicast
        self._limiter = RateLimiter(rate_limit_per_s, rate_limit_per_s if burst is None else burst)
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._instance_id = 0
        self._message_number = 0
        self._recent: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.replies_sent = 0
        self.dropped = 0

    @property
    def port(self) -> int:
        """The bound port (useful with port=0)."""
        if self._sock is None:
            return self._port
        return int(self._sock.getsockname()[1])

    def _next_sequence(self) -> AppSequence:
        self._message_number += 1
        return AppSequence(self._instance_id, self._message_number)

    async def start(self) -> None:
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if _IP_PKTINFO is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
            if self._join:
                # Multicast arrives only on a wildcard-bound socket; unicast to other local
                # addresses is filtered by destination in _handle when bound to one address.
                sock.bind(("0.0.0.0", self._port))
                iface = socket.inet_aton(self._bind)
                mreq = socket.inet_aton(self._group) + iface
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, iface)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
                if _IP_MULTICAST_ALL is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
            else:
                sock.bind((self._bind, self._port))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._instance_id = int(time.time()) & 0xFFFFFFFF
        self._message_number = 0
        self._loop.add_reader(sock.fileno(), self._on_readable)
        if self._join:
            self._announce(hello)

    async def stop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(sock.fileno())
        if self._join:
            self._announce(bye, sock)
        sock.close()

    def _announce(
        self,
        build: Callable[[DiscoveryDevice, AppSequence], bytes],
        sock: socket.socket | None = None,
    ) -> None:
        sock = sock or self._sock
        if sock is None:
            return
        try:
            device = self._provider()
            if device is None:
                return  # NonDiscoverable: no Hello, no Bye
            host = self._bind if self._bind != "0.0.0.0" else self._route_source()
            device = _with_xaddrs(device, resolve_xaddrs(device.xaddrs, host))
            sock.sendto(build(device, self._next_sequence()), (self._group, self._port))
        except Exception:
            log.warning("WS-Discovery: could not send %s", build.__name__, exc_info=True)

    def _route_source(self) -> str | None:
        # The source address the kernel picks for the group: connect() sends nothing.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect((self._group, self._port))
                return str(probe.getsockname()[0])
            except OSError:
                return None

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(_BATCH):
            try:
                data, ancdata, flags, source = sock.recvmsg(MAX_DATAGRAM + 1, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                log.debug("WS-Discovery: recvmsg failed", exc_info=True)
                return
            try:
                self._handle(sock, data, ancdata, flags, source)
            except Exception:  # never out of the handler
                self.dropped += 1
                log.debug("WS-Discovery: datagram from %s dropped", source, exc_info=True)

    def _handle(
        self,
        sock: socket.socket,
        data: bytes,
        ancdata: list[tuple[int, int, bytes]],
        flags: int,
        source: tuple[str, int],
    ) -> None:
        local: str | None = None
        header_dst: str | None = None
        for level, kind, payload in ancdata:
            if level == socket.IPPROTO_IP and kind == _IP_PKTINFO and len(payload) >= 12:
                _, spec_dst, addr = _PKTINFO.unpack_from(payload)
                local, header_dst = socket.inet_ntoa(spec_dst), socket.inet_ntoa(addr)
        wrong_dst = header_dst not in (None, self._group, self._bind)
        if self._join and self._bind != "0.0.0.0" and wrong_dst:
            self.dropped += 1
            return  # unicast to another local address than the one we serve
        if flags & socket.MSG_TRUNC or len(data) > MAX_DATAGRAM or source[1] == 0:
            self.dropped += 1
            return
        if not self._limiter.allow(source[0], time.monotonic()):
            self.dropped += 1
            return
        probe = parse_probe(data)
        if probe is None:
            self.dropped += 1
            return
        key = (source[0], probe.message_id)
        if key in self._recent:
            return  # SOAP-over-UDP retransmission
        device = self._provider()
        self._recent[key] = None
        if len(self._recent) > _RECENT_IDS:
            self._recent.popitem(last=False)
        if device is None or not matches(probe, device):
            return  # NonDiscoverable, or not what the probe looks for
        if local is None and self._bind != "0.0.0.0":
            local = self._bind
        device = _with_xaddrs(device, resolve_xaddrs(device.xaddrs, local))
        reply = probe_match(device, probe, self._next_sequence())
        try:
            sock.sendto(reply, source)  # the datagram's source, never an address from the XML
            self.replies_sent += 1
        except OSError:
            log.debug("WS-Discovery: reply to %s failed", source, exc_info=True)


def _with_xaddrs(device: DiscoveryDevice, xaddrs: list[str]) -> DiscoveryDevice:
    if xaddrs == device.xaddrs:
        return device
    return DiscoveryDevice(device.endpoint, device.scopes, xaddrs, device.metadata_version)
