"""Device settings that clients change: SetHostname, Set/Add/RemoveScopes, SetDiscoveryMode,
SetSystemDateAndTime, SetSystemFactoryDefault, SystemReboot; kept in `<data_dir>/device.json`.

Every answer is validated against the WSDL (through `call`), every refusal checked for its
Core spec subcodes. The end-to-end test sets a hostname and a scope with onvif-zeep-async,
restarts `vcam serve` on the same data directory and reads them back.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
from pathlib import Path
from xml.sax.saxutils import escape

import onvif
import pytest
from lxml import etree
from onvif import ONVIFCamera

from vcam.auth.users import UserLevel
from vcam.config import Config, OnvifConfig, WebConfig
from vcam.errors import ConfigError
from vcam.media.types import SourceInfo
from vcam.onvif.faults import RECEIVER, SENDER, SoapFault
from vcam.onvif.model import DeviceModel
from vcam.onvif.soap import NS, AccessClass, Dispatcher, allowed
from vcam.onvif.stack import build_discovery, build_dispatcher, device_model, device_state
from vcam.onvif.state import (
    MAX_SCOPES,
    DeviceSettings,
    DeviceState,
    DeviceStateError,
    DiscoveryMode,
    valid_hostname,
)

from .test_discovery import HOST, custom_probe, new_id, prober, receive, relates_to, running
from .test_onvif_services import MODEL, call, env, make_model
from .vcam_process import VcamProcess, free_port, loopback_config

WSDL_DIR = str(Path(onvif.__file__).parent / "wsdl")
ADMIN_PW = "state-test-admin-pw"
LOBBY = "onvif://www.onvif.org/location/lobby"
HALL = "onvif://www.onvif.org/location/hall"
FIXED = list(MODEL.scopes)

DISPATCHER = build_dispatcher()


def fresh(path: Path | None = None, **changes: object) -> DeviceModel:
    state = DeviceState.load(path) if path is not None else DeviceState()
    return make_model(state=state, **changes)


def ok(model: DeviceModel, body: str) -> etree._Element:
    return call(DISPATCHER, env(body), model=model)


def refused(model: DeviceModel, body: str) -> SoapFault:
    before = model.state.settings
    with pytest.raises(SoapFault) as info:
        ok(model, body)
    assert model.state.settings == before  # a refusal changes nothing
    return info.value


def set_hostname(name: str) -> str:
    return f"<tds:SetHostname><tds:Name>{name}</tds:Name></tds:SetHostname>"


def items(tag: str, uris: list[str]) -> str:
    return "".join(f"<tds:{tag}>{u}</tds:{tag}>" for u in uris)


def add_scopes(*uris: str) -> str:
    return f"<tds:AddScopes>{items('ScopeItem', list(uris))}</tds:AddScopes>"


def remove_scopes(*uris: str) -> str:
    return f"<tds:RemoveScopes>{items('ScopeItem', list(uris))}</tds:RemoveScopes>"


def set_scopes(*uris: str) -> str:
    return f"<tds:SetScopes>{items('Scopes', list(uris))}</tds:SetScopes>"


def hostname(model: DeviceModel) -> tuple[str | None, str | None]:
    info = ok(model, "<tds:GetHostname/>").find("tds:HostnameInformation", NS)
    assert info is not None
    return info.findtext("tt:FromDHCP", namespaces=NS), info.findtext("tt:Name", namespaces=NS)


def scopes(model: DeviceModel) -> list[tuple[str | None, str | None]]:
    answer = ok(model, "<tds:GetScopes/>")
    return [
        (s.findtext("tt:ScopeDef", namespaces=NS), s.findtext("tt:ScopeItem", namespaces=NS))
        for s in answer
    ]


def discovery_mode(model: DeviceModel) -> str | None:
    return ok(model, "<tds:GetDiscoveryMode/>").findtext("tds:DiscoveryMode", namespaces=NS)


def codes(fault: SoapFault) -> tuple[str, list[str]]:
    return fault.code, fault.subcodes


# -- hostname ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cam-01", "1cam", "cam.example.org", "A", "x" * 63])
def test_set_hostname(name: str) -> None:
    model = fresh()
    assert hostname(model) == ("false", "vcam-test")  # the machine's until a client sets one
    ok(model, set_hostname(name))
    assert hostname(model) == ("false", name)


BAD_NAMES = ["-cam", "cam-", "a..b", "cam_1", "x" * 64, "192.168.1.20", "", "caméra", "a b"]
BAD_NAMES += [".cam", "cam.", ".".join(["abcdefghi"] * 26)]  # the last: 259 characters


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_hostnames_are_refused(name: str) -> None:
    assert not valid_hostname(name)
    fault = refused(fresh(), set_hostname(name))
    assert codes(fault) == (SENDER, ["ter:InvalidArgVal", "ter:InvalidHostname"])


# -- scopes -----------------------------------------------------------------------------------


def test_add_set_remove_scopes_with_their_scope_defs() -> None:
    model = fresh()
    assert scopes(model) == [("Fixed", s) for s in FIXED]
    ok(model, add_scopes(LOBBY, HALL, LOBBY, FIXED[0]))  # duplicates and fixed ones ignored
    ok(model, add_scopes(HALL))
    assert scopes(model) == [("Fixed", s) for s in FIXED] + [
        ("Configurable", LOBBY),
        ("Configurable", HALL),
    ]
    removed = ok(model, remove_scopes(HALL))
    assert [e.text for e in removed] == [HALL]
    assert model.state.settings.scopes == (LOBBY,)
    door = "onvif://www.onvif.org/location/door"
    ok(model, set_scopes(door, HALL, door))
    assert model.state.settings.scopes == (door, HALL)
    ok(model, "<tds:SetScopes/>")  # replaces them all: with none
    assert scopes(model) == [("Fixed", s) for s in FIXED]


def test_scope_refusals() -> None:
    model = fresh()
    ok(model, add_scopes(LOBBY))
    fault = refused(model, set_scopes(HALL, FIXED[1]))
    assert codes(fault) == (SENDER, ["ter:OperationProhibited", "ter:ScopeOverwrite"])
    fault = refused(model, remove_scopes(LOBBY, FIXED[0]))  # all or nothing
    assert codes(fault) == (SENDER, ["ter:OperationProhibited", "ter:FixedScope"])
    fault = refused(model, remove_scopes(LOBBY, HALL))
    assert codes(fault) == (SENDER, ["ter:InvalidArgVal", "ter:NoScope"])
    for bad in ("no-scheme", "onvif://a b", "x:" + "y" * 600):
        assert codes(refused(model, add_scopes(bad))) == (SENDER, ["ter:InvalidArgVal"])
    assert codes(refused(model, "<tds:AddScopes/>")) == (SENDER, ["ter:InvalidArgVal"])
    many = [f"onvif://www.onvif.org/location/{i}" for i in range(MAX_SCOPES)]
    fault = refused(model, add_scopes(*many))  # LOBBY + 32 > 32
    assert codes(fault) == (RECEIVER, ["ter:Action", "ter:TooManyScopes"])
    fault = refused(model, set_scopes(*many, HALL))
    assert codes(fault) == (RECEIVER, ["ter:Action", "ter:TooManyScopes"])
    ok(model, set_scopes(*many))  # exactly the limit
    assert len(model.state.settings.scopes) == MAX_SCOPES


# -- discovery mode, time, factory default, reboot ------------------------------------------


def test_discovery_mode() -> None:
    model = fresh()
    assert discovery_mode(model) == "Discoverable"
    body = "<tds:SetDiscoveryMode><tds:DiscoveryMode>{}</tds:DiscoveryMode></tds:SetDiscoveryMode>"
    ok(model, body.format("NonDiscoverable"))
    assert discovery_mode(model) == "NonDiscoverable"
    assert codes(refused(model, body.format("Hidden"))) == (SENDER, ["ter:InvalidArgVal"])
    ok(model, body.format("Discoverable"))
    assert model.state.settings.discovery_mode is DiscoveryMode.DISCOVERABLE


def date_time(kind: str, tz: str | None = None, utc: bool = False) -> str:
    zone = f"<tds:TimeZone><tt:TZ>{escape(tz)}</tt:TZ></tds:TimeZone>" if tz is not None else ""
    when = (
        "<tds:UTCDateTime><tt:Time><tt:Hour>10</tt:Hour><tt:Minute>0</tt:Minute>"
        "<tt:Second>0</tt:Second></tt:Time><tt:Date><tt:Year>2024</tt:Year><tt:Month>5"
        "</tt:Month><tt:Day>1</tt:Day></tt:Date></tds:UTCDateTime>"
        if utc
        else ""
    )
    return (
        f"<tds:SetSystemDateAndTime><tds:DateTimeType>{kind}</tds:DateTimeType>"
        f"<tds:DaylightSavings>false</tds:DaylightSavings>{zone}{when}</tds:SetSystemDateAndTime>"
    )


def test_set_system_date_and_time_follows_the_host_clock() -> None:
    model = fresh()
    for tz in (None, "UTC0", "GMT0", "UTC", "<+00>0", "Etc/UTC"):
        ok(model, date_time("NTP", tz))  # what the device does already: accepted
    fault = refused(model, date_time("NTP", "CET-1CEST,M3.5.0,M10.5.0/3"))
    assert codes(fault) == (SENDER, ["ter:InvalidArgVal", "ter:InvalidTimeZone"])
    fault = refused(model, date_time("Manual", "UTC0", utc=True))
    assert codes(fault) == (SENDER, ["ter:OperationProhibited"])
    assert codes(refused(model, date_time("Sundial"))) == (SENDER, ["ter:InvalidArgVal"])


@pytest.mark.parametrize("kind", ["Soft", "Hard"])
def test_factory_default_resets_the_settings_and_keeps_the_users(kind: str) -> None:
    model = fresh()
    ok(model, set_hostname("renamed"))
    ok(model, add_scopes(LOBBY))
    ok(
        model,
        "<tds:SetDiscoveryMode><tds:DiscoveryMode>NonDiscoverable</tds:DiscoveryMode>"
        "</tds:SetDiscoveryMode>",
    )
    users = model.users.users()
    body = "<tds:SetSystemFactoryDefault><tds:FactoryDefault>{}</tds:FactoryDefault>"
    body += "</tds:SetSystemFactoryDefault>"
    ok(model, body.format(kind))
    assert hostname(model) == ("false", "vcam-test")
    assert scopes(model) == [("Fixed", s) for s in FIXED]
    assert discovery_mode(model) == "Discoverable"
    assert model.users.users() == users
    assert codes(refused(model, body.format("Medium"))) == (SENDER, ["ter:InvalidArgVal"])


def test_system_reboot_calls_the_callback() -> None:
    calls: list[int] = []
    model = fresh(on_reboot=lambda: calls.append(1))
    answer = ok(model, "<tds:SystemReboot/>")
    message = answer.findtext("tds:Message", namespaces=NS)
    assert message == "Restarting the video pipeline now; RTSP sessions stay connected"
    assert calls == [1]
    fault = refused(fresh(), "<tds:SystemReboot/>")  # nothing to reboot with
    assert codes(fault) == (RECEIVER, ["ter:Action"])

    def broken() -> None:
        raise RuntimeError("no pipeline")

    assert codes(refused(fresh(on_reboot=broken), "<tds:SystemReboot/>")) == (
        RECEIVER,
        ["ter:Action"],
    )


def test_access_classes_of_the_settings() -> None:
    ops = {op.qname.split("}")[1]: op.access for op in DISPATCHER.operations()}
    for name in ("SetHostname", "SetScopes", "AddScopes", "RemoveScopes", "SetDiscoveryMode"):
        assert ops[name] is AccessClass.WRITE_SYSTEM, name
    assert ops["SetSystemDateAndTime"] is AccessClass.WRITE_SYSTEM
    assert ops["SetSystemFactoryDefault"] is AccessClass.UNRECOVERABLE
    assert ops["SystemReboot"] is AccessClass.UNRECOVERABLE
    for name in ("GetHostname", "GetScopes", "GetDiscoveryMode"):
        assert ops[name] is AccessClass.READ_SYSTEM
    viewer = MODEL.users.get("viewer")
    for op in DISPATCHER.operations():
        if op.access in (AccessClass.WRITE_SYSTEM, AccessClass.UNRECOVERABLE):
            assert not allowed(UserLevel.OPERATOR, op.access)
            with pytest.raises(SoapFault):
                Dispatcher.authorize(op, viewer)


# -- persistence ------------------------------------------------------------------------------


def test_settings_survive_a_reload_in_an_owner_only_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "device.json"
    model = fresh(path)
    assert not path.exists()  # nothing written until a client changes something
    ok(model, set_hostname("lobby-cam"))
    ok(model, add_scopes(LOBBY, HALL))
    ok(model, remove_scopes(LOBBY))
    ok(
        model,
        "<tds:SetDiscoveryMode><tds:DiscoveryMode>NonDiscoverable</tds:DiscoveryMode>"
        "</tds:SetDiscoveryMode>",
    )
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not path.with_name("device.json.tmp").exists()
    again = fresh(path)
    assert again.state.settings == model.state.settings
    assert hostname(again) == ("false", "lobby-cam")
    assert scopes(again)[-1] == ("Configurable", HALL)
    assert discovery_mode(again) == "NonDiscoverable"
    assert json.loads(path.read_text())["hostname"] == "lobby-cam"


def test_a_failed_write_changes_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    model = make_model(state=DeviceState(blocker / "device.json"))  # load() would refuse it
    fault = refused(model, set_hostname("renamed"))
    assert codes(fault) == (RECEIVER, ["ter:Action"])
    assert hostname(model) == ("false", "vcam-test")
    assert codes(refused(model, add_scopes(LOBBY))) == (RECEIVER, ["ter:Action"])
    assert scopes(model) == [("Fixed", s) for s in FIXED]
    with pytest.raises(OSError):
        model.state.set_discovery_mode(DiscoveryMode.NON_DISCOVERABLE)
    assert model.state.settings == DeviceSettings()


@pytest.mark.parametrize(
    "text",
    [
        "{",
        "[]",
        '{"version": 2}',
        '{"version": 1, "hostname": "-bad"}',
        '{"version": 1, "scopes": ["two words"]}',
        '{"version": 1, "scopes": "onvif://x"}',
        '{"version": 1, "discovery_mode": "Hidden"}',
    ],
)
def test_a_damaged_file_is_a_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "device.json"
    path.write_text(text)
    with pytest.raises(DeviceStateError, match=re.escape(str(path))):
        DeviceState.load(path)
    cfg = Config(data_dir=str(tmp_path))
    with pytest.raises(ConfigError, match=r"device\.json"):
        device_state(cfg)


def test_a_rebuilt_device_model_keeps_the_state(tmp_path: Path) -> None:
    cfg = Config(data_dir=str(tmp_path))
    first = device_model(cfg, MODEL.users, SourceInfo(640, 360, 25.0), 8080, 8554)
    first.state.set_hostname("kept")
    second = device_model(cfg, MODEL.users, SourceInfo(1280, 720, 25.0), 8080, 8554, first.state)
    assert second.state is first.state  # a rebuilt model follows the same settings
    assert DeviceState.load(tmp_path / "device.json").settings.hostname == "kept"


def test_subscribers_hear_of_changes() -> None:
    state = DeviceState()
    heard: list[DeviceSettings] = []
    unsubscribe = state.subscribe(heard.append)

    def broken(_: DeviceSettings) -> None:
        raise RuntimeError("subscriber bug")

    state.subscribe(broken)
    state.set_scopes([LOBBY])
    state.set_scopes([LOBBY])  # no change: no news
    state.set_discovery_mode(DiscoveryMode.NON_DISCOVERABLE)
    assert [s.scopes for s in heard] == [(LOBBY,), (LOBBY,)]
    assert [s.revision for s in heard] == [1, 2]
    assert heard[-1].discovery_mode is DiscoveryMode.NON_DISCOVERABLE
    unsubscribe()
    state.reset()
    assert len(heard) == 2
    assert state.settings == DeviceSettings(revision=3)


# -- discovery follows the state -------------------------------------------------------------


def test_discovery_answers_with_the_scopes_clients_set(tmp_path: Path) -> None:
    cfg = Config(
        data_dir=str(tmp_path),
        web=WebConfig(bind=HOST),
        onvif=OnvifConfig(discovery_port=0),
    )
    model = device_model(cfg, MODEL.users, SourceInfo(640, 360, 25.0), 8080, 8554)
    responder = build_discovery(cfg, model, 8080)
    with running(responder), prober() as sock:

        def probe(scope: str) -> list[bytes]:
            mid = new_id()
            sock.sendto(custom_probe(mid, scopes=scope), (HOST, responder.port))
            return [r for r in receive(sock, 1.0, until=mid) if relates_to(r) == mid]

        assert probe(LOBBY) == []
        ok(model, add_scopes(LOBBY))
        [reply] = probe(LOBBY)
        match = etree.fromstring(reply).find(".//{*}ProbeMatch")
        assert match is not None
        assert LOBBY in (match.findtext("{*}Scopes") or "").split()
        assert match.findtext("{*}MetadataVersion") == "2"
        ok(
            model,
            "<tds:SetDiscoveryMode><tds:DiscoveryMode>NonDiscoverable</tds:DiscoveryMode>"
            "</tds:SetDiscoveryMode>",
        )
        assert probe(LOBBY) == []  # NonDiscoverable: silence


# -- end to end -------------------------------------------------------------------------------


def test_hostname_and_scopes_set_over_onvif_survive_a_restart(tmp_path: Path) -> None:
    http = free_port()
    config = loopback_config(
        width=320, height=192, fps=10.0, rtsp_port=free_port(), http_port=http, solid=False,
        tail='[[output.streams]]\nname = "main"',
    )  # fmt: skip

    async def session(change: bool) -> tuple[str, list[tuple[str, str]]]:
        cam = ONVIFCamera("127.0.0.1", http, "admin", ADMIN_PW, WSDL_DIR)
        try:
            await cam.update_xaddrs()
            dev = await cam.create_devicemgmt_service()
            if change:
                await dev.SetHostname({"Name": "lobby-cam"})
                await dev.AddScopes({"ScopeItem": [LOBBY, HALL]})
            info = await dev.GetHostname()
            found = [(str(s.ScopeDef), str(s.ScopeItem)) for s in await dev.GetScopes()]
            return str(info.Name), found
        finally:
            await cam.close()

    vcam = VcamProcess(tmp_path, config, ADMIN_PW)
    try:
        vcam.wait_for("ONVIF: http://")
        name, found = asyncio.run(session(change=True))
    finally:
        vcam.stop()
    assert name == "lobby-cam"
    assert found[-2:] == [("Configurable", LOBBY), ("Configurable", HALL)]
    assert stat.S_IMODE(os.stat(tmp_path / "device.json").st_mode) == 0o600
    again = VcamProcess(tmp_path, config, ADMIN_PW)
    try:
        again.wait_for("ONVIF: http://")
        assert asyncio.run(session(change=False)) == (name, found)
    finally:
        again.stop()
