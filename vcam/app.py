"""Composition root: builds the source, detectors, pipeline, encoders and bus; stops in reverse."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from vcam import MODELS_DIR
from vcam.analytics.engine import AnalyticsEngine
from vcam.analytics.metadata import MetadataSink
from vcam.analytics.store import AnalyticsRuleStore, configured_rules
from vcam.config import Config
from vcam.encode.file_writer import MaskedFileWriter, check_writable
from vcam.encode.stream_sink import StreamEncoderSink
from vcam.errors import SourceError
from vcam.events.broker import EventBroker
from vcam.imaging import ImagingStage
from vcam.media.bus import EncodedBus
from vcam.media.types import ObjectClass, SourceInfo
from vcam.media_settings import MediaSettings, MediaSettingsStore
from vcam.pipeline import Pipeline, PipelineStats, PtsMark
from vcam.privacy.detectors import Detector, create_detector
from vcam.privacy.gate import MODE_CLASSES
from vcam.privacy.masks import rgb_to_yuv
from vcam.privacy.zones import StaticMask
from vcam.sources import Source, open_source
from vcam.status import CameraStatus
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
    masks and imaging apply from the next frame on. `restart` (ONVIF SystemReboot) replaces the
    pipeline and reopens the source while the bus, encoders and RTSP clients stay.
    """

    def __init__(
        self,
        cfg: Config,
        source: Source | None = None,
        media: MediaSettingsStore | None = None,
        *,
        events: EventBroker | None = None,
        rules: AnalyticsRuleStore | None = None,
    ) -> None:
        """`media`, `rules`: what clients set (kept in the data directory by `vcam serve`);
        `events`: where the analytics publish (the ONVIF Events service reads it)."""
        self.cfg = cfg
        self._own_source = source is None  # reopened from the config on a restart
        self.source = source if source is not None else open_source(cfg.source)
        self.media = media if media is not None else MediaSettingsStore.load(None, cfg)
        self.detectors = build_detectors(cfg)
        self.bus = EncodedBus(default_maxsize=cfg.output.subscriber_queue)
        self.encoders = [
            StreamEncoderSink(stream, self.bus, self.source.fps) for stream in cfg.output.streams
        ]
        self.events = events if events is not None else EventBroker()
        self.rules = (
            rules
            if rules is not None
            else AnalyticsRuleStore.load(None, configured_rules(cfg.analytics))
        )
        # Built once, not per pipeline run: counters and states survive a restart.
        self.analytics = (
            AnalyticsEngine(self.events, self.rules, cfg.analytics)
            if cfg.analytics.enabled
            else None
        )
        # Tracks and events only: the metadata stream never carries image data.
        self.metadata = MetadataSink(self.bus, events=self.events)
        self.latest = LatestFrame()  # snapshots: the last masked frame
        # Serialises start/stop/restart; `_swap` guards which pipeline `_follow` targets.
        self._life = threading.Lock()
        self._swap = threading.Lock()
        self._running = False  # between start() and stop(): only then is there a run to redo
        self.restarts = 0
        self.pipeline = self._new_pipeline()
        self._follow(self.media.settings)
        self._unsubscribe = self.media.subscribe(self._follow)

    def _new_pipeline(self, resume: PtsMark | None = None) -> Pipeline:
        """The live pipeline on the current source, into the camera's long-lived sinks."""
        return Pipeline(
            self.cfg,
            self.source,
            self.detectors,
            # Analytics before the metadata sink: a frame's events go out with its document.
            [
                *self.encoders,
                *([self.analytics] if self.analytics else []),
                self.metadata,
                self.latest,
            ],
            live=True,
            stages=[ImagingStage(self.media)],  # brightness etc. on masked frames only
            resume=resume,
        )

    def _follow(self, settings: MediaSettings) -> None:
        configured = {st.name: st for st in self.cfg.output.streams}
        for sink in self.encoders:
            enc = next((e for e in settings.encoders if e.stream == sink.stream.name), None)
            if enc is not None:
                sink.reconfigure(enc.stream_config(configured[enc.stream]))
        with self._swap:
            self.pipeline.gate.static_masks = static_masks(settings)

    def source_info(self) -> SourceInfo:
        """The source's frame size and rate (size 0x0 until a network source's first frame)."""
        width, height = self.source_size()
        return SourceInfo(width, height, self.source.fps)

    def start(self) -> None:
        with self._life:
            log.info("source: %s", self.source.description)
            self.pipeline.start()
            self._running = True

    def stop(self, timeout: float = 5.0) -> None:
        with self._life:
            self._running = False
            self._unsubscribe()
            self.pipeline.stop()
            if not self.pipeline.join(timeout):
                log.warning("pipeline threads still running after %.1f s", timeout)
            for enc in self.encoders:
                enc.close()
            if self.analytics is not None:
                self.analytics.close()
            self.metadata.close()

    def restart(self, timeout: float = 5.0) -> float:
        """Stop the pipeline, reopen the source and run a new pipeline into the same sinks;
        returns the seconds it took (blocking: call it off the event loop).

        The new run's pts go on after the last frame sent, its first encoded frame is an IDR,
        and its gate starts closed (a new gate, a new epoch): connected clients keep decoding
        and nothing clear leaves. The detectors are reused: the old bank only shuts down its
        worker threads, the sessions stay loaded."""
        t0 = time.monotonic()
        with self._life:
            if not self._running:
                log.info("restart: the camera is not running")
                return 0.0
            old = self.pipeline
            old.stop()
            if not old.join(timeout):
                log.warning("old pipeline threads still running after %.1f s", timeout)
            if self._own_source:
                try:
                    self.source = open_source(self.cfg.source)
                except SourceError as exc:
                    # Keep the old one: a live input reconnects by itself; a file's error ends
                    # up in pipeline.error, which `vcam serve` reports.
                    log.error("restart: cannot reopen the source (%s); reusing it", exc)
            # A given source object starts over on every frames() call (all sources do).
            pipeline = self._new_pipeline(old.last_out)
            for enc in self.encoders:
                enc.request_keyframe()  # the first frame after the gap: decodable on its own
            with self._swap:
                pipeline.gate.static_masks = static_masks(self.media.settings)
                self.pipeline = pipeline
            pipeline.start()
            self.restarts += 1
        took = time.monotonic() - t0
        log.info("pipeline restarted in %.2f s (source: %s)", took, self.source.description)
        return took

    def source_size(self) -> tuple[int, int]:
        """The source's frame size: known at open for files and devices, at the first frame
        for network sources (0x0 until then)."""
        masked = self.latest.last
        if masked is not None:
            return masked.frame.width, masked.frame.height
        return int(getattr(self.source, "width", 0)), int(getattr(self.source, "height", 0))

    def stats(self) -> PipelineStats:
        return self.pipeline.stats()

    def status(self) -> CameraStatus:
        return CameraStatus(
            source=self.source.description,
            pipeline=self.stats(),
            bus=self.bus.stats(),
            analytics=self.analytics.snapshot() if self.analytics is not None else None,
            restarts=self.restarts,
        )

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
