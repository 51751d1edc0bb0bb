"""The pipeline watchdog: a failed pipeline is restarted (capped exponential backoff), one that
keeps failing ends `vcam serve` with exit 1, and a file that simply ended is left alone.

The fault is a real one: an MP4 (index at the front) cut short, which decodes for a while and
then fails with FFmpeg's "Invalid data"; as a non-looping file source does not reconnect, the
pipeline fails. End to end, a real `vcam serve` plays it to a PyAV RTSP session: the file is
replaced by an intact one while the first run still reads the old one, so the pipeline fails
once, is restarted, and the same session goes on with masked frames.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import time
from fractions import Fraction
from pathlib import Path

import av
import pytest

from vcam.app import Camera
from vcam.config import Config, config_from_dict
from vcam.sources.stamp import stamp
from vcam.sources.synthetic import SyntheticScene
from vcam.watchdog import Backoff, PipelineWatchdog, RestartPolicy

from .test_reboot import _leaks, _new_run, _Player
from .test_rtsp_server import SCENE
from .vcam_process import VcamProcess, free_port

PASSWORD = "watchdog-test-pw"
CLIP_FRAMES = 300  # 20 s at the scene's 15 fps


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stamped synthetic scene as an MP4 with its index at the front (so that a file cut
    short still opens, and fails where the cut is)."""
    path = tmp_path_factory.mktemp("clips") / "intact.mp4"
    scene = SyntheticScene(SCENE)
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=Fraction(SCENE.fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = SCENE.width, SCENE.height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast", "g": "15"}
        for i in range(CLIP_FRAMES):
            rgb, _truth = scene.render(i)
            stamp(rgb, i, 0)  # the client reads which scene frame it got
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def cut(clip: Path, dest: Path, share: float) -> Path:
    data = clip.read_bytes()
    dest.write_bytes(data[: int(len(data) * share)])
    return dest


# -- the backoff, alone ----------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_and_gives_up_after_max_restarts() -> None:
    backoff = Backoff(RestartPolicy(initial_s=0.5, max_s=3.0, healthy_s=30.0, max_restarts=5))
    delays = [backoff.failed(ran_s=1.0) for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0, None]


def test_backoff_starts_over_after_a_run_that_stayed_up() -> None:
    backoff = Backoff(RestartPolicy(initial_s=1.0, healthy_s=10.0, max_restarts=3))
    assert [backoff.failed(0.2), backoff.failed(0.2), backoff.failed(0.2)] == [1.0, 2.0, 4.0]
    assert backoff.failed(0.2) is None
    # Had it run 10 s before this failure, it would be a new incident with the first delay.
    assert backoff.failed(10.0) == 1.0 and backoff.failures == 1


# -- in process: a real Camera on a real file --------------------------------------------------


def _file_config(path: Path) -> Config:
    return config_from_dict(
        {
            "source": {"uri": str(path), "loop": False, "realtime": False},
            "privacy": {"mode": "face", "style": "solid", "person_heads": False},
            "output": {"streams": [{"gop": 15}]},
        }
    )


async def _watch(camera: Camera, policy: RestartPolicy, seconds: float) -> PipelineWatchdog:
    """Runs the watchdog on the started camera until it gives up or `seconds` passed."""

    async def restart() -> float:
        return await asyncio.to_thread(camera.restart)

    watchdog = PipelineWatchdog(camera, restart, policy, say=lambda _line: None)
    closing = asyncio.Event()
    task = asyncio.create_task(watchdog.watch(closing))
    await asyncio.wait({task}, timeout=seconds)
    closing.set()
    await task
    return watchdog


def test_a_failing_file_is_restarted_until_the_watchdog_gives_up(
    clip: Path, tmp_path: Path
) -> None:
    camera = Camera(_file_config(cut(clip, tmp_path / "cut.mp4", 0.1)))
    policy = RestartPolicy(initial_s=0.05, max_s=0.2, max_restarts=2, poll_s=0.02)
    camera.start()
    try:
        watchdog = asyncio.run(_watch(camera, policy, 60))
    finally:
        camera.stop()
    assert watchdog.failure is not None and "failed mid-way" in watchdog.failure, watchdog.failure
    assert "still failing after 2 restarts" in watchdog.failure
    assert camera.restarts == 2 and camera.status().restarts == 2  # what /metrics shows
    assert camera.pipeline.error, "the last run failed too"


def test_a_file_that_ended_is_not_restarted(clip: Path, tmp_path: Path) -> None:
    camera = Camera(_file_config(clip))
    policy = RestartPolicy(initial_s=0.05, poll_s=0.02)
    camera.start()
    try:
        assert camera.pipeline.join(60), "the file plays to its end"
        watchdog = asyncio.run(_watch(camera, policy, 0.5))
    finally:
        camera.stop()
    stats = camera.stats()  # a live pipeline drops what the gate cannot take in time
    assert stats.gate.frames_out + stats.source_dropped == CLIP_FRAMES
    assert camera.pipeline.error == "" and watchdog.failure is None
    assert camera.restarts == 0


# -- end to end: `vcam serve` ------------------------------------------------------------------


def _serve_file(tmp: Path, source: Path, rtsp_port: int) -> VcamProcess:
    config = f"""
[source]
uri = "{source}"
loop = false
[privacy]
style = "solid"
[web]
bind = "127.0.0.1"
port = 0
[rtsp]
bind = "127.0.0.1"
port = {rtsp_port}
[[output.streams]]
name = "main"
gop = 30
"""
    return VcamProcess(tmp, config, PASSWORD, "--status-every", "1")


def _frames_out(lines: list[str]) -> int:
    """The frame count of the last status line (0 before the first)."""
    counts = [int(m.group(1)) for ln in lines if (m := re.match(r"frames (\d+) ", ln))]
    return counts[-1] if counts else 0


def test_serve_restarts_a_failed_pipeline_under_a_connected_client(
    clip: Path, tmp_path: Path
) -> None:
    source = cut(clip, tmp_path / "source.mp4", 0.45)  # fails after about 9 s
    rtsp = free_port()
    vcam = _serve_file(tmp_path, source, rtsp)
    try:
        vcam.wait_for("ONVIF: http://")
        with _Player(f"rtsp://admin:{PASSWORD}@127.0.0.1:{rtsp}/main") as player:
            end = time.monotonic() + 30
            while _frames_out(vcam.lines) == 0 and time.monotonic() < end:
                time.sleep(0.05)
            # The running source has the cut file open and reads on in it; the restart opens
            # the path again and finds the intact one.
            os.replace(cut(clip, tmp_path / "intact.mp4", 1.0), source)
            vcam.wait_for("vcam: pipeline restarted in", timeout=60)
            player.wait(len(player.frames) + 60)
    finally:
        vcam.stop()
    frames, errors = player.frames, player.errors
    log = "".join(vcam.lines)
    assert vcam.proc.returncode == 0, log  # it kept serving until told to stop
    assert not errors, errors
    assert log.count("vcam: pipeline failed: ") == 1, log
    assert "failed mid-way" in log and log.count("vcam: pipeline restarted in") == 1, log
    assert "vcam: error" not in log

    # The same session went on: the file started over at frame 0 under it.
    last_old, new = _new_run(frames)
    after = frames[last_old + 1 :]
    assert len(after) >= 50, "frames keep coming after the restart"
    # Across the restart the timeline goes on (the whole session's pts are not judged here: a
    # PyAV client was once seen to step one frame back mid-run, far from any restart).
    window = frames[max(1, last_old - 10) : new + 10]
    pts = [f.pts for f in window if f.pts is not None]
    assert len(pts) == len(window) and all(b > a for a, b in itertools.pairwise(pts)), pts
    idr = next((i for i in range(last_old + 1, new + 1) if frames[i].key), None)
    assert idr is not None, "the restart's first frame is an IDR"
    leaks, seen = _leaks(after, SyntheticScene(SCENE))
    assert not _leaks([frames[idr]], SyntheticScene(SCENE))[0]
    assert seen > 100 and len(leaks) <= 0.02 * seen, leaks
    # The time between the last frame before the failure and the first after the restart
    # (noticing it, the backoff's first wait, the restart), as the stream's timestamps say.
    gap_ms = ((frames[idr].pts or 0) - (frames[idr - 1].pts or 0)) / 90
    took = log.split("restarted in ")[1].split()[0]
    print(f"\nwatchdog: restart {took} s, stream gap at the client {gap_ms:.0f} ms")


def test_serve_exits_1_when_the_pipeline_keeps_failing(clip: Path, tmp_path: Path) -> None:
    source = cut(clip, tmp_path / "source.mp4", 0.05)  # fails about 1 s after every start
    vcam = _serve_file(tmp_path, source, free_port())
    try:
        vcam.proc.wait(120)
    finally:
        vcam.stop()
    vcam.wait_for("vcam: error: ", timeout=5)  # the output is read to its end
    log = "".join(vcam.lines)
    assert vcam.proc.returncode == 1, log
    error = next(ln for ln in vcam.lines if ln.startswith("vcam: error: "))
    assert "failed mid-way" in error and "still failing after 3 restarts" in error, error
    assert log.count("vcam: pipeline restarted in") == 3, log
    delays = re.findall(r"restarting in ([\d.]+) s", log)
    assert delays == ["0.5", "1.0", "2.0"], log  # the default policy's backoff
