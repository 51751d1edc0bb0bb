"""What clients change about the picture: encoder settings, media profiles, privacy masks,
imaging and the masking itself (mode, style, detector thresholds), kept in
`<data_dir>/media.json`.

One source of truth for ONVIF Media (ver10 and Media2), Imaging and the web page: each of them
edits a `MediaSettingsStore`, the camera follows it live (encoders reopen at the new size, rate,
bitrate and GOP; masks become static privacy zones; imaging adjusts the masked output), and the
services render what it holds.

The configuration gives the starting point: one encoder and one fixed profile per configured
stream, and the configured masking. A kept encoder setting remembers the configuration it was
derived from; when the configuration of that stream changed since (someone edited the file), the
file wins again. The masking settings do the same per value: a mode kept from ONVIF stays until
someone edits `[privacy] mode` in the file.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from vcam.config import Config, H264Profile, MaskMode, MaskStyle, StreamConfig
from vcam.encode.h264 import effective_fps
from vcam.errors import VcamError
from vcam.media.types import SourceInfo
from vcam.persist import SettingsStore, read_json

log = logging.getLogger(__name__)

FILE_VERSION = 1
MAX_PROFILES = 8  # fixed ones included (Media GetServiceCapabilities MaximumNumberOfProfiles)
MAX_MASKS = 8
MAX_MASK_POINTS = 16
MAX_NAME = 64
MIN_SIZE, MAX_SIZE = 16, 4096
MAX_FPS = 60.0
BITRATE_RANGE = (32, 20_000)  # kbit/s
GOP_RANGE = (1, 600)
Point = tuple[float, float]  # normalised 0..1, y down: the convention of `privacy.zones`
MaskKind = Literal["Color", "Pixelated", "Blurred"]  # tr2:MaskOptions Types
_TOKEN = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class MediaSettingsError(VcamError, ValueError):
    """Invalid media settings, or a kept file that cannot be read; the message says why."""


@dataclass(frozen=True)
class EncoderSettings:
    """One H.264 encoder: one per configured stream, never more (GetVideoEncoderInstances)."""

    stream: str  # the configured stream it encodes: bus and RTSP path name
    name: str  # tt:Name, clients may rename it
    width: int  # 0 with height 0: the source's size
    height: int
    fps: float  # 0: the source's rate
    bitrate_kbps: int
    gop: int
    profile: H264Profile

    @property
    def token(self) -> str:
        return encoder_token(self.stream)

    @classmethod
    def from_config(cls, st: StreamConfig) -> EncoderSettings:
        return cls(
            st.name, st.name, st.width, st.height, st.fps, st.bitrate_kbps, st.gop, st.profile
        )

    def stream_config(self, base: StreamConfig) -> StreamConfig:
        """The configured stream with these settings applied (preset and threads stay)."""
        return dataclasses.replace(
            base,
            width=self.width,
            height=self.height,
            fps=self.fps,
            bitrate_kbps=self.bitrate_kbps,
            gop=self.gop,
            profile=self.profile,
        )

    def check(self) -> None:
        where = f"encoder {self.stream!r}"
        _check_name(self.name, where)
        if (self.width == 0) != (self.height == 0):
            raise MediaSettingsError(f"{where}: width and height must both be 0 or neither")
        for value in (self.width, self.height):
            if value and not (MIN_SIZE <= value <= MAX_SIZE and value % 2 == 0):
                raise MediaSettingsError(
                    f"{where}: size {self.width}x{self.height} is not even in "
                    f"{MIN_SIZE}..{MAX_SIZE}"
                )
        if not 0 <= self.fps <= MAX_FPS:
            raise MediaSettingsError(f"{where}: frame rate {self.fps} not in 0..{MAX_FPS:g}")
        if not BITRATE_RANGE[0] <= self.bitrate_kbps <= BITRATE_RANGE[1]:
            raise MediaSettingsError(f"{where}: bitrate {self.bitrate_kbps} kbit/s out of range")
        if not GOP_RANGE[0] <= self.gop <= GOP_RANGE[1]:
            raise MediaSettingsError(f"{where}: GOP {self.gop} not in {GOP_RANGE}")
        if self.profile not in get_args(H264Profile):
            raise MediaSettingsError(f"{where}: unknown H.264 profile {self.profile!r}")


@dataclass(frozen=True)
class EncoderChange:
    """What a client asked of one encoder (Media or Media2 SetVideoEncoderConfiguration); None
    leaves that setting as it is. `applied` gives both services the same meaning."""

    name: str | None = None
    size: tuple[int, int] | None = None
    fps: float | None = None  # 0: follow the source's rate
    bitrate_kbps: int | None = None
    gop: int | None = None
    profile: H264Profile | None = None

    def applied(
        self, enc: EncoderSettings, source: SourceInfo, offered: Iterable[tuple[int, int]]
    ) -> EncoderSettings:
        """`enc` with the change: a size or rate equal to what streams now keeps "follow the
        source" as it is, the source's own size or rate means following the source, and a new
        size must be one `offered` (MediaSettingsError otherwise)."""
        new = enc
        if self.name:
            new = dataclasses.replace(new, name=self.name)
        now = (enc.width, enc.height) if enc.width else (source.width, source.height)
        if self.size is not None and self.size != now:
            if self.size not in set(offered):
                w, h = self.size
                raise MediaSettingsError(
                    f"resolution {w}x{h} is not offered "
                    "(GetVideoEncoderConfigurationOptions lists them)"
                )
            follow = self.size == (source.width, source.height)
            width, height = (0, 0) if follow else self.size
            new = dataclasses.replace(new, width=width, height=height)
        if self.fps is not None:
            if self.fps == 0:  # asked to follow the source (EncoderSettings' convention)
                new = dataclasses.replace(new, fps=0.0)
            elif source.fps <= 0:  # not known yet: keep what was asked
                new = dataclasses.replace(new, fps=self.fps)
            elif effective_fps(self.fps, source.fps) != effective_fps(enc.fps, source.fps):
                new = dataclasses.replace(new, fps=self.fps if self.fps < source.fps else 0.0)
        if self.bitrate_kbps is not None:
            new = dataclasses.replace(new, bitrate_kbps=self.bitrate_kbps)
        if self.gop is not None:
            new = dataclasses.replace(new, gop=self.gop)
        if self.profile is not None:
            new = dataclasses.replace(new, profile=self.profile)
        return new


@dataclass(frozen=True)
class ProfileSettings:
    """A media profile: which configurations it binds. Fixed ones come from the configured
    streams and cannot be deleted; clients create and delete the others (Synology does)."""

    token: str
    name: str
    fixed: bool = False
    video_source: bool = False  # the one video source configuration is in it
    encoder: str | None = None  # an encoder token
    metadata: bool = False  # the one metadata configuration is in it

    def check(self, encoders: Iterable[str]) -> None:
        if not _TOKEN.fullmatch(self.token):
            raise MediaSettingsError(f"invalid profile token {self.token[:80]!r}")
        _check_name(self.name, f"profile {self.token!r}")
        if self.encoder is not None and self.encoder not in encoders:
            raise MediaSettingsError(f"profile {self.token!r}: no encoder {self.encoder!r}")


@dataclass(frozen=True)
class MaskSettings:
    """A static privacy mask (Media2 tr2:Mask): a polygon covered in every output frame."""

    token: str
    polygon: tuple[Point, ...]
    kind: MaskKind = "Color"
    color: tuple[int, int, int] = (0, 0, 0)  # RGB 0..255, for kind Color
    enabled: bool = True

    def check(self) -> None:
        if not _TOKEN.fullmatch(self.token):
            raise MediaSettingsError(f"invalid mask token {self.token[:80]!r}")
        if not 3 <= len(self.polygon) <= MAX_MASK_POINTS:
            raise MediaSettingsError(f"mask {self.token!r}: 3..{MAX_MASK_POINTS} points")
        for x, y in self.polygon:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise MediaSettingsError(f"mask {self.token!r}: point {(x, y)} outside 0..1")
        if self.kind not in get_args(MaskKind):
            raise MediaSettingsError(f"mask {self.token!r}: unknown type {self.kind!r}")
        if len(self.color) != 3 or not all(0 <= c <= 255 for c in self.color):
            raise MediaSettingsError(f"mask {self.token!r}: colour {self.color} not RGB 0..255")


@dataclass(frozen=True)
class ImagingSettings:
    """Brightness, contrast and saturation of the output, 0..100; 50 leaves it unchanged."""

    brightness: float = 50.0
    contrast: float = 50.0
    saturation: float = 50.0

    @property
    def neutral(self) -> bool:
        return self == ImagingSettings()

    def check(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            value = getattr(self, name)
            if not 0.0 <= value <= 100.0:
                raise MediaSettingsError(f"imaging {name} {value} not in 0..100")


@dataclass(frozen=True)
class PrivacySettings:
    """How detected people are masked: what (mode), how (style), and the detectors' score
    thresholds. Style and thresholds apply from the next frame; a mode change restarts the
    pipeline with the detectors the mode needs (fully masked until they have spoken)."""

    mode: MaskMode = "face+body"
    style: MaskStyle = "mosaic"
    face_threshold: float = 0.25
    person_threshold: float = 0.3

    @classmethod
    def from_config(cls, cfg: Config) -> PrivacySettings:
        return cls(
            cfg.privacy.mode,
            cfg.privacy.style,
            cfg.detectors.face.threshold,
            cfg.detectors.person.threshold,
        )

    def check(self) -> None:
        if self.mode not in get_args(MaskMode):
            raise MediaSettingsError(f"unknown masking mode {str(self.mode)[:40]!r}")
        if self.style not in get_args(MaskStyle):
            raise MediaSettingsError(f"unknown masking style {str(self.style)[:40]!r}")
        for name in ("face_threshold", "person_threshold"):
            value = getattr(self, name)
            # The configuration's rule (detectors.*.threshold): 0 would mask noise, 1 nothing.
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not 0.0 < value < 1.0
            ):
                raise MediaSettingsError(f"{name} {value!r} not in (0, 1)")

    def apply(self, cfg: Config) -> Config:
        """`cfg` with these values in [privacy] and [detectors]: what the camera runs with."""
        d = cfg.detectors
        return dataclasses.replace(
            cfg,
            privacy=dataclasses.replace(cfg.privacy, mode=self.mode, style=self.style),
            detectors=dataclasses.replace(
                d,
                face=dataclasses.replace(d.face, threshold=self.face_threshold),
                person=dataclasses.replace(d.person, threshold=self.person_threshold),
            ),
        )


def available_modes(cfg: Config) -> tuple[MaskMode, ...]:
    """The masking modes whose detectors the configuration enables (a disabled detector is
    never loaded at run time either: its model may not even be installed)."""
    out: list[MaskMode] = []
    for mode in get_args(MaskMode):
        needs_face = mode != "body"
        needs_person = mode != "face" or cfg.privacy.person_heads
        if (cfg.detectors.face.enabled or not needs_face) and (
            cfg.detectors.person.enabled or not needs_person
        ):
            out.append(mode)
    return tuple(out)


@dataclass(frozen=True)
class MediaSettings:
    encoders: tuple[EncoderSettings, ...]
    profiles: tuple[ProfileSettings, ...]
    masks: tuple[MaskSettings, ...] = ()
    imaging: ImagingSettings = field(default_factory=ImagingSettings)
    # The configuration each encoder's settings were derived from (stream name -> StreamConfig
    # fields), so an edited configuration file wins over older client settings.
    baselines: tuple[tuple[str, str], ...] = ()
    revision: int = 0
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    # The configured masking the kept `privacy` was derived from: per value, an edited
    # configuration wins over what clients set before.
    privacy_baseline: PrivacySettings = field(default_factory=PrivacySettings)

    @classmethod
    def from_config(cls, cfg: Config) -> MediaSettings:
        encoders = tuple(EncoderSettings.from_config(st) for st in cfg.output.streams)
        privacy = PrivacySettings.from_config(cfg)
        return cls(
            encoders,
            fixed_profiles(encoders),
            baselines=_baselines(cfg),
            privacy=privacy,
            privacy_baseline=privacy,
        )

    def with_encoder(self, new: EncoderSettings) -> MediaSettings:
        """These settings with the encoder of `new`'s stream replaced by `new`."""
        encoders = tuple(new if e.stream == new.stream else e for e in self.encoders)
        return dataclasses.replace(self, encoders=encoders)

    def encoder(self, token: str) -> EncoderSettings | None:
        return next((e for e in self.encoders if e.token == token), None)

    def profile(self, token: str) -> ProfileSettings | None:
        return next((p for p in self.profiles if p.token == token), None)

    def mask(self, token: str) -> MaskSettings | None:
        return next((m for m in self.masks if m.token == token), None)

    def use_count(self, encoder: str) -> int:
        return sum(1 for p in self.profiles if p.encoder == encoder)

    def check(self) -> None:
        streams = [e.stream for e in self.encoders]
        if len(set(streams)) != len(streams):
            raise MediaSettingsError("duplicate encoder streams")
        for e in self.encoders:
            e.check()
        tokens = [p.token for p in self.profiles]
        if len(set(tokens)) != len(tokens):
            raise MediaSettingsError("duplicate profile tokens")
        if len(self.profiles) > MAX_PROFILES:
            raise MediaSettingsError(f"more than {MAX_PROFILES} profiles")
        encoder_tokens = [e.token for e in self.encoders]
        for p in self.profiles:
            p.check(encoder_tokens)
        mask_tokens = [m.token for m in self.masks]
        if len(set(mask_tokens)) != len(mask_tokens):
            raise MediaSettingsError("duplicate mask tokens")
        if len(self.masks) > MAX_MASKS:
            raise MediaSettingsError(f"more than {MAX_MASKS} masks")
        for m in self.masks:
            m.check()
        self.imaging.check()
        self.privacy.check()

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FILE_VERSION,
            "encoders": [dataclasses.asdict(e) for e in self.encoders],
            "profiles": [dataclasses.asdict(p) for p in self.profiles if not p.fixed],
            "fixed_profiles": [dataclasses.asdict(p) for p in self.profiles if p.fixed],
            "masks": [dataclasses.asdict(m) for m in self.masks],
            "imaging": dataclasses.asdict(self.imaging),
            "baselines": dict(self.baselines),
            "revision": self.revision,
            "privacy": dataclasses.asdict(self.privacy),
            "privacy_baseline": dataclasses.asdict(self.privacy_baseline),
        }


