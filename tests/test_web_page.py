"""The web page in a real browser (Debian's chromium driven by Playwright, never a downloaded
one) against a real `vcam serve` on the synthetic scene: log in, watch the live video over
WebRTC, draw a line on the overlay with the mouse, and find the rule through ONVIF (plain zeep
on the Analytics WSDL, as a VMS would read it). A screenshot is kept as an artefact, under
$VCAM_TEST_ARTIFACTS or the test's tmp_path."""

from __future__ import annotations

import os
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vcam.onvif.analytics import CONFIG_TOKEN

from .test_onvif_analytics import PASSWORD, USER, analytics_clients
from .vcam_process import VcamProcess, free_port, loopback_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run)")


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    tmp = tmp_path_factory.mktemp("web-page")
    http = free_port()
    config = loopback_config(width=320, height=240, fps=10.0, rtsp_port=free_port(), http_port=http)
    vcam = VcamProcess(tmp, config, PASSWORD)
    try:
        vcam.wait_for("ONVIF: http://")
        yield http
    finally:
        vcam.stop()


def artefacts(tmp_path: Path) -> Path:
    where = Path(os.environ.get("VCAM_TEST_ARTIFACTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def wait_until(page: Any, script: str, timeout_s: float = 20.0) -> Any:
    """Poll a page expression until it is truthy (bounded); its last value."""
    end = time.monotonic() + timeout_s
    value = page.evaluate(script)
    while not value and time.monotonic() < end:
        time.sleep(0.2)
        value = page.evaluate(script)
    return value


def test_page_logs_in_plays_and_draws_a_line(camera: int, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{camera}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            page.goto(base + "/")
            page.fill("#username", USER)
            page.fill("#password", PASSWORD)
            page.click("#login-button")
            page.wait_for_selector("#app:not([hidden])")
            assert "Administrator" in page.inner_text("#who")
            # Counters come from the real pipeline.
            # (Polled with evaluate: wait_for_function evals in the page, which our CSP forbids.)
            assert wait_until(page, "document.querySelector('#status').textContent.includes('fps')")

            # The live video plays over WebRTC: decoded frames, time moving on.
            assert wait_until(page, "document.getElementById('video').videoWidth > 0"), (
                page.inner_text("#video-message")
            )
            t0 = page.evaluate("document.getElementById('video').currentTime")
            assert wait_until(page, f"document.getElementById('video').currentTime > {t0} + 0.5")

            # Draw a line: click, then double-click, on the overlay.
            page.select_option("#rule-type", "LineDetector")
            page.fill("#rule-name", "browser-line")
            page.click("#draw-rule")
            page.evaluate("window.scrollTo(0, 0)")  # the click scrolled down to the button
            box = page.locator("#overlay").bounding_box()
            assert box is not None
            x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
            page.mouse.click(x0 + 0.2 * w, y0 + 0.5 * h)
            page.mouse.dblclick(x0 + 0.8 * w, y0 + 0.5 * h)
            assert wait_until(
                page, "document.querySelector('#rules').textContent.includes('browser-line')"
            ), page.inner_text("#api-error")
            shot = artefacts(tmp_path) / "web_page.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
        finally:
            browser.close()

    # ONVIF sees the rule the mouse drew, where it was drawn.
    rules, _engine = analytics_clients(camera)
    listed = {r.Name: r for r in rules.GetRules(ConfigurationToken=CONFIG_TOKEN)}
    assert "browser-line" in listed
    line = listed["browser-line"]
    assert str(line.Type).endswith("LineDetector")
    polyline = line.Parameters.ElementItem[0]._value_1  # zeep's tt:Polyline object
    xs = sorted(float(pt.x) for pt in polyline.Point)
    ys = {round(float(pt.y), 2) for pt in polyline.Point}
    # Normalised 0.2 and 0.8 are -0.6 and 0.6 in ONVIF's [-1, 1] frame; y = 0.5 is 0.
    assert xs == pytest.approx([-0.6, 0.6], abs=0.02) and ys == {0.0}


def test_healthz_and_metrics_of_the_running_camera(camera: int) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{camera}/healthz", timeout=10) as resp:
        assert resp.status == 200
    mgr = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    mgr.add_password(None, f"http://127.0.0.1:{camera}/", USER, PASSWORD)
    opener = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(mgr))
    with opener.open(f"http://127.0.0.1:{camera}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    frames = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("vcam_frames_total")
    )
    assert frames > 0
