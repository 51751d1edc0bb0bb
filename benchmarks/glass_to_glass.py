"""Glass-to-glass latency of the web page's live view (WebRTC in headless Chromium), with RTSP
(PyAV) on the same server for comparison.

Runs a real `vcam serve` (benchmarks/rtsp.py's cheap config: synthetic 1280x720@30 with
`source.synthetic.stamp`, face detector only at 160x96, the default look-ahead of 3 frames,
main + sub x264 ultrafast baseline, all on 127.0.0.1), logs in on the web page in Debian's
chromium (headless, driven by Playwright; tests/browser.py) and, for N frames, reads the stamp
of the frame the <video> element presents: in a requestVideoFrameCallback the stamp row is drawn
from the video into a canvas and its pixels go back to Python, where vcam.sources.stamp reads
(frame index, server time in ms). Frames whose stamp row is covered by a mask are left out.

Clocks. The stamp is the server's time.monotonic() in ms (CLOCK_MONOTONIC, truncated to the ms,
taken just after the frame is rendered, before the privacy gate). The page's times
(requestVideoFrameCallback's expectedDisplayTime, receiveTime and callback time) are
performance.now() ms on the page's own time origin. Rather than trusting the page's wall-clock
mapping (performance.timeOrigin or Date.now() against time.time(): two more clocks, each with its
own rounding and possible NTP steps), the offset between performance.now() and this host's
CLOCK_MONOTONIC is measured directly, NTP-style: Python reads time.monotonic() just before and
after a page.evaluate("performance.now()") round trip; of 60 such round trips the one with the
smallest round-trip time gives offset = page_ms - midpoint, uncertain by +- half that round trip
(printed; typically < 1 ms on loopback). The server's CLOCK_MONOTONIC is the same clock (one
host). The offset is measured before and after the run; the drift between the two is printed.

Reported per frame, as server stamp -> moment (ms): "displayed" = expectedDisplayTime (when the
compositor expects the frame on screen: the "glass" of a headless browser, which has no physical
display, so the real screen's scan-out, up to one refresh, is not included; this is the
glass-to-glass figure); "callback" = the callback's `now` (the rendering frame's time);
"read" = performance.now() once the stamp row has been drawn into the canvas (an upper bound
that depends on no Chromium-internal clock); "received" = receiveTime (the frame's last RTP
packet arrived), which Chromium converts from WebRTC's own clock: it came out up to ~24 ms
before the stamp on one run (impossible), so it is indicative only. The capture side is the
source's render time: a real sensor's exposure and readout would come on top.
RTSP with PyAV (`av.open(url, rtsp_transport=tcp)`, FFmpeg's demuxer and decoder, one run with
default options and one with fflags=nobuffer, flags=low_delay): stamp -> frame decoded in Python.

    .venv/bin/python benchmarks/glass_to_glass.py [--frames 300] [--size 1280x720]
        [--lookahead 3] [--skip-rtsp] [--playout-hint SECONDS]

Figures are comparable, not pass/fail; "others" = cores busy outside the server, the browser and
this script just before the run (a shared machine disturbs them). --playout-hint sets
Chromium's non-standard RTCRtpReceiver.playoutDelayHint on the page's receiver (0: render as
soon as decoded), to tell the jitter buffer's share from the rest; the page itself sets 0.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import av
import numpy as np

# benchmarks/ is sys.path[0] when this file runs as a script; tests/ has the browser helpers
from rtsp import (
    FPS,
    PASSWORD,
    REPO,
    USER,
    Server,
    config_text,
    describe_config,
    free_port,
    wait_quiet,
)

sys.path.insert(0, str(REPO))

from tests.browser import launch, log_in_and_play, luma_of_rgb, stamp_of
from tests.test_rtsp_server import luma
from vcam.sources.stamp import BITS, BLOCK, TIME_WRAP

WRAP = TIME_WRAP  # the stamp's ms wrap
WARMUP = 30  # frames left out at the start of each client (start-up, first keyframe)

# Collect `n` presented frames: per frame the stamp row (RGB, base64) and the frame's times.
_COLLECT = """async ([n, w, h]) => {
  const v = document.getElementById('video');
  const c = document.createElement('canvas');
  c.width = w; c.height = h;
  const ctx = c.getContext('2d', { willReadFrequently: true });
  const out = [];
  return await new Promise((resolve) => {
    const step = (now, meta) => {
      ctx.drawImage(v, 0, 0, w, h, 0, 0, w, h);
      const px = ctx.getImageData(0, 0, w, h).data;
      const rgb = new Uint8Array(w * h * 3);
      for (let i = 0, j = 0; i < px.length; i += 4, j += 3) {
        rgb[j] = px[i]; rgb[j + 1] = px[i + 1]; rgb[j + 2] = px[i + 2];
      }
      let s = '';
      for (let i = 0; i < rgb.length; i += 8192) {
        s += String.fromCharCode.apply(null, rgb.subarray(i, i + 8192));
      }
      out.push({ rgb: btoa(s), now, done: performance.now(),
        displayed: meta.expectedDisplayTime, received: meta.receiveTime ?? null,
        presented: meta.presentedFrames, width: meta.width });
      if (out.length >= n) resolve(out); else v.requestVideoFrameCallback(step);
    };
    v.requestVideoFrameCallback(step);
  });
}"""


def page_offset_ms(page: Any, rounds: int = 60) -> tuple[float, float]:
    """(performance.now() - host CLOCK_MONOTONIC in ms, uncertainty +- ms): min-RTT sample."""
    best: tuple[float, float] | None = None
    for _ in range(rounds):
        t0 = time.monotonic()
        page_ms = float(page.evaluate("performance.now()"))
        t1 = time.monotonic()
        rtt = (t1 - t0) * 1000
        if best is None or rtt < best[1]:
            best = (page_ms - (t0 + t1) * 500, rtt)
    assert best is not None
    return best[0], best[1] / 2


def unwrap(stamp_ms: int, now_ms: float) -> float:
    """The stamp's full monotonic ms (it wraps at TIME_WRAP), the one at or just before now."""
    return now_ms - (int(now_ms) - stamp_ms) % WRAP


