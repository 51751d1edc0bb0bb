"""Every operation `vcam serve` registers has a sample request whose answer is schema-checked.

Each service's test module keeps a table of one well-formed request per operation and checks
every answer against the WSDL's schema; this test makes sure the tables together cover the
dispatcher, so a new operation cannot go out without a validated answer.
"""

from __future__ import annotations

from vcam.onvif.soap import NSMAP
from vcam.onvif.stack import build_dispatcher

from .test_onvif_analytics import ANALYTICS_REQUESTS
from .test_onvif_events import EVENTS_REQUESTS
from .test_onvif_imaging import IMAGING_REQUESTS
from .test_onvif_media2 import MEDIA2_REQUESTS
from .test_onvif_services import REQUESTS


def clark(prefixed: str) -> str:
    prefix, local = prefixed.split(":")
    return f"{{{NSMAP[prefix]}}}{local}"


def test_the_sample_tables_cover_every_registered_operation() -> None:
    tables = (REQUESTS, MEDIA2_REQUESTS, IMAGING_REQUESTS, EVENTS_REQUESTS, ANALYTICS_REQUESTS)
    sampled = {clark(name) for table in tables for name in table}
    registered = {op.qname for op in build_dispatcher().operations()}
    assert sorted(registered - sampled) == []
