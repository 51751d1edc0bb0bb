"""Media2 (ver20): every answer valid against the Media2 WSDL, the semantics and faults of the
profile, configuration and mask operations on the one media settings store, and end to end:
plain zeep (with the Media2 WSDL) against a real `vcam serve` creates a privacy mask that PyAV
then sees in the decoded RTSP frames, deletes it again, and resizes the sub stream (ffprobe)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from lxml import etree

from vcam.config import Config, OutputConfig
from vcam.media_settings import (
    MAX_MASKS,
    MAX_PROFILES,
    MaskSettings,
    MediaSettingsStore,
    ProfileSettings,
)
from vcam.onvif.faults import SoapFault
from vcam.onvif.media2 import RGB, register_media2, to_store_point
from vcam.onvif.model import DeviceModel
from vcam.onvif.service import OnvifDispatcher
from vcam.onvif.soap import NS, NSMAP, AccessClass, Dispatcher
from vcam.onvif.stack import build_dispatcher

from .onvif_model import media_for
from .test_onvif_services import MAIN_CFG, SUB_CFG, call, env, make_model
from .vcam_process import VcamProcess, free_port, loopback_config
from .zeep_client import onvif_client

TR2 = NSMAP["tr2"]
VSC = "video_source_config"
LEFT_THIRD = "".join(  # x -1..-1/3, the whole height: ONVIF coordinates, y up
    f'<tt:Point x="{x}" y="{y}"/>'
    for x, y in (("-1", "1"), ("-0.3333333", "1"), ("-0.3333333", "-1"), ("-1", "-1"))
)


def mask_xml(
    polygon: str = LEFT_THIRD, kind: str = "Color", color: str = "", token: str = ""
) -> str:
    color = color or f'<tr2:Color X="255" Y="0" Z="255" Colorspace="{RGB}"/>'
    attr = f' token="{token}"' if token else ""
    return (
        f"<tr2:Mask{attr}><tr2:ConfigurationToken>{VSC}</tr2:ConfigurationToken>"
        f"<tr2:Polygon>{polygon}</tr2:Polygon><tr2:Type>{kind}</tr2:Type>{color}"
        "<tr2:Enabled>true</tr2:Enabled></tr2:Mask>"
    )


ENCODER_SUB_320 = (
    '<tr2:Configuration token="encoder_sub" GovLength="20" Profile="High">'
    "<tt:Name>sub</tt:Name><tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding>"
    "<tt:Resolution><tt:Width>320</tt:Width><tt:Height>180</tt:Height></tt:Resolution>"
    "<tt:RateControl><tt:FrameRateLimit>10</tt:FrameRateLimit>"
    "<tt:BitrateLimit>400</tt:BitrateLimit></tt:RateControl>"
    "<tt:Quality>5</tt:Quality></tr2:Configuration>"
)

# One well-formed request per registered Media2 operation (a test insists on that).
MEDIA2_REQUESTS: dict[str, str] = {
    "tr2:GetServiceCapabilities": "<tr2:GetServiceCapabilities/>",
    "tr2:GetProfiles": "<tr2:GetProfiles><tr2:Type>All</tr2:Type></tr2:GetProfiles>",
    "tr2:CreateProfile": "<tr2:CreateProfile><tr2:Name>vms</tr2:Name><tr2:Configuration>"
    f"<tr2:Type>VideoSource</tr2:Type><tr2:Token>{VSC}</tr2:Token></tr2:Configuration>"
    "</tr2:CreateProfile>",
    "tr2:DeleteProfile": "<tr2:DeleteProfile><tr2:Token>profile_extra</tr2:Token>"
    "</tr2:DeleteProfile>",
    "tr2:AddConfiguration": "<tr2:AddConfiguration><tr2:ProfileToken>profile_extra"
    "</tr2:ProfileToken><tr2:Configuration><tr2:Type>VideoSource</tr2:Type>"
    f"<tr2:Token>{VSC}</tr2:Token></tr2:Configuration><tr2:Configuration>"
    "<tr2:Type>VideoEncoder</tr2:Type><tr2:Token>encoder_sub</tr2:Token></tr2:Configuration>"
    "</tr2:AddConfiguration>",
    "tr2:RemoveConfiguration": "<tr2:RemoveConfiguration><tr2:ProfileToken>profile_sub"
    "</tr2:ProfileToken><tr2:Configuration><tr2:Type>Metadata</tr2:Type></tr2:Configuration>"
    "</tr2:RemoveConfiguration>",
    "tr2:GetVideoSourceConfigurations": "<tr2:GetVideoSourceConfigurations/>",
    "tr2:SetVideoSourceConfiguration": "<tr2:SetVideoSourceConfiguration>"
    f'<tr2:Configuration token="{VSC}"><tt:Name>VideoSourceConfig</tt:Name>'
    "<tt:UseCount>2</tt:UseCount><tt:SourceToken>video_source</tt:SourceToken>"
    '<tt:Bounds x="0" y="0" width="1280" height="720"/></tr2:Configuration>'
    "</tr2:SetVideoSourceConfiguration>",
    "tr2:GetVideoSourceConfigurationOptions": "<tr2:GetVideoSourceConfigurationOptions>"
    f"<tr2:ConfigurationToken>{VSC}</tr2:ConfigurationToken>"
    "</tr2:GetVideoSourceConfigurationOptions>",
    "tr2:GetVideoEncoderConfigurations": "<tr2:GetVideoEncoderConfigurations>"
    "<tr2:ProfileToken>profile_main</tr2:ProfileToken></tr2:GetVideoEncoderConfigurations>",
    "tr2:SetVideoEncoderConfiguration": "<tr2:SetVideoEncoderConfiguration>"
    f"{ENCODER_SUB_320}</tr2:SetVideoEncoderConfiguration>",
    "tr2:GetVideoEncoderConfigurationOptions": "<tr2:GetVideoEncoderConfigurationOptions>"
    "<tr2:ConfigurationToken>encoder_sub</tr2:ConfigurationToken>"
    "</tr2:GetVideoEncoderConfigurationOptions>",
    "tr2:GetVideoEncoderInstances": "<tr2:GetVideoEncoderInstances><tr2:ConfigurationToken>"
    f"{VSC}</tr2:ConfigurationToken></tr2:GetVideoEncoderInstances>",
    "tr2:GetMetadataConfigurations": "<tr2:GetMetadataConfigurations/>",
    "tr2:SetMetadataConfiguration": "<tr2:SetMetadataConfiguration>"
    '<tr2:Configuration token="metadata_config"><tt:Name>Metadata</tt:Name>'
    "<tt:UseCount>2</tt:UseCount><tt:Analytics>true</tt:Analytics>"
    "<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>239.255.42.42"
    "</tt:IPv4Address></tt:Address><tt:Port>15002</tt:Port><tt:TTL>1</tt:TTL>"
    "<tt:AutoStart>false</tt:AutoStart></tt:Multicast><tt:SessionTimeout>PT1M"
    "</tt:SessionTimeout></tr2:Configuration></tr2:SetMetadataConfiguration>",
    "tr2:GetMetadataConfigurationOptions": "<tr2:GetMetadataConfigurationOptions/>",
    "tr2:GetStreamUri": "<tr2:GetStreamUri><tr2:Protocol>RtspUnicast</tr2:Protocol>"
    "<tr2:ProfileToken>profile_main</tr2:ProfileToken></tr2:GetStreamUri>",
    "tr2:GetSnapshotUri": "<tr2:GetSnapshotUri><tr2:ProfileToken>profile_sub</tr2:ProfileToken>"
    "</tr2:GetSnapshotUri>",
    "tr2:GetMaskOptions": "<tr2:GetMaskOptions><tr2:ConfigurationToken>"
    f"{VSC}</tr2:ConfigurationToken></tr2:GetMaskOptions>",
    "tr2:GetMasks": "<tr2:GetMasks/>",
    "tr2:CreateMask": f"<tr2:CreateMask>{mask_xml()}</tr2:CreateMask>",
    "tr2:SetMask": f"<tr2:SetMask>{mask_xml(kind='Blurred', token='mask_1')}</tr2:SetMask>",
    "tr2:DeleteMask": "<tr2:DeleteMask><tr2:Token>mask_1</tr2:Token></tr2:DeleteMask>",
}


@pytest.fixture(scope="module")
def dispatcher() -> OnvifDispatcher:
    d: OnvifDispatcher = Dispatcher()
    register_media2(d)
    return d


def fresh_model() -> DeviceModel:
    """Main 1280x720 (the source), sub 640x360, a mask (mask_1) and a client profile
    (profile_extra) for the sample requests to act on; changes stay in one test."""
    media = media_for(MAIN_CFG, SUB_CFG)
    media.change(
        lambda s: replace(
            s,
            profiles=(*s.profiles, ProfileSettings("profile_extra", "extra")),
            masks=(MaskSettings("mask_1", ((0, 0), (0.5, 0), (0.5, 1))),),
        )
    )
    return make_model(media=media)


def tr2_call(dispatcher: OnvifDispatcher, body: str, model: DeviceModel) -> etree._Element:
    return call(dispatcher, env(body), model=model)


def tr2_fault(dispatcher: OnvifDispatcher, body: str, model: DeviceModel) -> list[str]:
    with pytest.raises(SoapFault) as info:
        call(dispatcher, env(body), model=model)
    return [info.value.code, *info.value.subcodes]


def clark(prefixed: str) -> str:
    prefix, local = prefixed.split(":")
    return f"{{{NSMAP[prefix]}}}{local}"


# -- every operation, every answer schema-valid -------------------------------------------------


def test_every_registered_operation_has_a_sample(dispatcher: OnvifDispatcher) -> None:
    assert {op.qname for op in dispatcher.operations()} == {clark(k) for k in MEDIA2_REQUESTS}
    everything = {op.qname for op in build_dispatcher().operations()}
    assert {clark(k) for k in MEDIA2_REQUESTS} <= everything  # `vcam serve` has them


@pytest.mark.parametrize("name", sorted(MEDIA2_REQUESTS))
def test_every_sample_answer_is_schema_valid(dispatcher: OnvifDispatcher, name: str) -> None:
    tr2_call(dispatcher, MEDIA2_REQUESTS[name], fresh_model())


def test_access_classes(dispatcher: OnvifDispatcher) -> None:
    access = {etree.QName(op.qname).localname: op.access for op in dispatcher.operations()}
    changes = {n for n, a in access.items() if a is AccessClass.ACTUATE}
    assert changes == {
        "CreateProfile", "DeleteProfile", "AddConfiguration", "RemoveConfiguration",
        "SetVideoSourceConfiguration", "SetVideoEncoderConfiguration",
        "SetMetadataConfiguration", "CreateMask", "SetMask", "DeleteMask",
    }  # fmt: skip
    assert access.pop("GetServiceCapabilities") is AccessClass.PRE_AUTH
    assert {a for n, a in access.items() if n not in changes} == {AccessClass.READ_MEDIA}


@pytest.mark.parametrize("name", sorted(MEDIA2_REQUESTS))
def test_bare_requests_fault_or_answer_never_crash(dispatcher: OnvifDispatcher, name: str) -> None:
    model = fresh_model()
    try:
        tr2_call(dispatcher, f"<{name}/>", model)
    except SoapFault as fault:
        assert fault.subcodes, fault  # a proper ONVIF subcode, not a bare failure


def test_capabilities(dispatcher: OnvifDispatcher) -> None:
    answer = tr2_call(dispatcher, "<tr2:GetServiceCapabilities/>", make_model())
    caps = answer.find("tr2:Capabilities", NS)
    assert caps is not None
    assert {k: caps.get(k) for k in ("SnapshotUri", "Mask", "Rotation", "OSD")} == {
        "SnapshotUri": "true", "Mask": "true", "Rotation": "false", "OSD": "false",
    }  # fmt: skip
    profiles = caps.find("tr2:ProfileCapabilities", NS)
    assert profiles is not None
    assert profiles.get("MaximumNumberOfProfiles") == str(MAX_PROFILES)
    assert profiles.get("ConfigurationsSupported") == "VideoSource VideoEncoder Metadata"
    streaming = caps.find("tr2:StreamingCapabilities", NS)
    assert streaming is not None and streaming.get("RTSPStreaming") == "true"
    assert streaming.get("RTSPWebSocketUri") is None  # no WebSocket tunnel


# -- profiles -----------------------------------------------------------------------------------


def configuration_kinds(answer: etree._Element) -> dict[str | None, list[str] | None]:
    out: dict[str | None, list[str] | None] = {}
    for prof in answer.iterfind("tr2:Profiles", NS):
        sets = prof.find("tr2:Configurations", NS)
        out[prof.get("token")] = None if sets is None else [etree.QName(c).localname for c in sets]
    return out


def test_get_profiles_type_filter(dispatcher: OnvifDispatcher) -> None:
    model = make_model()
    bare = tr2_call(dispatcher, "<tr2:GetProfiles/>", model)
    assert configuration_kinds(bare) == {"profile_main": None, "profile_sub": None}
    full = tr2_call(dispatcher, MEDIA2_REQUESTS["tr2:GetProfiles"], model)
    both = ["VideoSource", "VideoEncoder", "Metadata"]
    assert configuration_kinds(full) == {"profile_main": both, "profile_sub": both}
    assert [p.get("fixed") for p in full.iterfind("tr2:Profiles", NS)] == ["true", "true"]
    encoders = tr2_call(
        dispatcher,
        "<tr2:GetProfiles><tr2:Token>profile_sub</tr2:Token><tr2:Type>VideoEncoder</tr2:Type>"
        "<tr2:Type>AudioEncoder</tr2:Type></tr2:GetProfiles>",
        model,
    )
    assert configuration_kinds(encoders) == {"profile_sub": ["VideoEncoder"]}
    enc = encoders.find("tr2:Profiles/tr2:Configurations/tr2:VideoEncoder", NS)
    assert enc is not None and enc.get("token") == "encoder_sub"
    assert (enc.get("GovLength"), enc.get("Profile")) == ("25", "Main")
    assert enc.findtext("tt:Encoding", namespaces=NS) == "H264"
    assert enc.findtext("tt:Resolution/tt:Width", namespaces=NS) == "640"
    assert enc.findtext("tt:RateControl/tt:FrameRateLimit", namespaces=NS) == "12.5"
    assert tr2_fault(
        dispatcher, "<tr2:GetProfiles><tr2:Token>nope</tr2:Token></tr2:GetProfiles>", model
    ) == ["Sender", "ter:InvalidArgVal", "ter:NoProfile"]


def test_create_add_remove_delete(dispatcher: OnvifDispatcher) -> None:
    model = make_model()
    created = tr2_call(
        dispatcher, "<tr2:CreateProfile><tr2:Name>vms</tr2:Name></tr2:CreateProfile>", model
    )
    token = created.findtext("tr2:Token", namespaces=NS)
    assert token and model.media.settings.profile(token) is not None
    listed = f"<tr2:GetProfiles><tr2:Token>{token}</tr2:Token><tr2:Type>All</tr2:Type>"
    assert configuration_kinds(tr2_call(dispatcher, listed + "</tr2:GetProfiles>", model)) == {
        token: []
    }
    stream_uri = (
        "<tr2:GetStreamUri><tr2:Protocol>RTSP</tr2:Protocol>"
        f"<tr2:ProfileToken>{token}</tr2:ProfileToken></tr2:GetStreamUri>"
    )
    assert tr2_fault(dispatcher, stream_uri, model) == [
        "Receiver", "ter:Action", "ter:IncompleteConfiguration",
    ]  # fmt: skip
    # An encoder without the video source it depends on is a conflict; both at once are fine.
    add = (
        f"<tr2:AddConfiguration><tr2:ProfileToken>{token}</tr2:ProfileToken>"
        "<tr2:Name>vms-sub</tr2:Name>{}</tr2:AddConfiguration>"
    )
    encoder = "<tr2:Configuration><tr2:Type>VideoEncoder</tr2:Type><tr2:Token>encoder_sub"
    encoder += "</tr2:Token></tr2:Configuration>"
    source = "<tr2:Configuration><tr2:Type>VideoSource</tr2:Type></tr2:Configuration>"
    assert tr2_fault(dispatcher, add.format(encoder), model) == [
        "Receiver", "ter:Action", "ter:ConfigurationConflict",
    ]  # fmt: skip
    tr2_call(dispatcher, add.format(source + encoder), model)
    prof = model.media.settings.profile(token)
    assert prof is not None and (prof.name, prof.video_source, prof.encoder, prof.metadata) == (
        "vms-sub", True, "encoder_sub", False,
    )  # fmt: skip
    uri = tr2_call(dispatcher, stream_uri, model).findtext("tr2:Uri", namespaces=NS)
    assert uri == "rtsp://192.168.1.20:8554/sub"
    # Faults: an unknown token, a type we have no configuration of, a type nobody has.
    bad_token = encoder.replace("encoder_sub", "encoder_nope")
    assert tr2_fault(dispatcher, add.format(bad_token), model)[-1] == "ter:NoConfig"
    audio = "<tr2:Configuration><tr2:Type>AudioSource</tr2:Type><tr2:Token>a</tr2:Token>"
    assert tr2_fault(dispatcher, add.format(audio + "</tr2:Configuration>"), model)[-1] == (
        "ter:NoConfig"
    )
    junk = "<tr2:Configuration><tr2:Type>Hologram</tr2:Type></tr2:Configuration>"
    assert tr2_fault(dispatcher, add.format(junk), model) == ["Sender", "ter:InvalidArgVal"]
    remove = (
        f"<tr2:RemoveConfiguration><tr2:ProfileToken>{token}</tr2:ProfileToken>"
        "{}</tr2:RemoveConfiguration>"
    )
    assert tr2_fault(dispatcher, remove.format(source), model)[-1] == "ter:ConfigurationConflict"
    everything = "<tr2:Configuration><tr2:Type>All</tr2:Type></tr2:Configuration>"
    tr2_call(dispatcher, remove.format(everything), model)
    prof = model.media.settings.profile(token)
    assert prof is not None and (prof.video_source, prof.encoder, prof.metadata) == (
        False, None, False,
    )  # fmt: skip
    tr2_call(
        dispatcher, f"<tr2:DeleteProfile><tr2:Token>{token}</tr2:Token></tr2:DeleteProfile>", model
    )
    assert model.media.settings.profile(token) is None
    gone = f"<tr2:DeleteProfile><tr2:Token>{token}</tr2:Token></tr2:DeleteProfile>"
    assert tr2_fault(dispatcher, gone, model)[-1] == "ter:NoProfile"


def test_fixed_profiles_cannot_be_deleted(dispatcher: OnvifDispatcher) -> None:
    model = make_model()
    body = "<tr2:DeleteProfile><tr2:Token>profile_main</tr2:Token></tr2:DeleteProfile>"
    assert tr2_fault(dispatcher, body, model) == [
        "Sender", "ter:Action", "ter:DeletionOfFixedProfile",
    ]  # fmt: skip
    assert model.media.settings.profile("profile_main") is not None


def test_profile_limit(dispatcher: OnvifDispatcher) -> None:
    model = make_model()
    tokens = set()
    for i in range(MAX_PROFILES - 2):  # two fixed ones already
        body = f"<tr2:CreateProfile><tr2:Name>p{i}</tr2:Name></tr2:CreateProfile>"
        tokens.add(tr2_call(dispatcher, body, model).findtext("tr2:Token", namespaces=NS))
    assert len(tokens) == MAX_PROFILES - 2 and len(model.media.settings.profiles) == MAX_PROFILES
    body = "<tr2:CreateProfile><tr2:Name>one-more</tr2:Name></tr2:CreateProfile>"
    assert tr2_fault(dispatcher, body, model) == ["Receiver", "ter:Action", "ter:MaxNVTProfiles"]
    # A deleted profile's token is never handed out again.
    tr2_call(
        dispatcher,
        "<tr2:DeleteProfile><tr2:Token>user_profile_2</tr2:Token></tr2:DeleteProfile>",
        model,
    )
    again = tr2_call(dispatcher, body, model).findtext("tr2:Token", namespaces=NS)
    assert again == f"user_profile_{MAX_PROFILES - 1}"


def test_store_refusals_are_faults(dispatcher: OnvifDispatcher) -> None:
    model = make_model()
    long_name = "x" * 100  # MediaSettingsError in the store: a ConfigModify fault, not a 500
    body = f"<tr2:CreateProfile><tr2:Name>{long_name}</tr2:Name></tr2:CreateProfile>"
    assert tr2_fault(dispatcher, body, model) == ["Sender", "ter:InvalidArgVal", "ter:ConfigModify"]
    too_fast = ENCODER_SUB_320.replace("<tt:BitrateLimit>400", "<tt:BitrateLimit>999999")
    body = f"<tr2:SetVideoEncoderConfiguration>{too_fast}</tr2:SetVideoEncoderConfiguration>"
    assert tr2_fault(dispatcher, body, model)[-1] == "ter:ConfigModify"
    assert len(model.media.settings.profiles) == 2 and model.media.settings.revision == 0


# -- configurations -----------------------------------------------------------------------------


def test_set_video_encoder_configuration_changes_the_store(dispatcher: OnvifDispatcher) -> None:
    model = make_model()
    tr2_call(dispatcher, MEDIA2_REQUESTS["tr2:SetVideoEncoderConfiguration"], model)
    enc = model.media.settings.encoder("encoder_sub")
    assert enc is not None
    assert (enc.width, enc.height, enc.fps, enc.bitrate_kbps, enc.gop, enc.profile) == (
        320, 180, 10.0, 400, 20, "high",
    )  # fmt: skip
    assert [(s.name, s.width, s.height) for s in model.streams][1] == ("sub", 320, 180)
    got = tr2_call(
        dispatcher,
        "<tr2:GetVideoEncoderConfigurations><tr2:ConfigurationToken>encoder_sub"
        "</tr2:ConfigurationToken></tr2:GetVideoEncoderConfigurations>",
        model,
    )
    (config,) = got.iterfind("tr2:Configurations", NS)
    assert config.findtext("tt:Resolution/tt:Height", namespaces=NS) == "180"
    assert (config.get("GovLength"), config.get("Profile")) == ("20", "High")
    # The source size again: stored as "follow the source" (0x0).
    full = ENCODER_SUB_320.replace("<tt:Width>320", "<tt:Width>1280").replace(
        "<tt:Height>180", "<tt:Height>720"
    )
    tr2_call(
        dispatcher,
        f"<tr2:SetVideoEncoderConfiguration>{full}</tr2:SetVideoEncoderConfiguration>",
        model,
    )
    enc = model.media.settings.encoder("encoder_sub")
    assert enc is not None and (enc.width, enc.height) == (0, 0)


@pytest.mark.parametrize(
    ("old", "new", "subcode"),
    [
        ("<tt:Width>320", "<tt:Width>500", "ter:ConfigModify"),  # not offered (not 16:9)
        ("<tt:Width>320</tt:Width><tt:Height>180", "<tt:Width>2560</tt:Width><tt:Height>1440",
         "ter:ConfigModify"),  # no upscaling
        ("<tt:Encoding>H264", "<tt:Encoding>JPEG", "ter:ConfigModify"),
        ('Profile="High"', 'Profile="Extended"', "ter:ConfigModify"),
        ("<tt:FrameRateLimit>10", "<tt:FrameRateLimit>0", "ter:ConfigModify"),
        ('token="encoder_sub"', 'token="encoder_x"', "ter:NoConfig"),
        ("<tt:BitrateLimit>400", "<tt:BitrateLimit>lots", None),
    ],
)  # fmt: skip
def test_set_video_encoder_refusals(
    dispatcher: OnvifDispatcher, old: str, new: str, subcode: str | None
) -> None:
    model = make_model()
    config = ENCODER_SUB_320.replace(old, new)
    assert config != ENCODER_SUB_320
    body = f"<tr2:SetVideoEncoderConfiguration>{config}</tr2:SetVideoEncoderConfiguration>"
    codes = tr2_fault(dispatcher, body, model)
    assert codes[:2] == ["Sender", "ter:InvalidArgVal"] and (
        subcode is None or codes[-1] == subcode
    )
    assert model.media.settings.revision == 0  # nothing changed


def echo(answer: etree._Element, operation: str) -> str:
    """The first Configurations element of a Get answer, sent back as a Set request."""
    config = answer.find("tr2:Configurations", NS)
    assert config is not None
    config.tag = f"{{{TR2}}}Configuration"
    inner = etree.tostring(config).decode()
    return f"<tr2:{operation}>{inner}</tr2:{operation}>"


def test_what_get_returns_set_accepts_unchanged(dispatcher: OnvifDispatcher) -> None:
    model = make_model()
    before = model.media.settings
    for get, set_ in (
        ("GetVideoSourceConfigurations", "SetVideoSourceConfiguration"),
        ("GetVideoEncoderConfigurations", "SetVideoEncoderConfiguration"),
        ("GetMetadataConfigurations", "SetMetadataConfiguration"),
    ):
        answer = tr2_call(dispatcher, f"<tr2:{get}/>", model)
        tr2_call(dispatcher, echo(answer, set_), model)
    assert model.media.settings.encoders == before.encoders


def test_video_source_and_metadata_accept_only_what_we_do(dispatcher: OnvifDispatcher) -> None:
    model = make_model()
    vsc = MEDIA2_REQUESTS["tr2:SetVideoSourceConfiguration"]
    for old, new in (('width="1280"', 'width="640"'), ('x="0"', 'x="8"')):
        assert tr2_fault(dispatcher, vsc.replace(old, new), model)[-1] == "ter:ConfigModify"
    meta = MEDIA2_REQUESTS["tr2:SetMetadataConfiguration"]
    for old, new in (
        ("<tt:Analytics>true", "<tt:Analytics>false"),
        ("PT1M", "PT5M"),
        ("<tt:Port>15002", "<tt:Port>16000"),
        ('token="metadata_config"', 'token="metadata_config" CompressionType="GZIP"'),
    ):
        assert tr2_fault(dispatcher, meta.replace(old, new), model)[-1] == "ter:ConfigModify"
    other = meta.replace('token="metadata_config"', 'token="meta2"')
    assert tr2_fault(dispatcher, other, model)[-1] == "ter:NoConfig"


def test_encoder_options_are_streamable(dispatcher: OnvifDispatcher) -> None:
    answer = tr2_call(
        dispatcher, MEDIA2_REQUESTS["tr2:GetVideoEncoderConfigurationOptions"], make_model()
    )
    (options,) = answer.iterfind("tr2:Options", NS)
    sizes = [
        (
            int(r.findtext("tt:Width", namespaces=NS) or 0),
            int(r.findtext("tt:Height", namespaces=NS) or 0),
        )
        for r in options.iterfind("tt:ResolutionsAvailable", NS)
    ]
    assert sizes[0] == (1280, 720) and {(640, 360), (320, 180)} <= set(sizes)
    for w, h in sizes:
        assert w * 720 == h * 1280 and w % 2 == 0 and h % 2 == 0 and h >= 16 and w <= 1280
    rates = [float(r) for r in (options.get("FrameRatesSupported") or "").split()]
    assert rates[0] == 25.0 and all(r <= 25.0 for r in rates)
    assert options.get("ProfilesSupported") == "Baseline Main High"
    assert options.get("GovLengthRange") == "1 600"
    assert options.findtext("tt:Encoding", namespaces=NS) == "H264"


def test_encoder_instances_and_source_options(dispatcher: OnvifDispatcher) -> None:
    model = make_model()
    info = tr2_call(dispatcher, MEDIA2_REQUESTS["tr2:GetVideoEncoderInstances"], model)
    assert info.findtext("tr2:Info/tr2:Total", namespaces=NS) == "2"
    assert info.findtext("tr2:Info/tr2:Codec/tr2:Encoding", namespaces=NS) == "H264"
    opts = tr2_call(dispatcher, MEDIA2_REQUESTS["tr2:GetVideoSourceConfigurationOptions"], model)
    assert opts.findtext("tr2:Options/tt:BoundsRange/tt:WidthRange/tt:Max", namespaces=NS) == "1280"
    bad = "<tr2:GetVideoEncoderInstances><tr2:ConfigurationToken>x</tr2:ConfigurationToken>"
    assert (
        tr2_fault(dispatcher, bad + "</tr2:GetVideoEncoderInstances>", model)[-1] == "ter:NoConfig"
    )


@pytest.mark.parametrize(
    ("protocol", "uri"),
    [
        ("RtspUnicast", "rtsp://192.168.1.20:8554/main"),
        ("RtspMulticast", "rtsp://192.168.1.20:8554/main"),
        ("RTSP", "rtsp://192.168.1.20:8554/main"),
        ("RtspOverHttp", "http://192.168.1.20:8080/main"),
    ],
)
def test_stream_uri(dispatcher: OnvifDispatcher, protocol: str, uri: str) -> None:
    body = MEDIA2_REQUESTS["tr2:GetStreamUri"].replace("RtspUnicast", protocol)
    answer = tr2_call(dispatcher, body, make_model())
    assert answer.findtext("tr2:Uri", namespaces=NS) == uri


def test_stream_and_snapshot_uri_faults(dispatcher: OnvifDispatcher) -> None:
    model = make_model()
    body = MEDIA2_REQUESTS["tr2:GetStreamUri"].replace("RtspUnicast", "RtspsUnicast")
    assert tr2_fault(dispatcher, body, model) == [
        "Sender", "ter:InvalidArgVal", "ter:InvalidStreamSetup",
    ]  # fmt: skip
    snap = MEDIA2_REQUESTS["tr2:GetSnapshotUri"]
    answer = tr2_call(dispatcher, snap, model)
    assert answer.findtext("tr2:Uri", namespaces=NS) == "http://192.168.1.20:8080/snapshot/sub.jpg"
    assert tr2_fault(dispatcher, snap.replace("profile_sub", "nope"), model)[-1] == "ter:NoProfile"


# -- masks --------------------------------------------------------------------------------------


def points(answer: etree._Element) -> list[tuple[str | None, str | None]]:
    return [(p.get("x"), p.get("y")) for p in answer.iterfind(".//tr2:Polygon/tt:Point", NS)]


def test_mask_round_trip_with_coordinate_conversion(dispatcher: OnvifDispatcher) -> None:
    model = make_model()
    options = tr2_call(dispatcher, MEDIA2_REQUESTS["tr2:GetMaskOptions"], model)
    assert options.findtext("tr2:Options/tr2:MaxMasks", namespaces=NS) == str(MAX_MASKS)
    types = [t.text for t in options.iterfind("tr2:Options/tr2:Types", NS)]
    assert types == ["Color", "Pixelated", "Blurred"]
    opts = options.find("tr2:Options", NS)
    assert opts is not None and opts.get("RectangleOnly") == "false"
    created = tr2_call(dispatcher, MEDIA2_REQUESTS["tr2:CreateMask"], model)
    token = created.findtext("tr2:Token", namespaces=NS)
    assert token == "mask_1"
    (mask,) = model.media.settings.masks
    # -1..1 y up -> 0..1 y down: the top-left corner is (0, 0), the left third ends at 1/3.
    assert mask.polygon[0] == (0.0, 0.0) and mask.polygon[2][1] == 1.0
    assert mask.polygon[1][0] == pytest.approx(1 / 3, abs=1e-7)
    assert (mask.kind, mask.color, mask.enabled) == ("Color", (255, 0, 255), True)
    listed = tr2_call(
        dispatcher, "<tr2:GetMasks><tr2:Token>mask_1</tr2:Token></tr2:GetMasks>", model
    )
    assert points(listed) == [("-1", "1"), ("-0.3333333", "1"), ("-0.3333333", "-1"), ("-1", "-1")]
    assert listed.findtext("tr2:Masks/tr2:Type", namespaces=NS) == "Color"
    color = listed.find("tr2:Masks/tr2:Color", NS)
    assert color is not None and (color.get("X"), color.get("Z"), color.get("Colorspace")) == (
        "255", "255", RGB,
    )  # fmt: skip
    # SetMask: a triangle, pixelated, y up really is up.
    triangle = '<tt:Point x="0" y="1"/><tt:Point x="0.5" y="0"/><tt:Point x="-0.25" y="-0.75"/>'
    body = f"<tr2:SetMask>{mask_xml(triangle, 'Pixelated', token='mask_1')}</tr2:SetMask>"
    tr2_call(dispatcher, body, model)
    (mask,) = model.media.settings.masks
    assert mask.kind == "Pixelated"
    assert mask.polygon == (
        to_store_point(0, 1),
        to_store_point(0.5, 0),
        to_store_point(-0.25, -0.75),
    )
    assert mask.polygon == ((0.5, 0.0), (0.75, 0.5), (0.375, 0.875))
    listed = tr2_call(dispatcher, "<tr2:GetMasks/>", model)
    assert points(listed) == [("0", "1"), ("0.5", "0"), ("-0.25", "-0.75")]
    by_config = (
        f"<tr2:GetMasks><tr2:ConfigurationToken>{VSC}</tr2:ConfigurationToken></tr2:GetMasks>"
    )
    assert len(tr2_call(dispatcher, by_config, model)) == 1
    tr2_call(dispatcher, MEDIA2_REQUESTS["tr2:DeleteMask"], model)
    assert model.media.settings.masks == ()
    assert len(tr2_call(dispatcher, "<tr2:GetMasks/>", model)) == 0
    assert tr2_fault(dispatcher, MEDIA2_REQUESTS["tr2:DeleteMask"], model)[-1] == "ter:NoConfig"


def test_mask_colours(dispatcher: OnvifDispatcher) -> None:
    model = make_model()
    grey = '<tr2:Color X="128" Y="128" Z="128"/>'  # no Colorspace: YCbCr, i.e. mid grey
    tr2_call(dispatcher, f"<tr2:CreateMask>{mask_xml(color=grey)}</tr2:CreateMask>", model)
    red = '<tr2:Color X="76" Y="85" Z="255" Colorspace="http://www.onvif.org/ver10/colorspace/YCbCr"/>'
    tr2_call(dispatcher, f"<tr2:CreateMask>{mask_xml(color=red)}</tr2:CreateMask>", model)
    assert [m.color for m in model.media.settings.masks] == [(128, 128, 128), (254, 0, 0)]
    hsv = '<tr2:Color X="1" Y="1" Z="1" Colorspace="http://www.onvif.org/ver10/colorspace/HSV"/>'
    body = f"<tr2:CreateMask>{mask_xml(color=hsv)}</tr2:CreateMask>"
    assert tr2_fault(dispatcher, body, model)[-1] == "ter:ConfigModify"


@pytest.mark.parametrize(
    "polygon",
    [
        '<tt:Point x="0" y="0"/><tt:Point x="1" y="1"/>',  # 2 points
        '<tt:Point x="0" y="0"/><tt:Point x="1.5" y="1"/><tt:Point x="0" y="1"/>',  # outside
        '<tt:Point x="0" y="0"/><tt:Point x="NaN" y="1"/><tt:Point x="0" y="1"/>',
        "".join(f'<tt:Point x="{i / 20}" y="0"/>' for i in range(17)),  # more than MaxPoints
    ],
)
def test_invalid_polygons(dispatcher: OnvifDispatcher, polygon: str) -> None:
    model = make_model()
    body = f"<tr2:CreateMask>{mask_xml(polygon)}</tr2:CreateMask>"
    assert tr2_fault(dispatcher, body, model) == [
        "Receiver", "ter:InvalidArgVal", "ter:InvalidPolygon",
    ]  # fmt: skip
    assert model.media.settings.masks == ()


def test_mask_faults(dispatcher: OnvifDispatcher) -> None:
    model = make_model()
    for _ in range(MAX_MASKS):
        tr2_call(dispatcher, MEDIA2_REQUESTS["tr2:CreateMask"], model)
    assert tr2_fault(dispatcher, MEDIA2_REQUESTS["tr2:CreateMask"], model) == [
        "Receiver", "ter:Action", "ter:MaxMasks",
    ]  # fmt: skip
    wrong_config = MEDIA2_REQUESTS["tr2:CreateMask"].replace(VSC, "other_config")
    tr2_call(dispatcher, MEDIA2_REQUESTS["tr2:DeleteMask"], model)
    assert tr2_fault(dispatcher, wrong_config, model)[-1] == "ter:NoConfig"
    unknown = MEDIA2_REQUESTS["tr2:SetMask"].replace("mask_1", "mask_99")
    assert tr2_fault(dispatcher, unknown, model)[-1] == "ter:NoConfig"
    gone = "<tr2:GetMasks><tr2:Token>mask_1</tr2:Token></tr2:GetMasks>"
    assert tr2_fault(dispatcher, gone, model)[-1] == "ter:NoConfig"
    kind = (
        MEDIA2_REQUESTS["tr2:SetMask"].replace("Blurred", "Scrambled").replace("mask_1", "mask_2")
    )
    assert tr2_fault(dispatcher, kind, model)[-1] == "ter:ConfigModify"
    # A new mask never reuses a deleted mask's token.
    created = tr2_call(dispatcher, MEDIA2_REQUESTS["tr2:CreateMask"], model)
    assert created.findtext("tr2:Token", namespaces=NS) == f"mask_{MAX_MASKS + 1}"


def test_masks_and_profiles_persist(dispatcher: OnvifDispatcher, tmp_path: Path) -> None:
    cfg = Config(output=OutputConfig(streams=(MAIN_CFG, SUB_CFG)))
    path = tmp_path / "media.json"
    model = make_model(media=MediaSettingsStore.load(path, cfg))
    tr2_call(dispatcher, MEDIA2_REQUESTS["tr2:CreateMask"], model)
    body = (
        "<tr2:CreateProfile><tr2:Name>kept</tr2:Name><tr2:Configuration><tr2:Type>VideoSource"
        f"</tr2:Type><tr2:Token>{VSC}</tr2:Token></tr2:Configuration><tr2:Configuration>"
        "<tr2:Type>VideoEncoder</tr2:Type><tr2:Token>encoder_sub</tr2:Token>"
        "</tr2:Configuration></tr2:CreateProfile>"
    )
    token = tr2_call(dispatcher, body, model).findtext("tr2:Token", namespaces=NS)
    tr2_call(dispatcher, MEDIA2_REQUESTS["tr2:SetVideoEncoderConfiguration"], model)
    assert json.loads(path.read_text())["masks"]
    again = MediaSettingsStore.load(path, cfg).settings
    assert again.masks == model.media.settings.masks and len(again.masks) == 1
    assert again.profile(token or "") == model.media.settings.profile(token or "")
    assert again.encoder("encoder_sub") == model.media.settings.encoder("encoder_sub")
    # The reloaded masks still read back as the same ONVIF polygon.
    listed = tr2_call(
        dispatcher, "<tr2:GetMasks/>", make_model(media=MediaSettingsStore.load(path, cfg))
    )
    assert points(listed)[1] == ("-0.3333333", "1")


# -- end to end: zeep (Media2 WSDL) against a real `vcam serve`, PyAV and ffprobe ---------------

USER, PASSWORD = "admin", "media2-test-pw"
SIZE, FPS = (640, 360), 10.0
MAGENTA = (255, 0, 255)


class Camera:
    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = ports

    def rtsp(self, uri: str) -> str:
        """The URI GetStreamUri gave, with credentials for PyAV and ffprobe."""
        assert uri.startswith("rtsp://127.0.0.1:"), uri
        return uri.replace("rtsp://", f"rtsp://{USER}:{PASSWORD}@", 1)


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Camera]:
    tmp = tmp_path_factory.mktemp("media2")
    ports = {"rtsp": free_port(), "http": free_port()}
    config = loopback_config(
        width=SIZE[0], height=SIZE[1], fps=FPS, rtsp_port=ports["rtsp"], http_port=ports["http"],
        tail="""
