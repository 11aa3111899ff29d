"""The main table: ifc_sdk against the reference-style baseline per row, video, precision and mode.

End-to-end (from the mp4: decode, preprocess, network, stitching, RLE output) and compute-only (frames already
decoded). Per measurement: a short warm-up, ``--warmup`` full-length warm-ups, then ``--repeats`` runs with
ours and the baseline interleaved (a change in machine load hits both); the medians, ranges, paired and
CPU-time speed-ups, peak memory, whether the outputs are equal, and a per-stage breakdown from one extra
instrumented run. Reduced-precision rows also get their mask IoU against fp32.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.compare import compare_outputs, mask_iou_between
from benchmarks.harness import STAGES, RunResult, run_baseline, run_ours, summary
from benchmarks.kinds import Bench, RowKind
from benchmarks.models import calibrate_random_heads
from benchmarks.rows import Row


def _log_run(log: Callable[[str], None], prefix: str, run: RunResult, num_frames: int) -> None:
    log(
        f"{prefix}: {run.seconds:.2f} s ({num_frames / run.seconds:.2f} FPS) "
        f"{run.memory} cpu/wall {run.cpu_seconds / run.seconds:.2f}"
    )


def _baseline_columns(
    ours: dict, ours_runs: list[RunResult], base_runs: list[RunResult], frames: int
) -> dict:
    """The baseline's columns of a table entry and the speed-ups (medians, paired, CPU time)."""
    base = summary([x.seconds for x in base_runs], frames)
    return dict(
        baseline_fps=round(base["fps"], 4),
        baseline_fps_min=round(base["fps_min"], 4),
        baseline_fps_max=round(base["fps_max"], 4),
        baseline_fps_spread_pct=round(base["spread_pct"], 1),
        baseline_seconds=[round(s, 3) for s in base["seconds"]],
        baseline_peak_rss_gb=max(x.memory.get("peak_rss_gb", 0) for x in base_runs),
        speedup=round(ours["fps"] / base["fps"], 3),
        speedup_range=[
            round(min(o.seconds for o in base_runs) / max(o.seconds for o in ours_runs), 3),
            round(max(o.seconds for o in base_runs) / min(o.seconds for o in ours_runs), 3),
        ],
        baseline_breakdown_s={
            k: round(statistics.median(x.stages.get(k, 0.0) for x in base_runs), 3) for k in STAGES
        },
        speedup_paired_median=round(
            statistics.median(b.seconds / o.seconds for o, b in zip(ours_runs, base_runs)), 3
        ),
        speedup_cpu_time=round(
            statistics.median(b.cpu_seconds for b in base_runs)
            / statistics.median(o.cpu_seconds for o in ours_runs),
            3,
        ),
        baseline_cpu_util=round(statistics.median(b.cpu_seconds / b.seconds for b in base_runs), 2),
        outputs=compare_outputs(ours_runs[-1].output, base_runs[-1].output),
    )


