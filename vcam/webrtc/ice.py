"""ICE configuration: the STUN/TURN servers of `web.ice_servers`, and which host addresses the
camera offers as candidates.

With no servers (the default) only host candidates are gathered: viewers on the LAN, nothing
asked of the outside world (aiortc's own default would query a public Google STUN server).
aioice never offers 127.0.0.1; when the web server is bound to one address, that address is the
candidate (127.0.0.1 included, so a camera bound to loopback serves local viewers), otherwise
every non-loopback address, or loopback when the host has nothing else.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Protocol

import aioice.ice
from aiortc import RTCIceServer


def ice_servers(urls: Sequence[str]) -> list[RTCIceServer]:
    """`web.ice_servers` (validated by vcam.config) as aiortc servers; TURN credentials may be
    written in the URL as turn:USER:PASSWORD@HOST:PORT."""
    servers = []
    for url in urls:
        scheme, rest = url.split(":", 1)
        if scheme.startswith("turn") and "@" in rest:
            credentials, rest = rest.rsplit("@", 1)
            username, password = credentials.split(":", 1)
            servers.append(RTCIceServer(f"{scheme}:{rest}", username, password))
        else:
            servers.append(RTCIceServer(url))
    return servers


def browser_ice_servers(urls: Sequence[str]) -> list[dict[str, str]]:
    """The same servers in the shape of the browser's RTCIceServer dictionaries."""
    out = []
    for server in ice_servers(urls):
        entry = {"urls": str(server.urls)}
        if server.username is not None:
            entry["username"] = server.username
            entry["credential"] = str(server.credential)
        out.append(entry)
    return out


class HostAddresses(Protocol):
    def __call__(self, use_ipv4: bool, use_ipv6: bool) -> list[str]: ...


_original: HostAddresses = aioice.ice.get_host_addresses


def host_addresses_for(bind: str, found: HostAddresses = _original) -> HostAddresses:
    """What aioice should gather on for a web server bound to `bind`."""
    ip = ipaddress.ip_address(bind)

    def addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        if not ip.is_unspecified:
            return [bind] if (use_ipv4 if ip.version == 4 else use_ipv6) else []
        found_now = found(use_ipv4, use_ipv6)
        return found_now or (["127.0.0.1"] if use_ipv4 else [])

    return addresses


def gather_on(bind: str) -> None:
    """Make aioice gather host candidates as `host_addresses_for(bind)` says. aioice has no
    option for it, so its module-level lookup is replaced (process-wide: one camera per
    process, and the test client patches its own process)."""
    aioice.ice.get_host_addresses = host_addresses_for(bind)
