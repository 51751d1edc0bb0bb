"""Masking mode, style and detector thresholds as live settings: one store (media.json) that
ONVIF (Analytics, vcam:PrivacyMasking) and the page edit, and the camera follows.

Settings: validation, persistence, older files, reconciliation with an edited configuration.
In process: a Camera on the synthetic scene, every encoded unit decoded and compared with the
ground truth: a style change shows from the next frames, a body -> face mode change loads the
face detector and restarts the pipeline without a face leaking, a threshold reaches the
detectors. End to end: a real `vcam serve`, zeep's ModifyAnalyticsModules changes the style
that the snapshot then shows, and the page API's PUT changes it back.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from lxml import etree

from vcam import MODELS_DIR
from vcam.app import Camera
from vcam.config import Config, config_from_dict
from vcam.evaluation import FaceCoverage, face_coverage
from vcam.media.bus import Subscription
from vcam.media.types import EncodedUnit, GroundTruth, ObjectClass
from vcam.media_settings import (
    MediaSettings,
    MediaSettingsError,
    MediaSettingsStore,
    PrivacySettings,
    available_modes,
)
from vcam.onvif.analytics import CONFIG_TOKEN
from vcam.onvif.soap import NSMAP
from vcam.privacy.masks import SOLID_Y
from vcam.sources.stamp import read_stamp
from vcam.sources.synthetic import SyntheticScene, SyntheticSource

from .test_onvif_analytics import PASSWORD, analytics_clients
from .test_pipeline import SCENE, decoded, inspect, is_flat, live_config, luma
from .test_web_api import Browser
from .vcam_process import VcamProcess, free_port, loopback_config

# -- the settings ------------------------------------------------------------------------------


def test_privacy_settings_come_from_the_config_and_are_checked() -> None:
    cfg = config_from_dict(
        {
            "privacy": {"mode": "face", "style": "blur"},
            "detectors": {"face": {"threshold": 0.4}, "person": {"threshold": 0.6}},
        }
    )
    p = PrivacySettings.from_config(cfg)
    assert p == PrivacySettings("face", "blur", 0.4, 0.6)
    assert MediaSettings.from_config(cfg).privacy == p
    applied = PrivacySettings("body", "solid", 0.2, 0.7).apply(cfg)
    assert (applied.privacy.mode, applied.privacy.style) == ("body", "solid")
    assert (applied.detectors.face.threshold, applied.detectors.person.threshold) == (0.2, 0.7)
    assert applied.privacy.lookahead_frames == cfg.privacy.lookahead_frames  # the rest stays
    for bad in (
        {"mode": "faces"}, {"style": "pixels"}, {"face_threshold": 0.0},
        {"face_threshold": 1.0}, {"person_threshold": float("nan")}, {"person_threshold": True},
        {"face_threshold": "0.3"},
    ):  # fmt: skip
        with pytest.raises(MediaSettingsError):
            dataclasses.replace(p, **bad).check()


def test_modes_need_their_detectors_enabled() -> None:
    assert available_modes(Config()) == ("face", "body", "face+body")
    no_person = config_from_dict(
        {
            "privacy": {"mode": "face", "person_heads": False},
            "detectors": {"person": {"enabled": False}},
        }
    )
    assert available_modes(no_person) == ("face",)
    store = MediaSettingsStore.load(None, no_person)

    def mode(m: Any) -> Any:
        return lambda s: dataclasses.replace(s, privacy=dataclasses.replace(s.privacy, mode=m))

    with pytest.raises(MediaSettingsError, match="disables"):
        store.change(mode("body"))
    with pytest.raises(MediaSettingsError, match="unknown masking mode"):
        store.change(mode("nobody"))
    assert store.settings.privacy.mode == "face" and store.settings.revision == 0
    # Style and thresholds change freely.
    store.change(
        lambda s: dataclasses.replace(s, privacy=dataclasses.replace(s.privacy, style="solid"))
    )
    assert store.settings.privacy.style == "solid"


def _set(path: Path, cfg: Config, **privacy: Any) -> MediaSettingsStore:
    store = MediaSettingsStore.load(path, cfg)
    store.change(
        lambda s: dataclasses.replace(s, privacy=dataclasses.replace(s.privacy, **privacy))
    )
    return store


def test_privacy_settings_persist_and_older_files_load(tmp_path: Path) -> None:
    path = tmp_path / "media.json"
    cfg = Config()
    store = _set(path, cfg, mode="body", style="blocks", face_threshold=0.35)
    kept = json.loads(path.read_text())
    assert kept["privacy"] == {
        "mode": "body", "style": "blocks", "face_threshold": 0.35, "person_threshold": 0.3,
    }  # fmt: skip
    assert MediaSettingsStore.load(path, cfg).settings == store.settings
    # A file from before these settings: the configured ones.
    del kept["privacy"], kept["privacy_baseline"]
    path.write_text(json.dumps(kept))
    assert MediaSettingsStore.load(path, cfg).settings.privacy == PrivacySettings.from_config(cfg)
    # A damaged entry names the file.
    kept["privacy"] = {"mode": "body", "colour": "red"}
    path.write_text(json.dumps(kept))
    with pytest.raises(MediaSettingsError, match=r"media\.json"):
        MediaSettingsStore.load(path, cfg)
    kept["privacy"] = {"mode": "body", "style": "blocks", "face_threshold": 3}
    path.write_text(json.dumps(kept))
    with pytest.raises(MediaSettingsError, match="face_threshold"):
        MediaSettingsStore.load(path, cfg)


def test_an_edited_config_wins_per_value(tmp_path: Path) -> None:
    path = tmp_path / "media.json"
    before = config_from_dict({"privacy": {"style": "mosaic"}})
    _set(path, before, mode="body", style="blocks", person_threshold=0.6)
    # The file's style and the person threshold changed since: they win; the mode stays.
    edited = config_from_dict(
        {"privacy": {"style": "blur"}, "detectors": {"person": {"threshold": 0.5}}}
    )
    got = MediaSettingsStore.load(path, edited).settings
    assert got.privacy == PrivacySettings("body", "blur", 0.25, 0.5)
    assert got.privacy_baseline == PrivacySettings.from_config(edited)
    # Unchanged configuration: everything kept.
    assert MediaSettingsStore.load(path, before).settings.privacy.style == "blocks"
    # A mode whose detector the file disables since: the configured mode.
    face_only = config_from_dict(
        {
            "privacy": {"mode": "face", "person_heads": False},
            "detectors": {"person": {"enabled": False}},
        }
    )
    _set(path, Config(), mode="face+body")
    assert MediaSettingsStore.load(path, face_only).settings.privacy.mode == "face"
    # reset(): the configured masking.
    store = _set(path, before, style="solid")
    assert store.reset().privacy == PrivacySettings.from_config(before)


# -- the camera follows --------------------------------------------------------------------------


def _privacy(cam: Camera, **changes: Any) -> None:
    cam.media.change(
        lambda s: dataclasses.replace(s, privacy=dataclasses.replace(s.privacy, **changes))
    )


def _collect(sub: Subscription, units: list[EncodedUnit], until: int) -> None:
    end = time.monotonic() + 60
    while len(units) < until and time.monotonic() < end:
        unit = sub.get(timeout=1.0)
        if unit is not None:
            units.append(unit)
    assert len(units) >= until, f"only {len(units)} units: the pipeline stopped producing"


def _camera(**privacy: object) -> tuple[Camera, Subscription]:
    # As test_reboot: generous deadlines, this is about the change, not a busy machine.
    cfg = live_config(deadline_ms=1000.0, stale_frames=12, hold_frames=15, **privacy)
    cam = Camera(cfg, source=SyntheticSource(SCENE, realtime=True))
    return cam, cam.bus.subscribe(cfg.output.streams[0].name, maxsize=2000)


def test_a_threshold_change_reaches_the_detectors() -> None:
    cam, _ = _camera(mode="face", person_heads=True)  # CenterFace and SSDLite, not started
    try:
        by_class = {d.cls: d for d in cam.detectors}
        rgb, _truth = SyntheticScene(SCENE).render(60)
        face = by_class[ObjectClass.FACE]
        w, h = face.input_size
        small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        low = face.detect(small)
        _privacy(cam, face_threshold=0.9, person_threshold=0.8)
        assert face.threshold == 0.9  # type: ignore[attr-defined]
        assert by_class[ObjectClass.PERSON].threshold == 0.8  # type: ignore[attr-defined]
        assert cam.cfg.detectors.face.threshold == 0.9
        high = face.detect(small)
        assert len(high) < len(low) and all(d.score > 0.9 for d in high)
        # A refused value changes nothing.
        with pytest.raises(MediaSettingsError):
            _privacy(cam, face_threshold=1.5)
        assert face.threshold == 0.9  # type: ignore[attr-defined]
    finally:
        cam.stop()


def test_a_mode_whose_detector_cannot_load_goes_back(tmp_path: Path) -> None:
    """Fail closed, then honest: the frames stay fully masked while it tries, and the store
    (so ONVIF and the page) goes back to the mode that really runs."""
    (tmp_path / "ssdlite_person.onnx").symlink_to(MODELS_DIR / "ssdlite_person.onnx")
    cfg = dataclasses.replace(
        live_config(mode="body", person_heads=False), models_dir=str(tmp_path)
    )  # no centerface.onnx there
    cam = Camera(cfg, source=SyntheticSource(SCENE, realtime=True))
    try:
        _privacy(cam, mode="face")
        assert cam.wait_settled(30)
        assert cam.media.settings.privacy.mode == "body" and cam.cfg.privacy.mode == "body"
        assert [d.cls for d in cam.detectors] == [ObjectClass.PERSON]
        assert cam.pipeline.gate.hold == "", "a new gate, no longer held closed"
    finally:
        cam.stop()


def _faces(y: np.ndarray, index: int, scene: SyntheticScene) -> list[tuple[FaceCoverage, float]]:
    """Every visible face of at least 16 px in the decoded frame: its solid coverage and the
    mean luma difference to the clear frame over its visible pixels."""
    rgb, truth, owners = scene.render_with_owners(index)
    assert owners is not None
    clear = luma(av.VideoFrame.from_ndarray(rgb, format="rgb24"))

    def visible(gt: GroundTruth) -> np.ndarray:
        return owners == scene.walker_number(gt.identity)

    out = []
    for fc in face_coverage(y, clear, truth, visible):
        x1, y1, x2, y2 = fc.truth.box.to_pixels(y.shape[1], y.shape[0])
        seen = visible(fc.truth)[y1:y2, x1:x2]
        if fc.truth.box.height < 16 or not seen.any():
            continue
        diff = np.abs(y[y1:y2, x1:x2].astype(int) - clear[y1:y2, x1:x2])[seen].mean()
        out.append((fc, float(diff)))
    return out


def test_a_style_change_shows_from_the_next_frames() -> None:
    cam, sub = _camera(mode="face", style="solid")
    units: list[EncodedUnit] = []
    cam.start()
    try:
        _collect(sub, units, 45)
        gate = cam.pipeline.gate
        _privacy(cam, style="mosaic")
        asked = len(units)
        _collect(sub, units, asked + 60)
    finally:
        cam.stop()
    assert cam.pipeline.gate is gate and cam.restarts == 0, "a style change restarts nothing"
    assert gate.style == "mosaic" and cam.cfg.privacy.style == "mosaic"
    scene = SyntheticScene(SCENE)
    solid: list[float] = []
    mosaic: list[tuple[int, float, float]] = []
    for n, (index, y) in enumerate(decoded(units)):
        if is_flat(y):
            continue
        for fc, diff in _faces(y, index, scene):
            if n < asked:
                solid.append(fc.covered)
            else:
                mosaic.append((n - asked, fc.covered, diff))
    assert len(solid) > 20 and len(mosaic) > 40
    assert sum(c >= 0.9 for c in solid) >= 0.8 * len(solid), "solid: faces painted flat"
    # Frames already encoded or waiting in the look-ahead when it changed may be solid still.
    late = [(k, c) for k, c, _ in mosaic if c >= 0.5]
    assert all(k < 8 for k, _ in late), late
    settled = [(c, d) for k, c, d in mosaic if k >= 8]
    assert all(c < 0.5 for c, _ in settled), "mosaic: no flat paint on the faces any more"
    # ... and the faces are still hidden: far from their clear pixels.
    hidden = sum(d > 8 for _, d in settled)
    print(f"\nstyle: {hidden}/{len(settled)} faces hidden by mosaic, "
          f"min diff {min(d for _, d in settled):.1f}")  # fmt: skip
    assert hidden >= 0.95 * len(settled)


def test_a_mode_change_loads_the_detector_and_never_leaks() -> None:
    # person_heads as configured by default: face mode also masks the heads of the people found,
    # which catches the turned faces CenterFace misses (without it those leak in any face run).
    cam, sub = _camera(mode="body", style="solid", person_heads=True)
    (person,) = cam.detectors
    assert person.cls is ObjectClass.PERSON
    units: list[EncodedUnit] = []
    cam.start()
    try:
        _collect(sub, units, 45)
        t0 = time.monotonic()
        _privacy(cam, mode="face")
        asked = len(units)
        assert cam.wait_settled(30), "the mode change never ended"
        took = time.monotonic() - t0
        _collect(sub, units, asked + 90)
        detectors = list(cam.detectors)
        gate = cam.pipeline.gate
        # Back to body: the person detector is reused, not loaded again.
        _privacy(cam, mode="body")
        assert cam.wait_settled(30)
        back = list(cam.detectors)
    finally:
        cam.stop()
    assert [d.cls for d in detectors] == [ObjectClass.FACE, ObjectClass.PERSON]
    assert detectors[1] is person, "the loaded person detector is reused"
    assert gate.classes == {ObjectClass.FACE} and back == [person]
    assert cam.cfg.privacy.mode == "body" and cam.restarts == 2

    starts = [i for i in range(1, len(units)) if units[i].index < units[i - 1].index]
    assert len(starts) >= 1, [u.index for u in units]
    first = starts[0]
    assert first >= asked and units[first].keyframe, "the new run starts with an IDR"
    pts = [u.pts_us for u in units]
    assert all(b > a for a, b in itertools.pairwise(pts)), "pts never go back"
    frames = list(decoded(units))
    assert len(frames) == len(units) - 1, "one decoder goes on across the switch"
    flat = [is_flat(y) for _, y in frames]
    opened = next(i for i in range(first, len(flat)) if not flat[i])
    held = sum(flat[asked:opened])
    # No face leaks across the switch: the old run's last frames (body mode until the request
    # reached its gate, held closed after it) and the new run's closed start. From its first
    # open frame on it is a fresh face-mode run (which on this scene covers one big face at 0.8
    # in its frames 1-4, with or without a switch: see the report).
    scene = SyntheticScene(SCENE)
    window = [
        (index, fc)
        for index, y in frames[max(0, asked - 10) : opened]
        for fc, _ in _faces(y, index, scene)
    ]
    assert len(window) > 10
    assert not [(i, fc) for i, fc in window if fc.leaked]
    before_hold = [i for i in range(asked, first) if not flat[i]]
    assert len(before_hold) <= 8, "the old gate holds closed from the request on"
    assert all(flat[first:opened]), "the new run starts closed"
    # From there on, face mode as usual (test_pipeline's bound for a healthy run).
    _, leaks_after, seen_after = inspect(units[first:])
    assert seen_after > 100 and len(leaks_after) <= 0.05 * seen_after, leaks_after
    print(
        f"\nmode body -> face: {took:.2f} s until the new run started, {held} frames fully "
        f"masked ({opened - asked} frames from the request to the first open one)"
    )


# -- end to end: zeep and the page API on a real `vcam serve` -----------------------------------

PAINT = round((SOLID_Y - 16) * 255 / 219)  # the solid paint's grey in the full-range JPEG


def _snapshot(port: int) -> np.ndarray | None:
    manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    manager.add_password(None, f"http://127.0.0.1:{port}/", "admin", PASSWORD)
    opener = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(manager))
    try:
        with opener.open(f"http://127.0.0.1:{port}/snapshot/main.jpg", timeout=10) as resp:
            data = resp.read()
    except urllib.error.HTTPError as exc:
        exc.close()
        return None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image is not None
    return image


def _painted_faces(port: int, scene: SyntheticScene, timeout: float = 20.0) -> list[float]:
    """Polls snapshots until one shows faces of 24 px or more with its gate open; for each,
    the share of its visible pixels painted (solid style: all; mosaic: hardly any)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        image = _snapshot(port)
        time.sleep(0.2)
        if image is None or float(image[20:].std()) < 5:
            continue  # none yet, or fully masked
        stamp = read_stamp(image)
        if stamp is None:
            continue  # a mask covers the stamp: which frame this is cannot be told
        _, truth, owners = scene.render_with_owners(stamp[0])
        assert owners is not None
        shares = []
        for gt in truth:
            if gt.cls is not ObjectClass.FACE or gt.box.height < 24:
                continue
            x1, y1, x2, y2 = gt.box.to_pixels(image.shape[1], image.shape[0])
            seen = (owners == scene.walker_number(gt.identity))[y1:y2, x1:x2]
            if seen.sum() >= 100:
                painted = np.abs(image[y1:y2, x1:x2].astype(int) - PAINT) <= 8
                shares.append(float(painted[seen].mean()))
        if shares:
            return shares
    raise AssertionError("no snapshot with faces")


