"""Editing in place on the web page, in headless Chromium against a real `vcam serve`: a mask
drawn with the mouse is selected in its list (highlighted on the overlay) and redrawn
elsewhere; the same token then has the new polygon and keeps its colour, and the frames the
browser decodes show the mask moved. A counting line's settings change through its form and its
line is redrawn; the rule keeps its name and settings. The JSON API is the referee. A screenshot
of the rule's editor is kept under $VCAM_TEST_ARTIFACTS or the test's tmp_path."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .browser import CHROMIUM, grab_frame, launch, log_in_and_play, wait_until
from .test_onvif_analytics import PASSWORD, USER
from .test_web_api import Browser
from .test_web_page import artefacts
from .test_web_page import camera as camera  # its own `vcam serve` (module scope), 320x240

MAGENTA = [255, 0, 255]
Rect = tuple[float, float, float, float]  # normalised x0, y0, x1, y1
FIRST: Rect = (0.05, 0.05, 0.35, 0.35)  # the mask as drawn
SECOND: Rect = (0.6, 0.6, 0.95, 0.95)  # and as redrawn

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run)")


def corners(rect: Rect) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = rect
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def near(points: list[list[float]], want: list[tuple[float, float]]) -> bool:
    """Whether stored points are where the mouse clicked (to a pixel or two)."""
    flat = [c for p in want for c in p]
    return [c for p in points for c in p] == pytest.approx(flat, abs=0.01)


def draw(page: Any, points: list[tuple[float, float]]) -> None:
    """Click the points on the overlay (normalised), double-clicking the last one to finish.
    The settings' buttons sit below the picture: clicking one may have scrolled it away."""
    page.evaluate("window.scrollTo(0, 0)")
    box = page.locator("#overlay").bounding_box()
    assert box is not None
    for i, (x, y) in enumerate(points):
        at = (box["x"] + x * box["width"], box["y"] + y * box["height"])
        (page.mouse.dblclick if i == len(points) - 1 else page.mouse.click)(*at)


def overlay_colour(page: Any, x: float, y: float) -> str:
    """A page expression: the overlay canvas's "r,g,b" at a normalised point."""
    return f"""(() => {{
      const c = document.getElementById('overlay');
      const px = Math.round({x} * c.width), py = Math.round({y} * c.height);
      return Array.from(c.getContext('2d').getImageData(px, py, 1, 1).data).slice(0, 3).join();
    }})()"""


