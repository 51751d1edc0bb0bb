"""The ONVIF Device service (ver10 devicemgmt): identity, clock, network, scopes, users, and the
list of services. Answers render `req.model`; the settings clients change (users, hostname,
scopes, discovery mode) are written by device_users.py and device_settings.py.

`SERVICES` is the one list of the services this device offers: GetServices and GetCapabilities
are built from it, so a new service (Media2, Events, Imaging...) is added there only.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from vcam.auth.users import MAX_PASSWORD, MAX_USERNAME
from vcam.onvif import analytics, deviceio, events, faults, imaging, media, media2
from vcam.onvif import device_settings as settings
from vcam.onvif.device_settings import fixed_scopes
from vcam.onvif.device_users import create_users, delete_users, set_user
from vcam.onvif.faults import SoapFault
from vcam.onvif.model import DeviceModel
from vcam.onvif.service import Handler, OnvifDispatcher, OnvifRequest, arg_texts, xs_bool
from vcam.onvif.soap import NSMAP, SERVICE_CAPABILITIES, TDS, TT, AccessClass, Element, qname

DEVICE_VERSION = (26, 6)  # the devicemgmt.wsdl served from wsdl/
WSDL_URL = "http://www.onvif.org/Documents/Specifications.html"
_A = AccessClass


def _version(major_minor: tuple[int, int]) -> list[Element]:
    return [TT.Major(str(major_minor[0])), TT.Minor(str(major_minor[1]))]


def device_capabilities(model: DeviceModel) -> Element:
    """tds:Capabilities, as GetServiceCapabilities and GetServices(IncludeCapability) send it."""
    network = {
        "IPFilter": False,
        "ZeroConfiguration": False,
        "IPVersion6": False,
        "DynDNS": False,
        "Dot11Configuration": False,
        "HostnameFromDHCP": False,
        "DHCPv6": False,
    }
    security = {
        "TLS1.0": False,
        "TLS1.1": False,
        "TLS1.2": False,
        "OnboardKeyGeneration": False,
        "AccessPolicyConfig": False,
        "DefaultAccessPolicy": True,  # soap.POLICY is the Core spec's default policy
        "Dot1X": False,
        "RemoteUserHandling": False,
        "X.509Token": False,
        "SAMLToken": False,
        "KerberosToken": False,
        "UsernameToken": True,
        "HttpDigest": True,
        "RELToken": False,
    }
    system = {
        "DiscoveryResolve": False,
        "DiscoveryBye": True,
        "RemoteDiscovery": False,
        "SystemBackup": False,
        "SystemLogging": False,
        "FirmwareUpgrade": False,
        "HttpFirmwareUpgrade": False,
        "HttpSystemBackup": False,
        "HttpSystemLogging": False,
        "HttpSupportInformation": False,
    }
    attrs = {k: xs_bool(v) for k, v in security.items()}
    attrs |= {"MaxUserNameLength": str(MAX_USERNAME), "MaxPasswordLength": str(MAX_PASSWORD)}
    return TDS.Capabilities(
        TDS.Network({k: xs_bool(v) for k, v in network.items()}, NTP="0"),
        TDS.Security(attrs),
        TDS.System({k: xs_bool(v) for k, v in system.items()}),
    )


def _legacy_device(req: OnvifRequest, xaddr: str) -> Element:
    """tt:Device of GetCapabilities (the pre-GetServices form)."""
    flags = ["IPFilter", "ZeroConfiguration", "IPVersion6", "DynDNS"]
    system = ["DiscoveryResolve", "DiscoveryBye", "RemoteDiscovery", "SystemBackup"]
    system += ["SystemLogging", "FirmwareUpgrade"]
    security = ["TLS1.1", "TLS1.2", "OnboardKeyGeneration", "AccessPolicyConfig"]
    security += ["X.509Token", "SAMLToken", "KerberosToken", "RELToken"]
    return TT.Device(
        TT.XAddr(xaddr),
        TT.Network(*[TT(name, "false") for name in flags]),
        TT.System(
            *[TT(name, xs_bool(name == "DiscoveryBye")) for name in system],
            TT.SupportedVersions(*_version(DEVICE_VERSION)),
        ),
        TT.Security(*[TT(name, "false") for name in security]),
    )


@dataclass(frozen=True)
class ServiceInfo:
    """One service of this device, as GetServices and GetCapabilities list it."""

    namespace: str
    path: str  # XAddr path on the web port
    version: tuple[int, int]
    capabilities: Callable[[DeviceModel], Element]  # what its GetServiceCapabilities returns
    category: str | None = None  # GetCapabilities (tt:CapabilityCategory), if it has one
    legacy: Callable[[OnvifRequest, str], Element] | None = None  # its tt:Capabilities child


SERVICES: tuple[ServiceInfo, ...] = (
    ServiceInfo(
        NSMAP["tds"],
        "/onvif/device_service",
        DEVICE_VERSION,
        device_capabilities,
        "Device",
        _legacy_device,
    ),
    ServiceInfo(
        NSMAP["trt"],
        "/onvif/media_service",
        media.MEDIA_VERSION,
        media.media_capabilities,
        "Media",
        media.legacy_capabilities,
    ),
    ServiceInfo(  # no GetCapabilities category: Media2 came after it
        NSMAP["tr2"],
        "/onvif/media2_service",
        media2.MEDIA2_VERSION,
        media2.media2_capabilities,
    ),
    ServiceInfo(
        NSMAP["timg"],
        "/onvif/imaging_service",
        imaging.IMAGING_VERSION,
        imaging.imaging_capabilities,
        "Imaging",
        imaging.legacy_capabilities,
    ),
    ServiceInfo(
        NSMAP["tmd"],
        "/onvif/deviceio_service",
        deviceio.DEVICEIO_VERSION,
        deviceio.deviceio_capabilities,
    ),
    ServiceInfo(
        NSMAP["tev"],
        events.EVENTS_PATH,
        events.EVENTS_VERSION,
        events.event_capabilities,
        "Events",
        events.legacy_capabilities,
    ),
    ServiceInfo(
        NSMAP["tan"],
        analytics.ANALYTICS_PATH,
        analytics.ANALYTICS_VERSION,
        analytics.analytics_capabilities,
        "Analytics",
        analytics.legacy_capabilities,
    ),
)
# tt:Capabilities children, in schema order.
_CATEGORIES = ("Analytics", "Device", "Events", "Imaging", "Media", "PTZ")


def _xaddr(req: OnvifRequest, service: ServiceInfo) -> str:
    return req.url("http", req.model.http_port, service.path)


def _bool_arg(value: str, name: str) -> bool:
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise faults.invalid_arg(f"{name} must be a boolean, not {value[:40]!r}")


# -- handlers ----------------------------------------------------------------------------------


def get_services(req: OnvifRequest) -> list[Element]:
    include = [_bool_arg(v, "IncludeCapability") for v in arg_texts(req.body, "IncludeCapability")]
    services = []
    for svc in SERVICES:
        caps = [TDS.Capabilities(svc.capabilities(req.model))] if include and include[0] else []
        services.append(
            TDS.Service(
                TDS.Namespace(svc.namespace),
                TDS.XAddr(_xaddr(req, svc)),
                *caps,
                TDS.Version(*_version(svc.version)),
            )
        )
    return [TDS.GetServicesResponse(*services)]


def get_service_capabilities(req: OnvifRequest) -> list[Element]:
    return [TDS.GetServiceCapabilitiesResponse(device_capabilities(req.model))]


def get_capabilities(req: OnvifRequest) -> list[Element]:
    asked = set(arg_texts(req.body, "Category")) or {"All"}
    unknown = asked - {"All", *_CATEGORIES}
    if unknown:
        raise faults.invalid_arg(f"unknown Category {sorted(unknown)[0][:40]!r}")
    by_category = {s.category: s for s in SERVICES if s.category and s.legacy}
    missing = asked - {"All", *by_category}
    if missing:  # Core spec: a category the device lacks is ter:NoSuchService
        raise SoapFault(
            faults.RECEIVER,
            ["ter:ActionNotSupported", "ter:NoSuchService"],
            f"no {sorted(missing)[0]} service",
        )
    children = []
    for category in _CATEGORIES:
        svc = by_category.get(category)
        if svc is not None and svc.legacy and ("All" in asked or category in asked):
            children.append(svc.legacy(req, _xaddr(req, svc)))
    return [TDS.GetCapabilitiesResponse(TDS.Capabilities(*children))]


def _date_time(tag: str, moment: datetime) -> Element:
    return TT(
        tag,
        TT.Time(
            TT.Hour(str(moment.hour)), TT.Minute(str(moment.minute)), TT.Second(str(moment.second))
        ),
        TT.Date(TT.Year(str(moment.year)), TT.Month(str(moment.month)), TT.Day(str(moment.day))),
    )


def date_and_time_handler(clock: Callable[[], float]) -> Handler:
    def get_system_date_and_time(req: OnvifRequest) -> list[Element]:
        now = datetime.fromtimestamp(clock(), UTC)
        return [
            TDS.GetSystemDateAndTimeResponse(
                TDS.SystemDateAndTime(
                    TT.DateTimeType("NTP"),  # the host's clock (see docs/onvif-interop.md)
                    TT.DaylightSavings("false"),
                    TT.TimeZone(TT.TZ("UTC0")),
                    _date_time("UTCDateTime", now),
                    _date_time("LocalDateTime", now),  # local time is UTC (TZ above)
                )
            )
        ]

    return get_system_date_and_time


def get_device_information(req: OnvifRequest) -> list[Element]:
    m = req.model
    return [
        TDS.GetDeviceInformationResponse(
            TDS.Manufacturer(m.manufacturer),
            TDS.Model(m.model),
            TDS.FirmwareVersion(m.firmware),
            TDS.SerialNumber(m.serial),
            TDS.HardwareId(m.hardware_id),
        )
    ]


def get_hostname(req: OnvifRequest) -> list[Element]:
    name = req.model.state.settings.hostname or req.model.hostname  # SetHostname's, or the host's
    info = TDS.HostnameInformation(TT.FromDHCP("false"), TT.Name(name))
    return [TDS.GetHostnameResponse(info)]


def _host_ipv4(host: str) -> str | None:
    """The address part of a Host header if it is an IPv4 literal."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    try:
        return str(ipaddress.IPv4Address(name.strip()))
    except ValueError:
        return None


