"""Media (ver10) changes: SetVideoEncoderConfiguration really changes the stream, profiles clients
create and fill in, and everything kept across restarts in `<data_dir>/media.json`.

In-process answers are schema-validated (through `call`); the end-to-end test sets the main
stream to 320x180 with onvif-zeep-async, sees it with ffprobe, restarts `vcam serve` on the same
data directory and finds the encoder setting and a created profile again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import stat
import subprocess
from pathlib import Path

import onvif
import pytest
from lxml import etree
from onvif import ONVIFCamera

from vcam.config import Config, OutputConfig
from vcam.errors import ConfigError
from vcam.media_settings import MAX_PROFILES, MediaSettingsStore
from vcam.onvif.faults import SoapFault
from vcam.onvif.model import DeviceModel
from vcam.onvif.soap import NS
from vcam.onvif.stack import build_dispatcher, media_store

from .onvif_model import media_for
from .test_onvif_services import MAIN_CFG, SUB_CFG, call, env, make_model
from .vcam_process import VcamProcess, free_port, loopback_config

DISPATCHER = build_dispatcher()
WSDL_DIR = str(Path(onvif.__file__).parent / "wsdl")
ADMIN_PW = "media-test-admin-pw"


def fresh(store: MediaSettingsStore | None = None) -> DeviceModel:
    return make_model(media=store if store is not None else media_for(MAIN_CFG, SUB_CFG))


def ok(model: DeviceModel, body: str) -> etree._Element:
    return call(DISPATCHER, env(body), model=model)


def refused(model: DeviceModel, body: str) -> list[str]:
    before = model.media.settings
    with pytest.raises(SoapFault) as info:
        ok(model, body)
    assert model.media.settings == before  # a refused request changes nothing
    return info.value.subcodes


def set_encoder(token: str, **values: str) -> str:
    """A SetVideoEncoderConfiguration as clients send it: the whole configuration echoed."""
    v = {"name": "x", "w": "320", "h": "180", "quality": "5", "fps": "10", "interval": "1"}
    v |= {"bitrate": "300", "gop": "20", "profile": "Baseline", "encoding": "H264"} | values
    return (
        f'<trt:SetVideoEncoderConfiguration><trt:Configuration token="{token}">'
        f"<tt:Name>{v['name']}</tt:Name><tt:UseCount>1</tt:UseCount>"
        f"<tt:Encoding>{v['encoding']}</tt:Encoding><tt:Resolution><tt:Width>{v['w']}</tt:Width>"
        f"<tt:Height>{v['h']}</tt:Height></tt:Resolution><tt:Quality>{v['quality']}</tt:Quality>"
        f"<tt:RateControl><tt:FrameRateLimit>{v['fps']}</tt:FrameRateLimit>"
        f"<tt:EncodingInterval>{v['interval']}</tt:EncodingInterval>"
        f"<tt:BitrateLimit>{v['bitrate']}</tt:BitrateLimit></tt:RateControl>"
        f"<tt:H264><tt:GovLength>{v['gop']}</tt:GovLength><tt:H264Profile>{v['profile']}"
        "</tt:H264Profile></tt:H264><tt:SessionTimeout>PT60S</tt:SessionTimeout>"
        "</trt:Configuration><trt:ForcePersistence>true</trt:ForcePersistence>"
        "</trt:SetVideoEncoderConfiguration>"
    )


def encoder_config(model: DeviceModel, token: str) -> dict[str, str | None]:
    answer = ok(
        model,
        "<trt:GetVideoEncoderConfiguration><trt:ConfigurationToken>"
        f"{token}</trt:ConfigurationToken></trt:GetVideoEncoderConfiguration>",
    )
    paths = {
        "name": "tt:Name",
        "w": "tt:Resolution/tt:Width",
        "h": "tt:Resolution/tt:Height",
        "fps": "tt:RateControl/tt:FrameRateLimit",
        "bitrate": "tt:RateControl/tt:BitrateLimit",
        "gop": "tt:H264/tt:GovLength",
        "profile": "tt:H264/tt:H264Profile",
        "uses": "tt:UseCount",
    }
    return {k: answer.findtext(f"trt:Configuration/{p}", namespaces=NS) for k, p in paths.items()}


def profile_request(op: str, token: str, config: str | None = None) -> str:
    body = f"<trt:ProfileToken>{token}</trt:ProfileToken>"
    if config is not None:
        body += f"<trt:ConfigurationToken>{config}</trt:ConfigurationToken>"
    return f"<trt:{op}>{body}</trt:{op}>"


def create(model: DeviceModel, name: str, token: str | None = None) -> str:
    tok = f"<trt:Token>{token}</trt:Token>" if token else ""
    answer = ok(model, f"<trt:CreateProfile><trt:Name>{name}</trt:Name>{tok}</trt:CreateProfile>")
    prof = answer.find("trt:Profile", NS)
    assert prof is not None and prof.get("fixed") == "false"
    assert prof.findtext("tt:Name", namespaces=NS) == name
    assert prof.find("tt:VideoEncoderConfiguration", NS) is None  # empty until filled in
    return str(prof.get("token"))


# -- SetVideoEncoderConfiguration --------------------------------------------------------------


def test_set_video_encoder_configuration_changes_the_encoder() -> None:
    model = fresh()
    ok(model, set_encoder("encoder_sub", name="lobby-sub", profile="High"))
    assert encoder_config(model, "encoder_sub") == {
        "name": "lobby-sub", "w": "320", "h": "180", "fps": "10", "bitrate": "300",
        "gop": "20", "profile": "High", "uses": "1",
    }  # fmt: skip
    sub = model.media.settings.encoders[1]
    assert (sub.width, sub.height, sub.fps, sub.bitrate_kbps, sub.gop, sub.profile) == (
        320, 180, 10, 300, 20, "high",
    )  # fmt: skip
    assert model.streams[1].width == 320  # what the snapshot, RTSP and ONVIF describe


def test_the_source_rate_means_follow_the_source() -> None:
    model = fresh()
    ok(model, set_encoder("encoder_main", w="1280", h="720", fps="25"))
    assert model.media.settings.encoders[0].fps == 0.0  # a faster source later is followed


@pytest.mark.parametrize(
    "values",
    [
        {"w": "333", "h": "222"},  # not offered: GetVideoEncoderConfigurationOptions lists sizes
        {"w": "2560", "h": "1440"},  # larger than the source
        {"quality": "3"},  # the bitrate rules
        {"fps": "50"},  # more than the source gives
        {"fps": "0"},
        {"interval": "2"},
        {"bitrate": "5"},
        {"gop": "0"},
        {"profile": "Extended"},
        {"encoding": "JPEG"},
        {"w": "wide"},
    ],
    ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()),
)
def test_settings_the_encoder_cannot_stream_are_refused(values: dict[str, str]) -> None:
    assert refused(fresh(), set_encoder("encoder_sub", **values))[:2] == [
        "ter:InvalidArgVal",
        "ter:ConfigModify",
    ]


def test_an_unknown_encoder_is_no_config() -> None:
    assert refused(fresh(), set_encoder("encoder_nope")) == ["ter:InvalidArgVal", "ter:NoConfig"]


# -- profiles ----------------------------------------------------------------------------------


def test_a_created_profile_is_filled_in_and_streams() -> None:
    model = fresh()
    token = create(model, "SynoProfile")
    assert refused(model, profile_request("GetStreamUri", token)) == [
        "ter:Action",
        "ter:IncompleteConfiguration",
    ]
    ok(model, profile_request("AddVideoSourceConfiguration", token, "video_source_config"))
    ok(model, profile_request("AddVideoEncoderConfiguration", token, "encoder_sub"))
    ok(model, profile_request("AddMetadataConfiguration", token, "metadata_config"))
    prof = ok(model, profile_request("GetProfile", token)).find("trt:Profile", NS)
    assert prof is not None
    assert prof.find("tt:VideoSourceConfiguration", NS) is not None
    assert prof.find("tt:MetadataConfiguration", NS) is not None
    assert prof.findtext("tt:VideoEncoderConfiguration/tt:Name", namespaces=NS) == "sub"
    assert encoder_config(model, "encoder_sub")["uses"] == "2"  # the fixed profile and this one
    uri = ok(model, profile_request("GetStreamUri", token))
    assert uri.findtext("trt:MediaUri/tt:Uri", namespaces=NS) == "rtsp://192.168.1.20:8554/sub"
    ok(model, profile_request("RemoveVideoEncoderConfiguration", token))
    assert encoder_config(model, "encoder_sub")["uses"] == "1"
    ok(model, profile_request("DeleteProfile", token))
    assert refused(model, profile_request("GetProfile", token)) == [
        "ter:InvalidArgVal",
        "ter:NoProfile",
    ]


def test_profile_refusals() -> None:
    model = fresh()
    assert refused(model, profile_request("DeleteProfile", "profile_main")) == [
        "ter:Action",
        "ter:DeletionOfFixedProfile",
    ]
    create(model, "mine", token="mine")
    assert refused(
        model, "<trt:CreateProfile><trt:Name>b</trt:Name><trt:Token>mine</trt:Token>"
        "</trt:CreateProfile>"
    ) == ["ter:InvalidArgVal", "ter:ProfileExists"]  # fmt: skip
    assert refused(model, profile_request("AddVideoEncoderConfiguration", "mine", "enc_x")) == [
        "ter:InvalidArgVal",
        "ter:NoConfig",
    ]
    assert refused(model, profile_request("AddVideoEncoderConfiguration", "nope", "encoder_sub"))[
        1:
    ] == ["ter:NoProfile"]
    while len(model.media.settings.profiles) < MAX_PROFILES:
        create(model, "more")
    assert refused(model, "<trt:CreateProfile><trt:Name>one too many</trt:Name></trt:CreateProfile>"
                   ) == ["ter:Action", "ter:MaxNVTProfiles"]  # fmt: skip


def test_created_profiles_and_encoder_settings_are_kept(tmp_path: Path) -> None:
    cfg = Config(data_dir=str(tmp_path), output=OutputConfig(streams=(MAIN_CFG, SUB_CFG)))
    model = fresh(media_store(cfg))
    token = create(model, "kept")
    ok(model, profile_request("AddVideoEncoderConfiguration", token, "encoder_main"))
    ok(model, set_encoder("encoder_sub", w="640", h="360", bitrate="700"))
    path = tmp_path / "media.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = fresh(media_store(cfg))
    assert again.media.settings == model.media.settings
    assert encoder_config(again, "encoder_sub")["bitrate"] == "700"
    # Someone edits the sub stream in the configuration file: the file wins for that stream,
    # the created profile stays.
    edited = dataclasses.replace(SUB_CFG, bitrate_kbps=900)
    cfg2 = dataclasses.replace(cfg, output=OutputConfig(streams=(MAIN_CFG, edited)))
    third = fresh(media_store(cfg2))
    assert encoder_config(third, "encoder_sub")["bitrate"] == "900"
    assert third.media.settings.profile(token) is not None
    # A stream dropped from the configuration leaves the profile without an encoder.
    cfg3 = dataclasses.replace(cfg, output=OutputConfig(streams=(SUB_CFG,)))
    fourth = media_store(cfg3).settings
    kept = fourth.profile(token)
    assert kept is not None and kept.encoder is None
    assert [p.token for p in fourth.profiles if p.fixed] == ["profile_sub"]


@pytest.mark.parametrize("text", ["{", '{"version": 99}', '{"version": 1, "encoders": [{}]}'])
def test_a_damaged_media_file_is_a_config_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "media.json").write_text(text)
    with pytest.raises(ConfigError, match=r"media\.json"):
        media_store(Config(data_dir=str(tmp_path)))


def test_the_kept_file_is_readable_json(tmp_path: Path) -> None:
    cfg = Config(data_dir=str(tmp_path))
    fresh(media_store(cfg)).media.change(lambda s: s)  # no change: nothing written
    assert not (tmp_path / "media.json").exists()
    model = fresh(media_store(cfg))
    create(model, "a")
    data = json.loads((tmp_path / "media.json").read_text())
    assert [p["name"] for p in data["profiles"]] == ["a"]


# -- end to end --------------------------------------------------------------------------------


def ffprobe_size(url: str) -> str:
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v:0",
         "-show_entries", "stream=width,height", "-of", "csv=p=0", url],
        capture_output=True, text=True, timeout=40,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_set_video_encoder_configuration_changes_what_ffprobe_sees(tmp_path: Path) -> None:
    http, rtsp = free_port(), free_port()
    config = loopback_config(
        width=640, height=360, fps=10.0, rtsp_port=rtsp, http_port=http,
        tail='[[output.streams]]\nname = "main"',
    )  # fmt: skip
    url = f"rtsp://admin:{ADMIN_PW}@127.0.0.1:{rtsp}/main"

    async def change() -> None:
        cam = ONVIFCamera("127.0.0.1", http, "admin", ADMIN_PW, WSDL_DIR)
        try:
            await cam.update_xaddrs()
            media = await cam.create_media_service()
            options = await media.GetVideoEncoderConfigurationOptions(
                {"ConfigurationToken": "encoder_main"}
            )
            offered = {(r.Width, r.Height) for r in options.H264.ResolutionsAvailable}
            assert (320, 180) in offered and (640, 360) in offered
            config = await media.GetVideoEncoderConfiguration(
                {"ConfigurationToken": "encoder_main"}
            )
            config.Resolution.Width, config.Resolution.Height = 320, 180
            config.RateControl.BitrateLimit = 400
            await media.SetVideoEncoderConfiguration(
                {"Configuration": config, "ForcePersistence": True}
            )
            profile = await media.CreateProfile({"Name": "SynoProfile"})
            await media.AddVideoEncoderConfiguration(
                {"ProfileToken": profile.token, "ConfigurationToken": "encoder_main"}
            )
        finally:
            await cam.close()

    async def read_back() -> tuple[int, int, list[str]]:
        cam = ONVIFCamera("127.0.0.1", http, "admin", ADMIN_PW, WSDL_DIR)
        try:
            await cam.update_xaddrs()
            media = await cam.create_media_service()
            profiles = await media.GetProfiles()
            main = next(p for p in profiles if p.token == "profile_main")
            res = main.VideoEncoderConfiguration.Resolution
            return res.Width, res.Height, [p.Name for p in profiles]
        finally:
            await cam.close()

    vcam = VcamProcess(tmp_path, config, ADMIN_PW)
    try:
        vcam.wait_for("ONVIF: http://")
        assert ffprobe_size(url) == "640,360"
        asyncio.run(change())
        assert ffprobe_size(url) == "320,180"  # the encoder reopened at the new size
    finally:
        vcam.stop()
    again = VcamProcess(tmp_path, config, ADMIN_PW)
    try:
        again.wait_for("ONVIF: http://")
        width, height, names = asyncio.run(read_back())
        assert (width, height) == (320, 180)
        assert "SynoProfile" in names
        assert ffprobe_size(url) == "320,180"  # kept: the camera starts with it
    finally:
        again.stop()


def test_factory_default_resets_encoders_profiles_and_masks() -> None:
    model = fresh()
    create(model, "made")
    ok(model, set_encoder("encoder_sub"))
    assert model.media.settings != model.media.defaults
    ok(model, "<tds:SetSystemFactoryDefault><tds:FactoryDefault>Soft</tds:FactoryDefault>"
       "</tds:SetSystemFactoryDefault>")  # fmt: skip
    assert dataclasses.replace(model.media.settings, revision=0) == model.media.defaults
