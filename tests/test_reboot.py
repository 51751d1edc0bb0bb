"""ONVIF SystemReboot restarts the pipeline: the source is reopened and a new gate (closed at
first) masks it, while the encoders, the bus and the RTSP sessions stay.

In process: Camera.restart on the synthetic scene, every encoded unit checked (pts, the IDR
first, masking, the static masks the new gate gets). End to end: a real `vcam serve`, a PyAV
RTSP session decoding throughout, SystemReboot through onvif-zeep-async.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import onvif
from onvif import ONVIFCamera

from vcam.app import Camera, static_masks
from vcam.evaluation import FaceCoverage, face_coverage
from vcam.media.bus import Subscription
from vcam.media.types import EncodedUnit, GroundTruth
from vcam.media_settings import MaskSettings
from vcam.onvif.device_settings import REBOOT_MESSAGE
from vcam.privacy.masks import SOLID_Y
from vcam.sources.stamp import BITS, BLOCK, read_stamp
from vcam.sources.synthetic import SyntheticScene, SyntheticSource

from .test_pipeline import SCENE, decoded, inspect, is_flat, live_config
from .test_rtsp_server import SCENE as RTSP_SCENE
from .test_rtsp_server import luma
from .vcam_process import VcamProcess, free_port, loopback_config

WSDL_DIR = str(Path(onvif.__file__).parent / "wsdl")
PASSWORD = "reboot-test-pw"
WHITE_Y = 235  # video-range luma of the white static mask
CORNER = ((0.8, 0.8), (1.0, 0.8), (1.0, 1.0), (0.8, 1.0))


def _mask(token: str, polygon: tuple[tuple[float, float], ...]) -> MaskSettings:
    return MaskSettings(token, polygon, "Color", (255, 255, 255))


def _collect(sub: Subscription, units: list[EncodedUnit], until: int) -> None:
    end = time.monotonic() + 60
    while len(units) < until and time.monotonic() < end:
        unit = sub.get(timeout=1.0)
        if unit is not None:
            units.append(unit)
    assert len(units) >= until, f"only {len(units)} units: the pipeline stopped producing"


def test_camera_restart_keeps_the_stream_decodable_masked_and_monotonic() -> None:
    # As in test_pipeline's healthy run: this test is about the restart, not a busy machine.
    cfg = live_config(mode="face+body", deadline_ms=1000.0, stale_frames=12, hold_frames=15)
    # A long GOP: the only IDRs are the first one and the one the restart asks for.
    streams = (dataclasses.replace(cfg.output.streams[0], gop=300),)
    cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, streams=streams))
    cam = Camera(cfg, source=SyntheticSource(SCENE, realtime=True))
    stream = cfg.output.streams[0].name
    sub = cam.bus.subscribe(stream, maxsize=2000)
    cam.media.change(lambda s: dataclasses.replace(s, masks=(_mask("m1", CORNER),)))
    units: list[EncodedUnit] = []
    cam.start()
    try:
        _collect(sub, units, 30)
        old_gate = cam.pipeline.gate
        took = cam.restart()
        before = len(units)
        _collect(sub, units, before + 45)
        # The subscription follows the live pipeline: a mask added now reaches the new gate.
        top = ((0.0, 0.5), (0.1, 0.5), (0.1, 0.6))
        settings = cam.media.change(
            lambda s: dataclasses.replace(s, masks=(*s.masks, _mask("m2", top)))
        )
    finally:
        cam.stop()
    assert cam.pipeline.gate is not old_gate
    assert cam.pipeline.gate.static_masks == static_masks(settings)
    assert len(old_gate.static_masks) == 1  # the stopped gate is not followed any more
    assert cam.restarts == 1 and 0 < took < 5

    # The reopened source counts from 0 again: the first unit with a lower index is the new run.
    starts = [i for i in range(1, len(units)) if units[i].index < units[i - 1].index]
    assert len(starts) == 1, [u.index for u in units]
    first = starts[0]
    assert units[first].index == 0
    assert units[first].keyframe, "the first frame after the restart is an IDR"
    assert [i for i, u in enumerate(units) if u.keyframe] == [0, first]
    assert 5 in units[first].nal_types and 7 in units[first].nal_types  # IDR with its SPS
    pts = [u.pts_us for u in units]
    assert all(b > a for a, b in itertools.pairwise(pts)), pts
    gap = pts[first] - pts[first - 1]
    assert gap >= round(1e6 / SCENE.fps), "at least one frame interval"
    assert gap < (took + 1.0) * 1e6, "the gap is the time the restart really took"

    # One decoder across the restart, as a connected client has: every unit decodes (but the
    # last, which the parser only emits when the next one begins).
    frames = list(decoded(units))
    assert len(frames) == len(units) - 1
    # The white corner hides faces too, but the coverage metric only knows the solid fill: faces
    # are judged on the pixels outside it (the corner itself is checked below).
    outside_corner = np.ones((SCENE.height, SCENE.width), bool)
    outside_corner[int(SCENE.height * 0.8) :, int(SCENE.width * 0.8) :] = False
    flat, leaks, seen = inspect(units[first:], outside_corner)
    assert not inspect(units[first : first + 1])[1], "the first frame after it is masked"
    assert seen > 100 and len(leaks) <= 0.05 * seen, leaks
    # The new gate got the static masks again: the corner is white in every frame it opened.
    opened = [y for (_, y), f in zip(frames[first:], flat, strict=True) if not f]
    assert opened, "the gate opens again after the restart"
    h, w = opened[0].shape
    for y in opened:
        corner = y[int(h * 0.85) :, int(w * 0.85) :]
        assert abs(float(corner.mean()) - WHITE_Y) <= 12


@dataclass
class _Decoded:
    arrived: float
    pts: int | None  # FFmpeg's RTSP demuxer gives the very first frame none
    key: bool
    index: int | None  # from the stamp; None when a mask covers it (or the frame is flat)
    flat: bool
    y: np.ndarray


def _play(url: str, out: list[_Decoded], done: threading.Event, errors: list[str]) -> None:
    """One RTSP session (PyAV, TCP) decoding until `done`; every frame goes into `out`."""
    try:
        with av.open(url, options={"rtsp_transport": "tcp"}, timeout=20) as c:
            for frame in c.decode(video=0):
                y = luma(frame)
                out.append(
                    _Decoded(
                        time.monotonic(),
                        frame.pts,
                        bool(frame.key_frame),
                        stamp[0] if (stamp := read_stamp(y)) is not None else None,
                        is_flat(y[20:]),
                        y,
                    )
                )
                if done.is_set():
                    return
        errors.append("the RTSP session ended by itself")
    except Exception as exc:  # reported by the test thread
        errors.append(repr(exc))


def _wait_frames(
    frames: list[_Decoded], errors: list[str], count: int, timeout: float = 30.0
) -> None:
    """Until `_play` has decoded `count` frames, failed, or `timeout` passed."""
    end = time.monotonic() + timeout
    while len(frames) < count and time.monotonic() < end and not errors:
        time.sleep(0.05)


class _Player:
    """`_play` in a thread for the `with` block: a connected client all along."""

    def __init__(self, url: str) -> None:
        self.frames: list[_Decoded] = []
        self.errors: list[str] = []
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=_play, args=(url, self.frames, self._done, self.errors), daemon=True
        )

    def __enter__(self) -> _Player:
        self._thread.start()
        return self

    def wait(self, count: int, timeout: float = 30.0) -> None:
        """Until `count` frames in all (or an error, or `timeout`)."""
        _wait_frames(self.frames, self.errors, count, timeout)

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(10)


def _new_run(frames: list[_Decoded]) -> tuple[int, int]:
    """(the old run's last stamped frame, the new run's first): where the stamped frame index
    goes back, which it does once for one pipeline restart under the session."""
    stamped = [i for i, f in enumerate(frames) if not f.flat and f.index is not None]
    drops = [b for a, b in itertools.pairwise(stamped)
             if (frames[b].index or 0) < (frames[a].index or 0)]  # fmt: skip
    assert len(drops) == 1, [(f.index, f.flat) for f in frames]
    new = drops[0]
    return max(i for i in stamped if i < new), new


def _leaks(frames: list[_Decoded], scene: SyntheticScene) -> tuple[list[FaceCoverage], int]:
    leaks: list[FaceCoverage] = []
    seen = 0
    for f in frames:
        if f.flat or f.index is None:
            continue  # fully masked: nothing to leak; or no stamp to tell which frame it is
        rgb, truth, owners = scene.render_with_owners(f.index)
        assert owners is not None
        clear = luma(av.VideoFrame.from_ndarray(rgb, format="rgb24"))

        def visible(gt: GroundTruth, owners: np.ndarray = owners) -> np.ndarray:
            return owners == scene.walker_number(gt.identity)

        for fc in face_coverage(f.y, clear, truth, visible):
            if fc.truth.box.height >= 16:
                seen += 1
                leaks += [fc] if fc.leaked else []
    return leaks, seen


def _stamp_masked(y: np.ndarray) -> bool:
    """The stamp's row has the solid mask fill in it (a mask drawn over part of the stamp)."""
    row = y[:BLOCK, : BITS * BLOCK].astype(np.int16)
    return bool((np.abs(row - SOLID_Y) <= 12).all(axis=0).reshape(BITS, BLOCK).all(axis=1).any())


