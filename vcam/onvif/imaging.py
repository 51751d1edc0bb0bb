"""The ONVIF Imaging service (ver20): Brightness, Contrast and ColorSaturation of the one video
source, applied for real to the masked output (vcam/imaging.py) and kept in the media store.

Only what the camera can do is reported and accepted: the three picture adjustments, 0..100 with
50 leaving the picture unchanged. There is no lens, so no exposure, focus, white balance, IR cut
or WDR settings: GetOptions does not list them and SetImagingSettings refuses them
(ter:InvalidArgVal/ter:SettingsInvalid) rather than pretending to apply them; the focus
operations (GetMoveOptions, Move, Stop) answer ter:ActionNotSupported/ter:NoImagingForSource.
Presets are not supported (Capabilities Presets="false"), so their operations are left to the
dispatcher's generic ActionNotSupported.
"""

from __future__ import annotations

import dataclasses
import math
import re

from lxml import etree

from vcam.media_settings import ImagingSettings, MediaSettings, MediaSettingsError
from vcam.onvif import faults
from vcam.onvif.faults import RECEIVER, SoapFault
from vcam.onvif.model import DeviceModel
from vcam.onvif.service import Handler, OnvifDispatcher, OnvifRequest, arg_text
from vcam.onvif.soap import SERVICE_CAPABILITIES, TIMG, TT, AccessClass, Element, qname

IMAGING_VERSION = (19, 6)  # the imaging.wsdl served from wsdl/
RANGE = (0.0, 100.0)  # tt:FloatRange of each adjustment; ImagingSettings checks the same
# tt:ImagingSettings20 element -> ImagingSettings field, in schema order.
_FIELDS = {"Brightness": "brightness", "ColorSaturation": "saturation", "Contrast": "contrast"}
# xs:float's lexical space (Python's float() also takes "1_0", " inf", "infinity"...).
_XS_FLOAT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?INF|NaN")
_XS_BOOL = {"true": True, "1": True, "false": False, "0": False}


def _settings_invalid(reason: str) -> SoapFault:
    return faults.invalid_arg(reason, "ter:SettingsInvalid")


def _source(req: OnvifRequest) -> str:
    """The request's VideoSourceToken, which must name our one video source."""
    token = arg_text(req.body, "VideoSourceToken")
    if token is None:
        raise faults.invalid_args("VideoSourceToken is missing")
    if token != req.model.source_token:
        raise faults.invalid_arg(f"no video source {token[:64]!r}", "ter:NoSource")
    return token


def _level(text: str | None, name: str) -> float:
    value = (text or "").strip()
    if not _XS_FLOAT.fullmatch(value):
        raise _settings_invalid(f"{name} {value[:40]!r} is not a number")
    number = float(value)
    if not (math.isfinite(number) and RANGE[0] <= number <= RANGE[1]):
        raise _settings_invalid(f"{name} {value[:40]} not in {RANGE[0]:g}..{RANGE[1]:g}")
    return number


def requested_changes(settings: Element) -> dict[str, float]:
    """The ImagingSettings fields a tt:ImagingSettings20 element sets; SoapFault for anything
    this camera cannot apply (an empty Extension asks for nothing and is accepted)."""
    changes: dict[str, float] = {}
    for child in settings:
        if not isinstance(child.tag, str):
            continue  # comments, processing instructions
        local = etree.QName(child).localname
        field = _FIELDS.get(local)
        if field is None:
            if local == "Extension" and not len(child) and not (child.text or "").strip():
                continue
            raise _settings_invalid(f"{local[:40]} cannot be set on this camera")
        if field in changes:
            raise _settings_invalid(f"{local} given twice")
        changes[field] = _level(child.text, local)
    return changes


# -- capabilities ------------------------------------------------------------------------------


def imaging_capabilities(model: DeviceModel) -> Element:
    """timg:Capabilities, as GetServiceCapabilities and GetServices(IncludeCapability) send it."""
    return TIMG.Capabilities(ImageStabilization="false", Presets="false", AdaptablePreset="false")


