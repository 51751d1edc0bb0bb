"""WebRTC benchmark: server CPU against the number of aiortc viewers (passthrough, no per-viewer
encoding).

Runs a real `vcam serve` (benchmarks/rtsp.py's server and cheap config: synthetic 1280x720@30,
face detector at a small input, main + sub x264 ultrafast baseline, bound to 127.0.0.1), then
for N viewers (1, 4, 16 by default) real aiortc peers in worker processes (ICE on loopback,
DTLS, SRTP, H.264 decoded by aiortc's receiver) so their CPU is not the server's. Each window
measures the server's utime+stime from /proc/<pid>/stat, that of its event-loop thread (where
aiortc packetises, encrypts and sends: the per-viewer work, less disturbed by the detector and
encoder threads), and the frames each viewer decoded.

    .venv/bin/python benchmarks/webrtc.py [--viewers 1,4,16] [--window 10] [--workers 4]

Target: <= 0.01 cores per extra 720p viewer ((cores(N) - cores(1)) / (N - 1)). "others" =
cores busy on the machine outside the server and the viewers' processes (a shared machine
disturbs the figures; marked "*" above 0.3).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import tempfile
import time
import urllib.request as u
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

# benchmarks/ is sys.path[0] when this file runs as a script
from rtsp import BUSY, PASSWORD, USER, Server, busy_s, config_text, describe_config, free_port

SIZE = (1280, 720)
TARGET = "<= 0.01 cores per extra 720p30 viewer"


def viewer_worker(base: str, count: int, pipe: Connection) -> None:
    """Process body: `count` aiortc viewers of the main stream; answers "mark" with (frames
    decoded per viewer, own CPU seconds) and "quit"."""
    asyncio.run(_viewers(base, count, pipe))


async def _viewers(base: str, count: int, pipe: Connection) -> None:
    import aiohttp
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

    from vcam.webrtc.ice import gather_on

    gather_on("127.0.0.1")  # loopback host candidates (aioice skips 127.0.0.1 by default)
    frames = [0] * count
    pcs: list[RTCPeerConnection] = []

    async def view(i: int, http: aiohttp.ClientSession) -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pcs.append(pc)
        tr = pc.addTransceiver("video", direction="recvonly")
        caps = RTCRtpSender.getCapabilities("video").codecs
        tr.setCodecPreferences([c for c in caps if c.mimeType == "video/H264"])
        await pc.setLocalDescription(await pc.createOffer())
        body = {"sdp": pc.localDescription.sdp, "type": "offer", "stream": "main"}
        async with http.post(f"{base}/webrtc/offer", json=body) as r:
            answer = await r.json()
            if r.status != 200:
                raise RuntimeError(f"offer refused: {r.status} {answer}")
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        track = tr.receiver.track
        while True:
            await track.recv()
            frames[i] += 1

    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(
        middlewares=(aiohttp.DigestAuthMiddleware(USER, PASSWORD),)
    ) as http:
        tasks = [asyncio.create_task(view(i, http)) for i in range(count)]
        while True:
            command = await loop.run_in_executor(None, pipe.recv)
            failed = [t.exception() for t in tasks if t.done() and not t.cancelled()]
            if failed:
                pipe.send({"error": repr(failed[0])})
            if command == "quit":
                break
            t = os.times()
            pipe.send({"frames": list(frames), "cpu": t.user + t.system})
        for task in tasks:
            task.cancel()
        for pc in pcs:
            await pc.close()


def peers(base: str) -> int:
    """Viewers the server holds now (GET /api/webrtc/config with Digest)."""
    mgr = u.HTTPPasswordMgrWithDefaultRealm()
    mgr.add_password(None, base, USER, PASSWORD)
    opener = u.build_opener(u.HTTPDigestAuthHandler(mgr))
    with opener.open(f"{base}/api/webrtc/config", timeout=5) as r:
        return int(json.load(r)["peers"])


def measure(server: Server, base: str, n: int, workers: int, window: float) -> dict[str, Any]:
    split = [n // workers + (i < n % workers) for i in range(min(workers, n))]
    ctx = multiprocessing.get_context("spawn")
    procs, pipes = [], []
    for count in split:
        ours, theirs = ctx.Pipe()
        p = ctx.Process(target=viewer_worker, args=(base, count, theirs), daemon=True)
        p.start()
        procs.append(p)
        pipes.append(ours)

    def mark() -> tuple[list[int], float]:
        frames: list[int] = []
        cpu = 0.0
        for pipe in pipes:
            pipe.send("mark")
            reply = pipe.recv()
            if "error" in reply:
                raise RuntimeError(reply["error"])
            frames += reply["frames"]
            cpu += reply["cpu"]
        return frames, cpu

    try:
        deadline = time.monotonic() + 60
        while min(mark()[0]) < 30:  # every viewer connected and decoding
            if time.monotonic() > deadline:
                raise RuntimeError("viewers did not start")
            time.sleep(0.5)
        time.sleep(1.0)
        f0, c0 = mark()
        pid = server.proc.pid  # its main thread runs the event loop: aiortc's sending work
        s0, l0, b0, t0 = (
            server.cpu_s(),
            server.threads_cpu_s().get(pid, 0.0),
            busy_s(),
            time.monotonic(),
        )
        time.sleep(window)
        f1, c1 = mark()
        s1, l1, b1, t1 = (
            server.cpu_s(),
            server.threads_cpu_s().get(pid, 0.0),
            busy_s(),
            time.monotonic(),
        )
    finally:
        for pipe in pipes:
            pipe.send("quit")
        for p in procs:
            p.join(15)
            if p.is_alive():
                p.kill()
    dt = t1 - t0
    server_cores = (s1 - s0) / dt
    viewer_cores = (c1 - c0) / dt
    fps = [(b - a) / dt for a, b in zip(f0, f1, strict=True)]
    end = time.monotonic() + 40
    while peers(base) and time.monotonic() < end:  # closed viewers leave the server
        time.sleep(0.5)
    return {
        "n": n,
        "server": server_cores,
        "loop": (l1 - l0) / dt,
        "viewers": viewer_cores,
        "others": max(0.0, (b1 - b0) / dt - server_cores - viewer_cores),
        "fps_min": min(fps),
        "fps_mean": sum(fps) / len(fps),
        "left": peers(base),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--viewers", default="1,4,16")
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()
    counts = [int(v) for v in args.viewers.split(",")]
    http = free_port()
    rtsp_port = free_port()
    text = config_text(rtsp_port, SIZE, stamp=False, lookahead=3, cheap=True)
    text = text.replace(
        '[web]\nbind = "127.0.0.1"\nport = 0', f'[web]\nbind = "127.0.0.1"\nport = {http}'
    )
    text = text.replace("[web]\n", f"[web]\nmax_webrtc_peers = {max(counts)}\n")
    base = f"http://127.0.0.1:{http}"
    print(f"vcam WebRTC benchmark: {describe_config(SIZE, 3, True)}; {os.cpu_count()} CPUs")
    print(f"target: {TARGET}")
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), text, rtsp_port)
        try:
            server.wait_ready()
            time.sleep(3.0)  # past the start-up (model load, first frames)
            rows = [measure(server, base, n, args.workers, args.window) for n in counts]
        finally:
            server.stop()
    print(f"{'viewers':>7} {'server cores':>12} {'loop thread':>11} {'viewer procs':>12} "
          f"{'others':>7} {'fps/viewer (min/mean)':>22} {'left':>5}")  # fmt: skip
    for r in rows:
        mark = "*" if r["others"] > BUSY else " "
        print(
            f"{r['n']:>7} {r['server']:>12.3f} {r['loop']:>11.3f} {r['viewers']:>12.3f} "
            f"{r['others']:>6.2f}{mark} "
            f"{r['fps_min']:>10.1f}/{r['fps_mean']:<11.1f} {r['left']:>5}"
        )
    one = next((r for r in rows if r["n"] == 1), None)
    if one is not None:
        for r in rows:
            if r["n"] > 1:
                per = (r["server"] - one["server"]) / (r["n"] - 1)
                loop = (r["loop"] - one["loop"]) / (r["n"] - 1)
                print(
                    f"cores per extra viewer, 1 -> {r['n']}: {per:.4f} whole server, "
                    f"{loop:.4f} event-loop thread ({TARGET})"
                )


if __name__ == "__main__":
    main()