[[output.streams]]
name = "main"
bitrate_kbps = 1500
[[output.streams]]
name = "sub"
width = 480
height = 270
bitrate_kbps = 300
""",
    )  # fmt: skip
    vcam = VcamProcess(tmp, config, PASSWORD)
    vcam.wait_for("ONVIF: http://")
    try:
        yield Camera(ports)
    finally:
        vcam.stop()


def media2_client(port: int) -> Any:
    """Plain zeep on the Media2 WSDL in wsdl/, WS-Security UsernameToken with digest. The
    schemas onvif.xsd imports by URL come from wsdl/external (and stand-ins for three W3C
    ones): the test machine has no network."""
    client = onvif_client("ver20/media/wsdl/media.wsdl", USER, PASSWORD)
    return client.create_service(
        "{http://www.onvif.org/ver20/media/wsdl}Media2Binding",
        f"http://127.0.0.1:{port}/onvif/media2_service",
    )


def decoded_frames(url: str, count: int) -> list[np.ndarray]:
    """`count` frames (RGB) decoded over RTSP/TCP, the first second skipped: frames encoded
    before a change may still be in flight."""
    frames = []
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=20) as c:
        for index, frame in enumerate(c.decode(video=0)):
            if index >= FPS:
                frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


def masked_left_third(rgb: np.ndarray) -> bool:
    """The left third (away from its edge: chroma is shared by 2x2 pixels and blocks blend) is
    uniformly magenta."""
    h, w, _ = rgb.shape
    area = rgb[4 : h - 4, 4 : w // 3 - 8].reshape(-1, 3).astype(np.float64)
    return bool(np.all(np.abs(area.mean(0) - MAGENTA) < 20) and np.all(area.std(0) < 8))


def flat_left_third(rgb: np.ndarray) -> bool:
    h, w, _ = rgb.shape
    return bool(np.all(rgb[4 : h - 4, 4 : w // 3 - 8].reshape(-1, 3).std(0) < 8))


def magenta_share(rgb: np.ndarray) -> float:
    near = np.abs(rgb.astype(np.int16) - np.array(MAGENTA)).max(axis=2) < 40
    return float(near.mean())


def ffprobe_size(url: str) -> tuple[int, int]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v:0",
         "-show_entries", "stream=width,height", "-of", "csv=p=0", url],
        capture_output=True, text=True, timeout=40,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    width, height = out.stdout.strip().split(",")[:2]
    return int(width), int(height)


def test_zeep_profiles_stream_uri_and_playback(camera: Camera) -> None:
    media2 = media2_client(camera.ports["http"])
    profiles = media2.GetProfiles(Type=["All"])
    assert [p.token for p in profiles] == ["profile_main", "profile_sub"]
    main = profiles[0].Configurations.VideoEncoder
    assert (main.Encoding, main.Resolution.Width, main.Resolution.Height) == ("H264", *SIZE)
    assert profiles[1].Configurations.VideoEncoder.Resolution.Width == 480
    uri = media2.GetStreamUri(Protocol="RTSP", ProfileToken="profile_main")
    assert uri == f"rtsp://127.0.0.1:{camera.ports['rtsp']}/main"
    assert ffprobe_size(camera.rtsp(uri)) == SIZE
    caps = media2.GetServiceCapabilities()
    assert caps.Mask is True and caps.ProfileCapabilities.MaximumNumberOfProfiles == MAX_PROFILES


def test_zeep_mask_shows_in_the_rtsp_frames_and_goes_again(camera: Camera) -> None:
    media2 = media2_client(camera.ports["http"])
    url = camera.rtsp(media2.GetStreamUri(Protocol="RtspUnicast", ProfileToken="profile_main"))
    before = decoded_frames(url, 3)
    assert not any(masked_left_third(f) for f in before)  # the check can fail
    corners = [(-1, 1), (-1 / 3, 1), (-1 / 3, -1), (-1, -1)]
    token = media2.CreateMask(
        Mask={
            "ConfigurationToken": VSC,
            "Polygon": {"Point": [{"x": x, "y": y} for x, y in corners]},
            "Type": "Color",
            "Color": {"X": MAGENTA[0], "Y": MAGENTA[1], "Z": MAGENTA[2], "Colorspace": RGB},
            "Enabled": True,
        }
    )
    try:
        listed = media2.GetMasks(Token=token)
        got = [c for p in listed[0].Polygon.Point for c in (p.x, p.y)]
        assert got == pytest.approx([c for xy in corners for c in xy], abs=1e-6)
        frames = decoded_frames(url, 8)
        # Every frame covers the left third: with the mask, or (a fail-closed frame, when the
        # detectors fall behind on a busy machine) with the whole picture flat.
        assert all(masked_left_third(f) or flat_left_third(f) for f in frames)
        assert sum(masked_left_third(f) for f in frames) >= 4
        # The rest of the picture is the scene, not the mask.
        w = frames[-1].shape[1]
        assert magenta_share(frames[-1][:, w // 3 + 8 :]) < 0.02
    finally:
        media2.DeleteMask(Token=token)
    assert media2.GetMasks() == []
    after = decoded_frames(url, 3)
    assert not any(masked_left_third(f) for f in after)


def test_zeep_resizes_the_sub_stream(camera: Camera) -> None:
    media2 = media2_client(camera.ports["http"])
    (config,) = media2.GetVideoEncoderConfigurations(ConfigurationToken="encoder_sub")
    config.Resolution.Width, config.Resolution.Height = 320, 180
    media2.SetVideoEncoderConfiguration(Configuration=config)  # what Get gave, resized
    (again,) = media2.GetVideoEncoderConfigurations(ConfigurationToken="encoder_sub")
    assert (again.Resolution.Width, again.Resolution.Height) == (320, 180)
    url = camera.rtsp(media2.GetStreamUri(Protocol="RTSP", ProfileToken="profile_sub"))
    deadline = time.monotonic() + 20  # the encoder reopens with the next frame
    size = ffprobe_size(url)
    while size != (320, 180) and time.monotonic() < deadline:
        time.sleep(0.5)
        size = ffprobe_size(url)
    assert size == (320, 180)
