"""Pipeline watchdog: a failed pipeline is restarted, as a hardware camera reboots its pipeline.

The pipeline fails when its gate thread crashes or a source that does not reconnect fails (a
file that cannot be read on); `Pipeline.error` then holds why. A file that simply ended leaves
no error and is not restarted. The restart is `Camera.restart` (the same as ONVIF
SystemReboot): RTSP clients stay connected and the new gate starts closed. Restarts wait with a
capped exponential backoff; when the pipeline keeps failing soon after every restart, the
watchdog gives up and `vcam serve` exits 1 with the error (a supervisor may then start it
afresh). A run that stayed up `healthy_s` before failing starts a new count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("vcam.watchdog")


@dataclass(frozen=True)
class RestartPolicy:
    initial_s: float = 0.5  # wait before the first restart; doubled for each failure in a row
    max_s: float = 30.0  # the longest wait
    healthy_s: float = 30.0  # a run that lasted this long before failing starts a new count
    max_restarts: int = 3  # restarts in a row that failed again before `healthy_s`: give up
    poll_s: float = 0.2  # how often the pipeline's error is looked at


class Backoff:
    """Sans-IO: the wait before the next restart, or None to give up."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.failures = 0  # failures in a row, each before `healthy_s`

    def failed(self, ran_s: float) -> float | None:
        """The pipeline failed `ran_s` seconds after it (re)started."""
        p = self.policy
        if ran_s >= p.healthy_s:
            self.failures = 0  # it had recovered: a new incident
        if self.failures >= p.max_restarts:
            return None
        delay = min(p.initial_s * 2**self.failures, p.max_s)
        self.failures += 1
        return delay


class _Pipeline(Protocol):
    @property
    def error(self) -> str: ...


class Watched(Protocol):
    """What the watchdog reads of the camera: the pipeline running now (replaced by restarts)."""

    @property
    def pipeline(self) -> _Pipeline: ...


class PipelineWatchdog:
    """Watches `camera.pipeline` and restarts it through `restart` when it fails.

    `restart` also serves ONVIF SystemReboot; a reboot whose restart raised is reported with
    `restart_failed` and handled as a failure. `watch` returns with `failure` set when the
    pipeline kept failing."""

    def __init__(
        self,
        camera: Watched,
        restart: Callable[[], Awaitable[float]],
        policy: RestartPolicy | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.camera = camera
        self.restart = restart
        self.policy = policy or RestartPolicy()
        self.backoff = Backoff(self.policy)
        self.say = say or (lambda line: print(line, flush=True))
        self.failure: str | None = None
        self._restart_error = ""

    def restart_failed(self, reason: str) -> None:
        """A restart made elsewhere (SystemReboot) raised: the camera may have no pipeline."""
        self._restart_error = reason

    async def watch(self, closing: asyncio.Event) -> None:
        """Runs until `closing` is set or it gives up; a restart under way ends first."""
        watched: object = None
        since = time.monotonic()  # when `watched` became the running pipeline
        while not closing.is_set():
            pipeline = self.camera.pipeline
            if pipeline is not watched:
                watched, since = pipeline, time.monotonic()
            error = self._restart_error or pipeline.error
            if not error:
                await _wait(closing, self.policy.poll_s)
                continue
            ran = time.monotonic() - since
            delay = self.backoff.failed(ran)
            if delay is None:
                self.failure = f"{error} (still failing after {self.backoff.failures} restarts)"
                log.error("giving up: %s", self.failure)
                return
            log.warning("pipeline failed after %.1f s: %s; restart %d in %.1f s",
                        ran, error, self.backoff.failures, delay)  # fmt: skip
            self.say(f"vcam: pipeline failed: {error}; restarting in {delay:.1f} s")
            if await _wait(closing, delay):
                return
            if self.camera.pipeline is not pipeline:
                continue  # restarted meanwhile (SystemReboot): watch the new one
            self._restart_error = ""
            try:
                await self.restart()
            except Exception as exc:  # any reason: count it and try again
                log.error("restart failed: %s", exc, exc_info=exc)
                self._restart_error = f"restart failed: {exc}"
            watched, since = None, time.monotonic()


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Waits up to `seconds` for `event`; True when it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
    return event.is_set()
