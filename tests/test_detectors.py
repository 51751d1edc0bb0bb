"""The real detectors on real images: the committed ONNX files, no mocks."""

from __future__ import annotations

import re
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import skimage.data

from vcam import MODELS_DIR
from vcam.config import DetectorConfig
from vcam.errors import ConfigError, DetectorError
from vcam.media.types import Box, Detection, ObjectClass
from vcam.privacy.detectors import Detector, create_detector, known_models

# Debian package opencv-doc: 768x576 pedestrians, 10 fps.
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
# The astronaut's face (eyebrows to chin) in skimage's 512x512 astronaut.png, in pixels, checked
# by eye on a drawing of the box.
ASTRONAUT_FACE = Box(182, 58, 270, 178)


def face_detector(width: int, height: int, threshold: float = 0.35) -> Detector:
    cfg = DetectorConfig(
        model="centerface", input_width=width, input_height=height, threshold=threshold
    )
    return create_detector(cfg, MODELS_DIR, "detectors.face")


def person_detector(width: int, height: int, threshold: float = 0.4) -> Detector:
    cfg = DetectorConfig(
        model="ssdlite", input_width=width, input_height=height, threshold=threshold
    )
    return create_detector(cfg, MODELS_DIR, "detectors.person")


def resized(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def assert_normalised(dets: list[Detection], cls: ObjectClass) -> None:
    for d in dets:
        b = d.box
        assert 0.0 <= b.x1 < b.x2 <= 1.0 and 0.0 <= b.y1 < b.y2 <= 1.0, b
        assert 0.0 < d.score <= 1.0
        assert d.cls is cls


def test_registry_knows_both_models() -> None:
    assert set(known_models()) >= {"centerface", "ssdlite"}


# 512x512 is the native size; 300x300 and 400x250 take the padding path (to multiples of 32),
# and 400x250 also squashes the aspect ratio as the pipeline's resize does.
@pytest.mark.parametrize("size", [(512, 512), (300, 300), (400, 250)])
def test_centerface_finds_the_astronaut(size: tuple[int, int]) -> None:
    w, h = size
    det = face_detector(w, h)
    assert det.input_size == (w, h) and det.cls is ObjectClass.FACE
    found = det.detect(resized(skimage.data.astronaut(), w, h))
    assert_normalised(found, ObjectClass.FACE)
    assert len(found) == 1, found
    box = found[0].box.scaled(512, 512)  # back to the original image's pixels
    cx, cy = box.center
    assert ASTRONAUT_FACE.x1 < cx < ASTRONAUT_FACE.x2 and ASTRONAUT_FACE.y1 < cy < ASTRONAUT_FACE.y2
    assert box.iou(ASTRONAUT_FACE) > 0.7, box
    assert box.height > 1.2 * box.width, box  # a face box is taller than wide: axes not swapped
    assert found[0].score > 0.7


@pytest.mark.parametrize("name", ["coffee", "brick", "grass", "rocket", "chelsea"])
def test_centerface_finds_no_face_where_there_is_none(name: str) -> None:
    rgb = getattr(skimage.data, name)()
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    assert face_detector(640, 360).detect(resized(rgb, 640, 360)) == []


def test_centerface_sees_the_padding_as_nothing() -> None:
    # A face pushed against the bottom-right corner: the padded area must not shift or cut it.
    face = resized(skimage.data.astronaut()[20:200, 160:290], 130, 180)
    canvas = np.full((250, 400, 3), 90, np.uint8)  # pads to 416x256
    canvas[70:250, 270:400] = face
    found = face_detector(400, 250).detect(canvas)
    assert len(found) == 1, found
    box = found[0].box.scaled(400, 250)
    # The face sits at (22, 38)-(110, 158) of the crop; normalising by the padded size (416x256)
    # instead of 400x250 would shift the box by ~12 px and fail this.
    assert box.iou(Box(292, 108, 380, 228)) > 0.85, box


def vtest_frames(indices: set[int]) -> dict[int, av.VideoFrame]:
    assert VTEST.is_file(), f"{VTEST} missing: apt-get install opencv-doc"
    frames: dict[int, av.VideoFrame] = {}
    with av.open(str(VTEST)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in indices:
                frames[i] = frame
            if len(frames) == len(indices):
                break
    return frames


@pytest.mark.parametrize("size", [(768, 576), (640, 360)])
def test_ssdlite_finds_the_pedestrians(size: tuple[int, int]) -> None:
    w, h = size
    det = person_detector(w, h)
    assert det.input_size == (w, h) and det.cls is ObjectClass.PERSON
    for index, frame in sorted(vtest_frames({0, 200, 400}).items()):
        found = det.detect(frame.to_ndarray(format="rgb24", width=w, height=h))
        assert_normalised(found, ObjectClass.PERSON)
        assert len(found) >= 2, (index, found)
        for d in found:
            px = d.box.scaled(frame.width, frame.height)  # in the source frame's pixels
            assert px.height > px.width, (index, px)
            assert 15 < px.height < 250, (index, px)  # a walker, not the whole street


def test_ssdlite_finds_nobody_in_an_empty_picture() -> None:
    assert person_detector(640, 360).detect(resized(skimage.data.coffee(), 640, 360)) == []


def test_unknown_model_is_a_config_error_naming_the_key() -> None:
    cfg = DetectorConfig(model="yolo", input_width=640, input_height=360, threshold=0.5)
    with pytest.raises(ConfigError) as info:
        create_detector(cfg, MODELS_DIR, "detectors.person")
    assert info.value.key == "detectors.person.model"
    assert "centerface" in str(info.value) and "ssdlite" in str(info.value)


@pytest.mark.parametrize("model", ["centerface", "ssdlite"])
def test_missing_model_file_is_a_detector_error(model: str, tmp_path: Path) -> None:
    cfg = DetectorConfig(model=model, input_width=320, input_height=180, threshold=0.5)
    with pytest.raises(DetectorError, match=re.escape(str(tmp_path))):
        create_detector(cfg, tmp_path, "detectors.face")


def test_corrupt_model_file_is_a_detector_error(tmp_path: Path) -> None:
    (tmp_path / "centerface.onnx").write_bytes(b"not an onnx file" * 100)
    cfg = DetectorConfig(model="centerface", input_width=320, input_height=180, threshold=0.5)
    with pytest.raises(DetectorError, match=r"centerface\.onnx"):
        create_detector(cfg, tmp_path, "detectors.face")


def test_wrong_input_shape_is_a_detector_error() -> None:
    det = face_detector(320, 180)
    with pytest.raises(DetectorError):
        det.detect(np.zeros((320, 180, 3), np.uint8))  # transposed
    with pytest.raises(DetectorError):
        det.detect(np.zeros((180, 320, 3), np.float32))
