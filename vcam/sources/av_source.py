"""Sources decoded by PyAV: files, network URLs (RTSP/HTTP) and V4L2 devices."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import av.container

from vcam.config import SourceConfig
from vcam.errors import SourceError
from vcam.media.types import SourceFrame

log = logging.getLogger("vcam.source")

Kind = Literal["file", "url", "v4l2"]
# FFmpeg renders any text file as ANSI art ("tty" demuxer): that is not a video.
_TEXT_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})
_LATE_REANCHOR_S = 0.5  # pacing: when this far behind, restart the clock instead of rushing


class AvSource:
    """One PyAV input. Files may loop; URLs (and live files) reconnect with capped backoff."""

    def __init__(self, cfg: SourceConfig, kind: Kind, target: str, loop: bool = False) -> None:
        self.cfg = cfg
        self.kind = kind
        self.target = target
        self.loop = loop
        self.realtime = cfg.realtime
        # Live inputs survive upstream loss; `vcam mask` on a file must end on an error instead.
        self.reconnects = kind != "file" or (loop and cfg.realtime)
        self.fps = 25.0
        self.width = 0
        self.height = 0
        self.description = f"{kind} {target}"

    # -- opening -----------------------------------------------------------------------------

    def _open(self) -> av.container.InputContainer:
        t = self.cfg.open_timeout_s
        us = str(int(t * 1_000_000))
        kwargs: dict[str, Any] = {"timeout": (t, t)}  # PyAV's interrupt callback: never hangs
        if self.kind == "v4l2":
            if not Path(self.target).exists():
                raise SourceError(f"V4L2 device {self.target} does not exist")
            opts: dict[str, str] = {}
            if self.cfg.v4l2_width and self.cfg.v4l2_height:
                opts["video_size"] = f"{self.cfg.v4l2_width}x{self.cfg.v4l2_height}"
            if self.cfg.v4l2_fps:
                opts["framerate"] = f"{self.cfg.v4l2_fps:g}"
            kwargs.update(format="v4l2", options=opts)
        elif self.kind == "url":
            # FFmpeg's own socket timeouts too (microseconds); rtsp's `stimeout` is now `timeout`.
            opts = {"timeout": us, "rw_timeout": us}
            if self.target.startswith(("rtsp://", "rtsps://")):
                opts["rtsp_transport"] = self.cfg.rtsp_transport
            kwargs["options"] = opts
        elif not Path(self.target).is_file():
            raise SourceError(f"source file {self.target} does not exist")
        try:
            container = av.open(self.target, **kwargs)
        except av.FFmpegError as exc:
            raise SourceError(f"cannot open {self.description}: {_reason(exc)}") from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"{self.description} has no video stream")
        stream = container.streams.video[0]
        if stream.codec_context.name in _TEXT_CODECS:
            container.close()
            raise SourceError(f"{self.description} is not a video (it looks like a text file)")
        stream.thread_count = 1  # one decode thread: cores go to the detector
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if rate:
            self.fps = float(rate)
        return container

    def probe(self) -> None:
        """Open and decode one frame now, so a bad input is a clear error before starting."""
        container = self._open()
        try:
            frame = next(container.decode(video=0), None)
        except av.FFmpegError as exc:
            raise SourceError(f"{self.description} cannot be decoded: {_reason(exc)}") from None
        finally:
            container.close()
        if frame is None:
            raise SourceError(f"{self.description} contains no decodable video frame")
        self.width, self.height = frame.width, frame.height
        self.description = f"{self.kind} {self.target} ({self.width}x{self.height}@{self.fps:g})"

    # -- reading -----------------------------------------------------------------------------

    def frames(self, stop: threading.Event) -> Iterator[SourceFrame]:
        index = 0
        epoch = -1  # the first connection is epoch 0
        last_pts = -1  # microseconds, across connections
        size = (0, 0)
        delay = self.cfg.reconnect_initial_s
        new_connection = True  # False when a file loops: same upstream, same epoch
        attempt = 0
        while not stop.is_set():
            try:
                container = self._open()
            except SourceError as exc:
                if not self.reconnects or (index == 0 and self.kind != "url"):
                    raise  # a camera waits for its network upstream; a bad path fails now
                attempt += 1
                log.warning("%s; reconnect attempt %d in %.1f s", exc, attempt, delay)
                if stop.wait(delay):
                    return
                delay = min(delay * 2, self.cfg.reconnect_max_s)
                new_connection = True
                continue
            if new_connection:
                epoch += 1
                if attempt:
                    log.info("%s: reconnected after %d attempts", self.description, attempt)
            frame_us = round(1_000_000 / self.fps)
            base = last_pts + frame_us if last_pts >= 0 else 0  # this connection's time zero
            first: float | None = None
            anchor: tuple[float, int] | None = None  # (wall, pts) for pacing
            failed: str | None = None
            try:
                for frame in container.decode(video=0):
                    t = _seconds(frame.pts, frame.time_base)
                    if first is None:
                        first = t if t is not None else 0.0
                    pts = base + round(((t if t is not None else 0.0) - first) * 1_000_000)
                    if t is None or pts <= last_pts:
                        pts = max(pts, last_pts + 1) if t is not None else last_pts + frame_us
                    if frame.format.name != "yuv420p":
                        frame = frame.reformat(format="yuv420p")
                    if (frame.width, frame.height) != size:
                        if size != (0, 0) and not new_connection:
                            epoch += 1  # resolution change: the gate must start closed
                        size = (frame.width, frame.height)
                        self.width, self.height = size
                    new_connection = False
                    if self.realtime:
                        now = time.monotonic()
                        if anchor is None or now - (anchor[0] + (pts - anchor[1]) / 1e6) > (
                            _LATE_REANCHOR_S
                        ):
                            anchor = (now, pts)
                        wait = anchor[0] + (pts - anchor[1]) / 1e6 - now
                        if wait > 0 and stop.wait(wait):
                            return
                    last_pts = pts
                    yield SourceFrame(frame, index, pts, epoch, wall_time=time.monotonic())
                    index += 1
                    attempt, delay = 0, self.cfg.reconnect_initial_s  # healthy again
                    if stop.is_set():
                        return
            except av.FFmpegError as exc:
                failed = _reason(exc)
            finally:
                container.close()
            if failed is None and self.kind == "file":
                if not self.loop:
                    return
                if first is None:
                    raise SourceError(f"{self.description} contains no decodable video frame")
                continue  # loop: same epoch, pts go on from last_pts
            if not self.reconnects:
                raise SourceError(f"{self.description} failed mid-way: {failed}")
            attempt += 1
            why = failed or "end of stream"
            log.warning(
                "%s lost (%s); reconnect attempt %d in %.1f s", self.target, why, attempt, delay
            )
            if stop.wait(delay):
                return
            delay = min(delay * 2, self.cfg.reconnect_max_s)
            new_connection = True


def _seconds(pts: int | None, time_base: Fraction | None) -> float | None:
    if pts is None or time_base is None:
        return None
    return float(pts * time_base)


def _reason(exc: BaseException) -> str:
    """FFmpeg's message without the errno noise, on one line."""
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())
