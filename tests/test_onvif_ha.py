"""Home Assistant's way of adding a camera, against a real `vcam serve` process.

WS-Discovery probe (directed to the responder) -> onvif-zeep-async (the library Home Assistant
and Frigate use): unauthenticated GetSystemDateAndTime, update_xaddrs, GetNetworkInterfaces,
GetProfiles with H.264, GetStreamUri -> ffprobe plays it -> get_snapshot returns a JPEG whose
faces are masked. Every step is a real third-party client against the real server.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onvif
import pytest
from lxml import etree
from onvif import ONVIFCamera

from vcam.config import SyntheticConfig
from vcam.evaluation import face_coverage
from vcam.media.types import GroundTruth
from vcam.sources.stamp import read_stamp
from vcam.sources.synthetic import SyntheticScene

from .test_discovery import ha_probe
from .vcam_process import ROOT, VcamProcess, free_port, loopback_config

USER, PASSWORD = "admin", "onvif-test-pw"
SCENE = SyntheticConfig(width=640, height=360, fps=15.0, stamp=True)
WSDL_DIR = str(Path(onvif.__file__).parent / "wsdl")
D = "{http://schemas.xmlsoap.org/ws/2005/04/discovery}"


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    tmp = tmp_path_factory.mktemp("onvif")
    ports = {
        "rtsp": free_port(),
        "http": free_port(),
        "discovery": free_port(socket.SOCK_DGRAM),
    }
    config = loopback_config(
        width=SCENE.width, height=SCENE.height, fps=SCENE.fps, stamp=True,
        rtsp_port=ports["rtsp"], http_port=ports["http"], discovery_port=ports["discovery"],
    )  # fmt: skip
    vcam = VcamProcess(tmp, config, PASSWORD)
    vcam.wait_for("ONVIF: http://")
    time.sleep(1.0)  # the first masked frames
    try:
        yield ports
    finally:
        vcam.stop()


def probe(port: int) -> etree._Element:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        mid = f"urn:uuid:{uuid.uuid4()}"
        s.sendto(ha_probe(mid), ("127.0.0.1", port))
        data, _ = s.recvfrom(65536)
    return etree.fromstring(data)


def test_home_assistant_adds_the_camera(camera: dict[str, int]) -> None:
    # 1. Discovery finds it, with the streaming scope and an XAddr on the HTTP port.
    match = probe(camera["discovery"])
    scopes = match.findtext(f".//{D}Scopes") or ""
    xaddrs = match.findtext(f".//{D}XAddrs") or ""
    assert "onvif://www.onvif.org/Profile/Streaming" in scopes.split()
    assert f"http://127.0.0.1:{camera['http']}/onvif/device_service" in xaddrs.split()
    asyncio.run(_home_assistant_flow(camera))


async def _home_assistant_flow(camera: dict[str, int]) -> None:
    # 2. The unauthenticated time check (a pre-auth operation), as zeep sends it; a protected
    # operation without credentials gets 401 with a Digest challenge.
    corpus = ROOT / "tests" / "corpus" / "soap"
    url = f"http://127.0.0.1:{camera['http']}/onvif/device_service"
    status, body = await asyncio.to_thread(
        _post, url, (corpus / "zeep_get_system_date_and_time.xml").read_bytes()
    )
    assert status == 200 and b"UTCDateTime" in body
    info_body = (corpus / "zeep_get_device_information_wsse.xml").read_bytes()
    status, body = await asyncio.to_thread(_post, url, _without_security(info_body))
    assert status == 401 and b"NotAuthorized" in body

    cam = ONVIFCamera("127.0.0.1", camera["http"], USER, PASSWORD, WSDL_DIR)
    try:
        await cam.update_xaddrs()
        dev = await cam.create_devicemgmt_service()
        info = await dev.GetDeviceInformation()
        assert info.Manufacturer and info.SerialNumber
        interfaces = await dev.GetNetworkInterfaces()
        assert interfaces[0].Enabled and interfaces[0].Info.HwAddress.count(":") == 5
        media = await cam.create_media_service()
        profiles = await media.GetProfiles()
        assert len(profiles) == 2
        encodings = {p.VideoEncoderConfiguration.Encoding for p in profiles}
        assert encodings == {"H264"}
        sizes = {
            (p.VideoEncoderConfiguration.Resolution.Width,
             p.VideoEncoderConfiguration.Resolution.Height)
            for p in profiles
        }  # fmt: skip
        assert (640, 360) in sizes
        main = next(p for p in profiles if p.VideoEncoderConfiguration.Resolution.Width == 640)
        req = media.create_type("GetStreamUri")
        req.ProfileToken = main.token
        req.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
        uri = (await media.GetStreamUri(req)).Uri
        assert uri.startswith(f"rtsp://127.0.0.1:{camera['rtsp']}/")
        # 3. The URI plays in a real player.
        authed = uri.replace("rtsp://", f"rtsp://{USER}:{PASSWORD}@")
        proc = await asyncio.to_thread(
            subprocess.run,
            ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries",
             "stream=codec_name,width,height", "-of", "csv=p=0", authed],
            capture_output=True, text=True, timeout=40,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "h264,640,360" in proc.stdout
        # 4. The snapshot is a JPEG of a masked frame (one whose stamp no mask covers, so that
        # its ground truth is known).
        for _ in range(20):
            jpeg = await cam.get_snapshot(main.token)
            assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
            if _assert_masked(jpeg):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("no snapshot with a readable stamp")
    finally:
        await cam.close()


def _assert_masked(jpeg: bytes) -> bool:
    """Asserts every ground-truth face in the snapshot is masked; False when a mask covers the
    stamp (which frame it is cannot be told)."""
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    # JPEG is full range; the comparison works on video-range luma like the rest of vcam.
    y = (yuv[: bgr.shape[0]].astype(np.float32) * 219 / 255 + 16).round().astype(np.uint8)
    stamp = read_stamp(y)
    if stamp is None:
        return False
    index, _ms = stamp
    scene = SyntheticScene(SCENE)
    rgb, truth, owners = scene.render_with_owners(index)
    assert owners is not None
    clear_bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    cy = cv2.cvtColor(clear_bgr, cv2.COLOR_BGR2YUV_I420)[: rgb.shape[0]]
    clear = (cy.astype(np.float32) * 219 / 255 + 16).round().astype(np.uint8)

    def visible(gt: GroundTruth) -> np.ndarray:
        return owners == scene.walker_number(gt.identity)

    faces = [fc for fc in face_coverage(y, clear, truth, visible) if fc.truth.box.height >= 24]
    assert faces, "the snapshot shows the scene's faces"
    assert not [fc for fc in faces if fc.leaked], faces
    return True


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/soap+xml; charset=utf-8"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _without_security(envelope: bytes) -> bytes:
    root = etree.fromstring(envelope)
    for sec in root.iter("{*}Security"):
        sec.getparent().remove(sec)
    return etree.tostring(root)
