"""Counting rules keep their counts across restarts (vcam.analytics.counters): an engine on a
counters file, stopped and started again on it, on hand-made tracks; and a real `vcam serve`
restarted, its count read back through onvif-zeep-async's pull point."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from onvif import ONVIFCamera

from vcam.analytics.counters import CounterKeeper
from vcam.analytics.engine import AnalyticsEngine, FrameFacts
from vcam.analytics.rules import RuleSet, rule_from_json
from vcam.analytics.store import AnalyticsRuleStore
from vcam.events.broker import EventBroker
from vcam.events.message import EventMessage, PropertyOperation
from vcam.media.types import Track

from .test_analytics import DOWN, FPS_US, QUIET, H, W, frames_of, walk
from .test_events_e2e import COUNT_RULE, COUNTER, PASSWORD, RULES, USER, WSDL_DIR, from_zeep
from .vcam_process import VcamProcess, free_port, loopback_config

LINE: dict[str, object] = {"type": "LineCounting", "name": "door", "segments": DOWN}
UP = [[0.5, 1.0], [0.5, 0.0]]
BARRIER: dict[str, object] = {"type": "OccupancyCounting", "name": "room", "segments": UP}
START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class Run:
    """One run of an engine on `path` (the counters file), from `now`, fed hand-made tracks."""

    def __init__(self, path: Path, rules: Sequence[dict[str, object]], now: datetime) -> None:
        self.broker = EventBroker()
        self.msgs: list[EventMessage] = []
        self.broker.subscribe(self.msgs.append)
        self.store = AnalyticsRuleStore(RuleSet(tuple(rule_from_json(r) for r in rules)))
        self.now = now
        self.engine = AnalyticsEngine(
            self.broker, self.store, QUIET, clock=lambda: self.now, counters=path
        )
        self.index = 0

    def feed(self, frames: Sequence[Sequence[Track]]) -> None:
        for tracks in frames:
            facts = FrameFacts(self.index, self.index * FPS_US, W, H, tuple(tracks), False)
            self.engine.observe(facts)
            self.index += 1
            self.now += timedelta(microseconds=FPS_US)

    def crossings(self) -> None:
        """Two walkers one way, one the other: door 3 (Any), room 2 in - 1 out = 1."""
        self.feed(frames_of(walk(1, 200, 800, 30), walk(2, 250, 850, 30)))
        self.feed(frames_of(walk(3, 800, 200, 30)))

    def initialized(self, rule: str) -> str:
        """The Count of the rule's first message, which must be its Initialized one."""
        first = next(m for m in self.msgs if m.item("Rule") == rule)
        assert first.operation is PropertyOperation.INITIALIZED
        return str(first.item("Count"))

    def counts(self, rule: str) -> tuple[int | None, int, int]:
        s = next(r for r in self.engine.snapshot().rules if r.name == rule)
        return s.count, s.entered, s.exited


def test_counts_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "counters.json"
    first = Run(path, [LINE, BARRIER], START)
    assert (first.initialized("door"), first.initialized("room")) == ("0", "0")
    first.crossings()
    door, room = first.counts("door"), first.counts("room")
    assert door[0] == 3 and room[0] == 1
    first.engine.close()
    assert path.stat().st_mode & 0o777 == 0o600
    kept = json.loads(path.read_text())["rules"]
    assert set(kept) == {"door", "room"}
    assert datetime.fromisoformat(kept["door"]["since"]) == START  # counting since its start

    second = Run(path, [LINE, BARRIER], first.now + timedelta(hours=1))
    # The first property message already carries the kept counts (ONVIF Initialized).
    assert (second.initialized("door"), second.initialized("room")) == ("3", "1")
    assert (second.counts("door"), second.counts("room")) == (door, room)
    second.feed(frames_of(walk(4, 800, 200, 30)))  # counting goes on from there
    assert second.counts("door")[0] == 4 and second.counts("room")[0] == 0
    assert second.msgs[-1].operation is PropertyOperation.CHANGED
    second.engine.close()
    kept_door = json.loads(path.read_text())["rules"]["door"]
    assert (kept_door["entered"], kept_door["exited"]) == second.counts("door")[1:]


