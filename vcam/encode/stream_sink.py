"""Encodes masked frames once per configured stream and publishes them on the bus."""

from __future__ import annotations

import logging
import threading

from vcam.config import StreamConfig
from vcam.encode.h264 import H264Encoder
from vcam.media.bus import EncodedBus
from vcam.media.types import MaskedFrame

log = logging.getLogger("vcam.encode")


class StreamEncoderSink:
    """One encoder per stream, created at the first frame (the source's size is known then)."""

    def __init__(self, stream: StreamConfig, bus: EncodedBus, source_fps: float) -> None:
        self.stream = stream
        self.bus = bus
        self.source_fps = source_fps
        self.encoder: H264Encoder | None = None
        self.frames = 0
        self._lock = threading.Lock()
        self._next: StreamConfig | None = None
        bus.set_keyframe_callback(stream.name, self.request_keyframe)

    def reconfigure(self, stream: StreamConfig) -> None:
        """Encode with new settings (size, rate, bitrate, GOP, profile) from the next frame on:
        the old encoder is drained and a new one starts with an IDR. Any thread."""
        if stream.name != self.stream.name:
            raise ValueError(f"stream {self.stream.name}: cannot become {stream.name}")
        with self._lock:
            self._next = stream

    def request_keyframe(self) -> None:
        if self.encoder is not None:
            self.encoder.request_keyframe()

    def on_frame(self, masked: MaskedFrame) -> None:
        with self._lock:
            stream, self._next = self._next, None
        if stream is not None and stream != self.stream:
            log.info("stream %s: now %s", stream.name, stream)
            self.close()
            self.stream, self.encoder = stream, None
        if self.encoder is None:
            self.encoder = H264Encoder(
                self.stream, masked.frame.width, masked.frame.height, self.source_fps
            )
        for unit in self.encoder.encode(masked):
            self.bus.publish(unit)
        self.frames += 1

    def close(self) -> None:
        """Drains and closes the encoder; the next frame would open a new one."""
        if self.encoder is not None:
            for unit in self.encoder.flush():
                self.bus.publish(unit)
            self.encoder.close()
            self.encoder = None
