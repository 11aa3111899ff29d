"""A benchmark report as files: ``results.json`` (the raw report), ``results.md`` (tables) and the sweep plot.

The report is a dict: ``env`` (`environment.environment`), ``command``, ``config``, ``models``, ``rows`` (one
entry per row, video, precision and mode with ``name``, ``fps``, ``baseline_fps``, ``speedup``,
``precision``, ``device`` and the details), and the optional ``memory``, ``ablation``, ``precision_iou``,
``decode_fps`` and ``sweep`` sections. ``results.md`` is a function of ``results.json`` alone, so a committed
result can be re-rendered.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from benchmarks.harness import STAGES
from benchmarks.rows import row_label


def _fmt(v, nd=2) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def _mode(e: dict) -> str:
    return "end-to-end" if e["mode"] == "e2e" else "compute-only"


def _table(columns: list[str], rows: Iterable[str]) -> list[str]:
    """A markdown table: header, separator, then the rows (each already ``| ... |``)."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), *rows]


def _section(title: str, columns: list[str], rows: Iterable[str]) -> list[str]:
    return ["", title, "", *_table(columns, rows)]


def _equal(outputs: dict) -> str:
    if not outputs:
        return "-"
    if "note" in outputs:
        return outputs["note"]
    return ("yes" if outputs.get("equal") else "NO") + (
        f" ({outputs.get('tracks', '?')} tracks, {outputs.get('outputs', '?')} outputs, "
        f"{outputs.get('mask_pixels_differing', '?')} px differ)"
    )


def _main_row(e: dict) -> str:
    ours = f"{_fmt(e['fps'])} [{_fmt(e['fps_min'])}-{_fmt(e['fps_max'])}]"
    base = (
        "-"
        if e.get("baseline_fps") is None
        else f"{_fmt(e['baseline_fps'])} [{_fmt(e['baseline_fps_min'])}-{_fmt(e['baseline_fps_max'])}]"
    )
    speed = "-" if e.get("speedup") is None else f"{e['speedup']:.2f}x"
    paired = (
        "-"
        if e.get("speedup_paired_median") is None
        else f"{e['speedup_paired_median']:.2f}x [{e['speedup_range'][0]:.2f}-{e['speedup_range'][1]:.2f}]"
    )
    cpu = "-" if e.get("speedup_cpu_time") is None else f"{e['speedup_cpu_time']:.2f}x"
    mem = f"{_fmt(e['peak_rss_gb'])} / {_fmt(e.get('baseline_peak_rss_gb'))}"
    if e["device"].startswith("cuda"):
        mem += f" (CUDA {_fmt(e.get('peak_cuda_gb'))} / {_fmt(e.get('baseline_peak_cuda_gb'))})"
    return (
        f"| {row_label(e['row'])} | {e['video']} | {_mode(e)} | {e['precision']} | {ours} | {base} | {speed} "
        f"| {paired} | {cpu} | {_fmt(e['paper_fps'], 1)} | {mem} | {_equal(e.get('outputs', {}))} |"
    )


def _main_table(report: dict) -> list[str]:
    env, cfg = report["env"], report["config"]
    columns = [
        "row",
        "video",
        "mode",
        "precision",
        "ifc_sdk FPS",
        "reference-style FPS",
        "speed-up (medians)",
    ]
    columns += ["speed-up paired [range]", "speed-up CPU time", "paper FPS", "peak RSS ours / base (GB)"]
    return [
        f"# IFC FPS benchmark ({env['device_name']})",
        "",
        f"torch {env['torch']}, python {env['python']}"
        + (f", CUDA {env.get('cuda')}, driver {env.get('driver')}" if env.get("cuda") else "")
        + f"; {cfg['frames']} frames {cfg['height']}x{cfg['width']}, short side {cfg['size']}; median of "
        f"{cfg['repeats']} interleaved runs [min-max]; load average at start {env['loadavg_start']}, end "
        f"{env.get('loadavg_end', '-')}; {env['time']}",
        "",
        *_table([*columns, "outputs equal"], (_main_row(e) for e in report["rows"])),
    ]


def _breakdown(report: dict) -> list[str]:
    entries = [e for e in report["rows"] if "breakdown_s" in e]
    if not entries:
        return []
    rows = []
    for e in entries:
        head = f"| {row_label(e['row'])} | {e['video']} | {_mode(e)} | {e['precision']} "
        sides = [("ifc_sdk", e["breakdown_s"], e["breakdown_total_s"])]
        if e.get("baseline_breakdown_s"):
            b = e["baseline_breakdown_s"]
            sides.append(("reference-style", b, sum(b.values())))
        for side, stages, total in sides:
            rows.append(
                f"{head}| {side} | " + " | ".join(_fmt(stages[k]) for k in STAGES) + f" | {_fmt(total)} |"
            )
    return _section(
        "Breakdown, seconds per video (ifc_sdk: one extra instrumented run; reference-style: median of the "
        "timed runs). ifc_sdk decodes in a background thread: its `decode` is only the time compute waited "
        "for frames.",
        ["row", "video", "mode", "precision", "side", *STAGES, "total"],
        rows,
    )