def legacy_capabilities(req: OnvifRequest, xaddr: str) -> Element:
    """tt:Imaging of the Device service's GetCapabilities."""
    return TT.Imaging(TT.XAddr(xaddr))


def imaging_settings(imaging: ImagingSettings) -> list[Element]:
    """The children of a tt:ImagingSettings20, in schema order."""
    return [
        TT.Brightness(f"{imaging.brightness:g}"),
        TT.ColorSaturation(f"{imaging.saturation:g}"),
        TT.Contrast(f"{imaging.contrast:g}"),
    ]


# -- handlers ----------------------------------------------------------------------------------


def get_service_capabilities(req: OnvifRequest) -> list[Element]:
    return [TIMG.GetServiceCapabilitiesResponse(imaging_capabilities(req.model))]


def get_imaging_settings(req: OnvifRequest) -> list[Element]:
    _source(req)
    settings = imaging_settings(req.model.media.settings.imaging)
    return [TIMG.GetImagingSettingsResponse(TIMG.ImagingSettings(*settings))]


def get_options(req: OnvifRequest) -> list[Element]:
    _source(req)
    low, high = (f"{v:g}" for v in RANGE)
    ranges = [TT(name, TT.Min(low), TT.Max(high)) for name in _FIELDS]
    return [TIMG.GetOptionsResponse(TIMG.ImagingOptions(*ranges))]


def set_imaging_settings(req: OnvifRequest) -> list[Element]:
    """Applies the adjustments from the next frame on. Settings are always kept (the media
    store writes them before they take effect), so ForcePersistence false persists too, which
    the spec allows: it only says whether the device must."""
    _source(req)
    persist = arg_text(req.body, "ForcePersistence")
    if persist is not None and persist not in _XS_BOOL:
        raise faults.invalid_arg(f"ForcePersistence {persist[:40]!r} is not a boolean")
    element = next(
        (
            c
            for c in req.body
            if isinstance(c.tag, str) and etree.QName(c).localname == "ImagingSettings"
        ),
        None,
    )
    if element is None:
        raise faults.invalid_args("ImagingSettings is missing")
    changes = requested_changes(element)

    def edit(settings: MediaSettings) -> MediaSettings:
        imaging = dataclasses.replace(settings.imaging, **changes)
        return dataclasses.replace(settings, imaging=imaging)

    try:
        req.model.media.change(edit)
    except MediaSettingsError as exc:  # checked above; kept so a store rule is never bypassed
        raise _settings_invalid(str(exc)) from None
    except OSError as exc:
        raise faults.action_failed(f"cannot keep the settings: {exc.strerror}") from None
    return [TIMG.SetImagingSettingsResponse()]


def get_status(req: OnvifRequest) -> list[Element]:
    """An empty tt:ImagingStatus20: there is no focus whose position could be reported."""
    _source(req)
    return [TIMG.GetStatusResponse(TIMG.Status())]


def no_focus(req: OnvifRequest) -> list[Element]:
    """GetMoveOptions, Move and Stop: a known source without focus control."""
    _source(req)  # an unknown token is still ter:NoSource
    raise SoapFault(
        RECEIVER,
        ["ter:ActionNotSupported", "ter:NoImagingForSource"],
        "the video source has no focus control",
    )


def register_imaging(dispatcher: OnvifDispatcher) -> None:
    """Reads are READ_MEDIA, changes to the picture and lens ACTUATE (Core spec access
    classes)."""
    read, actuate = AccessClass.READ_MEDIA, AccessClass.ACTUATE
    ops: tuple[tuple[str, Handler, AccessClass], ...] = (
        ("GetServiceCapabilities", get_service_capabilities, SERVICE_CAPABILITIES),
        ("GetImagingSettings", get_imaging_settings, read),
        ("GetOptions", get_options, read),
        ("SetImagingSettings", set_imaging_settings, actuate),
        ("GetStatus", get_status, read),
        ("GetMoveOptions", no_focus, read),
        ("Move", no_focus, actuate),
        ("Stop", no_focus, actuate),
    )
    for name, handler, access in ops:
        dispatcher.register(qname("timg", name), handler, access=access)
