"""The ONVIF Media service (ver10): one fixed profile per encoded stream, read-only for now.

Each `StreamInfo` of the model is one profile: the shared video source configuration, the
stream's H.264 encoder configuration and the shared metadata configuration. Set* operations come
later (they must persist and show up here).
"""

from __future__ import annotations

from collections.abc import Callable

from vcam.config import RtspConfig
from vcam.onvif import faults
from vcam.onvif.model import DeviceModel, StreamInfo
from vcam.onvif.service import Handler, OnvifDispatcher, OnvifRequest, arg_text, xs_bool
from vcam.onvif.soap import TRT, TT, AccessClass, Element, qname

MEDIA_VERSION = (21, 6)  # the media.wsdl served from wsdl/
QUALITY = 5  # fixed: the encoders run at a bitrate, Quality is informative
_STREAM_TYPES = frozenset({"RTP-Unicast", "RTP-Multicast"})
_PROTOCOLS = frozenset({"UDP", "TCP", "RTSP", "HTTP"})  # HTTP: tunnelled on the web port
Maker = Callable[..., Element]


def _required(body: Element, *path: str) -> str:
    value = arg_text(body, *path)
    if value is None:
        raise faults.invalid_args(f"{'/'.join(path)} is missing")
    return value


def _stream(model: DeviceModel, profile_token: str) -> StreamInfo:
    for stream in model.streams:
        if stream.profile_token == profile_token:
            return stream
    raise faults.invalid_arg(f"no profile {profile_token[:64]!r}", "ter:NoProfile")


def _main(model: DeviceModel) -> StreamInfo:
    if not model.streams:
        raise faults.action_failed("no video stream is configured")
    return model.streams[0]


# -- capabilities ------------------------------------------------------------------------------


