"""WS-Discovery: the sans-IO core, the UDP responder on loopback with captured-like probes and
the real `WSDiscovery` client (PyPI), junk and rate limiting, and Hello/Bye over multicast in a
network namespace of its own (`unshare -n`: no multicast packet leaves this machine; needs root,
like the RTSP multicast test, and fails on purpose without it).

Replies are validated against wsdl/external/ws-discovery.xsd. Its import of the 2004/08
WS-Addressing schema is served, in memory, from wsdl/external/ws-addr.xsd (the W3C 2005/08
schema) with the namespace rewritten: the elements we emit (EndpointReference/Address,
MessageID, RelatesTo, To, Action) have the same structure in both versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lxml import etree
from wsdiscovery import QName as WsdQName
from wsdiscovery import Scope as WsdScope
from wsdiscovery import threaded as wsd_threaded
from wsdiscovery.discovery import ThreadedWSDiscovery

from vcam.onvif.discovery import (
    ACTION_BYE,
    ACTION_HELLO,
    ACTION_PROBE_MATCHES,
    DN_NVT,
    MAX_DATAGRAM,
    NS_DN,
    NS_SOAP12,
    NS_TDS,
    NS_WSA,
    NS_WSD,
    TDS_DEVICE,
    TO_DISCOVERY,
    WSA_ANONYMOUS,
    AppSequence,
    DiscoveryDevice,
    DiscoveryResponder,
    Probe,
    QName,
    RateLimiter,
    bye,
    default_scopes,
    endpoint_for,
    hello,
    matches,
    parse_probe,
    probe_match,
    resolve_xaddrs,
    scope_matches,
)

from .netns import multicast_loopback, run_in_netns

ROOT = Path(__file__).resolve().parents[1]
EXTERNAL = ROOT / "wsdl" / "external"
HOST = "127.0.0.1"
STREAMING = "onvif://www.onvif.org/Profile/Streaming"
WSA_2004 = b"http://schemas.xmlsoap.org/ws/2004/08/addressing"
NS = {"s": NS_SOAP12, "a": NS_WSA, "d": NS_WSD}


# -- schemas ----------------------------------------------------------------------------------


class _LocalSchemas(etree.Resolver):
    def resolve(self, url: str, pubid: str, context: object) -> object:
        if url == WSA_2004.decode():
            xsd = (EXTERNAL / "ws-addr.xsd").read_bytes()
            xsd = xsd.replace(b"http://www.w3.org/2005/08/addressing", WSA_2004)
            return self.resolve_string(xsd, context)
        raise AssertionError(f"schema not available offline: {url}")


def _schema(name: str) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_LocalSchemas())
    path = EXTERNAL / name
    return etree.XMLSchema(etree.fromstring(path.read_bytes(), parser, base_url=path.as_uri()))


WSD_SCHEMA = _schema("ws-discovery.xsd")
WSA_SCHEMA = etree.XMLSchema(
    etree.fromstring(
        (EXTERNAL / "ws-addr.xsd")
        .read_bytes()
        .replace(b"http://www.w3.org/2005/08/addressing", WSA_2004)
    )
)


def validated(message: bytes, action: str) -> etree._Element:
    """Parses a message we sent and validates its WS-Discovery and WS-Addressing parts."""
    root = etree.fromstring(message)
    assert root.tag == f"{{{NS_SOAP12}}}Envelope"
    header, body = root.find("s:Header", NS), root.find("s:Body", NS)
    assert header is not None and body is not None
    assert header.findtext("a:Action", namespaces=NS) == action
    for el in header:
        schema = WSA_SCHEMA if el.tag.startswith(f"{{{NS_WSA}}}") else WSD_SCHEMA
        assert schema.validate(el), (el.tag, schema.error_log)
    assert header.find("d:AppSequence", NS) is not None
    (payload,) = list(body)
    assert WSD_SCHEMA.validate(payload), WSD_SCHEMA.error_log
    return root


# -- fixtures: captured-like probes -----------------------------------------------------------


def ha_probe(mid: str) -> bytes:
    """Home Assistant (python WSDiscovery, no Types: filters on Profile/Streaming itself)."""
    return (
        '<?xml version="1.0" ?><s:Envelope xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/'
        'addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" '
        'xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header>'
        "<a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>"
        f"<a:MessageID>{mid}</a:MessageID>"
        "<a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To></s:Header>"
        "<s:Body><d:Probe/></s:Body></s:Envelope>"
    ).encode()


def npm_probe(mid: str, prefix: str = "dn") -> bytes:
    """npm `onvif`: default namespaces, the type prefix declared on the Envelope."""
    wsa = 'xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing"'
    return (
        '<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope" '
        f'xmlns:{prefix}="http://www.onvif.org/ver10/network/wsdl"><Header>'
        f"<wsa:MessageID {wsa}>{mid}</wsa:MessageID>"
        f"<wsa:To {wsa}>urn:schemas-xmlsoap-org:ws:2005:04:discovery</wsa:To>"
        f"<wsa:Action {wsa}>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</wsa:Action>"
        '</Header><Body><Probe xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns="http://schemas.xmlsoap.org/ws/2005/04/discovery">'
        f"<Types>{prefix}:NetworkVideoTransmitter</Types><Scopes /></Probe></Body></Envelope>"
    ).encode()


def go2rtc_probe(mid: str) -> bytes:
    """go2rtc: empty Types and Scopes, pretty-printed."""
    return f"""<?xml version="1.0" ?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
  xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing">
  <s:Header>
    <a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>
    <a:MessageID>{mid}</a:MessageID>
    <a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>
  </s:Header>
  <s:Body>
    <d:Probe xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery">
      <d:Types />
      <d:Scopes />
    </d:Probe>
  </s:Body>