def summary(values: list[float]) -> str:
    if not values:
        return "no frames"
    q = statistics.quantiles(values, n=10) if len(values) >= 2 else values * 9
    return (
        f"median {statistics.median(values):6.1f}  p90 {q[8]:6.1f}  "
        f"min {min(values):6.1f}  max {max(values):6.1f}  (n={len(values)})"
    )


def browser_run(base: str, frames: int, playout_hint: float | None) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    w, h = BITS * BLOCK, BLOCK
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            log_in_and_play(page, base, USER, PASSWORD)
            if playout_hint is not None:  # app.js's top-level `state` holds its peer connection
                page.evaluate(
                    "(s) => state.pc.getReceivers().forEach((r) => { r.playoutDelayHint = s; })",
                    playout_hint,
                )
            page.evaluate(_COLLECT, [WARMUP, w, h])  # past the start
            off0, err0 = page_offset_ms(page)
            got = page.evaluate(_COLLECT, [frames, w, h])
            off1, err1 = page_offset_ms(page)
            # What the wall-clock route would have assumed (timeOrigin against time.time()).
            wall_offset = (time.time() - time.monotonic()) * 1000 - page.evaluate(
                "performance.timeOrigin"
            )
        finally:
            browser.close()
    offset = (off0 + off1) / 2
    now_ms = time.monotonic() * 1000
    received: list[float] = []
    displayed: list[float] = []
    callback: list[float] = []
    read: list[float] = []
    hidden = 0
    indexes: list[int] = []
    for f in got:
        rgb = np.frombuffer(base64.b64decode(f["rgb"]), np.uint8).reshape(h, w, 3)
        stamped = stamp_of(luma_of_rgb(rgb))
        if stamped is None:
            hidden += 1
            continue
        index, ms = stamped
        indexes.append(index)
        t = unwrap(ms, now_ms)
        displayed.append(f["displayed"] - offset - t)
        callback.append(f["now"] - offset - t)
        read.append(f["done"] - offset - t)
        if f["received"] is not None:
            received.append(f["received"] - offset - t)
    presented = got[-1]["presented"] - got[0]["presented"] + 1
    return {
        "received": received,
        "displayed": displayed,
        "callback": callback,
        "read": read,
        "hidden": hidden,
        "skipped": presented - len(got),
        "distinct": len(set(indexes)),
        "offset_err": max(err0, err1),
        "drift": off1 - off0,
        "wall_minus_measured": wall_offset - off1,
        "span_s": (got[-1]["now"] - got[0]["now"]) / 1000,
    }


