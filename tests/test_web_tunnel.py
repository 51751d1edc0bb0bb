"""RTSP over HTTP on the web (ONVIF) port, against a real `vcam serve` process.

ONVIF Profiles T and M want the Apple-style tunnel on the port of the web service: ffmpeg
(`-rtsp_transport http`, HTTP/1.1) and GStreamer (`rtsph://`, HTTP/1.0) decode through it, the
ONVIF endpoint keeps answering while a tunnel is open, a POST with an unknown cookie is refused,
and a tunnel client that stops reading does not delay a client of the RTSP port.
"""

from __future__ import annotations

import base64
import itertools
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from vcam.rtsp.rtp import parse_rtp_header

from .gst import gst_decode
from .rtsp_client import RawRtsp
from .vcam_process import ROOT, VcamProcess, free_port, loopback_config

USER, PASSWORD = "admin", "tunnel-test-pw"
HOST = "127.0.0.1"
SERVER_LOG: list[str] = []  # the server's output (a status line every second)


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    tmp = tmp_path_factory.mktemp("tunnel")
    ports = {"rtsp": free_port(), "http": free_port()}
    config = loopback_config(
        width=640, height=360, fps=15.0, rtsp_port=ports["rtsp"], http_port=ports["http"],
        rtsp="client_buffer_kb = 256\nmax_overflows = 3",
        tail='[[output.streams]]\nname = "main"\ngop = 15',
    )  # fmt: skip
    vcam = VcamProcess(tmp, config, PASSWORD, "--status-every", "1")
    vcam.wait_for("ONVIF: http://")
    global SERVER_LOG
    SERVER_LOG = vcam.lines
    time.sleep(1.0)  # the first encoded frames
    try:
        yield ports
    finally:
        vcam.stop()


def run(cmd: list[str], timeout: float = 40) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


class RawTunnel(RawRtsp):
    """RawRtsp through the tunnel: replies are read from the GET half, requests go as base64
    on the POST half."""

    def __init__(self, port: int, version: str = "1.0", rcvbuf: int | None = None) -> None:
        super().__init__(HOST, port, USER, PASSWORD, rcvbuf=rcvbuf)
        self.cookie = uuid.uuid4().hex[:22]
        self.sock.sendall(
            f"GET /main HTTP/{version}\r\nHost: {HOST}:{port}\r\n"
            f"x-sessioncookie: {self.cookie}\r\nAccept: application/x-rtsp-tunnelled\r\n"
            "Pragma: no-cache\r\nCache-Control: no-cache\r\n\r\n".encode()
        )
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.head = head.decode()
        self.post = open_post(port, self.cookie)

    def send_raw(self, data: bytes) -> None:
        self.post.sendall(base64.b64encode(data))

    def close(self) -> None:
        self.post.close()
        super().close()


def open_post(port: int, cookie: str, body: bytes = b"") -> socket.socket:
    post = socket.create_connection((HOST, port), timeout=10)
    post.sendall(
        f"POST /main HTTP/1.0\r\nHost: {HOST}:{port}\r\nx-sessioncookie: {cookie}\r\n"
        "Content-Type: application/x-rtsp-tunnelled\r\nContent-Length: 32767\r\n\r\n".encode()
        + body
    )
    return post


