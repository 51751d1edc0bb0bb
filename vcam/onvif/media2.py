"""The ONVIF Media2 service (ver20): profiles, configurations, stream URIs and privacy masks.

Everything it shows and changes lives in `model.media` (vcam/media_settings.py), the store the
running camera follows: SetVideoEncoderConfiguration reopens that stream's encoder, a mask made
with CreateMask is drawn on every output frame from the next one on. It renders the Media2
types itself (tr2:MediaProfile, tt:VideoEncoder2Configuration...), which differ from Media1's.

What we have, and nothing more: one video source configuration (the whole source), one H.264
encoder configuration per configured stream, one metadata configuration, up to MAX_PROFILES
profiles (the fixed ones included) and up to MAX_MASKS masks. Set* operations accept what the
camera really does and answer ter:ConfigModify for the rest, never a silent no-op.

Masks: ONVIF polygons are normalised -1..1 with y up (Media2 spec, "Privacy Masks"); the store
keeps 0..1 with y down, as `privacy.zones` draws them. The conversion is exact to the 7
significant digits of xs:float, both ways.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable

from lxml import etree

from vcam.media_settings import (
    BITRATE_RANGE,
    GOP_RANGE,
    MAX_MASK_POINTS,
    MAX_MASKS,
    MAX_PROFILES,
    EncoderChange,
    EncoderSettings,
    MaskKind,
    MaskSettings,
    MediaSettings,
    Point,
    ProfileSettings,
    available_sizes,
    next_token,
)
from vcam.onvif import faults
from vcam.onvif.faults import SoapFault
from vcam.onvif.media import change  # the store's refusals as faults, as Media does
from vcam.onvif.model import DeviceModel, StreamInfo
from vcam.onvif.service import Handler, OnvifDispatcher, OnvifRequest, arg_text, xs_bool
from vcam.onvif.soap import SERVICE_CAPABILITIES, TR2, TT, AccessClass, Element, qname

MEDIA2_VERSION = (26, 6)  # the ver20 media.wsdl served from wsdl/
QUALITY = 5.0  # the encoders run at a bitrate; Quality is informative and fixed
VIDEO_SOURCE, VIDEO_ENCODER, METADATA = "VideoSource", "VideoEncoder", "Metadata"
SUPPORTED_TYPES = (VIDEO_SOURCE, VIDEO_ENCODER, METADATA)  # ConfigurationSet order
# tr2:ConfigurationEnumeration: types a client may name; the ones we lack have no tokens.
_ENUMERATION = frozenset(
    {"All", *SUPPORTED_TYPES, "AudioSource", "AudioEncoder", "AudioOutput", "AudioDecoder"}
    | {"Analytics", "PTZ", "Receiver"}
)
_H264_PROFILES = {"baseline": "Baseline", "main": "Main", "high": "High"}
_MASK_KINDS: tuple[MaskKind, ...] = ("Color", "Pixelated", "Blurred")
RGB = "http://www.onvif.org/ver10/colorspace/RGB"
YCBCR = "http://www.onvif.org/ver10/colorspace/YCbCr"  # the default when none is given
_COMMON_RATES = (60.0, 50.0, 30.0, 25.0, 20.0, 15.0, 12.5, 10.0, 7.5, 5.0, 2.0, 1.0)
_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d*)?)S)?)?")


# -- faults -----------------------------------------------------------------------------------


def _no_profile(token: str) -> SoapFault:
    return faults.invalid_arg(f"no profile {token[:64]!r}", "ter:NoProfile")


def _no_config(what: str, token: str) -> SoapFault:
    return faults.invalid_arg(f"no {what} {token[:64]!r}", "ter:NoConfig")


def _config_modify(reason: str) -> SoapFault:
    return faults.invalid_arg(reason, "ter:ConfigModify")


def _conflict(reason: str) -> SoapFault:
    return SoapFault(faults.RECEIVER, ["ter:Action", "ter:ConfigurationConflict"], reason)


def _invalid_polygon(reason: str) -> SoapFault:
    # Media2 spec, CreateMask/SetMask: env:Receiver - ter:InvalidArgVal - ter:InvalidPolygon.
    return SoapFault(faults.RECEIVER, ["ter:InvalidArgVal", "ter:InvalidPolygon"], reason)


# -- request parsing (any prefix, as the Core spec wants) --------------------------------------


def _local(el: Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _child(el: Element, name: str) -> Element | None:
    return next((c for c in el if _local(c) == name), None)


def _children(el: Element, name: str) -> list[Element]:
    return [c for c in el if _local(c) == name]


def _text(el: Element, name: str) -> str | None:
    found = _child(el, name)
    return None if found is None else (found.text or "").strip()


def _required(body: Element, *path: str) -> str:
    value = arg_text(body, *path)
    if not value:
        raise faults.invalid_args(f"{'/'.join(path)} is missing")
    return value


def _required_child(el: Element, name: str) -> Element:
    found = _child(el, name)
    if found is None:
        raise faults.invalid_args(f"{name} is missing")
    return found


def _int(value: str | None, what: str) -> int:
    try:
        return int((value or "").strip())
    except ValueError:
        raise faults.invalid_arg(f"{what} must be an integer") from None


def _float(value: str | None, what: str) -> float:
    try:
        number = float((value or "").strip())
    except ValueError:
        raise faults.invalid_arg(f"{what} must be a number") from None
    if not math.isfinite(number):
        raise faults.invalid_arg(f"{what} must be finite")
    return number


def _bool(value: str | None, what: str) -> bool:
    text = (value or "").strip()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise faults.invalid_arg(f"{what} must be a boolean")


def _seconds(duration: str) -> float | None:
    m = _DURATION.fullmatch(duration.strip())
    if m is None or not any(m.groups()):
        return None
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def _configuration_refs(body: Element) -> list[tuple[str, str | None]]:
    """(Type, Token or None) of each tr2:Configuration; a Type outside the enumeration is a
    fault ("All" is kept: its meaning depends on the operation)."""
    refs = []
    for ref in _children(body, "Configuration"):
        kind = _text(ref, "Type") or ""
        if kind not in _ENUMERATION:
            raise faults.invalid_arg(f"unknown configuration Type {kind[:40]!r}")
        refs.append((kind, _text(ref, "Token") or None))
    return refs


# -- what the configurations are ----------------------------------------------------------------


def _encoder(settings: MediaSettings, token: str) -> EncoderSettings:
    enc = settings.encoder(token)
    if enc is None:
        raise _no_config("video encoder configuration", token)
    return enc


def _profile(settings: MediaSettings, token: str) -> ProfileSettings:
    prof = settings.profile(token)
    if prof is None:
        raise _no_profile(token)
    return prof


def _stream_of(model: DeviceModel, settings: MediaSettings, profile: ProfileSettings) -> StreamInfo:
    """The stream a profile plays: its encoder's. Without one there is nothing to stream."""
    enc = settings.encoder(profile.encoder) if profile.encoder else None
    if enc is None:
        raise SoapFault(
            faults.RECEIVER,
            ["ter:Action", "ter:IncompleteConfiguration"],
            f"profile {profile.token!r} has no video encoder configuration",
        )
    return StreamInfo.of(enc, model.source)


