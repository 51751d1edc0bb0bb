"""A real `vcam serve` process for tests: started with a TOML config, its output followed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class VcamProcess:
    """`vcam serve --config FILE` with VCAM_PASSWORD; every output line lands in `lines`."""

    def __init__(self, tmp: Path, config: str, password: str, *args: str) -> None:
        cfg = tmp / "vcam.toml"
        cfg.write_text(config)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vcam", "serve", "--config", str(cfg),
             "--data-dir", str(tmp), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env={**os.environ, "VCAM_PASSWORD": password, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 60) -> None:
        """Wait (bounded) until a line contains `text`; fail with the output if it never does."""
        end = time.monotonic() + timeout
        with self._changed:
            while not any(text in ln for ln in self.lines):
                left = end - time.monotonic()
                if left <= 0 or self._ended:
                    self.stop()
                    raise AssertionError(f"no {text!r} from vcam serve:\n" + "".join(self.lines))
                self._changed.wait(left)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def loopback_config(
    *,
    width: int,
    height: int,
    fps: float,
    rtsp_port: int,
    http_port: int = 0,
    stamp: bool = False,
    solid: bool = True,
    discovery_port: int | None = None,
    rtsp: str = "",
    tail: str = "",
) -> str:
    """A `vcam serve` config on the synthetic scene with every server on 127.0.0.1.

    `solid`: the solid mask style, so tests can tell masked pixels; `discovery_port`: turn
    WS-Discovery on there (it joins no multicast group on loopback); `rtsp`: more [rtsp] keys;
    `tail`: more tables (e.g. [[output.streams]]).
    """
    discovery = (
        f"discovery = true\ndiscovery_port = {discovery_port}"
        if discovery_port is not None
        else "discovery = false"
    )
    style = '[privacy]\nstyle = "solid"\n' if solid else ""
    return f"""
[source]
uri = "synthetic"
[source.synthetic]
width = {width}
height = {height}
fps = {fps}
stamp = {"true" if stamp else "false"}
{style}[web]
bind = "127.0.0.1"
port = {http_port}
[onvif]
{discovery}
[rtsp]
bind = "127.0.0.1"
port = {rtsp_port}
{rtsp}
{tail}
"""
