"""SSDLite-MobileNetV2 person detector (models/ssdlite_person.onnx, see models/README.md).

The converted TensorFlow graph resizes to 300x300 and runs its own NMS inside; it takes uint8
NHWC RGB of any size and returns up to 100 boxes as normalised (ymin, xmin, ymax, xmax).
"""

from __future__ import annotations

import numpy as np

from vcam.media.types import Box, Detection, ObjectClass
from vcam.privacy.detectors.base import register_detector
from vcam.privacy.detectors.session import OnnxDetector

PERSON = 1  # COCO label id in the TensorFlow object detection API's label map
OUTPUTS = ["detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0"]


@register_detector("ssdlite")
class SSDLitePersonDetector(OnnxDetector):
    name = "ssdlite"
    cls = ObjectClass.PERSON
    model_file = "ssdlite_person.onnx"

    def _infer(self, rgb: np.ndarray) -> list[Detection]:
        boxes, scores, classes, num = self.session.run(
            OUTPUTS, {"image_tensor:0": np.ascontiguousarray(rgb)[None]}
        )
        n = int(num[0])
        boxes, scores, classes = boxes[0, :n], scores[0, :n], classes[0, :n]
        hit = (classes.astype(np.int64) == PERSON) & (scores > self.threshold)
        # (ymin, xmin, ymax, xmax) -> (x1, y1, x2, y2), kept within the image.
        xyxy = np.clip(boxes[hit][:, [1, 0, 3, 2]], 0.0, 1.0)
        return [
            Detection(Box(*map(float, b)), float(s), ObjectClass.PERSON)
            for b, s in zip(xyxy, scores[hit], strict=True)
            if b[2] > b[0] and b[3] > b[1]
        ]