def resolutions(model: DeviceModel, settings: MediaSettings) -> list[tuple[int, int]]:
    """What the encoders can really stream (the same list Media ver10 offers)."""
    streams = [StreamInfo.of(e, model.source) for e in settings.encoders]
    return available_sizes(model.source.width, model.source.height, [
        (s.width, s.height) for s in streams
    ])  # fmt: skip


def frame_rates(model: DeviceModel, settings: MediaSettings) -> list[float]:
    """Decimation only: the source's rate and the common rates below it."""
    top = model.source.fps
    if top <= 0:  # not known yet: what the encoders ask for
        top = max((e.fps for e in settings.encoders), default=0.0)
    return [top, *(r for r in _COMMON_RATES if r < top)]


def _use_count(settings: MediaSettings, kind: str) -> int:
    if kind == VIDEO_SOURCE:
        return sum(1 for p in settings.profiles if p.video_source)
    return sum(1 for p in settings.profiles if p.metadata)


# -- rendering ----------------------------------------------------------------------------------

Maker = Callable[..., Element]


def _num(value: float) -> str:
    """xs:float text: at most 7 significant digits, so float noise never shows."""
    rounded = float(f"{value:.7g}") + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{rounded:g}" if rounded == float(f"{rounded:g}") else repr(rounded)


def _multicast(model: DeviceModel, port: int) -> Element:
    return TT.Multicast(
        TT.Address(TT.Type("IPv4"), TT.IPv4Address(model.rtsp.multicast_group)),
        TT.Port(str(port)),
        TT.TTL(str(model.rtsp.multicast_ttl)),
        TT.AutoStart("false"),
    )


def _encoder_port(model: DeviceModel, settings: MediaSettings, token: str) -> int:
    # As the RTSP server assigns them: 4 ports per stream, in configuration order.
    index = next(i for i, e in enumerate(settings.encoders) if e.token == token)
    return model.rtsp.multicast_port + 4 * index


def video_source_configuration(model: DeviceModel, settings: MediaSettings, tag: Maker) -> Element:
    return tag(
        TT.Name("VideoSourceConfig"),
        TT.UseCount(str(_use_count(settings, VIDEO_SOURCE))),
        TT.SourceToken(model.source_token),
        TT.Bounds(x="0", y="0", width=str(model.source.width), height=str(model.source.height)),
        token=model.source_config_token,
    )


