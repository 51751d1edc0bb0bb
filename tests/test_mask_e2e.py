"""`vcam mask` end to end: a real process masks a real H.264 file; the output is decoded back.

The input is the synthetic scene (real faces at exactly known places), so every ground-truth
face of every decoded frame can be checked.
"""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vcam.config import SyntheticConfig
from vcam.evaluation import score_masked_clip, write_synthetic_clip
from vcam.sources.synthetic import SyntheticScene

ROOT = Path(__file__).resolve().parents[1]
SCENE = SyntheticConfig(width=640, height=360, fps=30.0)
FRAMES = 90


@pytest.fixture(scope="module")
def clear_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "clear.mp4"
    write_synthetic_clip(path, SyntheticScene(SCENE), FRAMES)
    return path


def vcam_mask(src: Path, dst: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "vcam", "mask", str(src), str(dst), "--no-progress", *flags],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def test_every_face_is_covered_in_the_decoded_output(clear_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "masked.mp4"
    proc = vcam_mask(clear_clip, out, "--style", "solid")
    assert f"{FRAMES} frames" in proc.stdout
    report = score_masked_clip(out, SyntheticScene(SCENE))
    assert report.frames == FRAMES
    assert sum(report.total_by_band.values()) > 10 * FRAMES  # the scene really has faces
    assert set(report.total_by_band) == {"<16", "16-24", "24-32", "32-64", ">64"}
    leaked = [f for f in report.faces if f.leaked]
    assert leaked == [], f"{len(leaked)} faces leaked, first: {leaked[:3]}"


def test_the_clear_input_would_fail_that_check(clear_clip: Path) -> None:
    # The same measurement on the unmasked input finds every face exposed: the check can fail.
    report = score_masked_clip(clear_clip, SyntheticScene(SCENE))
    assert len([f for f in report.faces if f.leaked]) == len(report.faces) > 0


@pytest.mark.parametrize("style", ["mosaic", "blocks", "blur"])
def test_other_styles_change_every_face(clear_clip: Path, tmp_path: Path, style: str) -> None:
    out = tmp_path / f"{style}.mp4"
    vcam_mask(clear_clip, out, "--style", style, "--mode", "face")
    scene = SyntheticScene(SCENE)
    with av.open(str(out)) as c:
        for index, frame in enumerate(c.decode(video=0)):
            if index % 15:
                continue
            rgb, truth = scene.render(index)
            got = frame.to_ndarray(format="rgb24").astype(np.int16)
            for gt in truth:
                x1, y1, x2, y2 = gt.box.to_pixels(SCENE.width, SCENE.height)
                if gt.cls != "face" or gt.box.height < 32 or x2 - x1 < 16:
                    continue
                diff = np.abs(got[y1:y2, x1:x2] - rgb[y1:y2, x1:x2]).mean()
                # A masked face no longer looks like itself (coding noise alone is ~2 levels).
                assert diff > 8, (style, index, gt.identity, diff)


def _clip_with_audio(path: Path, seconds: float = 2.0) -> None:
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 320, 240, "yuv420p"
        a = out.add_stream("aac", rate=48000)
        a.layout = "mono"
        scene = SyntheticScene(SyntheticConfig(width=320, height=240, fps=10.0))
        for i in range(int(seconds * 10)):
            for p in v.encode(av.VideoFrame.from_ndarray(scene.render(i)[0], format="rgb24")):
                out.mux(p)
        t = np.arange(int(seconds * 48000)) / 48000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            frame = av.AudioFrame.from_ndarray(
                tone[None, start : start + 1024], format="fltp", layout="mono"
            )
            frame.sample_rate = 48000
            frame.pts = start
            frame.time_base = Fraction(1, 48000)
            for p in a.encode(frame):
                out.mux(p)
        for s in (v, a):
            for p in s.encode(None):
                out.mux(p)


@pytest.mark.parametrize(
    ("audio", "tracks", "ext"), [("copy", 1, ".mp4"), ("copy", 1, ".mkv"), ("drop", 0, ".mp4")]
)
def test_audio_is_copied_or_dropped(tmp_path: Path, audio: str, tracks: int, ext: str) -> None:
    src = tmp_path / "in.mp4"
    _clip_with_audio(src)
    out = tmp_path / f"out{ext}"
    vcam_mask(src, out, "--audio", audio)
    with av.open(str(out)) as c:
        assert len(c.streams.video) == 1
        assert len(c.streams.audio) == tracks
        if tracks:
            assert c.streams.audio[0].codec_context.name == "aac"
            packets = [p for p in c.demux(c.streams.audio[0]) if p.size]
            assert len(packets) > 80  # ~2 s of 1024-sample AAC frames at 48 kHz
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 20