def get_network_interfaces(req: OnvifRequest) -> list[Element]:
    # The interface the client reached us on; its prefix length is not known from here.
    address = _host_ipv4(req.host)
    manual = [TT.Manual(TT.Address(address), TT.PrefixLength("24"))] if address else []
    return [
        TDS.GetNetworkInterfacesResponse(
            TDS.NetworkInterfaces(
                TT.Enabled("true"),
                TT.Info(TT.Name("eth0"), TT.HwAddress(req.model.mac), TT.MTU("1500")),
                TT.IPv4(TT.Enabled("true"), TT.Config(*manual, TT.DHCP("false"))),
                token="eth0",
            )
        )
    ]


def get_dns(req: OnvifRequest) -> list[Element]:
    return [TDS.GetDNSResponse(TDS.DNSInformation(TT.FromDHCP("false")))]


def get_ntp(req: OnvifRequest) -> list[Element]:
    return [TDS.GetNTPResponse(TDS.NTPInformation(TT.FromDHCP("false")))]


def get_network_protocols(req: OnvifRequest) -> list[Element]:
    ports = (("HTTP", req.model.http_port), ("RTSP", req.model.rtsp_port))
    return [
        TDS.GetNetworkProtocolsResponse(
            *[
                TDS.NetworkProtocols(TT.Name(name), TT.Enabled("true"), TT.Port(str(port)))
                for name, port in ports
            ]
        )
    ]


