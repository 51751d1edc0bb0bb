"""The message schemas of the ONVIF WSDLs (their `wsdl:types`), compiled offline with lxml, to
validate service responses (tds:GetDeviceInformationResponse, trt:GetProfilesResponse...)."""

from __future__ import annotations

import functools
from pathlib import Path

from lxml import etree

WSDL = Path(__file__).resolve().parent.parent / "wsdl"
XS = "http://www.w3.org/2001/XMLSchema"
_WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"

# Service namespace -> WSDL under wsdl/; add a line per service.
WSDLS: dict[str, str] = {
    "http://www.onvif.org/ver10/device/wsdl": "ver10/device/wsdl/devicemgmt.wsdl",
    "http://www.onvif.org/ver10/media/wsdl": "ver10/media/wsdl/media.wsdl",
    "http://www.onvif.org/ver20/media/wsdl": "ver20/media/wsdl/media.wsdl",
    "http://www.onvif.org/ver20/imaging/wsdl": "ver20/imaging/wsdl/imaging.wsdl",
    "http://www.onvif.org/ver10/deviceIO/wsdl": "ver10/deviceio.wsdl",
    "http://www.onvif.org/ver10/events/wsdl": "ver10/events/wsdl/event.wsdl",
    "http://www.onvif.org/ver20/analytics/wsdl": "ver20/analytics/wsdl/analytics.wsdl",
}

# onvif.xsd imports three W3C schemas by URL that wsdl/ does not ship. Stand-ins declaring just
# the names it refers to (used only by operations we do not implement: MTOM uploads, the
# security log's RequestInfo/Fault).
_W3C_STUBS: dict[str, str] = {
    "https://www.w3.org/2005/05/xmlmime": (
        f'<xs:schema xmlns:xs="{XS}" targetNamespace="http://www.w3.org/2005/05/xmlmime">'
        '<xs:attribute name="contentType" type="xs:string"/></xs:schema>'
    ),
    "https://www.w3.org/2004/08/xop/include": (
        f'<xs:schema xmlns:xs="{XS}" targetNamespace="http://www.w3.org/2004/08/xop/include">'
        '<xs:element name="Include"><xs:complexType>'
        '<xs:attribute name="href" type="xs:anyURI" use="required"/>'
        "</xs:complexType></xs:element></xs:schema>"
    ),
    "https://www.w3.org/2003/05/soap-envelope": (
        f'<xs:schema xmlns:xs="{XS}" targetNamespace="http://www.w3.org/2003/05/soap-envelope">'
        '<xs:complexType name="Envelope"><xs:sequence><xs:any namespace="##other" '
        'processContents="skip" minOccurs="0" maxOccurs="unbounded"/></xs:sequence>'
        '</xs:complexType><xs:complexType name="Fault"><xs:sequence><xs:any '
        'namespace="##other" processContents="skip" minOccurs="0" maxOccurs="unbounded"/>'
        "</xs:sequence></xs:complexType></xs:schema>"
    ),
}
_URLS = {
    "http://docs.oasis-open.org/wsn/b-2.xsd": WSDL / "external" / "b-2.xsd",
    # event.wsdl imports these by URL too
    "http://docs.oasis-open.org/wsn/t-1.xsd": WSDL / "external" / "t-1.xsd",
    "http://www.w3.org/2005/08/addressing/ws-addr.xsd": WSDL / "external" / "ws-addr.xsd",
}


def _narrow_wildcards(xsd: bytes) -> bytes:
    """As tests/xsd.py: a wildcard next to optional elements is a UPA error for libxml2 (XSD
    1.0), so such wildcards accept no-namespace elements only (stricter: we emit no extensions).
    A wildcard alone in its sequence stays as written: GetServices puts each service's
    Capabilities element in one (##any), validated (lax) against that service's WSDL."""
    doc = etree.fromstring(xsd, etree.XMLParser(no_network=True))
    for wildcard in doc.iter(f"{{{XS}}}any"):
        parent = wildcard.getparent()
        assert parent is not None
        if len([p for p in parent if isinstance(p.tag, str)]) > 1:
            wildcard.set("namespace", "##local")
    return etree.tostring(doc)


def wsdl_types(relative: str) -> bytes:
    """The `<xs:schema>` inside a WSDL's `wsdl:types`, with the WSDL's namespace declarations."""
    tree = etree.parse(str(WSDL / relative), etree.XMLParser(no_network=True))
    schema = tree.find(f"{{{_WSDL_NS}}}types/{{{XS}}}schema")
    assert schema is not None, relative
    return etree.tostring(schema)


_COMMON = b'<xs:include schemaLocation="common.xsd"/>'


class _LocalSchemas(etree.Resolver):
    def resolve(self, url: str, pubid: str, context: object) -> object:
        if url in _W3C_STUBS:
            return self.resolve_string(_W3C_STUBS[url], context)
        path = _URLS.get(url)
        if path is None and url.startswith("file://"):
            path = Path(url.removeprefix("file://"))
        if path is None or not path.resolve().is_relative_to(WSDL):
            raise AssertionError(f"schema outside wsdl/: {url}")
        if path.suffix == ".wsdl":
            data = wsdl_types(str(path.resolve().relative_to(WSDL)))
        else:
            data = path.read_bytes()
        if path.name == "onvif.xsd":
            # analytics.wsdl imports tt twice (onvif.xsd, then metadatastream.xsd for tt:Frame);
            # libxml2 skips a namespace's second import, so onvif.xsd includes the other here.
            data = data.replace(
                _COMMON, _COMMON + b'<xs:include schemaLocation="metadatastream.xsd"/>'
            )
        return self.resolve_string(_narrow_wildcards(data), context, base_url=path.as_uri())


@functools.cache
def services_schema() -> etree.XMLSchema:
    """One schema holding every WSDL in `WSDLS` (and through them onvif.xsd)."""
    imports = "".join(
        f'<xs:import namespace="{ns}" schemaLocation="{(WSDL / rel).as_uri()}"/>'
        for ns, rel in WSDLS.items()
    )
    top = f'<xs:schema xmlns:xs="{XS}">{imports}</xs:schema>'.encode()
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_LocalSchemas())
    return etree.XMLSchema(etree.fromstring(top, parser, base_url=(WSDL / "services.xsd").as_uri()))


def validate(element: etree._Element) -> None:
    """Raises AssertionError with libxml2's messages unless `element` is schema-valid."""
    schema = services_schema()
    doc = etree.fromstring(etree.tostring(element))  # standalone: it may sit in an envelope
    if not schema.validate(doc):
        raise AssertionError(f"{etree.QName(doc).localname}: {schema.error_log}")
