"""Device service settings that clients change (Core spec 8.2, 8.3): hostname, scopes,
discovery mode, date and time, factory default, reboot.

Hostname, configurable scopes and discovery mode live in `req.model.state` (vcam/onvif/state.py),
written to the data directory before they take effect. The Fixed scopes are the model's (from the
configuration) and cannot be changed, overwritten or removed.

Decisions (the virtual camera is a process, not a box):
- SetHostname changes the name ONVIF reports (GetHostname, FromDHCP false), not the host's.
- SetSystemDateAndTime: the camera follows the host clock (GetSystemDateAndTime says NTP, UTC0).
  DateTimeType NTP with no time zone or a UTC one is accepted (it changes nothing); any other time
  zone is env:Sender/ter:InvalidArgVal/ter:InvalidTimeZone (the Core spec's fault for time zones;
  the device keeps UTC); Manual is env:Sender/ter:OperationProhibited (the Core spec has no fault
  of its own for a device without a settable clock; its generic "operation not permitted by the
  device" fits; ter:NtpServerUndefined means "NTP asked, no NTP server", not this).
- SetSystemFactoryDefault (Soft or Hard, the same here) resets hostname, scopes and discovery
  mode, and the media settings (encoders, profiles, masks, imaging) to the configured ones. It
  keeps the users: resetting them would lock the administrator out (the configured or generated
  admin password is the only way back in), and network settings are the host's.
- SystemReboot calls `model.on_reboot` and answers at once that the pipeline restarts: `vcam
  serve` wires it to a pipeline restart (source reopened, privacy gate closed again; servers and
  RTSP sessions stay), which it only schedules. Without one, env:Receiver/ter:Action.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from vcam.onvif import media
from vcam.onvif.discovery import default_scopes
from vcam.onvif.faults import RECEIVER, SENDER, SoapFault, action_failed, invalid_arg
from vcam.onvif.model import DeviceModel
from vcam.onvif.service import OnvifRequest, arg_text, arg_texts
from vcam.onvif.soap import TDS, Element
from vcam.onvif.state import (
    MAX_SCOPES,
    DeviceSettings,
    DeviceStateError,
    DiscoveryMode,
    valid_hostname,
    valid_scope,
)

REBOOT_MESSAGE = "Restarting the video pipeline now; RTSP sessions stay connected"
# POSIX TZ strings (and the usual names) that mean UTC: a name, offset 0, no DST rule.
_UTC_TZ = re.compile(
    r"(?:[A-Za-z]{3,}|<[+-]?[A-Za-z0-9]+>)[+-]?0{1,2}(?::00){0,2}|UTC|GMT|UCT|Z|Etc/(?:UTC|GMT|UCT)"
)


def fixed_scopes(model: DeviceModel) -> list[str]:
    # The schema wants at least one scope: fall back to the discovery defaults.
    return list(model.scopes) or default_scopes(model.model, model.hardware_id)


def _prohibited(subcode: str, reason: str) -> SoapFault:
    return SoapFault(SENDER, ["ter:OperationProhibited", f"ter:{subcode}"], reason)


def _too_many() -> SoapFault:
    # Core spec (SetScopes, AddScopes): env:Receiver / ter:Action / ter:TooManyScopes.
    return SoapFault(
        RECEIVER, ["ter:Action", "ter:TooManyScopes"], f"at most {MAX_SCOPES} configurable scopes"
    )


def _change(req: OnvifRequest, edit: Callable[[DeviceSettings], DeviceSettings]) -> DeviceSettings:
    """Applies a settings change, or raises the fault that says why nothing changed."""
    try:
        return req.model.state.change(edit)
    except DeviceStateError as exc:
        raise invalid_arg(str(exc)) from None
    except OSError as exc:
        raise action_failed(f"cannot save the device settings: {exc.strerror or exc}") from None


def _scope_args(req: OnvifRequest, local: str) -> list[str]:
    items = list(dict.fromkeys(arg_texts(req.body, local)))  # in order, duplicates once
    for uri in items:
        if not valid_scope(uri):
            raise invalid_arg(f"{local} {uri[:80]!r} is not a scope URI")
    return items


# -- hostname -----------------------------------------------------------------------------------


def set_hostname(req: OnvifRequest) -> list[Element]:
    name = arg_text(req.body, "Name") or ""
    if not valid_hostname(name):
        raise invalid_arg(f"{name[:80]!r} is not an RFC 1123 host name", "ter:InvalidHostname")
    _change(req, lambda s: replace(s, hostname=name))
    return [TDS.SetHostnameResponse()]


# -- scopes -------------------------------------------------------------------------------------


def set_scopes(req: OnvifRequest) -> list[Element]:
    """Replaces every Configurable scope; the Fixed ones cannot be given."""
    items = _scope_args(req, "Scopes")
    fixed = set(fixed_scopes(req.model))
    overwrite = [uri for uri in items if uri in fixed]
    if overwrite:
        raise _prohibited("ScopeOverwrite", f"{overwrite[0][:80]!r} is a fixed scope")
    if len(items) > MAX_SCOPES:
        raise _too_many()
    _change(req, lambda s: replace(s, scopes=tuple(items)))
    return [TDS.SetScopesResponse()]


def add_scopes(req: OnvifRequest) -> list[Element]:
    """Adds Configurable scopes; one the device has already (fixed or not) is left as it is."""
    items = _scope_args(req, "ScopeItem")
    if not items:
        raise invalid_arg("no ScopeItem given")
    fixed = set(fixed_scopes(req.model))

    def add(s: DeviceSettings) -> DeviceSettings:
        new = [uri for uri in items if uri not in fixed and uri not in s.scopes]
        if len(s.scopes) + len(new) > MAX_SCOPES:
            raise _too_many()
        return replace(s, scopes=(*s.scopes, *new))

    _change(req, add)
    return [TDS.AddScopesResponse()]


def remove_scopes(req: OnvifRequest) -> list[Element]:
    """Removes Configurable scopes, all or none; answers the removed ones."""
    items = _scope_args(req, "ScopeItem")
    if not items:
        raise invalid_arg("no ScopeItem given")
    fixed = set(fixed_scopes(req.model))

    def remove(s: DeviceSettings) -> DeviceSettings:
        for uri in items:
            if uri in fixed:
                raise _prohibited("FixedScope", f"{uri[:80]!r} is a fixed scope")
            if uri not in s.scopes:
                raise invalid_arg(f"no scope {uri[:80]!r}", "ter:NoScope")
        return replace(s, scopes=tuple(uri for uri in s.scopes if uri not in items))

    _change(req, remove)
    return [TDS.RemoveScopesResponse(*[TDS.ScopeItem(uri) for uri in items])]


# -- discovery mode -----------------------------------------------------------------------------


def set_discovery_mode(req: OnvifRequest) -> list[Element]:
    text = arg_text(req.body, "DiscoveryMode") or ""
    try:
        mode = DiscoveryMode(text)
    except ValueError:
        reason = f"DiscoveryMode must be Discoverable or NonDiscoverable, not {text[:40]!r}"
        raise invalid_arg(reason) from None
    _change(req, lambda s: replace(s, discovery_mode=mode))
    return [TDS.SetDiscoveryModeResponse()]


# -- system -------------------------------------------------------------------------------------


def set_system_date_and_time(req: OnvifRequest) -> list[Element]:
    kind = arg_text(req.body, "DateTimeType") or ""
    if kind not in ("NTP", "Manual"):
        raise invalid_arg(f"DateTimeType must be NTP or Manual, not {kind[:40]!r}")
    tz = arg_text(req.body, "TimeZone", "TZ")
    if tz and not _UTC_TZ.fullmatch(tz):
        raise invalid_arg(
            f"time zone {tz[:60]!r} refused: this device keeps UTC (TZ UTC0)", "ter:InvalidTimeZone"
        )
    if kind == "Manual":
        raise SoapFault(
            SENDER,
            ["ter:OperationProhibited"],
            "the camera follows the host clock (NTP); its time cannot be set by hand",
        )
    return [TDS.SetSystemDateAndTimeResponse()]


def set_system_factory_default(req: OnvifRequest) -> list[Element]:
    kind = arg_text(req.body, "FactoryDefault") or ""
    if kind not in ("Hard", "Soft"):
        raise invalid_arg(f"FactoryDefault must be Hard or Soft, not {kind[:40]!r}")
    _change(req, lambda s: DeviceSettings(revision=s.revision))  # users are kept: see above
    media.change(req.model, lambda _: req.model.media.defaults)  # profiles, encoders, masks
    return [TDS.SetSystemFactoryDefaultResponse()]


def system_reboot(req: OnvifRequest) -> list[Element]:
    reboot = req.model.on_reboot
    if reboot is None:
        raise action_failed("this device cannot reboot")
    try:
        reboot()
    except Exception as exc:
        raise action_failed(f"reboot failed: {exc}") from None
    return [TDS.SystemRebootResponse(TDS.Message(REBOOT_MESSAGE))]
