"""The ONVIF Media service (ver10): profiles and configurations as clients set them.

Everything it reports and changes lives in the media settings store (`model.media`,
vcam/media_settings.py), the one the camera follows: SetVideoEncoderConfiguration reopens that
stream's encoder at the new size, rate, bitrate and GOP; profiles clients create or fill in are
kept across restarts. Each change is checked and made inside one `store.change`, so a refused
request changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from vcam.config import RtspConfig
from vcam.media_settings import (
    BITRATE_RANGE,
    GOP_RANGE,
    MAX_PROFILES,
    EncoderChange,
    EncoderSettings,
    MediaSettings,
    MediaSettingsError,
    ProfileSettings,
    available_sizes,
    next_token,
)
from vcam.onvif import faults
from vcam.onvif.faults import RECEIVER, SoapFault
from vcam.onvif.model import DeviceModel, StreamInfo
from vcam.onvif.service import Handler, OnvifDispatcher, OnvifRequest, arg_text, xs_bool
from vcam.onvif.soap import SERVICE_CAPABILITIES, TRT, TT, AccessClass, Element, qname

MEDIA_VERSION = (21, 6)  # the media.wsdl served from wsdl/
QUALITY = 5  # fixed: the encoders run at a bitrate, Quality is informative
_STREAM_TYPES = frozenset({"RTP-Unicast", "RTP-Multicast"})
_PROTOCOLS = frozenset({"UDP", "TCP", "RTSP", "HTTP"})  # HTTP: tunnelled on the web port
_H264_PROFILES = {"Baseline": "baseline", "Main": "main", "High": "high"}
Maker = Callable[..., Element]
Edit = Callable[[MediaSettings], MediaSettings]


def _required(body: Element, *path: str) -> str:
    value = arg_text(body, *path)
    if value is None:
        raise faults.invalid_args(f"{'/'.join(path)} is missing")
    return value


def _profile(settings: MediaSettings, token: str) -> ProfileSettings:
    found = settings.profile(token)
    if found is None:
        raise faults.invalid_arg(f"no profile {token[:64]!r}", "ter:NoProfile")
    return found


def _encoder(settings: MediaSettings, token: str) -> EncoderSettings:
    found = settings.encoder(token)
    if found is None:
        raise faults.invalid_arg(f"no video encoder configuration {token[:64]!r}", "ter:NoConfig")
    return found


def _stream(model: DeviceModel, profile_token: str) -> StreamInfo:
    """The stream a profile plays: its video encoder's."""
    settings = model.media.settings
    prof = _profile(settings, profile_token)
    if prof.encoder is None:
        raise SoapFault(
            RECEIVER,
            ["ter:Action", "ter:IncompleteConfiguration"],
            f"profile {profile_token[:64]!r} has no video encoder configuration",
        )
    return StreamInfo.of(_encoder(settings, prof.encoder), model.source)


def _source_size(model: DeviceModel) -> tuple[int, int]:
    """The source's size; before a network source's first frame, the first stream's."""
    if model.source.width:
        return model.source.width, model.source.height
    streams = model.streams
    return (streams[0].width, streams[0].height) if streams else (0, 0)


def change(model: DeviceModel, edit: Edit) -> MediaSettings:
    """Applies `edit` to the media settings (it raises SoapFault to refuse); a setting the store
    refuses is the client's error, a failed write the device's."""
    try:
        return model.media.change(edit)
    except MediaSettingsError as exc:
        raise faults.invalid_arg(str(exc), "ter:ConfigModify") from None
    except OSError as exc:
        raise faults.action_failed(f"cannot keep the settings: {exc.strerror}") from None


# -- capabilities ------------------------------------------------------------------------------