</s:Envelope>
""".encode()


def custom_probe(
    mid: str, types: str = "", scopes: str | None = None, match_by: str | None = None
) -> bytes:
    by = f' MatchBy="{match_by}"' if match_by else ""
    sc = f"<d:Scopes{by}>{scopes}</d:Scopes>" if scopes is not None else ""
    return (
        f'<s:Envelope xmlns:s="{NS_SOAP12}" xmlns:a="{NS_WSA}" xmlns:d="{NS_WSD}" '
        f'xmlns:x="{NS_TDS}" xmlns:y="{NS_DN}"><s:Header>'
        f"<a:Action>{NS_WSD}/Probe</a:Action><a:MessageID>{mid}</a:MessageID>"
        f"<a:To>{TO_DISCOVERY}</a:To></s:Header>"
        f"<s:Body><d:Probe><d:Types>{types}</d:Types>{sc}</d:Probe></s:Body></s:Envelope>"
    ).encode()


def new_id() -> str:
    return uuid.uuid4().urn


JUNK = [
    b"\x00\x01\x02\x03\x04",  # a 5-byte reflection "probe"
    b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    b"<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]>"
    + ha_probe("&lol2;").split(b"?>", 1)[1],
    b'<!DOCTYPE x SYSTEM "http://127.0.0.1:1/evil.dtd">' + ha_probe(new_id()),
    ("<?xml version='1.0' encoding='UTF-16'?><!DOCTYPE x [<!ENTITY e 'e'>]>").encode("utf-16")
    + ha_probe(new_id()).split(b"?>", 1)[1].decode().encode("utf-16")[2:],
    ha_probe(new_id()).replace(b"discovery/Probe<", b"discovery/Hello<"),
    ha_probe(new_id())
    .replace(b"<a:MessageID>", b"<a:Foo>")
    .replace(b"</a:MessageID>", b"</a:Foo>"),
    ha_probe(new_id()).replace(b"<d:Probe/>", b"<d:Resolve/>"),
    custom_probe(new_id(), types="zz:Device"),  # undeclared prefix
    ha_probe(new_id())[:-20],  # truncated
    ha_probe(new_id()).replace(b"<s:Body>", b"<s:Body><!--" + b"x" * 65_000 + b"-->"),
]


# -- sans-IO ----------------------------------------------------------------------------------


@pytest.fixture
def device() -> DiscoveryDevice:
    return DiscoveryDevice(
        endpoint=endpoint_for("02:00:00:00:00:01"),
        scopes=default_scopes("Front door", "vcam", "hall/1"),
        xaddrs=["http://127.0.0.1:8080/onvif/device_service"],
        metadata_version=3,
    )


def test_parse_captured_like_probes() -> None:
    ha = parse_probe(ha_probe("urn:uuid:1"))
    assert ha == Probe("urn:uuid:1", [], [], None, None)
    npm = parse_probe(npm_probe("urn:uuid:2", prefix="dp0"))
    assert npm is not None and npm.types == [DN_NVT] and npm.scopes == []
    go = parse_probe(go2rtc_probe("uuid:3"))
    assert go is not None and go.message_id == "uuid:3" and go.types == [] and go.scopes == []
    custom = parse_probe(
        custom_probe("m", "x:Device  y:NetworkVideoTransmitter", f" {STREAMING}\n ", "urn:x")
    )
    assert custom is not None
    assert custom.types == [TDS_DEVICE, DN_NVT] and custom.scopes == [STREAMING]
    assert custom.scope_match_by == "urn:x"


def test_parse_keeps_reply_to_but_rejects_junk() -> None:
    with_reply_to = ha_probe("m").replace(
        b"</s:Header>",
        b"<a:ReplyTo><a:Address>soap.udp://10.9.9.9:9</a:Address></a:ReplyTo></s:Header>",
    )
    probe = parse_probe(with_reply_to)
    assert probe is not None and probe.reply_to == "soap.udp://10.9.9.9:9"
    for junk in JUNK:
        assert parse_probe(junk) is None, junk[:80]
    assert parse_probe(ha_probe("a" * 2000)) is None  # MessageID bounded
    assert parse_probe(b"") is None
    assert len(JUNK[-1]) > MAX_DATAGRAM


def test_matching_types_and_scopes(device: DiscoveryDevice) -> None:
    def probe(types: list[QName], scopes: list[str], by: str | None = None) -> Probe:
        return Probe("m", types, scopes, by, None)

    assert matches(probe([], []), device)
    assert matches(probe([DN_NVT], []), device)
    assert matches(probe([TDS_DEVICE, DN_NVT], [STREAMING]), device)
    assert not matches(probe([QName(NS_DN, "Device")], []), device)  # namespace matters
    assert not matches(probe([QName("urn:other", "NetworkVideoTransmitter")], []), device)
    assert matches(probe([], ["onvif://www.onvif.org/Profile"]), device)
    assert matches(probe([], ["ONVIF://WWW.onvif.org/Profile/"]), device)
    assert matches(probe([], ["onvif://www.onvif.org/name/Front%20door"]), device)
    assert matches(probe([], ["onvif://www.onvif.org/location/hall"]), device)
    assert not matches(probe([], ["onvif://www.onvif.org/Prof"]), device)  # segment-wise
    assert not matches(probe([], ["onvif://www.onvif.org/profile/Streaming"]), device)
    assert not matches(probe([], [STREAMING, "onvif://www.onvif.org/Profile/Q"]), device)
    assert not matches(probe([], ["onvif://www.onvif.org/Profile/../type"]), device)
    strcmp = NS_WSD + "/strcmp0"
    assert matches(probe([], [STREAMING], strcmp), device)
    assert not matches(probe([], ["onvif://www.onvif.org/Profile"], strcmp), device)
    assert matches(probe([], ["onvif://www.onvif.org/Profile"], NS_WSD + "/rfc2396"), device)
    assert not matches(probe([], [STREAMING], NS_WSD + "/ldap"), device)  # unsupported
    assert not matches(probe([], [], "urn:unknown"), device)
    assert not scope_matches("onvif://[bad", STREAMING)


def test_probe_match_hello_bye_are_valid(device: DiscoveryDevice) -> None:
    probe = parse_probe(npm_probe("uuid:abc"))
    assert probe is not None
    reply = validated(probe_match(device, probe, AppSequence(1234, 7)), ACTION_PROBE_MATCHES)
    assert reply.findtext("s:Header/a:RelatesTo", namespaces=NS) == "uuid:abc"
    assert reply.findtext("s:Header/a:To", namespaces=NS) == WSA_ANONYMOUS
    mid = reply.findtext("s:Header/a:MessageID", namespaces=NS)
    assert mid and mid.startswith("urn:uuid:") and mid != "uuid:abc"
    seq = reply.find("s:Header/d:AppSequence", NS)
    assert seq is not None and seq.get("InstanceId") == "1234" and seq.get("MessageNumber") == "7"
    (match,) = reply.findall("s:Body/d:ProbeMatches/d:ProbeMatch", NS)
    assert match.findtext("a:EndpointReference/a:Address", namespaces=NS) == device.endpoint
    types_el = match.find("d:Types", NS)
    assert types_el is not None and types_el.text
    assert {
        QName(types_el.nsmap[p], local)
        for p, local in (t.split(":") for t in types_el.text.split())
    } == {TDS_DEVICE, DN_NVT}
    assert (match.findtext("d:Scopes", namespaces=NS) or "").split() == device.scopes
    assert match.findtext("d:XAddrs", namespaces=NS) == device.xaddrs[0]
    assert match.findtext("d:MetadataVersion", namespaces=NS) == "3"

    h = validated(hello(device, AppSequence(1234, 1)), ACTION_HELLO)
    assert h.findtext("s:Header/a:To", namespaces=NS) == TO_DISCOVERY
    assert h.findtext("s:Body/d:Hello/d:XAddrs", namespaces=NS) == device.xaddrs[0]
    b = validated(bye(device, AppSequence(1234, 2)), ACTION_BYE)
    assert b.findtext("s:Body/d:Bye/a:EndpointReference/a:Address", namespaces=NS) == (
        device.endpoint
    )
    # A SOAP 1.1 probe gets a SOAP 1.1 answer.
    soap11 = parse_probe(
        ha_probe("m").replace(NS_SOAP12.encode(), b"http://schemas.xmlsoap.org/soap/envelope/")
    )
    assert soap11 is not None
    assert b"http://schemas.xmlsoap.org/soap/envelope/" in probe_match(
        device, soap11, AppSequence(1, 1)
    )


def test_device_scopes_and_xaddrs() -> None:
    scopes = default_scopes("My cam", "vcam 1")
    assert scopes[:3] == [
        STREAMING,
        "onvif://www.onvif.org/Profile/T",
        "onvif://www.onvif.org/Profile/M",
    ]
    assert "onvif://www.onvif.org/type/video_encoder" in scopes
    assert "onvif://www.onvif.org/name/My%20cam" in scopes
    assert "onvif://www.onvif.org/hardware/vcam%201" in scopes
    assert endpoint_for("seed") == endpoint_for("seed") != endpoint_for("other")
    with pytest.raises(ValueError):
        DiscoveryDevice("uuid:1", scopes, [])
    with pytest.raises(ValueError):
        DiscoveryDevice(endpoint_for("x"), ["onvif://a b"], [])
    urls = ["http://0.0.0.0:80/onvif/device_service", "http://10.0.0.1/x"]
    assert resolve_xaddrs(urls, "192.168.1.5") == [
        "http://192.168.1.5:80/onvif/device_service",
        "http://10.0.0.1/x",
    ]
    assert resolve_xaddrs(urls, None) == ["http://10.0.0.1/x"]


def test_rate_limiter_is_bounded() -> None:
    limiter = RateLimiter(rate=10, burst=5, max_sources=3)
    assert sum(limiter.allow("a", 0.0) for _ in range(100)) == 5
    assert limiter.allow("a", 0.1)  # one token back after 100 ms
    for i in range(10):
        limiter.allow(f"s{i}", 1.0)
    assert len(limiter._table) == 3


# -- the responder on loopback ----------------------------------------------------------------


@contextlib.contextmanager
def running(responder: DiscoveryResponder) -> Iterator[DiscoveryResponder]:
    """Runs the responder on an event loop in a thread of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(responder.start(), loop).result(5)
        yield responder
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(responder.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@contextlib.contextmanager
def loopback_responder(
    provider: Callable[[], DiscoveryDevice], rate_limit_per_s: float = 10
) -> Iterator[DiscoveryResponder]:
    responder = DiscoveryResponder(
        provider, bind=HOST, port=0, join_multicast=False, rate_limit_per_s=rate_limit_per_s
    )
    with running(responder) as r:
        yield r


@contextlib.contextmanager
def prober() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        yield sock


def receive(sock: socket.socket, seconds: float, until: str | None = None) -> list[bytes]:
    """Datagrams received within `seconds`; stops early after one relating to `until`."""
    out: list[bytes] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(70_000)
        except TimeoutError:
            break
        out.append(data)
        if until is not None and f">{until}<".encode() in data:
            break
    return out


def relates_to(reply: bytes) -> str | None:
    return etree.fromstring(reply).findtext("s:Header/a:RelatesTo", namespaces=NS)


def test_each_client_style_gets_exactly_one_valid_probe_match(device: DiscoveryDevice) -> None:
    with loopback_responder(lambda: device) as responder, prober() as sock:
        numbers = []
        for make in (ha_probe, npm_probe, go2rtc_probe):
            mid = new_id()
            sock.sendto(make(mid), (HOST, responder.port))
            replies = receive(sock, 5, until=mid)
            replies += receive(sock, 0.2)
            assert len(replies) == 1, make.__name__
            reply = validated(replies[0], ACTION_PROBE_MATCHES)
            assert relates_to(replies[0]) == mid
            seq = reply.find("s:Header/d:AppSequence", NS)
            assert seq is not None
            numbers.append((seq.get("InstanceId"), int(seq.get("MessageNumber") or 0)))
        assert len({i for i, _ in numbers}) == 1
        assert [n for _, n in numbers] == sorted(n for _, n in numbers)
        assert len({n for _, n in numbers}) == 3
        # A retransmission (same MessageID) is answered once; a non-matching probe not at all.
        mid = new_id()
        for _ in range(2):
            sock.sendto(ha_probe(mid), (HOST, responder.port))
        sock.sendto(
            custom_probe(new_id(), scopes="onvif://www.onvif.org/Profile/Q"), (HOST, responder.port)
        )
        assert [relates_to(r) for r in receive(sock, 0.5)] == [mid]


def test_junk_gets_no_reply_and_the_next_probe_is_answered(device: DiscoveryDevice) -> None:
    with loopback_responder(lambda: device) as responder, prober() as sock:
        for junk in JUNK:
            sock.sendto(junk, (HOST, responder.port))
        mid = new_id()
        sock.sendto(ha_probe(mid), (HOST, responder.port))
        replies = receive(sock, 5, until=mid) + receive(sock, 0.2)
        assert [relates_to(r) for r in replies] == [mid]
        assert responder.dropped >= len(JUNK)


def test_reply_goes_to_the_source_never_to_reply_to(device: DiscoveryDevice) -> None:
    with loopback_responder(lambda: device) as responder, prober() as sock, prober() as victim:
        victim_port = victim.getsockname()[1]
        mid = new_id()
        probe = ha_probe(mid).replace(
            b"</s:Header>",
            f"<a:ReplyTo><a:Address>soap.udp://{HOST}:{victim_port}</a:Address></a:ReplyTo>"
            "</s:Header>".encode(),
        )
        sock.sendto(probe, (HOST, responder.port))
        assert [relates_to(r) for r in receive(sock, 5, until=mid)] == [mid]
        assert receive(victim, 0.3) == []


def test_wildcard_xaddrs_become_the_receiving_address() -> None:
    wildcard = DiscoveryDevice(
        endpoint_for("w"), default_scopes("w", "vcam"), ["http://0.0.0.0:8080/onvif/device_service"]
    )
    with loopback_responder(lambda: wildcard) as responder, prober() as sock:
        mid = new_id()
        sock.sendto(ha_probe(mid), (HOST, responder.port))
        (reply,) = receive(sock, 5, until=mid)
        xaddrs = etree.fromstring(reply).findtext(".//d:XAddrs", namespaces=NS)
        assert xaddrs == "http://127.0.0.1:8080/onvif/device_service"


def test_a_failing_provider_does_not_kill_the_responder(device: DiscoveryDevice) -> None:
    calls = {"n": 0}

    def flaky() -> DiscoveryDevice:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("not ready")
        return device

    with loopback_responder(flaky) as responder, prober() as sock:
        sock.sendto(ha_probe(new_id()), (HOST, responder.port))
        assert receive(sock, 0.3) == []
        mid = new_id()
        sock.sendto(ha_probe(mid), (HOST, responder.port))
        assert [relates_to(r) for r in receive(sock, 5, until=mid)] == [mid]


def test_rate_limit_per_source(device: DiscoveryDevice) -> None:
    with loopback_responder(lambda: device, rate_limit_per_s=10) as responder, prober() as sock:
        start = time.monotonic()
        for _ in range(100):
            sock.sendto(ha_probe(new_id()), (HOST, responder.port))
        replies = receive(sock, 1.0)
        elapsed = time.monotonic() - start
        # The bucket (10) plus what refills while we listen.
        assert 1 <= len(replies) <= 10 + int(10 * elapsed) + 1, (len(replies), elapsed)
        assert len(replies) < 30
        assert responder.dropped >= 100 - len(replies) - 10 * elapsed - 1


# -- the real WSDiscovery client --------------------------------------------------------------


@pytest.fixture
def wsd_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedWSDiscovery]:
    """ThreadedWSDiscovery 2.1.2, made fit for a directed probe on loopback: it sends a directed
    probe from a socket it never reads, so that socket is registered for reading; its IPv6
    thread would die sending to an IPv4 address, so it has none; and it joins no multicast
    group on this machine's interfaces (no IGMP leaves the machine)."""

    class V4(wsd_threaded.NetworkingThreadIPv4):
        def start(self) -> None:
            super().start()
            self._selector.register(self._uniOutSocket, selectors.EVENT_READ)

    class NoV6:
        def __init__(self, *args: object) -> None:
            raise OSError("IPv6 not used")

    monkeypatch.setattr(wsd_threaded, "NetworkingThreadIPv4", V4)
    monkeypatch.setattr(wsd_threaded, "NetworkingThreadIPv6", NoV6)
    monkeypatch.setattr(wsd_threaded, "_getNetworkAddrs", lambda version: [])
    client = ThreadedWSDiscovery()
    client.start()
    try:
        yield client
    finally:
        client.stop()


