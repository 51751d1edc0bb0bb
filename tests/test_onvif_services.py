"""Device and Media (ver10) operation handlers: every answer valid against the WSDL types, and
what real clients read from them (XAddrs, H.264 profiles, stream and snapshot URIs)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from vcam.auth.users import User, UserLevel, UserStore
from vcam.config import StreamConfig
from vcam.media.types import SourceInfo
from vcam.media_settings import MAX_PROFILES, ProfileSettings
from vcam.onvif.device import SERVICES, register_device
from vcam.onvif.faults import SoapFault
from vcam.onvif.media import register_media
from vcam.onvif.model import DeviceModel
from vcam.onvif.service import OnvifDispatcher, OnvifRequest
from vcam.onvif.soap import NS, NSMAP, SOAP12, AccessClass, Dispatcher, envelope, parse_envelope
from vcam.onvif.stack import build_dispatcher
from vcam.onvif.state import DeviceSettings, DeviceState

from .onvif_model import media_for, onvif_device, stream_infos
from .onvif_xsd import validate

CORPUS = Path(__file__).parent / "corpus" / "soap"
CT = "application/soap+xml; charset=utf-8"
NOW = 1714557603.0  # 2024-05-01T10:00:03Z
HOST = "192.168.1.20:8080"
PASSWORDS = ("Vcam-Test-Pass1", "Viewer-Pass2")
TDS, TRT, TT = NSMAP["tds"], NSMAP["trt"], NSMAP["tt"]

MAIN_CFG = StreamConfig("main", 1280, 720, 25.0, 2000, 50, profile="high")
SUB_CFG = StreamConfig("sub", 640, 360, 12.5, 500, 25, profile="main")
SOURCE = SourceInfo(1280, 720, 25.0)
MAIN, SUB = stream_infos(media_for(MAIN_CFG, SUB_CFG), SOURCE)


def make_model(**changes: object) -> DeviceModel:
    users = UserStore(
        [
            User("admin", PASSWORDS[0], UserLevel.ADMINISTRATOR),
            User("viewer", PASSWORDS[1], UserLevel.USER),
        ]
    )
    fields: dict[str, Any] = {
        "users": users,
        "source": SOURCE,
        "media": media_for(MAIN_CFG, SUB_CFG),
        **changes,
    }
    return onvif_device(**fields)


MODEL = make_model()
ALL_SERVICES = build_dispatcher()  # every service GetServices lists, as `vcam serve` has them


@pytest.fixture(scope="module")
def dispatcher() -> OnvifDispatcher:
    d: OnvifDispatcher = Dispatcher()
    register_device(d, clock=lambda: NOW)
    register_media(d)
    return d


# Every prefix of vcam.onvif.soap.NSMAP (tds, trt, tr2, timg, tev...) declared on the envelope.
XMLNS = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NSMAP.items())


def env(body: str) -> bytes:
    return (f'<s:Envelope xmlns:s="{SOAP12}" {XMLNS}><s:Body>{body}</s:Body></s:Envelope>').encode()


def call(
    dispatcher: OnvifDispatcher,
    request: bytes,
    host: str = HOST,
    model: DeviceModel = MODEL,
    content_type: str = CT,
) -> etree._Element:
    """Parses, dispatches, serialises like the HTTP layer; returns the schema-valid answer."""
    req = parse_envelope(request, content_type)
    op = dispatcher.lookup(req.operation)
    children = op.handler(OnvifRequest(req.body_element, host, None, model))
    wire = envelope(children, version=req.version)
    body = etree.fromstring(wire).find(f"{{{req.version}}}Body")
    assert body is not None and len(body) == 1
    answer = body[0]
    assert etree.QName(answer).localname == f"{req.operation.localname}Response"
    validate(answer)
    return answer


def fault(dispatcher: OnvifDispatcher, request: bytes, host: str = HOST) -> SoapFault:
    with pytest.raises(SoapFault) as info:
        call(dispatcher, request, host)
    return info.value


# One well-formed request per registered operation (the test below insists on that).
REQUESTS: dict[str, str] = {
    "tds:GetSystemDateAndTime": "<tds:GetSystemDateAndTime/>",
    "tds:GetServices": "<tds:GetServices><tds:IncludeCapability>true</tds:IncludeCapability>"
    "</tds:GetServices>",
    "tds:GetServiceCapabilities": "<tds:GetServiceCapabilities/>",
    "tds:GetWsdlUrl": "<tds:GetWsdlUrl/>",
    "tds:GetCapabilities": "<tds:GetCapabilities><tds:Category>All</tds:Category>"
    "</tds:GetCapabilities>",
    "tds:GetDeviceInformation": "<tds:GetDeviceInformation/>",
    "tds:GetHostname": "<tds:GetHostname/>",
    "tds:GetNetworkInterfaces": "<tds:GetNetworkInterfaces/>",
    "tds:GetDNS": "<tds:GetDNS/>",
    "tds:GetNTP": "<tds:GetNTP/>",
    "tds:GetNetworkProtocols": "<tds:GetNetworkProtocols/>",
    "tds:GetNetworkDefaultGateway": "<tds:GetNetworkDefaultGateway/>",
    "tds:GetScopes": "<tds:GetScopes/>",
    "tds:GetDiscoveryMode": "<tds:GetDiscoveryMode/>",
    "tds:GetUsers": "<tds:GetUsers/>",
    "tds:CreateUsers": "<tds:CreateUsers><tds:User><tt:Username>op1</tt:Username>"
    "<tt:Password>op1-password</tt:Password><tt:UserLevel>Operator</tt:UserLevel></tds:User>"
    "</tds:CreateUsers>",
    "tds:DeleteUsers": "<tds:DeleteUsers><tds:Username>viewer</tds:Username></tds:DeleteUsers>",
    "tds:SetUser": "<tds:SetUser><tds:User><tt:Username>viewer</tt:Username>"
    "<tt:Password>new-viewer-pw</tt:Password><tt:UserLevel>Operator</tt:UserLevel></tds:User>"
    "</tds:SetUser>",
    "tds:SetHostname": "<tds:SetHostname><tds:Name>vcam-lobby</tds:Name></tds:SetHostname>",
    "tds:SetScopes": "<tds:SetScopes><tds:Scopes>onvif://www.onvif.org/location/lobby</tds:Scopes>"
    "</tds:SetScopes>",
    "tds:AddScopes": "<tds:AddScopes><tds:ScopeItem>onvif://www.onvif.org/location/hall"
    "</tds:ScopeItem></tds:AddScopes>",
    "tds:RemoveScopes": "<tds:RemoveScopes><tds:ScopeItem>onvif://www.onvif.org/location/door"
    "</tds:ScopeItem></tds:RemoveScopes>",
    "tds:SetDiscoveryMode": "<tds:SetDiscoveryMode><tds:DiscoveryMode>NonDiscoverable"
    "</tds:DiscoveryMode></tds:SetDiscoveryMode>",
    "tds:SetSystemDateAndTime": "<tds:SetSystemDateAndTime><tds:DateTimeType>NTP</tds:DateTimeType>"
    "<tds:DaylightSavings>false</tds:DaylightSavings><tds:TimeZone><tt:TZ>UTC0</tt:TZ>"
    "</tds:TimeZone></tds:SetSystemDateAndTime>",
    "tds:SetSystemFactoryDefault": "<tds:SetSystemFactoryDefault><tds:FactoryDefault>Soft"
    "</tds:FactoryDefault></tds:SetSystemFactoryDefault>",
    "tds:SystemReboot": "<tds:SystemReboot/>",
    "trt:GetServiceCapabilities": "<trt:GetServiceCapabilities/>",
    "trt:GetProfiles": "<trt:GetProfiles/>",
    "trt:GetProfile": "<trt:GetProfile><trt:ProfileToken>profile_sub</trt:ProfileToken>"
    "</trt:GetProfile>",
    "trt:GetVideoSources": "<trt:GetVideoSources/>",
    "trt:GetVideoSourceConfigurations": "<trt:GetVideoSourceConfigurations/>",
    "trt:GetVideoSourceConfiguration": "<trt:GetVideoSourceConfiguration><trt:ConfigurationToken>"
    "video_source_config</trt:ConfigurationToken></trt:GetVideoSourceConfiguration>",
    "trt:GetVideoEncoderConfigurations": "<trt:GetVideoEncoderConfigurations/>",
    "trt:GetVideoEncoderConfiguration": "<trt:GetVideoEncoderConfiguration><trt:ConfigurationToken>"
    "encoder_sub</trt:ConfigurationToken></trt:GetVideoEncoderConfiguration>",
    "trt:GetVideoEncoderConfigurationOptions": "<trt:GetVideoEncoderConfigurationOptions/>",
    "trt:GetMetadataConfigurations": "<trt:GetMetadataConfigurations/>",
    "trt:GetMetadataConfiguration": "<trt:GetMetadataConfiguration><trt:ConfigurationToken>"
    "metadata_config</trt:ConfigurationToken></trt:GetMetadataConfiguration>",
    "trt:GetStreamUri": "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream>"
    "<tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup>"
    "<trt:ProfileToken>profile_main</trt:ProfileToken></trt:GetStreamUri>",
    "trt:GetSnapshotUri": "<trt:GetSnapshotUri><trt:ProfileToken>profile_main</trt:ProfileToken>"
    "</trt:GetSnapshotUri>",
    "trt:GetCompatibleVideoSourceConfigurations": "<trt:GetCompatibleVideoSourceConfigurations>"
    "<trt:ProfileToken>profile_main</trt:ProfileToken></trt:GetCompatibleVideoSourceConfigurations>",
    "trt:GetVideoSourceConfigurationOptions": "<trt:GetVideoSourceConfigurationOptions/>",
    "trt:GetCompatibleVideoEncoderConfigurations": "<trt:GetCompatibleVideoEncoderConfigurations>"
    "<trt:ProfileToken>profile_main</trt:ProfileToken>"
    "</trt:GetCompatibleVideoEncoderConfigurations>",
    "trt:GetCompatibleMetadataConfigurations": "<trt:GetCompatibleMetadataConfigurations>"
    "<trt:ProfileToken>profile_sub</trt:ProfileToken></trt:GetCompatibleMetadataConfigurations>",
    "trt:GetMetadataConfigurationOptions": "<trt:GetMetadataConfigurationOptions>"
    "<trt:ConfigurationToken>metadata_config</trt:ConfigurationToken>"
    "</trt:GetMetadataConfigurationOptions>",
    "trt:GetOSDs": "<trt:GetOSDs/>",
    "trt:GetOSDOptions": "<trt:GetOSDOptions><trt:ConfigurationToken>video_source_config"
    "</trt:ConfigurationToken></trt:GetOSDOptions>",
    "trt:CreateProfile": "<trt:CreateProfile><trt:Name>SynoProfile</trt:Name></trt:CreateProfile>",
    "trt:DeleteProfile": "<trt:DeleteProfile><trt:ProfileToken>profile_extra</trt:ProfileToken>"
    "</trt:DeleteProfile>",
    "trt:AddVideoSourceConfiguration": "<trt:AddVideoSourceConfiguration><trt:ProfileToken>"
    "profile_extra</trt:ProfileToken><trt:ConfigurationToken>video_source_config"
    "</trt:ConfigurationToken></trt:AddVideoSourceConfiguration>",
    "trt:RemoveVideoSourceConfiguration": "<trt:RemoveVideoSourceConfiguration><trt:ProfileToken>"
    "profile_extra</trt:ProfileToken></trt:RemoveVideoSourceConfiguration>",
    "trt:AddVideoEncoderConfiguration": "<trt:AddVideoEncoderConfiguration><trt:ProfileToken>"
    "profile_extra</trt:ProfileToken><trt:ConfigurationToken>encoder_sub"
    "</trt:ConfigurationToken></trt:AddVideoEncoderConfiguration>",
    "trt:RemoveVideoEncoderConfiguration": "<trt:RemoveVideoEncoderConfiguration><trt:ProfileToken>"
    "profile_extra</trt:ProfileToken></trt:RemoveVideoEncoderConfiguration>",
    "trt:AddMetadataConfiguration": "<trt:AddMetadataConfiguration><trt:ProfileToken>"
    "profile_extra</trt:ProfileToken><trt:ConfigurationToken>metadata_config"
    "</trt:ConfigurationToken></trt:AddMetadataConfiguration>",
    "trt:RemoveMetadataConfiguration": "<trt:RemoveMetadataConfiguration><trt:ProfileToken>"
    "profile_extra</trt:ProfileToken></trt:RemoveMetadataConfiguration>",
    "trt:SetVideoEncoderConfiguration": "<trt:SetVideoEncoderConfiguration>"
    '<trt:Configuration token="encoder_sub"><tt:Name>sub</tt:Name><tt:UseCount>1</tt:UseCount>'
    "<tt:Encoding>H264</tt:Encoding><tt:Resolution><tt:Width>320</tt:Width>"
    "<tt:Height>180</tt:Height></tt:Resolution><tt:Quality>5</tt:Quality><tt:RateControl>"
    "<tt:FrameRateLimit>10</tt:FrameRateLimit><tt:EncodingInterval>1</tt:EncodingInterval>"
    "<tt:BitrateLimit>300</tt:BitrateLimit></tt:RateControl><tt:H264><tt:GovLength>20"
    "</tt:GovLength><tt:H264Profile>Baseline</tt:H264Profile></tt:H264>"
    "<tt:SessionTimeout>PT60S</tt:SessionTimeout></trt:Configuration>"
    "<trt:ForcePersistence>true</trt:ForcePersistence></trt:SetVideoEncoderConfiguration>",
}


def clark(prefixed: str) -> str:
    prefix, local = prefixed.split(":")
    return f"{{{NSMAP[prefix]}}}{local}"


def test_every_registered_operation_is_covered(dispatcher: OnvifDispatcher) -> None:
    assert {op.qname for op in dispatcher.operations()} == {clark(k) for k in REQUESTS}


def writable_model() -> DeviceModel:
    """A fresh model (changes stay in one test) that can reboot and has a configurable scope."""
    door = DeviceSettings(scopes=("onvif://www.onvif.org/location/door",))
    media = media_for(MAIN_CFG, SUB_CFG)
    media.change(  # a profile clients made, to fill in and delete
        lambda s: replace(s, profiles=(*s.profiles, ProfileSettings("profile_extra", "extra")))
    )
    return make_model(state=DeviceState(settings=door), on_reboot=lambda: None, media=media)


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_every_answer_is_schema_valid(dispatcher: OnvifDispatcher, name: str) -> None:
    call(dispatcher, env(REQUESTS[name]), model=writable_model())


@pytest.mark.parametrize("host", ["10.0.0.7:80", "[fe80::1]:8080", "cam.example:8080", "cam"])
@pytest.mark.parametrize(
    "name", ["tds:GetServices", "tds:GetCapabilities", "tds:GetNetworkInterfaces"]
)
def test_host_dependent_answers_are_schema_valid(
    dispatcher: OnvifDispatcher, name: str, host: str
) -> None:
    call(dispatcher, env(REQUESTS[name]), host)


def test_validator_rejects_invalid_answers() -> None:
    bad = etree.fromstring(
        f'<tds:GetUsersResponse xmlns:tds="{TDS}" xmlns:tt="{TT}"><tds:User>'
        "<tt:UserLevel>User</tt:UserLevel><tt:Username>x</tt:Username></tds:User>"
        "</tds:GetUsersResponse>"
    )
    with pytest.raises(AssertionError, match="Username"):
        validate(bad)


def corpus_request(name: str) -> tuple[bytes, str]:
    data = (CORPUS / name).read_bytes()
    m = re.search(rb"<!-- content-type: (.*?) -->", data)
    assert m
    return data, m.group(1).decode()


@pytest.mark.parametrize(
    "name",
    [
        "zeep_get_system_date_and_time.xml",
        "soap11_get_system_date_and_time.xml",
        "zeep_get_device_information_wsse.xml",
        "hikvision_get_device_information.xml",
        "npm_onvif_get_capabilities.xml",
        "zeep_get_profiles_trt.xml",
        "synology_get_profiles.xml",
        "zeep_get_stream_uri.xml",
        "go2rtc_get_snapshot_uri.xml",
    ],
)
def test_client_corpus(dispatcher: OnvifDispatcher, name: str) -> None:
    data, content_type = corpus_request(name)
    call(dispatcher, data, content_type=content_type)


# -- Device ------------------------------------------------------------------------------------


DATE_TIME_PATHS = ["Date/tt:Year", "Date/tt:Month", "Date/tt:Day"]
DATE_TIME_PATHS += ["Time/tt:Hour", "Time/tt:Minute", "Time/tt:Second"]


def test_system_date_and_time_from_the_clock(dispatcher: OnvifDispatcher) -> None:
    answer = call(dispatcher, env(REQUESTS["tds:GetSystemDateAndTime"]))
    sdt = answer.find("tds:SystemDateAndTime", NS)
    assert sdt is not None
    assert sdt.findtext("tt:DateTimeType", namespaces=NS) == "NTP"
    assert sdt.findtext("tt:TimeZone/tt:TZ", namespaces=NS) == "UTC0"
    for which in ("UTCDateTime", "LocalDateTime"):
        parts = [sdt.findtext(f"tt:{which}/tt:{path}", namespaces=NS) for path in DATE_TIME_PATHS]
        assert parts == ["2024", "5", "1", "10", "0", "3"]


def canon(element: etree._Element) -> str:
    return etree.canonicalize(etree.tostring(element).decode())


def services(dispatcher: OnvifDispatcher, include: str, host: str = HOST) -> etree._Element:
    body = f"<tds:GetServices><tds:IncludeCapability>{include}</tds:IncludeCapability>"
    return call(dispatcher, env(body + "</tds:GetServices>"), host)


def test_get_services_lists_device_and_media(dispatcher: OnvifDispatcher) -> None:
    answer = services(dispatcher, "false")
    listed = {
        s.findtext("tds:Namespace", namespaces=NS): s.findtext("tds:XAddr", namespaces=NS)
        for s in answer.iterfind("tds:Service", NS)
    }
    assert listed == {svc.namespace: f"http://192.168.1.20:8080{svc.path}" for svc in SERVICES}
    served = {TDS, TRT, *(NSMAP[p] for p in ("tr2", "timg", "tmd", "tev", "tan"))}
    assert served <= set(listed)
    assert listed[TDS] == "http://192.168.1.20:8080/onvif/device_service"
    assert answer.find("tds:Service/tds:Capabilities", NS) is None
    assert [s.namespace for s in SERVICES][:2] == [TDS, TRT]  # Device first, as clients expect


def test_get_services_capabilities_match_get_service_capabilities(
    dispatcher: OnvifDispatcher,
) -> None:
    for include in ("true", "1"):
        answer = services(dispatcher, include)
        for service in answer.iterfind("tds:Service", NS):
            ns = service.findtext("tds:Namespace", namespaces=NS)
            embedded = service.find("tds:Capabilities", NS)
            assert embedded is not None and len(embedded) == 1
            prefix = {v: k for k, v in NSMAP.items()}[ns]
            own = call(ALL_SERVICES, env(f"<{prefix}:GetServiceCapabilities/>"))
            assert len(own) == 1
            assert canon(embedded[0]) == canon(own[0])


def test_service_capabilities_advertise_auth_and_snapshots(dispatcher: OnvifDispatcher) -> None:
    device = call(dispatcher, env("<tds:GetServiceCapabilities/>"))
    security = device.find("tds:Capabilities/tds:Security", NS)
    assert security is not None
    assert security.get("UsernameToken") == "true" and security.get("HttpDigest") == "true"
    media = call(dispatcher, env("<trt:GetServiceCapabilities/>"))
    caps = media.find("trt:Capabilities", NS)
    assert caps is not None and caps.get("SnapshotUri") == "true"
    profiles = caps.find("trt:ProfileCapabilities", NS)
    assert profiles is not None and profiles.get("MaximumNumberOfProfiles") == str(MAX_PROFILES)
    streaming = caps.find("trt:StreamingCapabilities", NS)
    assert streaming is not None
    assert [streaming.get(k) for k in ("RTPMulticast", "RTP_TCP", "RTP_RTSP_TCP")] == ["true"] * 3


def test_xaddrs_follow_the_host_header(dispatcher: OnvifDispatcher) -> None:
    def xaddrs(host: str) -> list[str]:
        got = [x.text or "" for x in services(dispatcher, "false", host).iter(f"{{{TDS}}}XAddr")]
        caps = call(dispatcher, env(REQUESTS["tds:GetCapabilities"]), host)
        return got + [x.text or "" for x in caps.iter(f"{{{TT}}}XAddr")]

    first, second = xaddrs("10.1.2.3:8080"), xaddrs("[fd00::5]:80")
    assert len(first) == len(SERVICES) + len([s for s in SERVICES if s.legacy])
    assert all(x.startswith("http://10.1.2.3:8080/onvif/") for x in first)
    assert all(x.startswith("http://[fd00::5]:8080/onvif/") for x in second)


def test_get_capabilities_categories(dispatcher: OnvifDispatcher) -> None:
    def children(body: str) -> list[str]:
        answer = call(dispatcher, env(f"<tds:GetCapabilities>{body}</tds:GetCapabilities>"))
        caps = answer.find("tds:Capabilities", NS)
        assert caps is not None
        return [etree.QName(c).localname for c in caps]

    every = children("")
    assert {"Analytics", "Device", "Events", "Imaging", "Media"} <= set(every)
    assert every == sorted(every)  # tt:Capabilities' schema order is alphabetical
    assert children("<tds:Category>Media</tds:Category>") == ["Media"]
    assert children("<tds:Category>Device</tds:Category>") == ["Device"]
    bogus = env("<tds:GetCapabilities><tds:Category>Toaster</tds:Category></tds:GetCapabilities>")
    assert fault(dispatcher, bogus).subcodes == ["ter:InvalidArgVal"]
    ptz = env("<tds:GetCapabilities><tds:Category>PTZ</tds:Category></tds:GetCapabilities>")
    assert fault(dispatcher, ptz).subcodes == ["ter:ActionNotSupported", "ter:NoSuchService"]


def test_get_capabilities_media_streaming(dispatcher: OnvifDispatcher) -> None:
    answer = call(dispatcher, env(REQUESTS["tds:GetCapabilities"]))
    streaming = answer.find("tds:Capabilities/tt:Media/tt:StreamingCapabilities", NS)
    assert streaming is not None
    assert [c.text for c in streaming] == ["true"] * 3


def test_get_services_rejects_a_non_boolean(dispatcher: OnvifDispatcher) -> None:
    bad = env(
        "<tds:GetServices><tds:IncludeCapability>yes</tds:IncludeCapability></tds:GetServices>"
    )
    assert fault(dispatcher, bad).subcodes == ["ter:InvalidArgVal"]


def test_network_interface_from_the_host_used(dispatcher: OnvifDispatcher) -> None:
    answer = call(dispatcher, env(REQUESTS["tds:GetNetworkInterfaces"]), "10.9.8.7:8080")
    nic = answer.find("tds:NetworkInterfaces", NS)
    assert nic is not None and nic.get("token") == "eth0"
    assert nic.findtext("tt:Enabled", namespaces=NS) == "true"
    assert nic.findtext("tt:Info/tt:HwAddress", namespaces=NS) == MODEL.mac
    assert nic.findtext("tt:IPv4/tt:Config/tt:Manual/tt:Address", namespaces=NS) == "10.9.8.7"
    assert nic.findtext("tt:IPv4/tt:Config/tt:DHCP", namespaces=NS) == "false"
    by_name = call(dispatcher, env(REQUESTS["tds:GetNetworkInterfaces"]), "cam.local:8080")
    assert by_name.find(".//tt:Manual", NS) is None


def test_device_information_and_protocols(dispatcher: OnvifDispatcher) -> None:
    info = call(dispatcher, env(REQUESTS["tds:GetDeviceInformation"]))
    assert [c.text for c in info] == ["vcam", "vcam privacy camera", "0.1.0", "SN-0001", "vcam-1"]
    protocols = call(dispatcher, env(REQUESTS["tds:GetNetworkProtocols"]))
    ports = {
        p.findtext("tt:Name", namespaces=NS): p.findtext("tt:Port", namespaces=NS)
        for p in protocols
    }
    assert ports == {"HTTP": "8080", "RTSP": "8554"}


def test_scopes_are_fixed(dispatcher: OnvifDispatcher) -> None:
    answer = call(dispatcher, env(REQUESTS["tds:GetScopes"]))
    items = [s.findtext("tt:ScopeItem", namespaces=NS) for s in answer]
    assert items == list(MODEL.scopes)
    assert {s.findtext("tt:ScopeDef", namespaces=NS) for s in answer} == {"Fixed"}
    no_scopes = call(dispatcher, env(REQUESTS["tds:GetScopes"]), model=make_model(scopes=()))
    assert len(no_scopes) >= 1  # the schema wants one: the discovery defaults


def test_get_users_never_includes_a_password(dispatcher: OnvifDispatcher) -> None:
    answer = call(dispatcher, env(REQUESTS["tds:GetUsers"]))
    users = {
        u.findtext("tt:Username", namespaces=NS): u.findtext("tt:UserLevel", namespaces=NS)
        for u in answer
    }
    assert users == {"admin": "Administrator", "viewer": "User"}
    assert answer.find(".//tt:Password", NS) is None
    wire = etree.tostring(answer)
    assert not any(p.encode() in wire for p in PASSWORDS)


def test_access_classes(dispatcher: OnvifDispatcher) -> None:
    ops = {op.qname: op.access for op in dispatcher.operations()}
    preauth = {q for q, access in ops.items() if access is AccessClass.PRE_AUTH}
    assert preauth == {
        clark(f"tds:{name}")
        for name in (
            "GetSystemDateAndTime",
            "GetServices",
            "GetServiceCapabilities",
            "GetWsdlUrl",
            "GetCapabilities",
        )
    } | {clark("trt:GetServiceCapabilities")}  # every service's: GetServices tells it anyway
    assert all(isinstance(access, AccessClass) for access in ops.values())
    assert ops[clark("tds:GetUsers")] is AccessClass.READ_SYSTEM_SECRET
    media = {etree.QName(q).localname: ops[q] for q in ops if q.startswith(f"{{{TRT}}}")}
    changes = {n for n in media if n.startswith(("Set", "Create", "Delete", "Add", "Remove"))}
    assert {media[n] for n in changes} == {AccessClass.ACTUATE}  # Core spec: configuration
    reads = media.keys() - changes - {"GetServiceCapabilities"}
    assert {media[n] for n in reads} == {AccessClass.READ_MEDIA}
    viewer = MODEL.users.get("viewer")
    users_op = dispatcher.lookup(clark("tds:GetUsers"))
    with pytest.raises(SoapFault):
        Dispatcher.authorize(users_op, viewer)
    Dispatcher.authorize(dispatcher.lookup(clark("trt:GetProfiles")), viewer)


def test_prefixes_do_not_matter(dispatcher: OnvifDispatcher) -> None:
    prefixed = call(dispatcher, env(REQUESTS["trt:GetStreamUri"]))
    default_ns = (
        f'<Envelope xmlns="{SOAP12}"><Body><GetStreamUri xmlns="{TRT}"><StreamSetup>'
        f'<Stream xmlns="{TT}">RTP-Unicast</Stream><Transport xmlns="{TT}"><Protocol>RTSP'
        "</Protocol></Transport></StreamSetup><ProfileToken>profile_main</ProfileToken>"
        "</GetStreamUri></Body></Envelope>"
    ).encode()
    assert etree.tostring(call(dispatcher, default_ns)) == etree.tostring(prefixed)


# -- Media -------------------------------------------------------------------------------------


def test_profiles_are_h264_with_the_stream_sizes(dispatcher: OnvifDispatcher) -> None:
    answer = call(dispatcher, env(REQUESTS["trt:GetProfiles"]))
    seen = []
    for prof in answer.iterfind("trt:Profiles", NS):
        vec = prof.find("tt:VideoEncoderConfiguration", NS)
        assert vec is not None
        seen.append(
            (
                prof.get("token"),
                prof.get("fixed"),
                prof.findtext("tt:Name", namespaces=NS),
                vec.findtext("tt:Encoding", namespaces=NS),
                vec.findtext("tt:Resolution/tt:Width", namespaces=NS),
                vec.findtext("tt:Resolution/tt:Height", namespaces=NS),
                vec.findtext("tt:H264/tt:H264Profile", namespaces=NS),
            )
        )
        bounds = prof.find("tt:VideoSourceConfiguration/tt:Bounds", NS)
        assert bounds is not None and (bounds.get("width"), bounds.get("height")) == (
            "1280",
            "720",
        )
        assert prof.findtext("tt:MetadataConfiguration/tt:Analytics", namespaces=NS) == "true"
        assert vec.findtext("tt:SessionTimeout", namespaces=NS) == "PT60S"
        assert vec.findtext("tt:Multicast/tt:Address/tt:IPv4Address", namespaces=NS) == (
            "239.255.42.42"
        )
    assert seen == [
        ("profile_main", "true", "main", "H264", "1280", "720", "High"),
        ("profile_sub", "true", "sub", "H264", "640", "360", "Main"),
    ]


@pytest.mark.parametrize("stream", ["RTP-Unicast", "RTP-Multicast"])
@pytest.mark.parametrize("protocol", ["RTSP", "UDP", "TCP", "HTTP"])
def test_stream_uri_for_each_profile(
    dispatcher: OnvifDispatcher, stream: str, protocol: str
) -> None:
    for info in (MAIN, SUB):
        body = (
            f"<trt:GetStreamUri><trt:StreamSetup><tt:Stream>{stream}</tt:Stream><tt:Transport>"
            f"<tt:Protocol>{protocol}</tt:Protocol></tt:Transport></trt:StreamSetup>"
            f"<trt:ProfileToken>{info.profile_token}</trt:ProfileToken></trt:GetStreamUri>"
        )
        answer = call(dispatcher, env(body), "172.16.0.9:8080")
        expected = "http://172.16.0.9:8080" if protocol == "HTTP" else "rtsp://172.16.0.9:8554"
        assert answer.findtext("trt:MediaUri/tt:Uri", namespaces=NS) == f"{expected}/{info.name}"
        assert answer.findtext("trt:MediaUri/tt:Timeout", namespaces=NS) == "PT0S"


def test_snapshot_uri(dispatcher: OnvifDispatcher) -> None:
    body = (
        "<trt:GetSnapshotUri><trt:ProfileToken>profile_sub</trt:ProfileToken></trt:GetSnapshotUri>"
    )
    answer = call(dispatcher, env(body), "cam.example:80")
    uri = answer.findtext("trt:MediaUri/tt:Uri", namespaces=NS)
    assert uri == "http://cam.example:8080/snapshot/sub.jpg"


@pytest.mark.parametrize(
    "body",
    [
        "<trt:GetProfile><trt:ProfileToken>nope</trt:ProfileToken></trt:GetProfile>",
        "<trt:GetSnapshotUri><trt:ProfileToken>nope</trt:ProfileToken></trt:GetSnapshotUri>",
        "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport>"
        "<tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup>"
        "<trt:ProfileToken>nope</trt:ProfileToken></trt:GetStreamUri>",
        "<trt:GetVideoEncoderConfigurationOptions><trt:ProfileToken>nope</trt:ProfileToken>"
        "</trt:GetVideoEncoderConfigurationOptions>",
    ],
)
def test_unknown_profile_token(dispatcher: OnvifDispatcher, body: str) -> None:
    err = fault(dispatcher, env(body))
    assert err.code == "Sender"
    assert err.subcodes == ["ter:InvalidArgVal", "ter:NoProfile"]


@pytest.mark.parametrize(
    ("body", "subcodes"),
    [
        (
            "<trt:GetVideoEncoderConfiguration><trt:ConfigurationToken>x"
            "</trt:ConfigurationToken></trt:GetVideoEncoderConfiguration>",
            ["ter:InvalidArgVal", "ter:NoConfig"],
        ),
        (
            "<trt:GetVideoSourceConfiguration><trt:ConfigurationToken>x"
            "</trt:ConfigurationToken></trt:GetVideoSourceConfiguration>",
            ["ter:InvalidArgVal", "ter:NoConfig"],
        ),
        (
            "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Broadcast</tt:Stream>"
            "<tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup>"
            "<trt:ProfileToken>profile_main</trt:ProfileToken></trt:GetStreamUri>",
            ["ter:InvalidArgVal"],
        ),
        (
            "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream>"
            "<tt:Transport><tt:Protocol>SCTP</tt:Protocol></tt:Transport></trt:StreamSetup>"
            "<trt:ProfileToken>profile_main</trt:ProfileToken></trt:GetStreamUri>",
            ["ter:InvalidArgVal"],
        ),
        ("<trt:GetProfile/>", ["ter:InvalidArgs"]),
    ],
)
def test_bad_arguments(dispatcher: OnvifDispatcher, body: str, subcodes: list[str]) -> None:
    assert fault(dispatcher, env(body)).subcodes == subcodes


def resolutions(answer: etree._Element) -> list[tuple[str | None, str | None]]:
    return [
        (r.findtext("tt:Width", namespaces=NS), r.findtext("tt:Height", namespaces=NS))
        for r in answer.iterfind("trt:Options/tt:H264/tt:ResolutionsAvailable", NS)
    ]


def test_encoder_options_are_sizes_the_source_can_be_streamed_at(
    dispatcher: OnvifDispatcher,
) -> None:
    op = "GetVideoEncoderConfigurationOptions"
    every = call(dispatcher, env(f"<trt:{op}/>"))
    # The 1280x720 source and smaller sizes of exactly its aspect ratio, largest first.
    sizes = [(int(w or 0), int(h or 0)) for w, h in resolutions(every)]
    assert sizes[:4] == [(1280, 720), (1024, 576), (960, 540), (800, 450)]
    assert {(640, 360), (320, 180)} <= set(sizes)
    assert all(w * 9 == h * 16 and w % 2 == 0 == h % 2 and h >= 16 for w, h in sizes)
    sub = call(
        dispatcher, env(f"<trt:{op}><trt:ProfileToken>profile_sub</trt:ProfileToken></trt:{op}>")
    )
    assert resolutions(sub) == resolutions(every)
    ranges = every.find("trt:Options/tt:Extension/tt:H264/tt:BitrateRange", NS)
    assert ranges is not None and ranges.findtext("tt:Max", namespaces=NS) == "20000"
    rates = every.find("trt:Options/tt:H264/tt:FrameRateRange", NS)
    assert rates is not None and rates.findtext("tt:Max", namespaces=NS) == "25"  # the source
    mismatch = env(
        f"<trt:{op}><trt:ConfigurationToken>encoder_main</trt:ConfigurationToken>"
        f"<trt:ProfileToken>profile_sub</trt:ProfileToken></trt:{op}>"
    )
    assert fault(dispatcher, mismatch).subcodes == ["ter:InvalidArgVal", "ter:NoConfig"]


def test_video_sources(dispatcher: OnvifDispatcher) -> None:
    answer = call(dispatcher, env(REQUESTS["trt:GetVideoSources"]))
    source = answer.find("trt:VideoSources", NS)
    assert source is not None and source.get("token") == MODEL.source_token
    assert source.findtext("tt:Framerate", namespaces=NS) == "25"
    assert source.findtext("tt:Resolution/tt:Width", namespaces=NS) == "1280"
