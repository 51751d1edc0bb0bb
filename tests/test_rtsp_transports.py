"""RTSP transports of a real `vcam serve` process: UDP multicast (real ffmpeg/GStreamer clients
inside a network namespace), UDP session expiry and keep-alives, RTCP sender reports, the
unicast `destination` rule, and PAUSE/PLAY.

The multicast test runs `multicast_probe` (below) in a child process under `unshare -n`: a
fresh network namespace whose loopback carries the multicast route, so no multicast packet ever
leaves this machine. That needs root (CI runs as root); without it the test fails, on purpose.
"""

from __future__ import annotations

import itertools
import re
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vcam.rtsp.messages import TransportSpec, format_transport, parse_transport
from vcam.rtsp.rtp import RTCP_RR, SenderReport, parse_rtcp, parse_rtp_header

from .gst import gst_decode
from .netns import multicast_loopback, run_in_netns
from .rtsp_client import RawRtsp, Reply
from .vcam_process import VcamProcess, free_port, loopback_config

ROOT = Path(__file__).resolve().parents[1]
USER, PASSWORD = "admin", "rtsp-transports-pw"
HOST = "127.0.0.1"
SESSION_TIMEOUT_S = 5
RTCP_INTERVAL_S = 1
KEYFRAME_NALS = (24, 7, 5)  # STAP-A (SPS/PPS), SPS, IDR


# -- a vcam serve process ---------------------------------------------------------------------


def start_server(tmp: Path, port: int, rtsp_extra: str, streams: str) -> VcamProcess:
    """Starts `vcam serve` on a synthetic 640x360 scene and waits (bounded) for its RTSP URL."""
    config = loopback_config(
        width=640, height=360, fps=10.0, rtsp_port=port, rtsp=rtsp_extra, tail=streams
    )
    vcam = VcamProcess(tmp, config, PASSWORD)
    vcam.wait_for(f"RTSP: rtsp://{HOST}:{port}/main")
    return vcam


