"""Encodes masked frames once per configured stream and publishes them on the bus."""

from __future__ import annotations

import logging

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
        bus.set_keyframe_callback(stream.name, self.request_keyframe)

    def request_keyframe(self) -> None:
        if self.encoder is not None:
            self.encoder.request_keyframe()

    def on_frame(self, masked: MaskedFrame) -> None:
        if self.encoder is None:
            self.encoder = H264Encoder(
                self.stream, masked.frame.width, masked.frame.height, self.source_fps
            )
        for unit in self.encoder.encode(masked):
            self.bus.publish(unit)
        self.frames += 1

    def close(self) -> None:
        if self.encoder is not None:
            for unit in self.encoder.flush():
                self.bus.publish(unit)
            self.encoder.close()
