"""Configuration: defaults, the example file, overrides, and a table of bad configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from vcam.cli import build_parser, config_from_args
from vcam.config import Config, config_from_dict, load_config
from vcam.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_example_config_equals_defaults() -> None:
    assert load_config(ROOT / "vcam.example.toml") == Config()


def _keys(obj: object, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out += _keys(value, f"{prefix}{f.name}.")
        else:
            out.append(f.name)
    return out


def test_example_config_documents_every_key() -> None:
    lines = [
        ln.split("=")[0].strip() for ln in (ROOT / "vcam.example.toml").read_text().splitlines()
    ]
    for key in _keys(Config()):
        assert key in lines or f"[[output.{key}]]" in lines, key


BAD = [
    ({"privacy": {"mdoe": "face"}}, "privacy.mdoe: unknown key"),
    ({"sauce": {}}, "sauce: unknown key"),
    ({"privacy": {"mode": "faces"}}, "privacy.mode: must be one of"),
    ({"privacy": {"style": "pixel"}}, "privacy.style: must be one of"),
    ({"privacy": {"detect_every": 0}}, "privacy.detect_every: must be >= 1"),
    ({"privacy": {"detect_every": "2"}}, "privacy.detect_every: must be an integer"),
    ({"privacy": {"detect_every": True}}, "privacy.detect_every: must be an integer"),
    ({"privacy": {"lookahead_frames": 100}}, "privacy.lookahead_frames: must be in [0, 60]"),
    ({"privacy": {"detect_every": 8, "stale_frames": 6}}, "privacy.stale_frames"),
    ({"privacy": {"hold_frames": 3}}, "privacy.stale_frames"),
    ({"privacy": {"margin": -0.1}}, "privacy.margin: must be in [0, 2]"),
    ({"privacy": {"deadline_ms": 0}}, "privacy.deadline_ms: must be > 0"),
    ({"privacy": {"deadline_ms": float("inf")}}, "privacy.deadline_ms: must be a finite"),
    ({"privacy": {"margin": float("nan")}}, "privacy.margin: must be a finite"),
    ({"privacy": {"zones": [[[0, 0], [1, 0]]]}}, "privacy.zones[0]: a zone needs at least 3"),
    ({"privacy": {"zones": [[[0, 0], [1, 0], [1, 1.5]]]}}, "privacy.zones[0][2]: must be within"),
    ({"privacy": {"zones": [[[0, 0], [1, 0], [1]]]}}, "privacy.zones[0][2]: must have 2 items"),
    ({"privacy": {"zones": "all"}}, "privacy.zones: must be a list"),
    ({"detectors": {"face": {"threshold": 1.5}}}, "detectors.face.threshold: must be in (0, 1)"),
    ({"detectors": {"face": {"input_width": 8}}}, "detectors.face.input_width"),
    ({"detectors": {"face": {"enabled": False}}}, "detectors.face.enabled: mode face+body"),
    ({"detectors": {"person": "ssd"}}, "detectors.person: expected a table"),
    ({"source": {"uri": " "}}, "source.uri: must not be empty"),
    ({"source": {"reconnect_max_s": 0.1}}, "source.reconnect_max_s: must be >="),
    ({"source": {"rtsp_transport": "http"}}, "source.rtsp_transport: must be one of"),
    ({"source": {"synthetic": {"width": 641}}}, "source.synthetic.width: must be even"),
    ({"source": {"loop": "yes"}}, "source.loop: must be true or false"),
    ({"output": {"streams": []}}, "output.streams: at least one stream"),
    ({"output": {"streams": [{"name": "a"}, {"name": "a"}]}}, "output.streams[1].name: dup"),
    ({"output": {"streams": [{"width": 641, "height": 360}]}}, "output.streams[0].width"),
    ({"output": {"streams": [{"width": 640}]}}, "output.streams[0].width: set width and"),
    ({"output": {"streams": [{"preset": "turbo"}]}}, "output.streams[0].preset: unknown x264"),
    ({"output": {"streams": [{"profile": "high10"}]}}, "output.streams[0].profile: must be one"),
    ({"output": {"streams": [{"gop": 0}]}}, "output.streams[0].gop: must be in [1, 600]"),
    ({"output": {"audio": "keep"}}, "output.audio: must be one of"),
    ({"log_level": "loud"}, "log_level: must be one of"),
    ({"auth": {"username": "bad name"}}, "auth.username: username 'bad name' may only"),
    ({"auth": {"password": "short"}}, "auth.password: use at least 8 characters"),
    ({"rtsp": {"port": 70000}}, "rtsp.port: must be in [0, 65535]"),
    ({"rtsp": {"bind": "localhost"}}, "rtsp.bind: not an IP address"),
    ({"rtsp": {"multicast_group": "10.0.0.1"}}, "rtsp.multicast_group: not a multicast"),
    ({"rtsp": {"multicast_port": 5001}}, "rtsp.multicast_port: must be even"),
]


@pytest.mark.parametrize(("data", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_config_is_rejected_naming_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert f"config error: {message}" in str(info.value)


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[privacy\nmode=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_values_from_file_and_streams_table(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(
        '[privacy]\nmode = "face"\nzones = [[[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]]]\n'
        '[[output.streams]]\nname = "hd"\nwidth = 1280\nheight = 720\n'
    )
    cfg = load_config(f)
    assert cfg.privacy.mode == "face"
    assert cfg.privacy.zones == (((0.0, 0.0), (0.5, 0.0), (0.5, 0.5)),)
    assert [s.name for s in cfg.output.streams] == ["hd"]
    assert cfg.output.streams[0].gop == 30  # unspecified keys keep their defaults


def test_command_line_flags_override_the_file(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[privacy]\nmode = "face"\nstyle = "blur"\n[source]\nuri = "synthetic"\n')
    args = build_parser().parse_args(
        ["serve", "--config", str(f), "--style", "solid", "--detector-size", "320x192"]
    )
    cfg = config_from_args(args)
    assert cfg.privacy.mode == "face"  # from the file
    assert cfg.privacy.style == "solid"  # the flag wins
    assert cfg.source.uri == "synthetic"
    assert (cfg.detectors.face.input_width, cfg.detectors.face.input_height) == (320, 192)
    assert cfg.detectors.person.input_width == 320


def test_mask_command_reads_its_input_once() -> None:
    args = build_parser().parse_args(["mask", "in.mp4", "out.mp4", "--audio", "copy"])
    cfg = config_from_args(args)
    assert cfg.source.uri == "in.mp4"
    assert cfg.source.loop is False and cfg.source.realtime is False
    assert cfg.output.audio == "copy"