def media_capabilities(model: DeviceModel) -> Element:
    """trt:Capabilities, as GetServiceCapabilities and GetServices(IncludeCapability) send it."""
    streaming = {"RTPMulticast": True, "RTP_TCP": True, "RTP_RTSP_TCP": True}
    return TRT.Capabilities(
        TRT.ProfileCapabilities(MaximumNumberOfProfiles=str(MAX_PROFILES)),
        TRT.StreamingCapabilities({k: xs_bool(v) for k, v in streaming.items()}),
        SnapshotUri="true",
        Rotation="false",
        VideoSourceMode="false",
        OSD="false",
        TemporaryOSDText="false",
        EXICompression="false",
    )


def legacy_capabilities(req: OnvifRequest, xaddr: str) -> Element:
    """tt:Media of the Device service's GetCapabilities."""
    streaming = ("RTPMulticast", "RTP_TCP", "RTP_RTSP_TCP")
    return TT.Media(
        TT.XAddr(xaddr),
        TT.StreamingCapabilities(*[TT(name, "true") for name in streaming]),
    )


# -- configurations ----------------------------------------------------------------------------


def _resolution(width: int, height: int) -> list[Element]:
    return [TT.Width(str(width)), TT.Height(str(height))]


def _multicast(rtsp: RtspConfig, port: int) -> Element:
    return TT.Multicast(
        TT.Address(TT.Type("IPv4"), TT.IPv4Address(rtsp.multicast_group)),
        TT.Port(str(port)),
        TT.TTL(str(rtsp.multicast_ttl)),
        TT.AutoStart("false"),
    )


def _session_timeout(rtsp: RtspConfig) -> Element:
    return TT.SessionTimeout(f"PT{rtsp.session_timeout_s}S")


def video_source_configuration(model: DeviceModel, tag: Maker) -> Element:
    width, height = _source_size(model)
    uses = sum(1 for p in model.media.settings.profiles if p.video_source)
    return tag(
        TT.Name("VideoSourceConfig"),
        TT.UseCount(str(uses)),
        TT.SourceToken(model.source_token),
        TT.Bounds(x="0", y="0", width=str(width), height=str(height)),
        token=model.source_config_token,
    )


def video_encoder_configuration(
    model: DeviceModel, settings: MediaSettings, enc: EncoderSettings, tag: Maker
) -> Element:
    stream = StreamInfo.of(enc, model.source)
    index = settings.encoders.index(enc)
    return tag(
        TT.Name(enc.name),
        TT.UseCount(str(settings.use_count(enc.token))),
        TT.Encoding("H264"),
        TT.Resolution(*_resolution(stream.width, stream.height)),
        TT.Quality(str(QUALITY)),
        TT.RateControl(
            TT.FrameRateLimit(str(round(stream.fps))),
            TT.EncodingInterval("1"),
            TT.BitrateLimit(str(stream.bitrate_kbps)),
        ),
        TT.H264(TT.GovLength(str(stream.gop)), TT.H264Profile(stream.h264_profile)),
        _multicast(model.rtsp, model.rtsp.multicast_port + 4 * index),  # as the RTSP server
        _session_timeout(model.rtsp),
        token=enc.token,
    )


def metadata_configuration(model: DeviceModel, tag: Maker) -> Element:
    uses = sum(1 for p in model.media.settings.profiles if p.metadata)
    return tag(
        TT.Name("Metadata"),
        TT.UseCount(str(uses)),
        TT.Analytics("true"),
        _multicast(model.rtsp, model.rtsp.multicast_port + 2),  # main stream's metadata track
        _session_timeout(model.rtsp),
        token=model.metadata_config_token,
    )


def profile(
    model: DeviceModel, settings: MediaSettings, prof: ProfileSettings, tag: Maker
) -> Element:
    children = [TT.Name(prof.name)]
    if prof.video_source:
        children.append(video_source_configuration(model, TT.VideoSourceConfiguration))
    if prof.encoder is not None:
        enc = _encoder(settings, prof.encoder)
        children.append(
            video_encoder_configuration(model, settings, enc, TT.VideoEncoderConfiguration)
        )
    if prof.metadata:
        children.append(metadata_configuration(model, TT.MetadataConfiguration))
    return tag(*children, token=prof.token, fixed=xs_bool(prof.fixed))


