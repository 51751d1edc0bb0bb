"""tests/gst.py judges a GStreamer run by what happened before the end of stream."""

from __future__ import annotations

from .gst import EOS, GstRun, gst_decode
from .vcam_process import free_port

SHUTDOWN_ERROR = "ERROR: from element /GstPipeline:pipeline0/GstRTSPSrc:rtspsrc0: Could not write"


def test_an_error_after_the_end_of_stream_still_decoded() -> None:
    assert GstRun(0, "").decoded
    assert GstRun(1, f"Setting pipeline to PLAYING ...\n{EOS}\n{SHUTDOWN_ERROR}\n").decoded
    assert not GstRun(1, f"{SHUTDOWN_ERROR}\n{EOS}\n").decoded  # failed before the end
    assert not GstRun(1, "Setting pipeline to PLAYING ...\n").decoded  # never got there


def test_no_server_is_no_decoding() -> None:
    run = gst_decode([f"location=rtsp://127.0.0.1:{free_port()}/main"], frames=5, timeout=30)
    assert run.returncode != 0 and not run.decoded, run.output
