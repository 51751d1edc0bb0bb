"""A small error hierarchy; each protocol maps these to its wire codes in one place."""


class VcamError(Exception):
    """Base of every error vcam raises on purpose."""


class ConfigError(VcamError):
    """A configuration value is missing, unknown or invalid; the message names the key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config error: {key}: {message}")
        self.key = key


class SourceError(VcamError):
    """A source cannot be opened or read (missing file, not a video, no device)."""


class DetectorError(VcamError):
    """A detector failed to load or to run."""


class OutputError(VcamError):
    """An output cannot be written (unwritable path, encoder failure)."""
