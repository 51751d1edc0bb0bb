"""The data directory (state that outlives a run) and the generated administrator password.

No fixed default password: when none is configured, the first start generates a random one,
keeps it in the data directory (readable by its owner only) and prints it, so that `vcam serve`
works out of the box and every later start uses the same credentials.
"""

from __future__ import annotations

import os
import secrets
import uuid
from pathlib import Path

from vcam.auth.users import User, UserError, UserLevel, UserStore
from vcam.config import Config
from vcam.errors import ConfigError

PASSWORD_FILE = "admin-password"


def data_dir(cfg: Config) -> Path:
    if cfg.data_dir:
        return Path(cfg.data_dir).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "vcam"


def admin_password(cfg: Config) -> tuple[str, Path | None]:
    """The configured password, or the generated one and the file that keeps it."""
    if cfg.auth.password:
        return cfg.auth.password, None
    path = data_dir(cfg) / PASSWORD_FILE
    try:
        if path.exists():
            password = path.read_text().strip()
            if len(password) >= 8:
                return password, path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        password = secrets.token_urlsafe(12)
        # Created 0600 from the start: never readable by others, not even for a moment.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")
    except OSError as exc:
        raise ConfigError(
            "data_dir", f"cannot keep the generated password in {path}: {exc}"
        ) from None
    return password, path


DEVICE_ID_FILE = "device-id"


def device_id(cfg: Config) -> uuid.UUID:
    """This camera's identity (WS-Discovery endpoint, serial, MAC), made once and kept."""
    path = data_dir(cfg) / DEVICE_ID_FILE
    try:
        if path.exists():
            return uuid.UUID(path.read_text().strip())
    except ValueError:
        pass  # a damaged file: make a new identity rather than refuse to start
    ident = uuid.uuid4()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(f"{ident}\n")
    except OSError as exc:
        raise ConfigError("data_dir", f"cannot keep the device id in {path}: {exc}") from None
    return ident


def mac_address(ident: uuid.UUID) -> str:
    """A stable, locally administered unicast MAC derived from the device id."""
    raw = bytes([0x02]) + ident.bytes[:5]
    return ":".join(f"{b:02x}" for b in raw)


USERS_FILE = "users.json"


def user_store(cfg: Config) -> tuple[UserStore, str | None, Path | None]:
    """The users (kept in the data directory), with the administrator of the configuration.

    Returns the store, the administrator's password when it may be shown (configured, or the
    generated one still in use), and the file that keeps it.
    """
    path = data_dir(cfg) / USERS_FILE
    try:
        store = UserStore.load(path) if path.exists() else UserStore(path=path)
        name = cfg.auth.username
        if cfg.auth.password:  # configured (or VCAM_PASSWORD): it wins over what was kept
            admin = User(name, cfg.auth.password, UserLevel.ADMINISTRATOR)
            (store.set if store.get(name) else store.add)(admin)
            return store, cfg.auth.password, None
        generated, password_file = admin_password(cfg)
        current = store.get(name)
        if current is None:
            store.add(User(name, generated, UserLevel.ADMINISTRATOR))
            return store, generated, password_file
    except (UserError, OSError) as exc:
        raise ConfigError("data_dir", str(exc)) from None
    # A client may have changed it since (ONVIF SetUser): show it only if it is still ours.
    shown = current.password if current.password == generated else None
    return store, shown, password_file if shown else path
