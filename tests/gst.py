"""GStreamer's rtspsrc as a test client: decode N frames of a stream with gst-launch-1.0.

gst-launch exits 1 when an element posts an error at any time, also while the pipeline shuts
down after the end of stream it was asked for (fakesink's num-buffers). rtspsrc does post one
there now and then: "Could not send message. (Received end-of-file)" from gst_rtspsrc_pause,
the PAUSE of its state change racing the TEARDOWN that closes its own connection (seen on
every transport, with nothing in the server's log). Decoding is judged by what came before:
the end of stream reached, and no error before it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

EOS = 'Got EOS from element "pipeline0".'


@dataclass(frozen=True)
class GstRun:
    returncode: int
    output: str  # stdout and stderr in the order gst-launch wrote them

    @property
    def decoded(self) -> bool:
        """All the frames asked for were decoded, whatever happened at the shutdown."""
        if self.returncode == 0:
            return True
        eos = self.output.find(EOS)
        return eos >= 0 and self.output.find("ERROR:") > eos


def gst_decode(rtspsrc: list[str], frames: int, timeout: float = 40) -> GstRun:
    """rtspsrc (with these properties) ! depay ! parse ! avdec_h264 ! fakesink num-buffers."""
    cmd = ["gst-launch-1.0", "rtspsrc", *rtspsrc, "!", "rtph264depay", "!", "h264parse", "!",
           "avdec_h264", "!", "fakesink", f"num-buffers={frames}"]  # fmt: skip
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )
    return GstRun(proc.returncode, proc.stdout)
