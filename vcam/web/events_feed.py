"""The latest events for the page's events list: a bounded ring fed by the event broker.

GET /api/events?after=N -> {"events": [{"seq", "utc", "topic", "operation", "source", "data"}],
"last": seq}. Any logged-in user. The page polls it; the WebRTC data channel, where there is one,
carries the same events live.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from aiohttp import web

from vcam.events.broker import EventBroker
from vcam.events.message import EventMessage
from vcam.web.jsonapi import ok
from vcam.web.session import require

MAX_EVENTS = 100


class RecentEvents:
    """Subscribed to the broker between app start and cleanup. The broker calls `on_event` in
    the publisher's thread: it only appends under a lock."""

    def __init__(self, broker: EventBroker, size: int = MAX_EVENTS) -> None:
        self.broker = broker
        self._lock = threading.Lock()
        self._events: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = 0
        self._unsubscribe: Any = None

    def on_event(self, msg: EventMessage) -> None:
        with self._lock:
            self._seq += 1
            self._events.append(
                {
                    "seq": self._seq,
                    "utc": msg.utc.isoformat(timespec="milliseconds"),
                    "topic": msg.topic,
                    "operation": msg.operation.value if msg.operation is not None else None,
                    "source": dict(msg.source),
                    "data": dict(msg.data),
                }
            )

    def after(self, seq: int) -> tuple[list[dict[str, Any]], int]:
        with self._lock:
            return [e for e in self._events if e["seq"] > seq], self._seq

    async def start(self, _app: web.Application) -> None:
        self._unsubscribe = self.broker.subscribe(self.on_event)

    async def stop(self, _app: web.Application) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    async def handle(self, request: web.Request) -> web.Response:
        require(request)
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            after = 0
        events, last = self.after(after)
        return ok({"events": events, "last": last})


def register_events(app: web.Application, broker: EventBroker) -> None:
    feed = RecentEvents(broker)
    app.on_startup.append(feed.start)
    app.on_cleanup.append(feed.stop)
    app.router.add_get("/api/events", feed.handle)
