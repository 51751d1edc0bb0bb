"""Small files that outlive a run, written so that a crash or a full disk never leaves half of one.

`write_private_json` is the one way state reaches the data directory (users, device settings):
the data go to a temporary file created readable by its owner only (0600, never wider, not even
for a moment), are flushed to disk, and replace the old file atomically. Callers write *before*
they change their state in memory, so a failed write (OSError) changes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from vcam.observers import Subscribers


def write_private_json(path: Path, data: Any) -> None:
    """Atomically replaces `path` with `data` as JSON, owner-only; raises OSError on failure."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a stale one may have other permissions: O_CREAT keeps an existing mode
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


class KeptSettings(Protocol):
    """What a `SettingsStore` keeps: a frozen dataclass with a `revision` counter."""

    @property
    def revision(self) -> int: ...

    def check(self) -> None: ...

    def to_json(self) -> Any: ...


S = TypeVar("S", bound=KeptSettings)


class SettingsStore(Generic[S]):
    """Thread-safe holder of one immutable settings value, written to `path` (if any) before
    each change takes effect, so a failed write changes nothing and a restart finds it again.

    Subscribers are called after each change, outside the lock, with the new value; one that
    raises is logged, never the client's problem.
    """

    def __init__(self, settings: S, path: Path | None = None) -> None:
        settings.check()
        self.path = path
        self._lock = threading.Lock()
        self._settings = settings
        self._subscribers: Subscribers[S] = Subscribers("settings")

    @property
    def settings(self) -> S:
        with self._lock:
            return self._settings

    def change(self, edit: Callable[[S], S]) -> S:
        """Applies `edit` to the current value under the lock (it may raise to refuse: then
        nothing changes), bumps the revision, checks and writes the result, then makes it
        current and tells the subscribers. `check` errors and OSError change nothing."""
        with self._lock:
            before = self._settings
            after = edit(before)
            if after == before:
                return before
            after = dataclasses.replace(after, revision=before.revision + 1)  # type: ignore[type-var]
            after.check()
            if self.path is not None:
                write_private_json(self.path, after.to_json())
            self._settings = after
        self._subscribers.notify(after)
        return after

    def subscribe(self, callback: Callable[[S], None]) -> Callable[[], None]:
        """Calls `callback(settings)` after every change; returns a function that unsubscribes."""
        return self._subscribers.add(callback)


def read_json(path: Path) -> Any | None:
    """The JSON kept in `path`, None if there is no such file; OSError and ValueError (bad
    JSON) propagate for the caller to name the file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return json.loads(text)