def _listed(key: str, title: str | Callable[[dict], str], columns: list[str], row: Callable[[dict], str]):
    """A section with one table row per entry of ``report[key]`` (none when the report has no such entries)."""

    def section(report: dict) -> list[str]:
        if not report.get(key):
            return []
        return _section(title(report) if callable(title) else title, columns, map(row, report[key]))

    return section


def _ablation_row(e: dict) -> str:
    return (
        f"| {row_label(e['row'])} | {e['description']} | {_fmt(e['fps'], 3)} [{_fmt(e['fps_min'], 3)}-"
        f"{_fmt(e['fps_max'], 3)}] | {e['speedup_vs_baseline']:.2f}x | {_fmt(e['peak_rss_gb'])} |"
    )


def _memory_row(e: dict) -> str:
    side = "ifc_sdk" if e["side"] == "ours" else "reference-style"
    return (
        f"| {row_label(e['row'])} | {e['video']} | {side} | {_fmt(e.get('peak_rss_gb'))} | "
        f"{_fmt(e.get('rss_before_run_gb'))} | {_fmt(e['seconds'], 1)} |"
    )


def _precision_iou_row(e: dict) -> str:
    return (
        f"| {e['row']} | {e['video']} | {e['precision']} | {e['mask_iou']:.4f} | "
        f"{e['mask_iou_mean']:.4f} | {e['tracks']} / {e['other_tracks']} |"
    )


def _sweep_row(e: dict) -> str:
    return f"| {e['window']} | {e['stride']} | {_fmt(e['fps'])} | {_fmt(e.get('baseline_fps'))} |"


def _decode_fps(report: dict) -> list[str]:
    if not report.get("decode_fps"):
        return []
    return [
        "",
        "Decode only (threaded PyAV, RGB conversion): "
        + ", ".join(f"{k} {v:.0f} FPS" for k, v in report["decode_fps"].items()),
    ]


SECTIONS = (
    _main_table,
    _breakdown,
    _listed(
        "ablation",
        "Speed-up steps (end-to-end from the mp4, first video; median [min-max] of interleaved runs)",
        ["row", "variant", "FPS", "vs reference-style", "peak RSS (GB)"],
        _ablation_row,
    ),
    _listed(
        "memory",
        "Peak resident memory of one end-to-end run, each in a fresh process (model and interpreter included)",
        ["row", "video", "side", "peak RSS (GB)", "RSS before the run (GB)", "run time (s)"],
        _memory_row,
    ),
    _listed(
        "precision_iou",
        "Reduced precision against fp32 (video mask IoU, tracks paired by Hungarian matching)",
        ["row", "video", "precision", "mask IoU (area-weighted)", "mean IoU", "tracks fp32 / reduced"],
        _precision_iou_row,
    ),
    _decode_fps,
    _listed(
        "sweep",
        lambda r: (
            f"FPS against window length and stride (end-to-end; {r.get('sweep_info')}; plot: "
            f"{r.get('sweep_plot')})"
        ),
        ["T", "S", "ifc_sdk FPS", "reference-style FPS"],
        _sweep_row,
    ),
)


def markdown(report: dict, extra_sections: Iterable[Callable[[dict], list[str]]] = ()) -> str:
    """``results.md``: the main table, then every section the report has (extra ones before the footer)."""
    lines = [line for section in (*SECTIONS, *extra_sections) for line in section(report)]
    lines += ["", f"Models: {json.dumps(report['models'])}", "", f"Command: `{report['command']}`", ""]
    return "\n".join(lines)


def _json_default(o):
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    return str(o)


def write(report: dict, out_dir: Path, extra_sections: Iterable[Callable[[dict], list[str]]] = ()) -> None:
    """``results.json`` (atomically: an interrupted run keeps the last complete report) and ``results.md``."""
    tmp = out_dir / "results.json.tmp"
    tmp.write_text(json.dumps(report, indent=1, default=_json_default))
    tmp.replace(out_dir / "results.json")
    (out_dir / "results.md").write_text(markdown(report, extra_sections))


def plot_sweep(sweep: list[dict], path: Path, title: str) -> Path | None:
    """FPS against window length, one line per stride rule (baseline lines where measured); None without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for rule, style in (("1", "o-"), ("half", "s--"), ("T", "^:")):
        pts = sorted(
            (e["window"], e["fps"], e.get("baseline_fps")) for e in sweep if e["stride_rule"] == rule
        )
        if not pts:
            continue
        label = {"1": "stride 1", "half": "stride T/2", "T": "stride T"}[rule]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=f"ifc_sdk, {label}")
        if all(p[2] for p in pts):
            ax.plot(
                [p[0] for p in pts], [p[2] for p in pts], style, alpha=0.4, label=f"reference-style, {label}"
            )
    ax.set_xlabel("window length T (frames)")
    ax.set_ylabel("end-to-end FPS")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