def test_wsdiscovery_client_finds_the_camera(
    device: DiscoveryDevice, wsd_client: ThreadedWSDiscovery
) -> None:
    def search(**kwargs: object) -> list[object]:
        wsd_client.clearRemoteServices()
        return list(
            wsd_client.searchServices(address=HOST, port=responder.port, timeout=0.8, **kwargs)
        )

    with loopback_responder(lambda: device) as responder:
        (found,) = search(scopes=[WsdScope(STREAMING)])
        assert found.getEPR() == device.endpoint  # type: ignore[attr-defined]
        assert found.getXAddrs() == device.xaddrs  # type: ignore[attr-defined]
        assert STREAMING in [s.getValue() for s in found.getScopes()]  # type: ignore[attr-defined]
        types = {(t.getNamespace(), t.getLocalname()) for t in found.getTypes()}  # type: ignore[attr-defined]
        assert types == {(NS_TDS, "Device"), (NS_DN, "NetworkVideoTransmitter")}

        (found,) = search(types=[WsdQName(NS_DN, "NetworkVideoTransmitter")])
        assert found.getEPR() == device.endpoint  # type: ignore[attr-defined]

        sent = responder.replies_sent
        assert search(scopes=[WsdScope("onvif://www.onvif.org/Profile/Q")]) == []
        assert responder.replies_sent == sent  # not matched by us, not just filtered by it
        assert search(types=[WsdQName(NS_DN, "Other")]) == []
        assert responder.replies_sent == sent