def encoder_token(stream: str) -> str:
    return f"encoder_{stream}"


def profile_token(stream: str) -> str:
    return f"profile_{stream}"


def fixed_profiles(encoders: Iterable[EncoderSettings]) -> tuple[ProfileSettings, ...]:
    return tuple(
        ProfileSettings(profile_token(e.stream), e.stream, True, True, e.token, True)
        for e in encoders
    )


def next_token(prefix: str, taken: Iterable[str]) -> str:
    """A token after every numbered one in use (`mask_3` -> `mask_4`), so a client holding the
    token of a deleted object does not reach a newer one through it (Media2 CreateMask)."""
    numbers = [int(t[len(prefix) :]) for t in taken if re.fullmatch(rf"{prefix}\d{{1,9}}", t)]
    return f"{prefix}{max(numbers, default=0) + 1}"


def _check_name(name: str, where: str) -> None:
    if not name or len(name) > MAX_NAME or any(ord(c) < 0x20 for c in name):
        raise MediaSettingsError(f"{where}: name must be 1..{MAX_NAME} printable characters")


def _baselines(cfg: Config) -> tuple[tuple[str, str], ...]:
    return tuple((st.name, repr(dataclasses.astuple(st))) for st in cfg.output.streams)


def reconcile(kept: dict[str, Any], cfg: Config) -> MediaSettings:
    """The kept settings fitted to the configuration now: encoders of streams no longer
    configured go (and profiles lose them), encoders whose configuration changed since start
    again from it, new streams get their configured settings. Raises MediaSettingsError."""
    if not isinstance(kept, dict) or kept.get("version") != FILE_VERSION:
        raise MediaSettingsError("not a vcam media settings file (unknown version)")
    fresh = MediaSettings.from_config(cfg)
    try:
        old_baselines = dict(kept.get("baselines", {}))
        by_stream = {e["stream"]: EncoderSettings(**e) for e in kept.get("encoders", [])}
        encoders = []
        for default, (stream, baseline) in zip(fresh.encoders, fresh.baselines, strict=True):
            mine = by_stream.get(stream)
            if mine is not None and old_baselines.get(stream) == baseline:
                encoders.append(mine)
            else:
                if mine is not None:
                    log.info("stream %s: configuration changed, client settings dropped", stream)
                encoders.append(default)
        tokens = {e.token for e in encoders}
        fixed = {p["token"]: ProfileSettings(**p) for p in kept.get("fixed_profiles", [])}
        profiles = [
            dataclasses.replace(p, name=fixed[p.token].name) if p.token in fixed else p
            for p in fresh.profiles
        ]
        for p in kept.get("profiles", []):
            prof = ProfileSettings(**p)
            if prof.encoder is not None and prof.encoder not in tokens:
                prof = dataclasses.replace(prof, encoder=None)
            if prof.fixed or any(q.token == prof.token for q in profiles):
                continue  # a fixed profile's token now, or a duplicate: the configuration wins
            profiles.append(prof)
        masks = []
        for m in kept.get("masks", []):
            polygon = tuple((float(x), float(y)) for x, y in m.pop("polygon"))
            masks.append(MaskSettings(polygon=polygon, color=tuple(m.pop("color")), **m))
        imaging = ImagingSettings(**kept.get("imaging", {}))
        revision = int(kept.get("revision", 0))
        privacy = _reconcile_privacy(kept, fresh.privacy, available_modes(cfg))
    except (TypeError, KeyError, ValueError) as exc:
        raise MediaSettingsError(f"unreadable entry: {exc}") from None
    settings = MediaSettings(
        tuple(encoders),
        tuple(profiles),
        tuple(masks),
        imaging,
        fresh.baselines,
        revision,
        privacy,
        fresh.privacy_baseline,
    )
    settings.check()
    return settings


