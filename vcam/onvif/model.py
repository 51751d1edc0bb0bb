"""What the ONVIF services describe: the camera as the rest of vcam configured it.

One read-only snapshot built from the configuration and the running servers; the services
render it, they never reach into the pipeline themselves. What clients change lives in the
stores it holds: `users`, `state` (hostname, scopes, discovery mode: vcam/onvif/state.py) and
`media` (encoders, profiles, masks, imaging, masking: vcam/media_settings.py), which the camera
follows.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from vcam import __version__
from vcam.analytics.rules import RuleSet
from vcam.analytics.store import AnalyticsRuleStore
from vcam.auth.users import UserStore
from vcam.config import Config, MaskStyle, RtspConfig
from vcam.encode.h264 import effective_fps
from vcam.events.broker import EventBroker
from vcam.media.types import SourceInfo
from vcam.media_settings import (
    EncoderSettings,
    MediaSettingsStore,
    PrivacySettings,
    profile_token,
)
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
    name_label: str = ""  # tt:Name of its encoder configuration ("" : the stream name)

    @classmethod
    def of(cls, enc: EncoderSettings, source: SourceInfo) -> StreamInfo:
        """What the encoder really streams: a size or rate of 0 follows the source."""
        width, height = (enc.width, enc.height) if enc.width else (source.width, source.height)
        return cls(
            name=enc.stream,
            profile_token=profile_token(enc.stream),
            encoder_token=enc.token,
            width=width,
            height=height,
            fps=effective_fps(enc.fps, source.fps),
            bitrate_kbps=enc.bitrate_kbps,
            gop=enc.gop,
            h264_profile=_H264_PROFILES[enc.profile],
            name_label=enc.name,
        )


_H264_PROFILES = {"baseline": "Baseline", "main": "Main", "high": "High"}


def _default_media() -> MediaSettingsStore:
    return MediaSettingsStore.load(None, Config())


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
    source: SourceInfo
    # Encoders, profiles, masks and imaging as clients set them (vcam/media_settings.py).
    media: MediaSettingsStore = field(default_factory=_default_media)
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
    # What the camera and its analytics report; the Event service subscribes to it.
    events: EventBroker = field(default_factory=EventBroker)
    # The analytics rules the engine follows (ONVIF Analytics edits them); `vcam serve` passes
    # the camera's store. The default: in memory, no rules.
    rules: AnalyticsRuleStore = field(default_factory=lambda: AnalyticsRuleStore(RuleSet()))
    # How the configured static zones ([privacy] zones) are drawn: configuration only.
    zone_style: MaskStyle = "solid"

    @property
    def privacy(self) -> PrivacySettings:
        """Masking mode, style and detector thresholds as clients set them (the Analytics
        service's vcam:PrivacyMasking module, the web page): held by `media`, which the camera
        follows."""
        return self.media.settings.privacy

    @property
    def streams(self) -> tuple[StreamInfo, ...]:
        """One per encoder, as it streams now."""
        return tuple(StreamInfo.of(e, self.source) for e in self.media.settings.encoders)

    @staticmethod
    def default_info() -> dict[str, str]:
        return {
            "manufacturer": "vcam",
            "model": "vcam privacy camera",
            "firmware": __version__,
            "hardware_id": "vcam-1",
        }
