"""The drop-to-keyframe policy of one RTSP client (vcam.rtsp.fanout.ClientSink): a client whose
connection holds too many unsent bytes skips to the next keyframe; one that never catches up is
disconnected, one that falls behind now and then over a long life is not.

The target here stands for the client's connection and its unsent bytes (what the kernel and
the event loop hold); tests/test_rtsp_server.py and tests/test_web_tunnel.py stall real ones.
"""

from __future__ import annotations

from vcam.rtsp.fanout import ClientSink, SharedBatch
from vcam.rtsp.rtp import RtpBatch

LIMIT = 1000


class Connection:
    """A client connection whose unsent bytes the test sets: `draining` empties it."""

    disconnectable = True

    def __init__(self) -> None:
        self.unsent = 0
        self.sent: list[int] = []
        self.closed = False

    def send(self, batch: SharedBatch) -> None:
        self.sent.append(batch.batch.first_seq)
        self.unsent += batch.batch.octets

    def send_rtcp(self, packet: bytes) -> None:
        pass

    def backlog(self) -> int:
        return self.unsent

    def close(self) -> None:
        self.closed = True


def gop(start: int, frames: int = 10) -> list[SharedBatch]:
    """A keyframe then `frames - 1` others, 400 bytes each."""
    return [
        SharedBatch(RtpBatch((b"x" * 400,), start + i, 3000 * (start + i), i == 0, 400))
        for i in range(frames)
    ]


def test_a_client_that_never_catches_up_is_disconnected() -> None:
    conn = Connection()
    sink = ClientSink(conn, LIMIT, max_overflows=3)
    for k in range(5):
        for batch in gop(10 * k):
            sink.offer(batch)  # it never reads: full after the first frames
    assert conn.closed and sink.closed and sink.overflows == 3
    assert conn.sent == [0, 1, 2]  # the keyframe and what fitted, then nothing


def test_a_client_that_falls_behind_now_and_then_stays() -> None:
    conn = Connection()
    sink = ClientSink(conn, LIMIT, max_overflows=3)
    for k in range(10):  # ten times over its life: behind, then drained before the next GOP
        for batch in gop(10 * k):
            sink.offer(batch)
        conn.unsent = 0
    assert not conn.closed and not sink.closed
    # Every GOP starts with its keyframe and what fitted behind it.
    assert conn.sent == [10 * k + i for k in range(10) for i in range(3)]
    assert sink.dropped == 10  # once a GOP it fell behind (and skipped to the next keyframe)