def _reconcile_privacy(
    kept: dict[str, Any], configured: PrivacySettings, modes: tuple[str, ...]
) -> PrivacySettings:
    """The kept masking values whose configured value is still the one they were set against;
    the configured value for the others. An older file without them: the configuration."""
    if "privacy" not in kept:
        return configured
    mine = PrivacySettings(**kept["privacy"])
    # No baseline (a hand-made file): the values were set against today's configuration.
    base = PrivacySettings(**kept["privacy_baseline"]) if "privacy_baseline" in kept else configured
    values = {}
    for f in dataclasses.fields(PrivacySettings):
        if getattr(base, f.name) == getattr(configured, f.name):
            values[f.name] = getattr(mine, f.name)
        else:
            log.info("privacy %s: configuration changed, client setting dropped", f.name)
            values[f.name] = getattr(configured, f.name)
    if values["mode"] not in modes:  # a detector disabled in the file since
        log.info("privacy mode %s: its detector is disabled now", values["mode"])
        values["mode"] = configured.mode
    return PrivacySettings(**values)


class MediaSettingsStore(SettingsStore[MediaSettings]):
    """The media settings, kept in `path` (if any) before every change takes effect.
    `defaults`: what the configuration alone gives (factory defaults)."""

    def __init__(
        self,
        settings: MediaSettings,
        path: Path | None = None,
        defaults: MediaSettings | None = None,
        modes: tuple[str, ...] | None = None,
    ) -> None:
        """`modes`: the masking modes clients may choose (None: all of them)."""
        super().__init__(settings, path)
        self.defaults = defaults if defaults is not None else settings
        self.modes: tuple[str, ...] = modes if modes is not None else get_args(MaskMode)

    @classmethod
    def load(cls, path: Path | None, cfg: Config) -> MediaSettingsStore:
        """The settings kept in `path` fitted to `cfg` (the configured ones if there is no
        file yet). A damaged file: MediaSettingsError naming it."""
        defaults = MediaSettings.from_config(cfg)
        modes = available_modes(cfg)
        if path is None:
            return cls(defaults, modes=modes)
        try:
            kept = read_json(path)
            settings = defaults if kept is None else reconcile(kept, cfg)
        except (OSError, ValueError) as exc:  # MediaSettingsError is a ValueError
            raise MediaSettingsError(f"damaged media settings file {path}: {exc}") from None
        return cls(settings, path, defaults, modes)

    def change(self, edit: Callable[[MediaSettings], MediaSettings]) -> MediaSettings:
        """As SettingsStore.change; a masking mode whose detector the configuration disables
        is refused (MediaSettingsError), before anything is written."""

        def checked(settings: MediaSettings) -> MediaSettings:
            after = edit(settings)
            after.privacy.check()  # an unknown mode is that, not an unavailable one
            mode = after.privacy.mode
            if mode != settings.privacy.mode and mode not in self.modes:
                raise MediaSettingsError(
                    f"masking mode {mode!r} needs a detector that vcam's configuration disables"
                    f" (modes available: {', '.join(self.modes)})"
                )
            return after

        return super().change(checked)

    def reset(self) -> MediaSettings:
        """Factory defaults: the configured encoders and profiles, no masks, neutral imaging."""
        return self.change(lambda _: self.defaults)


