"""Writes one stream of the encoded bus to a raw Annex-B .h264 file (a bus subscriber)."""

from __future__ import annotations

import threading
from pathlib import Path

from vcam.errors import OutputError
from vcam.media.bus import EncodedBus


class AnnexBRecorder:
    """Plays any H.264 player (`ffplay out.h264`); starts at a keyframe like every subscriber."""

    def __init__(self, bus: EncodedBus, stream: str, path: Path) -> None:
        self.stream = stream
        self.path = path
        try:
            self._fh = path.open("wb")
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror}") from None
        self._sub = bus.subscribe(stream)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="vcam-record", daemon=True)
        self.units = 0

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            unit = self._sub.get(timeout=0.2)
            if unit is not None:
                self._fh.write(unit.data)
                self.units += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._sub.close()
        self._fh.close()
