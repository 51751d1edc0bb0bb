"""ONNX Runtime plumbing shared by the detectors: session options, input checks, locking."""

from __future__ import annotations

import abc
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort

from vcam.config import DetectorConfig
from vcam.errors import DetectorError
from vcam.media.types import Detection, ObjectClass
from vcam.privacy.detectors import sizing


def providers() -> list[str]:
    """CUDA first when this onnxruntime build has it, the CPU always as the fallback."""
    available = ort.get_available_providers()
    chosen = ["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []
    return [*chosen, "CPUExecutionProvider"]


def load_session(path: Path, threads: int) -> ort.InferenceSession:
    """Open `path`; a missing or corrupt file raises DetectorError naming the path."""
    if not path.is_file():
        raise DetectorError(f"model file not found: {path}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    # One frame at a time per detector: parallelism inside ops only, none between them.
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only: the converted graphs trigger harmless warnings
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers())
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        raise DetectorError(f"cannot load model {path}: {exc}") from exc


class OnnxDetector(abc.ABC):
    """Shared plumbing: open the file, check each input, serialise calls, wrap failures."""

    name: str
    cls: ObjectClass
    model_file: str  # inside models_dir

    def __init__(self, cfg: DetectorConfig, models_dir: Path) -> None:
        self.cfg = cfg
        # "auto" (0x0): sized per source by input_for(); until a source is known, the warm-up's.
        self.auto = sizing.is_auto(cfg)
        self.input_size = sizing.UNKNOWN if self.auto else (cfg.input_width, cfg.input_height)
        self._threshold = 0.0
        self.threshold = cfg.threshold
        self.session = load_session(models_dir / self.model_file, cfg.threads)
        # The pipeline uses one worker per detector; the lock keeps any other caller safe too
        # (the subclasses reuse preallocated buffers).
        self._lock = threading.Lock()
        # A first run allocates ONNX Runtime's buffers and proves the graph runs at this size,
        # so a broken model fails at start and not on the first frame.
        w, h = self.input_size
        self.detect(np.zeros((h, w, 3), np.uint8))

    @property
    def threshold(self) -> float:
        """The score a detection needs. Settable from any thread while the detector runs: one
        attribute store is atomic, and each inference reads it once (`_infer`), so a frame is
        decoded with either the old or the new value, never a mix."""
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        if not 0.0 < value < 1.0:  # also refuses NaN
            raise ValueError(f"{self.name}: threshold {value!r} not in (0, 1)")
        self._threshold = float(value)

    def input_for(
        self, width: int, height: int, max_pixels: int = sizing.MAX_PIXELS
    ) -> tuple[int, int]:
        """The input size for a `width` x `height` source (the configured one, or "auto"'s)."""
        return sizing.input_size(self.cfg, width, height, max_pixels)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or not self._fits(rgb):
            w, h = self.input_size
            wanted = "HxWx3" if self.auto else f"{h}x{w}x3"
            got = f"{rgb.shape} {rgb.dtype}"
            raise DetectorError(f"{self.name}: expected {wanted} uint8, got {got}")
        with self._lock:
            try:
                return self._infer(rgb)
            except DetectorError:
                raise
            except Exception as exc:  # onnxruntime's own exception types
                raise DetectorError(f"{self.name}: inference failed: {exc}") from exc

    def _fits(self, rgb: np.ndarray) -> bool:
        """A fixed size must match exactly (a caller resizing wrongly is a bug); an "auto" one
        takes whatever size input_for() gave, within the limits the config has."""
        h, w = rgb.shape[:2]
        if not self.auto:
            return (w, h) == self.input_size
        lo, hi = sizing.LIMITS
        return lo <= w <= hi and lo <= h <= hi

    @abc.abstractmethod
    def _infer(self, rgb: np.ndarray) -> list[Detection]:
        """Run the model on a checked input; each model decodes its own outputs."""
