"""Plain zeep on a WSDL in wsdl/, offline: the schemas onvif.xsd imports by URL come from
wsdl/external (and stand-ins for three W3C ones); WS-Security UsernameToken with digest."""

from __future__ import annotations

from typing import Any

import zeep
from zeep.wsse.username import UsernameToken

from .onvif_xsd import _W3C_STUBS, WSDL


class OfflineTransport(zeep.Transport):  # type: ignore[misc]
    def load(self, url: str) -> bytes:
        if url in _W3C_STUBS:
            return _W3C_STUBS[url].encode()
        if url.startswith(("http://", "https://")):
            local = WSDL / "external" / url.rsplit("/", 1)[-1]
            assert local.is_file(), f"zeep wanted {url}"
            return local.read_bytes()
        data: bytes = super().load(url)
        return data


def onvif_client(wsdl: str, user: str, password: str) -> Any:
    """A zeep client of wsdl/<wsdl> (e.g. "ver20/media/wsdl/media.wsdl")."""
    return zeep.Client(
        str(WSDL / wsdl),
        transport=OfflineTransport(timeout=20, operation_timeout=20),
        wsse=UsernameToken(user, password, use_digest=True),
    )
