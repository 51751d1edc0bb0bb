"""The INT8 CenterFace (models/centerface_int8.onnx) behind `model = "centerface-int8"`."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from vcam import MODELS_DIR
from vcam.config import DetectorConfig
from vcam.media.types import Box, ObjectClass
from vcam.privacy.detectors import Detector, create_detector, known_models
from vcam.privacy.detectors.centerface import CenterFaceDetector

# The astronaut's face in skimage's 512x512 astronaut.png, as in test_detectors.py.
ASTRONAUT_FACE = Box(182, 58, 270, 178)


def int8_detector(width: int, height: int, threshold: float = 0.35) -> Detector:
    cfg = DetectorConfig(
        model="centerface-int8", input_width=width, input_height=height, threshold=threshold
    )
    return create_detector(cfg, MODELS_DIR, "detectors.face")


def resized(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def test_registered_as_a_face_model_of_its_own_file() -> None:
    assert "centerface-int8" in known_models()
    det = int8_detector(640, 360)
    assert isinstance(det, CenterFaceDetector)  # same preprocessing and decode as fp32
    assert det.name == "centerface-int8" and det.cls is ObjectClass.FACE
    assert det.model_file == "centerface_int8.onnx"


# 320x192, 640x384 and 1280x736 need no padding; 640x360 and 400x250 take the padding path.
@pytest.mark.parametrize("size", [(512, 512), (320, 192), (640, 360), (400, 250), (1280, 736)])
def test_int8_finds_the_astronaut(size: tuple[int, int]) -> None:
    w, h = size
    det = int8_detector(w, h)
    assert det.input_size == (w, h)
    found = det.detect(resized(skimage.data.astronaut(), w, h))
    assert len(found) == 1, found
    assert found[0].cls is ObjectClass.FACE and found[0].score > 0.6
    box = found[0].box.scaled(512, 512)  # back to the original image's pixels
    assert 0.0 <= found[0].box.x1 < found[0].box.x2 <= 1.0
    assert box.iou(ASTRONAUT_FACE) > 0.65, box
    assert box.height > 1.2 * box.width, box


def test_int8_agrees_with_fp32_on_the_astronaut() -> None:
    rgb = resized(skimage.data.astronaut(), 640, 360)
    fp32 = create_detector(
        DetectorConfig("centerface", 640, 360, 0.35), MODELS_DIR, "detectors.face"
    ).detect(rgb)
    int8 = int8_detector(640, 360).detect(rgb)
    assert len(fp32) == len(int8) == 1
    assert int8[0].box.iou(fp32[0].box) > 0.8
    assert abs(int8[0].score - fp32[0].score) < 0.15


@pytest.mark.parametrize("name", ["coffee", "brick", "grass", "rocket", "chelsea"])
def test_int8_finds_no_face_where_there_is_none(name: str) -> None:
    rgb = getattr(skimage.data, name)()
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    assert int8_detector(640, 360).detect(resized(rgb, 640, 360)) == []
