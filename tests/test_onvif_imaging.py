"""The Imaging (ver20) and DeviceIO services: every answer valid against the WSDL types, every
refusal with its spec subcodes, settings that round-trip and persist, and end to end through a
real ONVIF client: SetImagingSettings on a running `vcam serve` brightens its snapshot."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onvif
import pytest
from lxml import etree
from onvif import ONVIFCamera

from vcam.config import Config, OutputConfig
from vcam.media_settings import ImagingSettings, MediaSettingsStore
from vcam.onvif.deviceio import register_deviceio
from vcam.onvif.faults import SoapFault
from vcam.onvif.imaging import register_imaging
from vcam.onvif.model import DeviceModel
from vcam.onvif.service import OnvifDispatcher
from vcam.onvif.soap import NS, NSMAP, AccessClass, Dispatcher, parse_envelope

from .onvif_xsd import validate
from .test_onvif_services import (
    MAIN_CFG,
    MODEL,
    SUB_CFG,
    call,
    clark,
    env,
    fault,
    make_model,
)
from .vcam_process import VcamProcess, free_port, loopback_config

WSDL_DIR = str(Path(onvif.__file__).parent / "wsdl")
ADMIN_PW = "imaging-test-admin-pw"
SOURCE = "video_source"
TIMG, TMD = NSMAP["timg"], NSMAP["tmd"]


def _settings(inner: str, token: str = SOURCE, persist: str = "") -> str:
    tail = f"<timg:ForcePersistence>{persist}</timg:ForcePersistence>" if persist else ""
    return (
        f"<timg:SetImagingSettings><timg:VideoSourceToken>{token}</timg:VideoSourceToken>"
        f"<timg:ImagingSettings>{inner}</timg:ImagingSettings>{tail}</timg:SetImagingSettings>"
    )


def _with_source(op: str, token: str = SOURCE, extra: str = "") -> str:
    return f"<timg:{op}><timg:VideoSourceToken>{token}</timg:VideoSourceToken>{extra}</timg:{op}>"


MOVE = "<timg:Focus><tt:Continuous><tt:Speed>0.5</tt:Speed></tt:Continuous></timg:Focus>"

# One well-formed request per registered operation (the test below insists on that).
IMAGING_REQUESTS: dict[str, str] = {
    "timg:GetServiceCapabilities": "<timg:GetServiceCapabilities/>",
    "timg:GetImagingSettings": _with_source("GetImagingSettings"),
    "timg:GetOptions": _with_source("GetOptions"),
    "timg:SetImagingSettings": _settings(
        "<tt:Brightness>70</tt:Brightness><tt:ColorSaturation>30.5</tt:ColorSaturation>"
        "<tt:Contrast>55</tt:Contrast>",
        persist="true",
    ),
    "timg:GetStatus": _with_source("GetStatus"),
    "timg:GetMoveOptions": _with_source("GetMoveOptions"),
    "timg:Move": _with_source("Move", extra=MOVE),
    "timg:Stop": _with_source("Stop"),
    "tmd:GetServiceCapabilities": "<tmd:GetServiceCapabilities/>",
    "tmd:GetVideoSources": "<tmd:GetVideoSources/>",
    "tmd:GetVideoOutputs": "<tmd:GetVideoOutputs/>",
    "tmd:GetAudioSources": "<tmd:GetAudioSources/>",
    "tmd:GetAudioOutputs": "<tmd:GetAudioOutputs/>",
    "tmd:GetDigitalInputs": "<tmd:GetDigitalInputs/>",
    "tmd:GetSerialPorts": "<tmd:GetSerialPorts/>",
    "tds:GetRelayOutputs": "<tds:GetRelayOutputs/>",
}
# No lens: the focus operations answer this for a known source (Imaging spec fault table).
NO_FOCUS = {"timg:GetMoveOptions", "timg:Move", "timg:Stop"}
NO_IMAGING = ["ter:ActionNotSupported", "ter:NoImagingForSource"]
SETTINGS_INVALID = ["ter:InvalidArgVal", "ter:SettingsInvalid"]


@pytest.fixture(scope="module")
def dispatcher() -> OnvifDispatcher:
    d: OnvifDispatcher = Dispatcher()
    register_imaging(d)
    register_deviceio(d)
    return d


def fresh_model(path: Path | None = None) -> DeviceModel:
    """A model whose media store is its own (in memory, or kept in `path`)."""
    cfg = Config(output=OutputConfig(streams=(MAIN_CFG, SUB_CFG)))
    return make_model(media=MediaSettingsStore.load(path, cfg))


def imaging_of(model: DeviceModel) -> ImagingSettings:
    return model.media.settings.imaging


def refused(dispatcher: OnvifDispatcher, body: str, model: DeviceModel) -> SoapFault:
    with pytest.raises(SoapFault) as info:
        call(dispatcher, env(body), model=model)
    return info.value


# -- every operation ---------------------------------------------------------------------------


def test_every_registered_operation_is_covered(dispatcher: OnvifDispatcher) -> None:
    assert {op.qname for op in dispatcher.operations()} == {clark(k) for k in IMAGING_REQUESTS}


@pytest.mark.parametrize("name", sorted(IMAGING_REQUESTS))
def test_sample_requests_are_schema_valid(name: str) -> None:
    """The samples are what a conforming client sends, so the answers below mean something."""
    validate(parse_envelope(env(IMAGING_REQUESTS[name]), None).body_element)


@pytest.mark.parametrize("name", sorted(set(IMAGING_REQUESTS) - NO_FOCUS))
def test_every_answer_is_schema_valid(dispatcher: OnvifDispatcher, name: str) -> None:
    call(dispatcher, env(IMAGING_REQUESTS[name]), model=fresh_model())


@pytest.mark.parametrize("name", sorted(NO_FOCUS))
def test_focus_operations_say_there_is_no_focus(dispatcher: OnvifDispatcher, name: str) -> None:
    got = fault(dispatcher, env(IMAGING_REQUESTS[name]))
    assert got.code == "Receiver" and got.subcodes == NO_IMAGING


@pytest.mark.parametrize(
    "op", ["GetImagingSettings", "GetOptions", "GetStatus", "GetMoveOptions", "Move", "Stop"]
)
def test_an_unknown_video_source_is_no_source(dispatcher: OnvifDispatcher, op: str) -> None:
    extra = MOVE if op == "Move" else ""
    got = fault(dispatcher, env(_with_source(op, "video_source_config", extra)))
    assert got.code == "Sender" and got.subcodes == ["ter:InvalidArgVal", "ter:NoSource"]
    missing = fault(dispatcher, env(f"<timg:{op}/>"))
    assert missing.subcodes == ["ter:InvalidArgs"]


def test_access_classes(dispatcher: OnvifDispatcher) -> None:
    ops = {op.qname: op.access for op in dispatcher.operations()}
    actuate = {clark(f"timg:{n}") for n in ("SetImagingSettings", "Move", "Stop")}
    assert {q for q, a in ops.items() if a is AccessClass.ACTUATE} == actuate
    assert ops.pop(clark("timg:GetServiceCapabilities")) is AccessClass.PRE_AUTH
    assert ops.pop(clark("tmd:GetServiceCapabilities")) is AccessClass.PRE_AUTH
    assert {a for q, a in ops.items() if q not in actuate} == {AccessClass.READ_MEDIA}
    viewer = MODEL.users.get("viewer")
    with pytest.raises(SoapFault, match="NotAuthorized"):
        Dispatcher.authorize(dispatcher.lookup(clark("timg:SetImagingSettings")), viewer)
    Dispatcher.authorize(dispatcher.lookup(clark("timg:GetImagingSettings")), viewer)


# -- Imaging -----------------------------------------------------------------------------------


def test_capabilities_offer_no_presets_or_stabilization(dispatcher: OnvifDispatcher) -> None:
    caps = call(dispatcher, env(IMAGING_REQUESTS["timg:GetServiceCapabilities"]))[0]
    assert dict(caps.attrib) == {
        "ImageStabilization": "false",
        "Presets": "false",
        "AdaptablePreset": "false",
    }


def test_options_are_the_three_adjustments_0_to_100(dispatcher: OnvifDispatcher) -> None:
    answer = call(dispatcher, env(IMAGING_REQUESTS["timg:GetOptions"]))
    options = answer.find("timg:ImagingOptions", NS)
    assert options is not None
    ranges = {
        etree.QName(r).localname: tuple(
            r.findtext(f"tt:{k}", namespaces=NS) for k in ("Min", "Max")
        )
        for r in options
    }
    assert ranges == {k: ("0", "100") for k in ("Brightness", "ColorSaturation", "Contrast")}


def get_settings(dispatcher: OnvifDispatcher, model: DeviceModel) -> dict[str, str | None]:
    answer = call(dispatcher, env(IMAGING_REQUESTS["timg:GetImagingSettings"]), model=model)
    settings = answer.find("timg:ImagingSettings", NS)
    assert settings is not None
    return {etree.QName(c).localname: c.text for c in settings}


def test_defaults_are_neutral(dispatcher: OnvifDispatcher) -> None:
    got = get_settings(dispatcher, fresh_model())
    assert got == {"Brightness": "50", "ColorSaturation": "50", "Contrast": "50"}


def test_set_then_get_round_trips_and_keeps_what_was_not_given(
    dispatcher: OnvifDispatcher,
) -> None:
    model = fresh_model()
    call(dispatcher, env(IMAGING_REQUESTS["timg:SetImagingSettings"]), model=model)
    assert get_settings(dispatcher, model) == {
        "Brightness": "70",
        "ColorSaturation": "30.5",
        "Contrast": "55",
    }
    call(dispatcher, env(_settings("<tt:Contrast>0</tt:Contrast>")), model=model)
    assert imaging_of(model) == ImagingSettings(brightness=70.0, contrast=0.0, saturation=30.5)
    # ForcePersistence false is honoured by persisting anyway (the store always keeps it).
    body = _settings("<tt:Brightness>1e2</tt:Brightness>", persist="false")
    call(dispatcher, env(body), model=model)
    assert imaging_of(model).brightness == 100.0


@pytest.mark.parametrize(
    "inner",
    [
        "<tt:Brightness>100.5</tt:Brightness>",
        "<tt:Contrast>-1</tt:Contrast>",
        "<tt:ColorSaturation>NaN</tt:ColorSaturation>",
        "<tt:Brightness>INF</tt:Brightness>",
        "<tt:Brightness>bright</tt:Brightness>",
        "<tt:Brightness>1_0</tt:Brightness>",  # Python's float() takes it, xs:float does not
        "<tt:Brightness></tt:Brightness>",
        "<tt:Brightness>60</tt:Brightness><tt:Brightness>70</tt:Brightness>",
        "<tt:Brightness>60</tt:Brightness><tt:Sharpness>50</tt:Sharpness>",
        "<tt:Exposure><tt:Mode>MANUAL</tt:Mode></tt:Exposure>",
        "<tt:Focus><tt:AutoFocusMode>AUTO</tt:AutoFocusMode></tt:Focus>",
        "<tt:IrCutFilter>ON</tt:IrCutFilter>",
        "<tt:WhiteBalance><tt:Mode>AUTO</tt:Mode></tt:WhiteBalance>",
        "<tt:BacklightCompensation><tt:Mode>ON</tt:Mode></tt:BacklightCompensation>",
        "<tt:WideDynamicRange><tt:Mode>ON</tt:Mode></tt:WideDynamicRange>",
        "<tt:Extension><tt:ImageStabilization><tt:Mode>ON</tt:Mode></tt:ImageStabilization>"
        "</tt:Extension>",
    ],
)
def test_settings_it_cannot_apply_are_refused_and_change_nothing(
    dispatcher: OnvifDispatcher, inner: str
) -> None:
    model = fresh_model()
    got = refused(dispatcher, _settings(inner), model)
    assert got.code == "Sender" and got.subcodes == SETTINGS_INVALID
    assert imaging_of(model) == ImagingSettings()
    assert model.media.settings.revision == 0


def test_other_refusals(dispatcher: OnvifDispatcher) -> None:
    unknown = fault(dispatcher, env(_settings("<tt:Brightness>60</tt:Brightness>", "nope")))
    assert unknown.subcodes == ["ter:InvalidArgVal", "ter:NoSource"]
    missing = env(
        f"<timg:SetImagingSettings><timg:VideoSourceToken>{SOURCE}</timg:VideoSourceToken>"
        "</timg:SetImagingSettings>"
    )
    assert fault(dispatcher, missing).subcodes == ["ter:InvalidArgs"]
    maybe = env(_settings("<tt:Brightness>60</tt:Brightness>", persist="maybe"))
    assert fault(dispatcher, maybe).subcodes == ["ter:InvalidArgVal"]


def test_an_empty_settings_element_changes_nothing(dispatcher: OnvifDispatcher) -> None:
    model = fresh_model()
    call(dispatcher, env(_settings("<tt:Extension/>")), model=model)
    assert imaging_of(model) == ImagingSettings()


def test_settings_persist_across_a_reload(dispatcher: OnvifDispatcher, tmp_path: Path) -> None:
    path = tmp_path / "media.json"
    model = fresh_model(path)
    body = _settings("<tt:Brightness>12.5</tt:Brightness><tt:Contrast>80</tt:Contrast>")
    call(dispatcher, env(body), model=model)
    kept = json.loads(path.read_text())["imaging"]
    assert kept == {"brightness": 12.5, "contrast": 80.0, "saturation": 50.0}
    again = fresh_model(path)
    assert imaging_of(again) == ImagingSettings(brightness=12.5, contrast=80.0)
    assert get_settings(dispatcher, again)["Brightness"] == "12.5"


def test_a_failed_write_is_a_device_fault_and_changes_nothing(
    dispatcher: OnvifDispatcher, tmp_path: Path
) -> None:
    path = tmp_path / "media.json"
    model = fresh_model(path)
    path.mkdir()  # the store's file cannot be replaced any more (even by root)
    got = refused(dispatcher, _settings("<tt:Brightness>60</tt:Brightness>"), model)
    assert got.code == "Receiver" and got.subcodes == ["ter:Action"]
    assert imaging_of(model) == ImagingSettings()


# -- DeviceIO ----------------------------------------------------------------------------------


def test_deviceio_lists_the_one_video_source_and_nothing_else(
    dispatcher: OnvifDispatcher,
) -> None:
    sources = call(dispatcher, env(IMAGING_REQUESTS["tmd:GetVideoSources"]))
    assert [t.text for t in sources] == [MODEL.source_token]
    for name in ("GetVideoOutputs", "GetAudioSources", "GetAudioOutputs", "GetDigitalInputs"):
        assert len(call(dispatcher, env(f"<tmd:{name}/>"))) == 0, name
    assert len(call(dispatcher, env("<tds:GetRelayOutputs/>"))) == 0
    caps = call(dispatcher, env(IMAGING_REQUESTS["tmd:GetServiceCapabilities"]))[0]
    assert caps.get("VideoSources") == "1"
    assert {caps.get(k) for k in ("VideoOutputs", "AudioSources", "RelayOutputs")} == {"0"}


# -- end to end --------------------------------------------------------------------------------


def snapshot_luma(port: int) -> float | None:
    """Mean grey level of /snapshot/main.jpg (Digest as admin); None before the first frame."""
    url = f"http://127.0.0.1:{port}/snapshot/main.jpg"
    manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    manager.add_password(None, f"http://127.0.0.1:{port}/", "admin", ADMIN_PW)
    opener = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(manager))
    try:
        with opener.open(url, timeout=10) as resp:
            data = resp.read()
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 503:
            return None
        raise
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image is not None
    return float(image.mean())


def wait_luma(port: int, accept: Callable[[float], bool], timeout: float = 15.0) -> float:
    """Polls the snapshot until `accept(luma)`; returns the last luma seen."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = snapshot_luma(port)
        if last is not None and accept(last):
            return last
        time.sleep(0.2)
    raise AssertionError(f"snapshot luma never acceptable: last {last}")