def video_encoder_configuration(
    model: DeviceModel, settings: MediaSettings, enc: EncoderSettings, tag: Maker
) -> Element:
    stream = StreamInfo.of(enc, model.source)
    return tag(
        TT.Name(enc.name),
        TT.UseCount(str(settings.use_count(enc.token))),
        TT.Encoding("H264"),
        TT.Resolution(TT.Width(str(stream.width)), TT.Height(str(stream.height))),
        TT.RateControl(
            TT.FrameRateLimit(_num(stream.fps)),
            TT.BitrateLimit(str(enc.bitrate_kbps)),
            ConstantBitRate="false",
        ),
        _multicast(model, _encoder_port(model, settings, enc.token)),
        TT.Quality(_num(QUALITY)),
        token=enc.token,
        GovLength=str(enc.gop),
        Profile=_H264_PROFILES[enc.profile],
    )


def metadata_configuration(model: DeviceModel, settings: MediaSettings, tag: Maker) -> Element:
    return tag(
        TT.Name("Metadata"),
        TT.UseCount(str(_use_count(settings, METADATA))),
        TT.Analytics("true"),
        _multicast(model, model.rtsp.multicast_port + 2),  # the main stream's metadata track
        TT.SessionTimeout(f"PT{model.rtsp.session_timeout_s}S"),
        token=model.metadata_config_token,
    )


def media_profile(
    model: DeviceModel, settings: MediaSettings, prof: ProfileSettings, types: set[str] | None
) -> Element:
    """tr2:Profiles; `types` None: no Configurations element at all (GetProfiles without Type)."""
    children = [TR2.Name(prof.name)]
    if types is not None:
        parts = []
        if VIDEO_SOURCE in types and prof.video_source:
            parts.append(video_source_configuration(model, settings, TR2.VideoSource))
        enc = settings.encoder(prof.encoder) if prof.encoder else None
        if VIDEO_ENCODER in types and enc is not None:
            parts.append(video_encoder_configuration(model, settings, enc, TR2.VideoEncoder))
        if METADATA in types and prof.metadata:
            parts.append(metadata_configuration(model, settings, TR2.Metadata))
        children.append(TR2.Configurations(*parts))
    return TR2.Profiles(*children, token=prof.token, fixed=xs_bool(prof.fixed))


def _onvif_point(point: Point) -> Element:
    x, y = point
    return TT.Point(x=_num(2.0 * x - 1.0), y=_num(1.0 - 2.0 * y))


def mask_element(model: DeviceModel, mask: MaskSettings, tag: Maker) -> Element:
    r, g, b = mask.color
    return tag(
        TR2.ConfigurationToken(model.source_config_token),
        TR2.Polygon(*[_onvif_point(p) for p in mask.polygon]),
        TR2.Type(mask.kind),
        TR2.Color(X=str(r), Y=str(g), Z=str(b), Colorspace=RGB),
        TR2.Enabled(xs_bool(mask.enabled)),
        token=mask.token,
    )


# -- capabilities -------------------------------------------------------------------------------


def media2_capabilities(model: DeviceModel) -> Element:
    """tr2:Capabilities, as GetServiceCapabilities and GetServices(IncludeCapability) send it.
    Only what is true: RTSP over UDP, TCP and HTTP, multicast, snapshots and masks."""
    return TR2.Capabilities(
        TR2.ProfileCapabilities(
            MaximumNumberOfProfiles=str(MAX_PROFILES),
            ConfigurationsSupported=" ".join(SUPPORTED_TYPES),
        ),
        TR2.StreamingCapabilities(
            RTSPStreaming="true",
            RTPMulticast="true",
            RTP_RTSP_TCP="true",
            NonAggregateControl="false",
            AutoStartMulticast="false",
            SecureRTSPStreaming="false",
        ),
        SnapshotUri="true",
        Rotation="false",
        VideoSourceMode="false",
        OSD="false",
        TemporaryOSDText="false",
        Mask="true",
        SourceMask="false",
    )


# -- profiles -----------------------------------------------------------------------------------


def get_service_capabilities(req: OnvifRequest) -> list[Element]:
    return [TR2.GetServiceCapabilitiesResponse(media2_capabilities(req.model))]


def get_profiles(req: OnvifRequest) -> list[Element]:
    """Type absent: profiles without configurations; "All": every configuration; else only the
    configurations of the types asked for (Media2 spec, GetProfiles)."""
    settings = req.model.media.settings
    token = arg_text(req.body, "Token")
    profiles = [_profile(settings, token)] if token else list(settings.profiles)
    asked = {_text_of(t) for t in _children(req.body, "Type")}
    types = None if not asked else set(SUPPORTED_TYPES) if "All" in asked else asked
    return [
        TR2.GetProfilesResponse(*[media_profile(req.model, settings, p, types) for p in profiles])
    ]


def _text_of(el: Element) -> str:
    return (el.text or "").strip()