def _check_token(token: str, known: str) -> None:
    if token != known:
        raise faults.invalid_arg(f"no configuration {token[:64]!r}", "ter:NoConfig")


def _range(low: float, high: float) -> list[Element]:
    return [TT.Min(str(round(low))), TT.Max(str(round(high)))]


def _config_modify(reason: str) -> SoapFault:
    return faults.invalid_arg(reason, "ter:ConfigModify")


# -- reading -----------------------------------------------------------------------------------


def get_service_capabilities(req: OnvifRequest) -> list[Element]:
    return [TRT.GetServiceCapabilitiesResponse(media_capabilities(req.model))]


def get_profiles(req: OnvifRequest) -> list[Element]:
    m, settings = req.model, req.model.media.settings
    return [
        TRT.GetProfilesResponse(*[profile(m, settings, p, TRT.Profiles) for p in settings.profiles])
    ]


def get_profile(req: OnvifRequest) -> list[Element]:
    settings = req.model.media.settings
    prof = _profile(settings, _required(req.body, "ProfileToken"))
    return [TRT.GetProfileResponse(profile(req.model, settings, prof, TRT.Profile))]


def get_video_sources(req: OnvifRequest) -> list[Element]:
    m = req.model
    width, height = _source_size(m)
    fps = m.source.fps or (m.streams[0].fps if m.streams else 0.0)
    source = TRT.VideoSources(
        TT.Framerate(f"{fps:g}"),
        TT.Resolution(*_resolution(width, height)),
        token=m.source_token,
    )
    return [TRT.GetVideoSourcesResponse(source)]


def get_video_source_configurations(req: OnvifRequest) -> list[Element]:
    config = video_source_configuration(req.model, TRT.Configurations)
    return [TRT.GetVideoSourceConfigurationsResponse(config)]


def get_video_source_configuration(req: OnvifRequest) -> list[Element]:
    _check_token(_required(req.body, "ConfigurationToken"), req.model.source_config_token)
    config = video_source_configuration(req.model, TRT.Configuration)
    return [TRT.GetVideoSourceConfigurationResponse(config)]


def get_compatible_video_source_configurations(req: OnvifRequest) -> list[Element]:
    _profile(req.model.media.settings, _required(req.body, "ProfileToken"))
    config = video_source_configuration(req.model, TRT.Configurations)
    return [TRT.GetCompatibleVideoSourceConfigurationsResponse(config)]


def get_video_source_configuration_options(req: OnvifRequest) -> list[Element]:
    m = req.model
    _options_scope(req, m.source_config_token)
    width, height = _source_size(m)
    options = TRT.Options(
        TT.BoundsRange(
            TT.XRange(*_range(0, 0)),
            TT.YRange(*_range(0, 0)),
            TT.WidthRange(*_range(width, width)),
            TT.HeightRange(*_range(height, height)),
        ),
        TT.VideoSourceTokensAvailable(m.source_token),
        MaximumNumberOfProfiles=str(MAX_PROFILES),
    )
    return [TRT.GetVideoSourceConfigurationOptionsResponse(options)]


def _encoders(req: OnvifRequest, tag: Maker) -> list[Element]:
    m, settings = req.model, req.model.media.settings
    return [video_encoder_configuration(m, settings, e, tag) for e in settings.encoders]


def get_video_encoder_configurations(req: OnvifRequest) -> list[Element]:
    return [TRT.GetVideoEncoderConfigurationsResponse(*_encoders(req, TRT.Configurations))]


def get_compatible_video_encoder_configurations(req: OnvifRequest) -> list[Element]:
    _profile(req.model.media.settings, _required(req.body, "ProfileToken"))
    configs = _encoders(req, TRT.Configurations)
    return [TRT.GetCompatibleVideoEncoderConfigurationsResponse(*configs)]


