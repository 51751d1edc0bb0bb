"""What a real browser shows is masked: headless Chromium logs in on the web page of a real
`vcam serve` (stamped synthetic scene, solid masks), the <video> plays over WebRTC, and frames
drawn from the video element into a canvas come back to Python. Each grabbed frame names itself
(the stamped frame index, read from the pixels), so the scene's exact ground truth for that frame
is rebuilt and every face of 16 px or more must be masked: the same check as the aiortc viewer
of tests/test_webrtc.py, reused as is (its scene, 640x360@15: the stamp's 10-px blocks need a
frame at least 560 px wide and survive the browser's decode and colour conversion there).
The grabbed frames and a screenshot are kept under $VCAM_TEST_ARTIFACTS or the test's tmp_path.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from vcam.sources.stamp import TIME_WRAP

from .browser import CHROMIUM, grab_frame, launch, log_in_and_play, luma_of_rgb, stamp_of
from .test_web_page import artefacts
from .test_webrtc import SCENE, assert_masked
from .vcam_process import VcamProcess, free_port, loopback_config

USER, PASSWORD = "admin", "page-privacy-pw"
GRABS = 12

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run)")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("web-page-privacy")
    http = free_port()
    config = loopback_config(
        width=SCENE.width, height=SCENE.height, fps=SCENE.fps, stamp=True,
        rtsp_port=free_port(), http_port=http,
        tail='[[output.streams]]\nname = "main"\ngop = 15\n',
    )  # fmt: skip
    vcam = VcamProcess(tmp, config, PASSWORD)
    try:
        vcam.wait_for("ONVIF: http://")
        yield f"http://127.0.0.1:{http}"
    finally:
        vcam.stop()


def test_frames_the_browser_shows_have_every_face_masked(base: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    where = artefacts(tmp_path) / "web_page_privacy"
    where.mkdir(parents=True, exist_ok=True)
    grabbed: dict[int, np.ndarray] = {}
    hidden = 0
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            log_in_and_play(page, base, USER, PASSWORD)
            end = time.monotonic() + 60
            while len(grabbed) < GRABS and time.monotonic() < end:
                rgb, meta = grab_frame(page)
                assert rgb.shape == (SCENE.height, SCENE.width, 3), meta
                stamped = stamp_of(luma_of_rgb(rgb))
                if stamped is None:
                    hidden += 1  # a mask over the stamp row: this frame cannot name itself
                    continue
                index, ms = stamped
                # The stamp read back is the server's monotonic clock of a moment ago: a
                # misread stamp (wrong frame, wrong truth) shows up here first.
                age_ms = (int(time.monotonic() * 1000) - ms) % TIME_WRAP
                assert age_ms < 5000, (index, ms, age_ms)
                grabbed.setdefault(index, rgb)
            page.screenshot(path=str(where / "page.png"), full_page=True)
        finally:
            browser.close()
    for index, rgb in grabbed.items():
        cv2.imwrite(str(where / f"frame-{index:06d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    print(f"browser frames and screenshot: {where} ({hidden} grabs with the stamp masked)")

    assert len(grabbed) == GRABS, f"only {len(grabbed)} distinct frames in 60 s"
    indexes = list(grabbed)
    assert indexes == sorted(indexes), "frames come in stamp order"
    frames = [av.VideoFrame.from_ndarray(rgb, format="rgb24") for rgb in grabbed.values()]
    faces = assert_masked(frames)  # every face >= 16 px masked, fail-closed frames skipped
    print(f"{faces} faces of 16 px or more checked masked in frames {indexes}")
    assert faces >= 3 * GRABS, f"only {faces} faces checked in {GRABS} frames"