def _with_configurations(
    model: DeviceModel,
    settings: MediaSettings,
    prof: ProfileSettings,
    refs: Iterable[tuple[str, str | None]],
) -> ProfileSettings:
    """The profile with these configurations added (an existing one of a type is replaced).
    `settings`: the value being edited (inside `change`, never `model.media.settings`: the
    store's lock is held)."""
    for kind, token in refs:
        if kind == "All":
            continue  # AddConfiguration: "All" entries are ignored
        if kind == VIDEO_SOURCE:
            if token not in (None, model.source_config_token):
                raise _no_config("video source configuration", token or "")
            prof = dataclasses.replace(prof, video_source=True)
        elif kind == VIDEO_ENCODER:
            if token is None:
                raise faults.invalid_args("a VideoEncoder configuration needs its Token")
            prof = dataclasses.replace(prof, encoder=_encoder(settings, token).token)
        elif kind == METADATA:
            if token not in (None, model.metadata_config_token):
                raise _no_config("metadata configuration", token or "")
            prof = dataclasses.replace(prof, metadata=True)
        else:  # a type of the enumeration this device has no configuration of
            raise _no_config(f"{kind} configuration", token or "")
    return prof


def _check_dependencies(prof: ProfileSettings) -> None:
    # Media2 spec: encoder and metadata configurations depend on the video source configuration.
    if (prof.encoder is not None or prof.metadata) and not prof.video_source:
        raise _conflict(f"profile {prof.token!r}: encoder and metadata need the video source")


def _replace_profile(settings: MediaSettings, prof: ProfileSettings) -> MediaSettings:
    profiles = tuple(prof if p.token == prof.token else p for p in settings.profiles)
    return dataclasses.replace(settings, profiles=profiles)


def create_profile(req: OnvifRequest) -> list[Element]:
    name = _required(req.body, "Name")
    refs = _configuration_refs(req.body)
    created: list[str] = []

    def edit(settings: MediaSettings) -> MediaSettings:
        if len(settings.profiles) >= MAX_PROFILES:
            raise SoapFault(
                faults.RECEIVER,
                ["ter:Action", "ter:MaxNVTProfiles"],
                f"at most {MAX_PROFILES} profiles",
            )
        token = next_token("user_profile_", (p.token for p in settings.profiles))
        prof = _with_configurations(req.model, settings, ProfileSettings(token, name), refs)
        _check_dependencies(prof)
        created.append(token)
        return dataclasses.replace(settings, profiles=(*settings.profiles, prof))

    change(req.model, edit)
    return [TR2.CreateProfileResponse(TR2.Token(created[-1]))]


def delete_profile(req: OnvifRequest) -> list[Element]:
    token = _required(req.body, "Token")

    def edit(settings: MediaSettings) -> MediaSettings:
        if _profile(settings, token).fixed:
            raise SoapFault(
                faults.SENDER,
                ["ter:Action", "ter:DeletionOfFixedProfile"],
                f"profile {token!r} is fixed",
            )
        profiles = tuple(p for p in settings.profiles if p.token != token)
        return dataclasses.replace(settings, profiles=profiles)

    change(req.model, edit)
    return [TR2.DeleteProfileResponse()]


def add_configuration(req: OnvifRequest) -> list[Element]:
    token = _required(req.body, "ProfileToken")
    name = arg_text(req.body, "Name")
    refs = _configuration_refs(req.body)

    def edit(settings: MediaSettings) -> MediaSettings:
        prof = _with_configurations(req.model, settings, _profile(settings, token), refs)
        if name:
            prof = dataclasses.replace(prof, name=name)
        _check_dependencies(prof)
        return _replace_profile(settings, prof)

    change(req.model, edit)
    return [TR2.AddConfigurationResponse()]


def remove_configuration(req: OnvifRequest) -> list[Element]:
    """Tokens are ignored, "All" empties the profile, removing what is not there is no error
    (Media2 spec, RemoveConfiguration)."""
    token = _required(req.body, "ProfileToken")
    refs = _configuration_refs(req.body)
    if not refs:
        raise faults.invalid_args("Configuration is missing")
    kinds = {kind for kind, _ in refs}
    if "All" in kinds:
        kinds |= set(SUPPORTED_TYPES)

    def edit(settings: MediaSettings) -> MediaSettings:
        prof = _profile(settings, token)
        prof = dataclasses.replace(
            prof,
            video_source=prof.video_source and VIDEO_SOURCE not in kinds,
            encoder=None if VIDEO_ENCODER in kinds else prof.encoder,
            metadata=prof.metadata and METADATA not in kinds,
        )
        _check_dependencies(prof)
        return _replace_profile(settings, prof)

    change(req.model, edit)
    return [TR2.RemoveConfigurationResponse()]


# -- configurations -----------------------------------------------------------------------------


def _filters(req: OnvifRequest) -> tuple[str | None, str | None]:
    """ConfigurationToken and ProfileToken of a tr2:GetConfiguration request; the profile must
    exist. Every configuration of ours fits every profile, so the profile only checks."""
    config = arg_text(req.body, "ConfigurationToken") or None
    profile = arg_text(req.body, "ProfileToken") or None
    if profile is not None:
        _profile(req.model.media.settings, profile)
    return config, profile


