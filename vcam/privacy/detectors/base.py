"""The detector interface and the registry that builds a detector from its config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from vcam.config import DetectorConfig
from vcam.errors import ConfigError
from vcam.media.types import Detection, ObjectClass
from vcam.privacy.detectors import sizing


class Detector(Protocol):
    """One object detector; `detect` is called from one worker thread at a time."""

    name: str
    cls: ObjectClass
    # (width, height) the pipeline resizes frames to before detect(), unless the detector is
    # also SourceSized (then input_for() decides, per source size)
    input_size: tuple[int, int]

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """`rgb`: HxWx3 uint8 RGB of the input size. Boxes come back normalised to 0..1."""
        ...


@runtime_checkable
class SourceSized(Protocol):
    """A detector whose input size depends on the source's frame size ("auto" sizes)."""

    def input_for(self, width: int, height: int, max_pixels: int) -> tuple[int, int]: ...


def input_size_for(
    detector: Detector, width: int, height: int, max_pixels: int = sizing.MAX_PIXELS
) -> tuple[int, int]:
    """The size to resize a `width` x `height` source frame to before `detector.detect`;
    `max_pixels` caps an "auto" size (live: LiveBudget)."""
    if isinstance(detector, SourceSized):
        return detector.input_for(width, height, max_pixels)
    return detector.input_size


@runtime_checkable
class Thresholded(Protocol):
    """A detector whose score threshold can change while it runs (from any thread)."""

    threshold: float


def set_threshold(detector: Detector, value: float) -> bool:
    """Sets the score threshold of `detector` while it runs; False for a detector without
    one (a test double wrapping another)."""
    if not isinstance(detector, Thresholded):
        return False
    detector.threshold = value
    return True


DetectorFactory = Callable[[DetectorConfig, Path], Detector]
F = TypeVar("F", bound=DetectorFactory)

_REGISTRY: dict[str, DetectorFactory] = {}


def register_detector(name: str) -> Callable[[F], F]:
    """Class decorator: make a detector buildable as `model = "<name>"` in the config."""

    def add(factory: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"detector {name!r} registered twice")
        _REGISTRY[name] = factory
        return factory

    return add


def known_models() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def create_detector(cfg: DetectorConfig, models_dir: Path, key: str) -> Detector:
    """Build the detector `cfg.model` names; `key` is its config table, e.g. "detectors.face".

    Raises ConfigError for an unknown model, DetectorError for a missing or unloadable file.
    """
    factory = _REGISTRY.get(cfg.model)
    if factory is None:
        raise ConfigError(
            f"{key}.model",
            f"unknown model {cfg.model!r}; known models: {', '.join(known_models())}",
        )
    return factory(cfg, models_dir)