def test_a_rule_changed_while_down_starts_from_zero(tmp_path: Path) -> None:
    path = tmp_path / "counters.json"
    first = Run(path, [LINE, BARRIER], START)
    first.crossings()
    first.engine.close()
    # Another geometry is another count; the report interval does not change what is counted.
    moved = {**LINE, "segments": [[0.6, 0.0], [0.6, 1.0]]}
    second = Run(path, [moved, {**BARRIER, "report_interval_s": 5.0}], first.now)
    assert (second.initialized("door"), second.initialized("room")) == ("0", "1")
    second.engine.close()
    third = Run(path, [moved, {**BARRIER, "classes": ["Human", "HumanFace"]}], second.now)
    assert third.initialized("room") == "0"
    third.engine.close()
    renamed = Run(path, [{**moved, "name": "entrance"}], third.now)
    assert renamed.initialized("entrance") == "0"
    renamed.engine.close()


def test_a_rule_modified_live_starts_from_zero_and_stays_there(tmp_path: Path) -> None:
    path = tmp_path / "counters.json"
    first = Run(path, [LINE, BARRIER], START)
    first.crossings()
    moved = rule_from_json({**LINE, "segments": [[0.6, 0.0], [0.6, 1.0]]})
    first.store.modify([moved])  # ONVIF ModifyRules, the page: another line, from zero
    assert [m.operation for m in first.msgs[-2:]] == [
        PropertyOperation.DELETED,
        PropertyOperation.INITIALIZED,
    ]
    assert first.msgs[-1].item("Count") == "0"
    first.store.delete(["room"])
    first.engine.close()
    assert set(json.loads(path.read_text())["rules"]) == {"door"}  # only rules that exist
    # The modified rule comes back with its zero; a rule of the old name comes back empty.
    second = Run(path, [moved.to_json(), BARRIER], first.now)
    assert (second.initialized("door"), second.initialized("room")) == ("0", "0")
    second.engine.close()


def test_a_live_change_of_what_is_not_counted_keeps_the_count(tmp_path: Path) -> None:
    path = tmp_path / "counters.json"
    first = Run(path, [LINE, BARRIER], START)
    first.crossings()
    door = first.counts("door")
    # The page's form or ONVIF ModifyRules changing the report interval or the reset times:
    # the rule is re-announced (Deleted, Initialized) with the count it had.
    slower = rule_from_json({**LINE, "report_interval_s": 10.0, "reset_times": ["03:00"]})
    first.store.modify([slower])
    assert [(m.operation, m.item("Count")) for m in first.msgs[-2:]] == [
        (PropertyOperation.DELETED, "3"),
        (PropertyOperation.INITIALIZED, "3"),
    ]
    assert first.counts("door") == door
    first.feed(frames_of(walk(4, 800, 200, 30)))
    assert first.counts("door")[0] == 4  # and goes on counting
    first.engine.close()
    assert Run(path, [slower.to_json(), BARRIER], first.now).initialized("door") == "4"


def test_a_reset_time_passed_while_down_zeroes_the_count(tmp_path: Path) -> None:
    path = tmp_path / "counters.json"
    nightly = {**LINE, "reset_times": ["03:00"]}
    first = Run(path, [nightly], START)  # 12:00
    first.crossings()
    first.engine.close()
    night = START.replace(hour=23)
    second = Run(path, [nightly], night)  # down from 12:00 to 23:00: no reset in between
    assert second.initialized("door") == "3"
    second.engine.close()
    morning = START + timedelta(days=1, hours=-8)  # 04:00 the next day: 03:00 passed
    third = Run(path, [nightly], morning)
    assert third.initialized("door") == "0"
    third.engine.close()
    since = datetime.fromisoformat(json.loads(path.read_text())["rules"]["door"]["since"])
    assert since == morning  # counting since this start


