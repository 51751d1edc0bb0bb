"""Command line: `vcam serve` (the live camera) and `vcam mask` (anonymise a video file)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vcam import __version__
from vcam.config import Config, load_config
from vcam.errors import VcamError

if TYPE_CHECKING:
    from vcam.service import CameraService

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
    p.add_argument(
        "--detector-workers",
        type=int,
        metavar="N",
        help="face detector sessions taking frames in turn (2 uses both cores of a 2-core box)",
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
    serve.add_argument("--rtsp-port", type=int, metavar="N", help="RTSP port (default 8554)")
    serve.add_argument("--http-port", type=int, metavar="N", help="ONVIF/HTTP port (default 8080)")
    serve.add_argument("--bind", metavar="ADDR", help="address the servers listen on")
    serve.add_argument("--username", help="administrator user name (default admin)")
    serve.add_argument(
        "--password",
        help="administrator password (default: generated once, kept in the data directory;"
        " also VCAM_PASSWORD)",
    )
    serve.add_argument("--data-dir", type=Path, metavar="DIR", help="where state is kept")
    serve.add_argument(
        "--discovery",
        action="store_true",
        default=None,
        help="answer WS-Discovery probes so VMSs on the LAN find the camera",
    )
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
        "detector_workers": "detectors.face.workers",
        "rtsp_port": "rtsp.port",
        "http_port": "web.port",
        "discovery": "onvif.discovery",
        "username": "auth.username",
        "password": "auth.password",
    }
    for flag, key in flag_keys.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    if getattr(args, "bind", None) is not None:
        overrides["rtsp.bind"] = overrides["web.bind"] = args.bind
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = str(args.data_dir)
    if "auth.password" not in overrides and os.environ.get("VCAM_PASSWORD"):
        overrides["auth.password"] = os.environ["VCAM_PASSWORD"]  # secrets stay out of argv
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
    return asyncio.run(_serve(cfg, args))


async def _serve(cfg: Config, args: argparse.Namespace) -> int:
    """Builds the service (vcam/service.py), prints the banner and runs it until a signal,
    `--duration` or a pipeline that keeps failing (exit 1)."""
    from vcam.service import CameraService

    service = CameraService(cfg, record=args.record)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    try:
        _print_banner(service)
        code = await service.run(stop, args.duration, args.status_every)
    finally:
        await service.stop()
    if code == 0:
        print(service.camera.status_line())
    return code


def _print_banner(service: CameraService) -> None:
    cfg, camera, rtsp, web = service.cfg, service.camera, service.rtsp, service.web
    host = service.host
    print(f"vcam {__version__}: serving {camera.source.description}")
    live = camera.cfg.privacy  # what runs: a mode or style set through ONVIF or the page is kept
    print(f"  masking: mode={live.mode} style={live.style}", end="")
    print(f" detectors={', '.join(d.name for d in camera.detectors)}")
    for st in cfg.output.streams:
        size = f"{st.width}x{st.height}" if st.width else "source size"
        print(f"  stream {st.name}: H.264 {st.profile} {size} {st.bitrate_kbps} kbit/s")
    if rtsp is not None:
        for url in service.rtsp_urls:
            print(f"  RTSP: {url}")
        if rtsp.auth is None:
            print("  RTSP authentication is off (rtsp.require_auth = false)")
    if web is not None:
        print(f"  web page (live view, settings): {service.web_url}")
        print(f"  ONVIF: http://{host}:{web.port}/onvif/device_service")
        for stream in web.onvif.model.streams:
            print(f"  snapshot: http://{host}:{web.port}/snapshot/{stream.name}.jpg")
    password, password_file = service.password, service.password_file
    if password is None:
        print(f"  user {cfg.auth.username!r}, password as last set (users kept in {password_file})")
    else:
        where = f" (generated, kept in {password_file})" if password_file else ""
        print(f"  user {cfg.auth.username!r}, password {password!r}{where}")
    if service.recorder is not None:
        rec = service.recorder
        print(f"  recording the {rec.stream} stream to {rec.path}")
    sys.stdout.flush()


def mask(cfg: Config, args: argparse.Namespace) -> int:
    from vcam.app import build_mask_job
    from vcam.progress import ProgressSink

    job = build_mask_job(
        cfg,
        args.output,
        crf=args.crf,
        audio_from=args.input if cfg.output.audio == "copy" else None,
    )
    progress = ProgressSink(job.source, enabled=not args.no_progress)
    job.pipeline.sinks.append(progress)
    try:
        stats = job.pipeline.run()
    finally:
        progress.close()
        job.writer.close()
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