def get_video_encoder_configuration(req: OnvifRequest) -> list[Element]:
    settings = req.model.media.settings
    enc = _encoder(settings, _required(req.body, "ConfigurationToken"))
    config = video_encoder_configuration(req.model, settings, enc, TRT.Configuration)
    return [TRT.GetVideoEncoderConfigurationResponse(config)]


def _options_scope(req: OnvifRequest, known_config: str | None = None) -> ProfileSettings | None:
    """Checks the optional ConfigurationToken and ProfileToken of a Get*Options request."""
    settings = req.model.media.settings
    config_token = arg_text(req.body, "ConfigurationToken")
    profile_token = arg_text(req.body, "ProfileToken")
    if config_token and known_config is not None:
        _check_token(config_token, known_config)
    return _profile(settings, profile_token) if profile_token else None


def sizes_for(model: DeviceModel) -> list[tuple[int, int]]:
    """What SetVideoEncoderConfiguration accepts: what the source can really be streamed at."""
    width, height = _source_size(model)
    return available_sizes(width, height, [(s.width, s.height) for s in model.streams])


def get_video_encoder_configuration_options(req: OnvifRequest) -> list[Element]:
    """What SetVideoEncoderConfiguration accepts: the resolutions the source can be streamed
    at, frame rates up to the source's, the bitrate and GOP ranges of the encoders."""
    settings = req.model.media.settings
    config_token = arg_text(req.body, "ConfigurationToken")
    if config_token:
        _encoder(settings, config_token)
    prof = _options_scope(req)
    if prof is not None and config_token and prof.encoder not in (None, config_token):
        raise faults.invalid_arg("the configuration is not in that profile", "ter:NoConfig")
    fps = max(1.0, req.model.source.fps or max((s.fps for s in req.model.streams), default=1.0))
    sizes = sizes_for(req.model)

    def h264() -> list[Element]:  # twice: an lxml element has one parent
        return [
            *[TT.ResolutionsAvailable(*_resolution(w, h)) for w, h in sizes],
            TT.GovLengthRange(*_range(*GOP_RANGE)),
            TT.FrameRateRange(*_range(1, fps)),
            TT.EncodingIntervalRange(*_range(1, 1)),
            *[TT.H264ProfilesSupported(p) for p in _H264_PROFILES],
        ]

    options = TRT.Options(
        TT.QualityRange(*_range(QUALITY, QUALITY)),
        TT.H264(*h264()),
        # Hikvision NVRs and others read the bitrate range from here (tt:H264Options2).
        TT.Extension(TT.H264(*h264(), TT.BitrateRange(*_range(*BITRATE_RANGE)))),
    )
    return [TRT.GetVideoEncoderConfigurationOptionsResponse(options)]


def get_metadata_configurations(req: OnvifRequest) -> list[Element]:
    config = metadata_configuration(req.model, TRT.Configurations)
    return [TRT.GetMetadataConfigurationsResponse(config)]


def get_compatible_metadata_configurations(req: OnvifRequest) -> list[Element]:
    _profile(req.model.media.settings, _required(req.body, "ProfileToken"))
    config = metadata_configuration(req.model, TRT.Configurations)
    return [TRT.GetCompatibleMetadataConfigurationsResponse(config)]


def get_metadata_configuration(req: OnvifRequest) -> list[Element]:
    _check_token(_required(req.body, "ConfigurationToken"), req.model.metadata_config_token)
    config = metadata_configuration(req.model, TRT.Configuration)
    return [TRT.GetMetadataConfigurationResponse(config)]


def get_metadata_configuration_options(req: OnvifRequest) -> list[Element]:
    _options_scope(req, req.model.metadata_config_token)
    # No PTZ: nothing to filter; the analytics (tracked boxes) always go out.
    options = TRT.Options(
        TT.PTZStatusFilterOptions(
            TT.PanTiltStatusSupported("false"), TT.ZoomStatusSupported("false")
        )
    )
    return [TRT.GetMetadataConfigurationOptionsResponse(options)]


