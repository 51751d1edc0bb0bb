"""The ONVIF Event service (ver10): event properties, pull points, WS-BaseNotification.

The topics and messages come from the model's `EventBroker` (`req.model.events`); the
subscriptions live in a `SubscriptionManager` (vcam/events/pullpoint.py), one per broker,
created with the first subscription on the web server's loop. A subscription is addressed by
its URL only (`/onvif/subscription/<id>`, the id unguessable): clients echo no reference
parameters, so PullMessages, Renew, Unsubscribe and SetSynchronizationPoint find it from the
request path.

Faults of WS-BaseNotification operations are env:Receiver faults (Core spec, "SOAP Fault
Messages") whose subcode names the WS-BaseNotification fault (wsntw:..., wsrf-rw:...).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from datetime import datetime

from lxml import etree

from vcam.events.broker import EventBroker
from vcam.events.filters import (
    CONCRETE,
    CONCRETE_SET,
    ITEM_FILTER,
    EventFilter,
    FilterError,
    FilterPart,
    build_filter,
)
from vcam.events.pullpoint import (
    Limits,
    PushTransport,
    Subscription,
    SubscriptionGone,
    SubscriptionManager,
    TooManySubscriptions,
    UnacceptableTime,
    parse_duration,
)
from vcam.events.push import check_consumer, http_transport
from vcam.events.wire import notification_message, topic_set, utc_text
from vcam.onvif import faults
from vcam.onvif.faults import RECEIVER, SoapFault
from vcam.onvif.model import DeviceModel
from vcam.onvif.service import OnvifDispatcher, OnvifRequest, arg_text
from vcam.onvif.soap import SERVICE_CAPABILITIES, TEV, TT, WSA_E, WSNT, AccessClass, Element, qname

EVENTS_VERSION = (24, 12)  # the event.wsdl served from wsdl/
EVENTS_PATH = "/onvif/events_service"
SUBSCRIPTION_PATH = "/onvif/subscription/"  # + id; vcam/web/server.py routes it
TOPIC_NAMESPACE_LOCATION = "http://www.onvif.org/onvif/ver10/topics/topicns.xml"
SCHEMA_LOCATION = "http://www.onvif.org/onvif/ver10/schema/onvif.xsd"
LIMITS = Limits()
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


def event_capabilities(model: DeviceModel) -> Element:
    """tev:Capabilities, as GetServiceCapabilities and GetServices(IncludeCapability) send it."""
    return TEV.Capabilities(
        WSSubscriptionPolicySupport="true",  # tev:ChangedOnly
        WSPausableSubscriptionManagerInterfaceSupport="false",
        MaxNotificationProducers=str(LIMITS.max_push),
        MaxPullPoints=str(LIMITS.max_pull_points),
        PersistentNotificationStorage="false",
        EventBrokerProtocols="",  # no MQTT/WebSocket brokers
        MaxEventBrokers="0",
        MetadataOverMQTT="false",
    )


def legacy_capabilities(req: OnvifRequest, xaddr: str) -> Element:
    """tt:Events of GetCapabilities."""
    return TT.Events(
        TT.XAddr(xaddr),
        TT.WSSubscriptionPolicySupport("true"),
        TT.WSPullPointSupport("true"),
        TT.WSPausableSubscriptionManagerInterfaceSupport("false"),
    )


# -- faults -----------------------------------------------------------------------------------


def _wsn_fault(name: str, reason: str, detail: str | None = None) -> SoapFault:
    return SoapFault(RECEIVER, [f"wsntw:{name}"], reason, detail=detail)


def resource_unknown() -> SoapFault:
    # The same answer for never-created, unsubscribed and expired: the id is the credential.
    return SoapFault(
        RECEIVER,
        ["wsrf-rw:ResourceUnknownFault"],
        "Resource unknown",
        detail="no such subscription (it may have expired or been unsubscribed)",
    )


def _time_fault(name: str, exc: UnacceptableTime) -> SoapFault:
    limits = f"MinimumTime {utc_text(exc.minimum)} MaximumTime {utc_text(exc.maximum)}"
    return _wsn_fault(name, str(exc), limits)


# -- request parsing --------------------------------------------------------------------------


def _children(el: Element) -> list[Element]:
    return [c for c in el if isinstance(c.tag, str)]


def _child(el: Element, local: str) -> Element | None:
    return next((c for c in _children(el) if etree.QName(c).localname == local), None)


def _filter(body: Element) -> EventFilter:
    found = _child(body, "Filter")
    if found is None:
        return EventFilter()
    parts = [
        FilterPart(
            etree.QName(c).namespace,
            etree.QName(c).localname,
            c.get("Dialect"),
            c.text or "",
            dict(c.nsmap),  # every prefix in scope, as the client declared them
            has_children=bool(_children(c)),
        )
        for c in _children(found)
    ]
    try:
        return build_filter(parts)
    except FilterError as exc:
        raise _wsn_fault(exc.kind.value, exc.reason) from None


def _changed_only(body: Element) -> bool:
    policy = _child(body, "SubscriptionPolicy")
    if policy is None:
        return False
    changed_only = False
    for c in _children(policy):
        if c.tag != qname("tev", "ChangedOnly"):
            raise _wsn_fault("UnrecognizedPolicyRequestFault", f"policy {c.tag!s}"[:200])
        changed_only = True
    return changed_only


def _initial_termination(body: Element) -> str | None:
    el = _child(body, "InitialTerminationTime")
    if el is None or el.get(_XSI_NIL) in ("true", "1"):
        return None
    return (el.text or "").strip()


def _times(sub: Subscription, now: datetime, *, tev: bool = False) -> list[Element]:
    maker = TEV if tev else WSNT
    return [maker.CurrentTime(utc_text(now)), maker.TerminationTime(utc_text(sub.termination))]


# -- the service ------------------------------------------------------------------------------


class EventService:
    """The Event service's handlers; one `SubscriptionManager` per broker (per camera)."""

    def __init__(
        self,
        limits: Limits = LIMITS,
        transport: PushTransport | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.limits = limits
        self.transport = transport or (lambda: http_transport(limits.push_timeout_s))
        self.clock = clock
        self._managers: weakref.WeakKeyDictionary[EventBroker, SubscriptionManager] = (
            weakref.WeakKeyDictionary()
        )

    def manager(self, broker: EventBroker) -> SubscriptionManager:
        found = self._managers.get(broker)
        if found is None:
            extra = {"clock": self.clock} if self.clock is not None else {}
            found = SubscriptionManager(broker, self.limits, transport=self.transport, **extra)
            self._managers[broker] = found
        return found

    def _subscription_id(self, req: OnvifRequest) -> str:
        if not req.path.startswith(SUBSCRIPTION_PATH):
            raise resource_unknown()  # an operation of a subscription sent to the service
        return req.path[len(SUBSCRIPTION_PATH) :]

    def _create(self, req: OnvifRequest, consumer: str | None) -> Subscription:
        manager = self.manager(req.model.events)
        event_filter = _filter(req.body)
        changed_only = _changed_only(req.body)
        termination = _initial_termination(req.body)
        try:
            return manager.create(
                event_filter,
                termination,
                changed_only=changed_only,
                consumer=consumer,
                address=lambda sub_id: req.url(
                    "http", req.model.http_port, SUBSCRIPTION_PATH + sub_id
                ),
            )
        except UnacceptableTime as exc:
            raise _time_fault("UnacceptableInitialTerminationTimeFault", exc) from None
        except ValueError as exc:
            raise faults.invalid_arg(f"InitialTerminationTime: {exc}") from None
        except TooManySubscriptions as exc:
            raise _wsn_fault("SubscribeCreationFailedFault", str(exc)) from None

    # -- EventPortType ------------------------------------------------------------------------

    def get_service_capabilities(self, req: OnvifRequest) -> list[Element]:
        return [TEV.GetServiceCapabilitiesResponse(event_capabilities(req.model))]

    def get_event_properties(self, req: OnvifRequest) -> list[Element]:
        return [
            TEV.GetEventPropertiesResponse(
                TEV.TopicNamespaceLocation(TOPIC_NAMESPACE_LOCATION),
                WSNT.FixedTopicSet("true"),
                topic_set(req.model.events.topics()),
                WSNT.TopicExpressionDialect(CONCRETE),
                WSNT.TopicExpressionDialect(CONCRETE_SET),
                TEV.MessageContentFilterDialect(ITEM_FILTER),
                TEV.MessageContentSchemaLocation(SCHEMA_LOCATION),
            )
        ]

    def create_pull_point_subscription(self, req: OnvifRequest) -> list[Element]:
        sub = self._create(req, None)
        now = self.manager(req.model.events).clock()
        return [
            TEV.CreatePullPointSubscriptionResponse(
                TEV.SubscriptionReference(WSA_E.Address(sub.address)), *_times(sub, now)
            )
        ]

    # -- PullPointSubscription ----------------------------------------------------------------

    async def pull_messages(self, req: OnvifRequest) -> list[Element]:
        sub_id = self._subscription_id(req)
        manager = self.manager(req.model.events)
        try:
            if manager.get(sub_id).pushed:
                raise faults.invalid_arg("PullMessages on a pushed subscription")
        except SubscriptionGone:
            raise resource_unknown() from None
        timeout_text = arg_text(req.body, "Timeout")
        limit_text = arg_text(req.body, "MessageLimit")
        if timeout_text is None or limit_text is None:
            raise faults.invalid_args("PullMessages needs Timeout and MessageLimit")
        try:
            timeout = parse_duration(timeout_text)
            limit = int(limit_text)
        except ValueError as exc:
            raise faults.invalid_arg(f"PullMessages: {exc}") from None
        if timeout > self.limits.max_pull_timeout:
            most = int(self.limits.max_pull_timeout.total_seconds())
            raise SoapFault(
                faults.SENDER,
                ["ter:InvalidArgVal", "tev:PullMessagesFaultResponse"],
                "Timeout over the maximum",
                detail=f"MaxTimeout PT{most}S MaxMessageLimit {self.limits.max_message_limit}",
            )
        try:
            msgs = await manager.pull(sub_id, timeout, limit)
            sub = manager.get(sub_id)
        except SubscriptionGone:
            raise resource_unknown() from None
        return [
            TEV.PullMessagesResponse(
                *_times(sub, manager.clock(), tev=True),
                *[notification_message(m) for m in msgs],
            )
        ]

    def set_synchronization_point(self, req: OnvifRequest) -> list[Element]:
        try:
            self.manager(req.model.events).synchronize(self._subscription_id(req))
        except SubscriptionGone:
            raise resource_unknown() from None
        return [TEV.SetSynchronizationPointResponse()]

    # -- WS-BaseNotification ------------------------------------------------------------------

    def subscribe(self, req: OnvifRequest) -> list[Element]:
        ref = _child(req.body, "ConsumerReference")
        address = _child(ref, "Address") if ref is not None else None
        if address is None:
            raise faults.invalid_args("Subscribe needs ConsumerReference/Address")
        try:
            consumer = check_consumer(address.text or "")
        except ValueError as exc:
            raise SoapFault(
                RECEIVER, ["wsntw:SubscribeCreationFailedFault"], f"ConsumerReference: {exc}"
            ) from None
        sub = self._create(req, consumer)
        now = self.manager(req.model.events).clock()
        return [
            WSNT.SubscribeResponse(
                WSNT.SubscriptionReference(WSA_E.Address(sub.address)), *_times(sub, now)
            )
        ]

    def renew(self, req: OnvifRequest) -> list[Element]:
        sub_id = self._subscription_id(req)
        manager = self.manager(req.model.events)
        text = arg_text(req.body, "TerminationTime")
        try:
            if text is None:
                manager.get(sub_id)
                raise faults.invalid_args("Renew needs TerminationTime")
            sub = manager.renew(sub_id, text)
        except SubscriptionGone:
            raise resource_unknown() from None
        except UnacceptableTime as exc:
            raise _time_fault("UnacceptableTerminationTimeFault", exc) from None
        except ValueError as exc:
            raise faults.invalid_arg(f"TerminationTime: {exc}") from None
        now = manager.clock()
        return [
            WSNT.RenewResponse(
                WSNT.TerminationTime(utc_text(sub.termination)), WSNT.CurrentTime(utc_text(now))
            )
        ]

    def unsubscribe(self, req: OnvifRequest) -> list[Element]:
        try:
            self.manager(req.model.events).unsubscribe(self._subscription_id(req))
        except SubscriptionGone:
            raise resource_unknown() from None
        return [WSNT.UnsubscribeResponse()]


def register_events(dispatcher: OnvifDispatcher, service: EventService | None = None) -> None:
    """Registers the Event service: every operation READ_MEDIA (Core spec) but
    GetServiceCapabilities."""
    svc = service or EventService()
    read = AccessClass.READ_MEDIA
    dispatcher.register(
        qname("tev", "GetServiceCapabilities"),
        svc.get_service_capabilities,
        access=SERVICE_CAPABILITIES,
    )
    for prefix, name, handler in (
        ("tev", "GetEventProperties", svc.get_event_properties),
        ("tev", "CreatePullPointSubscription", svc.create_pull_point_subscription),
        ("tev", "PullMessages", svc.pull_messages),
        ("tev", "SetSynchronizationPoint", svc.set_synchronization_point),
        ("wsnt", "Subscribe", svc.subscribe),
        ("wsnt", "Renew", svc.renew),
        ("wsnt", "Unsubscribe", svc.unsubscribe),
    ):
        dispatcher.register(qname(prefix, name), handler, access=read)
