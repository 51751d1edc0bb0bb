"""Media settings for in-process ONVIF tests: streams as a client would have configured them."""

from __future__ import annotations

from vcam.config import Config, OutputConfig, StreamConfig
from vcam.media.types import SourceInfo
from vcam.media_settings import MediaSettings, MediaSettingsStore
from vcam.onvif.model import StreamInfo


def media_for(*streams: StreamConfig) -> MediaSettingsStore:
    """An in-memory store with one encoder and one fixed profile per stream."""
    cfg = Config(output=OutputConfig(streams=streams))
    return MediaSettingsStore(MediaSettings.from_config(cfg))


def stream_infos(store: MediaSettingsStore, source: SourceInfo) -> tuple[StreamInfo, ...]:
    return tuple(StreamInfo.of(e, source) for e in store.settings.encoders)