def measure_row(
    model,
    row: Row,
    video: str,
    path: Path,
    frames: list[np.ndarray],
    *,
    precision: str,
    modes: list[str],
    repeats: int,
    warmup: int,
    size: int | None,
    baseline: bool,
    breakdown: bool,
    log: Callable[[str], None],
) -> list[dict]:
    """All measurements of one (row, video, precision): one entry per mode, with ifc_sdk's result of the
    last run under ``_result`` (for the caller's precision comparison; not part of the report)."""
    device = model.device
    num_frames = len(frames)
    sources = {"e2e": path, "compute": frames}
    # Short warm-up (kernel selection, allocator), then full-length warm-ups (torch.compile / CUDA caches).
    short = frames[: min(num_frames, min(row.window, 6) + 2)]
    run_ours(model, short, row, size=size, precision=precision)
    if baseline:
        run_baseline(model, short, row, size=size, precision=precision)
    for _ in range(warmup):
        run_ours(model, frames, row, size=size, precision=precision)
        if baseline:
            run_baseline(model, frames, row, size=size, precision=precision)
    results = []
    for mode in modes:
        ours_runs, base_runs = [], []
        for r in range(repeats):
            ours_runs.append(run_ours(model, sources[mode], row, size=size, precision=precision))
            prefix = f"  {row.label} {video} {mode} {precision}"
            _log_run(log, f"{prefix} ours run {r + 1}/{repeats}", ours_runs[-1], num_frames)
            if baseline:
                base_runs.append(run_baseline(model, sources[mode], row, size=size, precision=precision))
                _log_run(log, f"{prefix} base run {r + 1}/{repeats}", base_runs[-1], num_frames)
        ours = summary([x.seconds for x in ours_runs], num_frames)
        entry = {
            "name": f"{row.label} | {video} | {'end-to-end (mp4)' if mode == 'e2e' else 'compute-only'}",
            "row": row.key,
            "video": video,
            "mode": mode,
            "precision": precision,
            "device": str(device),
            "window": row.window,
            "stride": row.stride,
            "frames": num_frames,
            "fps": round(ours["fps"], 4),
            "fps_min": round(ours["fps_min"], 4),
            "fps_max": round(ours["fps_max"], 4),
            "fps_spread_pct": round(ours["spread_pct"], 1),
            "seconds": [round(s, 3) for s in ours["seconds"]],
            "peak_rss_gb": max(x.memory.get("peak_rss_gb", 0) for x in ours_runs),
            "cpu_util": round(statistics.median(o.cpu_seconds / o.seconds for o in ours_runs), 2),
            "paper_fps": row.paper_fps,
        }
        if device.type == "cuda":
            entry["peak_cuda_gb"] = max(x.memory.get("peak_cuda_gb", 0) for x in ours_runs)
        failed = next((b.output for b in base_runs if isinstance(b.output, Exception)), None)
        if baseline and failed is not None:  # e.g. over the reference's 50 tracks: no speed to compare
            entry.update(
                baseline_fps=None, speedup=None, outputs=compare_outputs(ours_runs[-1].output, failed)
            )
        elif baseline:
            entry.update(_baseline_columns(ours, ours_runs, base_runs, num_frames))
            if device.type == "cuda":
                entry["baseline_peak_cuda_gb"] = max(x.memory.get("peak_cuda_gb", 0) for x in base_runs)
        else:
            entry.update(baseline_fps=None, speedup=None)
        if breakdown:
            prof = run_ours(model, sources[mode], row, size=size, precision=precision, instrument=True)
            entry["breakdown_s"] = {k: round(prof.stages.get(k, 0.0), 3) for k in STAGES}
            entry["breakdown_total_s"] = round(prof.seconds, 3)
        entry["_result"] = ours_runs[-1].output
        results.append(entry)
    return results


def run(bench: Bench, row: Row, model) -> None:
    """Every video and precision of one row: rows of the report, and mask IoU of reduced precision vs fp32."""
    args, report = bench.args, bench.report
    info = report["models"][row.key]
    modes = args.modes.split(",")
    for video in bench.videos:
        if video != bench.videos[0] and not bench.weights.get(row.arch) and args.instances > 0:
            # Random heads give as many instances as asked only on the video they were calibrated on.
            calib = calibrate_random_heads(
                model, bench.decoded[video][: row.window], bench.size, args.instances
            )
            report["models"][f"{row.key}/{video}"] = {**info, **calib}
        fp32_result = None
        for precision in bench.precisions:
            entries = measure_row(
                model,
                row,
                video,
                bench.paths[video],
                bench.decoded[video],
                precision=precision,
                modes=modes,
                repeats=args.repeats,
                warmup=bench.warmup,
                size=bench.size,
                baseline=not args.no_baseline,
                breakdown=not args.no_breakdown,
                log=bench.log,
            )
            for e in entries:
                result = e.pop("_result")
                if precision == "fp32" and fp32_result is None:
                    fp32_result = result
                elif precision != "fp32" and fp32_result is not None and e["mode"] == modes[0]:
                    iou = mask_iou_between(fp32_result, result)
                    report["precision_iou"].append(
                        {"row": row.key, "video": video, "precision": precision, **iou}
                    )
                    e["mask_iou_vs_fp32"] = round(iou["mask_iou"], 4)
                report["rows"].append(e)
                bench.log(
                    f"{e['name']} {precision}: {e['fps']:.3f} FPS, baseline {e.get('baseline_fps')}, "
                    f"speed-up {e.get('speedup')}, outputs {e.get('outputs')}"
                )
            bench.save()


KIND = RowKind(
    name="table",
    run=run,
    wanted=lambda args: not (args.only_ablation or args.memory_only),
)
