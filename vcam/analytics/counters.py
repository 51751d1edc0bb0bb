"""Counting rules' counts kept across restarts, in `<data_dir>/counters.json`.

A people counter's "entered today" must survive a stop, a crash or a power cut. The engine hands
a `CounterKeeper` the counts of every counting rule whenever they change (from the gate thread:
that only swaps a reference, never waits for the disk); the keeper's own thread writes them
atomically (`write_private_json`) at most every `interval_s`, and `close` writes the last ones.
Only rules that exist are written: the file stays as small as the rule set.

At the next start a rule goes on from its kept counts when
- a count is kept under its name with the same fingerprint: what the count depends on (type,
  geometry, direction, classes; not the reset times nor the report interval), so a rule whose
  configuration changed meanwhile starts from zero;
- none of its reset times of day came since its last reset (a reset missed while vcam was down
  happens at the start).
A rule created, modified or deleted while vcam runs starts from zero, as before: the engine
builds it a new runtime and only takes kept counts at its own start. A damaged file is logged
(naming it) and every count starts from zero; vcam serves on.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, time
from pathlib import Path
from typing import Any

from vcam.analytics.rules import LineCounting, OccupancyCounting, Rule
from vcam.analytics.runtime import Counts, next_reset
from vcam.persist import read_json, write_private_json

log = logging.getLogger("vcam.analytics")

COUNTERS_FILE = "counters.json"
FILE_VERSION = 1
WRITE_INTERVAL_S = 2.0  # at most one write this often: a crash loses at most this much
_NOT_COUNTED = ("name", "reset_times", "report_interval_s")  # changes that keep the count


@functools.lru_cache(maxsize=128)
def fingerprint(rule: Rule) -> str:
    """A digest of the rule's parameters the count depends on."""
    data = {k: v for k, v in rule.to_json().items() if k not in _NOT_COUNTED}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def reset_due(since: datetime, times: Sequence[time], now: datetime) -> bool:
    """Whether one of the daily reset `times` came after `since` and by `now` (aware)."""
    return bool(times) and next_reset(since.astimezone(now.tzinfo), times) <= now


# Snapshot of the counting rules: name -> (rule, counts). The rule is kept as is; the writer
# thread turns it into a fingerprint, off the gate thread.
Snapshot = Mapping[str, tuple[Rule, Counts]]


def to_json(snapshot: Snapshot, saved: datetime) -> dict[str, Any]:
    rules = {
        name: {
            "fingerprint": fingerprint(rule),
            "entered": c.entered,
            "exited": c.exited,
            "level": c.level,
            "since": c.since.isoformat() if c.since is not None else None,
        }
        for name, (rule, c) in snapshot.items()
    }
    return {"version": FILE_VERSION, "saved": saved.isoformat(), "rules": rules}


def _count(entry: Mapping[str, Any], key: str) -> int:
    value = entry.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a non-negative integer, not {value!r}")
    return value


def _aware(text: Any) -> datetime | None:
    if text is None:
        return None  # not known: no reset can be judged due
    if not isinstance(text, str):
        raise ValueError(f"since must be a date and time, not {text!r}")
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError(f"since {text!r} has no UTC offset")
    return when


def from_json(data: Any) -> dict[str, tuple[str, Counts]]:
    """name -> (fingerprint, counts); ValueError for anything but a counters file."""
    if not isinstance(data, dict) or data.get("version") != FILE_VERSION:
        raise ValueError("not a vcam counters file (unknown version)")
    rules = data.get("rules")
    if not isinstance(rules, dict):
        raise ValueError("rules must be an object")
    out: dict[str, tuple[str, Counts]] = {}
    for name, entry in rules.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("fingerprint"), str):
            raise ValueError(f"rule {name!r}: not a kept count")
        counts = Counts(
            _count(entry, "entered"),
            _count(entry, "exited"),
            _count(entry, "level"),
            _aware(entry.get("since")),
        )
        out[name] = (entry["fingerprint"], counts)
    return out


class CounterKeeper:
    """Writes the counting rules' counts to `path` from its own thread (see the module)."""

    def __init__(self, path: Path, interval_s: float = WRITE_INTERVAL_S) -> None:
        self.path = path
        self.interval_s = interval_s
        self.writes = 0
        self.failures = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: tuple[Snapshot, datetime] | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="vcam-counters", daemon=True)
        self._thread.start()

    def restorable(self, rules: Iterable[Rule], now: datetime) -> dict[str, Counts]:
        """The kept counts the `rules` go on from (see the module); `now`: aware local time."""
        try:
            kept = from_json(read_json(self.path) or {"version": FILE_VERSION, "rules": {}})
        except (OSError, ValueError) as exc:
            log.warning("counting rules start from zero: cannot read %s: %s", self.path, exc)
            return {}
        out: dict[str, Counts] = {}
        for rule in rules:
            entry = kept.get(rule.name)
            if entry is None or not isinstance(rule, LineCounting | OccupancyCounting):
                continue
            digest, counts = entry
            if digest != fingerprint(rule):
                log.info("counting rule %r changed while vcam was down: from zero", rule.name)
            elif counts.since is not None and reset_due(
                counts.since, rule.reset_clock_times(), now
            ):
                log.info("counting rule %r: a reset time passed while vcam was down", rule.name)
            else:
                out[rule.name] = counts
        return out

    def update(self, snapshot: Snapshot, now: datetime) -> None:
        """The counts now (any thread; never waits for the disk)."""
        with self._lock:
            if not self._closed:
                self._pending = (snapshot, now)
                self._wake.notify()

    def close(self, snapshot: Snapshot, now: datetime, timeout: float = 5.0) -> None:
        """Stops the writer thread and writes `snapshot`, the last counts (a clean stop)."""
        with self._lock:
            self._closed = True
            self._pending = None
            self._wake.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():  # stuck on the disk: a second writer would race it
            log.warning("counters not written at stop: %s is still being written", self.path)
            return
        self._write(snapshot, now)

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._closed:
                    self._wake.wait()
                pending, self._pending = self._pending, None
            if pending is None:  # closed: close() writes the last counts
                return
            self._write(*pending)
            with self._lock:  # the rate limit; close() cuts it short
                self._wake.wait_for(lambda: self._closed, self.interval_s)

    def _write(self, snapshot: Snapshot, now: datetime) -> None:
        try:
            write_private_json(self.path, to_json(snapshot, now))
        except OSError as exc:
            self.failures += 1
            if self.failures == 1 or self.failures % 100 == 0:
                log.warning("cannot keep the counters in %s (%d failures): %s",
                            self.path, self.failures, exc)  # fmt: skip
            return
        if self.failures:
            log.info("counters kept in %s again", self.path)
        self.failures = 0
        self.writes += 1
