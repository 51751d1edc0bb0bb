"""Composition root: builds the source, detectors, pipeline, encoders and bus; stops in reverse."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from vcam import MODELS_DIR
from vcam.analytics.metadata import MetadataSink
from vcam.config import Config
from vcam.encode.file_writer import MaskedFileWriter, check_writable
from vcam.encode.stream_sink import StreamEncoderSink
from vcam.media.bus import EncodedBus
from vcam.media.types import ObjectClass, SourceInfo
from vcam.media_settings import MediaSettings, MediaSettingsStore
from vcam.pipeline import Pipeline, PipelineStats
from vcam.privacy.detectors import Detector, create_detector
from vcam.privacy.gate import MODE_CLASSES
from vcam.privacy.masks import rgb_to_yuv
from vcam.privacy.zones import StaticMask
from vcam.sources import Source, open_source
from vcam.web.snapshot import LatestFrame

log = logging.getLogger("vcam.app")


def build_detectors(cfg: Config) -> list[Detector]:
    """The detectors the masking mode needs, loaded once (errors name the config key)."""
    models_dir = Path(cfg.models_dir) if cfg.models_dir else MODELS_DIR
    classes = MODE_CLASSES[cfg.privacy.mode]
    detectors: list[Detector] = []
    wanted = []
    if ObjectClass.FACE in classes:
        wanted.append(("detectors.face", cfg.detectors.face))
    if ObjectClass.PERSON in classes or cfg.privacy.person_heads:
        wanted.append(("detectors.person", cfg.detectors.person))
    for key, dcfg in wanted:
        detectors += [create_detector(dcfg, models_dir, key) for _ in range(dcfg.workers)]
    return detectors


_MASK_STYLES = {"Color": "solid", "Pixelated": "mosaic", "Blurred": "blur"}


def static_masks(settings: MediaSettings) -> tuple[StaticMask, ...]:
    """The enabled client-set masks as the gate draws them."""
    return tuple(
        StaticMask(
            m.polygon,
            _MASK_STYLES[m.kind],
            rgb_to_yuv(m.color) if m.kind == "Color" else None,
        )
        for m in settings.masks
        if m.enabled
    )


class Camera:
    """The live camera: source -> masked pipeline -> one encoder per stream -> encoded bus.

    It follows `media` (what ONVIF clients and the web page set) live: encoder settings, static
    masks and imaging apply from the next frame on.
    """

    def __init__(
        self, cfg: Config, source: Source | None = None, media: MediaSettingsStore | None = None
    ) -> None:
        self.cfg = cfg
        self.source = source if source is not None else open_source(cfg.source)
        self.media = media if media is not None else MediaSettingsStore.load(None, cfg)
        self.detectors = build_detectors(cfg)
        self.bus = EncodedBus(default_maxsize=cfg.output.subscriber_queue)
        self.encoders = [
            StreamEncoderSink(stream, self.bus, self.source.fps) for stream in cfg.output.streams
        ]
        # Tracks only (boxes, ids, classes): the metadata stream never carries image data.
        self.metadata = MetadataSink(self.bus)
        self.latest = LatestFrame()  # snapshots: the last masked frame
        self.pipeline = Pipeline(
            cfg,
            self.source,
            self.detectors,
            [*self.encoders, self.metadata, self.latest],
            live=True,
        )
        self._follow(self.media.settings)
        self._unsubscribe = self.media.subscribe(self._follow)

    def _follow(self, settings: MediaSettings) -> None:
        configured = {st.name: st for st in self.cfg.output.streams}
        for sink in self.encoders:
            enc = next((e for e in settings.encoders if e.stream == sink.stream.name), None)
            if enc is not None:
                sink.reconfigure(enc.stream_config(configured[enc.stream]))
        self.pipeline.gate.static_masks = static_masks(settings)

    def source_info(self) -> SourceInfo:
        """The source's frame size and rate (size 0x0 until a network source's first frame)."""
        width, height = self.source_size()
        return SourceInfo(width, height, self.source.fps)

    def start(self) -> None:
        log.info("source: %s", self.source.description)
        self.pipeline.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._unsubscribe()
        self.pipeline.stop()
        if not self.pipeline.join(timeout):
            log.warning("pipeline threads still running after %.1f s", timeout)
        for enc in self.encoders:
            enc.close()

    def source_size(self) -> tuple[int, int]:
        """The source's frame size: known at open for files and devices, at the first frame
        for network sources (0x0 until then)."""
        masked = self.latest.last
        if masked is not None:
            return masked.frame.width, masked.frame.height
        return int(getattr(self.source, "width", 0)), int(getattr(self.source, "height", 0))

    def stats(self) -> PipelineStats:
        return self.pipeline.stats()

    def status_line(self) -> str:
        s = self.stats()
        g = s.gate
        fps = g.frames_out / s.running_s if s.running_s > 0 else 0.0
        closed = ", ".join(f"{k}={v}" for k, v in sorted(g.closed_reasons.items())) or "none"
        return (
            f"frames {g.frames_out} ({fps:.1f} fps) masked {g.frames_masked} "
            f"fail-closed {g.frames_closed} [{closed}] detector {g.detector_ms:.1f} ms "
            f"runs {g.detections_run} dropped {s.source_dropped} "
            f"subscribers {self.bus.subscriber_count()}"
        )


@dataclass
class MaskJob:
    """`vcam mask`: a file source, the offline pipeline and the file writer, ready to run."""

    source: Source
    pipeline: Pipeline
    writer: MaskedFileWriter


def build_mask_job(
    cfg: Config,
    output: Path,
    *,
    crf: int = 20,
    preset: str = "veryfast",
    audio_from: Path | None = None,
) -> MaskJob:
    """Open the input (SourceError for a missing file or not a video), check the output can be
    written (OutputError), load the detectors: every bad input fails here, before any work."""
    source = open_source(cfg.source)
    check_writable(output)
    detectors = build_detectors(cfg)
    writer = MaskedFileWriter(output, source.fps, crf=crf, preset=preset, audio_from=audio_from)
    pipeline = Pipeline(cfg, source, detectors, [writer], live=False)
    return MaskJob(source, pipeline, writer)
