"""tns1:Media/ProfileChanged and tns1:Media/ConfigurationChanged, from the settings stores.

VMSs that cache profiles (Milestone, NVRs) re-read them when these arrive. One message per
profile or configuration that changed between two revisions of the store (created, filled in,
renamed, deleted; an encoder's settings; a mask), never for a change that left it as it was.
The analytics configuration (Type "Analytics", tr2:ConfigurationEnumeration) changes with its
rules and with the masking that its vcam:PrivacyMasking module holds (mode, style, thresholds).
"""

from __future__ import annotations

from collections.abc import Callable

from vcam.analytics.engine import Tokens
from vcam.analytics.rules import RuleSet
from vcam.analytics.store import AnalyticsRuleStore
from vcam.events.broker import EventBroker
from vcam.events.message import EventMessage, TopicInfo
from vcam.media_settings import MediaSettings, MediaSettingsStore

PROFILE_CHANGED = TopicInfo(
    "tns1:Media/ProfileChanged", False, (), (("Token", "tt:ReferenceToken"),)
)
CONFIGURATION_CHANGED = TopicInfo(
    "tns1:Media/ConfigurationChanged",
    False,
    (),
    (("Token", "tt:ReferenceToken"), ("Type", "xs:string")),
)
MEDIA_TOPICS = (PROFILE_CHANGED, CONFIGURATION_CHANGED)
ANALYTICS_CONFIG = Tokens().analytics_config  # the one analytics configuration


def media_changes(before: MediaSettings, after: MediaSettings) -> list[EventMessage]:
    """The ProfileChanged and ConfigurationChanged messages between two revisions."""
    messages = []
    old_profiles = {p.token: p for p in before.profiles}
    new_profiles = {p.token: p for p in after.profiles}
    for token in sorted(old_profiles.keys() | new_profiles.keys()):
        if old_profiles.get(token) != new_profiles.get(token):
            messages.append(EventMessage(PROFILE_CHANGED.topic, (), (("Token", token),)))
    old_encoders = {e.token: e for e in before.encoders}
    for enc in after.encoders:
        if old_encoders.get(enc.token) != enc:
            messages.append(_configuration(enc.token, "VideoEncoder"))
    old_masks = {m.token: m for m in before.masks}
    new_masks = {m.token: m for m in after.masks}
    for token in sorted(old_masks.keys() | new_masks.keys()):
        if old_masks.get(token) != new_masks.get(token):
            messages.append(_configuration(token, "Mask"))
    if before.privacy != after.privacy:
        messages.append(_configuration(ANALYTICS_CONFIG, "Analytics"))
    return messages


def _configuration(token: str, kind: str) -> EventMessage:
    return EventMessage(CONFIGURATION_CHANGED.topic, (), (("Token", token), ("Type", kind)))


def publish_media_changes(store: MediaSettingsStore, broker: EventBroker) -> Callable[[], None]:
    """Publishes what changes in `store` from now on; returns a function that stops it."""
    for info in MEDIA_TOPICS:
        broker.declare(info)
    last = [store.settings]

    def changed(settings: MediaSettings) -> None:
        before, last[0] = last[0], settings
        for msg in media_changes(before, settings):
            broker.publish(msg)

    return store.subscribe(changed)


def publish_rule_changes(store: AnalyticsRuleStore, broker: EventBroker) -> Callable[[], None]:
    """Publishes a ConfigurationChanged for the analytics configuration whenever its rules
    change from now on; returns a function that stops it."""
    broker.declare(CONFIGURATION_CHANGED)
    last = [store.settings.rules]

    def changed(rules: RuleSet) -> None:
        if rules.rules != last[0]:
            last[0] = rules.rules
            broker.publish(_configuration(ANALYTICS_CONFIG, "Analytics"))

    return store.subscribe(changed)
