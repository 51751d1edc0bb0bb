"""Configuration: frozen dataclasses loaded from one TOML file and validated once at start.

Unknown keys and bad values raise ConfigError naming the dotted key, so a typo in a camera's
config is a clear error at start and never a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from vcam.analytics.rules import (
    MAX_RULES,
    LoiteringDetector,
    QueueMonitor,
    RuleError,
    rule_from_flat,
)
from vcam.auth.users import InvalidPassword, PasswordTooLong, User, UserError
from vcam.auth.users import validate as validate_user
from vcam.errors import ConfigError

MaskMode = Literal["face", "body", "face+body"]
MaskStyle = Literal["mosaic", "blocks", "blur", "solid"]
AudioMode = Literal["drop", "copy"]
H264Profile = Literal["baseline", "main", "high"]


@dataclass(frozen=True)
class SyntheticConfig:
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    seed: int = 1
    duration_s: float = 20.0  # the scene repeats after this many seconds
    stamp: bool = False  # draw frame index and time (ms) into the top rows (latency tests)


@dataclass(frozen=True)
class SourceConfig:
    # "demo", "synthetic", a file path, rtsp:// or http(s):// URL, or /dev/videoN
    uri: str = "demo"
    loop: bool = True  # loop files when serving (never for `vcam mask`)
    realtime: bool = True  # pace files and synthetic scenes at their frame rate
    open_timeout_s: float = 10.0
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    v4l2_width: int = 0  # 0: the device's default
    v4l2_height: int = 0
    v4l2_fps: float = 0.0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass(frozen=True)
class DetectorConfig:
    model: str
    # The size frames are scaled to for the detector; both 0: "auto", from the source's size
    # (vcam.privacy.detectors.sizing: 1280x720 -> 640x360, 1920x1080 -> 960x540)
    input_width: int
    input_height: int
    threshold: float
    threads: int = 1  # onnxruntime intra-op threads per session
    workers: int = 1  # sessions taking frames in turn (each in its own thread)
    every: int = 1  # run on every Nth detection only; the tracker holds its boxes in between
    enabled: bool = True


def _face_detector() -> DetectorConfig:
    # "auto": small faces of high-resolution sources keep enough detector pixels.
    return DetectorConfig(model="centerface", input_width=0, input_height=0, threshold=0.25)


def _person_detector() -> DetectorConfig:
    # Fixed: SSDLite resizes to 300x300 inside. "auto" (960x540 at 1080p) found a few more small
    # people but masked 4 points more of the frame outside anyone and leaked 2 big faces
    # (benchmarks/privacy.py --size 1920x1080 --person-size auto).
    return DetectorConfig(model="ssdlite", input_width=640, input_height=360, threshold=0.3)


@dataclass(frozen=True)
class DetectorsConfig:
    face: DetectorConfig = field(default_factory=_face_detector)
    person: DetectorConfig = field(default_factory=_person_detector)


@dataclass(frozen=True)
class PrivacyConfig:
    mode: MaskMode = "face+body"
    # face mode: also mask the head of every detected person, which catches profiles and faces
    # too small for the face detector (costs the person detector's time)
    person_heads: bool = True
    style: MaskStyle = "mosaic"
    detect_every: int = 1  # run the detectors on every Nth frame; the tracker covers the rest
    lookahead_frames: int = 3  # frames held back so a detection also covers the ones before it
    hold_frames: int = 10  # a track keeps masking this many frames after its last detection
    stale_frames: int = 6  # a frame this many frames past the last good detection fails closed
    margin: float = 0.2  # widen every box by this share of its size on each side
    deadline_ms: float = 1000.0  # live: a frame without a verdict by then is fully masked
    mosaic_cells: int = 8  # mosaic: cells across the box (block size relative to the box)
    zones: tuple[tuple[tuple[float, float], ...], ...] = ()  # static normalised polygons
    zone_style: MaskStyle = "solid"


@dataclass(frozen=True)
class StreamConfig:
    name: str = "main"
    width: int = 0  # 0: the source's size
    height: int = 0
    fps: float = 0.0  # 0: the source's rate
    bitrate_kbps: int = 2000
    gop: int = 30
    preset: str = "ultrafast"
    profile: H264Profile = "baseline"
    threads: int = 2


def _default_streams() -> tuple[StreamConfig, ...]:
    return (
        StreamConfig(),
        StreamConfig(name="sub", width=640, height=360, bitrate_kbps=500),
    )


@dataclass(frozen=True)
class OutputConfig:
    streams: tuple[StreamConfig, ...] = field(default_factory=_default_streams)
    subscriber_queue: int = 120  # encoded units buffered per subscriber before it drops
    audio: AudioMode = "drop"  # `vcam mask`: drop or copy the input's audio


@dataclass(frozen=True)
class RtspConfig:
    enabled: bool = True
    bind: str = "0.0.0.0"
    port: int = 8554
    require_auth: bool = True  # Digest on every method but OPTIONS
    session_timeout_s: int = 60
    client_buffer_kb: int = 1024  # unsent bytes per client before it drops to the next IDR
    max_overflows: int = 20  # a client that overflowed this many times in a row is disconnected
    mtu: int = 1400
    multicast_group: str = "239.255.42.42"
    multicast_port: int = 15000  # first RTP port; each stream's tracks take the next pairs
    multicast_ttl: int = 1
    rtcp_interval_s: float = 5.0


@dataclass(frozen=True)
class WebConfig:
    enabled: bool = True
    bind: str = "0.0.0.0"
    port: int = 8080  # ONVIF at /onvif/device_service, snapshots at /snapshot/<stream>.jpg
    # WebRTC: host candidates only unless STUN/TURN URLs are given ("stun:host:3478",
    # "turn:user:password@host:3478?transport=udp"); peers beyond the limit are refused (503).
    ice_servers: tuple[str, ...] = ()
    max_webrtc_peers: int = 16


@dataclass(frozen=True)
class OnvifConfig:
    name: str = "vcam"  # the onvif://www.onvif.org/name/ scope
    location: str = ""
    # WS-Discovery responder (UDP 3702, multicast 239.255.255.250). Off by default: it joins the
    # LAN's multicast group and announces the camera there; turn it on where VMSs should find it.
    discovery: bool = False
    discovery_port: int = 3702


@dataclass(frozen=True)
class AuthConfig:
    username: str = "admin"
    # "": a random password is generated at the first start and kept in data_dir
    password: str = ""
    realm: str = "vcam"


AnalyticsRuleType = Literal[
    "LineDetector",
    "LineCounting",
    "FieldDetector",
    "OccupancyCounting",
    "LoiteringDetector",
    "QueueMonitor",
]


@dataclass(frozen=True)
class AnalyticsRuleConfig:
    """One `[[analytics.rules]]` table. Every rule type's parameters are here; those of other
    types must stay unset (vcam.analytics.rules describes each type)."""

    name: str = ""
    type: AnalyticsRuleType = "LineCounting"
    segments: tuple[tuple[float, float], ...] = ()  # a polyline, normalised 0..1, y down
    field: tuple[tuple[float, float], ...] = ()  # a polygon, normalised 0..1, y down
    direction: Literal["Any", "Left", "Right"] = "Any"
    classes: tuple[str, ...] = ("Human",)  # tt:ObjectType names: Human, HumanFace
    reset_times: tuple[str, ...] = ()  # local times of day, "HH:MM"
    report_interval_s: float = 0.0
    time_threshold_s: float = LoiteringDetector.time_threshold_s
    min_wait_s: float = QueueMonitor.min_wait_s


@dataclass(frozen=True)
class AnalyticsConfig:
    enabled: bool = True  # rules, counters and analytics events
    motion: bool = True  # tns1:VideoSource/MotionAlarm from frame differencing
    motion_threshold: float = 0.01  # share of the picture that must change
    motion_off_s: float = 2.0  # motion ends after this long without change
    cell_motion: bool = False  # also tns1:RuleEngine/CellMotionDetector/Motion
    object_events: bool = True  # person / face present events
    reid_frames: int = 2  # a lost person found again nearby within this many frames is the same
    # The starting rules; rules created later (ONVIF, web page) are kept in data_dir.
    rules: tuple[AnalyticsRuleConfig, ...] = ()


@dataclass(frozen=True)
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    detectors: DetectorsConfig = field(default_factory=DetectorsConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    rtsp: RtspConfig = field(default_factory=RtspConfig)
    web: WebConfig = field(default_factory=WebConfig)
    onvif: OnvifConfig = field(default_factory=OnvifConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    analytics: AnalyticsConfig = field(default_factory=AnalyticsConfig)
    models_dir: str = ""  # "": the repository's models/ folder
    data_dir: str = ""  # "": $XDG_DATA_HOME/vcam or ~/.local/share/vcam
    log_level: Literal["debug", "info", "warning", "error"] = "info"


# ---------------------------------------------------------------------------------------------
# Loading and validation


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read `path` (TOML), apply dotted-key `overrides` (from the command line), validate."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            with p.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError("--config", f"no such file: {p}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", f"{p} is not valid TOML: {exc}") from None
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    return config_from_dict(data)


def config_from_dict(data: dict[str, Any]) -> Config:
    cfg = _build(Config, data, "")
    validate(cfg)
    return cfg


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(dotted, f"{part} is not a table")
        node = child
    node[parts[-1]] = value


def _build(cls: type[Any], data: Any, prefix: str, base: Any = None) -> Any:
    """Build `cls` from a table; keys not given keep their value in `base` (or the default)."""
    if not isinstance(data, dict):
        raise ConfigError(prefix or "<root>", "expected a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(_join(prefix, key), "unknown key")
    if base is None:
        base = cls() if all(_has_default(f) for f in dataclasses.fields(cls)) else None
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            default = getattr(base, f.name) if base is not None else None
            kwargs[f.name] = _convert(hints[f.name], data[f.name], _join(prefix, f.name), default)
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


def _has_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _convert(tp: Any, value: Any, key: str, default: Any = None) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _build(tp, value, key, default)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(key, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(key, f"must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, got {value!r}")
        return value
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(key, f"must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(key, f"must have {len(args)} items, got {len(value)}")
        return tuple(
            _convert(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(key, "unsupported union type")  # not used by Config
    raise ConfigError(key, f"unsupported type {tp!r}")


# stun:host[:port], turn(s):[user:password@]host[:port][?transport=udp|tcp]
_ICE_URL = re.compile(
    r"(stun:|turns?:([^:@\s]+:[^@\s]+@)?)[A-Za-z0-9.\-]+(:\d{1,5})?(\?transport=(udp|tcp))?"
)


def _check(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(key, message)


def validate(cfg: Config) -> None:
    """Cross-field and range checks; every failure names its dotted key."""
    s = cfg.source
    _check(bool(s.uri.strip()), "source.uri", "must not be empty")
    _check(s.open_timeout_s > 0, "source.open_timeout_s", "must be > 0")
    _check(s.reconnect_initial_s > 0, "source.reconnect_initial_s", "must be > 0")
    _check(
        s.reconnect_max_s >= s.reconnect_initial_s,
        "source.reconnect_max_s",
        "must be >= source.reconnect_initial_s",
    )
    for k in ("v4l2_width", "v4l2_height"):
        _check(getattr(s, k) >= 0, f"source.{k}", "must be >= 0")
    _check(s.v4l2_fps >= 0, "source.v4l2_fps", "must be >= 0")
    syn = s.synthetic
    _check(syn.width >= 64 and syn.width % 2 == 0, "source.synthetic.width", "must be even, >= 64")
    _check(
        syn.height >= 64 and syn.height % 2 == 0, "source.synthetic.height", "must be even, >= 64"
    )
    _check(0 < syn.fps <= 120, "source.synthetic.fps", "must be in (0, 120]")
    _check(syn.duration_s >= 1, "source.synthetic.duration_s", "must be >= 1")

    for name in ("face", "person"):
        d: DetectorConfig = getattr(cfg.detectors, name)
        key = f"detectors.{name}"
        _check(bool(d.model), f"{key}.model", "must not be empty")
        for dim in ("input_width", "input_height"):
            v = getattr(d, dim)
            _check(v == 0 or 32 <= v <= 4096, f"{key}.{dim}", "must be 0 (auto) or in [32, 4096]")
        _check(
            (d.input_width == 0) == (d.input_height == 0),
            f"{key}.input_width",
            "set input_width and input_height together (both 0: auto, from the source's size)",
        )
        _check(0.0 < d.threshold < 1.0, f"{key}.threshold", "must be in (0, 1)")
        _check(1 <= d.threads <= 64, f"{key}.threads", "must be in [1, 64]")
        _check(1 <= d.workers <= 16, f"{key}.workers", "must be in [1, 16]")
        _check(
            1 <= d.every <= cfg.privacy.hold_frames,
            f"{key}.every",
            "must be in [1, privacy.hold_frames], or its boxes would lapse between runs",
        )

    p = cfg.privacy
    _check(p.detect_every >= 1, "privacy.detect_every", "must be >= 1")
    _check(0 <= p.lookahead_frames <= 60, "privacy.lookahead_frames", "must be in [0, 60]")
    _check(0 <= p.hold_frames <= 300, "privacy.hold_frames", "must be in [0, 300]")
    _check(
        p.hold_frames >= p.detect_every,
        "privacy.hold_frames",
        "must be >= privacy.detect_every, or masks would blink between detections",
    )
    _check(
        p.detect_every <= p.stale_frames <= p.hold_frames,
        "privacy.stale_frames",
        "must be >= privacy.detect_every and <= privacy.hold_frames",
    )
    _check(0.0 <= p.margin <= 2.0, "privacy.margin", "must be in [0, 2]")
    _check(p.deadline_ms > 0, "privacy.deadline_ms", "must be > 0")
    _check(2 <= p.mosaic_cells <= 64, "privacy.mosaic_cells", "must be in [2, 64]")
    for i, zone in enumerate(p.zones):
        key = f"privacy.zones[{i}]"
        _check(len(zone) >= 3, key, "a zone needs at least 3 points")
        for j, (x, y) in enumerate(zone):
            _check(0.0 <= x <= 1.0 and 0.0 <= y <= 1.0, f"{key}[{j}]", "must be within 0..1")
    if p.mode in ("face", "face+body"):
        _check(cfg.detectors.face.enabled, "detectors.face.enabled", f"mode {p.mode} needs it")
    if p.mode in ("body", "face+body"):
        _check(cfg.detectors.person.enabled, "detectors.person.enabled", f"mode {p.mode} needs it")
    elif p.person_heads:
        _check(
            cfg.detectors.person.enabled,
            "detectors.person.enabled",
            "privacy.person_heads needs it (or set privacy.person_heads = false)",
        )

    o = cfg.output
    _check(len(o.streams) >= 1, "output.streams", "at least one stream is needed")
    seen: set[str] = set()
    for i, st in enumerate(o.streams):
        key = f"output.streams[{i}]"
        _check(st.name.isidentifier(), f"{key}.name", "must be a simple identifier")
        _check(st.name not in seen, f"{key}.name", f"duplicate stream name {st.name!r}")
        seen.add(st.name)
        for dim in ("width", "height"):
            v = getattr(st, dim)
            _check(v == 0 or (v >= 16 and v % 2 == 0), f"{key}.{dim}", "must be 0 or even >= 16")
        _check((st.width == 0) == (st.height == 0), f"{key}.width", "set width and height together")
        _check(0 <= st.fps <= 120, f"{key}.fps", "must be in [0, 120]")
        _check(50 <= st.bitrate_kbps <= 100_000, f"{key}.bitrate_kbps", "must be in [50, 100000]")
        _check(1 <= st.gop <= 600, f"{key}.gop", "must be in [1, 600]")
        _check(
            st.preset
            in (
                "ultrafast",
                "superfast",
                "veryfast",
                "faster",
                "fast",
                "medium",
                "slow",
            ),
            f"{key}.preset",
            f"unknown x264 preset {st.preset!r}",
        )
        _check(1 <= st.threads <= 16, f"{key}.threads", "must be in [1, 16]")
    _check(1 <= o.subscriber_queue <= 10_000, "output.subscriber_queue", "must be in [1, 10000]")

    r = cfg.rtsp
    _check(0 <= r.port <= 65535, "rtsp.port", "must be in [0, 65535] (0: any free port)")
    _check(_is_ip(r.bind), "rtsp.bind", f"not an IP address: {r.bind!r}")
    _check(5 <= r.session_timeout_s <= 3600, "rtsp.session_timeout_s", "must be in [5, 3600]")
    _check(64 <= r.client_buffer_kb <= 65536, "rtsp.client_buffer_kb", "must be in [64, 65536]")
    _check(1 <= r.max_overflows <= 10_000, "rtsp.max_overflows", "must be in [1, 10000]")
    _check(576 <= r.mtu <= 9000, "rtsp.mtu", "must be in [576, 9000]")
    _check(
        _is_ip(r.multicast_group) and ipaddress.ip_address(r.multicast_group).is_multicast,
        "rtsp.multicast_group",
        f"not a multicast address: {r.multicast_group!r}",
    )
    _check(
        1024 <= r.multicast_port <= 65000 and r.multicast_port % 2 == 0,
        "rtsp.multicast_port",
        "must be even, in [1024, 65000]",
    )
    _check(1 <= r.multicast_ttl <= 255, "rtsp.multicast_ttl", "must be in [1, 255]")
    _check(0.5 <= r.rtcp_interval_s <= 60, "rtsp.rtcp_interval_s", "must be in [0.5, 60]")

    w = cfg.web
    _check(0 <= w.port <= 65535, "web.port", "must be in [0, 65535] (0: any free port)")
    _check(_is_ip(w.bind), "web.bind", f"not an IP address: {w.bind!r}")
    _check(w.port == 0 or w.port != r.port or w.bind != r.bind, "web.port", "same as rtsp.port")
    _check(1 <= w.max_webrtc_peers <= 256, "web.max_webrtc_peers", "must be in [1, 256]")
    for i, url in enumerate(w.ice_servers):
        _check(
            _ICE_URL.fullmatch(url) is not None,
            f"web.ice_servers[{i}]",
            f"not a stun:/turn:/turns: URL: {url!r}",
        )
    v = cfg.onvif
    _check(bool(v.name) and v.name.isprintable(), "onvif.name", "must be printable, non-empty")
    _check(0 <= v.discovery_port <= 65535, "onvif.discovery_port", "must be in [0, 65535]")

    a = cfg.auth
    try:  # one rule for names and passwords: the user store's
        validate_user(User(a.username, a.password or "generated-later"))
    except (InvalidPassword, PasswordTooLong) as exc:
        raise ConfigError("auth.password", str(exc)) from None
    except UserError as exc:
        raise ConfigError("auth.username", str(exc)) from None
    _check(a.password == "" or len(a.password) >= 8, "auth.password", "use at least 8 characters")
    _check(bool(a.realm) and '"' not in a.realm, "auth.realm", "must be non-empty, without quotes")
    _validate_analytics(cfg.analytics)


def _validate_analytics(an: AnalyticsConfig) -> None:
    _check(0.0 < an.motion_threshold < 1.0, "analytics.motion_threshold", "must be in (0, 1)")
    _check(0.0 <= an.motion_off_s <= 600.0, "analytics.motion_off_s", "must be in [0, 600]")
    _check(0 <= an.reid_frames <= 300, "analytics.reid_frames", "must be in [0, 300]")
    _check(len(an.rules) <= MAX_RULES, "analytics.rules", f"at most {MAX_RULES} rules")
    defaults = dataclasses.asdict(AnalyticsRuleConfig())
    names: set[str] = set()
    for i, rc in enumerate(an.rules):
        key = f"analytics.rules[{i}]"
        try:  # one rule parser for the configuration, the kept file and the services
            rule_from_flat(dataclasses.asdict(rc), defaults)
        except RuleError as exc:
            raise ConfigError(f"{key}.{exc.param}" if exc.param else key, str(exc)) from None
        _check(rc.name not in names, f"{key}.name", f"two rules are named {rc.name!r}")
        names.add(rc.name)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
