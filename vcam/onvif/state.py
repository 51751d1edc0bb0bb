"""The Device service settings that clients change (hostname, scopes, discovery mode), kept.

`DeviceState` holds what ONVIF clients set with SetHostname, SetScopes/AddScopes/RemoveScopes and
SetDiscoveryMode; everything else the device reports comes from the configuration (`DeviceModel`).
With a `path` (`<data_dir>/device.json`) every change is written there first (atomically, readable
by the owner only) and only then takes effect, so a failed write changes nothing and what a
client set survives a restart. A damaged file stops vcam at start with an error naming it.

Readers get an immutable `DeviceSettings` snapshot. Subscribers (WS-Discovery, to re-announce or
go quiet) are called after each change, outside the lock, with the new snapshot.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from vcam.errors import VcamError
from vcam.persist import SettingsStore, read_json

FILE_VERSION = 1
MAX_SCOPES = 32  # configurable ones; the fixed ones come on top (ProbeMatch stays one datagram)
MAX_SCOPE_LENGTH = 512
MAX_HOSTNAME = 253  # RFC 1123 2.1: 255 octets on the wire, 253 characters written
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


class DiscoveryMode(StrEnum):
    """tt:DiscoveryMode."""

    DISCOVERABLE = "Discoverable"
    NON_DISCOVERABLE = "NonDiscoverable"


class DeviceStateError(VcamError, ValueError):
    """The settings file cannot be read, or a setting is not valid; the message says why."""


def valid_hostname(name: str) -> bool:
    """A host name as RFC 952 and RFC 1123 section 2.1 allow: dot-separated labels of 1-63
    letters, digits and hyphens, neither starting nor ending with a hyphen (RFC 1123 allows a
    leading digit), at most 253 characters, and not a dotted-decimal address."""
    if not name or len(name) > MAX_HOSTNAME or not name.isascii():
        return False
    labels = name.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        return False
    return not all(label.isdigit() for label in labels)  # 192.168.1.20 is no host name


def valid_scope(uri: str) -> bool:
    """A scope URI that WS-Discovery can carry: absolute (scheme:...), no whitespace or control
    characters (scopes are a space-separated list on the wire), at most 512 characters."""
    if not uri or len(uri) > MAX_SCOPE_LENGTH or not _SCHEME.match(uri):
        return False
    return not any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in uri)


@dataclass(frozen=True)
class DeviceSettings:
    hostname: str | None = None  # None: the machine's (DeviceModel.hostname)
    scopes: tuple[str, ...] = ()  # the Configurable scopes, in the order they were set
    discovery_mode: DiscoveryMode = DiscoveryMode.DISCOVERABLE
    # Bumped by every change, never reset (not even by factory default): WS-Discovery
    # MetadataVersion must grow whenever scopes or discoverability change.
    revision: int = 0

    def check(self) -> None:
        """Raises DeviceStateError unless every setting is valid."""
        if self.hostname is not None and not valid_hostname(self.hostname):
            raise DeviceStateError(f"invalid hostname {self.hostname[:80]!r}")
        for uri in self.scopes:
            if not valid_scope(uri):
                raise DeviceStateError(f"invalid scope {uri[:80]!r}")
        if len(set(self.scopes)) != len(self.scopes):
            raise DeviceStateError("duplicate scopes")
        if len(self.scopes) > MAX_SCOPES:
            raise DeviceStateError(f"more than {MAX_SCOPES} scopes")
        if not isinstance(self.discovery_mode, DiscoveryMode):
            raise DeviceStateError(f"invalid discovery mode {self.discovery_mode!r}")
        if not isinstance(self.revision, int) or self.revision < 0:
            raise DeviceStateError(f"invalid revision {self.revision!r}")

    def to_json(self) -> dict[str, object]:
        return {
            "version": FILE_VERSION,
            "hostname": self.hostname,
            "scopes": list(self.scopes),
            "discovery_mode": str(self.discovery_mode),
            "revision": self.revision,
        }

    @classmethod
    def from_json(cls, data: object) -> DeviceSettings:
        if not isinstance(data, dict):
            raise DeviceStateError("not a JSON object")
        if data.get("version") != FILE_VERSION:
            raise DeviceStateError(f"unknown version {data.get('version')!r}")
        hostname = data.get("hostname")
        scopes = data.get("scopes", [])
        revision = data.get("revision", 0)
        if hostname is not None and not isinstance(hostname, str):
            raise DeviceStateError("hostname must be a string or null")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise DeviceStateError("scopes must be a list of strings")
        if isinstance(revision, bool) or not isinstance(revision, int):
            raise DeviceStateError("revision must be an integer")
        try:
            mode = DiscoveryMode(data.get("discovery_mode", DiscoveryMode.DISCOVERABLE))
        except ValueError:
            mode_text = data.get("discovery_mode")
            raise DeviceStateError(f"invalid discovery_mode {mode_text!r}") from None
        settings = cls(hostname, tuple(scopes), mode, revision)
        settings.check()
        return settings


class DeviceState(SettingsStore[DeviceSettings]):
    """Thread-safe holder of the `DeviceSettings`, written to `path` (if any) before each change."""

    def __init__(self, path: Path | None = None, settings: DeviceSettings | None = None) -> None:
        super().__init__(settings or DeviceSettings(), path)

    @classmethod
    def load(cls, path: Path) -> DeviceState:
        """The settings kept in `path` (defaults if it does not exist yet), saving back there.
        A file that cannot be read or holds invalid settings: DeviceStateError naming it."""
        try:
            data = read_json(path)
        except OSError as exc:
            raise DeviceStateError(f"cannot read device settings from {path}: {exc}") from None
        except ValueError as exc:
            raise DeviceStateError(f"damaged device settings file {path}: {exc}") from None
        if data is None:
            return cls(path)
        try:
            settings = DeviceSettings.from_json(data)
        except DeviceStateError as exc:
            raise DeviceStateError(f"damaged device settings file {path}: {exc}") from None
        return cls(path, settings)

    def set_hostname(self, name: str | None) -> DeviceSettings:
        return self.change(lambda s: dataclasses.replace(s, hostname=name))

    def set_scopes(self, scopes: Iterable[str]) -> DeviceSettings:
        unique = tuple(dict.fromkeys(scopes))
        return self.change(lambda s: dataclasses.replace(s, scopes=unique))

    def set_discovery_mode(self, mode: DiscoveryMode) -> DeviceSettings:
        return self.change(lambda s: dataclasses.replace(s, discovery_mode=DiscoveryMode(mode)))

    def reset(self) -> DeviceSettings:
        """Factory defaults: the machine's hostname, no configurable scopes, discoverable."""
        return self.change(lambda s: DeviceSettings(revision=s.revision))
