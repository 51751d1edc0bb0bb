"""Raw RTSP/RTP-over-TCP clients for benchmarks/rtsp.py (no vcam imports on the counting path).

- `play_tcp`: a blocking handshake (DESCRIBE with Digest, SETUP interleaved=0-1, PLAY) that
  returns the socket and the bytes already received after the PLAY answer.
- `Counter`: parses interleaved frames from one connection and counts bytes, RTP packets,
  frames (marker bits), RTCP packets and RTP sequence gaps.
- `count_worker`: a process body that plays N clients, reads them all with `selectors`, and
  answers "mark" (a snapshot of every counter and its own CPU time) and "quit" on a pipe.
"""

from __future__ import annotations

import hashlib
import re
import selectors
import socket
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

RECV = 1 << 18


@dataclass
class Played:
    sock: socket.socket
    leftover: bytes


class HandshakeError(RuntimeError):
    pass


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _read_reply(sock: socket.socket, buf: bytearray, deadline: float) -> tuple[int, dict[str, str]]:
    """One RTSP reply from the head of `buf` (interleaved frames before it are skipped)."""
    while True:
        while buf[:1] == b"$" and len(buf) >= 4:
            n = int.from_bytes(buf[2:4], "big")
            if len(buf) < 4 + n:
                break
            del buf[: 4 + n]
        if buf[:1] != b"$":
            head, sep, rest = bytes(buf).partition(b"\r\n\r\n")
            if sep:
                lines = head.decode("latin-1").split("\r\n")
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                if len(rest) >= length:
                    del buf[: len(head) + 4 + length]
                    return int(lines[0].split()[1]), headers
        left = deadline - time.monotonic()
        if left <= 0:
            raise HandshakeError("no RTSP reply in time")
        sock.settimeout(left)
        chunk = sock.recv(RECV)
        if not chunk:
            raise HandshakeError("server closed the connection")
        buf += chunk


def play_tcp(
    host: str, port: int, stream: str, user: str, password: str, timeout: float = 15.0
) -> Played:
    """DESCRIBE (Digest), SETUP trackID=0 interleaved, PLAY; the socket is left blocking."""
    deadline = time.monotonic() + timeout
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    base = f"rtsp://{host}:{port}/{stream}"
    cseq = 0
    challenge: dict[str, str] = {}
    session = ""

    def request(method: str, url: str, extra: dict[str, str]) -> tuple[int, dict[str, str]]:
        nonlocal cseq, challenge
        for _attempt in range(2):
            cseq += 1
            lines = [f"{method} {url} RTSP/1.0", f"CSeq: {cseq}"]
            if challenge:
                realm, nonce = challenge["realm"], challenge["nonce"]
                ha1 = _md5(f"{user}:{realm}:{password}")
                resp = _md5(f"{ha1}:{nonce}:{_md5(f'{method}:{url}')}")
                lines.append(
                    f'Authorization: Digest username="{user}", realm="{realm}", '
                    f'nonce="{nonce}", uri="{url}", response="{resp}"'
                )
            lines += [f"{k}: {v}" for k, v in extra.items()]
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            status, headers = _read_reply(sock, buf, deadline)
            if status == 401 and not challenge:
                found = re.findall(r'(\w+)="?([^",]*)"?', headers.get("www-authenticate", ""))
                challenge = {k.lower(): v for k, v in found}
                continue
            return status, headers
        return status, headers

    try:
        status, _ = request("DESCRIBE", base, {"Accept": "application/sdp"})
        if status != 200:
            raise HandshakeError(f"DESCRIBE answered {status}")
        status, headers = request(
            "SETUP", f"{base}/trackID=0", {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
        )
        if status != 200:
            raise HandshakeError(f"SETUP answered {status}")
        session = headers["session"].split(";")[0]
        status, _ = request("PLAY", base, {"Session": session, "Range": "npt=0.000-"})
        if status != 200:
            raise HandshakeError(f"PLAY answered {status}")
    except BaseException:
        sock.close()
        raise
    return Played(sock, bytes(buf))


@dataclass
class Counter:
    """Counts what one interleaved connection delivers."""

    buf: bytearray = field(default_factory=bytearray)
    octets: int = 0
    packets: int = 0
    frames: int = 0
    rtcp: int = 0
    gaps: int = 0  # RTP sequence numbers missing (a dropped batch shows up here)
    other: int = 0  # RTSP messages from the server in the middle of the stream
    last_seq: int = -1
    closed: bool = False

    def feed(self, data: bytes) -> None:
        self.octets += len(data)
        buf = self.buf
        buf += data
        pos, end = 0, len(buf)
        while pos + 4 <= end:
            if buf[pos] != 0x24:  # not '$': an RTSP message; skip it
                stop = buf.find(b"\r\n\r\n", pos)
                if stop < 0:
                    break
                self.other += 1
                pos = stop + 4
                continue
            n = (buf[pos + 2] << 8) | buf[pos + 3]
            if pos + 4 + n > end:
                break
            if buf[pos + 1] == 0:
                if n >= 12:
                    seq = (buf[pos + 6] << 8) | buf[pos + 7]
                    if self.last_seq >= 0 and seq != (self.last_seq + 1) & 0xFFFF:
                        self.gaps += (seq - self.last_seq - 1) & 0xFFFF
                    self.last_seq = seq
                    self.packets += 1
                    if buf[pos + 5] & 0x80:
                        self.frames += 1
            else:
                self.rtcp += 1
            pos += 4 + n
        del buf[:pos]

    def snapshot(self) -> dict[str, int]:
        return {
            "bytes": self.octets,
            "packets": self.packets,
            "frames": self.frames,
            "rtcp": self.rtcp,
            "gaps": self.gaps,
            "other": self.other,
            "closed": int(self.closed),
        }


def count_worker(
    host: str,
    port: int,
    stream: str,
    user: str,
    password: str,
    n_clients: int,
    pipe: Connection,
    max_life_s: float,
) -> None:
    """Process body: play `n_clients`, read them all, answer "mark"/"quit" on `pipe`."""
    end = time.monotonic() + max_life_s
    clients: list[tuple[socket.socket, Counter]] = []
    error = ""
    try:
        for _ in range(n_clients):
            played = play_tcp(host, port, stream, user, password)
            counter = Counter()
            counter.feed(played.leftover)
            played.sock.setblocking(False)
            clients.append((played.sock, counter))
    except (OSError, HandshakeError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    pipe.send({"ready": len(clients), "error": error})
    sel = selectors.DefaultSelector()
    for sock, counter in clients:
        sel.register(sock, selectors.EVENT_READ, (sock, counter))
    sel.register(pipe.fileno(), selectors.EVENT_READ, None)
    running = True
    while running and time.monotonic() < end:
        for key, _mask in sel.select(timeout=0.5):
            if key.data is None:
                command = pipe.recv()
                pipe.send(_mark(clients))
                if command == "quit":
                    running = False
                continue
            sock, counter = key.data
            try:
                data = sock.recv(RECV)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                counter.closed = True
                sel.unregister(sock)
                continue
            counter.feed(data)
    for sock, _counter in clients:
        sock.close()
    sel.close()


def _mark(clients: list[tuple[socket.socket, Counter]]) -> dict[str, Any]:
    t = time.process_time()
    return {
        "time": time.monotonic(),
        "cpu": t,
        "clients": [counter.snapshot() for _sock, counter in clients],
    }