def test_onvif_and_the_page_change_the_style_of_a_running_camera(tmp_path: Path) -> None:
    rtsp, http = free_port(), free_port()
    config = loopback_config(
        width=640, height=360, fps=10.0, stamp=True, rtsp_port=rtsp, http_port=http
    )
    vcam = VcamProcess(tmp_path, config, PASSWORD)
    scene = SyntheticScene(dataclasses.replace(SCENE, fps=10.0, stamp=True))
    try:
        vcam.wait_for("ONVIF: http://")
        _, engine = analytics_clients(http)
        solid = _painted_faces(http, scene)
        assert min(solid) > 0.8, solid
        module = {
            "Name": "PrivacyMasking",
            "Type": etree.QName(NSMAP["vcam"], "PrivacyMasking"),
            "Parameters": {"SimpleItem": [{"Name": "Style", "Value": "mosaic"}]},
        }
        engine.ModifyAnalyticsModules(ConfigurationToken=CONFIG_TOKEN, AnalyticsModule=[module])
        (got,) = engine.GetAnalyticsModules(ConfigurationToken=CONFIG_TOKEN)
        live = {i.Name: i.Value for i in got.Parameters.SimpleItem}
        assert live["Style"] == "mosaic"
        time.sleep(0.5)
        mosaic = _painted_faces(http, scene)
        assert max(mosaic) < 0.5, mosaic
        kept = json.loads((tmp_path / "media.json").read_text())
        assert kept["privacy"]["style"] == "mosaic"
        # The page API, as the page sends it: login, then PUT with the CSRF token.
        page = Browser(http)
        assert page.login(("admin", PASSWORD)).status == 200
        reply = page.send("PUT", "/api/privacy", {"style": "solid", "face_threshold": 0.3})
        assert reply.status == 200 and reply.json()["style"] == "solid"
        time.sleep(0.5)
        assert min(_painted_faces(http, scene)) > 0.8
        (got,) = engine.GetAnalyticsModules(ConfigurationToken=CONFIG_TOKEN)
        live = {i.Name: i.Value for i in got.Parameters.SimpleItem}
        assert (live["Style"], live["FaceThreshold"]) == ("solid", "0.3")
    finally:
        vcam.stop()