def get_osds(req: OnvifRequest) -> list[Element]:
    token = arg_text(req.body, "ConfigurationToken")
    if token:
        _check_token(token, req.model.source_config_token)
    return [TRT.GetOSDsResponse()]  # vcam draws no on-screen text


def get_osd_options(req: OnvifRequest) -> list[Element]:
    _check_token(_required(req.body, "ConfigurationToken"), req.model.source_config_token)
    options = TRT.OSDOptions(
        TT.MaximumNumberOfOSDs(Total="0"),  # zero: the Type and Position below do not apply
        TT.Type("Text"),
        TT.PositionOption("UpperLeft"),
    )
    return [TRT.GetOSDOptionsResponse(options)]


def _media_uri(uri: str) -> Element:
    return TRT.MediaUri(
        TT.Uri(uri),
        TT.InvalidAfterConnect("false"),
        TT.InvalidAfterReboot("false"),
        TT.Timeout("PT0S"),
    )


def get_stream_uri(req: OnvifRequest) -> list[Element]:
    # A missing StreamSetup reads as RTP-Unicast over RTSP; a wrong one is refused.
    stream_type = arg_text(req.body, "StreamSetup", "Stream") or "RTP-Unicast"
    protocol = arg_text(req.body, "StreamSetup", "Transport", "Protocol") or "RTSP"
    if stream_type not in _STREAM_TYPES:
        raise faults.invalid_arg(f"unsupported Stream {stream_type[:40]!r}")
    if protocol not in _PROTOCOLS:
        raise faults.invalid_arg(f"unsupported transport Protocol {protocol[:40]!r}")
    stream = _stream(req.model, _required(req.body, "ProfileToken"))
    if protocol == "HTTP":
        # RTP/RTSP/HTTP/TCP: the Apple-style tunnel on the port and scheme of the web service,
        # where ONVIF wants it (the Device Test Tool checks both); the client tunnels to it.
        uri = req.url("http", req.model.http_port, f"/{stream.name}")
    else:
        # One RTSP URL for the other transports: the client picks UDP, TCP or multicast in SETUP.
        uri = req.url("rtsp", req.model.rtsp_port, f"/{stream.name}")
    return [TRT.GetStreamUriResponse(_media_uri(uri))]


def get_snapshot_uri(req: OnvifRequest) -> list[Element]:
    stream = _stream(req.model, _required(req.body, "ProfileToken"))
    uri = req.url("http", req.model.http_port, req.model.snapshot_path(stream.name))
    return [TRT.GetSnapshotUriResponse(_media_uri(uri))]


# -- changing ----------------------------------------------------------------------------------


def create_profile(req: OnvifRequest) -> list[Element]:
    name = _required(req.body, "Name")
    wanted = arg_text(req.body, "Token")

    def edit(s: MediaSettings) -> MediaSettings:
        if len(s.profiles) >= MAX_PROFILES:
            raise SoapFault(
                RECEIVER, ["ter:Action", "ter:MaxNVTProfiles"], f"at most {MAX_PROFILES} profiles"
            )
        if wanted and s.profile(wanted) is not None:
            raise faults.invalid_arg(f"profile {wanted[:64]!r} exists", "ter:ProfileExists")
        token = wanted or next_token("profile_", (p.token for p in s.profiles))
        return _replace_profiles(s, [*s.profiles, ProfileSettings(token, name)])

    settings = change(req.model, edit)
    created = settings.profiles[-1]
    return [TRT.CreateProfileResponse(profile(req.model, settings, created, TRT.Profile))]


def _replace_profiles(s: MediaSettings, profiles: list[ProfileSettings]) -> MediaSettings:
    return replace(s, profiles=tuple(profiles))


ProfileEdit = Callable[[MediaSettings, ProfileSettings], ProfileSettings]


def _edit_profile(req: OnvifRequest, response: Maker, update: ProfileEdit) -> list[Element]:
    """Changes one profile: `update` returns the changed profile (or raises SoapFault)."""
    token = _required(req.body, "ProfileToken")

    def edit(s: MediaSettings) -> MediaSettings:
        prof = _profile(s, token)
        new = update(s, prof)
        return _replace_profiles(s, [new if p.token == token else p for p in s.profiles])

    change(req.model, edit)
    return [response()]


