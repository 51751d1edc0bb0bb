"""The calling convention between the HTTP layer and the ONVIF operation handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeAlias

from lxml import etree

from vcam.auth.users import User
from vcam.onvif.model import DeviceModel
from vcam.onvif.soap import Dispatcher, Element


@dataclass(frozen=True)
class OnvifRequest:
    body: Element  # the request's body element (the operation)
    host: str  # the request's Host header, "addr:port": XAddrs and URIs are built from it
    user: User | None  # None for pre-auth operations called without credentials
    model: DeviceModel
    path: str = "/"  # the request's URL path: event subscriptions are addressed by it

    def url(self, scheme: str, port: int, path: str) -> str:
        """An absolute URL on the address the client used to reach us."""
        name = self.host.rsplit(":", 1)[0] if not self.host.endswith("]") else self.host
        return f"{scheme}://{name}:{port}{path}"


# Sync, or async for operations that wait (PullMessages): the HTTP layer awaits awaitables.
Handler: TypeAlias = Callable[[OnvifRequest], list[Element] | Awaitable[list[Element]]]


def xs_bool(value: bool) -> str:
    return "true" if value else "false"


def arg_texts(body: Element, local: str) -> list[str]:
    """The texts of the request's children named `local` (any namespace prefix or none)."""
    return [
        (c.text or "").strip()
        for c in body
        if isinstance(c.tag, str) and etree.QName(c).localname == local
    ]


def arg_text(body: Element, *path: str) -> str | None:
    """The text at `path` of local names below the request element (any prefix), or None."""
    node = body
    for local in path:
        found = next(
            (c for c in node if isinstance(c.tag, str) and etree.QName(c).localname == local),
            None,
        )
        if found is None:
            return None
        node = found
    return (node.text or "").strip()


OnvifDispatcher: TypeAlias = Dispatcher[Handler]
