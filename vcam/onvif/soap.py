"""Sans-IO SOAP core: parse a request body, route it by its body element, build responses.

Bytes in, `SoapRequest` or `SoapFault` out; no sockets, so it can be fuzzed. The HTTP layer
(read the whole body first; refuse bodies over `Limits.max_bytes` with 413 before reading) does:

    req = parse_envelope(body, content_type)                    # SoapFault -> fault response
    op, user = dispatcher.resolve(req, lambda: ws.verify(req.header) or http_digest_user)
    children = op.handler(...)                                   # sync or async: the caller's
    return envelope(children, version=req.version, relates_to=req.message_id, action=...)

Routing depends only on the namespace-qualified body element (prefixes and URL paths are
irrelevant: go2rtc posts GetSnapshotUri to the Imaging XAddr, npm onvif uses default namespaces).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeAlias, TypeVar

from lxml import etree
from lxml.builder import ElementMaker

from vcam.auth.users import User, UserLevel
from vcam.onvif import faults
from vcam.onvif.faults import SoapFault
from vcam.onvif.xmlsafe import HARDENED

Element: TypeAlias = etree._Element

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
WSA_2004 = "http://schemas.xmlsoap.org/ws/2004/08/addressing"  # older clients (WS-Discovery era)
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
FAULT_ACTION = "http://www.w3.org/2005/08/addressing/soap/fault"

# Declared once on every response Envelope. Prefixes matter beyond element names: QNames inside
# text and attributes (fault subcodes "ter:NotAuthorized", topics "tns1:VideoSource/...",
# SimpleItemDescription Type="xs:boolean") resolve against these declarations.
NSMAP: dict[str, str] = {
    "env": SOAP12,
    "xs": "http://www.w3.org/2001/XMLSchema",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "wsa": WSA,
    "tt": "http://www.onvif.org/ver10/schema",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tr2": "http://www.onvif.org/ver20/media/wsdl",
    "tev": "http://www.onvif.org/ver10/events/wsdl",
    "timg": "http://www.onvif.org/ver20/imaging/wsdl",
    "tan": "http://www.onvif.org/ver20/analytics/wsdl",
    "tptz": "http://www.onvif.org/ver20/ptz/wsdl",
    "tmd": "http://www.onvif.org/ver10/deviceIO/wsdl",
    "axt": "http://www.onvif.org/ver20/analytics",
    "wsnt": "http://docs.oasis-open.org/wsn/b-2",
    "wstop": "http://docs.oasis-open.org/wsn/t-1",
    "wsrf-bf": "http://docs.oasis-open.org/wsrf/bf-2",
    "wsntw": "http://docs.oasis-open.org/wsn/bw-2",  # WS-BaseNotification fault subcodes
    "wsrf-rw": "http://docs.oasis-open.org/wsrf/rw-2",  # wsrf-rw:ResourceUnknownFault
    "tns1": "http://www.onvif.org/ver10/topics",
    "ter": "http://www.onvif.org/ver10/error",
    "vcam": "urn:vcam:onvif",  # vendor QNames: vcam:QueueMonitor, vcam:PrivacyMasking
}
NS = NSMAP  # alias for lxml find(): el.find("tds:IncludeCapability", NS)

# Terse element makers: TT.Name("x") -> <tt:Name>x</tt:Name>; attributes as keyword arguments.
TT = ElementMaker(namespace=NSMAP["tt"], nsmap={"tt": NSMAP["tt"]})
TDS = ElementMaker(namespace=NSMAP["tds"], nsmap={"tds": NSMAP["tds"]})
TRT = ElementMaker(namespace=NSMAP["trt"], nsmap={"trt": NSMAP["trt"]})
TR2 = ElementMaker(namespace=NSMAP["tr2"], nsmap={"tr2": NSMAP["tr2"]})
TEV = ElementMaker(namespace=NSMAP["tev"], nsmap={"tev": NSMAP["tev"]})
TIMG = ElementMaker(namespace=NSMAP["timg"], nsmap={"timg": NSMAP["timg"]})
TMD = ElementMaker(namespace=NSMAP["tmd"], nsmap={"tmd": NSMAP["tmd"]})
TAN = ElementMaker(namespace=NSMAP["tan"], nsmap={"tan": NSMAP["tan"]})
WSNT = ElementMaker(namespace=NSMAP["wsnt"], nsmap={"wsnt": NSMAP["wsnt"]})
WSA_E = ElementMaker(namespace=WSA, nsmap={"wsa": WSA})


def qname(prefix: str, local: str) -> str:
    """Clark notation for a known prefix: qname("tds", "GetServices") -> "{...}GetServices"."""
    return f"{{{NSMAP[prefix]}}}{local}"


class SoapVersion(StrEnum):
    SOAP11 = SOAP11
    SOAP12 = SOAP12

    @property
    def content_type(self) -> str:
        if self is SoapVersion.SOAP11:
            return "text/xml; charset=utf-8"
        return "application/soap+xml; charset=utf-8"


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 1 << 20
    max_depth: int = 64  # ONVIF requests nest ~20 deep (analytics rules); libxml2 stops at 256
    max_elements: int = 20_000
    chunk: int = 16 * 1024  # fed to the parser per step, so limits stop it early


@dataclass(frozen=True)
class SoapRequest:
    version: SoapVersion
    header: Element | None
    body_element: Element  # the first element child of Body
    operation: etree.QName  # == "{namespace}LocalName"
    action: str | None  # Content-Type action=, SOAPAction, or wsa:Action
    message_id: str | None  # wsa:MessageID, to echo as wsa:RelatesTo


_ACCEPTED_TYPES = frozenset({"application/soap+xml", "application/xml", "text/xml"})
_PARAM = re.compile(r';\s*([A-Za-z0-9_.\-]+)\s*=\s*("[^"]*"|[^;]*)')
# Header blocks we process; any other block marked mustUnderstand for us is a MustUnderstand
# fault (SOAP 1.2 part 1, 5.2.3), as the spec requires.
_UNDERSTOOD = frozenset({WSSE, WSA, WSA_2004})
_NEXT_ROLES = frozenset(
    {
        "",
        "http://www.w3.org/2003/05/soap-envelope/role/next",
        "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver",
        "http://schemas.xmlsoap.org/soap/actor/next",
    }
)


def _content_type_action(content_type: str | None) -> str | None:
    """Checks the media type (raising a 415 fault) and returns its action= parameter, if any."""
    if content_type is None:  # a few embedded clients send none; the body decides
        return None
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime not in _ACCEPTED_TYPES:
        raise faults.unsupported_media_type(content_type)
    for m in _PARAM.finditer(content_type):
        if m.group(1).lower() == "action":
            return m.group(2).strip().strip('"') or None
    return None


def _parser() -> etree.XMLPullParser:
    return etree.XMLPullParser(events=("start", "end"), strip_cdata=True, **HARDENED)


def _parse_xml(body: bytes, limits: Limits) -> Element:
    """The root element, parsed incrementally so that depth/count limits stop the parser early
    (a 100,000-deep document costs one chunk, not a tree)."""
    if len(body) > limits.max_bytes:
        raise faults.too_large(f"body of {len(body)} bytes exceeds {limits.max_bytes}")
    if not body.strip():
        raise faults.well_formed("empty body")
    if b"<!DOCTYPE" in body:  # fast path for ASCII-compatible encodings; docinfo check below
        raise faults.well_formed("DOCTYPE is not allowed")
    parser = _parser()
    depth = count = 0
    try:
        for start in range(0, len(body), limits.chunk):
            parser.feed(body[start : start + limits.chunk])
            for event, element in parser.read_events():
                if event == "end":
                    depth -= 1
                    continue
                depth += 1
                count += 1
                # Any encoding (UTF-16 hides the bytes from the fast path): the DTD is parsed
                # before the root starts, never expanded (resolve_entities=False), and refused.
                if count == 1 and element.getroottree().docinfo.doctype:
                    raise faults.well_formed("DOCTYPE is not allowed")
                if depth > limits.max_depth:
                    raise faults.well_formed(f"nesting deeper than {limits.max_depth}")
                if count > limits.max_elements:
                    raise faults.well_formed(f"more than {limits.max_elements} elements")
        root = parser.close()
    except (etree.LxmlError, ValueError, UnicodeError) as exc:
        raise faults.well_formed(str(exc)[:200]) from None
    return root


def _element_children(parent: Element) -> list[Element]:
    return [c for c in parent if isinstance(c.tag, str)]


def _is_true(value: str | None) -> bool:
    return value is not None and value.strip() in ("1", "true")


def _check_must_understand(header: Element, env_ns: str) -> None:
    role_attr = "role" if env_ns == SOAP12 else "actor"
    for block in _element_children(header):
        if not _is_true(block.get(f"{{{env_ns}}}mustUnderstand")):
            continue
        if block.get(f"{{{env_ns}}}{role_attr}", "").strip() not in _NEXT_ROLES:
            continue  # addressed to another node
        if etree.QName(block).namespace not in _UNDERSTOOD:
            raise faults.must_understand(str(block.tag))


def _addressing(header: Element | None, local: str) -> str | None:
    if header is None:
        return None
    for ns in (WSA, WSA_2004):
        el = header.find(f"{{{ns}}}{local}")
        if el is not None and el.text and el.text.strip():
            return el.text.strip()
    return None


def parse_envelope(
    body: bytes,
    content_type: str | None,
    *,
    soap_action: str | None = None,
    limits: Limits = Limits(),  # frozen, so one shared default is safe
) -> SoapRequest:
    """Parses a SOAP 1.2 (or 1.1) request; raises `SoapFault` for anything else."""
    ct_action = _content_type_action(content_type)
    root = _parse_xml(body, limits)
    if not isinstance(root.tag, str):
        raise faults.well_formed("no root element")
    tag = etree.QName(root)
    if tag.localname != "Envelope":
        raise faults.well_formed(f"root element is {tag.localname!r}, not Envelope")
    if tag.namespace not in (SOAP11, SOAP12):
        raise faults.version_mismatch(tag.namespace or "")
    version = SoapVersion(tag.namespace)
    header: Element | None = None
    body_el: Element | None = None
    for child in _element_children(root):
        if child.tag == f"{{{version}}}Header" and header is None and body_el is None:
            header = child
        elif child.tag == f"{{{version}}}Body" and body_el is None:
            body_el = child
        elif body_el is None:  # SOAP 1.1 allowed trailing elements; nothing may precede Body
            raise faults.tag_mismatch(f"unexpected {child.tag!s} in Envelope")
    if body_el is None:
        raise faults.tag_mismatch("Envelope has no Body")
    if header is not None:
        _check_must_understand(header, version)
    payload = _element_children(body_el)
    if not payload:
        raise faults.invalid_args("Body is empty")
    first = payload[0]
    action = ct_action or (soap_action or "").strip().strip('"') or _addressing(header, "Action")
    return SoapRequest(
        version=version,
        header=header,
        body_element=first,
        operation=etree.QName(first),
        action=action or None,
        message_id=_addressing(header, "MessageID"),
    )


# -- responses --------------------------------------------------------------------------------


def envelope(
    body_children: Iterable[Element],
    *,
    version: SoapVersion = SoapVersion.SOAP12,
    relates_to: str | None = None,
    action: str | None = None,
) -> bytes:
    """A response envelope with every ONVIF namespace declared once, on the Envelope. The
    children are moved (lxml semantics) into its Body."""
    nsmap = {**NSMAP, "env": str(version)}
    env = etree.Element(f"{{{version}}}Envelope", nsmap=nsmap)
    if action is not None or relates_to is not None:
        header = etree.SubElement(env, f"{{{version}}}Header")
        if action is not None:
            etree.SubElement(header, f"{{{WSA}}}Action").text = action
        if relates_to is not None:
            etree.SubElement(header, f"{{{WSA}}}RelatesTo").text = relates_to
    body = etree.SubElement(env, f"{{{version}}}Body")
    body.extend(body_children)
    # Hoist the makers' per-element declarations to the Envelope and keep the unused ones there:
    # QNames in text need them in scope.
    etree.cleanup_namespaces(env, top_nsmap=nsmap, keep_ns_prefixes=list(nsmap))
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


# -- access control (ONVIF Core 5.9.4) ---------------------------------------------------------


class AccessClass(StrEnum):
    PRE_AUTH = "PRE_AUTH"
    READ_SYSTEM = "READ_SYSTEM"
    READ_SYSTEM_SENSITIVE = "READ_SYSTEM_SENSITIVE"
    READ_SYSTEM_SECRET = "READ_SYSTEM_SECRET"
    WRITE_SYSTEM = "WRITE_SYSTEM"
    UNRECOVERABLE = "UNRECOVERABLE"
    READ_MEDIA = "READ_MEDIA"
    ACTUATE = "ACTUATE"


_A = AccessClass
# Every service's GetServiceCapabilities is PRE_AUTH (the Core spec and each service spec):
# GetServices(IncludeCapability), itself pre-auth, already sends the same elements.
SERVICE_CAPABILITIES = AccessClass.PRE_AUTH
# The Core spec's default access policy; None is the anonymous user.
POLICY: dict[UserLevel | None, frozenset[AccessClass]] = {
    UserLevel.ADMINISTRATOR: frozenset(AccessClass),
    UserLevel.OPERATOR: frozenset(AccessClass)
    - {_A.READ_SYSTEM_SECRET, _A.WRITE_SYSTEM, _A.UNRECOVERABLE},
    UserLevel.USER: frozenset({_A.PRE_AUTH, _A.READ_SYSTEM, _A.READ_MEDIA}),
    None: frozenset({_A.PRE_AUTH}),
}


def allowed(level: UserLevel | None, access: AccessClass) -> bool:
    return access in POLICY.get(level, frozenset())


H = TypeVar("H")


@dataclass(frozen=True)
class Operation(Generic[H]):
    qname: str
    handler: H
    access: AccessClass

    @property
    def preauth(self) -> bool:
        return self.access is AccessClass.PRE_AUTH


class Dispatcher(Generic[H]):
    """Body element (Clark notation) -> handler and access class. The handler type is the HTTP
    layer's choice (sync or async, any arguments): this class only routes and authorises."""

    def __init__(self) -> None:
        self._ops: dict[str, Operation[H]] = {}

    def register(
        self,
        qname: str,
        handler: H,
        *,
        preauth: bool = False,
        access: AccessClass | None = None,
    ) -> None:
        # No default class: every operation states its class, as in the spec's tables.
        if preauth:
            if access not in (None, AccessClass.PRE_AUTH):
                raise ValueError(f"{qname}: preauth contradicts access={access}")
            access = AccessClass.PRE_AUTH
        if access is None:
            raise ValueError(f"{qname}: give an access class (or preauth=True)")
        q = etree.QName(qname)
        if not q.namespace:
            raise ValueError(f"{qname}: use a namespace-qualified name ('{{ns}}Local')")
        if q.text in self._ops:
            raise ValueError(f"{qname} is registered already")
        self._ops[q.text] = Operation(q.text, handler, access)

    def __contains__(self, qname: object) -> bool:
        return str(qname) in self._ops

    def operations(self) -> list[Operation[H]]:
        return list(self._ops.values())

    def lookup(self, operation: etree.QName | str) -> Operation[H]:
        op = self._ops.get(str(operation))
        if op is None:
            raise faults.action_not_supported(str(operation))
        return op

    @staticmethod
    def authorize(op: Operation[H], user: User | None) -> None:
        if allowed(user.level if user else None, op.access):
            return
        if user is None:  # no credentials: 401 with a Digest challenge (see faults.py)
            raise faults.not_authorized(f"{op.qname} needs credentials", challenge=True)
        raise faults.not_authorized(f"{user.username} ({user.level}) may not {op.access}")

    def resolve(
        self, request: SoapRequest, authenticate: Callable[[], User | None]
    ) -> tuple[Operation[H], User | None]:
        """The operation and the authenticated user, or a `SoapFault`. `authenticate` returns
        the user from WS-Security or HTTP Digest (None when the request has no credentials)."""
        op = self.lookup(request.operation)
        try:
            user = authenticate()
        except SoapFault:
            if not op.preauth:
                raise
            # Pre-auth operations answer whatever the credentials: clients send
            # GetSystemDateAndTime with a skewed clock precisely to measure the skew.
            user = None
        self.authorize(op, user)
        return op, user
