"""One event as ONVIF carries it (tt:Message inside wsnt:NotificationMessage), and the topics.

An `EventMessage` is plain data: a topic (`tns1:RuleEngine/LineDetector/Crossed`), a time, the
Source, Key and Data simple items, and for property events (a state that holds until it
changes: a field's occupancy, a counter) the PropertyOperation. Topics are declared once in a
`TopicInfo` table, from which GetEventProperties builds the TopicSet and MessageDescriptions
and against which every published message is checked, so nothing is sent that is not
described.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime

Items = tuple[tuple[str, str], ...]  # SimpleItem Name, Value, in order
ItemTypes = tuple[tuple[str, str], ...]  # SimpleItemDescription Name, Type (a QName: xs:int)


class PropertyOperation(enum.StrEnum):
    INITIALIZED = "Initialized"
    CHANGED = "Changed"
    DELETED = "Deleted"


@dataclass(frozen=True)
class TopicInfo:
    """A topic this device can send, as GetEventProperties describes it."""

    topic: str  # "tns1:RuleEngine/LineDetector/Crossed": tns1 = http://www.onvif.org/ver10/topics
    is_property: bool
    source: ItemTypes
    data: ItemTypes
    key: ItemTypes = ()

    @property
    def path(self) -> tuple[str, ...]:
        """The topic's levels without the tns1 prefix: ("RuleEngine", "LineDetector", ...)."""
        return tuple(self.topic.split(":", 1)[1].split("/"))


@dataclass(frozen=True)
class EventMessage:
    topic: str
    source: Items
    data: Items
    key: Items = ()
    operation: PropertyOperation | None = None  # None: not a property event
    utc: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def property_key(self) -> tuple[str, Items, Items]:
        """What identifies one property (its topic, source and key): the latest message of each
        is what SetSynchronizationPoint sends again."""
        return self.topic, self.source, self.key

    def item(self, name: str) -> str | None:
        """The value of the Data (then Source, then Key) item `name`, if any."""
        for items in (self.data, self.source, self.key):
            for n, v in items:
                if n == name:
                    return v
        return None

    def check(self, info: TopicInfo) -> None:
        """Raises ValueError unless the message fits its topic's description."""
        if info.topic != self.topic:
            raise ValueError(f"message of {self.topic} checked against {info.topic}")
        if info.is_property != (self.operation is not None):
            raise ValueError(f"{self.topic}: property operation must be given iff a property")
        for what, items, described in (
            ("Source", self.source, info.source),
            ("Data", self.data, info.data),
            ("Key", self.key, info.key),
        ):
            names = [n for n, _ in items]
            if names != [n for n, _ in described]:
                raise ValueError(f"{self.topic}: {what} items {names} differ from its description")