def delete_profile(req: OnvifRequest) -> list[Element]:
    token = _required(req.body, "ProfileToken")

    def edit(s: MediaSettings) -> MediaSettings:
        if _profile(s, token).fixed:
            raise SoapFault(
                RECEIVER,
                ["ter:Action", "ter:DeletionOfFixedProfile"],
                f"profile {token[:64]!r} is fixed",
            )
        return _replace_profiles(s, [p for p in s.profiles if p.token != token])

    change(req.model, edit)
    return [TRT.DeleteProfileResponse()]


def _with(**fields: object) -> Callable[[MediaSettings, ProfileSettings], ProfileSettings]:
    return lambda _s, prof: replace(prof, **fields)  # type: ignore[arg-type]


def add_video_source_configuration(req: OnvifRequest) -> list[Element]:
    _check_token(_required(req.body, "ConfigurationToken"), req.model.source_config_token)
    return _edit_profile(req, TRT.AddVideoSourceConfigurationResponse, _with(video_source=True))


def remove_video_source_configuration(req: OnvifRequest) -> list[Element]:
    return _edit_profile(req, TRT.RemoveVideoSourceConfigurationResponse, _with(video_source=False))


def add_video_encoder_configuration(req: OnvifRequest) -> list[Element]:
    token = _required(req.body, "ConfigurationToken")
    _encoder(req.model.media.settings, token)
    return _edit_profile(req, TRT.AddVideoEncoderConfigurationResponse, _with(encoder=token))


def remove_video_encoder_configuration(req: OnvifRequest) -> list[Element]:
    return _edit_profile(req, TRT.RemoveVideoEncoderConfigurationResponse, _with(encoder=None))


def add_metadata_configuration(req: OnvifRequest) -> list[Element]:
    _check_token(_required(req.body, "ConfigurationToken"), req.model.metadata_config_token)
    return _edit_profile(req, TRT.AddMetadataConfigurationResponse, _with(metadata=True))


def remove_metadata_configuration(req: OnvifRequest) -> list[Element]:
    return _edit_profile(req, TRT.RemoveMetadataConfigurationResponse, _with(metadata=False))


def _number(body: Element, *path: str, integer: bool = True) -> float | None:
    text = arg_text(body, "Configuration", *path)
    if text is None or text == "":
        return None
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise _config_modify(f"{'/'.join(path)} is not a number: {text[:40]!r}") from None
    return value


def set_video_encoder_configuration(req: OnvifRequest) -> list[Element]:
    """Changes the size, frame rate, bitrate, GOP and H.264 profile of one encoder: the stream
    really changes (the encoder reopens at the next frame, starting with an IDR)."""
    body, model = req.body, req.model
    token = _attr_token(body)
    if not token:
        raise faults.invalid_args("Configuration/@token is missing")
    encoding = arg_text(body, "Configuration", "Encoding")
    if encoding not in (None, "H264"):
        raise _config_modify(f"only H264 is encoded, not {encoding[:20]!r}")
    width = _number(body, "Resolution", "Width")
    height = _number(body, "Resolution", "Height")
    quality = _number(body, "Quality", integer=False)
    fps = _number(body, "RateControl", "FrameRateLimit")
    interval = _number(body, "RateControl", "EncodingInterval")
    bitrate = _number(body, "RateControl", "BitrateLimit")
    gop = _number(body, "H264", "GovLength")
    h264_profile = arg_text(body, "Configuration", "H264", "H264Profile")
    name = arg_text(body, "Configuration", "Name")
    if quality is not None and quality != QUALITY:
        raise _config_modify(f"Quality is fixed at {QUALITY}: the bitrate sets the quality")
    if interval not in (None, 1):
        raise _config_modify("EncodingInterval must be 1: lower the FrameRateLimit instead")
    if h264_profile is not None and h264_profile not in _H264_PROFILES:
        raise _config_modify(f"unknown H264Profile {h264_profile[:20]!r}")
    source_fps = model.source.fps or 0.0
    if fps is not None and (fps < 1 or (source_fps and fps > round(source_fps))):
        raise _config_modify(f"FrameRateLimit {fps} not in 1..{round(source_fps)}")
    if fps is not None and source_fps and fps >= round(source_fps):
        fps = 0.0  # the source's own rate (rounded, as reported): follow the source
    asked = EncoderChange(
        name=name or None,
        size=(int(width), int(height)) if width is not None and height is not None else None,
        fps=fps,
        bitrate_kbps=None if bitrate is None else int(bitrate),
        gop=None if gop is None else int(gop),
        profile=None if h264_profile is None else _H264_PROFILES[h264_profile],  # type: ignore[arg-type]
    )
    sizes = sizes_for(model)

    def edit(s: MediaSettings) -> MediaSettings:
        return s.with_encoder(asked.applied(_encoder(s, token), model.source, sizes))

    change(model, edit)
    return [TRT.SetVideoEncoderConfigurationResponse()]


