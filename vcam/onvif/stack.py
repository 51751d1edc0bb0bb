"""Builds the ONVIF side of the camera: device model, dispatcher, HTTP server, discovery."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from vcam.auth.digest import DigestAuth
from vcam.auth.users import UserStore
from vcam.config import Config
from vcam.datadir import data_dir, device_id, mac_address
from vcam.errors import ConfigError
from vcam.onvif.device import register_device, scopes
from vcam.onvif.discovery import DiscoveryDevice, DiscoveryResponder, default_scopes
from vcam.onvif.media import register_media
from vcam.onvif.model import DeviceModel, StreamInfo
from vcam.onvif.service import OnvifDispatcher
from vcam.onvif.soap import Dispatcher
from vcam.onvif.state import DeviceState, DeviceStateError, DiscoveryMode
from vcam.onvif.wssecurity import UsernameTokenAuth
from vcam.web.onvif_http import OnvifEndpoint
from vcam.web.server import WebServer
from vcam.web.snapshot import LatestFrame

if TYPE_CHECKING:
    from vcam.rtsp.server import RtspServer

_H264_PROFILES = {"baseline": "Baseline", "main": "Main", "high": "High"}
DEVICE_STATE_FILE = "device.json"


def device_state(cfg: Config) -> DeviceState:
    """The Device settings clients changed, kept in `<data_dir>/device.json`. A damaged file
    stops vcam with a config error naming it."""
    try:
        return DeviceState.load(data_dir(cfg) / DEVICE_STATE_FILE)
    except DeviceStateError as exc:
        raise ConfigError("data_dir", str(exc)) from None


def device_model(
    cfg: Config,
    users: UserStore,
    source_size: tuple[int, int],
    source_fps: float,
    http_port: int,
    rtsp_port: int,
    state: DeviceState | None = None,
) -> DeviceModel:
    """The camera as ONVIF describes it. A model rebuilt later (e.g. once a network source's
    size is known) passes the first one's `state`, so handlers and discovery share it."""
    ident = device_id(cfg)
    streams = []
    for st in cfg.output.streams:
        w, h = (st.width, st.height) if st.width else source_size
        fps = st.fps if 0 < st.fps < source_fps else source_fps
        streams.append(
            StreamInfo(
                name=st.name,
                profile_token=f"profile_{st.name}",
                encoder_token=f"encoder_{st.name}",
                width=w,
                height=h,
                fps=fps,
                bitrate_kbps=st.bitrate_kbps,
                gop=st.gop,
                h264_profile=_H264_PROFILES[st.profile],
            )
        )
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
        streams=tuple(streams),
        # Only what is implemented: Profile S streaming today (T and M come with Media2/events).
        scopes=tuple(
            default_scopes(
                cfg.onvif.name, info["hardware_id"], cfg.onvif.location or None, profiles="S"
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
    return dispatcher


def build_web(
    cfg: Config,
    model: DeviceModel,
    users: UserStore,
    digest: DigestAuth,
    latest: LatestFrame,
    rtsp: RtspServer | None = None,
) -> WebServer:
    """`rtsp`: the server whose sessions the web port's RTSP-over-HTTP tunnel reaches."""
    endpoint = OnvifEndpoint(build_dispatcher(), model, UsernameTokenAuth(users), digest)
    sizes = {s.name: (s.width, s.height) for s in model.streams}
    return WebServer(cfg.web.bind, cfg.web.port, endpoint, latest, digest, sizes, rtsp)


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
