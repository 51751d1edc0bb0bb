"""Command line: `vcam serve` (the live camera) and `vcam mask` (anonymise a video file)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vcam import __version__
from vcam.config import Config, load_config
from vcam.errors import VcamError

EXIT_USAGE = 2  # bad input: missing file, not a video, unwritable output, bad config


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        return int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML configuration file")
    p.add_argument("--mode", choices=["face", "body", "face+body"], help="what to mask")
    p.add_argument("--style", choices=["mosaic", "blocks", "blur", "solid"], help="how to mask")
    p.add_argument("--detect-every", type=int, metavar="N", help="run detectors every Nth frame")
    p.add_argument("--lookahead", type=int, metavar="N", help="look-ahead delay in frames")
    p.add_argument(
        "--detector-size", type=_size, metavar="WxH", help="input size of both detectors"
    )
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vcam", description="ONVIF virtual camera whose outputs are privacy-masked"
    )
    parser.add_argument("--version", action="version", version=f"vcam {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the live camera")
    _common(serve)
    serve.add_argument(
        "--source",
        help="demo (default), synthetic, a file, rtsp:// or http(s):// URL, or /dev/videoN",
    )
    serve.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    serve.add_argument(
        "--record", type=Path, metavar="FILE", help="also write the masked main stream (.h264)"
    )
    serve.add_argument(
        "--status-every", type=float, default=5.0, metavar="S", help="status line period"
    )

    mask = sub.add_parser("mask", help="anonymise a video file with the same pipeline")
    _common(mask)
    mask.add_argument("input", type=Path)
    mask.add_argument("output", type=Path, help=".mp4, .mkv, .mov or .ts")
    mask.add_argument("--audio", choices=["drop", "copy"], help="drop (default) or copy audio")
    mask.add_argument("--crf", type=int, default=20, help="x264 quality (lower is better)")
    mask.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """The config file, then command-line flags on top."""
    overrides: dict[str, Any] = {}
    flag_keys = {
        "mode": "privacy.mode",
        "style": "privacy.style",
        "detect_every": "privacy.detect_every",
        "lookahead": "privacy.lookahead_frames",
        "log_level": "log_level",
        "source": "source.uri",
        "audio": "output.audio",
    }
    for flag, key in flag_keys.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    if getattr(args, "detector_size", None):
        w, h = args.detector_size
        for det in ("face", "person"):
            overrides[f"detectors.{det}.input_width"] = w
            overrides[f"detectors.{det}.input_height"] = h
    if args.command == "mask":
        # A file is read once, as fast as it decodes; the source setting of the config is unused.
        overrides.update(
            {"source.uri": str(args.input), "source.loop": False, "source.realtime": False}
        )
    return load_config(args.config, overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
        logging.basicConfig(
            level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        if args.command == "serve":
            return serve(cfg, args)
        return mask(cfg, args)
    except VcamError as exc:
        print(f"vcam: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def serve(cfg: Config, args: argparse.Namespace) -> int:
    from vcam.app import Camera
    from vcam.media.recorder import AnnexBRecorder

    camera = Camera(cfg)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    recorder = None
    if args.record is not None:
        recorder = AnnexBRecorder(camera.bus, cfg.output.streams[0].name, args.record)
    camera.start()
    if recorder is not None:
        recorder.start()
    print(f"vcam {__version__}: serving {camera.source.description}")
    print(f"  masking: mode={cfg.privacy.mode} style={cfg.privacy.style}", end="")
    print(f" detectors={', '.join(d.name for d in camera.detectors)}")
    for st in cfg.output.streams:
        size = f"{st.width}x{st.height}" if st.width else "source size"
        print(f"  stream {st.name}: H.264 {st.profile} {size} {st.bitrate_kbps} kbit/s")
    if recorder is not None:
        print(f"  recording the {recorder.stream} stream to {args.record}")
    sys.stdout.flush()
    started = time.monotonic()
    try:
        while not stop.is_set():
            remaining = (
                None if args.duration is None else args.duration - (time.monotonic() - started)
            )
            if remaining is not None and remaining <= 0:
                break
            stop.wait(args.status_every if remaining is None else min(args.status_every, remaining))
            print(camera.status_line(), flush=True)
            if camera.pipeline.error:
                print(f"vcam: error: {camera.pipeline.error}", file=sys.stderr)
                return 1
    finally:
        camera.stop()
        if recorder is not None:
            recorder.stop()
    print(camera.status_line())
    return 0


def mask(cfg: Config, args: argparse.Namespace) -> int:
    from vcam.app import build_detectors
    from vcam.encode.file_writer import MaskedFileWriter, check_writable
    from vcam.pipeline import Pipeline
    from vcam.progress import ProgressSink
    from vcam.sources import open_source

    source = open_source(cfg.source)  # raises SourceError for a missing file or not a video
    check_writable(args.output)
    detectors = build_detectors(cfg)
    writer = MaskedFileWriter(
        args.output,
        source.fps,
        crf=args.crf,
        audio_from=args.input if cfg.output.audio == "copy" else None,
    )
    progress = ProgressSink(source, enabled=not args.no_progress)
    pipeline = Pipeline(cfg, source, detectors, [writer, progress], live=False)
    try:
        stats = pipeline.run()
    finally:
        progress.close()
        writer.close()
    g = stats.gate
    print(
        f"{args.output}: {g.frames_out} frames, {g.frames_masked} with masks, "
        f"{g.frames_closed} fully masked (fail-closed), "
        f"{g.frames_out / max(stats.running_s, 1e-9):.1f} fps"
    )
    if stats.error:
        print(f"vcam: error: {stats.error}", file=sys.stderr)
        return 1
    return 0