def magenta(rgb: np.ndarray, rect: Rect) -> bool:
    """Whether the inside of `rect` (a margin off its edges: chroma is subsampled, the encoder
    blurs edges) is the mask's magenta in a decoded frame."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = rect
    mx, my = 0.2 * (x1 - x0), 0.2 * (y1 - y0)
    inner = rgb[int((y0 + my) * h) : int((y1 - my) * h), int((x0 + mx) * w) : int((x1 - mx) * w)]
    r, g, b = inner.reshape(-1, 3).mean(axis=0)
    return bool(r > 180 and b > 180 and g < 90)


def shows_only(page: Any, shown: Rect, gone: Rect) -> bool:
    """Grab decoded frames (bounded) until one has the magenta mask at `shown` and not at
    `gone`: the camera follows the store from its next frame, the video lags a little."""
    end = time.monotonic() + 20
    while time.monotonic() < end:
        rgb, _meta = grab_frame(page)
        if magenta(rgb, shown) and not magenta(rgb, gone):
            return True
    return False


def test_redraw_a_mask_and_edit_a_line_rule(camera: int, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{camera}"
    api = Browser(camera)
    assert api.login((USER, PASSWORD)).status == 200
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            log_in_and_play(page, base, USER, PASSWORD)

            # A mask drawn with the mouse; ONVIF or the API gives it a colour meanwhile.
            page.click("#draw-mask")
            draw(page, corners(FIRST))
            assert wait_until(page, "document.querySelectorAll('#masks li').length === 1")
            (mask,) = api.send("GET", "/api/masks").json()["masks"]
            token = mask["token"]
            assert near(mask["polygon"], corners(FIRST)), mask
            put = api.send("PUT", f"/api/masks/{token}", {"color": MAGENTA})
            assert put.status == 200, put.body
            assert shows_only(page, FIRST, SECOND), "the drawn mask never showed"

            # Selecting it highlights it (white, not the usual red) and offers Redraw.
            top_edge = overlay_colour(page, (FIRST[0] + FIRST[2]) / 2, FIRST[1])
            assert page.evaluate(top_edge) == "255,80,80"
            page.click(f"#masks li[data-key='{token}'] button.item")
            assert page.locator(f"#masks li[data-key='{token}']").get_attribute("class") == (
                "selected"
            )
            assert token in page.inner_text("#mask-edit")
            assert wait_until(page, f"{top_edge} === '255,255,255'"), page.evaluate(top_edge)
            page.click("#mask-redraw")
            draw(page, corners(SECOND))
            assert wait_until(
                page, "document.querySelector('#masks').textContent.includes('4 points')"
            )
            # The same token, the new polygon, the colour kept.
            (moved,) = api.send("GET", "/api/masks").json()["masks"]
            assert page.inner_text("#api-error") == ""
            assert moved["token"] == token and moved["color"] == MAGENTA
            assert near(moved["polygon"], corners(SECOND)), moved
            assert shows_only(page, SECOND, FIRST), "the redrawn mask never showed"

            # A counting line drawn with the mouse, then its settings through the form.
            page.select_option("#rule-type", "LineCounting")
            page.fill("#rule-name", "doorway")
            page.click("#draw-rule")
            draw(page, [(0.2, 0.5), (0.8, 0.5)])
            assert wait_until(
                page, "document.querySelector('#rules').textContent.includes('doorway')"
            )
            page.click("#rules li[data-key='doorway'] button.item")
            assert page.input_value("#rule-edit-direction") == "Any"
            page.select_option("#rule-edit-direction", "Left")
            page.fill("#rule-edit-report_interval_s", "5")
            page.uncheck("#rule-edit-fields input[value='Human']")
            page.check("#rule-edit-fields input[value='HumanFace']")
            shot = artefacts(tmp_path) / "web_page_edit.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
            page.click("#rule-save")
            want = {
                "type": "LineCounting", "name": "doorway", "classes": ["HumanFace"],
                "reset_times": [], "report_interval_s": 5.0, "direction": "Left",
            }  # fmt: skip
            assert wait_until(
                page, "document.querySelector('#rule-edit-direction').value === 'Left'"
            )
            (rule,) = api.send("GET", "/api/rules").json()["rules"]
            assert rule == {**want, "segments": rule["segments"]}
            assert near(rule["segments"], [(0.2, 0.5), (0.8, 0.5)]), rule

            # Redrawn: the line moves, the name and settings stay.
            page.click("#rule-redraw")
            draw(page, [(0.5, 0.1), (0.5, 0.9)])
            deadline = time.monotonic() + 10
            while rule["segments"][0][0] < 0.4 and time.monotonic() < deadline:
                time.sleep(0.2)
                (rule,) = api.send("GET", "/api/rules").json()["rules"]
            assert page.inner_text("#api-error") == ""
            assert rule == {**want, "segments": rule["segments"]}
            assert near(rule["segments"], [(0.5, 0.1), (0.5, 0.9)]), rule
        finally:
            browser.close()


def test_the_page_follows_what_another_client_changes(camera: int) -> None:
    """A mask and a rule created, then deleted, by another client (ONVIF or another page: their
    ConfigurationChanged events reach this page) show in its lists without a reload."""
    from playwright.sync_api import sync_playwright

    other = Browser(camera)
    assert other.login((USER, PASSWORD)).status == 200
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            log_in_and_play(page, f"http://127.0.0.1:{camera}", USER, PASSWORD)
            masks = "document.querySelectorAll('#masks li').length"
            before = page.evaluate(masks)
            square = [[0.4, 0.4], [0.5, 0.4], [0.5, 0.5], [0.4, 0.5]]
            created = other.send("POST", "/api/masks", {"polygon": square})
            assert created.status == 201, created.body
            token = created.json()["token"]
            assert wait_until(page, f"{masks} === {before + 1}")
            rule = {"type": "LineDetector", "name": "from-elsewhere", "segments": [[0, 0], [1, 1]]}
            assert other.send("POST", "/api/rules", rule).status == 201
            listed = "document.querySelector('#rules').textContent.includes('from-elsewhere')"
            assert wait_until(page, listed)
            assert other.send("DELETE", f"/api/masks/{token}").status == 200
            assert other.send("DELETE", "/api/rules/from-elsewhere").status == 200
            assert wait_until(page, f"{masks} === {before}")
            assert wait_until(page, f"!{listed}")
        finally:
            browser.close()
