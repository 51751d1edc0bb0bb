"""EncodedBus: bounded fan-out, keyframe starts, drop-until-keyframe, asyncio wake-ups."""

from __future__ import annotations

import asyncio
import threading
import time

from vcam.media.bus import EncodedBus, Subscription
from vcam.media.types import EncodedUnit


def unit(i: int, gop: int = 10, stream: str = "main") -> EncodedUnit:
    return EncodedUnit(
        stream=stream,
        data=b"\x00\x00\x00\x01" + i.to_bytes(4, "big"),
        pts_us=i * 33_333,
        keyframe=i % gop == 0,
        width=320,
        height=240,
        index=i,
    )


def drain(sub: Subscription) -> list[int]:
    out: list[int] = []
    while (u := sub.get_nowait()) is not None:
        out.append(u.index)
    return out


def test_fan_out_in_order_to_every_subscriber() -> None:
    bus = EncodedBus(default_maxsize=100)
    subs = [bus.subscribe("main") for _ in range(3)]
    other = bus.subscribe("sub")
    for i in range(30):
        bus.publish(unit(i))
    for s in subs:
        assert drain(s) == list(range(30))
        assert (s.delivered, s.dropped, s.skipped) == (30, 0, 0)
    assert drain(other) == []  # another stream's units never cross over
    st = bus.stats()
    assert st.published["main"] == 30 and st.published.get("sub", 0) == 0
    assert st.keyframes["main"] == 3
    assert st.subscribers == {"main": 3, "sub": 1}


def test_new_subscriber_starts_at_a_keyframe() -> None:
    bus = EncodedBus()
    for i in range(3):
        bus.publish(unit(i))
    late = bus.subscribe("main")
    for i in range(3, 25):
        bus.publish(unit(i))
    got = drain(late)
    assert got == list(range(10, 25))
    assert late.skipped == 7 and late.dropped == 0


def test_slow_subscriber_drops_until_keyframe_fast_one_gets_everything() -> None:
    bus = EncodedBus()
    fast = bus.subscribe("main", maxsize=100)
    slow = bus.subscribe("main", maxsize=4)
    for i in range(15):  # slow reads nothing: full after 0..3, drops 4..9, key 10 needs room
        bus.publish(unit(i))
    assert drain(slow) == [0, 1, 2, 3]
    for i in range(15, 35):
        bus.publish(unit(i))
    assert drain(fast) == list(range(35))
    # 4..19 dropped (10 found the queue full), resumes at the keyframe 20, then full again.
    assert drain(slow) == [20, 21, 22, 23]
    assert slow.dropped == (20 - 4) + (35 - 24)
    assert slow.overflows == 4  # at 4, 10 (a keyframe, still full), 24 and 30 (same)
    assert fast.dropped == 0 and fast.delivered == 35
    assert bus.stats().dropped == slow.dropped


def test_publish_never_blocks_on_a_stuck_reader() -> None:
    bus = EncodedBus(default_maxsize=2)
    bus.subscribe("main")  # never read
    t0 = time.perf_counter()
    for i in range(10_000):
        bus.publish(unit(i))
    assert time.perf_counter() - t0 < 1.0


def test_keyframe_requests_are_rate_limited() -> None:
    now = [100.0]
    bus = EncodedBus(keyframe_request_interval_s=2.0, clock=lambda: now[0])
    calls: list[float] = []
    bus.set_keyframe_callback("main", lambda: calls.append(now[0]))
    bus.subscribe("main")
    bus.subscribe("main")  # same instant: no second request
    now[0] += 1.0
    bus.subscribe("main")  # still within 2 s
    now[0] += 1.5
    bus.subscribe("main")
    bus.subscribe("sub")  # no callback for that stream: nothing, no error
    assert calls == [100.0, 102.5]
    assert bus.stats().keyframe_requests == {"main": 2, "sub": 0}
    bus.set_keyframe_callback("main", None)
    now[0] += 10
    bus.subscribe("main")
    assert len(calls) == 2


def test_overflow_asks_for_a_keyframe() -> None:
    bus = EncodedBus(keyframe_request_interval_s=0.0)
    calls: list[int] = []
    bus.set_keyframe_callback("main", lambda: calls.append(1))
    bus.subscribe("main", maxsize=2)
    assert len(calls) == 1  # the join
    for i in range(3):
        bus.publish(unit(i))
    assert len(calls) == 2  # the overflow at unit 2


def test_close_is_idempotent_and_wakes_a_blocked_get() -> None:
    bus = EncodedBus()
    sub = bus.subscribe("main")
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(sub.get(timeout=5.0)))
    t.start()
    time.sleep(0.05)
    sub.close()
    t.join(1.0)
    assert not t.is_alive() and result == [None]
    sub.close()
    bus.unsubscribe(sub)
    assert bus.subscriber_count() == 0
    bus.publish(unit(0))
    assert sub.get(timeout=0) is None


def test_get_times_out() -> None:
    sub = EncodedBus().subscribe("main")
    t0 = time.perf_counter()
    assert sub.get(timeout=0.05) is None
    assert 0.04 < time.perf_counter() - t0 < 1.0


def test_aget_is_woken_by_a_publisher_thread() -> None:
    async def main() -> tuple[list[int], object]:
        bus = EncodedBus()
        sub = bus.subscribe("main")
        acks = [threading.Event() for _ in range(20)]

        def producer() -> None:
            # Ping-pong: each unit must reach the awaiting consumer while the subscription is
            # open, so only a real wake-up (not close() at the end) can make this pass.
            for i in range(20):
                bus.publish(unit(i))
                if not acks[i].wait(2.0):
                    break
            sub.close()

        threading.Thread(target=producer).start()
        got: list[int] = []
        for i in range(20):
            u = await asyncio.wait_for(sub.aget(), 1.0)
            assert u is not None
            got.append(u.index)
            acks[i].set()
        end = await asyncio.wait_for(sub.aget(), 1.0)  # closed and drained
        return got, end

    assert asyncio.run(main()) == (list(range(20)), None)


def test_aget_cancellation_leaves_no_waiter() -> None:
    async def main() -> int:
        bus = EncodedBus()
        sub = bus.subscribe("main")
        task = asyncio.create_task(sub.aget())
        await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        bus.publish(unit(0))
        got = await asyncio.wait_for(sub.aget(), 1.0)
        assert got is not None
        return len(sub._waiters)

    assert asyncio.run(main()) == 0
