"""Notify over HTTP: how pushed subscriptions (WS-BaseNotification Subscribe) reach consumers.

Each pushed subscription gets its own small aiohttp session for as long as it lives (see
`SubscriptionManager._push`). Consumers are http(s) URLs only; requests never follow
redirects, have short timeouts, and the answer's body is not read: a consumer can make the
camera neither wait nor buffer.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp
from yarl import URL

from vcam.events.message import EventMessage
from vcam.events.pullpoint import Send, Subscription
from vcam.events.wire import notify_envelope

MAX_ADDRESS = 1024
CONTENT_TYPE = "application/soap+xml; charset=utf-8"


def check_consumer(address: str) -> str:
    """The consumer address if it is an absolute http(s) URL with a host; else ValueError."""
    address = address.strip()
    if not address or len(address) > MAX_ADDRESS:
        raise ValueError("consumer address missing or too long")
    try:
        url = URL(address)
    except ValueError:
        raise ValueError("consumer address is not a URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("consumer address must be an http or https URL")
    if url.user or url.password:
        raise ValueError("consumer address must not carry credentials")
    return address


@contextlib.asynccontextmanager
async def http_transport(timeout_s: float = 5.0) -> AsyncIterator[Send]:
    timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(3.0, timeout_s))
    connector = aiohttp.TCPConnector(limit=1)  # one Notify at a time per subscription
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def send(sub: Subscription, msgs: list[EventMessage]) -> None:
            assert sub.consumer is not None
            body = notify_envelope(msgs, sub.consumer, sub.address)
            async with session.post(
                sub.consumer,
                data=body,
                headers={"Content-Type": CONTENT_TYPE},
                allow_redirects=False,
            ) as resp:
                if not 200 <= resp.status < 300:
                    raise ConnectionError(f"consumer answered HTTP {resp.status}")

        yield send