def _check_token(token: str | None, known: str, what: str) -> None:
    if token is not None and token != known:
        raise _no_config(what, token)


def get_video_source_configurations(req: OnvifRequest) -> list[Element]:
    config, _ = _filters(req)
    _check_token(config, req.model.source_config_token, "video source configuration")
    settings = req.model.media.settings
    vsc = video_source_configuration(req.model, settings, TR2.Configurations)
    return [TR2.GetVideoSourceConfigurationsResponse(vsc)]


def set_video_source_configuration(req: OnvifRequest) -> list[Element]:
    """Only what the camera does: the whole source, unrotated, under its own name."""
    m = req.model
    config = _required_child(req.body, "Configuration")
    _check_token(config.get("token", ""), m.source_config_token, "video source configuration")
    if (_text(config, "SourceToken") or "") != m.source_token:
        raise _config_modify(f"the only video source is {m.source_token!r}")
    bounds = _required_child(config, "Bounds")
    got = [_int(bounds.get(k), f"Bounds {k}") for k in ("x", "y", "width", "height")]
    if got != [0, 0, m.source.width, m.source.height]:
        raise _config_modify(f"bounds are the whole source, {m.source.width}x{m.source.height}")
    if (_text(config, "Name") or "") != "VideoSourceConfig":
        raise _config_modify("the video source configuration's name is fixed")
    if config.get("ViewMode") or _child(config, "Extension") is not None:
        raise _config_modify("no view modes, rotation or lens settings")
    return [TR2.SetVideoSourceConfigurationResponse()]


def get_video_source_configuration_options(req: OnvifRequest) -> list[Element]:
    config, _ = _filters(req)
    _check_token(config, req.model.source_config_token, "video source configuration")
    width, height = str(req.model.source.width), str(req.model.source.height)
    options = TR2.Options(
        TT.BoundsRange(
            TT.XRange(TT.Min("0"), TT.Max("0")),
            TT.YRange(TT.Min("0"), TT.Max("0")),
            TT.WidthRange(TT.Min(width), TT.Max(width)),
            TT.HeightRange(TT.Min(height), TT.Max(height)),
        ),
        TT.VideoSourceTokensAvailable(req.model.source_token),
        MaximumNumberOfProfiles=str(MAX_PROFILES),
    )
    return [TR2.GetVideoSourceConfigurationOptionsResponse(options)]


def get_video_encoder_configurations(req: OnvifRequest) -> list[Element]:
    config, _ = _filters(req)
    settings = req.model.media.settings
    encoders = [_encoder(settings, config)] if config else list(settings.encoders)
    rendered = [
        video_encoder_configuration(req.model, settings, e, TR2.Configurations) for e in encoders
    ]
    return [TR2.GetVideoEncoderConfigurationsResponse(*rendered)]


def _check_multicast(model: DeviceModel, el: Element | None, port: int) -> None:
    """Multicast settings follow the RTSP configuration: a client may send them back, not
    change them."""
    if el is None:
        return
    wanted = (model.rtsp.multicast_group, port, model.rtsp.multicast_ttl, False)
    address = _child(el, "Address")
    got = (
        (_text(address, "IPv4Address") if address is not None else None) or "",
        _int(_text(el, "Port"), "Multicast Port"),
        _int(_text(el, "TTL"), "Multicast TTL"),
        _bool(_text(el, "AutoStart"), "Multicast AutoStart"),
    )
    if got != wanted:
        raise _config_modify("multicast settings are fixed by the RTSP configuration")


def _encoder_from_request(
    model: DeviceModel, settings: MediaSettings, config: Element
) -> EncoderSettings:
    enc = _encoder(settings, config.get("token", ""))
    encoding = _text(config, "Encoding")
    if encoding is not None and encoding != "H264":
        raise _config_modify(f"only H264 encoding, not {encoding[:20]!r}")
    size = None
    resolution = _child(config, "Resolution")
    if resolution is not None:
        size = (
            _int(_text(resolution, "Width"), "Resolution Width"),
            _int(_text(resolution, "Height"), "Resolution Height"),
        )
    fps, bitrate = None, None
    rate = _child(config, "RateControl")
    if rate is not None:
        if rate.get("ConstantBitRate") in ("true", "1"):
            raise _config_modify("the encoders run at a target bitrate, not a constant one")
        fps = _float(_text(rate, "FrameRateLimit"), "FrameRateLimit")
        if fps <= 0:
            raise _config_modify("FrameRateLimit must be positive")
        bitrate = _int(_text(rate, "BitrateLimit"), "BitrateLimit")
    gop = None
    if config.get("GovLength") is not None:
        gop = _int(config.get("GovLength"), "GovLength")
    profile = None
    if config.get("Profile") is not None:
        profile = (config.get("Profile") or "").strip().lower()
        if profile not in _H264_PROFILES:
            raise _config_modify(f"H.264 profile {profile[:20]!r} is not supported")
    _check_multicast(model, _child(config, "Multicast"), _encoder_port(model, settings, enc.token))
    asked = EncoderChange(_text(config, "Name"), size, fps, bitrate, gop, profile)  # type: ignore[arg-type]
    return asked.applied(enc, model.source, resolutions(model, settings))


