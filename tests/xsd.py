"""Validating against the ONVIF schemas in wsdl/ (offline, with lxml), for any test."""

from __future__ import annotations

import functools
from pathlib import Path

from lxml import etree

WSDL = Path(__file__).resolve().parent.parent / "wsdl"

# The ONVIF schemas import the OASIS ones by URL: served from wsdl/external, never the network.
_URLS = {"http://docs.oasis-open.org/wsn/b-2.xsd": WSDL / "external" / "b-2.xsd"}


def _narrow_wildcards(xsd: bytes) -> bytes:
    """The ONVIF schemas put xs:any ##any next to optional elements, legal in XSD 1.1 (elements
    win over wildcards) but a UPA error for libxml2's XSD 1.0. In this in-memory copy, used only
    by tests, wildcards accept no-namespace elements only: stricter, and we emit no extensions."""
    return xsd.replace(b'namespace="##any"', b'namespace="##local"').replace(
        b'namespace="##other"', b'namespace="##local"'
    )


class _LocalSchemas(etree.Resolver):
    def resolve(self, url: str, pubid: str, context: object) -> object:
        path = _URLS.get(url)
        if path is None and url.startswith("file://"):
            path = Path(url.removeprefix("file://"))
        if path is None or not path.resolve().is_relative_to(WSDL):
            raise AssertionError(f"schema outside wsdl/: {url}")
        data = path.read_bytes()
        # OASIS schemas keep theirs: wsnt:Message's lone ##any wildcard is no UPA problem, and
        # it is where event messages (tt:Message) go.
        if not path.resolve().is_relative_to(WSDL / "external"):
            data = _narrow_wildcards(data)
        return self.resolve_string(data, context, base_url=path.as_uri())


@functools.cache
def onvif_schema(relative: str) -> etree.XMLSchema:
    """The schema at wsdl/<relative>, e.g. "ver10/schema/metadatastream.xsd"."""
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_LocalSchemas())
    top = WSDL / relative
    doc = etree.fromstring(_narrow_wildcards(top.read_bytes()), parser, base_url=top.as_uri())
    return etree.XMLSchema(doc)
