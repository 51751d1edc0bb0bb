"""A small blocking RTSP client for tests that need raw access (RTP sequence numbers, odd
requests). Third-party clients (ffmpeg, GStreamer, PyAV) cover normal use in the same tests."""

from __future__ import annotations

import hashlib
import re
import socket
import time
from dataclasses import dataclass, field


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    interleaved: list[tuple[int, bytes]] = field(default_factory=list)


class RawRtsp:
    def __init__(
        self,
        host: str,
        port: int,
        user: str | None = None,
        password: str | None = None,
        rcvbuf: int | None = None,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect((host, port))
        self.base = f"rtsp://{host}:{port}"
        self.user, self.password = user, password
        self.cseq = 0
        self.buf = b""
        self.challenge: dict[str, str] | None = None

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, url: str, headers: dict[str, str] | None = None) -> Reply:
        for _attempt in range(2):
            self.cseq += 1
            lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}"]
            if self.challenge and self.user is not None:
                lines.append(f"Authorization: {self._digest(method, url)}")
            lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
            self.send_raw(("\r\n".join(lines) + "\r\n\r\n").encode())
            reply = self.read_reply()
            if reply.status == 401 and self.user is not None and not self.challenge:
                self.challenge = _params(reply.headers.get("www-authenticate", ""))
                continue
            return reply
        return reply

    def _digest(self, method: str, uri: str) -> str:
        assert self.challenge is not None and self.password is not None
        realm, nonce = self.challenge["realm"], self.challenge["nonce"]
        ha1 = _md5(f"{self.user}:{realm}:{self.password}")
        ha2 = _md5(f"{method}:{uri}")
        response = _md5(f"{ha1}:{nonce}:{ha2}")
        return (
            f'Digest username="{self.user}", realm="{realm}", nonce="{nonce}", '
            f'uri="{uri}", response="{response}"'
        )

    def _fill(self, deadline: float) -> None:
        self.sock.settimeout(max(0.05, deadline - time.monotonic()))
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def read_reply(self, timeout: float = 10) -> Reply:
        deadline = time.monotonic() + timeout
        frames: list[tuple[int, bytes]] = []
        while True:
            while self.buf.startswith(b"$"):
                frame = self._take_frame()
                if frame is None:
                    break
                frames.append(frame)
            if not self.buf.startswith(b"$"):
                head, sep, rest = self.buf.partition(b"\r\n\r\n")
                if sep:
                    lines = head.decode().split("\r\n")
                    status = int(lines[0].split()[1])
                    headers = {}
                    for line in lines[1:]:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                    n = int(headers.get("content-length", "0"))
                    if len(rest) >= n:
                        self.buf = rest[n:]
                        return Reply(status, headers, rest[:n], frames)
            self._fill(deadline)

    def _take_frame(self) -> tuple[int, bytes] | None:
        if len(self.buf) < 4:
            return None
        n = int.from_bytes(self.buf[2:4], "big")
        if len(self.buf) < 4 + n:
            return None
        frame = (self.buf[1], self.buf[4 : 4 + n])
        self.buf = self.buf[4 + n :]
        return frame

    def read_frames(self, seconds: float) -> list[tuple[int, bytes]]:
        """Interleaved frames received during `seconds`."""
        out: list[tuple[int, bytes]] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            while (frame := self._take_frame()) is not None:
                out.append(frame)
            try:
                self._fill(end)
            except TimeoutError:
                break
        return out

    def play_tcp(self, stream: str) -> Reply:
        url = f"{self.base}/{stream}"
        assert self.request("DESCRIBE", url, {"Accept": "application/sdp"}).status == 200
        setup = self.request(
            "SETUP", f"{url}/trackID=0", {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
        )
        assert setup.status == 200, setup
        session = setup.headers["session"].split(";")[0]
        return self.request("PLAY", url, {"Session": session, "Range": "npt=0.000-"})


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _params(header: str) -> dict[str, str]:
    return {k.lower(): v for k, v in re.findall(r'(\w+)="?([^",]*)"?', header)}
