"""Command line: `vcam serve` (the live camera) and `vcam mask` (anonymise a video file)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vcam import __version__
from vcam.config import Config, load_config
from vcam.errors import ConfigError, VcamError

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from vcam.app import Camera
    from vcam.media.recorder import AnnexBRecorder
    from vcam.rtsp.server import RtspServer
    from vcam.web.server import WebServer

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
    from vcam.app import Camera
    from vcam.auth.digest import DigestAuth
    from vcam.datadir import user_store
    from vcam.events.broker import EventBroker
    from vcam.events.media_events import publish_media_changes
    from vcam.media.recorder import AnnexBRecorder
    from vcam.onvif.stack import (
        analytics_store,
        build_discovery,
        build_web,
        device_model,
        media_store,
    )
    from vcam.rtsp.server import RtspServer

    users, password, password_file = user_store(cfg)
    digest = DigestAuth(users, cfg.auth.realm)  # one credential check for RTSP and HTTP
    media = media_store(cfg)  # what ONVIF clients set: the camera follows it live
    events = EventBroker()  # analytics and media changes -> ONVIF events, metadata stream
    publish_media_changes(media, events)
    camera = Camera(cfg, media=media, events=events, rules=analytics_store(cfg))
    host = _advertised_host(cfg.rtsp.bind)
    rtsp = None
    if cfg.rtsp.enabled:
        rtsp = RtspServer(
            cfg.rtsp,
            camera.bus,
            [s.name for s in cfg.output.streams],
            auth=digest if cfg.rtsp.require_auth else None,
            fps=camera.source.fps,
            advertised_host=host,
        )
    recorder = None
    if args.record is not None:
        recorder = AnnexBRecorder(camera.bus, cfg.output.streams[0].name, args.record)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log = logging.getLogger("vcam.serve")
    restarts: set[asyncio.Task[float]] = set()
    restart_failed: list[str] = []  # a failed restart leaves no pipeline: serve ends with it

    def restarted(task: asyncio.Task[float]) -> None:
        restarts.discard(task)
        if task.cancelled():
            return
        if (exc := task.exception()) is not None:
            log.error("restart failed: %s", exc, exc_info=exc)
            restart_failed.append(f"restart failed: {exc}")
            stop.set()
        else:
            print(f"vcam: pipeline restarted in {task.result():.2f} s", flush=True)

    def start_restart() -> None:
        task = asyncio.create_task(asyncio.to_thread(camera.restart))
        restarts.add(task)  # a reference, or the task may be collected mid-way
        task.add_done_callback(restarted)

    def reboot() -> None:
        """ONVIF SystemReboot, from any thread: only schedules the restart (it blocks for the
        old pipeline's threads), so the client gets its answer at once."""
        log.info("SystemReboot: rebooting (restarting the pipeline)")
        print("vcam: rebooting: restarting the pipeline", flush=True)
        loop.call_soon_threadsafe(start_restart)

    if rtsp is not None:
        await _listen(rtsp.start(), "rtsp.port", cfg.rtsp.bind, cfg.rtsp.port)
    web = discovery = None
    if cfg.web.enabled:
        model = device_model(
            cfg, users, camera.source_info(), cfg.web.port,
            rtsp.port if rtsp is not None else 0, media=media, events=events,
            rules=camera.rules,  # the store the engine follows: ONVIF rules apply at once
        )  # fmt: skip
        # Every later model is a dataclasses.replace of this one: the hook stays with them.
        model = dataclasses.replace(model, on_reboot=reboot)
        web = build_web(cfg, model, users, digest, camera.latest, rtsp, camera)
        await _listen(web.start(), "web.port", cfg.web.bind, cfg.web.port)
        web.onvif.model = dataclasses.replace(model, http_port=web.port)
        if cfg.onvif.discovery:
            discovery = build_discovery(cfg, web.onvif.model, web.port)
            await _listen(discovery.start(), "onvif.discovery_port", cfg.web.bind,
                          cfg.onvif.discovery_port)  # fmt: skip
    camera.start()
    try:
        if recorder is not None:
            recorder.start()
        _print_banner(cfg, camera, rtsp, web, host, password, password_file, recorder)
        started = time.monotonic()
        while not stop.is_set():
            wait = args.status_every
            if args.duration is not None:
                wait = min(wait, args.duration - (time.monotonic() - started))
                if wait <= 0:
                    break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            print(camera.status_line(), flush=True)
            if rtsp is not None:
                print("  " + rtsp.stats().line(), flush=True)
            if web is not None:
                _follow_source_size(web, camera)
            # `camera.pipeline` is read each time: after a restart it is the new one.
            error = restart_failed[0] if restart_failed else camera.pipeline.error
            if error:
                print(f"vcam: error: {error}", file=sys.stderr)
                return 1
    finally:
        if restarts:  # let a running restart end before stopping the camera
            await asyncio.gather(*restarts, return_exceptions=True)
        if discovery is not None:
            await discovery.stop()
        if web is not None:
            await web.stop()
        if rtsp is not None:
            await rtsp.stop()
        await asyncio.to_thread(camera.stop)
        if recorder is not None:
            recorder.stop()
    print(camera.status_line())
    return 0


async def _listen(start: Awaitable[None], key: str, bind: str, port: int) -> None:
    try:
        await start
    except OSError as exc:
        raise ConfigError(key, f"cannot listen on {bind}:{port}: {exc.strerror}") from None


def _follow_source_size(web: WebServer, camera: Camera) -> None:
    """A network source's size is known at its first frame: let ONVIF describe it then."""
    source = camera.source_info()
    if source != web.onvif.model.source:
        web.onvif.model = dataclasses.replace(web.onvif.model, source=source)


def _advertised_host(bind: str) -> str:
    """The address to print in URLs: the bound one, or this host's when bound to all."""
    if bind not in ("0.0.0.0", "::"):
        return bind
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def _print_banner(
    cfg: Config,
    camera: Camera,
    rtsp: RtspServer | None,
    web: WebServer | None,
    host: str,
    password: str | None,
    password_file: Path | None,
    recorder: AnnexBRecorder | None,
) -> None:
    print(f"vcam {__version__}: serving {camera.source.description}")
    live = camera.cfg.privacy  # what runs: a mode or style set through ONVIF or the page is kept
    print(f"  masking: mode={live.mode} style={live.style}", end="")
    print(f" detectors={', '.join(d.name for d in camera.detectors)}")
    for st in cfg.output.streams:
        size = f"{st.width}x{st.height}" if st.width else "source size"
        print(f"  stream {st.name}: H.264 {st.profile} {size} {st.bitrate_kbps} kbit/s")
    if rtsp is not None:
        for url in rtsp.urls(host):
            print(f"  RTSP: {url}")
        if rtsp.auth is None:
            print("  RTSP authentication is off (rtsp.require_auth = false)")
    if web is not None:
        print(f"  web page (live view, settings): http://{host}:{web.port}/")
        print(f"  ONVIF: http://{host}:{web.port}/onvif/device_service")
        for stream in web.onvif.model.streams:
            print(f"  snapshot: http://{host}:{web.port}/snapshot/{stream.name}.jpg")
    if password is None:
        print(f"  user {cfg.auth.username!r}, password as last set (users kept in {password_file})")
    else:
        where = f" (generated, kept in {password_file})" if password_file else ""
        print(f"  user {cfg.auth.username!r}, password {password!r}{where}")
    if recorder is not None:
        print(f"  recording the {recorder.stream} stream to {recorder.path}")
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
