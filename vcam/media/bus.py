"""The encoded-output bus: encode once, fan out through a bounded queue per subscriber.

Rules (mediamtx's `internal/stream` model, not go2rtc's worst-viewer stall):
- `publish` never blocks and never waits on a subscriber; it runs on the encoder thread.
- A subscriber starts at the next keyframe of its stream; the bus asks the stream's encoder for
  one (rate-limited) so a joiner does not wait a whole GOP.
- A full queue drops that unit and every following one until the next keyframe (counted), then
  resumes there: the subscriber's decoder never sees a unit whose references are missing.
- Consumers read with a blocking `get(timeout)` or, on the event loop, `await aget()`, woken with
  `loop.call_soon_threadsafe` (no polling).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vcam.media.types import EncodedUnit

log = logging.getLogger("vcam.bus")

KeyframeCallback = Callable[[], None]


class Subscription:
    """One consumer's bounded view of one stream. Create with `EncodedBus.subscribe`."""

    def __init__(self, bus: EncodedBus, stream: str, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.stream = stream
        self.maxsize = maxsize
        self._bus = bus
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[EncodedUnit] = collections.deque()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._need_keyframe = True  # at start and after an overflow
        self._started = False  # has queued its first keyframe
        self._closed = False
        self.delivered = 0  # units handed to the consumer by get/aget
        self.dropped = 0  # units lost to a full queue (including the rest of that GOP)
        self.skipped = 0  # units before the first keyframe (not a loss: nothing to decode yet)
        self.overflows = 0  # times the queue filled up

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        return len(self._queue)

    def _offer(self, unit: EncodedUnit) -> bool:
        """Called by the publisher. True when the queue was full (the unit was dropped)."""
        with self._cond:
            if self._closed:
                return False
            if self._need_keyframe and not unit.keyframe:
                if self._started:
                    self.dropped += 1  # the rest of a GOP after an overflow
                else:
                    self.skipped += 1
                return False
            if len(self._queue) >= self.maxsize:
                self.dropped += 1
                self.overflows += 1
                self._need_keyframe = True
                return True
            self._need_keyframe = False
            self._started = True
            self._queue.append(unit)
            self._cond.notify()
            wake, self._waiters = self._waiters, []
        for loop, fut in wake:
            _wake_threadsafe(loop, fut)
        return False

    def get(self, timeout: float | None = None) -> EncodedUnit | None:
        """The next unit; None on timeout or once closed and drained. Blocks the calling thread."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            self.delivered += 1
            return self._queue.popleft()

    def get_nowait(self) -> EncodedUnit | None:
        with self._cond:
            if not self._queue:
                return None
            self.delivered += 1
            return self._queue.popleft()

    async def aget(self) -> EncodedUnit | None:
        """The next unit, awaited on the running event loop; None once closed and drained."""
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                if self._queue:
                    self.delivered += 1
                    return self._queue.popleft()
                if self._closed:
                    return None
                fut: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, fut))
            try:
                await fut
            finally:
                with self._cond:
                    if (loop, fut) in self._waiters:
                        self._waiters.remove((loop, fut))

    def close(self) -> None:
        """Stop receiving; wakes every waiter. Idempotent; queued units can still be read."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
            wake, self._waiters = self._waiters, []
        for loop, fut in wake:
            _wake_threadsafe(loop, fut)
        self._bus._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wake_threadsafe(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None]) -> None:
    # RuntimeError: the loop is closed, so nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_set_done, fut)


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


@dataclass
class StreamStats:
    published: int = 0
    keyframes: int = 0
    bytes: int = 0
    keyframe_requests: int = 0  # callbacks actually made (after rate limiting)
    last_keyframe_request: float = field(default=-1e18, repr=False)


@dataclass(frozen=True)
class BusStats:
    published: dict[str, int]
    keyframes: dict[str, int]
    subscribers: dict[str, int]
    keyframe_requests: dict[str, int]
    dropped: int  # by current subscribers
    delivered: int  # by current subscribers


class EncodedBus:
    """Fan-out of encoded units to subscribers, per stream name."""

    def __init__(
        self,
        default_maxsize: int = 120,
        keyframe_request_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default_maxsize = default_maxsize
        self.keyframe_request_interval_s = keyframe_request_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        # Copy-on-write tuples: publish iterates a snapshot without holding the lock.
        self._subs: dict[str, tuple[Subscription, ...]] = {}
        self._callbacks: dict[str, KeyframeCallback] = {}
        self._stats: dict[str, StreamStats] = {}

    def set_keyframe_callback(self, stream: str, callback: KeyframeCallback | None) -> None:
        """Register what asks `stream`'s encoder for an IDR. It must be thread-safe and quick:
        it runs on the subscriber's thread (subscribe) or on the publisher's (overflow)."""
        with self._lock:
            if callback is None:
                self._callbacks.pop(stream, None)
            else:
                self._callbacks[stream] = callback

    def subscribe(self, stream: str, maxsize: int | None = None) -> Subscription:
        sub = Subscription(self, stream, maxsize if maxsize is not None else self.default_maxsize)
        with self._lock:
            self._subs[stream] = (*self._subs.get(stream, ()), sub)
        self.request_keyframe(stream)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Same as `sub.close()`; idempotent."""
        sub.close()

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.stream, ())
            if sub in subs:
                rest = tuple(s for s in subs if s is not sub)
                if rest:
                    self._subs[sub.stream] = rest
                else:
                    del self._subs[sub.stream]

    def publish(self, unit: EncodedUnit) -> None:
        """Offer `unit` to every subscriber of its stream. Thread-safe; never blocks on them."""
        with self._lock:
            st = self._stats.setdefault(unit.stream, StreamStats())
            st.published += 1
            st.keyframes += unit.keyframe
            st.bytes += len(unit.data)
            subs = self._subs.get(unit.stream, ())
        overflowed = False
        for sub in subs:
            overflowed |= sub._offer(unit)
        if overflowed:
            self.request_keyframe(unit.stream)  # shortens the overflowing reader's gap

    def request_keyframe(self, stream: str) -> bool:
        """Ask `stream`'s encoder for an IDR, at most once per interval. True if asked."""
        now = self._clock()
        with self._lock:
            cb = self._callbacks.get(stream)
            st = self._stats.setdefault(stream, StreamStats())
            if cb is None or now - st.last_keyframe_request < self.keyframe_request_interval_s:
                return False
            st.last_keyframe_request = now
            st.keyframe_requests += 1
        try:
            cb()  # outside the lock: the callback may take the encoder's own locks
        except Exception:
            log.exception("keyframe request for stream %s failed", stream)
            return False
        return True

    def subscriber_count(self, stream: str | None = None) -> int:
        with self._lock:
            if stream is not None:
                return len(self._subs.get(stream, ()))
            return sum(len(s) for s in self._subs.values())

    def stats(self) -> BusStats:
        with self._lock:
            subs = dict(self._subs)
            streams = dict(self._stats)
            return BusStats(
                published={k: s.published for k, s in streams.items()},
                keyframes={k: s.keyframes for k, s in streams.items()},
                subscribers={k: len(v) for k, v in subs.items()},
                keyframe_requests={k: s.keyframe_requests for k, s in streams.items()},
                dropped=sum(s.dropped for v in subs.values() for s in v),
                delivered=sum(s.delivered for v in subs.values() for s in v),
            )