def test_set_imaging_settings_over_onvif_brightens_the_snapshot(tmp_path: Path) -> None:
    http = free_port()
    config = loopback_config(
        width=320, height=192, fps=10.0, rtsp_port=free_port(), http_port=http,
        tail='[[output.streams]]\nname = "main"',
    )  # fmt: skip

    async def session(brightness: float) -> tuple[list[str], float, float]:
        cam = ONVIFCamera("127.0.0.1", http, "admin", ADMIN_PW, WSDL_DIR)
        try:
            await cam.update_xaddrs()
            deviceio = await cam.create_deviceio_service()
            # onvif-zeep-async ships the older deviceio.wsdl, whose GetVideoSources is
            # trt:GetVideoSources (answered by Media: routing is by body element); 21.06 made it
            # tmd:GetVideoSources with bare tokens. Both name the same source.
            tokens = [str(s.token) for s in await deviceio.GetVideoSources()]
            imaging = await cam.create_imaging_service()
            options = await imaging.GetOptions({"VideoSourceToken": tokens[0]})
            await imaging.SetImagingSettings(
                {
                    "VideoSourceToken": tokens[0],
                    "ImagingSettings": {"Brightness": brightness},
                    "ForcePersistence": True,
                }
            )
            now = await imaging.GetImagingSettings({"VideoSourceToken": tokens[0]})
            return tokens, float(options.Brightness.Max), float(now.Brightness)
        finally:
            await cam.close()

    vcam = VcamProcess(tmp_path, config, ADMIN_PW)
    try:
        vcam.wait_for("ONVIF: http://")
        time.sleep(1.0)  # past the first fail-closed frames: the scene itself
        before = max(wait_luma(http, lambda _: True) for _ in range(3))  # the scene moves a bit
        tokens, top, brightness = asyncio.run(session(90.0))
        brighter = wait_luma(http, lambda luma: luma > before + 30)
        kept = json.loads((tmp_path / "media.json").read_text())["imaging"]
        # And back down: the picture follows each change, not a scene that happened to brighten.
        asyncio.run(session(10.0))
        darker = wait_luma(http, lambda luma: luma < min(before, brighter - 50))
    finally:
        vcam.stop()
    assert tokens == [SOURCE] and top == 100.0 and brightness == 90.0
    assert brighter > before + 30  # +88 video-range codes, less what clips at white
    assert darker < min(before, brighter - 50)
    assert kept["brightness"] == 90.0