def test_ffmpeg_decodes_through_the_web_port(camera: dict[str, int]) -> None:
    target = f"rtsp://{USER}:{PASSWORD}@{HOST}:{camera['http']}/main"
    proc = run(
        ["ffmpeg", "-v", "error", "-rtsp_transport", "http", "-i", target,
         "-frames:v", "20", "-f", "null", "-"]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr + "".join(SERVER_LOG[-20:])


def test_gstreamer_rtsph_decodes_through_the_web_port(camera: dict[str, int]) -> None:
    src = [f"location=rtsph://{HOST}:{camera['http']}/main", f"user-id={USER}",
           f"user-pw={PASSWORD}"]  # fmt: skip
    gst = gst_decode(src, frames=30)
    assert gst.decoded, gst.output[-3000:] + "".join(SERVER_LOG[-20:])


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_the_get_half_is_raw_bytes_until_close(camera: dict[str, int], version: str) -> None:
    tunnel = RawTunnel(camera["http"], version)
    try:
        lines = tunnel.head.split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
        assert lines[0].startswith(f"HTTP/{version} 200"), tunnel.head
        assert headers["content-type"] == "application/x-rtsp-tunnelled"
        assert headers["cache-control"] == "no-store" and headers["pragma"] == "no-cache"
        assert "content-length" not in headers and "transfer-encoding" not in headers
        assert tunnel.request("OPTIONS", f"{tunnel.base}/main").status == 200
        assert tunnel.request("DESCRIBE", f"{tunnel.base}/main").status == 200  # Digest inside
    finally:
        tunnel.close()


def _soap_time(port: int) -> tuple[int, bytes]:
    body = (ROOT / "tests" / "corpus" / "soap" / "zeep_get_system_date_and_time.xml").read_bytes()
    request = urllib.request.Request(
        f"http://{HOST}:{port}/onvif/device_service",
        data=body,
        headers={"Content-Type": "application/soap+xml; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_onvif_answers_while_a_tunnel_plays(camera: dict[str, int]) -> None:
    tunnel = RawTunnel(camera["http"])
    try:
        assert tunnel.play_tcp("main").status == 200
        assert len(tunnel.read_frames(1.0)) > 10
        status, body = _soap_time(camera["http"])
        assert status == 200 and b"UTCDateTime" in body
        assert len(tunnel.read_frames(1.0)) > 10  # and the tunnel still plays
    finally:
        tunnel.close()


def _http_status(sock: socket.socket) -> str:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n")[0].decode()


def test_a_post_with_an_unknown_cookie_is_refused(camera: dict[str, int]) -> None:
    options = base64.b64encode(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
    post = open_post(camera["http"], "no-such-cookie", options)
    try:
        assert " 403 " in _http_status(post)
    finally:
        post.close()
    # Neither are tunnel requests without a cookie, nor does the tunnel shadow other routes.
    with socket.create_connection((HOST, camera["http"]), timeout=10) as s:
        s.sendall(b"GET /main HTTP/1.0\r\n\r\n")
        assert " 400 " in _http_status(s)
    with socket.create_connection((HOST, camera["http"]), timeout=10) as s:
        s.sendall(b"GET /onvif/device_service HTTP/1.0\r\n\r\n")
        assert " 405 " in _http_status(s)


def _gaps(frames: list[tuple[int, bytes]]) -> int:
    seqs = [parse_rtp_header(p).sequence for ch, p in frames if ch == 0]
    return sum(((b - a) & 0xFFFF) != 1 for a, b in itertools.pairwise(seqs))


def test_a_stalled_tunnel_never_delays_a_client_of_the_rtsp_port(camera: dict[str, int]) -> None:
    stalled = RawTunnel(camera["http"], rcvbuf=4096)
    healthy = RawRtsp(HOST, camera["rtsp"], USER, PASSWORD)
    try:
        assert stalled.play_tcp("main").status == 200  # ... and never reads again
        assert healthy.play_tcp("main").status == 200
        results: list[list[tuple[int, bytes]]] = []
        reader = threading.Thread(target=lambda: results.append(healthy.read_frames(5.0)))
        reader.start()
        reader.join(20)
        video = [f for f in results[0] if f[0] == 0]
        assert len(video) > 80, len(video)
        assert _gaps(results[0]) == 0
    finally:
        stalled.close()
        healthy.close()
    # The stalled tunnel was dropped to keyframes (and disconnected), like any slow client.
    end = time.monotonic() + 5
    while time.monotonic() < end:
        counts = [re.search(r"(\d+) dropped to slow clients", ln) for ln in SERVER_LOG]
        last = [m for m in counts if m]
        if last and int(last[-1].group(1)) > 0:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("no drops counted: " + "".join(SERVER_LOG[-5:]))


def test_the_server_logged_no_errors(camera: dict[str, int]) -> None:
    text = "".join(SERVER_LOG)
    assert "Traceback" not in text and "Error handling request" not in text, text[-3000:]