def test_system_reboot_restarts_the_pipeline_under_a_connected_client(tmp_path: Path) -> None:
    rtsp, http = free_port(), free_port()
    # PyAV's av.open takes about two GOPs on this server: 2 s ones. The in-process test uses a
    # long GOP to tell the restart's IDR from periodic ones; here it is where the new run starts.
    config = loopback_config(
        width=RTSP_SCENE.width, height=RTSP_SCENE.height, fps=RTSP_SCENE.fps, stamp=True,
        rtsp_port=rtsp, http_port=http, tail='[[output.streams]]\nname = "main"\ngop = 30',
    )  # fmt: skip
    vcam = VcamProcess(tmp_path, config, PASSWORD, "--status-every", "1")

    async def reboot() -> tuple[str, float]:
        cam = ONVIFCamera("127.0.0.1", http, "admin", PASSWORD, WSDL_DIR)
        try:
            await cam.update_xaddrs()
            dev = await cam.create_devicemgmt_service()
            t0 = time.monotonic()
            message = await dev.SystemReboot()
            return str(message), time.monotonic() - t0
        finally:
            await cam.close()

    try:
        vcam.wait_for("ONVIF: http://")
        with _Player(f"rtsp://admin:{PASSWORD}@127.0.0.1:{rtsp}/main") as player:
            player.wait(20)
            assert len(player.frames) >= 20, player.errors
            message, answer_s = asyncio.run(reboot())
            called = time.monotonic()
            vcam.wait_for("vcam: pipeline restarted in", timeout=20)
            player.wait(len(player.frames) + 45)
    finally:
        vcam.stop()
    frames, errors = player.frames, player.errors
    log = "".join(vcam.lines)
    assert not errors, errors
    assert message == REBOOT_MESSAGE
    assert answer_s < 2.0, "the answer does not wait for the restart"
    assert "vcam: rebooting" in log and "SystemReboot" in log

    # The same session went on: the source restarted from frame 0 under it.
    last_old, new = _new_run(frames)
    assert (frames[new].index or 0) < 15 and frames[new].arrived > called - 1
    after = frames[last_old + 1 :]
    assert len(after) >= 40, "frames keep coming after the restart"
    assert all(f.pts is not None for f in frames[1:])
    pts = [f.pts for f in frames[1:] if f.pts is not None]
    assert all(b > a for a, b in itertools.pairwise(pts)), "pts never go back"
    # Between the old run's last stamped frame and the new run's first: the old run's last
    # frames whose stamp a privacy mask hides (the checksum fails), then fully masked ones; the
    # new run starts at the first keyframe after `last_old`, which must be one.
    idr = next((i for i in range(last_old + 1, new + 1) if frames[i].key), None)
    assert idr is not None, "the restart's first frame is an IDR"
    between = frames[last_old + 1 : idr]
    described = [(f.index, f.flat, f.key) for f in frames[last_old : new + 1]]
    hidden = [f for f in between if not f.flat]
    assert between[: len(hidden)] == hidden, described  # the closed frames come last
    assert all(_stamp_masked(f.y) for f in hidden), described
    leaks, seen = _leaks(after, SyntheticScene(RTSP_SCENE))
    assert not _leaks([frames[idr]], SyntheticScene(RTSP_SCENE))[0]
    assert seen > 100 and len(leaks) <= 0.02 * seen, leaks
    stall = frames[idr].arrived - frames[idr - 1].arrived
    pts_gap = (pts[idr - 1] - pts[idr - 2]) / 90  # 90 kHz; pts has no frames[0]
    took = log.split("restarted in ")[1].split()[0]
    print(
        f"\nreboot: answer {answer_s * 1000:.0f} ms, restart {took} s, no frames at the client "
        f"for {stall * 1000:.0f} ms, pts gap {pts_gap:.0f} ms"
    )
