"""Sources on real media: the shipped demo clip, cut and re-encoded with PyAV, served over HTTP."""

from __future__ import annotations

import http.server
import itertools
import logging
import queue
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import pytest

from vcam.config import SourceConfig
from vcam.errors import SourceError
from vcam.media.types import SourceFrame
from vcam.sources import DEMO_CLIP, open_source


def _write_clip(path: Path, frames: int, size: tuple[int, int] = (320, 240), fps: int = 10) -> Path:
    """The first `frames` frames of the demo clip, scaled to `size`, as H.264 in `path`."""
    with av.open(str(DEMO_CLIP)) as src, av.open(str(path), "w") as dst:
        out = dst.add_stream("libx264", rate=fps)
        out.width, out.height, out.pix_fmt = size[0], size[1], "yuv420p"
        out.options = {"preset": "ultrafast", "g": "5"}  # keyframes often: a cut stream recovers
        for i, frame in enumerate(src.decode(video=0)):
            if i == frames:
                break
            small = frame.reformat(width=size[0], height=size[1], format="yuv420p")
            small.pts, small.time_base = i, Fraction(1, fps)
            dst.mux(out.encode(small))
        dst.mux(out.encode(None))
    return path


def _take(cfg: SourceConfig, n: int | None = None) -> list[SourceFrame]:
    stop = threading.Event()
    out: list[SourceFrame] = []
    for f in open_source(cfg).frames(stop):
        out.append(f)
        if n is not None and len(out) >= n:
            stop.set()
    return out


def _check_continuous(frames: list[SourceFrame]) -> None:
    assert [f.index for f in frames] == list(range(frames[0].index, frames[0].index + len(frames)))
    pts = [f.pts_us for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts)), "pts went back"


def test_file_decodes_every_frame(tmp_path: Path) -> None:
    clip = _write_clip(tmp_path / "clip.mp4", 25)
    frames = _take(SourceConfig(uri=str(clip), loop=False, realtime=False))
    assert len(frames) == 25
    _check_continuous(frames)
    assert {f.epoch for f in frames} == {0}
    assert {(f.width, f.height) for f in frames} == {(320, 240)}
    assert all(f.frame.format.name == "yuv420p" for f in frames)
    assert frames[-1].pts_us - frames[0].pts_us == pytest.approx(2_400_000, abs=1000)


def test_loop_keeps_index_and_pts_going(tmp_path: Path) -> None:
    clip = _write_clip(tmp_path / "clip.mp4", 10)
    frames = _take(SourceConfig(uri=str(clip), loop=True, realtime=False), n=35)
    assert len(frames) == 35
    _check_continuous(frames)
    assert {f.epoch for f in frames} == {0}  # a loop restart is the same upstream
    # Across the loop point, pts step by one frame duration (100 ms at 10 fps).
    assert frames[10].pts_us - frames[9].pts_us == pytest.approx(100_000, abs=1000)
    assert frames[34].pts_us == pytest.approx(3_400_000, abs=5000)


def test_realtime_pacing(tmp_path: Path) -> None:
    clip = _write_clip(tmp_path / "clip.mp4", 15)
    t0 = time.monotonic()
    frames = _take(SourceConfig(uri=str(clip), loop=False, realtime=True))
    elapsed = time.monotonic() - t0
    assert len(frames) == 15
    assert 1.2 <= elapsed <= 3.5, elapsed  # 14 frame intervals at 10 fps = 1.4 s
    span = frames[-1].wall_time - frames[0].wall_time
    assert span == pytest.approx(1.4, abs=0.3)


