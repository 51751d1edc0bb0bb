"""The one set of lxml parser options for untrusted XML (SOAP requests, WS-Discovery datagrams).

No entity expansion, no DTD loading, no network, libxml2's own size and depth caps kept
(huge_tree=False); comments and processing instructions dropped. Callers also refuse any
DOCTYPE outright, so XXE and billion laughs never reach an expansion step. Parsers are made
per call: lxml parsers are not thread-safe.
"""

from __future__ import annotations

from typing import Any, Final

HARDENED: Final[dict[str, Any]] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}
