"""Headless Chromium on the web page: log in, wait for the live video, grab decoded frames.

Shared by tests/test_web_page_privacy.py and benchmarks/glass_to_glass.py. Frames are taken from
the <video> element itself: inside a requestVideoFrameCallback (so each grab is a new frame,
the one being composited) the video is drawn into a canvas at its native size, and the pixels
come back to Python (PNG, lossless). Scripts run through page.evaluate (DevTools), which the
page's CSP allows; wait_for_function would eval in the page, which it forbids.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import av
import cv2
import numpy as np

from vcam.sources.stamp import read_stamp

from .test_rtsp_server import luma
from .test_web_page import ARGS, CHROMIUM, wait_until

__all__ = [
    "ARGS",
    "CHROMIUM",
    "grab_frame",
    "launch",
    "log_in_and_play",
    "luma_of_rgb",
    "stamp_of",
    "wait_until",
]


# One new video frame drawn at native size, as a PNG data URL, with the page's clock.
_GRAB = """async () => {
  const v = document.getElementById('video');
  return await new Promise((resolve) => {
    v.requestVideoFrameCallback((now, meta) => {
      const c = document.createElement('canvas');
      c.width = v.videoWidth;
      c.height = v.videoHeight;
      c.getContext('2d').drawImage(v, 0, 0, c.width, c.height);
      resolve({png: c.toDataURL('image/png'), now, meta: {
        width: meta.width, height: meta.height, presentedFrames: meta.presentedFrames,
        expectedDisplayTime: meta.expectedDisplayTime, receiveTime: meta.receiveTime ?? null}});
    });
  });
}"""


def launch(playwright: Any) -> Any:
    """Debian's chromium, headless (never a downloaded browser)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


def log_in_and_play(page: Any, base: str, user: str, password: str, timeout_s: float = 30) -> None:
    """Log in on the page at `base` and wait until the <video> shows frames and time moves."""
    page.set_default_timeout(timeout_s * 1000)
    page.goto(base + "/")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("#login-button")
    page.wait_for_selector("#app:not([hidden])")
    playing = wait_until(page, "document.getElementById('video').videoWidth > 0", timeout_s)
    assert playing, page.inner_text("#video-message")
    t0 = page.evaluate("document.getElementById('video').currentTime")
    assert wait_until(
        page, f"document.getElementById('video').currentTime > {t0} + 0.3", timeout_s
    ), "the video does not advance"


def grab_frame(page: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """The next frame the <video> presents, as RGB (native size), and its frame metadata."""
    t0 = time.monotonic()
    got = page.evaluate(_GRAB)
    header, _, data = str(got["png"]).partition(",")
    assert header == "data:image/png;base64", header
    bgr = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None, "the canvas gave no PNG"
    meta = dict(got["meta"])
    meta["grab_s"] = time.monotonic() - t0
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), meta


def luma_of_rgb(rgb: np.ndarray) -> np.ndarray:
    """The luma plane (video range, as an encoder would see it) of an RGB image."""
    return luma(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24"))


def stamp_of(y: np.ndarray) -> tuple[int, int] | None:
    """(index, ms) stamped in a decoded luma plane, or None where a mask covers the stamp."""
    return read_stamp(y)
