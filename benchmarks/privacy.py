"""Privacy benchmark: face-leak rate on the synthetic scene, measured on decoded output.

Renders the synthetic scene (exact face boxes) to a clip, masks it with `vcam mask` (the same
pipeline and gate as the live camera, solid style so masked pixels are unambiguous), decodes
the output and reports, by face height band: the share of ground-truth faces with less than 90%
of their box masked (frame-level leak rate), the identities exposed at least once, the longest
exposed run, and over-masking (masked share of the frame outside every person and face).

    .venv/bin/python benchmarks/privacy.py [--size 1280x720] [--frames 300] [--mode face]
        [--detector-size 640x360] [--face-size auto|WxH] [--person-size WxH]
        [--face-model centerface] [--detect-every 1]

--detector-size sets both detectors' input (the `vcam mask` flag); --face-size/--person-size
one each ("auto": from the source's size). Unset: the config defaults. "others" is the cores
busy outside the masking process during its run (the machine may be shared): fps is only
comparable between runs with similar "others"; leak rates do not depend on it (offline, every
frame is detected whatever the speed).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from vcam.config import SyntheticConfig
from vcam.evaluation import BANDS, ClipReport, score_masked_clip, write_synthetic_clip
from vcam.sources.synthetic import SyntheticScene


def _busy_cores_s() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait


def detector_config(args: argparse.Namespace) -> str:
    """The [detectors.*] tables the options ask for, as TOML ("" for the defaults)."""
    lines = []
    for name, size, model in (
        ("face", args.face_size, args.face_model),
        ("person", args.person_size, ""),
    ):
        table = []
        if size:
            w, h = (0, 0) if size == "auto" else (int(v) for v in size.lower().split("x"))
            table += [f"input_width = {w}", f"input_height = {h}"]
        if model:
            table.append(f'model = "{model}"')
        if table:
            lines += [f"[detectors.{name}]", *table]
    return "\n".join(lines) + "\n" if lines else ""


def run(args: argparse.Namespace, workdir: Path) -> tuple[ClipReport, float, float]:
    """Masks the scene's clip; returns the report, the masking time and others' cores."""
    w, h = (int(v) for v in args.size.split("x"))
    scene = SyntheticScene(SyntheticConfig(width=w, height=h, fps=args.fps, seed=args.seed))
    clear = workdir / "clear.mp4"
    masked = workdir / "masked.mp4"
    write_synthetic_clip(clear, scene, args.frames)
    cmd = [
        sys.executable, "-m", "vcam", "mask", str(clear), str(masked), "--style", "solid",
        "--mode", args.mode, "--detect-every", str(args.detect_every), "--no-progress",
    ]  # fmt: skip
    if args.detector_size:
        cmd += ["--detector-size", args.detector_size]
    toml = detector_config(args)
    if toml:
        (workdir / "vcam.toml").write_text(toml)
        cmd += ["--config", str(workdir / "vcam.toml")]
    busy0, own0 = _busy_cores_s(), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    elapsed = time.perf_counter() - t0
    own1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime
    others = max(0.0, (_busy_cores_s() - busy0 - own) / elapsed)
    return score_masked_clip(masked, scene), elapsed, others


def resolved_sizes(args: argparse.Namespace) -> str:
    """The detector inputs the run used, as the pipeline resolves them for this source."""
    from vcam.config import config_from_dict
    from vcam.privacy.detectors.sizing import input_size

    data = tomllib.loads(detector_config(args))
    if args.detector_size:
        w, h = (int(v) for v in args.detector_size.split("x"))
        for name in ("face", "person"):
            data.setdefault("detectors", {}).setdefault(name, {}).update(
                {"input_width": w, "input_height": h}
            )
    cfg = config_from_dict(data)
    sw, sh = (int(v) for v in args.size.split("x"))
    parts = []
    for name in ("face", "person"):
        d = getattr(cfg.detectors, name)
        iw, ih = input_size(d, sw, sh)
        auto = " (auto)" if d.input_width == 0 else ""
        parts.append(f"{name} {d.model} {iw}x{ih}{auto}")
    return ", ".join(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", default="1280x720")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--mode", default="face+body", choices=["face", "body", "face+body"])
    p.add_argument("--detector-size", default="", help="WxH of both, default: the config's")
    p.add_argument("--face-size", default="", help="WxH or auto, default: the config's")
    p.add_argument("--person-size", default="", help="WxH or auto, default: the config's")
    p.add_argument("--face-model", default="", help="e.g. centerface-int8; default: config's")
    p.add_argument("--detect-every", type=int, default=1)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report, elapsed, others = run(args, Path(tmp))
    print(
        f"privacy benchmark: {args.size}, {report.frames} frames, mode {args.mode}, "
        f"detect every {args.detect_every}; detectors: {resolved_sizes(args)}"
    )
    print(f"{'face height':>12} {'faces':>7} {'leaked':>7} {'leak rate':>10}")
    for band, _lo, _hi in BANDS:
        total = report.total_by_band.get(band, 0)
        leaked = report.leaked_by_band.get(band, 0)
        print(f"{band:>12} {total:>7} {leaked:>7} {report.leak_rate(band):>10.3f}")
    all_faces = sum(report.total_by_band.values())
    all_leaked = sum(report.leaked_by_band.values())
    print(f"{'all':>12} {all_faces:>7} {all_leaked:>7} {all_leaked / max(all_faces, 1):>10.3f}")
    big = [f for f in report.faces if f.truth.box.height >= 24]
    print(f"leaked frames with faces >= 24 px: {sum(f.leaked for f in big)} of {len(big)}")
    print(
        f"identity leak: {len(report.exposed_identities)} of {len(report.identities)} walkers "
        f"exposed in >= 1 frame; longest exposed run {report.longest_exposed_run} frames"
    )
    print(f"over-masking: {report.over_masked:.3%} of the frame outside every person/face box")
    print(
        f"masking time: {elapsed:.1f} s ({report.frames / elapsed:.1f} fps incl. start-up); "
        f"others {others:.2f} cores busy outside it"
    )


if __name__ == "__main__":
    main()