ONE_STREAM = """
[[output.streams]]
name = "main"
gop = 10
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    port = free_port()
    extra = f"session_timeout_s = {SESSION_TIMEOUT_S}\nrtcp_interval_s = {RTCP_INTERVAL_S}"
    proc = start_server(tmp_path_factory.mktemp("rtsp-transports"), port, extra, ONE_STREAM)
    try:
        yield HOST, port
    finally:
        proc.stop()


# -- raw client helpers -----------------------------------------------------------------------


def session_id(reply: Reply) -> str:
    return reply.headers["session"].split(";")[0]


def setup(client: RawRtsp, stream: str, transport: str, track: int = 0) -> Reply:
    url = f"{client.base}/{stream}"
    assert client.request("DESCRIBE", url, {"Accept": "application/sdp"}).status == 200
    reply = client.request("SETUP", f"{url}/trackID={track}", {"Transport": transport})
    assert reply.status == 200, reply
    return reply


def play(client: RawRtsp, stream: str, sid: str) -> Reply:
    reply = client.request("PLAY", f"{client.base}/{stream}", {"Session": sid})
    assert reply.status == 200, reply
    return reply


def transport_of(reply: Reply) -> TransportSpec:
    (spec,) = parse_transport(reply.headers["transport"])
    return spec


def udp_pair(host: str = HOST) -> tuple[socket.socket, socket.socket]:
    """Two UDP sockets on adjacent ports P (even, RTP) and P+1 (RTCP)."""
    for _ in range(100):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rtp.bind((host, 0))
            port = rtp.getsockname()[1]
            if port % 2:
                raise OSError("odd")
            rtcp.bind((host, port + 1))
        except OSError:
            rtp.close()
            rtcp.close()
            continue
        return rtp, rtcp
    raise AssertionError("no free UDP port pair")


def drain(sock: socket.socket) -> int:
    """Datagrams waiting on a socket (read and dropped)."""
    n = 0
    sock.setblocking(False)
    while True:
        try:
            sock.recv(65536)
        except BlockingIOError:
            return n
        n += 1


def receiver_report(ssrc: int, source: int) -> bytes:
    """A minimal RTCP RR with one report block about `source`."""
    block = struct.pack("!IIIIII", source, 0, 0, 0, 0, 0)
    return struct.pack("!BBHI", 0x81, RTCP_RR, 7, ssrc) + block


def first_nal(packet: bytes) -> int:
    header = parse_rtp_header(packet)
    return packet[header.payload_offset] & 0x1F


# -- 1. UDP multicast, in a network namespace of its own --------------------------------------


def multicast_probe(tmp: str) -> dict[str, object]:
    """Runs inside `unshare -n`: loopback with a multicast route, a server, real clients."""
    multicast_loopback()
    port = free_port()
    streams = ONE_STREAM + '[[output.streams]]\nname = "sub"\nwidth = 320\nheight = 180\ngop = 10\n'
    proc = start_server(Path(tmp), port, "", streams)
    out: dict[str, object] = {}
    clients = [RawRtsp(HOST, port, USER, PASSWORD) for _ in range(3)]
    a, b, c = clients
    listener: socket.socket | None = None
    try:
        mc = "RTP/AVP;multicast"
        replies = [setup(a, "main", mc), setup(b, "main", mc), setup(c, "sub", mc)]
        out["transports"] = [r.headers["transport"] for r in replies]
        spec = transport_of(replies[0])
        assert spec.destination is not None and spec.port is not None
        assert spec.ssrc is not None
        group, (rtp_port, _rtcp_port), ssrc = spec.destination, spec.port, int(spec.ssrc, 16)

        # A listener in the group counts every RTP packet sent there: (seq, timestamp) pairs.
        listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((group, rtp_port))
        mreq = socket.inet_aton(group) + socket.inet_aton(HOST)
        listener.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        seen: list[tuple[float, int, int]] = []
        done = threading.Event()
        sock = listener

        def listen() -> None:
            while not done.is_set():
                ready, _, _ = select.select([sock], [], [], 0.1)
                if not ready:
                    continue
                try:  # clients send their own odd packets to the group (NAT "punching")
                    h = parse_rtp_header(sock.recv(65536))
                except ValueError:
                    continue
                if h.ssrc == ssrc and h.payload_type == 96:
                    seen.append((time.monotonic(), h.sequence, h.timestamp))

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()

        def count(t0: float, t1: float) -> int:
            return sum(t0 <= t < t1 for t, _, _ in seen)

        play_s = []
        for client, reply in ((a, replies[0]), (b, replies[1])):
            t = time.monotonic()
            play(client, "main", session_id(reply))
            play_s.append(time.monotonic() - t)
        out["play_s"] = play_s
        t0 = time.monotonic()
        time.sleep(2.5)
        out["packets_two_clients"] = count(t0, time.monotonic())

        url = f"rtsp://{USER}:{PASSWORD}@{HOST}:{port}/main"
        runs = {
            "ffprobe": ["ffprobe", "-v", "error", "-rtsp_transport", "udp_multicast",
                        "-show_streams", url],
            "ffmpeg": ["ffmpeg", "-v", "error", "-rtsp_transport", "udp_multicast", "-i", url,
                       "-map", "0:v:0", "-frames:v", "20", "-f", "null", "-"],
        }  # fmt: skip
        src = [f"location=rtsp://{HOST}:{port}/main", f"user-id={USER}", f"user-pw={PASSWORD}",
               "protocols=udp-mcast"]  # fmt: skip
        if shutil.which("gst-launch-1.0") is None:
            out["gstreamer"] = {"rc": None, "output": "gst-launch-1.0 not installed"}
        else:
            try:
                gst = gst_decode(src, frames=20, timeout=30)
                rc = 0 if gst.decoded else gst.returncode  # see tests/gst.py
                out["gstreamer"] = {"rc": rc, "output": gst.output[-3000:]}
            except subprocess.TimeoutExpired:
                out["gstreamer"] = {"rc": "timeout", "output": ""}
        for name, cmd in runs.items():
            if shutil.which(cmd[0]) is None:
                out[name] = {"rc": None, "output": f"{cmd[0]} not installed"}
                continue
            try:
                done_proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
                out[name] = {
                    "rc": done_proc.returncode,
                    "output": (done_proc.stdout + done_proc.stderr)[-3000:],
                }
            except subprocess.TimeoutExpired:
                out[name] = {"rc": "timeout", "output": ""}

        bye = a.request("TEARDOWN", f"{a.base}/main", {"Session": session_id(replies[0])})
        assert bye.status == 200, bye
        t0 = time.monotonic()
        time.sleep(1.5)
        out["packets_after_first_left"] = count(t0 + 0.5, time.monotonic())
        b.request("TEARDOWN", f"{b.base}/main", {"Session": session_id(replies[1])})
        t0 = time.monotonic()
        time.sleep(2.0)
        out["packets_after_all_left"] = count(t0 + 0.5, time.monotonic())
        done.set()
        thread.join(5)
        keys = [(s, ts) for _, s, ts in seen]
        out["packets_total"] = len(keys)
        out["duplicates"] = len(keys) - len(set(keys))
    finally:
        for client in clients:
            client.close()
        if listener is not None:
            listener.close()
        proc.stop()
    return out


def test_udp_multicast_with_real_clients(tmp_path: Path) -> None:
    out = run_in_netns("tests.test_rtsp_transports", "multicast_probe", str(tmp_path), timeout=150)
    brief = {k: v for k, v in out.items() if k not in ("ffprobe", "ffmpeg", "gstreamer")}

    main_a, main_b, sub = (transport_of(Reply(200, {"transport": t})) for t in out["transports"])
    for spec in (main_a, main_b, sub):
        assert spec.multicast and spec.client_port is None, spec
        assert spec.destination == "239.255.42.42" and spec.ttl == 1, spec
        assert spec.port is not None and spec.port[1] == spec.port[0] + 1, spec
        assert re.search(r"destination=[\d.]+;port=\d+-\d+;ttl=\d+", format_transport(spec))
    assert main_a == main_b  # two clients of one stream share one group and port pair
    assert sub.port != main_a.port  # ... and another stream never shares theirs
    assert max(out["play_s"]) < 2.0, brief  # PLAY answers without waiting for a timeout

    # Sent once for both clients (no RTP packet twice), while anyone plays, and then no more.
    assert out["packets_two_clients"] > 20, brief
    assert out["duplicates"] == 0, brief
    assert out["packets_after_first_left"] > 5, brief
    assert out["packets_after_all_left"] == 0, brief

    ffprobe, ffmpeg, gst = out["ffprobe"], out["ffmpeg"], out["gstreamer"]
    assert ffprobe["rc"] == 0, ffprobe["output"]
    assert "codec_name=h264" in ffprobe["output"] and "width=640" in ffprobe["output"], ffprobe
    assert ffmpeg["rc"] == 0, ffmpeg["output"]
    assert gst["rc"] == 0, gst["output"]


# -- 2. session expiry and keep-alives (UDP) --------------------------------------------------


def test_udp_sessions_expire_unless_kept_alive(server: tuple[str, int]) -> None:
    """A: never talks again, B: GET_PARAMETER every 2 s, C: RTCP receiver reports every 2 s."""
    host, port = server
    names = ("silent", "get_parameter", "rtcp")
    clients = {n: RawRtsp(host, port, USER, PASSWORD) for n in names}
    socks = {n: udp_pair() for n in names}
    try:
        sids: dict[str, str] = {}
        server_rtcp: dict[str, tuple[str, int]] = {}
        started: dict[str, float] = {}
        ssrc = 0
        for n in names:
            p = socks[n][0].getsockname()[1]
            reply = setup(clients[n], "main", f"RTP/AVP;unicast;client_port={p}-{p + 1}")
            spec = transport_of(reply)
            assert spec.server_port is not None and spec.ssrc is not None, spec
            assert reply.headers["session"].endswith(f"timeout={SESSION_TIMEOUT_S}")
            sids[n] = session_id(reply)
            server_rtcp[n] = (host, spec.server_port[1])
            ssrc = int(spec.ssrc, 16)
        for n in names:
            play(clients[n], "main", sids[n])
            started[n] = time.monotonic()
        arrivals: dict[str, list[float]] = {n: [] for n in names}
        by_sock = {socks[n][0]: n for n in names}
        end = time.monotonic() + SESSION_TIMEOUT_S + 5
        next_keepalive = time.monotonic() + 2
        while (now := time.monotonic()) < end:
            if now >= next_keepalive:
                next_keepalive += 2
                reply = clients["get_parameter"].request(
                    "GET_PARAMETER", f"{clients['get_parameter'].base}/main",
                    {"Session": sids["get_parameter"]},
                )  # fmt: skip
                assert reply.status == 200, reply
                rtcp_sock = socks["rtcp"][1]
                rtcp_sock.sendto(receiver_report(0x1234ABCD, ssrc), server_rtcp["rtcp"])
            ready, _, _ = select.select(list(by_sock), [], [], 0.2)
            for sock in ready:
                n = by_sock[sock]
                arrivals[n].extend(time.monotonic() for _ in range(drain(sock)))
        silent = arrivals["silent"]
        assert len(silent) > 20, "the silent client got its stream first"
        last = silent[-1] - started["silent"]
        assert SESSION_TIMEOUT_S - 1 < last < SESSION_TIMEOUT_S + 4, f"stopped after {last:.1f} s"
        assert clients["silent"].request(
            "PLAY", f"{clients['silent'].base}/main", {"Session": sids["silent"]}
        ).status == 454  # fmt: skip  # the session is gone
        for n in ("get_parameter", "rtcp"):
            recent = [t for t in arrivals[n] if t > end - 1.5]
            assert len(recent) > 5, f"{n}: {len(arrivals[n])} packets, {len(recent)} at the end"
    finally:
        for c in clients.values():
            c.close()
        for pair in socks.values():
            for s in pair:
                s.close()


# -- 3. RTCP sender reports (TCP interleaved) -------------------------------------------------


def test_interleaved_client_gets_sender_reports(server: tuple[str, int]) -> None:
    host, port = server
    client = RawRtsp(host, port, USER, PASSWORD)
    try:
        assert client.play_tcp("main").status == 200
        t0 = time.time()
        frames = client.read_frames(3.5 * RTCP_INTERVAL_S)
        t1 = time.time()
        ssrcs = {parse_rtp_header(p).ssrc for ch, p in frames if ch == 0}
        assert len(ssrcs) == 1, ssrcs
        reports = [
            r for ch, p in frames if ch == 1 for r in parse_rtcp(p) if isinstance(r, SenderReport)
        ]
        assert len(reports) >= 2, f"{len(reports)} SRs in {3.5 * RTCP_INTERVAL_S} s"
        for sr in reports:
            assert sr.ssrc in ssrcs
            ntp_unix = sr.ntp_timestamp / (1 << 32) - 2_208_988_800
            assert t0 - 2 < ntp_unix < t1 + 1, (ntp_unix, t0, t1)
        counts = [sr.packet_count for sr in reports]
        assert all(b > a for a, b in itertools.pairwise(counts)), counts
        octets = [sr.octet_count for sr in reports]
        assert all(b > a for a, b in itertools.pairwise(octets)), octets
        # The RTP clock runs at 90 kHz, and every report maps it to the wall clock the same
        # way: a client mapping RTP time through the latest report never sees time step back.
        for a, b in itertools.pairwise(reports):
            wall = (b.ntp_timestamp - a.ntp_timestamp) / (1 << 32)
            media = ((b.rtp_time - a.rtp_time) & 0xFFFFFFFF) / 90000
            assert abs(media - wall) < 1e-4, (media, wall)
    finally:
        client.close()


# -- 4. unicast UDP goes to the RTSP peer, never to a `destination` ---------------------------


def test_udp_data_goes_only_to_the_rtsp_peer(server: tuple[str, int]) -> None:
    host, port = server
    for _ in range(50):
        rtp, rtcp = udp_pair()
        p = rtp.getsockname()[1]
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            other.bind(("127.0.0.2", p))
            break
        except OSError:
            for s in (rtp, rtcp, other):
                s.close()
    else:
        raise AssertionError("no port free on both 127.0.0.1 and 127.0.0.2")
    client = RawRtsp(host, port, USER, PASSWORD)
    try:
        transport = f"RTP/AVP;unicast;client_port={p}-{p + 1};destination=127.0.0.2"
        reply = setup(client, "main", transport)
        answer = reply.headers["transport"]
        assert "127.0.0.2" not in answer and "destination" not in answer, answer
        assert f"client_port={p}-{p + 1}" in answer, answer
        play(client, "main", session_id(reply))
        got = {"peer": 0, "other": 0}
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            ready, _, _ = select.select([rtp, other], [], [], 0.2)
            for sock in ready:
                got["peer" if sock is rtp else "other"] += drain(sock)
        assert got["peer"] > 20 and got["other"] == 0, got
    finally:
        client.close()
        for s in (rtp, rtcp, other):
            s.close()


# -- 5. PAUSE and PLAY ------------------------------------------------------------------------


def test_pause_stops_the_packets_and_play_resumes_them(server: tuple[str, int]) -> None:
    host, port = server
    client = RawRtsp(host, port, USER, PASSWORD)
    try:
        first = client.play_tcp("main")
        assert first.status == 200
        sid = first.headers["session"].split(";")[0]
        assert len([f for f in client.read_frames(1.5) if f[0] == 0]) > 10
        paused = client.request("PAUSE", f"{client.base}/main", {"Session": sid})
        assert paused.status == 200
        after_pause = client.read_frames(2.0)
        assert [f for f in after_pause if f[0] in (0, 1)] == [], "packets after the PAUSE answer"
        resumed = client.request("PLAY", f"{client.base}/main", {"Session": sid})
        assert resumed.status == 200, resumed
        m = re.search(r"seq=(\d+);rtptime=(\d+)", resumed.headers["rtp-info"])
        assert m is not None
        video = [p for ch, p in client.read_frames(2.0) if ch == 0]
        assert len(video) > 10
        assert parse_rtp_header(video[0]).sequence == int(m.group(1))
        assert first_nal(video[0]) in KEYFRAME_NALS  # resumes at a keyframe
    finally:
        client.close()
