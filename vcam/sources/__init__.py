"""Frame sources: the shipped demo clip, the synthetic scene, files, URLs and V4L2 devices."""

from __future__ import annotations

import re

from vcam import DATA_DIR
from vcam.config import SourceConfig
from vcam.errors import SourceError
from vcam.sources.av_source import AvSource
from vcam.sources.base import Source
from vcam.sources.synthetic import SyntheticScene, SyntheticSource

__all__ = ["DEMO_CLIP", "AvSource", "Source", "SyntheticScene", "SyntheticSource", "open_source"]

DEMO_CLIP = DATA_DIR / "demo.mp4"
_URL = re.compile(r"^(rtsps?|https?)://", re.IGNORECASE)
_V4L2 = re.compile(r"^/dev/video\d+$")


def open_source(cfg: SourceConfig) -> Source:
    """Pick the source for `cfg.uri`. Files, the demo and devices are probed now (a bad input is a
    SourceError with a one-line message before anything starts); URLs are connected lazily by
    `frames()`, which keeps retrying, or eagerly with `AvSource.probe()`."""
    uri = cfg.uri.strip()
    if uri == "synthetic":
        return SyntheticSource(cfg.synthetic, realtime=cfg.realtime)
    if uri == "demo":
        src = AvSource(cfg, "file", str(DEMO_CLIP), loop=True)
        src.description = "demo clip"
    elif _URL.match(uri):
        return AvSource(cfg, "url", uri)
    elif _V4L2.match(uri) or uri.startswith("/dev/"):
        src = AvSource(cfg, "v4l2", uri)
    elif "://" in uri:
        raise SourceError(f"unsupported source URL scheme: {uri}")
    else:
        src = AvSource(cfg, "file", uri, loop=cfg.loop)
    src.probe()
    return src
