"""What the ONVIF services describe: the camera as the rest of vcam configured it.

One read-only snapshot built from the configuration and the running servers; the services
render it, they never reach into the pipeline themselves. What clients change lives in the two
stores it holds: `users` and `state` (hostname, scopes, discovery mode: vcam/onvif/state.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from vcam import __version__
from vcam.auth.users import UserStore
from vcam.config import RtspConfig
from vcam.onvif.state import DeviceState


@dataclass(frozen=True)
class StreamInfo:
    """One encoded stream as a Media profile shows it."""

    name: str  # bus stream and RTSP path: rtsp://HOST:PORT/<name>
    profile_token: str  # ONVIF ProfileToken, e.g. "profile_main"
    encoder_token: str  # VideoEncoderConfiguration token
    width: int
    height: int
    fps: float
    bitrate_kbps: int
    gop: int
    h264_profile: str  # "Baseline" | "Main" | "High" (tt:H264Profile)


@dataclass(frozen=True)
class DeviceModel:
    manufacturer: str
    model: str
    firmware: str
    serial: str
    hardware_id: str
    hostname: str
    mac: str  # stable, from configuration: GetNetworkInterfaces HwAddress
    http_port: int
    rtsp_port: int
    streams: tuple[StreamInfo, ...]
    source_token: str = "video_source"
    source_config_token: str = "video_source_config"
    metadata_config_token: str = "metadata_config"
    scopes: tuple[str, ...] = ()
    endpoint: str = field(default_factory=lambda: f"urn:uuid:{uuid.uuid4()}")
    users: UserStore = field(default_factory=UserStore)
    rtsp: RtspConfig = field(default_factory=RtspConfig)  # multicast and session timeout
    started: float = field(default_factory=time.time)
    snapshot_path: Callable[[str], str] = lambda stream: f"/snapshot/{stream}.jpg"
    # What clients set (hostname, configurable scopes, discovery mode); `stack.device_model`
    # loads it from the data directory. The default keeps it in memory only.
    state: DeviceState = field(default_factory=DeviceState)
    # SystemReboot calls it (it must only schedule the restart and return at once); None: the
    # device cannot reboot and SystemReboot answers a fault.
    on_reboot: Callable[[], None] | None = None

    @staticmethod
    def default_info() -> dict[str, str]:
        return {
            "manufacturer": "vcam",
            "model": "vcam privacy camera",
            "firmware": __version__,
            "hardware_id": "vcam-1",
        }