@pytest.mark.parametrize("text", ["{not json", '{"version": 99}', '{"version": 1, "rules": []}'])
def test_a_damaged_file_starts_from_zero_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    path = tmp_path / "counters.json"
    path.write_text(text)
    caplog.set_level(logging.WARNING, logger="vcam.analytics")
    run = Run(path, [LINE], START)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(path) in w for w in warnings), warnings
    assert run.initialized("door") == "0"
    run.crossings()
    assert run.counts("door")[0] == 3  # it serves on, and the next write repairs the file
    run.engine.close()
    assert json.loads(path.read_text())["rules"]["door"]["entered"] == run.counts("door")[1]


def test_a_file_that_cannot_be_written_is_logged_and_counting_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "counters.json"  # its folder is a file: every write fails
    caplog.set_level(logging.WARNING, logger="vcam.analytics")
    run = Run(path, [LINE], START)
    run.crossings()
    run.engine.close()
    assert run.counts("door")[0] == 3
    assert any("cannot keep the counters" in r.getMessage() for r in caplog.records)


def test_counts_reach_the_file_while_running_at_a_limited_rate(tmp_path: Path) -> None:
    """A crash keeps what was written last: the counts reach the file without a stop, and a
    burst of changes is one write per interval, not one per change."""
    path = tmp_path / "counters.json"
    run = Run(path, [LINE], START)
    run.crossings()
    keeper = run.engine._keeper
    assert isinstance(keeper, CounterKeeper)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        data = json.loads(path.read_text()) if path.exists() else {}
        door = data.get("rules", {}).get("door", {})
        if door.get("entered", 0) + door.get("exited", 0) == 3:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the counts never reached {path}")
    changes = 3 + 1  # the start, then three crossings in one burst
    assert 1 <= keeper.writes < changes
    run.engine.close()


# -- end to end -------------------------------------------------------------------------------


def kept_count(path: Path) -> int:
    """The LineCounting rule's Count (direction Any) as the counters file holds it."""
    door = json.loads(path.read_text())["rules"][COUNT_RULE]
    return int(door["entered"]) + int(door["exited"])


async def initial_count(port: int) -> int:
    """What a client subscribing now first hears of the counter: its Initialized message."""
    cam = ONVIFCamera("127.0.0.1", port, USER, PASSWORD, WSDL_DIR)
    try:
        await cam.update_xaddrs()
        manager = await cam.create_pullpoint_manager(timedelta(seconds=60), lambda: None)
        answer = await manager.get_service().PullMessages(
            {"MessageLimit": 100, "Timeout": timedelta(seconds=2)}
        )
        await manager.shutdown()
    finally:
        await cam.close()
    msgs = [m for m in map(from_zeep, answer.NotificationMessage) if m.of(COUNTER, COUNT_RULE)]
    assert msgs and msgs[0].operation == "Initialized", msgs
    return int(msgs[0].data["Count"])


def test_vcam_serve_keeps_the_count_across_a_restart(tmp_path: Path) -> None:
    http, rtsp = free_port(), free_port()
    config = loopback_config(
        width=640, height=360, fps=10.0, rtsp_port=rtsp, http_port=http, solid=False, tail=RULES
    )
    path = tmp_path / "counters.json"
    vcam = VcamProcess(tmp_path, config, PASSWORD)
    try:
        vcam.wait_for("ONVIF: http://")
        deadline = time.monotonic() + 90  # the walkers cross about once a second
        while not (path.exists() and kept_count(path) >= 4):
            assert time.monotonic() < deadline, "".join(vcam.lines)
            time.sleep(0.5)
    finally:
        vcam.stop()
    assert vcam.proc.returncode == 0, "".join(vcam.lines)
    before = kept_count(path)  # written at the clean stop
    vcam = VcamProcess(tmp_path, config, PASSWORD)
    try:
        vcam.wait_for("ONVIF: http://")
        after = asyncio.run(initial_count(http))
    finally:
        vcam.stop()
    # From zero, the new run could not have counted `before` (>= 4) crossings in the second
    # between its start and the subscription.
    assert after >= before >= 4, (before, after)
