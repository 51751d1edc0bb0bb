"""Callbacks told of a change: one list, thread-safe, and a failing callback never stops the
others (it is logged: a subscriber's failure is not the publisher's or the client's)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Subscribers(Generic[T]):
    def __init__(self, what: str) -> None:
        self.what = what  # for the log: "settings", "event"...
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[T], None]] = []

    def add(self, callback: Callable[[T], None]) -> Callable[[], None]:
        """Adds `callback`; returns a function that removes it (idempotent)."""
        with self._lock:
            self._callbacks.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return remove

    def notify(self, value: T) -> None:
        """Calls every callback with `value`, in the caller's thread, outside any lock."""
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(value)
            except Exception:
                log.exception("%s subscriber failed", self.what)

    def __len__(self) -> int:
        with self._lock:
            return len(self._callbacks)
