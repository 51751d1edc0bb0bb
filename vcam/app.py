"""Composition root: builds the source, detectors, pipeline, encoders and bus; stops in reverse."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vcam import MODELS_DIR
from vcam.analytics.counters import COUNTERS_FILE
from vcam.analytics.engine import AnalyticsEngine
from vcam.analytics.metadata import MetadataSink
from vcam.analytics.store import AnalyticsRuleStore, configured_rules
from vcam.config import Config, MaskMode
from vcam.encode.file_writer import MaskedFileWriter, check_writable
from vcam.encode.stream_sink import StreamEncoderSink
from vcam.errors import SourceError, VcamError
from vcam.events.broker import EventBroker
from vcam.imaging import ImagingStage
from vcam.media.bus import EncodedBus
from vcam.media.types import ObjectClass, SourceInfo
from vcam.media_settings import MediaSettings, MediaSettingsStore
from vcam.pipeline import Pipeline, PipelineStats, PtsMark
from vcam.privacy.detectors import Detector, create_detector, set_threshold
from vcam.privacy.gate import MODE_CLASSES
from vcam.privacy.masks import rgb_to_yuv
from vcam.privacy.zones import StaticMask
from vcam.sources import Source, open_source
from vcam.status import CameraStatus
from vcam.web.snapshot import LatestFrame

log = logging.getLogger("vcam.app")


_DETECTOR_KEYS = {ObjectClass.FACE: "face", ObjectClass.PERSON: "person"}


def detector_classes(cfg: Config) -> list[ObjectClass]:
    """The detector roles the masking mode needs (face mode: the person detector too while
    `person_heads` is on)."""
    classes = MODE_CLASSES[cfg.privacy.mode]
    wanted = []
    if ObjectClass.FACE in classes:
        wanted.append(ObjectClass.FACE)
    if ObjectClass.PERSON in classes or cfg.privacy.person_heads:
        wanted.append(ObjectClass.PERSON)
    return wanted


def build_detectors(
    cfg: Config, loaded: Mapping[ObjectClass, Sequence[Detector]] | None = None
) -> list[Detector]:
    """The detectors the masking mode needs, loaded once (errors name the config key); the
    roles in `loaded` are reused, not loaded again (a masking mode change)."""
    models_dir = Path(cfg.models_dir) if cfg.models_dir else MODELS_DIR
    detectors: list[Detector] = []
    for cls in detector_classes(cfg):
        if loaded and loaded.get(cls):
            detectors += loaded[cls]
            continue
        name = _DETECTOR_KEYS[cls]
        dcfg = getattr(cfg.detectors, name)
        key = f"detectors.{name}"
        detectors += [create_detector(dcfg, models_dir, key) for _ in range(dcfg.workers)]
    return detectors


def _by_class(detectors: Iterable[Detector]) -> dict[ObjectClass, list[Detector]]:
    out: dict[ObjectClass, list[Detector]] = {}
    for det in detectors:
        out.setdefault(det.cls, []).append(det)
    return out


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
    masks, imaging, the mask style and the detectors' thresholds apply from the next frame on.
    A masking mode change loads the detectors the new mode needs (in a worker thread, every
    frame fully masked meanwhile) and restarts the pipeline with them. `restart` (ONVIF
    SystemReboot) replaces the pipeline and reopens the source while the bus, encoders and RTSP
    clients stay. `cfg` is the configuration with the masking in effect applied.
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
        self.media = media if media is not None else MediaSettingsStore.load(None, cfg)
        # The masking clients set (kept in media.json) over the configured one.
        cfg = self.media.settings.privacy.apply(cfg)
        self.cfg = cfg
        self._own_source = source is None  # reopened from the config on a restart
        self.source = source if source is not None else open_source(cfg.source)
        self.detectors = build_detectors(cfg)
        # Every detector loaded so far, by role: a mode change back reuses them.
        self._loaded = _by_class(self.detectors)
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
        # Built once, not per pipeline run: counters and states survive a restart. With the
        # rules kept in the data directory, the counts are kept beside them (a process restart).
        counters = self.rules.path.with_name(COUNTERS_FILE) if self.rules.path else None
        self.analytics = (
            AnalyticsEngine(self.events, self.rules, cfg.analytics, counters=counters)
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
        self._stopped = False
        self.restarts = 0
        # Masking mode changes (_switch_mode): the mode asked for, whether a worker is at it,
        # and how long the last one took (seconds from the request to the new run's start).
        self._mode_target = cfg.privacy.mode
        self._switcher: threading.Thread | None = None
        self._settled = threading.Event()
        self._settled.set()
        self.mode_switch_s: float | None = None
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
        p = settings.privacy
        with self._swap:
            # Style and thresholds at once; the mode once its detectors run (_switch_mode).
            self.cfg = dataclasses.replace(p, mode=self.cfg.privacy.mode).apply(self.cfg)
            self._apply_thresholds()
            gate = self.pipeline.gate
            gate.static_masks = static_masks(settings)
            gate.style = p.style
            if p.mode == self._mode_target:
                return
            self._mode_target = p.mode
            # Fail closed from this frame on: the detectors running may not find what the new
            # mode masks (face -> body), and the restart's new gate starts closed anyway.
            gate.hold = "mode-change"
            if self._switcher is None and not self._stopped:
                self._settled.clear()
                self._switcher = threading.Thread(
                    target=self._switch_mode, args=(time.monotonic(),), name="vcam-mode"
                )
                self._switcher.daemon = True
                self._switcher.start()

    def _apply_thresholds(self) -> None:
        """The thresholds of `self.cfg` on every loaded detector (`_swap` held)."""
        for cls, detectors in self._loaded.items():
            dcfg = getattr(self.cfg.detectors, _DETECTOR_KEYS[cls])
            for det in detectors:
                set_threshold(det, dcfg.threshold)

    def _switch_mode(self, asked: float) -> None:
        """Worker: runs the pipeline in the mode asked for last, until it is the one in effect
        (a change that arrives meanwhile is picked up by the next round)."""
        while True:
            with self._swap:
                target = self._mode_target
                done = target == self.cfg.privacy.mode and not self.pipeline.gate.hold
                if done or self._stopped:
                    self._switcher = None
                    self._settled.set()
                    return
                before = self.cfg.privacy.mode
                cfg = dataclasses.replace(
                    self.cfg, privacy=dataclasses.replace(self.cfg.privacy, mode=target)
                )
                loaded = {cls: list(d) for cls, d in self._loaded.items()}
            try:
                detectors = build_detectors(cfg, loaded)  # slow: off the gate and the lock
            except VcamError as exc:
                log.error("masking mode %s: cannot load its detectors (%s); back to %s",
                          target, exc, before)  # fmt: skip
                self._revert_mode(before)
                continue
            with self._swap:
                for cls, dets in _by_class(detectors).items():
                    self._loaded.setdefault(cls, dets)
                self._apply_thresholds()  # ones changed while the new detectors loaded
            if self._relaunch(5.0, reopen=False, mode=target, detectors=detectors) is not None:
                self.mode_switch_s = time.monotonic() - asked
                log.info("masking mode %s -> %s in %.2f s (%s)", before, target,
                         self.mode_switch_s, ", ".join(d.name for d in detectors))  # fmt: skip
            asked = time.monotonic()

    def _revert_mode(self, mode: MaskMode) -> None:
        """The store back to the mode in effect: ONVIF and the page show what really runs."""
        try:
            self.media.change(
                lambda s: dataclasses.replace(s, privacy=dataclasses.replace(s.privacy, mode=mode))
            )
        except (OSError, ValueError) as exc:
            log.error("cannot set the masking mode back to %s: %s", mode, exc)
            with self._swap:
                self._mode_target = mode

    def wait_settled(self, timeout: float | None = None) -> bool:
        """Waits until no masking mode change is under way; False on timeout."""
        return self._settled.wait(timeout)

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
            self._stopped = True  # a mode change under way ends without a new run
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
        took = self._relaunch(timeout, reopen=True)
        return 0.0 if took is None else took

    def _relaunch(
        self,
        timeout: float,
        *,
        reopen: bool,
        mode: MaskMode | None = None,
        detectors: list[Detector] | None = None,
    ) -> float | None:
        """`restart`; with `mode` and `detectors`: the new run masks in that mode with them.
        None when there was no run to redo (before start(): a mode change only rebuilds the
        pipeline start() will run; after stop(): nothing)."""
        t0 = time.monotonic()
        with self._life:
            if self._stopped or (not self._running and mode is None):
                log.info("restart: the camera is not running")
                return None
            if mode is not None and detectors is not None:
                with self._swap:
                    privacy = dataclasses.replace(self.cfg.privacy, mode=mode)
                    self.cfg = dataclasses.replace(self.cfg, privacy=privacy)
                    self.detectors = detectors
            old = self.pipeline
            if not self._running:
                old.bank.close()  # never started: only its executors to end
                self._swap_in(self._new_pipeline())
                return None
            old.stop()
            if not old.join(timeout):
                log.warning("old pipeline threads still running after %.1f s", timeout)
            if reopen and self._own_source:
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
            self._swap_in(pipeline)
            pipeline.start()
            self.restarts += 1
        took = time.monotonic() - t0
        log.info("pipeline restarted in %.2f s (source: %s)", took, self.source.description)
        return took

    def _swap_in(self, pipeline: Pipeline) -> None:
        """Makes `pipeline` the one `_follow` updates, with the live settings on its gate."""
        with self._swap:
            gate = pipeline.gate
            gate.static_masks = static_masks(self.media.settings)
            gate.style = self.cfg.privacy.style
            if self._mode_target != self.cfg.privacy.mode:
                gate.hold = "mode-change"  # another change came meanwhile: the worker goes on
            self.pipeline = pipeline

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
