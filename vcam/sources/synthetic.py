"""A synthetic street scene with exact ground truth: real faces on real bodies over a real street.

Walkers (a head crop from vcam/data/synthetic/ on a pedestrian cut from vtest.avi) cross the
frame at known positions, enter and leave at the edges (cut by the frame), turn their heads
(mirrored / squeezed "turned" views) and come in face heights from 12 px to 200 px. Everything is
a pure function of (SyntheticConfig, frame index), so tests can rebuild any clear frame, and the
scene repeats exactly after `duration_s`. Assets are made by build_synthetic_assets.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import av
import cv2
import numpy as np

from vcam import DATA_DIR
from vcam.config import SyntheticConfig
from vcam.errors import SourceError
from vcam.media.types import Box, GroundTruth, ObjectClass, SourceFrame
from vcam.sources.stamp import stamp

ASSET_DIR = DATA_DIR / "synthetic"
# Face heights at which walkers are built: three per band <16, 16-24, 24-32, 32-64, >64.
FACE_HEIGHTS = (12, 14, 15, 18, 21, 23, 25, 28, 31, 38, 48, 60, 80, 130, 200)
MIN_VISIBLE = 0.25  # a face/person less visible than this (edge cut, occluded) has no truth
TURN_PERIOD_S = 1.5  # each walker looks ahead, turns, looks the other way, turns back
_TURN_SCHEDULE = (0, 2, 1, 2)  # indexes into the variants: normal, mirrored, turned
_TURN_SQUEEZE = 0.78  # a turned head is drawn this narrow (a cheap stand-in for yaw)
PROFILE_MIN_FACE_H = 32  # profile heads only walk near: small profiles defeat any detector


@dataclass(frozen=True)
class _Sprite:
    pre: np.ndarray  # uint16 HxWx3: rgb * alpha (premultiplied, 0..255*255)
    inv: np.ndarray  # uint16 HxWx1: 255 - alpha
    alpha: np.ndarray  # float32 HxW, 0..1 (for occlusion of the walkers drawn before)
    face: Box  # tight face box in sprite pixels
    person: Box  # bounding box of alpha > 0.5 in sprite pixels


@dataclass(frozen=True)
class _Head:
    identity: str
    rgba: np.ndarray  # uint8 HxWx4 head crop with a soft elliptical alpha
    face: tuple[float, float, float, float]  # tight face box in crop pixels
    max_face_h: int
    profile: bool


@dataclass(frozen=True)
class _Walker:
    identity: str
    variants: tuple[_Sprite, ...]  # normal, mirrored, turned
    y: int  # sprite top in frame pixels
    rightwards: bool
    crossings: int  # full crossings per scene period
    phase: float  # 0..1 offset along the path
    turn_phase: float  # seconds


@lru_cache(maxsize=1)
def _assets() -> tuple[np.ndarray, tuple[_Head, ...], tuple[np.ndarray, ...]]:
    def read(name: str) -> np.ndarray:
        img = cv2.imread(str(ASSET_DIR / name), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise SourceError(f"synthetic asset {ASSET_DIR / name} is missing")
        code = cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB
        return cv2.cvtColor(img, code)

    try:
        manifest = json.loads((ASSET_DIR / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise SourceError(f"synthetic assets unreadable: {exc}") from None
    heads = tuple(
        _Head(
            identity=str(h["identity"]),
            rgba=read(h["file"]),
            face=tuple(float(v) for v in h["face"]),  # type: ignore[arg-type]
            max_face_h=int(h["max_face_h"]),
            profile=bool(h["profile"]),
        )
        for h in manifest["heads"]
    )
    bodies = tuple(read(name) for name in manifest["bodies"])
    return read("background.png"), heads, bodies


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    interp = cv2.INTER_AREA if w < img.shape[1] else cv2.INTER_CUBIC
    return cv2.resize(img, (max(1, w), max(1, h)), interpolation=interp)


def _over(dst: np.ndarray, src: np.ndarray, x: int, y: int) -> None:
    """Alpha-composite float RGBA `src` onto float RGBA `dst` at (x, y), in place."""
    h, w = src.shape[:2]
    region = dst[y : y + h, x : x + w]
    a = src[:, :, 3:4]
    region[:, :, :3] = src[:, :, :3] * a + region[:, :, :3] * (1 - a)
    region[:, :, 3:4] = a + region[:, :, 3:4] * (1 - a)


def _build_sprite(
    head: _Head, body: np.ndarray, face_h: int, squeeze: float, max_h: int
) -> _Sprite:
    rgba = head.rgba
    fx1, fy1, fx2, fy2 = head.face
    s = face_h / (fy2 - fy1)
    hw, hh = round(rgba.shape[1] * s * squeeze), round(rgba.shape[0] * s)
    head_img = _resize(rgba, hw, hh).astype(np.float32) / 255
    bh = round(6.0 * face_h)  # a body is about six face heights below the chin
    bw = round(body.shape[1] * bh / body.shape[0])
    body_img = _resize(body, bw, bh).astype(np.float32) / 255
    face_bottom = fy2 * s
    body_top = round(face_bottom - 0.1 * face_h)  # the neck hides under the chin
    cw = max(hw, bw)
    canvas = np.zeros((max(hh, body_top + bh), cw, 4), np.float32)
    _over(canvas, body_img, (cw - bw) // 2, body_top)
    _over(canvas, head_img, (cw - hw) // 2, 0)  # the head in front of the body
    canvas = canvas[:max_h]  # the rest of a near walker's body is below the frame anyway
    alpha = canvas[:, :, 3]
    rgb = np.divide(
        canvas[:, :, :3],
        alpha[:, :, None],
        out=np.zeros_like(canvas[:, :, :3]),
        where=alpha[:, :, None] > 0,
    )
    a8 = np.round(alpha * 255).astype(np.uint16)
    pre = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint16) * a8[:, :, None]
    hx = (cw - hw) / 2
    face = Box(hx + fx1 * s * squeeze, fy1 * s, hx + fx2 * s * squeeze, fy2 * s)
    ys, xs = np.nonzero(alpha > 0.5)
    person = Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    return _Sprite(pre, (255 - a8)[:, :, None], alpha, face, person)


def _mirrored(sp: _Sprite) -> _Sprite:
    w = sp.alpha.shape[1]
    return _Sprite(
        np.ascontiguousarray(sp.pre[:, ::-1]),
        np.ascontiguousarray(sp.inv[:, ::-1]),
        np.ascontiguousarray(sp.alpha[:, ::-1]),
        Box(w - sp.face.x2, sp.face.y1, w - sp.face.x1, sp.face.y2),
        Box(w - sp.person.x2, sp.person.y1, w - sp.person.x1, sp.person.y2),
    )


class SyntheticScene:
    """`render(index)` gives the clear RGB frame and its ground truth; deterministic."""

    def __init__(self, cfg: SyntheticConfig) -> None:
        self.cfg = cfg
        self.width, self.height = cfg.width, cfg.height
        self.period_frames = max(1, round(cfg.duration_s * cfg.fps))
        background, heads, bodies = _assets()
        self._background = self._fit_background(background)
        rng = np.random.default_rng(cfg.seed)
        walkers: list[_Walker] = []
        offset = int(rng.integers(len(heads)))
        for i, ref_h in enumerate(FACE_HEIGHTS):
            face_h = max(8, min(ref_h, int(0.4 * self.height)))
            fits = [
                h
                for h in heads
                if h.max_face_h >= face_h and (face_h >= PROFILE_MIN_FACE_H or not h.profile)
            ]
            head = fits[(i + offset) % len(fits)]  # cycle, so every identity walks
            body = bodies[int(rng.integers(len(bodies)))]
            # Perspective: small faces far away (high in the frame), big ones near (low).
            depth = (face_h - 12) / 188
            face_top = self.height * (0.28 + 0.32 * depth + rng.uniform(-0.03, 0.03))
            face_top = min(face_top, self.height - 1.2 * face_h)
            normal = _build_sprite(head, body, face_h, 1.0, self.height)
            y = round(face_top - normal.face.y1)
            squeeze = 1.0 if head.profile else _TURN_SQUEEZE  # a profile is already turned
            turned = _build_sprite(head, body, face_h, squeeze, self.height)
            rightwards = bool(rng.integers(2))
            variants = (normal, _mirrored(normal), turned)
            if not rightwards:  # face the walking direction by default
                variants = (variants[1], variants[0], _mirrored(turned))
            walkers.append(
                _Walker(
                    identity=f"w{i:02d}-{head.identity}",
                    variants=variants,
                    y=y,
                    rightwards=rightwards,
                    crossings=1 if face_h < 32 else 2,
                    phase=float(rng.uniform()),
                    turn_phase=float(rng.uniform(0, TURN_PERIOD_S * 4)),
                )
            )
        self._walkers = tuple(walkers)  # drawn in this order: far (small) to near (big)

    @property
    def background(self) -> np.ndarray:
        """The empty street at the scene's size (a copy)."""
        return self._background.copy()

    def _fit_background(self, bg: np.ndarray) -> np.ndarray:
        """Scale to cover the frame, cropping the excess (keeps the street's proportions)."""
        h, w = bg.shape[:2]
        s = max(self.width / w, self.height / h)
        scaled = _resize(bg, round(w * s), round(h * s))
        y0 = (scaled.shape[0] - self.height) // 2
        x0 = (scaled.shape[1] - self.width) // 2
        return np.ascontiguousarray(scaled[y0 : y0 + self.height, x0 : x0 + self.width])

    def _placement(self, wk: _Walker, t: float) -> tuple[_Sprite, int, int]:
        turn = int((t + wk.turn_phase) / TURN_PERIOD_S) % len(_TURN_SCHEDULE)
        sp = wk.variants[_TURN_SCHEDULE[turn]]
        sw = sp.alpha.shape[1]
        u = (wk.phase + wk.crossings * t / self.cfg.duration_s) % 1.0
        travel = u * (self.width + sw)
        x = round(-sw + travel) if wk.rightwards else round(self.width - travel)
        return sp, x, wk.y

    def render(self, index: int) -> tuple[np.ndarray, tuple[GroundTruth, ...]]:
        rgb, truth, _owners = self.render_with_owners(index, owners=False)
        return rgb, truth

    def render_with_owners(
        self, index: int, owners: bool = True
    ) -> tuple[np.ndarray, tuple[GroundTruth, ...], np.ndarray | None]:
        """Like `render`, plus a map of which walker each pixel shows (-1: background).

        Scoring uses it so that an occluder's pixels inside a face box are not counted as
        pixels of that face.
        """
        t = (index % self.period_frames) / self.cfg.fps
        frame = self._background.copy()
        owner_map = np.full((self.height, self.width), -1, np.int16) if owners else None
        placed = [self._placement(wk, t) for wk in self._walkers]
        for n, (sp, x, y) in enumerate(placed):
            self._paste(frame, sp, x, y)
            if owner_map is not None:
                self._own(owner_map, sp, x, y, n)
        truth: list[GroundTruth] = []
        for i, (wk, (sp, x, y)) in enumerate(zip(self._walkers, placed, strict=True)):
            later = placed[i + 1 :]
            for box, cls in ((sp.face, ObjectClass.FACE), (sp.person, ObjectClass.PERSON)):
                full = box.shifted(x, y)
                if self._visible_share(full, later) >= MIN_VISIBLE:
                    vis = full.clamped(self.width, self.height)
                    truth.append(GroundTruth(box=vis, cls=cls, identity=wk.identity))
        return frame, tuple(truth), owner_map

    def walker_number(self, identity: str) -> int:
        """The value that `render_with_owners` writes for this walker's pixels."""
        return next(i for i, wk in enumerate(self._walkers) if wk.identity == identity)

    def _own(self, owner_map: np.ndarray, sp: _Sprite, x: int, y: int, n: int) -> None:
        r = self._clip(sp, x, y)
        if r is None:
            return
        x1, y1, x2, y2 = r
        sx, sy = x1 - x, y1 - y
        mine = sp.alpha[sy : sy + y2 - y1, sx : sx + x2 - x1] > 0.5
        owner_map[y1:y2, x1:x2][mine] = n

    def _clip(self, sp: _Sprite, x: int, y: int) -> tuple[int, int, int, int] | None:
        h, w = sp.alpha.shape
        x1, y1 = max(x, 0), max(y, 0)
        x2, y2 = min(x + w, self.width), min(y + h, self.height)
        return (x1, y1, x2, y2) if x1 < x2 and y1 < y2 else None

    def _paste(self, frame: np.ndarray, sp: _Sprite, x: int, y: int) -> None:
        r = self._clip(sp, x, y)
        if r is None:
            return
        x1, y1, x2, y2 = r
        sx, sy = x1 - x, y1 - y
        acc = frame[y1:y2, x1:x2].astype(np.uint16)
        acc *= sp.inv[sy : sy + y2 - y1, sx : sx + x2 - x1]
        acc += sp.pre[sy : sy + y2 - y1, sx : sx + x2 - x1]
        acc += 128  # (v + 128 + ((v + 128) >> 8)) >> 8 == round(v / 255) for v <= 255 * 255
        acc += acc >> 8
        acc >>= 8
        frame[y1:y2, x1:x2] = acc

    def _visible_share(self, box: Box, later: list[tuple[_Sprite, int, int]]) -> float:
        """Share of `box` that is inside the frame and not covered by walkers drawn later."""
        if box.area <= 0:
            return 0.0
        bx1, by1, bx2, by2 = box.to_pixels(self.width, self.height)
        if bx2 <= bx1 or by2 <= by1:
            return 0.0
        step = max(1, min(bx2 - bx1, by2 - by1) // 24)  # sample big boxes coarsely
        vis = np.ones(((by2 - by1 + step - 1) // step, (bx2 - bx1 + step - 1) // step), np.float32)
        for sp, x, y in later:
            h, w = sp.alpha.shape
            ox1, oy1, ox2, oy2 = max(bx1, x), max(by1, y), min(bx2, x + w), min(by2, y + h)
            if ox1 >= ox2 or oy1 >= oy2:
                continue
            # Align the sample grid: rows/cols of vis that fall inside the overlap.
            r0, c0 = -(-(oy1 - by1) // step), -(-(ox1 - bx1) // step)
            r1, c1 = -(-(oy2 - by1) // step), -(-(ox2 - bx1) // step)
            ys = by1 + np.arange(r0, r1) * step - y
            xs = bx1 + np.arange(c0, c1) * step - x
            vis[r0:r1, c0:c1] *= 1.0 - sp.alpha[np.ix_(ys, xs)]
        inside = (bx2 - bx1) * (by2 - by1) / box.area
        return float(vis.mean()) * inside


class SyntheticSource:
    """The `synthetic` source: the scene's frames with their truth, paced when realtime."""

    def __init__(self, cfg: SyntheticConfig, realtime: bool = True) -> None:
        self.scene = SyntheticScene(cfg)
        self.fps = float(cfg.fps)
        self.realtime = realtime
        self.stamp = cfg.stamp
        self.width, self.height = cfg.width, cfg.height
        self.description = f"synthetic {cfg.width}x{cfg.height}@{cfg.fps:g} seed={cfg.seed}"

    def frames(self, stop: threading.Event) -> Iterator[SourceFrame]:
        start = time.monotonic()
        index = 0
        while not stop.is_set():
            if self.realtime:
                delay = start + index / self.fps - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    return
            rgb, truth = self.scene.render(index)
            if self.stamp:
                stamp(rgb, index, int(time.monotonic() * 1000))
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            yield SourceFrame(
                frame=frame,
                index=index,
                pts_us=round(index * 1_000_000 / self.fps),
                epoch=0,
                wall_time=time.monotonic(),
                truth=truth,
            )
            index += 1


def asset_files() -> list[Path]:
    """The shipped asset files (for packaging checks)."""
    return sorted(ASSET_DIR.iterdir())
