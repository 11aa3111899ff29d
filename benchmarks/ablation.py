"""The speed work step by step (``--ablation``): each earlier step of ifc_sdk emulated in the same process
(`hooks.VARIANTS`, cumulative), end-to-end from the first video's mp4, against the reference-style baseline,
all variants interleaved within each repeat."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

from benchmarks.harness import RunResult, run_baseline, run_ours
from benchmarks.hooks import VARIANTS
from benchmarks.kinds import Bench, RowKind
from benchmarks.rows import Row


def run_ablation(
    model, row: Row, path: Path, frames: list[np.ndarray], *, size, precision, repeats, log
) -> list[dict]:
    """One entry per variant and one for the baseline: median FPS [min-max], speed-up against the baseline,
    peak RSS."""
    variants = list(VARIANTS)
    short = frames[: min(len(frames), min(row.window, 6) + 2)]
    for v in variants:
        run_ours(model, short, row, size=size, precision=precision, variant=v)
    run_baseline(model, short, row, size=size, precision=precision)
    times: dict[str, list[RunResult]] = {v: [] for v in [*variants, "reference_style"]}
    for r in range(repeats):
        for v in variants:
            times[v].append(run_ours(model, path, row, size=size, precision=precision, variant=v))
            log(f"  ablation {row.label} {v} run {r + 1}: {times[v][-1].seconds:.2f} s {times[v][-1].memory}")
        times["reference_style"].append(run_baseline(model, path, row, size=size, precision=precision))
        log(
            f"  ablation {row.label} reference_style run {r + 1}: {times['reference_style'][-1].seconds:.2f} s"
        )
    out = []
    base = statistics.median(x.seconds for x in times["reference_style"])
    for v, runs in times.items():
        med = statistics.median(x.seconds for x in runs)
        out.append(
            {
                "row": row.key,
                "variant": v,
                "description": VARIANTS.get(v, "reference-style baseline"),
                "fps": round(len(frames) / med, 4),
                "fps_min": round(len(frames) / max(x.seconds for x in runs), 4),
                "fps_max": round(len(frames) / min(x.seconds for x in runs), 4),
                "seconds": [round(x.seconds, 3) for x in runs],
                "speedup_vs_baseline": round(base / med, 3),
                "peak_rss_gb": max(x.memory.get("peak_rss_gb", 0) for x in runs),
            }
        )
    return out


def run(bench: Bench, row: Row, model) -> None:
    """The ablation of one row on the first video, in the first precision (report key ``ablation``)."""
    video = bench.videos[0]
    bench.report.setdefault("ablation", []).extend(
        run_ablation(
            model,
            row,
            bench.paths[video],
            bench.decoded[video],
            size=bench.size,
            precision=bench.precisions[0],
            repeats=bench.args.repeats,
            log=bench.log,
        )
    )
    bench.save()


KIND = RowKind(
    name="ablation",
    run=run,
    wanted=lambda args: args.ablation or args.only_ablation,
)
