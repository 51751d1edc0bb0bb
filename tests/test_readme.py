"""The README's table of ONVIF operations says exactly what `vcam serve` registers."""

from __future__ import annotations

import re
from pathlib import Path

from lxml import etree

from vcam.onvif.stack import build_dispatcher

README = Path(__file__).resolve().parent.parent / "README.md"
# The table's service column -> the namespaces of its operations.
SERVICE_NAMESPACES = {
    "Device (ver10)": ("http://www.onvif.org/ver10/device/wsdl",),
    "Media (ver10)": ("http://www.onvif.org/ver10/media/wsdl",),
    "Media2 (ver20)": ("http://www.onvif.org/ver20/media/wsdl",),
    "Imaging (ver20)": ("http://www.onvif.org/ver20/imaging/wsdl",),
    # tds:GetRelayOutputs: the DeviceIO binding reuses the Device element.
    "DeviceIO (ver10)": ("http://www.onvif.org/ver10/deviceIO/wsdl",),
    "Events (ver10)": (
        "http://www.onvif.org/ver10/events/wsdl",
        "http://docs.oasis-open.org/wsn/b-2",
    ),
    "Analytics (ver20)": ("http://www.onvif.org/ver20/analytics/wsdl",),
}


def documented() -> set[tuple[str, str, str]]:
    """(service, operation, access) for every operation named in the table."""
    rows = set()
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] not in SERVICE_NAMESPACES:
            continue
        service, operations, access = cells
        text = re.sub(r"\([^)]*\)", "", operations)  # remarks in brackets
        for name in re.findall(r"\b(?:Get|Set|Create|Delete|Add|Remove|Modify|System|Pull|"
                               r"Subscribe|Renew|Unsubscribe|Move|Stop)\w*", text):  # fmt: skip
            rows.add((service, name, access))
        # "GetVideoSourceConfiguration(s)" stands for both forms.
        for name in re.findall(r"\b(\w+)\(s\)", operations):
            rows |= {(service, name, access), (service, name + "s", access)}
    return rows


def registered() -> set[tuple[str, str, str]]:
    by_namespace = {ns: service for service, nss in SERVICE_NAMESPACES.items() for ns in nss}
    rows = set()
    for op in build_dispatcher().operations():
        q = etree.QName(op.qname)
        service = by_namespace[q.namespace]
        access = "pre-auth" if op.access == "PRE_AUTH" else str(op.access)
        rows.add((service, q.localname, access))
    return rows


def test_the_operations_table_is_exact() -> None:
    table, served = documented(), registered()
    served.discard(("Device (ver10)", "GetRelayOutputs", "READ_MEDIA"))
    served.add(("DeviceIO (ver10)", "GetRelayOutputs", "READ_MEDIA"))
    assert sorted(served - table) == [], "registered but not in the README"
    assert sorted(table - served) == [], "in the README but not registered"
