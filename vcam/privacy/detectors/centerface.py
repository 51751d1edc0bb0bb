"""CenterFace face detector (models/centerface.onnx, see models/README.md).

The network takes NCHW float32 RGB 0-255 whose H and W are multiples of 32 and predicts, at 1/4
of that resolution, a face-centre heatmap, log box sizes and sub-cell centre offsets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vcam.config import DetectorConfig
from vcam.media.types import Box, Detection, ObjectClass
from vcam.privacy.detectors.base import register_detector
from vcam.privacy.detectors.session import OnnxDetector

STRIDE = 4  # output cell size in input pixels
NMS_IOU = 0.3
MAX_CANDIDATES = 500  # a low threshold on a busy frame must not make NMS quadratic in pixels


def _ceil32(n: int) -> int:
    return -(-n // 32) * 32


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression; returns the kept indices, best first.

    Loops once per kept box (a handful per frame), each step vectorised over the rest.
    """
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0])
        h = np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1])
        inter = np.clip(w, 0, None) * np.clip(h, 0, None)
        union = area[i] + area[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[overlap < iou]
    return np.asarray(keep, dtype=np.intp)


def decode(
    heat: np.ndarray, scale: np.ndarray, offset: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Raw outputs (1,1,h,w), (1,2,h,w), (1,2,h,w) -> boxes (N,4) x1y1x2y2 input px, scores (N,)."""
    ys, xs = np.nonzero(heat[0, 0] > threshold)
    scores = heat[0, 0, ys, xs]
    if scores.size > MAX_CANDIDATES:
        top = np.argpartition(-scores, MAX_CANDIDATES)[:MAX_CANDIDATES]
        ys, xs, scores = ys[top], xs[top], scores[top]
    # Channel 0 is the y axis, channel 1 the x axis, for both sizes and offsets.
    bh = np.exp(scale[0, 0, ys, xs]) * STRIDE
    bw = np.exp(scale[0, 1, ys, xs]) * STRIDE
    cy = (ys + offset[0, 0, ys, xs] + 0.5) * STRIDE
    cx = (xs + offset[0, 1, ys, xs] + 0.5) * STRIDE
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    return boxes.astype(np.float32), scores.astype(np.float32)


@register_detector("centerface")
class CenterFaceDetector(OnnxDetector):
    name = "centerface"
    cls = ObjectClass.FACE
    model_file = "centerface.onnx"

    def __init__(self, cfg: DetectorConfig, models_dir: Path) -> None:
        self._blob = np.zeros((1, 3, 0, 0), np.float32)
        self._blob_size = (0, 0)
        super().__init__(cfg, models_dir)

    def _input_blob(self, w: int, h: int) -> np.ndarray:
        """The network input for a `w` x `h` image, kept while the size stays (an "auto" size
        changes only with the source's)."""
        if self._blob_size != (w, h):
            # Pad bottom/right to a multiple of 32 instead of stretching: the scale stays 1:1
            # and the padding is black (zeros), which holds no faces. Only [:h, :w] is ever
            # rewritten, so a new size needs a new blob (an old image's rows would be padding).
            self._blob = np.zeros((1, 3, _ceil32(h), _ceil32(w)), np.float32)
            self._blob_size = (w, h)
        return self._blob

    def _infer(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        blob = self._input_blob(w, h)
        blob[0, :, :h, :w] = rgb.transpose(2, 0, 1)  # HWC uint8 -> CHW float, RGB kept
        heat, scale, offset = self.session.run(["537", "538", "539"], {"input.1": blob})
        boxes, scores = decode(heat, scale, offset, self.threshold)
        if not scores.size:
            return []
        # Clip to the real image (not the padding) before NMS, so overlaps are of visible parts.
        np.clip(boxes[:, 0::2], 0, w, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, h, out=boxes[:, 1::2])
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores = boxes[valid], scores[valid]
        keep = nms(boxes, scores, NMS_IOU)
        boxes = boxes[keep] / np.array([w, h, w, h], np.float32)
        return [
            Detection(Box(*map(float, b)), float(s), ObjectClass.FACE)
            for b, s in zip(boxes, scores[keep], strict=True)
        ]


@register_detector("centerface-int8")
class CenterFaceInt8Detector(CenterFaceDetector):
    """The same network statically quantised to INT8 (models/centerface_int8.onnx): same input,
    outputs and decode; about half the CPU time on x86 with VNNI, see models/README.md."""

    name = "centerface-int8"
    model_file = "centerface_int8.onnx"