def media_capabilities(model: DeviceModel) -> Element:
    """trt:Capabilities, as GetServiceCapabilities and GetServices(IncludeCapability) send it."""
    streaming = {"RTPMulticast": True, "RTP_TCP": True, "RTP_RTSP_TCP": True}
    return TRT.Capabilities(
        TRT.ProfileCapabilities(MaximumNumberOfProfiles=str(len(model.streams))),
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
    main = _main(model)
    return tag(
        TT.Name("VideoSourceConfig"),
        TT.UseCount(str(len(model.streams))),
        TT.SourceToken(model.source_token),
        TT.Bounds(x="0", y="0", width=str(main.width), height=str(main.height)),
        token=model.source_config_token,
    )


def video_encoder_configuration(model: DeviceModel, stream: StreamInfo, tag: Maker) -> Element:
    index = model.streams.index(stream)
    return tag(
        TT.Name(stream.name),
        TT.UseCount("1"),
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
        token=stream.encoder_token,
    )


def metadata_configuration(model: DeviceModel, tag: Maker) -> Element:
    return tag(
        TT.Name("Metadata"),
        TT.UseCount(str(len(model.streams))),
        TT.Analytics("true"),
        _multicast(model.rtsp, model.rtsp.multicast_port + 2),  # main stream's metadata track
        _session_timeout(model.rtsp),
        token=model.metadata_config_token,
    )


def profile(model: DeviceModel, stream: StreamInfo, tag: Maker) -> Element:
    return tag(
        TT.Name(stream.name),
        video_source_configuration(model, TT.VideoSourceConfiguration),
        video_encoder_configuration(model, stream, TT.VideoEncoderConfiguration),
        metadata_configuration(model, TT.MetadataConfiguration),
        token=stream.profile_token,
        fixed="true",
    )


def _encoder(model: DeviceModel, token: str) -> StreamInfo:
    for stream in model.streams:
        if stream.encoder_token == token:
            return stream
    raise faults.invalid_arg(f"no video encoder configuration {token[:64]!r}", "ter:NoConfig")


def _check_token(token: str, known: str) -> None:
    if token != known:
        raise faults.invalid_arg(f"no configuration {token[:64]!r}", "ter:NoConfig")


def _range(low: float, high: float) -> list[Element]:
    return [TT.Min(str(round(low))), TT.Max(str(round(high)))]


# -- handlers ----------------------------------------------------------------------------------


def get_service_capabilities(req: OnvifRequest) -> list[Element]:
    return [TRT.GetServiceCapabilitiesResponse(media_capabilities(req.model))]


def get_profiles(req: OnvifRequest) -> list[Element]:
    m = req.model
    return [TRT.GetProfilesResponse(*[profile(m, s, TRT.Profiles) for s in m.streams])]


def get_profile(req: OnvifRequest) -> list[Element]:
    stream = _stream(req.model, _required(req.body, "ProfileToken"))
    return [TRT.GetProfileResponse(profile(req.model, stream, TRT.Profile))]


def get_video_sources(req: OnvifRequest) -> list[Element]:
    m, main = req.model, _main(req.model)
    source = TRT.VideoSources(
        TT.Framerate(f"{main.fps:g}"),
        TT.Resolution(*_resolution(main.width, main.height)),
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


def get_video_encoder_configurations(req: OnvifRequest) -> list[Element]:
    m = req.model
    configs = [video_encoder_configuration(m, s, TRT.Configurations) for s in m.streams]
    return [TRT.GetVideoEncoderConfigurationsResponse(*configs)]


def get_video_encoder_configuration(req: OnvifRequest) -> list[Element]:
    stream = _encoder(req.model, _required(req.body, "ConfigurationToken"))
    config = video_encoder_configuration(req.model, stream, TRT.Configuration)
    return [TRT.GetVideoEncoderConfigurationResponse(config)]


def get_video_encoder_configuration_options(req: OnvifRequest) -> list[Element]:
    """Only what can really be streamed: with a configuration or profile token, that stream's
    own settings; without, every stream's."""
    config_token = arg_text(req.body, "ConfigurationToken")
    profile_token = arg_text(req.body, "ProfileToken")
    streams = list(req.model.streams)
    if config_token:
        streams = [_encoder(req.model, config_token)]
    if profile_token:
        stream = _stream(req.model, profile_token)
        if config_token and stream is not streams[0]:
            raise faults.invalid_arg("the configuration is not in that profile", "ter:NoConfig")
        streams = [stream]
    if not streams:
        raise faults.action_failed("no video stream is configured")
    sizes = list(dict.fromkeys((s.width, s.height) for s in streams))
    profiles = list(dict.fromkeys(s.h264_profile for s in streams))
    fps = [s.fps for s in streams]
    gops = [s.gop for s in streams]
    options = TRT.Options(
        TT.QualityRange(*_range(QUALITY, QUALITY)),
        TT.H264(
            *[TT.ResolutionsAvailable(*_resolution(w, h)) for w, h in sizes],
            TT.GovLengthRange(*_range(min(gops), max(gops))),
            TT.FrameRateRange(*_range(min(fps), max(fps))),
            TT.EncodingIntervalRange(*_range(1, 1)),
            *[TT.H264ProfilesSupported(p) for p in profiles],
        ),
    )
    return [TRT.GetVideoEncoderConfigurationOptionsResponse(options)]


def get_metadata_configurations(req: OnvifRequest) -> list[Element]:
    config = metadata_configuration(req.model, TRT.Configurations)
    return [TRT.GetMetadataConfigurationsResponse(config)]


def get_metadata_configuration(req: OnvifRequest) -> list[Element]:
    _check_token(_required(req.body, "ConfigurationToken"), req.model.metadata_config_token)
    config = metadata_configuration(req.model, TRT.Configuration)
    return [TRT.GetMetadataConfigurationResponse(config)]


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


def register_media(dispatcher: OnvifDispatcher) -> None:
    """Registers the Media (ver10) read operations; all READ_MEDIA."""
    ops: tuple[tuple[str, Handler], ...] = (
        ("GetServiceCapabilities", get_service_capabilities),
        ("GetProfiles", get_profiles),
        ("GetProfile", get_profile),
        ("GetVideoSources", get_video_sources),
        ("GetVideoSourceConfigurations", get_video_source_configurations),
        ("GetVideoSourceConfiguration", get_video_source_configuration),
        ("GetVideoEncoderConfigurations", get_video_encoder_configurations),
        ("GetVideoEncoderConfiguration", get_video_encoder_configuration),
        ("GetVideoEncoderConfigurationOptions", get_video_encoder_configuration_options),
        ("GetMetadataConfigurations", get_metadata_configurations),
        ("GetMetadataConfiguration", get_metadata_configuration),
        ("GetStreamUri", get_stream_uri),
        ("GetSnapshotUri", get_snapshot_uri),
    )
    for name, handler in ops:
        dispatcher.register(qname("trt", name), handler, access=AccessClass.READ_MEDIA)
