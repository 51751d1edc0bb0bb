"""The one producer behind every viewer's "metadata" data channel.

It runs while at least one channel is attached: one bus subscription to the metadata stream,
one event-broker subscription, one status reading a second. Each message is turned into JSON
once and sent to every open channel whose send buffer is below a bound; a backed-up viewer
loses messages (counted, and told with a "dropped" message) and never delays the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiortc import RTCDataChannel

from vcam.events.broker import EventBroker
from vcam.events.message import EventMessage
from vcam.media.bus import EncodedBus
from vcam.status import LiveCamera
from vcam.webrtc.metadata import boxes_message, encode, event_message, status_message

log = logging.getLogger("vcam.webrtc")

METADATA_STREAM = "metadata"
MAX_BUFFERED = 256 * 1024  # bytes waiting in one channel's SCTP buffer before we drop for it
EVENT_QUEUE = 256  # events between the broker's thread and the loop
DOCUMENT_QUEUE = 8  # metadata documents waiting; more drop (the bus counts them)


class MetadataFeed:
    def __init__(
        self,
        camera: LiveCamera,
        events: EventBroker | None,
        peers: Callable[[], int],
        status_interval_s: float = 1.0,
    ) -> None:
        self.camera = camera
        self.bus: EncodedBus = camera.bus
        self.broker = events
        self.peers = peers
        self.status_interval_s = status_interval_s
        self._channels: dict[RTCDataChannel, int] = {}  # channel -> messages dropped for it
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._last_status = ""
        self.sent = 0
        self.dropped = 0
        self.events_dropped = 0

    @property
    def channels(self) -> int:
        return len(self._channels)

    def attach(self, channel: RTCDataChannel) -> None:
        """Start sending to `channel` (once open); the feed starts with its first channel."""
        self._channels[channel] = 0
        if self._last_status and channel.readyState == "open":
            self._send(channel, self._last_status)
        if not self._tasks:
            self._start()

    def detach(self, channel: RTCDataChannel) -> None:
        self._channels.pop(channel, None)
        if not self._channels:
            self.stop()

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[EventMessage] = asyncio.Queue(EVENT_QUEUE)

        def on_event(msg: EventMessage) -> None:  # the publisher's thread
            with contextlib.suppress(RuntimeError):  # loop closed: nobody to send to
                loop.call_soon_threadsafe(self._queue_event, events, msg)

        if self.broker is not None:
            self._unsubscribe = self.broker.subscribe(on_event)
        self._tasks = [
            loop.create_task(self._documents()),
            loop.create_task(self._events(events)),
            loop.create_task(self._status()),
        ]

    def _queue_event(self, events: asyncio.Queue[EventMessage], msg: EventMessage) -> None:
        try:
            events.put_nowait(msg)
        except asyncio.QueueFull:
            self.events_dropped += 1

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for task in self._tasks:
            task.cancel()
        self._tasks = []

    async def _documents(self) -> None:
        with self.bus.subscribe(METADATA_STREAM, DOCUMENT_QUEUE) as sub:
            while (unit := await sub.aget()) is not None:
                try:
                    message = boxes_message(unit)
                except (ValueError, SyntaxError):  # lxml's XMLSyntaxError is a SyntaxError
                    log.exception("unreadable metadata document")
                    continue
                self._broadcast(message)

    async def _events(self, events: asyncio.Queue[EventMessage]) -> None:
        while True:
            self._broadcast(event_message(await events.get()))

    async def _status(self) -> None:
        while True:
            try:
                message = status_message(self.camera.status(), self.peers())
            except Exception:  # a status bug must not end boxes and events
                log.exception("camera status for WebRTC failed")
            else:
                self._last_status = self._broadcast(message)
            await asyncio.sleep(self.status_interval_s)

    def _broadcast(self, message: dict[str, Any]) -> str:
        text = encode(message)
        for channel in list(self._channels):
            self._send(channel, text)
        return text

    def _send(self, channel: RTCDataChannel, text: str) -> None:
        if channel.readyState != "open":
            return  # not yet open (or closing): nothing to catch up on later
        if channel.bufferedAmount > MAX_BUFFERED:
            self._channels[channel] += 1
            self.dropped += 1
            return
        lost = self._channels.get(channel, 0)
        if lost:
            channel.send(encode({"type": "dropped", "count": lost}))
            self._channels[channel] = 0
        channel.send(text)
        self.sent += 1
