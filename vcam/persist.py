"""Small files that outlive a run, written so that a crash or a full disk never leaves half of one.

`write_private_json` is the one way state reaches the data directory (users, device settings):
the data go to a temporary file created readable by its owner only (0600, never wider, not even
for a moment), are flushed to disk, and replace the old file atomically. Callers write *before*
they change their state in memory, so a failed write (OSError) changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any


def write_private_json(path: Path, data: Any) -> None:
    """Atomically replaces `path` with `data` as JSON, owner-only; raises OSError on failure."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a stale one may have other permissions: O_CREAT keeps an existing mode
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
