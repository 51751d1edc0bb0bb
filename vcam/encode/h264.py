"""H.264 encoding of masked frames with libx264 (through PyAV), once per output stream.

The bytes serve RTSP and WebRTC as they are: Annex-B, SPS/PPS repeated before every IDR (a late
joiner needs nothing out of band), no B-frames (decode order == presentation order, lowest
latency), Baseline by default (aiortc passthrough only offers 42e01f). Periodic IDRs come every
`gop` frames exactly (scene cuts are off) and `request_keyframe()` forces one on the next frame.
"""

from __future__ import annotations

import threading
from fractions import Fraction

import av
from av.video.frame import PictureType

from vcam.config import StreamConfig
from vcam.encode.annexb import NAL_IDR, nal_types
from vcam.errors import OutputError
from vcam.media.types import EncodedUnit, MaskedFrame

TIME_BASE = Fraction(1, 1_000_000)  # pts are the pipeline's microseconds, unchanged


def effective_fps(requested: float, source_fps: float) -> float:
    """The rate a stream really has: only decimation, never more frames than the source gives
    (0 requested: the source's rate)."""
    return requested if 0 < requested < source_fps else source_fps


class H264Encoder:
    """One libx264 context for one output stream. Not thread-safe except `request_keyframe`.

    `encode` sets pts and pict_type on the frame it encodes; when no scaling is needed that is
    the MaskedFrame's own frame, so encoders sharing one frame must run in the same thread.
    """

    def __init__(
        self,
        config: StreamConfig,
        source_width: int,
        source_height: int,
        source_fps: float,
    ) -> None:
        self.config = config
        self.follows_source = config.width == 0 or config.height == 0
        if self.follows_source:
            self.width, self.height = _even(source_width), _even(source_height)
        else:
            self.width, self.height = config.width, config.height
        if self.width < 16 or self.height < 16:
            raise OutputError(f"stream {config.name}: bad size {self.width}x{self.height}")
        self.source_fps = source_fps if source_fps > 0 else 30.0
        self.fps = effective_fps(config.fps, self.source_fps)
        self._decimate = self.fps < self.source_fps
        self._next_due_us: float | None = None
        self._keyframe = threading.Event()
        self._ctx: av.VideoCodecContext | None = None
        self._last_pts = -1
        self._index_by_pts: dict[int, int] = {}
        self._closed = False
        self.frames_in = 0
        self.frames_skipped = 0  # dropped by fps decimation
        self.units_out = 0
        self.keyframes_out = 0
        self.forced_keyframes = 0

    @property
    def name(self) -> str:
        return self.config.name

    def request_keyframe(self) -> None:
        """Make the next encoded frame an IDR (with SPS/PPS). Thread-safe, cheap, idempotent."""
        self._keyframe.set()

    def encode(self, masked: MaskedFrame) -> list[EncodedUnit]:
        """Encode one masked frame; returns the access units that came out (0 or 1 usually)."""
        if self._closed:
            raise OutputError(f"stream {self.name}: encoder is closed")
        self.frames_in += 1
        if self._skip(masked.pts_us):
            self.frames_skipped += 1
            return []
        frame = masked.frame
        units: list[EncodedUnit] = []
        if self.follows_source:
            size = (_even(frame.width), _even(frame.height))
            if size != (self.width, self.height):
                units.extend(self.flush())  # the new context starts with an IDR
                self.width, self.height = size
        if (frame.width, frame.height) != (self.width, self.height) or (
            frame.format.name != "yuv420p"
        ):
            frame = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        pts = max(int(masked.pts_us), self._last_pts + 1)  # x264 needs strictly rising pts
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = TIME_BASE
        # A decoded source frame carries its own pict_type; libx264 would obey it. Reset it.
        frame.pict_type = PictureType.NONE
        if self._keyframe.is_set():
            self._keyframe.clear()
            frame.pict_type = PictureType.I  # with forced-idr=1 this is an IDR, not just an I
            self.forced_keyframes += 1
        self._index_by_pts[pts] = masked.index
        ctx = self._ctx if self._ctx is not None else self._open()
        try:
            packets = ctx.encode(frame)
        except av.FFmpegError as exc:
            raise OutputError(f"stream {self.name}: libx264 failed: {exc}") from exc
        units.extend(self._unit(p) for p in packets)
        return units

    def flush(self) -> list[EncodedUnit]:
        """Drain the encoder. The next `encode` opens a fresh context (starting with an IDR)."""
        ctx, self._ctx = self._ctx, None
        if ctx is None:
            return []
        try:
            packets = ctx.encode(None)
        except av.FFmpegError as exc:
            raise OutputError(f"stream {self.name}: libx264 flush failed: {exc}") from exc
        units = [self._unit(p) for p in packets]
        self._index_by_pts.clear()
        return units

    def close(self) -> None:
        """Release the codec context; idempotent. Pending output is discarded."""
        self._ctx = None
        self._index_by_pts.clear()
        self._closed = True

    # -----------------------------------------------------------------------------------------

    def _skip(self, pts_us: int) -> bool:
        """Frame-rate decimation on a grid of the stream's frame interval."""
        if not self._decimate:
            return False
        interval = 1e6 / self.fps
        due = self._next_due_us
        if due is not None and pts_us < due - interval / 2:
            return True
        # A gap (source stall) restarts the grid instead of letting a burst through.
        self._next_due_us = (
            pts_us + interval if due is None or pts_us > due + interval else due + interval
        )
        return False

    def _open(self) -> av.VideoCodecContext:
        cfg = self.config
        ctx = av.CodecContext.create("libx264", "w")
        assert isinstance(ctx, av.VideoCodecContext)
        ctx.width = self.width
        ctx.height = self.height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = TIME_BASE
        ctx.framerate = Fraction(self.fps).limit_denominator(1001)
        ctx.bit_rate = cfg.bitrate_kbps * 1000
        ctx.gop_size = cfg.gop
        ctx.max_b_frames = 0
        ctx.thread_count = cfg.threads
        kbps = cfg.bitrate_kbps
        x264_params = ":".join(
            (
                "repeat-headers=1",  # SPS/PPS before every IDR: joiners need nothing else
                "annexb=1",
                f"keyint={cfg.gop}",
                f"min-keyint={cfg.gop}",
                "scenecut=0",  # IDRs only on the GOP grid or on request
                "bframes=0",
                f"vbv-maxrate={kbps}",  # a 1 s VBV keeps bursts bounded for live delivery
                f"vbv-bufsize={kbps}",
            )
        )
        ctx.options = {
            "preset": cfg.preset,
            "tune": "zerolatency",
            "profile": cfg.profile,
            "forced-idr": "1",  # a forced keyframe is an IDR, not an open-GOP I-frame
            "g": str(cfg.gop),
            "keyint_min": str(cfg.gop),
            "x264-params": x264_params,
        }
        try:
            ctx.open()
        except av.FFmpegError as exc:
            raise OutputError(f"stream {self.name}: cannot open libx264: {exc}") from exc
        self._ctx = ctx
        return ctx

    def _unit(self, packet: av.Packet) -> EncodedUnit:
        data = bytes(packet)
        types = nal_types(data)
        keyframe = NAL_IDR in types
        pts = int(packet.pts) if packet.pts is not None else self._last_pts
        self.units_out += 1
        self.keyframes_out += keyframe
        return EncodedUnit(
            stream=self.name,
            data=data,
            pts_us=pts,
            keyframe=keyframe,
            width=self.width,
            height=self.height,
            index=self._index_by_pts.pop(pts, 0),
            nal_types=types,
        )


def _even(n: int) -> int:
    """4:2:0 H.264 needs even dimensions: round down."""
    return int(n) & ~1