def get_network_default_gateway(req: OnvifRequest) -> list[Element]:
    return [TDS.GetNetworkDefaultGatewayResponse(TDS.NetworkGateway())]


def scopes(model: DeviceModel) -> list[str]:
    """Every scope of the device: the Fixed ones (configuration), then the Configurable ones."""
    return [*fixed_scopes(model), *model.state.settings.scopes]


def get_scopes(req: OnvifRequest) -> list[Element]:
    def item(scope_def: str, uri: str) -> Element:
        return TDS.Scopes(TT.ScopeDef(scope_def), TT.ScopeItem(uri))

    items = [item("Fixed", s) for s in fixed_scopes(req.model)]
    items += [item("Configurable", s) for s in req.model.state.settings.scopes]
    return [TDS.GetScopesResponse(*items)]


def get_discovery_mode(req: OnvifRequest) -> list[Element]:
    mode = req.model.state.settings.discovery_mode
    return [TDS.GetDiscoveryModeResponse(TDS.DiscoveryMode(str(mode)))]


def get_users(req: OnvifRequest) -> list[Element]:
    # Never the password (the schema allows one; the Core spec forbids returning it).
    users = sorted(req.model.users.users(), key=lambda u: u.username)
    return [
        TDS.GetUsersResponse(
            *[TDS.User(TT.Username(u.username), TT.UserLevel(str(u.level))) for u in users]
        )
    ]


