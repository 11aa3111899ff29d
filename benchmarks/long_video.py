#!/usr/bin/env python
"""Long videos: ifc_sdk's FPS and peak memory stay constant as the video grows (36 ... 36,000 frames).

ifc_sdk streams: frames are decoded in a background thread, the backbone and the per-frame states are kept
only while a later window needs them, and each frame's masks are released (as COCO RLE) as soon as no later
window can change them. Here the stream is consumed and dropped frame by frame, as a caller writing results
to disk would; the only state that grows is the list of tracks (a 41-float vector each).

For comparison the reference-style baseline (benchmarks/reference_style.py) is run where it fits in memory:
its two dense ``(L, 50, L, h8, w8)`` float32 buffers grow with the square of the video length L; for longer
videos the size they would need is reported instead of run.

Per length it records: end-to-end FPS (median of the repeats), FPS of each tenth of the video (constant FPS),
peak RSS, and RSS sampled along the video (constant memory). Writes ``long_video.json`` and ``long_video.md``.

Example::

    python benchmarks/long_video.py --lengths 36,360,3600,36000 --height 64 --width 112
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run by path: import `benchmarks` as a package from the repository root
    import _script  # noqa: F401

import argparse
import json
import os
import statistics
import time

import ifc_sdk
from benchmarks.environment import environment, select_device
from benchmarks.harness import peak_memory, reset_peak_memory, run_baseline, run_ours
from benchmarks.models import build_model
from benchmarks.reference_style import MAX_TRACKS, reference_resized_shape
from benchmarks.rows import Row
from benchmarks.videos import decode_all, prepare_video

BENCH_DIR = Path(__file__).resolve().parent


def rss_gb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def baseline_buffer_gb(length: int, height: int, width: int, size: int | None) -> float:
    """Size of the reference's two dense float32 buffers for a video of ``length`` frames."""
    h, w = (height, width) if size is None else reference_resized_shape(height, width, size)
    h8, w8 = -(-h // 8), -(-w // 8)
    return 2 * length * MAX_TRACKS * length * h8 * w8 * 4 / 2**30


def run_stream(model, path: Path, total: int, row: Row, size: int | None, samples: int = 10) -> dict:
    """segment_video(stream=True), consumed and dropped frame by frame; times and RSS per tenth."""
    reset_peak_memory(model.device)
    start = time.perf_counter()
    marks, rss = [], []
    stream = ifc_sdk.segment_video(
        path, model, window=row.window, stride=row.stride, size=size, progress=False, stream=True
    )
    every = max(1, total // samples)
    n = 0
    for _frame in stream:
        n += 1
        if n % every == 0 or n == total:
            marks.append((n, time.perf_counter() - start))
            rss.append(round(rss_gb(), 3))
    seconds = time.perf_counter() - start
    seg_fps = []
    prev_n, prev_t = 0, 0.0
    for m, t in marks:
        if t > prev_t:
            seg_fps.append(round((m - prev_n) / (t - prev_t), 3))
        prev_n, prev_t = m, t
    return {
        "frames": n,
        "seconds": seconds,
        "fps": n / seconds,
        "segment_fps": seg_fps,
        "rss_samples_gb": rss,
        "tracks": len(stream.tracks),
        **peak_memory(model.device),
    }


def main(argv: list[str] | None = None, prog: str = "long_video.py") -> int:
    """Run the benchmark; ``prog`` is the command name its help and errors show."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", default="36,360,3600,36000")
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--width", type=int, default=112)
    p.add_argument("--size", type=int, default=0, help="test-time short side (0: keep the frames)")
    p.add_argument("--arch", default="r50", choices=("r50", "r101"))
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--instances", type=int, default=20, help="random heads calibrated to ~this many per clip")
    p.add_argument(
        "--baseline-max-gb",
        type=float,
        default=8.0,
        help="run the reference-style baseline only where its dense buffers need less than this",
    )
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--cache", type=Path, default=BENCH_DIR / ".cache")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    device = select_device(args)
    size = args.size or None
    out_dir = args.out or BENCH_DIR / "results" / f"{device.type}_long"
    out_dir.mkdir(parents=True, exist_ok=True)
    lengths = [int(x) for x in args.lengths.split(",")]
    row = Row(
        f"{args.arch}_t{args.window}",
        f"{args.arch.upper()} T={args.window}",
        args.arch,
        args.window,
        args.stride,
        None,
    )
    # One synthetic video of the longest length; shorter lengths are its prefixes (same content).
    longest = prepare_video("synthetic", max(lengths), args.height, args.width, args.cache)
    paths = {}
    for n in lengths:
        paths[n] = (
            longest
            if n == max(lengths)
            else prepare_video("synthetic", n, args.height, args.width, args.cache)
        )
    calib = decode_all(paths[min(lengths)])[: args.window]
    model, info = build_model(args.arch, device, calib_frames=calib, size=size, instances=args.instances)
    report = {
        "env": environment(device),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "config": vars(args) | {"cache": str(args.cache), "out": str(out_dir)},
        "model": info,
        "runs": [],
    }
    # warm-up
    run_ours(model, calib, row, size=size, precision="fp32")
    for n in lengths:
        runs = [run_stream(model, paths[n], n, row, size) for _ in range(args.repeats)]
        best = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
        entry = {
            "frames": n,
            "fps": round(statistics.median(r["fps"] for r in runs), 3),
            "fps_runs": [round(r["fps"], 3) for r in runs],
            "segment_fps": best["segment_fps"],
            "peak_rss_gb": max(r.get("peak_rss_gb", 0) for r in runs),
            "rss_samples_gb": best["rss_samples_gb"],
            "tracks": best["tracks"],
            "baseline_buffers_gb": round(baseline_buffer_gb(n, args.height, args.width, size), 3),
        }
        if entry["baseline_buffers_gb"] <= args.baseline_max_gb:
            frames = decode_all(paths[n])
            base = run_baseline(model, frames, row, size=size, precision="fp32")
            entry["baseline_fps_compute_only"] = round(n / base.seconds, 3)
            entry["baseline_peak_rss_gb"] = base.memory.get("peak_rss_gb")
            entry["baseline_note"] = (
                "ok" if not isinstance(base.output, Exception) else f"failed: {base.output}"
            )
            del frames, base
        else:
            entry["baseline_note"] = (
                f"not run: its dense buffers alone would need {entry['baseline_buffers_gb']:.0f} GB"
            )
        report["runs"].append(entry)
        print(json.dumps(entry), flush=True)
        _write(report, out_dir)
    report["env"]["loadavg_end"] = list(os.getloadavg())
    _write(report, out_dir)
    return 0


def _write(report: dict, out_dir: Path) -> None:
    (out_dir / "long_video.json").write_text(json.dumps(report, indent=1, default=str))
    (out_dir / "long_video.md").write_text(markdown(report))


def markdown(report: dict) -> str:
    """``long_video.md``: one table row per video length."""
    cfg = report["config"]
    lines = [
        f"# Long videos ({report['env']['device_name']})",
        "",
        f"{cfg['arch'].upper()} T={cfg['window']} S={cfg['stride']}, synthetic {cfg['height']}x{cfg['width']} "
        f"mp4, fp32, random weights calibrated to ~{cfg['instances']} instances per clip; stream consumed "
        f"frame by frame (segment_video(stream=True)); torch {report['env']['torch']}; "
        f"load average {report['env']['loadavg_start']} -> {report['env'].get('loadavg_end', '-')}",
        "",
        "| frames | FPS (median) | FPS per tenth of the video | peak RSS (GB) | RSS along the video (GB) "
        "| tracks | reference-style | reference-style dense buffers (GB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in report["runs"]:
        seg = ", ".join(f"{x:.1f}" for x in e["segment_fps"])
        rss = ", ".join(f"{x:.2f}" for x in e["rss_samples_gb"])
        base = (
            f"{e['baseline_fps_compute_only']:.2f} FPS compute-only, peak RSS {e['baseline_peak_rss_gb']:.2f} GB"
            if "baseline_fps_compute_only" in e
            else e["baseline_note"]
        )
        lines.append(
            f"| {e['frames']} | {e['fps']:.2f} | {seg} | {e['peak_rss_gb']:.2f} | {rss} | {e['tracks']} "
            f"| {base} | {e['baseline_buffers_gb']:.2f} |"
        )
    lines += ["", f"Command: `{report['command']}`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
