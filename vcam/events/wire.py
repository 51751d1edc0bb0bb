"""Events as XML: notification messages, the Notify envelope, and the TopicSet.

One rendering for PullMessages answers and pushed Notify messages, so both carry exactly the
same notification for the same event (ONVIF Core, "Notification Message Format").
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from lxml import etree

from vcam.events.filters import CONCRETE_SET
from vcam.events.message import EventMessage, ItemTypes, TopicInfo
from vcam.onvif.soap import NSMAP, SOAP12, TT, WSA, WSA_E, WSNT, Element

NOTIFY_ACTION = "http://docs.oasis-open.org/wsn/bw-2/NotificationConsumer/Notify"
_WSTOP = NSMAP["wstop"]
_TNS1 = NSMAP["tns1"]


def utc_text(moment: datetime) -> str:
    """xs:dateTime in UTC with the 'Z' indicator (Core spec: all event times), milliseconds."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _items(tag: str, items: Iterable[tuple[str, str]]) -> Element:
    return TT(tag, *[TT.SimpleItem(Name=n, Value=v) for n, v in items])


def tt_message(msg: EventMessage) -> Element:
    attrs = {"UtcTime": utc_text(msg.utc)}
    if msg.operation is not None:
        attrs["PropertyOperation"] = str(msg.operation)
    children = [_items("Source", msg.source)]
    if msg.key:
        children.append(_items("Key", msg.key))
    children.append(_items("Data", msg.data))  # the state item first: HA reads SimpleItem[0]
    return TT.Message(*children, attrs)


def notification_message(msg: EventMessage, subscription: str | None = None) -> Element:
    """wsnt:NotificationMessage; `subscription`: the SubscriptionReference address (Notify)."""
    parts: list[Element] = []
    if subscription is not None:
        parts.append(WSNT.SubscriptionReference(WSA_E.Address(subscription)))
    # The topic's tns1 prefix resolves against the Envelope's declarations (soap.NSMAP).
    parts.append(WSNT.Topic(msg.topic, Dialect=CONCRETE_SET))
    parts.append(WSNT.Message(tt_message(msg)))
    return WSNT.NotificationMessage(*parts)


def notify_envelope(msgs: Iterable[EventMessage], consumer: str, subscription: str) -> bytes:
    """A SOAP 1.2 wsnt:Notify for a consumer (WS-BaseNotification, with WS-Addressing)."""
    nsmap = {**NSMAP, "env": SOAP12}
    env = etree.Element(f"{{{SOAP12}}}Envelope", nsmap=nsmap)
    header = etree.SubElement(env, f"{{{SOAP12}}}Header")
    etree.SubElement(header, f"{{{WSA}}}Action").text = NOTIFY_ACTION
    etree.SubElement(header, f"{{{WSA}}}To").text = consumer
    body = etree.SubElement(env, f"{{{SOAP12}}}Body")
    body.append(WSNT.Notify(*[notification_message(m, subscription) for m in msgs]))
    etree.cleanup_namespaces(env, top_nsmap=nsmap, keep_ns_prefixes=list(nsmap))
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def _descriptions(tag: str, items: ItemTypes) -> Element:
    return TT(tag, *[TT.SimpleItemDescription(Name=n, Type=t) for n, t in items])


def message_description(info: TopicInfo) -> Element:
    children = [_descriptions("Source", info.source)]
    if info.key:
        children.append(_descriptions("Key", info.key))
    children.append(_descriptions("Data", info.data))
    return TT.MessageDescription(*children, IsProperty="true" if info.is_property else "false")


def topic_set(topics: Iterable[TopicInfo]) -> Element:
    """wstop:TopicSet: one element per topic level, the root in the tns1 namespace and the
    levels below it unqualified (Core spec, "Topic Type Information"), each topic marked
    wstop:topic="true" with its MessageDescription."""
    root = etree.Element(f"{{{_WSTOP}}}TopicSet", nsmap={"wstop": _WSTOP})
    for info in sorted(topics, key=lambda t: t.path):
        parent = root
        for depth, level in enumerate(info.path):
            tag = f"{{{_TNS1}}}{level}" if depth == 0 else level
            node = next((c for c in parent if c.tag == tag), None)
            if node is None:
                node = etree.SubElement(parent, tag)
            parent = node
        parent.set(f"{{{_WSTOP}}}topic", "true")
        parent.insert(0, message_description(info))  # before any subtopic element
    return root