def _attr_token(body: Element) -> str:
    for child in body:
        if isinstance(child.tag, str) and child.tag.endswith("}Configuration"):
            return (child.get("token") or "").strip()
    return ""


def register_media(dispatcher: OnvifDispatcher) -> None:
    """Registers the Media (ver10) operations: reads are READ_MEDIA, changes ACTUATE."""
    dispatcher.register(
        qname("trt", "GetServiceCapabilities"),
        get_service_capabilities,
        access=SERVICE_CAPABILITIES,
    )
    reads: tuple[tuple[str, Handler], ...] = (
        ("GetProfiles", get_profiles),
        ("GetProfile", get_profile),
        ("GetVideoSources", get_video_sources),
        ("GetVideoSourceConfigurations", get_video_source_configurations),
        ("GetVideoSourceConfiguration", get_video_source_configuration),
        ("GetCompatibleVideoSourceConfigurations", get_compatible_video_source_configurations),
        ("GetVideoSourceConfigurationOptions", get_video_source_configuration_options),
        ("GetVideoEncoderConfigurations", get_video_encoder_configurations),
        ("GetVideoEncoderConfiguration", get_video_encoder_configuration),
        ("GetCompatibleVideoEncoderConfigurations", get_compatible_video_encoder_configurations),
        ("GetVideoEncoderConfigurationOptions", get_video_encoder_configuration_options),
        ("GetMetadataConfigurations", get_metadata_configurations),
        ("GetMetadataConfiguration", get_metadata_configuration),
        ("GetCompatibleMetadataConfigurations", get_compatible_metadata_configurations),
        ("GetMetadataConfigurationOptions", get_metadata_configuration_options),
        ("GetOSDs", get_osds),
        ("GetOSDOptions", get_osd_options),
        ("GetStreamUri", get_stream_uri),
        ("GetSnapshotUri", get_snapshot_uri),
    )
    changes: tuple[tuple[str, Handler], ...] = (
        ("CreateProfile", create_profile),
        ("DeleteProfile", delete_profile),
        ("AddVideoSourceConfiguration", add_video_source_configuration),
        ("RemoveVideoSourceConfiguration", remove_video_source_configuration),
        ("AddVideoEncoderConfiguration", add_video_encoder_configuration),
        ("RemoveVideoEncoderConfiguration", remove_video_encoder_configuration),
        ("AddMetadataConfiguration", add_metadata_configuration),
        ("RemoveMetadataConfiguration", remove_metadata_configuration),
        ("SetVideoEncoderConfiguration", set_video_encoder_configuration),
    )
    for name, handler in reads:
        dispatcher.register(qname("trt", name), handler, access=AccessClass.READ_MEDIA)
    for name, handler in changes:
        dispatcher.register(qname("trt", name), handler, access=AccessClass.ACTUATE)
