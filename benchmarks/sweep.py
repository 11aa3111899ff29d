"""FPS against window length and stride (``--sweep``): end-to-end, for the first row's model and video, with
stride 1, T/2 and T for each window length T; a table in ``results.md`` and ``fps_sweep.png``."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

from benchmarks.harness import run_baseline, run_ours
from benchmarks.kinds import Bench, RowKind
from benchmarks.reports import plot_sweep
from benchmarks.rows import Row


def run_sweep(
    model,
    path: Path,
    frames: list[np.ndarray],
    windows: list[int],
    strides: list[str],
    *,
    size: int | None,
    precision: str,
    repeats: int,
    baseline: bool,
    log,
) -> list[dict]:
    """One entry per distinct (window, stride): median end-to-end FPS (and the baseline's when asked)."""
    out, seen = [], set()
    for window in windows:
        for s in strides:
            stride = {"1": 1, "half": max(1, window // 2), "T": window}[s]
            if (window, stride) in seen:
                continue
            seen.add((window, stride))
            row = Row(f"sweep_t{window}_s{stride}", f"T={window} S={stride}", "", window, stride, None)
            run_ours(model, frames[: window + 2], row, size=size, precision=precision)
            times = [
                run_ours(model, path, row, size=size, precision=precision).seconds for _ in range(repeats)
            ]
            entry = {
                "window": window,
                "stride": stride,
                "stride_rule": s,
                "fps": round(len(frames) / statistics.median(times), 4),
            }
            if baseline:
                bt = [
                    run_baseline(model, path, row, size=size, precision=precision).seconds
                    for _ in range(repeats)
                ]
                entry["baseline_fps"] = round(len(frames) / statistics.median(bt), 4)
            log(f"  sweep T={window} S={stride}: {entry}")
            out.append(entry)
    return out


def run(bench: Bench, row: Row, model) -> None:
    """The sweep (report keys ``sweep``, ``sweep_info``, ``sweep_plot``) with the first row's model."""
    if row is not bench.rows[0]:
        return
    args, report = bench.args, bench.report
    video, precision = bench.videos[0], bench.precisions[0]
    windows = [int(w) for w in args.sweep_windows.split(",") if int(w) <= args.frames]
    report["sweep"] = run_sweep(
        model,
        bench.paths[video],
        bench.decoded[video],
        windows,
        args.sweep_strides.split(","),
        size=bench.size,
        precision=precision,
        repeats=max(1, min(args.repeats, 3)),
        baseline=args.sweep_baseline,
        log=bench.log,
    )
    report["sweep_info"] = {"row": row.key, "video": video, "precision": precision}
    plot = plot_sweep(
        report["sweep"],
        bench.out_dir / "fps_sweep.png",
        f"{row.label.split()[0]}, {args.frames} frames {args.height}x{args.width}, "
        f"{bench.device.type} {precision}",
    )
    report["sweep_plot"] = str(plot) if plot else "matplotlib not installed: no plot"
    bench.save()


KIND = RowKind(name="sweep", run=run, wanted=lambda args: args.sweep)
