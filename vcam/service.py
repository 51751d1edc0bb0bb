"""`vcam serve` as a service: the camera with its servers around it, started in order and
stopped in reverse, the pipeline watchdog and the status loop.

Built from a Config: the user store and Digest auth (one credential check for RTSP and HTTP),
the media and analytics stores in the data directory, the event broker, the `Camera`, the RTSP
server on its encoded bus, the web server with ONVIF (whose SystemReboot restarts the pipeline),
WS-Discovery and the recorder. `start()` binds the ports (a port that cannot be bound is a
ConfigError naming its key), `run()` prints status lines until stopped, `stop()` ends it all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import sys
import time
from collections.abc import Awaitable
from pathlib import Path

from vcam.app import Camera
from vcam.auth.digest import DigestAuth
from vcam.config import Config
from vcam.datadir import user_store
from vcam.errors import ConfigError
from vcam.events.broker import EventBroker
from vcam.events.media_events import publish_media_changes, publish_rule_changes
from vcam.media.recorder import AnnexBRecorder
from vcam.onvif.discovery import DiscoveryResponder
from vcam.onvif.stack import analytics_store, build_discovery, build_web, device_model, media_store
from vcam.rtsp.server import RtspServer
from vcam.watchdog import PipelineWatchdog, RestartPolicy
from vcam.web.server import WebServer

log = logging.getLogger("vcam.serve")


class CameraService:
    """The running camera of `vcam serve`. Built (nothing listens yet), then `start`ed."""

    def __init__(
        self, cfg: Config, *, record: Path | None = None, policy: RestartPolicy | None = None
    ) -> None:
        """`record`: also write the masked main stream there; `policy`: the watchdog's."""
        self.cfg = cfg
        self.users, self.password, self.password_file = user_store(cfg)
        self.digest = DigestAuth(self.users, cfg.auth.realm)
        self.media = media_store(cfg)  # what ONVIF clients set: the camera follows it live
        self.events = EventBroker()  # analytics and media changes -> ONVIF events, metadata
        publish_media_changes(self.media, self.events)
        self.camera = Camera(cfg, media=self.media, events=self.events, rules=analytics_store(cfg))
        publish_rule_changes(self.camera.rules, self.events)
        self.host = advertised_host(cfg.rtsp.bind)  # the address printed in URLs
        self.rtsp: RtspServer | None = None
        if cfg.rtsp.enabled:
            self.rtsp = RtspServer(
                cfg.rtsp,
                self.camera.bus,
                [s.name for s in cfg.output.streams],
                auth=self.digest if cfg.rtsp.require_auth else None,
                fps=self.camera.source.fps,
                advertised_host=self.host,
            )
        self.recorder: AnnexBRecorder | None = None
        if record is not None:
            self.recorder = AnnexBRecorder(self.camera.bus, cfg.output.streams[0].name, record)
        self.web: WebServer | None = None
        self.discovery: DiscoveryResponder | None = None
        self.watchdog = PipelineWatchdog(self.camera, self._restart, policy)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = asyncio.Event()
        self._watching: asyncio.Task[None] | None = None
        self._reboots: set[asyncio.Task[None]] = set()
        self._camera_started = False

    # -- life ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Binds the servers, then starts the camera, the recorder and the watchdog. On an
        error, what was started is stopped again."""
        self._loop = asyncio.get_running_loop()
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        cfg = self.cfg
        if self.rtsp is not None:
            await _listen(self.rtsp.start(), "rtsp.port", cfg.rtsp.bind, cfg.rtsp.port)
        if cfg.web.enabled:
            model = device_model(
                cfg, self.users, self.camera.source_info(), cfg.web.port,
                self.rtsp.port if self.rtsp is not None else 0, media=self.media,
                events=self.events,
                rules=self.camera.rules,  # the store the engine follows: rules apply at once
            )  # fmt: skip
            # Every later model is a dataclasses.replace of this one: the hook stays with them.
            model = dataclasses.replace(model, on_reboot=self.reboot)
            self.web = build_web(
                cfg, model, self.users, self.digest, self.camera.latest, self.rtsp, self.camera
            )
            await _listen(self.web.start(), "web.port", cfg.web.bind, cfg.web.port)
            self.web.onvif.model = dataclasses.replace(model, http_port=self.web.port)
            if cfg.onvif.discovery:
                self.discovery = build_discovery(cfg, self.web.onvif.model, self.web.port)
                await _listen(self.discovery.start(), "onvif.discovery_port", cfg.web.bind,
                              cfg.onvif.discovery_port)  # fmt: skip
        self.camera.start()
        self._camera_started = True
        if self.recorder is not None:
            self.recorder.start()
        self._watching = asyncio.create_task(self.watchdog.watch(self._closing))

    async def stop(self) -> None:
        """Stops in reverse order; a restart under way ends first. Safe after a failed start."""
        self._closing.set()
        if self._watching is not None:  # it returns once a restart it runs has ended
            await asyncio.gather(self._watching, return_exceptions=True)  # run() reported it
        if self._reboots:
            await asyncio.gather(*self._reboots, return_exceptions=True)
        if self.discovery is not None:
            await self.discovery.stop()
        if self.web is not None:
            await self.web.stop()
        if self.rtsp is not None:
            await self.rtsp.stop()
        await asyncio.to_thread(self.camera.stop)
        if self.recorder is not None and self._camera_started:
            self.recorder.stop()

    async def run(
        self, stop: asyncio.Event, duration: float | None = None, status_every: float = 5.0
    ) -> int:
        """Prints the status every `status_every` s until `stop` is set or `duration` passed
        (0), or until the watchdog gave up on the pipeline (1, the error printed)."""
        assert self._watching is not None, "run() before start()"
        watching = self._watching  # it returns when it gives up on the pipeline
        started = time.monotonic()
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set() and not watching.done():
                wait = status_every
                if duration is not None:
                    wait = min(wait, duration - (time.monotonic() - started))
                    if wait <= 0:
                        break
                await asyncio.wait({stopping, watching}, timeout=wait)
                self.print_status()
                self._follow_source_size()
        finally:
            stopping.cancel()
        failure = self.watchdog.failure
        if watching.done() and (exc := watching.exception()) is not None:
            failure = f"watchdog failed: {exc}"  # a bug: nothing restarts the pipeline now
        if failure is not None:
            print(f"vcam: error: {failure}", file=sys.stderr, flush=True)
            return 1
        return 0

    def print_status(self) -> None:
        print(self.camera.status_line(), flush=True)
        if self.rtsp is not None:
            print("  " + self.rtsp.stats().line(), flush=True)

    # -- restarts ------------------------------------------------------------------------------

    def reboot(self) -> None:
        """ONVIF SystemReboot, from any thread: only schedules the restart (it blocks for the
        old pipeline's threads), so the client gets its answer at once."""
        log.info("SystemReboot: rebooting (restarting the pipeline)")
        print("vcam: rebooting: restarting the pipeline", flush=True)
        assert self._loop is not None, "rebooted before start()"
        self._loop.call_soon_threadsafe(self._start_reboot)

    def _start_reboot(self) -> None:
        if self._closing.is_set():
            return
        task = asyncio.create_task(self._reboot())
        self._reboots.add(task)  # a reference, or the task may be collected mid-way
        task.add_done_callback(self._reboots.discard)

    async def _reboot(self) -> None:
        try:
            await self._restart()
        except Exception as exc:  # the watchdog retries, whatever the reason
            log.error("restart failed: %s", exc, exc_info=exc)
            self.watchdog.restart_failed(f"restart failed: {exc}")

    async def _restart(self) -> float:
        """Camera.restart off the event loop (SystemReboot and the watchdog)."""
        took = await asyncio.to_thread(self.camera.restart)
        print(f"vcam: pipeline restarted in {took:.2f} s", flush=True)
        return took

    # -- what the servers show -----------------------------------------------------------------

    def _follow_source_size(self) -> None:
        """A network source's size is known at its first frame: let ONVIF describe it then."""
        web = self.web
        if web is None:
            return
        source = self.camera.source_info()
        if source != web.onvif.model.source:
            web.onvif.model = dataclasses.replace(web.onvif.model, source=source)

    @property
    def rtsp_urls(self) -> list[str]:
        return self.rtsp.urls(self.host) if self.rtsp is not None else []

    @property
    def web_url(self) -> str | None:
        """The web page (and ONVIF below it): None when the web server is off."""
        return f"http://{self.host}:{self.web.port}/" if self.web is not None else None


async def _listen(start: Awaitable[None], key: str, bind: str, port: int) -> None:
    try:
        await start
    except OSError as exc:
        raise ConfigError(key, f"cannot listen on {bind}:{port}: {exc.strerror}") from None


def advertised_host(bind: str) -> str:
    """The address to print in URLs: the bound one, or this host's when bound to all."""
    if bind not in ("0.0.0.0", "::"):
        return bind
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
