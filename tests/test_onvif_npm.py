"""npm `onvif` 0.8.3 (Scrypted, Shinobi, older UniFi Protect) adds a real `vcam serve` process.

`tests/node/onvif_client.js` connects the way those applications do: GetSystemDateAndTime
(unauthenticated), GetServices(IncludeCapability=true), then GetProfiles + GetVideoSources in
parallel, then GetStreamUri(RTSP), GetSnapshotUri and GetDeviceInformation; it prints one JSON
object. The stream URI it got plays in ffprobe, the snapshot URI gives a JPEG. The node package
is pinned in tests/node/package-lock.json; `.ci/run` installs it with `npm ci`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from .vcam_process import ROOT, VcamProcess, free_port, loopback_config

USER, PASSWORD = "admin", "npm-onvif-test-pw"
NODE_DIR = ROOT / "tests" / "node"
MAIN, SUB = (640, 360), (320, 180)


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    assert shutil.which("node"), "node (v20) is needed: apt-get install nodejs npm"
    assert (NODE_DIR / "node_modules" / "onvif").is_dir(), (
        "npm onvif is not installed: (cd tests/node && npm ci --no-audit --no-fund)"
    )
    tmp = tmp_path_factory.mktemp("onvif-npm")
    ports = {"rtsp": free_port(), "http": free_port()}
    config = loopback_config(
        width=MAIN[0], height=MAIN[1], fps=15.0, rtsp_port=ports["rtsp"],
        http_port=ports["http"],
        tail=f"""
[[output.streams]]
name = "main"
width = 0
height = 0
bitrate_kbps = 1000
[[output.streams]]
name = "sub"
width = {SUB[0]}
height = {SUB[1]}
bitrate_kbps = 300
""",
    )  # fmt: skip
    vcam = VcamProcess(tmp, config, PASSWORD)
    vcam.wait_for("ONVIF: http://")
    time.sleep(1.0)  # the first masked frames
    try:
        yield ports
    finally:
        vcam.stop()


def npm_onvif(port: int, user: str, password: str, *auth: str) -> tuple[int, dict[str, Any]]:
    """Run the node client (bounded) and return its exit status and its one JSON object."""
    proc = subprocess.run(
        ["node", "onvif_client.js", "127.0.0.1", str(port), user, password, *auth],
        cwd=NODE_DIR, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, f"stdout {proc.stdout!r} stderr {proc.stderr!r}"
    return proc.returncode, json.loads(lines[0])


def requests_made(result: dict[str, Any]) -> list[str]:
    return [step["request"] for step in result["trace"] if "request" in step]


@pytest.mark.parametrize("auth", ["ws-security", "digest"])
def test_npm_onvif_adds_the_camera(camera: dict[str, int], auth: str) -> None:
    extra = ("digest",) if auth == "digest" else ()
    code, result = npm_onvif(camera["http"], USER, PASSWORD, *extra)
    assert code == 0 and result.get("connected") is True, result
    assert result["warnings"] == [], result
    # What connect() asked for: Media2 is advertised, so it asks Media2's GetProfiles first,
    # then Media1's profiles and video sources in parallel (with Digest, a request may be sent
    # twice: first unauthenticated, then answering the challenge).
    made = requests_made(result)
    assert made[:3] == ["GetSystemDateAndTime", "GetServices", "GetProfiles"], made
    assert {"GetProfiles", "GetVideoSources"} <= set(made[3:6]), made
    assert result["media2Support"] is True
    assert {"device", "media", "media2"} <= set(result["services"])

    # Profiles: H.264 at the configured sizes, on the one video source.
    profiles = result["profiles"]
    assert {p["encoding"] for p in profiles} == {"H264"}, profiles
    assert {(p["width"], p["height"]) for p in profiles} == {MAIN, SUB}, profiles
    assert {p["sourceToken"] for p in profiles} == set(result["videoSources"])
    active = result["activeSource"]
    assert (active["encoding"], active["width"], active["height"]) == ("H264", *MAIN)
    main = next(p for p in profiles if p["token"] == active["profileToken"])

    # URIs: the default (first) profile's RTSP stream, the snapshot on the HTTP port.
    assert result["streamUri"] == f"rtsp://127.0.0.1:{camera['rtsp']}/{main['name']}"
    snapshot = result["snapshotUri"]
    assert snapshot.startswith(f"http://127.0.0.1:{camera['http']}/snapshot/")
    assert snapshot.endswith(".jpg")
    assert result["deviceInformation"]["manufacturer"] == "vcam"
    assert result["deviceInformation"]["serialNumber"]
    if auth == "digest":
        return  # the media checks below are the same for both

    # The stream URI plays in a real player...
    authed = result["streamUri"].replace("rtsp://", f"rtsp://{USER}:{PASSWORD}@")
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries",
         "stream=codec_name,width,height", "-of", "csv=p=0", authed],
        capture_output=True, text=True, timeout=40,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"h264,{MAIN[0]},{MAIN[1]}" in proc.stdout
    # ...and the snapshot URI gives a JPEG (HTTP Digest, as the applications fetch it).
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, snapshot, USER, PASSWORD)
    opener = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(passwords))
    with opener.open(snapshot, timeout=10) as response:
        assert response.headers["Content-Type"] == "image/jpeg"
        assert response.read()[:2] == b"\xff\xd8"


@pytest.mark.parametrize("auth", ["ws-security", "digest"])
def test_npm_onvif_wrong_password(camera: dict[str, int], auth: str) -> None:
    extra = ("digest",) if auth == "digest" else ()
    code, result = npm_onvif(camera["http"], USER, "not-the-password", *extra)
    assert code == 1 and "connected" not in result, result
    # GetSystemDateAndTime and GetServices are pre-auth, so onvif 0.8.3's connect() itself
    # "succeeds"; the refused GetProfiles/GetVideoSources come back as a 'warning' and leave it
    # without media. The script reports that warning as its error.
    expected = "Sender not Authorized" if auth == "ws-security" else "authentication failed 401"
    assert expected in result["error"], result
    assert "GetProfiles" in requests_made(result)
