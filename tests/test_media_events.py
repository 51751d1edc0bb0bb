"""tns1:Media/ProfileChanged and ConfigurationChanged follow the media settings store."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from vcam.analytics.rules import LineDetector, RuleSet
from vcam.analytics.store import AnalyticsRuleStore
from vcam.events.broker import EventBroker
from vcam.events.media_events import (
    ANALYTICS_CONFIG,
    publish_media_changes,
    publish_rule_changes,
)
from vcam.events.message import EventMessage
from vcam.media_settings import MaskSettings, ProfileSettings

from .onvif_model import media_for
from .test_onvif_services import MAIN_CFG, SUB_CFG


def _collect(broker: EventBroker) -> Callable[[], list[tuple[str, ...]]]:
    """What the broker published since the last call: (topic's last part, data values...)."""
    got: list[EventMessage] = []
    broker.subscribe(got.append)

    def data() -> list[tuple[str, ...]]:
        out = [(m.topic.split("/")[-1], *(v for _, v in m.data)) for m in got]
        got.clear()
        return out

    return data


def test_changes_are_published_once_each() -> None:
    store = media_for(MAIN_CFG, SUB_CFG)
    broker = EventBroker()
    data = _collect(broker)
    stop = publish_media_changes(store, broker)

    store.change(
        lambda s: dataclasses.replace(s, profiles=(*s.profiles, ProfileSettings("p1", "one")))
    )
    assert data() == [("ProfileChanged", "p1")]
    sub = store.settings.encoders[1]
    store.change(
        lambda s: dataclasses.replace(
            s, encoders=(s.encoders[0], dataclasses.replace(sub, bitrate_kbps=800))
        )
    )
    assert data() == [("ConfigurationChanged", "encoder_sub", "VideoEncoder")]
    square = ((0.1, 0.1), (0.4, 0.1), (0.4, 0.4))
    store.change(lambda s: dataclasses.replace(s, masks=(MaskSettings("m1", square),)))
    assert data() == [("ConfigurationChanged", "m1", "Mask")]
    store.change(lambda s: s)  # nothing changed: nothing sent
    assert data() == []
    stop()
    store.change(lambda s: dataclasses.replace(s, masks=()))
    assert data() == []


def test_the_analytics_configuration_changes_with_masking_and_rules() -> None:
    media = media_for(MAIN_CFG, SUB_CFG)
    door = LineDetector(name="door", segments=((0.5, 0.0), (0.5, 1.0)))
    rules = AnalyticsRuleStore(RuleSet((door,)))
    broker = EventBroker()
    data = _collect(broker)
    stops = [publish_media_changes(media, broker), publish_rule_changes(rules, broker)]
    analytics = ("ConfigurationChanged", ANALYTICS_CONFIG, "Analytics")

    # The masking is the vcam:PrivacyMasking module of the analytics configuration.
    media.change(
        lambda s: dataclasses.replace(s, privacy=dataclasses.replace(s.privacy, style="blur"))
    )
    assert data() == [analytics]
    media.change(lambda s: dataclasses.replace(s, privacy=s.privacy))
    assert data() == []
    rules.create([LineDetector(name="exit", segments=((0.2, 0.0), (0.2, 1.0)))])
    assert data() == [analytics]
    rules.modify([dataclasses.replace(door, segments=((0.6, 0.0), (0.6, 1.0)))])
    assert data() == [analytics]
    rules.delete(["exit"])
    assert data() == [analytics]
    rules.change(lambda s: s)  # the same rules: nothing sent
    assert data() == []
    for stop in stops:
        stop()
    rules.delete(["door"])
    assert data() == []
