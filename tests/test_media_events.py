"""tns1:Media/ProfileChanged and ConfigurationChanged follow the media settings store."""

from __future__ import annotations

import dataclasses

from vcam.events.broker import EventBroker
from vcam.events.media_events import publish_media_changes
from vcam.events.message import EventMessage
from vcam.media_settings import MaskSettings, ProfileSettings

from .onvif_model import media_for
from .test_onvif_services import MAIN_CFG, SUB_CFG


def test_changes_are_published_once_each() -> None:
    store = media_for(MAIN_CFG, SUB_CFG)
    broker = EventBroker()
    got: list[EventMessage] = []
    broker.subscribe(got.append)
    stop = publish_media_changes(store, broker)

    def data() -> list[tuple[str, ...]]:
        out = [(m.topic.split("/")[-1], *(v for _, v in m.data)) for m in got]
        got.clear()
        return out

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
