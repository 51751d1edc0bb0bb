"""Event subscriptions: pull points (PullMessages) and pushed ones (WS-BaseNotification Notify).

Sans-HTTP and asyncio: the ONVIF handlers (vcam/onvif/events.py) call `create`, `pull`,
`renew`, `unsubscribe` and `synchronize` on the web server's loop; this module never parses
SOAP nor opens sockets (pushed messages go through the `PushTransport` it is given).

Flow: the broker calls `_on_publish` in the publisher's thread (the analytics in the gate
thread); it only appends to a bounded inbox and schedules at most one drain on the loop. The
drain matches each message against every subscription's filter and appends it to that
subscription's bounded queue (oldest dropped, counted), waking its waiting PullMessages or its
push task. Everything per subscription lives on the loop, without locks.

Resources exist only while subscriptions do: the broker subscription, the sweeper task that
removes expired subscriptions, and one task per pushed subscription are created with the first
and released with the last, so an idle camera holds no task and no broker callback.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from vcam.events.broker import EventBroker
from vcam.events.filters import ALL_EVENTS, EventFilter
from vcam.events.message import EventMessage, PropertyOperation

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Send = Callable[["Subscription", list[EventMessage]], Awaitable[None]]
# Opens what one pushed subscription sends with (an HTTP session), for as long as it lives.
PushTransport = Callable[[], AbstractAsyncContextManager[Send]]


@dataclass(frozen=True)
class Limits:
    max_pull_points: int = 10  # GetServiceCapabilities MaxPullPoints
    max_push: int = 4  # MaxNotificationProducers: WS-BaseNotification subscriptions at once
    queue: int = 256  # messages waiting per subscription (the oldest is dropped beyond)
    inbox: int = 4096  # published, not yet handed to subscriptions (broker -> loop)
    default_termination: timedelta = timedelta(seconds=60)
    max_termination: timedelta = timedelta(hours=1)
    max_pull_timeout: timedelta = timedelta(minutes=10)
    max_message_limit: int = 1024  # larger MessageLimits are answered with fewer messages
    push_batch: int = 32  # messages per Notify
    push_timeout_s: float = 5.0  # one Notify POST, connect included
    push_failures: int = 3  # consecutive failed Notify POSTs before the subscription ends
    sweep_s: float = 1.0  # expiry granularity


class SubscriptionGone(LookupError):
    """No such subscription: never created, unsubscribed, or expired."""


class TooManySubscriptions(RuntimeError):
    pass


class UnacceptableTime(ValueError):
    """A termination time before now or beyond the maximum; `minimum`/`maximum` for the fault."""

    def __init__(self, reason: str, minimum: datetime, maximum: datetime) -> None:
        super().__init__(reason)
        self.minimum = minimum
        self.maximum = maximum


_DURATION = re.compile(
    r"P(?:(?P<Y>\d+)Y)?(?:(?P<Mo>\d+)M)?(?:(?P<D>\d+)D)?"
    r"(?:T(?:(?P<H>\d+)H)?(?:(?P<Mi>\d+)M)?(?:(?P<S>\d+(?:\.\d+)?)S)?)?\Z"
)


def parse_duration(text: str) -> timedelta:
    """xs:duration ("PT60S", "PT1M", "P1DT2H") as a timedelta; ValueError for anything else,
    including negative durations and non-zero years or months (their length is ambiguous)."""
    text = text.strip()
    m = _DURATION.match(text)
    if m is None or text in ("P", "PT") or text.endswith("T") or len(text) > 64:
        raise ValueError(f"not an xs:duration: {text[:40]!r}")
    if int(m.group("Y") or 0) or int(m.group("Mo") or 0):
        raise ValueError("durations in years or months are not accepted")
    return timedelta(
        days=int(m.group("D") or 0),
        hours=int(m.group("H") or 0),
        minutes=int(m.group("Mi") or 0),
        seconds=float(m.group("S") or 0),
    )


def parse_time(text: str, now: datetime) -> datetime:
    """wsnt:AbsoluteOrRelativeTimeType: a duration from `now`, or an xs:dateTime (UTC when it
    has no zone)."""
    text = text.strip()
    if text.startswith("P"):
        return now + parse_duration(text)
    if len(text) > 64:
        raise ValueError("not an xs:dateTime")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an xs:dateTime or xs:duration: {text[:40]!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(eq=False)
class Subscription:
    id: str  # the unguessable last segment of its URL
    filter: EventFilter
    termination: datetime
    changed_only: bool = False  # tev:ChangedOnly: no Initialized/Deleted property messages
    consumer: str | None = None  # pushed subscriptions: where Notify goes
    address: str = ""  # its SubscriptionReference address
    queue: deque[EventMessage] = field(default_factory=deque)
    dropped: int = 0  # messages lost to a full queue (or a failed Notify)
    delivered: int = 0
    closed: bool = False
    _waiter: asyncio.Future[None] | None = None  # the waiting PullMessages
    _ready: asyncio.Event = field(default_factory=asyncio.Event)  # for the push task
    _task: asyncio.Task[None] | None = None

    @property
    def pushed(self) -> bool:
        return self.consumer is not None

    def take(self, limit: int) -> list[EventMessage]:
        out = [self.queue.popleft() for _ in range(min(limit, len(self.queue)))]
        self.delivered += len(out)
        return out

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._ready.set()


class SubscriptionManager:
    def __init__(
        self,
        broker: EventBroker,
        limits: Limits = Limits(),  # frozen: one shared default is safe
        *,
        clock: Clock = lambda: datetime.now(UTC),
        transport: PushTransport | None = None,
    ) -> None:
        self.broker = broker
        self.limits = limits
        self.clock = clock
        self.transport = transport
        self._subs: dict[str, Subscription] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe_broker: Callable[[], None] | None = None
        # A timer, not a task: nothing is left pending when a loop closes under it.
        self._sweeper: asyncio.TimerHandle | None = None
        # The hand-off from publisher threads: the only state shared across threads.
        self._lock = threading.Lock()
        self._inbox: deque[EventMessage] = deque(maxlen=limits.inbox)
        self._drain_scheduled = False
        self.inbox_dropped = 0
        self.expired = 0
        self.consumers_dropped = 0

    # -- queries ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._subs)

    def count(self, *, pushed: bool) -> int:
        return sum(1 for s in self._subs.values() if s.pushed == pushed)

    def get(self, sub_id: str) -> Subscription:
        sub = self._subs.get(sub_id)
        if sub is None:
            raise SubscriptionGone(sub_id)
        if sub.termination <= self.clock():  # expired, not yet swept
            self.expired += 1
            self._remove(sub)
            raise SubscriptionGone(sub_id)
        return sub

    def check_termination(self, when: datetime, now: datetime) -> datetime:
        latest = now + self.limits.max_termination
        if when <= now or when > latest:
            raise UnacceptableTime(
                "termination time must be in the future and at most "
                f"{int(self.limits.max_termination.total_seconds())} s away",
                now,
                latest,
            )
        return when

    # -- lifecycle ----------------------------------------------------------------------------

    def create(
        self,
        filter: EventFilter = ALL_EVENTS,
        termination: str | None = None,
        *,
        changed_only: bool = False,
        consumer: str | None = None,
        address: Callable[[str], str] = lambda sub_id: sub_id,
    ) -> Subscription:
        """A new subscription, already holding every current property as Initialized (unless
        ChangedOnly). Call on the loop. Raises ValueError (unparseable time), UnacceptableTime,
        TooManySubscriptions."""
        loop = asyncio.get_running_loop()
        now = self.clock()
        when = now + self.limits.default_termination
        if termination is not None:
            when = self.check_termination(parse_time(termination, now), now)
        pushed = consumer is not None
        cap = self.limits.max_push if pushed else self.limits.max_pull_points
        if self.count(pushed=pushed) >= cap:
            raise TooManySubscriptions(f"at most {cap} {'pushed' if pushed else 'pull point'}s")
        if pushed and self.transport is None:
            raise TooManySubscriptions("this device cannot push notifications")
        self._bind(loop)
        sub_id = secrets.token_urlsafe(18)  # 144 bits: the URL is the only credential of it
        sub = Subscription(sub_id, filter, when, changed_only, consumer)
        sub.queue = deque(maxlen=self.limits.queue)
        sub.address = address(sub_id)
        self._subs[sub_id] = sub
        # Registered first, then the snapshot: a change published in between reaches it twice
        # at worst (Initialized, then Changed), never not at all.
        self._initialize(sub)
        if pushed:
            sub._task = loop.create_task(self._push(sub), name=f"vcam-notify-{sub_id[:6]}")
        if self._sweeper is None:
            self._sweep()
        return sub

    def renew(self, sub_id: str, termination: str) -> Subscription:
        sub = self.get(sub_id)
        now = self.clock()
        sub.termination = self.check_termination(parse_time(termination, now), now)
        return sub

    def unsubscribe(self, sub_id: str) -> None:
        self._remove(self.get(sub_id))

    def synchronize(self, sub_id: str) -> None:
        """SetSynchronizationPoint: every current property again, as Initialized."""
        self._initialize(self.get(sub_id))

    async def pull(self, sub_id: str, timeout: timedelta, limit: int) -> list[EventMessage]:
        """PullMessages: what is queued at once, else wait for the first message or the
        timeout. A second PullMessages on the same subscription ends the waiting one (with
        what is queued then): a client that gave up on a pull must not be locked out."""
        sub = self.get(sub_id)
        limit = max(1, min(limit, self.limits.max_message_limit))
        now = self.clock()
        # Core spec: after a PullMessages the pull point lives at least for its timeout.
        sub.termination = max(sub.termination, now + timeout)
        if not sub.queue and timeout > timedelta(0):
            if sub._waiter is not None and not sub._waiter.done():
                sub._waiter.set_result(None)
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            sub._waiter = waiter
            try:
                await asyncio.wait_for(waiter, timeout.total_seconds())
            except TimeoutError:
                pass
            finally:
                if sub._waiter is waiter:
                    sub._waiter = None
            if sub.closed:
                raise SubscriptionGone(sub_id)
            sub.termination = max(sub.termination, self.clock() + timeout)
        return sub.take(limit)

    async def close(self) -> None:
        """Ends every subscription and waits for its tasks."""
        tasks = [s._task for s in self._subs.values() if s._task is not None]
        for sub in list(self._subs.values()):
            self._remove(sub)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- internals ----------------------------------------------------------------------------

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop:
            return
        if self._loop is not None and not self._loop.is_closed() and self._subs:
            raise RuntimeError("event subscriptions are served from one event loop")
        self._subs.clear()  # left over from a loop that was closed under them
        self._sweeper = None
        self._loop = loop
        with self._lock:  # a publish racing the last release must not reach new subscribers
            self._inbox.clear()
            self._drain_scheduled = False
        if self._unsubscribe_broker is None:
            self._unsubscribe_broker = self.broker.subscribe(self._on_publish)

    def _release(self) -> None:
        """The last subscription ended: let go of the broker and the sweeper."""
        if self._unsubscribe_broker is not None:
            self._unsubscribe_broker()
            self._unsubscribe_broker = None
        with self._lock:
            self._inbox.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._loop = None

    def _remove(self, sub: Subscription) -> None:
        if self._subs.get(sub.id) is not sub:
            return
        del self._subs[sub.id]
        sub.closed = True
        sub.queue.clear()
        sub._wake()  # a waiting PullMessages returns and faults; the push task ends
        if sub._task is not None and sub._task is not asyncio.current_task():
            sub._task.cancel()
        if not self._subs:
            self._release()

    def _enqueue(self, sub: Subscription, msg: EventMessage) -> None:
        if sub.changed_only and msg.operation in (
            PropertyOperation.INITIALIZED,
            PropertyOperation.DELETED,
        ):
            return
        if not sub.filter.matches(msg):
            return
        if len(sub.queue) == sub.queue.maxlen:
            sub.dropped += 1  # deque(maxlen) drops the oldest
        sub.queue.append(msg)
        sub._wake()

    def _initialize(self, sub: Subscription) -> None:
        for msg in self.broker.properties():
            self._enqueue(sub, msg)

    def _on_publish(self, msg: EventMessage) -> None:
        """Broker callback, in the publisher's thread: bounded hand-off, one wake-up."""
        with self._lock:
            if len(self._inbox) == self._inbox.maxlen:
                self.inbox_dropped += 1
            self._inbox.append(msg)
            if self._drain_scheduled:
                return
            loop = self._loop
            self._drain_scheduled = loop is not None
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop closed under us: nobody is listening
                with self._lock:
                    self._drain_scheduled = False

    def _drain(self) -> None:
        with self._lock:
            msgs = list(self._inbox)
            self._inbox.clear()
            self._drain_scheduled = False
        for msg in msgs:
            for sub in list(self._subs.values()):
                self._enqueue(sub, msg)

    def _sweep(self) -> None:
        """Removes expired subscriptions, then runs again by the soonest termination (at most
        `sweep_s` later) while any subscription is left."""
        self._sweeper = None
        now = self.clock()
        for sub in [s for s in self._subs.values() if s.termination <= now]:
            log.info("event subscription %s… expired", sub.id[:6])
            self.expired += 1
            self._remove(sub)
        if not self._subs or self._loop is None:
            return
        soonest = min(s.termination for s in self._subs.values())
        wait = min(self.limits.sweep_s, max(0.01, (soonest - now).total_seconds()))
        self._sweeper = self._loop.call_later(wait, self._sweep)

    async def _push(self, sub: Subscription) -> None:
        """Delivers one pushed subscription's queue as Notify batches until it ends; a consumer
        that keeps failing ends it."""
        assert self.transport is not None  # checked in create
        failures = 0
        try:
            async with self.transport() as send:
                while not sub.closed:
                    await sub._ready.wait()
                    sub._ready.clear()
                    while sub.queue and not sub.closed:
                        batch = sub.take(self.limits.push_batch)
                        try:
                            async with asyncio.timeout(self.limits.push_timeout_s):
                                await send(sub, batch)
                            failures = 0
                        except asyncio.CancelledError:
                            raise
                        except Exception as exc:  # any failure of the consumer: counted
                            failures += 1
                            sub.dropped += len(batch)
                            sub.delivered -= len(batch)
                            log.info("Notify to %s failed (%d): %s", sub.consumer, failures, exc)
                            if failures >= self.limits.push_failures:
                                self.consumers_dropped += 1
                                return
                            await asyncio.sleep(0.2 * 2**failures)
        finally:
            self._remove(sub)