def test_resolution_change_bumps_epoch(tmp_path: Path) -> None:
    a = _write_clip(tmp_path / "a.ts", 8, (320, 240))
    b = _write_clip(tmp_path / "b.ts", 8, (256, 192))
    joined = tmp_path / "joined.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())  # MPEG-TS concatenates byte-wise
    frames = _take(SourceConfig(uri=str(joined), loop=False, realtime=False))
    assert len(frames) == 16
    _check_continuous(frames)  # b's timestamps restart at zero: pts must not go back anyway
    assert [(f.width, f.epoch) for f in frames] == [(320, 0)] * 8 + [(256, 1)] * 8


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist") as info:
        open_source(SourceConfig(uri=str(tmp_path / "nope.mp4")))
    assert "nope.mp4" in str(info.value) and "\n" not in str(info.value)


def test_text_file_is_not_a_video(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("this is not a video\n" * 50)
    with pytest.raises(SourceError) as info:
        open_source(SourceConfig(uri=str(text)))
    assert "notes.txt" in str(info.value) and "\n" not in str(info.value)


def test_missing_v4l2_device() -> None:
    assert not Path("/dev/video7").exists()
    with pytest.raises(SourceError, match=r"^V4L2 device /dev/video7 does not exist$"):
        open_source(SourceConfig(uri="/dev/video7", v4l2_width=640, v4l2_height=480))


def test_demo_source() -> None:
    src = open_source(SourceConfig(uri="demo", realtime=False))
    assert src.fps == pytest.approx(10.0)
    frames = _take(SourceConfig(uri="demo", realtime=False), n=3)
    assert [(f.width, f.height) for f in frames] == [(768, 576)] * 3
    assert DEMO_CLIP.stat().st_size < 3_000_000


class _Server:
    """A real HTTP upstream that trickles one file, and can die mid-response and come back."""

    def __init__(self, root: Path, port: int = 0) -> None:
        self.cut = threading.Event()
        cut = self.cut

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

            def copyfile(self, source, outputfile) -> None:  # type: ignore[no-untyped-def]
                while chunk := source.read(2048):
                    if cut.is_set():
                        return  # the upstream dies mid-stream
                    outputfile.write(chunk)
                    time.sleep(0.01)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def kill(self) -> None:
        self.cut.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def test_url_reconnects_after_upstream_loss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vcam.source")
    _write_clip(tmp_path / "clip.ts", 40)
    server = _Server(tmp_path)
    cfg = SourceConfig(
        uri=f"http://127.0.0.1:{server.port}/clip.ts",
        realtime=False,
        open_timeout_s=2.0,
        reconnect_initial_s=0.05,
        reconnect_max_s=0.4,
    )
    stop = threading.Event()
    got: queue.Queue[SourceFrame] = queue.Queue()
    source = open_source(cfg)

    def run() -> None:
        it: Iterator[SourceFrame] = source.frames(stop)
        for f in it:
            got.put(f)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    frames: list[SourceFrame] = []

    def wait_for(pred: object, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                frames.append(got.get(timeout=0.1))
            except queue.Empty:
                continue
            if callable(pred) and pred(frames[-1]):
                return
        raise AssertionError("timed out waiting for frames")

    try:
        wait_for(lambda f: f.index >= 5, 10)
        port = server.port
        server.kill()  # mid-stream: the clip is trickled over ~2 s
        time.sleep(1.5)  # the source retries with backoff while the upstream is down
        while not got.empty():
            frames.append(got.get())
        before = frames[-1]
        assert before.epoch == 0
        assert before.index < 39, "the upstream died mid-way"
        attempts = [r for r in caplog.records if "reconnect attempt" in r.getMessage()]
        assert len(attempts) >= 3
        server = _Server(tmp_path, port)
        wait_for(lambda f: f.epoch >= 1 and f.index >= before.index + 3, 15)
    finally:
        t0 = time.monotonic()
        stop.set()
        worker.join(5)
        server.kill()
    assert not worker.is_alive() and time.monotonic() - t0 < 3, "shutdown must be prompt"
    _check_continuous(frames)
    resumed = next(i for i, f in enumerate(frames) if f.epoch >= 1)
    assert frames[resumed].epoch == 1 and frames[resumed - 1].epoch == 0
    assert frames[resumed].pts_us - frames[resumed - 1].pts_us == pytest.approx(100_000, abs=1000)
