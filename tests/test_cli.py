"""The command line as a user runs it: a real `vcam` process, exit codes and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Servers on loopback only (WS-Discovery then joins no multicast group), on free ports.
LOOPBACK = ("--bind", "127.0.0.1", "--http-port", "0", "--rtsp-port", "0")


def vcam(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vcam", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("vcam: error: ")
    for needle in needles:
        assert needle in lines[0]


def test_mask_missing_input(tmp_path: Path) -> None:
    proc = vcam("mask", str(tmp_path / "nope.mp4"), str(tmp_path / "out.mp4"))
    assert_one_line_error(proc, "nope.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_mask_input_that_is_not_a_video(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    proc = vcam("mask", str(text), str(tmp_path / "out.mp4"))
    assert_one_line_error(proc, "notes.mp4")


@pytest.mark.parametrize("out", ["missing-dir/out.mp4", "out.xyz", "."])
def test_mask_unwritable_output(tmp_path: Path, out: str) -> None:
    demo = ROOT / "vcam" / "data" / "demo.mp4"
    proc = vcam("mask", str(demo), str(tmp_path / out))
    assert_one_line_error(proc, "cannot write")


def test_mask_output_where_nobody_may_write() -> None:
    # /proc refuses new files even to root, so this holds in CI too.
    proc = vcam("mask", str(ROOT / "vcam" / "data" / "demo.mp4"), "/proc/vcam-out.mp4")
    assert_one_line_error(proc, "cannot write", "/proc/vcam-out.mp4")


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[privacy]\nstyle = "pixels"\n')
    proc = vcam("serve", "--config", str(cfg), "--duration", "1", *LOOPBACK)
    assert_one_line_error(proc, "privacy.style")


def test_serve_with_a_missing_v4l2_device() -> None:
    proc = vcam("serve", "--source", "/dev/video9", "--duration", "1", *LOOPBACK)
    assert_one_line_error(proc, "/dev/video9")


def test_rtsp_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        proc = vcam(
            "serve", "--bind", "127.0.0.1", "--http-port", "0", "--rtsp-port", port,
            "--duration", "1", "--data-dir", str(tmp_path),
        )  # fmt: skip
    assert_one_line_error(proc, "rtsp.port", port)


def test_bad_flag_value_is_a_usage_error() -> None:
    proc = vcam("mask", "a.mp4", "b.mp4", "--style", "pixels")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_serve_with_no_arguments_masks_the_demo(tmp_path: Path) -> None:
    import av

    rec = tmp_path / "main.h264"
    proc = vcam(
        "serve", "--duration", "6", "--status-every", "2", "--record", str(rec),
        "--data-dir", str(tmp_path), *LOOPBACK,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "serving file" in proc.stdout and "demo.mp4" in proc.stdout
    assert "stream main: H.264" in proc.stdout and "stream sub: H.264" in proc.stdout
    last = proc.stdout.strip().splitlines()[-1]
    fields = last.split()
    frames, masked = int(fields[1]), int(fields[fields.index("masked") + 1])
    assert frames >= 30  # 10 fps clip, about 6 s
    assert masked >= 0.9 * frames, last  # pedestrians are in every frame of the demo
    with av.open(str(rec), format="h264") as c:
        decoded = [f for f in c.decode(video=0)]
    assert len(decoded) >= 20
    assert (decoded[0].width, decoded[0].height) == (768, 576)
    assert decoded[0].key_frame
