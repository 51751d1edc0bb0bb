"""Deep-learning object detectors behind one small interface; `create_detector` builds one."""

from vcam.privacy.detectors import centerface, ssdlite  # noqa: F401  (they register themselves)
from vcam.privacy.detectors.base import (
    Detector,
    create_detector,
    input_size_for,
    known_models,
    register_detector,
    set_threshold,
)

__all__ = [
    "Detector",
    "create_detector",
    "input_size_for",
    "known_models",
    "register_detector",
    "set_threshold",
]