def get_wsdl_url(req: OnvifRequest) -> list[Element]:
    return [TDS.GetWsdlUrlResponse(TDS.WsdlUrl(WSDL_URL))]


def register_device(dispatcher: OnvifDispatcher, *, clock: Callable[[], float] = time.time) -> None:
    """Registers the Device service operations, each with its Core spec access class."""
    ops: tuple[tuple[str, Handler, AccessClass], ...] = (
        ("GetSystemDateAndTime", date_and_time_handler(clock), _A.PRE_AUTH),
        ("GetServices", get_services, _A.PRE_AUTH),
        ("GetServiceCapabilities", get_service_capabilities, SERVICE_CAPABILITIES),
        ("GetWsdlUrl", get_wsdl_url, _A.PRE_AUTH),
        ("GetCapabilities", get_capabilities, _A.PRE_AUTH),  # pre-auth in Core 2.2
        ("GetDeviceInformation", get_device_information, _A.READ_SYSTEM),
        ("GetHostname", get_hostname, _A.READ_SYSTEM),
        ("GetNetworkInterfaces", get_network_interfaces, _A.READ_SYSTEM),
        ("GetDNS", get_dns, _A.READ_SYSTEM),
        ("GetNTP", get_ntp, _A.READ_SYSTEM),
        ("GetNetworkProtocols", get_network_protocols, _A.READ_SYSTEM),
        ("GetNetworkDefaultGateway", get_network_default_gateway, _A.READ_SYSTEM),
        ("GetScopes", get_scopes, _A.READ_SYSTEM),
        ("GetDiscoveryMode", get_discovery_mode, _A.READ_SYSTEM),
        ("GetUsers", get_users, _A.READ_SYSTEM_SECRET),
        ("CreateUsers", create_users, _A.WRITE_SYSTEM),
        ("DeleteUsers", delete_users, _A.WRITE_SYSTEM),
        ("SetUser", set_user, _A.WRITE_SYSTEM),
        ("SetHostname", settings.set_hostname, _A.WRITE_SYSTEM),
        ("SetScopes", settings.set_scopes, _A.WRITE_SYSTEM),
        ("AddScopes", settings.add_scopes, _A.WRITE_SYSTEM),
        ("RemoveScopes", settings.remove_scopes, _A.WRITE_SYSTEM),
        ("SetDiscoveryMode", settings.set_discovery_mode, _A.WRITE_SYSTEM),
        ("SetSystemDateAndTime", settings.set_system_date_and_time, _A.WRITE_SYSTEM),
        ("SetSystemFactoryDefault", settings.set_system_factory_default, _A.UNRECOVERABLE),
        ("SystemReboot", settings.system_reboot, _A.UNRECOVERABLE),
    )
    for name, handler, access in ops:
        dispatcher.register(qname("tds", name), handler, access=access)