def set_video_encoder_configuration(req: OnvifRequest) -> list[Element]:
    """Changes the stream itself: the camera reopens that encoder with the new settings."""
    config = _required_child(req.body, "Configuration")

    def edit(settings: MediaSettings) -> MediaSettings:
        return settings.with_encoder(_encoder_from_request(req.model, settings, config))

    change(req.model, edit)
    return [TR2.SetVideoEncoderConfigurationResponse()]


def get_video_encoder_configuration_options(req: OnvifRequest) -> list[Element]:
    """One Options: every encoder can stream the same sizes and rates (all scale the one
    source); a token only checks that the configuration exists."""
    config, _ = _filters(req)
    settings = req.model.media.settings
    if config:
        _encoder(settings, config)
    rates = " ".join(_num(r) for r in frame_rates(req.model, settings))
    options = TR2.Options(
        TT.Encoding("H264"),
        TT.QualityRange(TT.Min(_num(QUALITY)), TT.Max(_num(QUALITY))),
        *[
            TT.ResolutionsAvailable(TT.Width(str(w)), TT.Height(str(h)))
            for w, h in resolutions(req.model, settings)
        ],
        TT.BitrateRange(TT.Min(str(BITRATE_RANGE[0])), TT.Max(str(BITRATE_RANGE[1]))),
        GovLengthRange=f"{GOP_RANGE[0]} {GOP_RANGE[1]}",
        FrameRatesSupported=rates,
        ProfilesSupported=" ".join(_H264_PROFILES.values()),
        ConstantBitRateSupported="false",
        GuaranteedFrameRateSupported="false",
    )
    return [TR2.GetVideoEncoderConfigurationOptionsResponse(options)]


def get_video_encoder_instances(req: OnvifRequest) -> list[Element]:
    token = _required(req.body, "ConfigurationToken")
    _check_token(token, req.model.source_config_token, "video source configuration")
    count = str(len(req.model.media.settings.encoders))  # one H.264 encoder per stream
    info = TR2.Info(TR2.Codec(TR2.Encoding("H264"), TR2.Number(count)), TR2.Total(count))
    return [TR2.GetVideoEncoderInstancesResponse(info)]


def get_metadata_configurations(req: OnvifRequest) -> list[Element]:
    config, _ = _filters(req)
    _check_token(config, req.model.metadata_config_token, "metadata configuration")
    settings = req.model.media.settings
    rendered = metadata_configuration(req.model, settings, TR2.Configurations)
    return [TR2.GetMetadataConfigurationsResponse(rendered)]


def set_metadata_configuration(req: OnvifRequest) -> list[Element]:
    """Only what the metadata track is: analytics (tracked objects), no PTZ status, no events,
    no compression, under its own name."""
    m = req.model
    config = _required_child(req.body, "Configuration")
    _check_token(config.get("token", ""), m.metadata_config_token, "metadata configuration")
    if (_text(config, "Name") or "") != "Metadata":
        raise _config_modify("the metadata configuration's name is fixed")
    analytics = _text(config, "Analytics")
    if analytics is not None and not _bool(analytics, "Analytics"):
        raise _config_modify("the metadata track always carries the analytics")
    for unsupported in ("PTZStatus", "Events", "AnalyticsEngineConfiguration", "SensorData"):
        if _child(config, unsupported) is not None:
            raise _config_modify(f"{unsupported} is not streamed")
    if config.get("CompressionType") not in (None, "None"):
        raise _config_modify("metadata is not compressed")
    for flag in ("GeoLocation", "ShapePolygon"):
        if config.get(flag) is not None and _bool(config.get(flag), flag):
            raise _config_modify(f"{flag} is not supported")
    _check_multicast(m, _child(config, "Multicast"), m.rtsp.multicast_port + 2)
    timeout = _text(config, "SessionTimeout")
    if timeout is not None and _seconds(timeout) != m.rtsp.session_timeout_s:
        raise _config_modify(f"the session timeout is PT{m.rtsp.session_timeout_s}S")
    return [TR2.SetMetadataConfigurationResponse()]


def get_metadata_configuration_options(req: OnvifRequest) -> list[Element]:
    config, _ = _filters(req)
    _check_token(config, req.model.metadata_config_token, "metadata configuration")
    options = TR2.Options(
        TT.PTZStatusFilterOptions(
            TT.PanTiltStatusSupported("false"), TT.ZoomStatusSupported("false")
        ),
        GeoLocation="false",
    )
    return [TR2.GetMetadataConfigurationOptionsResponse(options)]


