"""Media settings for in-process ONVIF tests: streams as a client would have configured them."""

from __future__ import annotations

from typing import Any

from vcam.auth.users import UserStore
from vcam.config import Config, OutputConfig, StreamConfig
from vcam.media.types import SourceInfo
from vcam.media_settings import MediaSettings, MediaSettingsStore
from vcam.onvif.discovery import default_scopes
from vcam.onvif.model import DeviceModel, StreamInfo


def media_for(*streams: StreamConfig) -> MediaSettingsStore:
    """An in-memory store with one encoder and one fixed profile per stream."""
    cfg = Config(output=OutputConfig(streams=streams))
    return MediaSettingsStore(MediaSettings.from_config(cfg))


def stream_infos(store: MediaSettingsStore, source: SourceInfo) -> tuple[StreamInfo, ...]:
    return tuple(StreamInfo.of(e, source) for e in store.settings.encoders)


def onvif_device(users: UserStore, source: SourceInfo, media: MediaSettingsStore, **more: Any
                ) -> DeviceModel:  # fmt: skip
    """A DeviceModel with a fixed identity (serial, MAC, hostname...) for in-process tests;
    `more`: any other field (http_port, state, events, on_reboot...)."""
    fields: dict[str, Any] = {
        "manufacturer": "vcam",
        "model": "vcam privacy camera",
        "firmware": "0.1.0",
        "serial": "SN-0001",
        "hardware_id": "vcam-1",
        "hostname": "vcam-test",
        "mac": "02:00:5e:10:00:01",
        "http_port": 8080,
        "rtsp_port": 8554,
        "scopes": tuple(default_scopes("vcam", "vcam-1")),
    }
    return DeviceModel(**{**fields, "users": users, "source": source, "media": media, **more})