# -- multicast: Hello, Probe, Bye in a network namespace --------------------------------------


def multicast_probe() -> dict[str, object]:
    """Runs inside `unshare -n`: loopback with a multicast route, the responder on 3702 joined to
    239.255.255.250, a listener joined to the group, and a multicast Probe."""
    multicast_loopback(src=HOST)  # Hello's XAddrs use the multicast route's source address
    group, port = "239.255.255.250", 3702
    device = DiscoveryDevice(
        endpoint_for("ns"),
        default_scopes("ns", "vcam"),
        ["http://0.0.0.0:8080/onvif/device_service"],
    )
    out: dict[str, object] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener, prober() as sock:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", port))
        mreq = socket.inet_aton(group) + socket.inet_aton(HOST)
        listener.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)

        def heard(action: str) -> list[bytes]:
            got = receive(listener, 3, until=action)
            return [m for m in got if f">{action}<".encode() in m]

        responder = DiscoveryResponder(lambda: device, port=port)
        with running(responder):
            (h,) = heard(ACTION_HELLO)
            validated(h, ACTION_HELLO)
            out["hello_xaddrs"] = etree.fromstring(h).findtext(".//d:XAddrs", namespaces=NS)
            mid = new_id()
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(HOST))
            sock.sendto(npm_probe(mid), (group, port))
            replies = receive(sock, 5, until=mid) + receive(sock, 0.2)
            out["relates_to"] = [relates_to(r) == mid for r in replies]
            for r in replies:
                validated(r, ACTION_PROBE_MATCHES)
            out["match_xaddrs"] = [
                etree.fromstring(r).findtext(".//d:XAddrs", namespaces=NS) for r in replies
            ]
        (b,) = heard(ACTION_BYE)
        validated(b, ACTION_BYE)
        seqs = [etree.fromstring(m).find(".//d:AppSequence", NS) for m in (h, b)]
        out["sequence"] = [
            (s.get("InstanceId"), s.get("MessageNumber")) for s in seqs if s is not None
        ]
    return out


def test_hello_probe_bye_over_multicast_in_a_namespace() -> None:
    out = run_in_netns("tests.test_discovery", "multicast_probe", timeout=60)
    assert out["hello_xaddrs"] == "http://127.0.0.1:8080/onvif/device_service"
    assert out["relates_to"] == [True]
    assert out["match_xaddrs"] == ["http://127.0.0.1:8080/onvif/device_service"]
    (hello_seq, bye_seq) = out["sequence"]
    assert hello_seq[0] == bye_seq[0] and int(hello_seq[1]) < int(bye_seq[1])