# -- URIs ---------------------------------------------------------------------------------------


def get_stream_uri(req: OnvifRequest) -> list[Element]:
    protocol = _required(req.body, "Protocol")
    settings = req.model.media.settings  # one snapshot: the profile and its encoder
    prof = _profile(settings, _required(req.body, "ProfileToken"))
    if protocol not in ("RtspUnicast", "RtspMulticast", "RTSP", "RtspOverHttp"):
        raise faults.invalid_arg(
            f"unsupported Protocol {protocol[:40]!r}", "ter:InvalidStreamSetup"
        )
    stream = _stream_of(req.model, settings, prof)
    if protocol == "RtspOverHttp":  # the Apple-style tunnel on the web port
        uri = req.url("http", req.model.http_port, f"/{stream.name}")
    else:  # one RTSP URL: the client picks UDP, TCP or multicast in SETUP
        uri = req.url("rtsp", req.model.rtsp_port, f"/{stream.name}")
    return [TR2.GetStreamUriResponse(TR2.Uri(uri))]


def get_snapshot_uri(req: OnvifRequest) -> list[Element]:
    settings = req.model.media.settings  # one snapshot: the profile and its encoder
    prof = _profile(settings, _required(req.body, "ProfileToken"))
    stream = _stream_of(req.model, settings, prof)
    uri = req.url("http", req.model.http_port, req.model.snapshot_path(stream.name))
    return [TR2.GetSnapshotUriResponse(TR2.Uri(uri))]


# -- privacy masks ------------------------------------------------------------------------------


def to_store_point(x: float, y: float) -> Point:
    """ONVIF -1..1, y up -> the store's 0..1, y down."""
    return ((x + 1.0) / 2.0, (1.0 - y) / 2.0)


def _polygon(mask: Element) -> tuple[Point, ...]:
    polygon = _child(mask, "Polygon")
    points = _children(polygon, "Point") if polygon is not None else []
    if not 3 <= len(points) <= MAX_MASK_POINTS:
        raise _invalid_polygon(f"a mask has 3..{MAX_MASK_POINTS} points, not {len(points)}")
    out = []
    for p in points:
        try:
            x, y = float(p.get("x", "")), float(p.get("y", ""))
        except ValueError:
            raise _invalid_polygon("point coordinates must be numbers") from None
        if not (-1.0 <= x <= 1.0 and -1.0 <= y <= 1.0):  # also refuses NaN
            raise _invalid_polygon(f"point ({x:g}, {y:g}) outside -1..1")
        out.append(to_store_point(x, y))
    return tuple(out)


def _ycbcr_to_rgb(y: float, cb: float, cr: float) -> tuple[float, float, float]:
    # Full-range BT.601 (JFIF), the usual reading of ONVIF's YCbCr colours.
    return (
        y + 1.402 * (cr - 128),
        y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
        y + 1.772 * (cb - 128),
    )


def _color(el: Element | None, default: tuple[int, int, int]) -> tuple[int, int, int]:
    if el is None:
        return default
    xyz = [_float(el.get(k), f"Color {k}") for k in ("X", "Y", "Z")]
    space = el.get("Colorspace") or YCBCR
    if space == RGB:
        rgb = (xyz[0], xyz[1], xyz[2])
    elif space == YCBCR:
        if not all(0 <= v <= 255 for v in xyz):
            raise _config_modify("YCbCr components are 0..255")
        rgb = _ycbcr_to_rgb(xyz[0], xyz[1], xyz[2])
    else:
        raise _config_modify(f"colorspace {space[:80]!r} is not supported (RGB, YCbCr)")
    if not all(-0.5 < v < 255.5 for v in rgb):
        raise _config_modify("colour components are 0..255")
    r, g, b = (min(255, max(0, round(v))) for v in rgb)
    return (r, g, b)


def _parse_mask(
    model: DeviceModel, el: Element, token: str, base: MaskSettings | None
) -> MaskSettings:
    config = _text(el, "ConfigurationToken")
    if not config:
        raise faults.invalid_args("Mask/ConfigurationToken is missing")
    _check_token(config, model.source_config_token, "video source configuration")
    kind = _text(el, "Type") or ""
    if kind not in _MASK_KINDS:
        raise _config_modify(f"mask Type is one of {', '.join(_MASK_KINDS)}, not {kind[:20]!r}")
    enabled = _bool(_text(el, "Enabled"), "Enabled")
    color = _color(_child(el, "Color"), base.color if base else (0, 0, 0))
    polygon = _polygon(el)
    return MaskSettings(token, polygon, kind, color, enabled)