# Widths offered besides the source's own and its halvings (kept only where the source's aspect
# ratio gives a whole, even height): what VMSs usually pick from.
_COMMON_WIDTHS: tuple[int, ...] = (
    2560, 1920, 1600, 1280, 1024, 960, 800, 768, 720, 640, 480, 384, 352, 320, 256, 240, 192,
    176, 160, 128, 96, 64, 32,
)  # fmt: skip


def available_sizes(
    source_width: int, source_height: int, current: Iterable[tuple[int, int]] = ()
) -> list[tuple[int, int]]:
    """The resolutions an encoder can really stream from this source, largest first: the
    source's size and smaller sizes of exactly its aspect ratio (even, at least MIN_SIZE:
    libx264 needs even sizes; no upscaling), and the sizes the encoders stream now (a
    configured 640x360 of a 4:3 source). Before a network source's first frame: those only."""
    sizes = dict.fromkeys(current)
    if source_width >= MIN_SIZE and source_height >= MIN_SIZE:
        width, height = source_width, source_height
        sizes[(width - width % 2, height - height % 2)] = None
        halvings = (width // d for d in (2, 4, 8) if width % d == 0)
        for w in {*_COMMON_WIDTHS, *halvings}:
            if w >= width or (w * height) % width:
                continue
            h = w * height // width
            if w % 2 == 0 and h % 2 == 0 and w >= MIN_SIZE and h >= MIN_SIZE:
                sizes[(w, h)] = None
    return sorted(sizes, key=lambda s: (-s[0] * s[1], -s[0]))