def rtsp_run(url: str, frames: int, options: dict[str, str]) -> dict[str, Any]:
    decoded: list[float] = []
    hidden = 0
    with av.open(url, options={"rtsp_transport": "tcp", **options}, timeout=20) as c:
        for n, frame in enumerate(c.decode(video=0)):
            now_ms = time.monotonic() * 1000
            if n < WARMUP:
                continue
            stamped = stamp_of(luma(frame))
            if stamped is None:
                hidden += 1
            else:
                decoded.append(now_ms - unwrap(stamped[1], now_ms))
            if n + 1 >= WARMUP + frames:
                break
    return {"decoded": decoded, "hidden": hidden}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--lookahead", type=int, default=3)
    ap.add_argument("--skip-rtsp", action="store_true")
    ap.add_argument(
        "--playout-hint",
        type=float,
        default=None,
        help="set Chromium's RTCRtpReceiver.playoutDelayHint (s) on the page's receiver",
    )
    ap.add_argument("--quiet", type=float, default=60.0, help="wait this long for a calm machine")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    assert len(size) == 2 and size[0] >= BITS * BLOCK, f"--size: at least {BITS * BLOCK} wide"
    wh = (size[0], size[1])
    http, rtsp_port = free_port(), free_port()
    text = config_text(rtsp_port, wh, stamp=True, lookahead=args.lookahead, cheap=True)
    text = text.replace(
        '[web]\nbind = "127.0.0.1"\nport = 0', f'[web]\nbind = "127.0.0.1"\nport = {http}'
    )
    base = f"http://127.0.0.1:{http}"
    print(f"vcam glass-to-glass: {describe_config(wh, args.lookahead, True)}; stamp on")
    print(f"{os.cpu_count()} CPUs; look-ahead alone holds {args.lookahead / FPS * 1000:.0f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), text, rtsp_port)
        try:
            server.wait_ready()
            with urllib.request.urlopen(base + "/healthz", timeout=30) as r:
                assert r.status == 200
            time.sleep(3.0)  # past the start-up (model load, first frames)
            others = wait_quiet(args.quiet)
            before = server.status()
            web = browser_run(base, args.frames, args.playout_hint)
            after = server.status()
            rtsp: list[tuple[str, dict[str, Any]]] = []
            if not args.skip_rtsp:
                url = f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{rtsp_port}/main"
                rtsp.append(("PyAV RTSP default", rtsp_run(url, args.frames, {})))
                low = {"fflags": "nobuffer", "flags": "low_delay"}
                rtsp.append(("PyAV RTSP nobuffer+low_delay", rtsp_run(url, args.frames, low)))
        finally:
            server.stop()

    print(f"others before the run: {others:.2f} cores")
    if before is not None and after is not None:
        n = max(1, after.frames - before.frames)
        print(
            f"server during the browser run: {after.frames - before.frames} frames, "
            f"fail-closed {after.closed - before.closed} ({(after.closed - before.closed) / n:.0%})"
            f", detector {after.detector_ms:.1f} ms"
        )
    print(
        f"clock offset page->host: +-{web['offset_err']:.2f} ms, drift over the run "
        f"{web['drift']:+.2f} ms (the timeOrigin/time.time() route would be off by "
        f"{web['wall_minus_measured']:+.2f} ms); browser frames: {web['distinct']} distinct "
        f"stamps in {web['span_s']:.1f} s, {web['skipped']} presented without a callback, "
        f"{web['hidden']} with the stamp masked"
    )
    print("latency from the source stamp (ms):")
    rows = [
        ("WebRTC received (Chromium's mapping)", web["received"]),
        ("WebRTC displayed (glass-to-glass)", web["displayed"]),
        ("WebRTC rVFC callback (frame time)", web["callback"]),
        ("WebRTC stamp read in the page", web["read"]),
    ] + [(f"{name} decoded", r["decoded"]) for name, r in rtsp]
    for name, values in rows:
        print(f"  {name:<38} {summary(values)}")


if __name__ == "__main__":
    main()
