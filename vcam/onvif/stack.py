"""Builds the ONVIF side of the camera: device model, dispatcher, HTTP server, discovery."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from vcam.analytics.store import FILE_NAME as ANALYTICS_FILE
from vcam.analytics.store import AnalyticsRuleStore, configured_rules
from vcam.auth.digest import DigestAuth
from vcam.auth.users import UserStore
from vcam.config import Config
from vcam.datadir import data_dir, device_id, mac_address
from vcam.errors import ConfigError
from vcam.events.broker import EventBroker
from vcam.media.types import SourceInfo
from vcam.media_settings import MediaSettingsError, MediaSettingsStore
from vcam.onvif.analytics import register_analytics
from vcam.onvif.device import register_device, scopes
from vcam.onvif.deviceio import register_deviceio
from vcam.onvif.discovery import DiscoveryDevice, DiscoveryResponder, default_scopes
from vcam.onvif.events import register_events
from vcam.onvif.imaging import register_imaging
from vcam.onvif.media import register_media
from vcam.onvif.media2 import register_media2
from vcam.onvif.model import DeviceModel
from vcam.onvif.service import OnvifDispatcher
from vcam.onvif.soap import Dispatcher
from vcam.onvif.state import DeviceState, DeviceStateError, DiscoveryMode
from vcam.onvif.wssecurity import UsernameTokenAuth
from vcam.web.onvif_http import OnvifEndpoint
from vcam.web.server import WebServer
from vcam.web.snapshot import LatestFrame

if TYPE_CHECKING:
    from vcam.rtsp.server import RtspServer
    from vcam.status import LiveCamera

DEVICE_STATE_FILE = "device.json"
MEDIA_STATE_FILE = "media.json"


def device_state(cfg: Config) -> DeviceState:
    """The Device settings clients changed, kept in `<data_dir>/device.json`. A damaged file
    stops vcam with a config error naming it."""
    try:
        return DeviceState.load(data_dir(cfg) / DEVICE_STATE_FILE)
    except DeviceStateError as exc:
        raise ConfigError("data_dir", str(exc)) from None


def media_store(cfg: Config) -> MediaSettingsStore:
    """Encoders, profiles, masks, imaging and masking as clients set them, kept in
    `<data_dir>/media.json`. A damaged file stops vcam with a config error naming it."""
    try:
        return MediaSettingsStore.load(data_dir(cfg) / MEDIA_STATE_FILE, cfg)
    except MediaSettingsError as exc:
        raise ConfigError("data_dir", str(exc)) from None


def analytics_store(cfg: Config) -> AnalyticsRuleStore:
    """The analytics rules: the configured ones, and those clients created, kept in
    `<data_dir>/analytics.json`. A damaged file stops vcam with a config error naming it."""
    try:
        return AnalyticsRuleStore.load(
            data_dir(cfg) / ANALYTICS_FILE, configured_rules(cfg.analytics)
        )
    except ValueError as exc:  # RuleError
        raise ConfigError("data_dir", str(exc)) from None


def device_model(
    cfg: Config,
    users: UserStore,
    source: SourceInfo,
    http_port: int,
    rtsp_port: int,
    state: DeviceState | None = None,
    media: MediaSettingsStore | None = None,
    events: EventBroker | None = None,
    rules: AnalyticsRuleStore | None = None,
) -> DeviceModel:
    """The camera as ONVIF describes it. `state`, `media` and `rules`: the stores the camera
    already follows (loaded from the data directory when not given: pass the camera's, or two
    stores share one file); `events`: the camera's broker."""
    ident = device_id(cfg)
    info = DeviceModel.default_info()
    return DeviceModel(
        manufacturer=info["manufacturer"],
        model=info["model"],
        firmware=info["firmware"],
        serial=ident.hex[:12],
        hardware_id=info["hardware_id"],
        hostname=socket.gethostname(),
        mac=mac_address(ident),
        http_port=http_port,
        rtsp_port=rtsp_port,
        source=source,
        media=media if media is not None else media_store(cfg),
        events=events if events is not None else EventBroker(),
        rules=rules if rules is not None else analytics_store(cfg),
        zone_style=cfg.privacy.zone_style,
        # S (Media, RTSP), T (Media2, Imaging, Events, RTSP over HTTP), M (Analytics, metadata
        # with events): what the services below implement.
        scopes=tuple(
            default_scopes(
                cfg.onvif.name, info["hardware_id"], cfg.onvif.location or None, profiles="STM"
            )
        ),
        endpoint=ident.urn,
        users=users,
        rtsp=cfg.rtsp,
        state=state if state is not None else device_state(cfg),
    )


def build_dispatcher() -> OnvifDispatcher:
    dispatcher: OnvifDispatcher = Dispatcher()
    register_device(dispatcher)
    register_media(dispatcher)
    register_media2(dispatcher)
    register_imaging(dispatcher)
    register_deviceio(dispatcher)
    register_events(dispatcher)
    register_analytics(dispatcher)
    return dispatcher


def build_web(
    cfg: Config,
    model: DeviceModel,
    users: UserStore,
    digest: DigestAuth,
    latest: LatestFrame,
    rtsp: RtspServer | None = None,
    camera: LiveCamera | None = None,
) -> WebServer:
    """`rtsp`: the server whose sessions the web port's RTSP-over-HTTP tunnel reaches;
    `camera`: the running camera (encoded bus, status) for the web page and WebRTC."""
    endpoint = OnvifEndpoint(build_dispatcher(), model, UsernameTokenAuth(users), digest)
    return WebServer(
        cfg.web.bind, cfg.web.port, endpoint, latest, digest, rtsp, camera, web_config=cfg.web
    )


def build_discovery(cfg: Config, model: DeviceModel, http_port: int) -> DiscoveryResponder:
    # Host 0.0.0.0 in XAddrs: filled per probe with the address the prober reached.
    host = cfg.web.bind
    xaddrs = [f"http://{host}:{http_port}/onvif/device_service"]

    def device() -> DiscoveryDevice | None:
        # Per probe (and Hello/Bye): the scopes clients set since, with a MetadataVersion that
        # grows with every change; None (no answer at all) while NonDiscoverable.
        settings = model.state.settings
        if settings.discovery_mode is DiscoveryMode.NON_DISCOVERABLE:
            return None
        return DiscoveryDevice(
            endpoint=model.endpoint,
            scopes=scopes(model),
            xaddrs=xaddrs,
            metadata_version=1 + settings.revision % 0xFFFFFFFF,
        )

    return DiscoveryResponder(
        device,
        bind=cfg.web.bind,
        port=cfg.onvif.discovery_port,
        join_multicast=cfg.web.bind == "0.0.0.0" or not cfg.web.bind.startswith("127."),
    )
