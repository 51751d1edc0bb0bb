"""Writes masked frames to a video file (`vcam mask`), optionally copying the input's audio.

Audio is copied in a second, stream-copy pass (video-only file + input audio -> output), so the
first pass never buffers video while waiting for audio packets to interleave.
"""

from __future__ import annotations

import heapq
import os
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

from vcam.errors import OutputError
from vcam.media.types import MaskedFrame

_TIME_BASE = Fraction(1, 1_000_000)  # MaskedFrame.pts_us is in microseconds


def check_writable(path: Path) -> None:
    """Fail before any work when the output cannot be created."""
    parent = path.resolve().parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: directory {parent} does not exist")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory")
    try:
        _guess_format(path)
    except ValueError as exc:
        raise OutputError(f"cannot write {path}: unknown container for {exc}") from None
    existed = path.exists()
    try:
        with path.open("ab"):
            pass  # really try: permission bits say nothing to root or on special filesystems
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    if not existed:
        path.unlink()


def _guess_format(path: Path) -> str:
    # The containers that hold H.264 (and usually the input's audio) well.
    known = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".ts": "mpegts"}
    suffix = path.suffix.lower()
    if suffix not in known:
        raise ValueError(f"extension {suffix or '(none)'!r}; use one of {', '.join(known)}")
    return known[suffix]


class MaskedFileWriter:
    """A FrameSink that encodes every masked frame with libx264 into `path`."""

    def __init__(
        self,
        path: Path,
        fps: float,
        *,
        crf: int = 20,
        preset: str = "veryfast",
        audio_from: Path | None = None,
    ) -> None:
        self.path = path
        self.audio_from = audio_from
        self.fps = fps if fps > 0 else 25.0
        self.crf = crf
        self.preset = preset
        fmt = _guess_format(path)
        if audio_from is not None:
            fd, tmp = tempfile.mkstemp(suffix=path.suffix, dir=path.resolve().parent)
            os.close(fd)
            self._video_path = Path(tmp)
        else:
            self._video_path = path
        try:
            self._container = av.open(str(self._video_path), "w", format=fmt)
        except av.error.FFmpegError as exc:
            raise OutputError(f"cannot write {path}: {exc}") from None
        self._stream: av.VideoStream | None = None
        self._first_pts: int | None = None
        self._last_pts = -1
        self.frames = 0

    def on_frame(self, masked: MaskedFrame) -> None:
        frame = masked.frame
        if self._stream is None:
            stream = self._container.add_stream(
                "libx264", rate=Fraction(self.fps).limit_denominator(1001)
            )
            stream.width, stream.height = frame.width, frame.height
            stream.pix_fmt = "yuv420p"
            stream.time_base = _TIME_BASE
            stream.codec_context.time_base = _TIME_BASE
            stream.options = {"crf": str(self.crf), "preset": self.preset}
            self._stream = stream
            self._first_pts = masked.pts_us
        assert self._first_pts is not None
        if frame.width != self._stream.width or frame.height != self._stream.height:
            frame = frame.reformat(width=self._stream.width, height=self._stream.height)
        pts = max(masked.pts_us - self._first_pts, self._last_pts + 1)
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = _TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._stream is not None:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        self._container.close()
        if self.audio_from is not None:
            try:
                _merge_audio(self._video_path, self.audio_from, self.path)
            finally:
                self._video_path.unlink(missing_ok=True)


def _merge_audio(video: Path, audio_src: Path, out: Path) -> None:
    """Stream-copy the masked video and the source's audio tracks into `out`, interleaved."""
    with (
        av.open(str(video)) as vin,
        av.open(str(audio_src)) as ain,
        av.open(str(out), "w", format=_guess_format(out)) as dst,
    ):
        vstream = vin.streams.video[0]
        outputs: dict[tuple[int, int], av.stream.Stream] = {
            (0, vstream.index): dst.add_stream_from_template(vstream)
        }
        audio = []
        for a in ain.streams.audio:
            try:
                outputs[(1, a.index)] = dst.add_stream_from_template(a)
                audio.append(a)
            except (ValueError, av.error.FFmpegError):
                continue  # this container cannot hold that codec: drop it, keep the video
        feeds: list[tuple[int, Iterator[av.Packet]]] = [(0, vin.demux(vstream))]
        if audio:
            feeds.append((1, ain.demux(*audio)))
        merged = heapq.merge(*[_timed(src, gen) for src, gen in feeds], key=lambda item: item[:3])
        for _t, src, _n, packet in merged:
            if not packet.size:
                continue  # the demuxer's flush packet (Matroska gives real ones no dts)
            packet.stream = outputs[(src, packet.stream.index)]
            dst.mux(packet)


def _timed(src: int, packets: Iterator[av.Packet]) -> Iterator[tuple[float, int, int, av.Packet]]:
    for n, packet in enumerate(packets):
        yield (_seconds(packet), src, n, packet)


def _seconds(packet: av.Packet) -> float:
    ts = packet.dts if packet.dts is not None else packet.pts
    if ts is None or packet.time_base is None:
        return float("inf")
    return float(ts * packet.time_base)
