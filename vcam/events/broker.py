"""The event broker: the one place events are published to and subscribed from.

Publishers (the analytics engine in the gate thread, the camera) call `publish` from any thread;
each subscriber's callback runs in the publisher's thread and must only hand the message on
(e.g. `loop.call_soon_threadsafe` into a bounded queue). The broker remembers the latest message
of every property (topic + source + key) so that a new subscription, and SetSynchronizationPoint,
can be sent the current state of everything as `Initialized`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable

from vcam.events.message import EventMessage, PropertyOperation, TopicInfo
from vcam.observers import Subscribers

Subscriber = Callable[[EventMessage], None]


class EventBroker:
    def __init__(self, topics: Iterable[TopicInfo] = ()) -> None:
        self._lock = threading.Lock()
        self._topics: dict[str, TopicInfo] = {}
        self._properties: dict[tuple[object, ...], EventMessage] = {}
        self._subscribers: Subscribers[EventMessage] = Subscribers("event")
        self.published = 0
        for info in topics:
            self.declare(info)

    def declare(self, info: TopicInfo) -> None:
        """Adds a topic the device can send (GetEventProperties lists it)."""
        with self._lock:
            known = self._topics.get(info.topic)
            if known is not None and known != info:
                raise ValueError(f"topic {info.topic} declared twice, differently")
            self._topics[info.topic] = info

    def topics(self) -> list[TopicInfo]:
        with self._lock:
            return list(self._topics.values())

    def publish(self, msg: EventMessage) -> None:
        """Sends `msg` to every subscriber (ValueError for an undeclared or ill-formed one)."""
        with self._lock:
            info = self._topics.get(msg.topic)
            if info is None:
                raise ValueError(f"undeclared topic {msg.topic}")
            msg.check(info)
            if msg.operation is PropertyOperation.DELETED:
                self._properties.pop(msg.property_key, None)
            elif msg.operation is not None:
                self._properties[msg.property_key] = msg
            self.published += 1
        self._subscribers.notify(msg)  # one broken subscriber does not stop the others

    def properties(self) -> list[EventMessage]:
        """The current state of every property, each as an `Initialized` message (with the
        time it last changed), for new subscriptions and SetSynchronizationPoint."""
        with self._lock:
            current = list(self._properties.values())
        return [dataclasses.replace(m, operation=PropertyOperation.INITIALIZED) for m in current]

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Calls `callback(message)` for every message published from now on; returns a
        function that unsubscribes."""
        return self._subscribers.add(callback)

    def subscriber_count(self) -> int:
        return len(self._subscribers)