def get_mask_options(req: OnvifRequest) -> list[Element]:
    token = _required(req.body, "ConfigurationToken")
    _check_token(token, req.model.source_config_token, "video source configuration")

    def space(uri: str) -> Element:
        def full() -> list[Element]:
            return [TT.Min("0"), TT.Max("255")]

        return TT.ColorspaceRange(TT.X(*full()), TT.Y(*full()), TT.Z(*full()), TT.Colorspace(uri))

    options = TR2.Options(
        TR2.MaxMasks(str(MAX_MASKS)),
        TR2.MaxPoints(str(MAX_MASK_POINTS)),
        *[TR2.Types(kind) for kind in _MASK_KINDS],
        TR2.Color(space(RGB), space(YCBCR)),
        RectangleOnly="false",
        SingleColorOnly="false",
    )
    return [TR2.GetMaskOptionsResponse(options)]


def get_masks(req: OnvifRequest) -> list[Element]:
    token = arg_text(req.body, "Token") or None
    config = arg_text(req.body, "ConfigurationToken") or None
    _check_token(config, req.model.source_config_token, "video source configuration")
    masks = list(req.model.media.settings.masks)  # all on the one video source configuration
    if token is not None:
        masks = [m for m in masks if m.token == token]
        if not masks:
            raise _no_config("mask", token)
    return [TR2.GetMasksResponse(*[mask_element(req.model, m, TR2.Masks) for m in masks])]


def create_mask(req: OnvifRequest) -> list[Element]:
    """The device assigns the token (any token in the request is ignored, as the spec says)."""
    el = _required_child(req.body, "Mask")
    created: list[str] = []

    def edit(settings: MediaSettings) -> MediaSettings:
        if len(settings.masks) >= MAX_MASKS:
            raise SoapFault(faults.RECEIVER, ["ter:Action", "ter:MaxMasks"], f"at most {MAX_MASKS}")
        token = next_token("mask_", (m.token for m in settings.masks))
        mask = _parse_mask(req.model, el, token, None)
        created.append(token)
        return dataclasses.replace(settings, masks=(*settings.masks, mask))

    change(req.model, edit)
    return [TR2.CreateMaskResponse(TR2.Token(created[-1]))]


def set_mask(req: OnvifRequest) -> list[Element]:
    el = _required_child(req.body, "Mask")
    token = el.get("token") or ""
    if not token:
        raise faults.invalid_args("Mask/@token is missing")

    def edit(settings: MediaSettings) -> MediaSettings:
        old = settings.mask(token)
        if old is None:
            raise _no_config("mask", token)
        new = _parse_mask(req.model, el, token, old)
        masks = tuple(new if m.token == token else m for m in settings.masks)
        return dataclasses.replace(settings, masks=masks)

    change(req.model, edit)
    return [TR2.SetMaskResponse()]


def delete_mask(req: OnvifRequest) -> list[Element]:
    token = _required(req.body, "Token")

    def edit(settings: MediaSettings) -> MediaSettings:
        if settings.mask(token) is None:
            raise _no_config("mask", token)
        masks = tuple(m for m in settings.masks if m.token != token)
        return dataclasses.replace(settings, masks=masks)

    change(req.model, edit)
    return [TR2.DeleteMaskResponse()]


def register_media2(dispatcher: OnvifDispatcher) -> None:
    """Registers the Media2 operations: reads READ_MEDIA, changes ACTUATE (Media2 spec access
    classes)."""
    dispatcher.register(
        qname("tr2", "GetServiceCapabilities"),
        get_service_capabilities,
        access=SERVICE_CAPABILITIES,
    )
    reads: tuple[tuple[str, Handler], ...] = (
        ("GetProfiles", get_profiles),
        ("GetVideoSourceConfigurations", get_video_source_configurations),
        ("GetVideoSourceConfigurationOptions", get_video_source_configuration_options),
        ("GetVideoEncoderConfigurations", get_video_encoder_configurations),
        ("GetVideoEncoderConfigurationOptions", get_video_encoder_configuration_options),
        ("GetVideoEncoderInstances", get_video_encoder_instances),
        ("GetMetadataConfigurations", get_metadata_configurations),
        ("GetMetadataConfigurationOptions", get_metadata_configuration_options),
        ("GetStreamUri", get_stream_uri),
        ("GetSnapshotUri", get_snapshot_uri),
        ("GetMaskOptions", get_mask_options),
        ("GetMasks", get_masks),
    )
    changes: tuple[tuple[str, Handler], ...] = (
        ("CreateProfile", create_profile),
        ("DeleteProfile", delete_profile),
        ("AddConfiguration", add_configuration),
        ("RemoveConfiguration", remove_configuration),
        ("SetVideoSourceConfiguration", set_video_source_configuration),
        ("SetVideoEncoderConfiguration", set_video_encoder_configuration),
        ("SetMetadataConfiguration", set_metadata_configuration),
        ("CreateMask", create_mask),
        ("SetMask", set_mask),
        ("DeleteMask", delete_mask),
    )
    for name, handler in reads:
        dispatcher.register(qname("tr2", name), handler, access=AccessClass.READ_MEDIA)
    for name, handler in changes:
        dispatcher.register(qname("tr2", name), handler, access=AccessClass.ACTUATE)
